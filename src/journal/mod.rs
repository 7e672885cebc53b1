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
pub mod trace;

use std::path::PathBuf;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use record::*;
pub use recovery::RecoveryMode;
pub use scope::{Mode, Scope, Targeted};
pub use trace::{PageTally, Trace};

/// Who holds the right to change a destination table (or an environment's recovery mode), until
/// when, and the fencing token every one of its writes is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub table: String,
    pub execution_id: String,
    pub holder: Operator,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
    /// Made by the holder that took the lease; a take-over or a broken lock makes a new one. A
    /// writer whose token is no longer the lease's stops before its next write.
    #[serde(default)]
    pub token: String,
    /// Grows by one with every new token, never reused (a release keeps it, see `released`).
    #[serde(default)]
    pub fence: u64,
    #[serde(default)]
    pub kind: HolderKind,
    /// A Lambda holder: the latest deadline of any invocation that held it. Lambda stops an
    /// invocation at its deadline, so past it none of them writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_until: Option<Timestamp>,
    /// How long after a check of its token a write of this holder may still land: the
    /// check's freshness plus one write attempt's timeout.
    #[serde(default)]
    pub grace_ms: u64,
    /// Given up by its holder; the item stays so that the next holder's fence is higher.
    #[serde(default)]
    pub released: bool,
    /// A holder that gave the lease up after a failure, with writes it aborted perhaps still in
    /// flight: until when they may land.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_until: Option<Timestamp>,
}

/// The prefix of an environment's recovery-mode lease; `:` is in no table name.
pub const ENVIRONMENT_LEASE: &str = "environment:";

/// The name of environment `env`'s recovery-mode lease.
pub fn environment_lease(env: &str) -> String {
    format!("{ENVIRONMENT_LEASE}{env}")
}

/// What kind of process holds a lease: one CLI process, or the Lambda invocations of one
/// execution (any of them renews it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum HolderKind {
    #[default]
    Cli,
    Lambda {
        function: String,
    },
}

impl HolderKind {
    /// A holder with an invocation's deadline is a Lambda worker, named by its function;
    /// anything else is a CLI process.
    pub fn of(deadline: Option<Timestamp>) -> HolderKind {
        match deadline {
            Some(_) => HolderKind::Lambda {
                function: std::env::var("AWS_LAMBDA_FUNCTION_NAME")
                    .unwrap_or_else(|_| "(unnamed)".into()),
            },
            None => HolderKind::Cli,
        }
    }
}

impl Lease {
    /// Free to take without displacing anyone.
    pub fn is_free(&self, now: Timestamp) -> bool {
        self.released || self.expires_at < now
    }

    /// Who holds it, for messages: the kind, the host or function, the execution and the time
    /// left.
    pub fn who(&self, now: Timestamp) -> String {
        let by = match &self.kind {
            HolderKind::Cli => format!(
                "a CLI process (user {}, host {}, pid {})",
                self.holder.user, self.holder.host, self.holder.pid
            ),
            HolderKind::Lambda { function } => {
                format!("the Lambda workers of function {function}")
            }
        };
        let left = self.expires_at.duration_since(now).as_secs();
        let left = if self.released {
            "released".to_string()
        } else if left >= 0 {
            format!(
                "{left}s left, until {}",
                crate::validate::time_text(self.expires_at)
            )
        } else {
            format!("expired {}s ago", -left)
        };
        format!(
            "execution {} held by {by} since {}, fence {} ({left})",
            self.execution_id,
            crate::validate::time_text(self.acquired_at),
            self.fence
        )
    }
}

/// Storage for execution records and leases. Leases change only by compare-and-swap on a version
/// number, so two operators can never both believe they hold one.
#[async_trait::async_trait]
pub trait Journal: Send + Sync {
    /// Where the journal lives, for messages.
    fn describe(&self) -> String;

    async fn load(&self, id: &str) -> Result<Option<Execution>>;

    /// Durably replaces the record if the stored one is still at `execution.version` (0: none),
    /// and advances the version: after this returns, a kill cannot lose it. A record another
    /// writer saved first is refused with [`Error::Conflict`], nothing written.
    async fn save(&self, execution: &mut Execution) -> Result<()>;

    /// Every record, in no particular order.
    async fn list(&self) -> Result<Vec<Execution>>;

    /// The lease on `table` and its version.
    async fn read_lease(&self, table: &str) -> Result<Option<(Lease, u64)>>;

    async fn load_recovery_mode(&self, environment: &str) -> Result<Option<RecoveryMode>>;

    /// Durably replaces the environment's recovery-mode record, by version as [`Journal::save`].
    async fn save_recovery_mode(&self, record: &mut RecoveryMode) -> Result<()>;

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
            fold_trace(&mut p.workers_trace, &loaded);
        }
    }
    Ok(exec)
}

/// Advances the version of every segment record of `exec`'s sync phases, unchanged: a worker
/// that read one before this run took the execution over can no longer save it. Called by a run
/// that took the lease, before it reads the records and before its first write.
pub async fn fence_segments(journal: &dyn Journal, exec: &Execution) -> Result<()> {
    rewrite_segments(journal, exec, |r| r).await
}

/// Empties every segment record of `exec`'s sync phases (and fences them, as
/// [`fence_segments`]): a targeted scope planned again starts its segments afresh, and its
/// earlier pass's counts and conflicts are not folded in twice.
pub async fn reset_segments(journal: &dyn Journal, exec: &Execution) -> Result<()> {
    rewrite_segments(journal, exec, |_| SegmentRecord::default()).await
}

async fn rewrite_segments(
    journal: &dyn Journal,
    exec: &Execution,
    change: impl Fn(SegmentRecord) -> SegmentRecord,
) -> Result<()> {
    for phase in [Phase::Delete, Phase::Copy] {
        let count = exec.progress(phase).map_or(0, |p| p.segments.len()) as u32;
        for n in 0..count {
            // A record written between the load and the swap is read again.
            let mut tries = 0;
            while let Some((record, v)) = journal.load_segment(&exec.id, phase, n).await? {
                let record = change(record);
                if journal.swap_segment(&exec.id, phase, n, &record, v).await? {
                    break;
                }
                tries += 1;
                if tries == 10 {
                    return Err(Error::Journal(format!(
                        "segment {n} of phase {} of {} keeps changing: a worker is still \
                         writing it. Stop the state machine's execution, then resume again",
                        phase.as_str(),
                        exec.id
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Each checkpoint replaced by its segment record's where that is further on.
pub fn fold(segments: &mut [SegmentCheckpoint], loaded: &[Option<SegmentRecord>]) {
    for (mine, theirs) in segments.iter_mut().zip(loaded) {
        if let Some(r) = theirs {
            *mine = mine.further(&r.checkpoint).clone();
        }
    }
}

/// The segment workers' traces summed, where they wrote any: replaces `trace` whole.
pub fn fold_trace(trace: &mut Trace, loaded: &[Option<SegmentRecord>]) {
    let traces: Vec<&Trace> = loaded
        .iter()
        .flatten()
        .map(|r| &r.trace)
        .filter(|t| !t.is_empty())
        .collect();
    if !traces.is_empty() {
        *trace = Trace::sum(traces);
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
