//! The recovery-mode record of one environment: what every function and mapping was before
//! `start`, and how far `start` and `end` got. Written before each change it describes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Event, Operator};
use crate::error::Result;
use crate::mappings::MappingConfig;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// `start` began and has not finished every function.
    Starting,
    On,
    /// `end` began and has not restored everything.
    Ending,
    Off,
}

/// A function's state before recovery mode, and how far the tool got with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionState {
    /// Reserved concurrency before `start`; `None`: it had none.
    pub saved_reserved: Option<i32>,
    pub throttled: bool,
    pub restored: bool,
}

/// An event source mapping that was enabled before `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingState {
    pub function: String,
    pub event_source_arn: String,
    pub disabled: bool,
    pub restored: bool,
    /// Set when `end` replaces the mapping by a twin at `LATEST` (the `skip` policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<Replacement>,
}

/// A mapping replaced by a twin that starts at `LATEST`, recorded step by step so that a rerun
/// of `end` finishes it from any machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    /// The old mapping's whole configuration, recorded before anything changed.
    pub old: MappingConfig,
    /// The skip pattern that chose it.
    pub pattern: String,
    pub old_deleted: bool,
    pub new_uuid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryMode {
    pub format_version: u32,
    pub environment: String,
    pub state: State,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub functions: BTreeMap<String, FunctionState>,
    /// By mapping UUID.
    pub mappings: BTreeMap<String, MappingState>,
    pub events: Vec<Event>,
    /// The record's version in the journal: saves are compare-and-swaps on it.
    #[serde(default)]
    pub version: u64,
}

impl RecoveryMode {
    pub fn new(environment: &str) -> RecoveryMode {
        RecoveryMode {
            format_version: FORMAT_VERSION,
            environment: environment.to_string(),
            state: State::Off,
            started_at: None,
            ended_at: None,
            functions: BTreeMap::new(),
            mappings: BTreeMap::new(),
            events: Vec::new(),
            version: 0,
        }
    }

    pub fn event(&mut self, what: impl Into<String>) {
        self.events.push(Event {
            at: Timestamp::now(),
            by: Operator::current(),
            what: what.into(),
        });
    }

    pub fn is_on(&self) -> bool {
        self.state == State::On
    }

    pub fn parse(bytes: &[u8], origin: &str) -> Result<RecoveryMode> {
        crate::journal::parse_versioned(bytes, origin, FORMAT_VERSION)
    }
}
