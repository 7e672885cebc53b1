//! The journal: durable execution records and per-table leases, behind one trait with exactly two
//! implementations: a local directory ([`local::LocalJournal`]) and a DynamoDB control table
//! ([`dynamo::DynamoJournal`]) that every operator of an account shares.

pub mod dynamo;
pub mod envelope;
pub mod lease;
pub mod local;
pub mod record;
pub mod recovery;
pub mod scope;
pub mod seal;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use record::*;
pub use recovery::RecoveryMode;
pub use scope::{Scope, Targeted};

/// Who holds the right to change a destination table, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub table: String,
    pub execution_id: String,
    pub holder: Operator,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Storage for execution records and leases. Leases change only by compare-and-swap on a version
/// number, so two operators can never both believe they hold one.
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// Where the journal lives, for messages.
    fn describe(&self) -> String;

    async fn load(&self, id: &str) -> Result<Option<Execution>>;

    /// Durably replaces the record: after this returns, a kill cannot lose it.
    async fn save(&self, execution: &Execution) -> Result<()>;

    /// Every record, in no particular order.
    async fn list(&self) -> Result<Vec<Execution>>;

    /// The lease on `table` and its version.
    async fn read_lease(&self, table: &str) -> Result<Option<(Lease, u64)>>;

    async fn load_recovery_mode(&self, environment: &str) -> Result<Option<RecoveryMode>>;

    /// Durably replaces the environment's recovery-mode record.
    async fn save_recovery_mode(&self, record: &RecoveryMode) -> Result<()>;

    /// Writes (`Some`) or removes (`None`) the lease if its version is still `expected` (`None`:
    /// no lease). Returns false when someone else changed it first.
    async fn swap_lease(
        &self,
        table: &str,
        lease: Option<&Lease>,
        expected: Option<u64>,
    ) -> Result<bool>;

    /// Segment `segment` of `phase` of execution `id`, kept apart from the record, with its
    /// version; `None` when no worker has written it.
    async fn load_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
    ) -> Result<Option<(SegmentRecord, u64)>>;

    /// Writes the segment's record if its version is still `expected` (0: never written), as
    /// version `expected + 1`. Returns false when another worker wrote it first.
    async fn swap_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
        record: &SegmentRecord,
        expected: u64,
    ) -> Result<bool>;
}

/// Segments `0..count` of a phase as the workers left them (`None`: never written), loaded a
/// few at a time.
pub async fn load_segments(
    journal: &dyn Journal,
    id: &str,
    phase: Phase,
    count: u32,
) -> Result<Vec<Option<SegmentRecord>>> {
    use futures_util::StreamExt;
    let loaded: Vec<Result<Option<(SegmentRecord, u64)>>> =
        futures_util::stream::iter((0..count).map(|n| journal.load_segment(id, phase, n)))
            .buffered(16)
            .collect()
            .await;
    loaded
        .into_iter()
        .map(|r| r.map(|o| o.map(|(rec, _)| rec)))
        .collect()
}

/// The record with the checkpoints the segment workers wrote apart from it, where they are
/// further on: what `status`, `resume` and a phase's end read.
pub async fn merged(journal: &dyn Journal, mut exec: Execution) -> Result<Execution> {
    for phase in [Phase::Delete, Phase::Copy] {
        let count = exec.progress(phase).map_or(0, |p| p.segments.len()) as u32;
        if count == 0 {
            continue;
        }
        let loaded = load_segments(journal, &exec.id, phase, count).await?;
        if let Some(p) = exec.progress_mut(phase) {
            fold(&mut p.segments, &loaded);
        }
    }
    Ok(exec)
}

/// Each checkpoint replaced by its segment record's where that is further on.
pub fn fold(segments: &mut [SegmentCheckpoint], loaded: &[Option<SegmentRecord>]) {
    for (mine, theirs) in segments.iter_mut().zip(loaded) {
        if let Some(r) = theirs {
            *mine = mine.further(&r.checkpoint).clone();
        }
    }
}

/// `--journal`: a directory, or `dynamodb://TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    DynamoDb(String),
}

impl Location {
    /// The flag's value, or the XDG state directory.
    pub fn parse(flag: Option<&str>) -> Result<Location> {
        match flag {
            Some(s) if s.starts_with("dynamodb://") => {
                let table = &s["dynamodb://".len()..];
                crate::validate::table_name("--journal", table)?;
                Ok(Location::DynamoDb(table.to_string()))
            }
            Some(s) if s.contains("://") => Err(Error::invalid(
                "--journal",
                format!(
                    "{s:?} is neither a directory nor dynamodb://TABLE, e.g. dynamodb://dynamo-dr-journal"
                ),
            )),
            Some(dir) => Ok(Location::Dir(PathBuf::from(dir))),
            None => Ok(Location::Dir(default_dir())),
        }
    }
}

/// `$XDG_STATE_HOME/dynamo-dr`, else `~/.local/state/dynamo-dr`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("dynamo-dr")
}

pub async fn open(
    location: &Location,
    client: &aws_sdk_dynamodb::Client,
) -> Result<Arc<dyn Journal>> {
    Ok(match location {
        Location::Dir(dir) => Arc::new(local::LocalJournal::open(dir)?),
        Location::DynamoDb(table) => {
            Arc::new(dynamo::DynamoJournal::open(client.clone(), table).await?)
        }
    })
}
