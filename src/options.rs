//! A run's options, resolved once from the command line, the table's config and the
//! execution's record into the values every layer receives.

use std::time::Duration;

use crate::config::TableOptions;
use crate::journal::{Execution, Strategy};
use crate::session::Session;
use crate::sync::SyncOptions;

/// How long a forensic backup may take to become AVAILABLE.
pub const BACKUP_DEADLINE: Duration = Duration::from_secs(4 * 3600);
/// How long a restore may take to become ACTIVE, in minutes, unless `--restore-timeout` says.
pub const RESTORE_TIMEOUT_MINUTES: u64 = 24 * 60;

/// The operator's choices that govern how a run may start and what it does.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// The operator confirmed beforehand (`--yes`): show the plan, do not ask.
    pub yes: bool,
    /// Take the table's lease even if another run seems to hold it.
    pub break_lock: bool,
    /// Run although the table's environment is not in recovery mode (recorded in the journal).
    pub allow_live_traffic: bool,
    /// Skip the content verification; the count check still runs.
    pub no_verify: bool,
    /// For a new execution; a resumed one keeps its record's.
    pub strategy: Strategy,
}

/// What the operator asked of the copy, before the table's config fills the gaps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requested {
    /// Parallel scan segments (`--segments`).
    pub segments: Option<u32>,
    /// BatchWriteItem requests in flight (`--write-concurrency`).
    pub write_concurrency: Option<usize>,
    /// Items per Scan page (`--scan-page-limit`).
    pub page_limit: Option<i32>,
}

/// The copy's options for `table`: the operator's, else the table's config, else the defaults.
/// Segments 0: chosen from the table once it is described ([`crate::table::TableInfo::segments`]).
pub fn sync_options(
    session: &Session,
    table: Option<&TableOptions>,
    requested: Requested,
) -> SyncOptions {
    let defaults = session.pacing(table);
    SyncOptions {
        segments: requested
            .segments
            .or(table.and_then(|t| t.segments))
            .unwrap_or(0),
        write_concurrency: requested
            .write_concurrency
            .or(table.and_then(|t| t.write_concurrency))
            .unwrap_or(defaults.write_concurrency),
        page_limit: requested.page_limit,
        ..defaults
    }
}

/// A resumed run's options: the record's segment count (its checkpoints belong to it), the caps
/// of the table's config as it is now, or of the command line.
pub fn recorded(session: &Session, exec: &Execution, page_limit: Option<i32>) -> SyncOptions {
    let table = session
        .config
        .resolve("table", &exec.inputs.table)
        .ok()
        .map(|t| t.options);
    SyncOptions {
        segments: exec.inputs.segments,
        page_limit,
        ..session.pacing(table.as_ref())
    }
}

/// The restore deadline for `--restore-timeout` minutes.
pub fn restore_deadline(minutes: u64) -> Duration {
    Duration::from_secs(minutes * 60)
}
