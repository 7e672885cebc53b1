//! The whole in-place recovery: preflight (read-only), then the four phases.
//!
//! Phase 1 takes the forensic backup and restores the temporary table concurrently; phase 2 is
//! [`crate::sync`]; phase 3 is [`crate::verify`]; phase 4 deletes the temporary table, but only
//! when its tags prove this execution created it.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::Result;
use crate::sync::{SyncOptions, SyncReport};
use crate::table::TableInfo;
use crate::validate::{Names, PitrTime};
use crate::verify::CountCheck;

mod backup;
pub mod job;
mod phases;
mod preflight;
mod temp_table;

pub use phases::execute;
pub use preflight::preflight;
pub use temp_table::{check_provenance, delete_if_ours};

/// Tag on every table this tool creates; its value is the execution id.
pub const EXECUTION_TAG: &str = "dynamo-dr:execution-id";
pub const INCIDENT_TAG: &str = "dynamo-dr:incident-id";
pub const SOURCE_TAG: &str = "dynamo-dr:source-table";

/// Where the temporary table's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pitr(PitrTime),
    Backup(String),
}

/// As the journal records it: the time (`latest` or RFC 3339), or `backup:ARN`.
impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Pitr(t) => write!(f, "{t}"),
            Source::Backup(arn) => write!(f, "backup:{arn}"),
        }
    }
}

impl Source {
    /// The source a record names (see [`Source`]'s `Display`).
    pub fn from_record(text: &str) -> Result<Source> {
        if let Some(arn) = text.strip_prefix("backup:") {
            return Ok(Source::Backup(arn.to_string()));
        }
        crate::validate::pitr_time(text, Timestamp::now()).map(Source::Pitr)
    }
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The physical name of the table to put back in place.
    pub table: String,
    pub incident: String,
    pub source: Source,
    pub names: Names,
    pub keep_restored_table: bool,
    /// Marked sensitive in the config.
    pub sensitive: bool,
    /// False when the table's config forbids backups.
    pub forensic_backup: bool,
    pub sync: SyncOptions,
    pub backup_deadline: Duration,
    pub restore_deadline: Duration,
    /// How the segment count was chosen, for the plan.
    pub segments_why: String,
}

/// Everything preflight learned; shown to the operator before anything changes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: RestoreRequest,
    pub dest: TableInfo,
    pub source: SourceDetail,
}

#[derive(Debug, Clone)]
pub enum SourceDetail {
    Pitr {
        time: PitrTime,
        earliest: Timestamp,
        latest: Timestamp,
        recovery_period_days: Option<i32>,
    },
    Backup {
        arn: String,
        name: String,
        created: Timestamp,
        source_table: String,
    },
}

/// What became of the temporary table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempTableFate {
    Deleted,
    /// `--keep-restored-table`.
    Kept,
    /// Its tags did not name this execution, so it was left alone.
    NotOurs,
}

impl TempTableFate {
    pub fn as_str(self) -> &'static str {
        match self {
            TempTableFate::Deleted => "deleted",
            TempTableFate::Kept => "kept",
            TempTableFate::NotOurs => "kept (tags do not name this execution)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub execution_id: String,
    pub table: String,
    pub restored_table: String,
    pub restored_table_fate: TempTableFate,
    pub backup_arn: String,
    /// The instant the data was put back to: the PITR time (resolved for `latest`) or the
    /// backup's creation time.
    pub restored_to: Option<Timestamp>,
    pub source: Source,
    pub sync: SyncReport,
    pub counts: CountCheck,
    /// Pages written a second time because a previous run stopped before acknowledging them.
    pub rewritten_pages: u64,
    pub strategy: crate::journal::Strategy,
    /// Capacity units the sync consumed, as DynamoDB reported them.
    pub read_units: f64,
    pub write_units: f64,
    pub duration: Duration,
}

pub(crate) fn from_aws_time(t: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

pub(crate) fn to_aws_time(t: Timestamp) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(
        t.as_second(),
        t.subsec_nanosecond().max(0) as u32,
    )
}
