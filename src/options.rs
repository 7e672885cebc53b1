//! A run's options, resolved once from the command line, the table's config and the
//! execution's record into the values every layer receives.

use std::time::Duration;

use crate::config::TableOptions;
use crate::error::{Error, Result};
use crate::journal::{Execution, Scope, Strategy};
use crate::session::Session;
use crate::sync::SyncOptions;
use crate::table::TableInfo;
use crate::watchers::Watchers;

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
    /// For a new execution (a resumed one keeps its record's); `None`: chosen from what watches
    /// the table ([`strategy`]).
    pub strategy: Option<Strategy>,
    /// Let a hard reset empty a global table, whose replicas see every delete at once.
    pub allow_empty_replicas: bool,
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
        page_limit: requested
            .page_limit
            .or(table.and_then(|t| t.scan_page_limit)),
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
        page_limit: page_limit.or(table.as_ref().and_then(|t| t.scan_page_limit)),
        ..session.pacing(table.as_ref())
    }
}

/// A keys scope read from S3 must lie under the table's `keys_location`: the generated policies
/// grant reading there alone, so anywhere else would fail mid-run on AccessDenied.
pub fn keys_scope(options: &TableOptions, scope: &Scope) -> Result<()> {
    let Scope::Keys { file, .. } = scope else {
        return Ok(());
    };
    let Some(uri) = crate::validate::S3Uri::parse(file)? else {
        return Ok(());
    };
    let place = options.keys_location.as_deref();
    match place.map(crate::validate::S3Uri::location).transpose()? {
        Some(place) if uri.within(&place) => Ok(()),
        _ => Err(Error::invalid(
            "keys",
            format!(
                "{uri} is not under the table's keys_location ({}); put the keys file under it, \
                 or set keys_location = \"s3://BUCKET/PREFIX\" for the table (or in [defaults]) \
                 and regenerate its policy with `dynamo-dr iam-policy` or `dynamo-dr stack`, \
                 which grant reading there",
                place.unwrap_or("none is set")
            ),
        )),
    }
}

/// A window's bucket and prefix: the flags', else the table's config; a window needs a bucket.
pub fn export_target(scope: &Scope, options: &TableOptions, field: &str) -> Result<Scope> {
    let Scope::Window { bucket, prefix, .. } = scope else {
        return Ok(scope.clone());
    };
    if let Some(configured) = &options.export_bucket
        && !bucket.is_empty()
        && bucket != configured
    {
        return Err(Error::invalid(
            field,
            format!(
                "the table's config sets export_bucket = \"{configured}\", the only bucket its \
                 generated policy lets the export write to; drop {field}, or change \
                 export_bucket and regenerate the policy with `dynamo-dr iam-policy`"
            ),
        ));
    }
    let bucket = Some(bucket.clone())
        .filter(|b| !b.is_empty())
        .or(options.export_bucket.clone())
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "a window is undone from an incremental export written to S3: give {field} \
                     BUCKET (a bucket in the table's account and region) or set export_bucket \
                     for the table or in [defaults]"
                ),
            )
        })?;
    let mut scope = scope.clone();
    if let Scope::Window {
        bucket: b,
        prefix: p,
        ..
    } = &mut scope
    {
        *b = bucket;
        *p = prefix.clone().or(options.export_prefix.clone());
    }
    Ok(scope)
}

/// The restore deadline for `--restore-timeout` minutes.
pub fn restore_deadline(minutes: u64) -> Duration {
    Duration::from_secs(minutes * 60)
}

/// A run's strategy: its record's when it resumes; for a new execution the operator's, else `diff` when anything downstream sees the
/// table's writes one by one (a stream with consumers, Kinesis destinations, replicas), so they
/// see only the real changes and never an empty table; else `hard-reset`. A hard reset of a
/// global table is refused unless the operator allows its replicas to be emptied.
pub fn strategy(
    recorded: Option<&Execution>,
    run: RunOptions,
    table: &TableInfo,
    watchers: &Watchers,
) -> Result<(Strategy, String)> {
    // A resumed execution keeps what its checkpoints were made with.
    if let Some(e) = recorded {
        return Ok((e.inputs.strategy, "the execution's record".into()));
    }
    let watched = watchers.has_consumers(table);
    let (strategy, why) = match run.strategy {
        Some(s) => (s, "--strategy".to_string()),
        // Unknown is not none: a consumer that could not be listed would see every item
        // deleted and written again.
        None if let Some(why) = watchers.unknown_consumers(table) => (
            Strategy::Diff,
            format!("the default while consumers are unknown: {why}"),
        ),
        None if watched => (
            Strategy::Diff,
            "the default: the table's writes reach consumers, Kinesis destinations or replicas"
                .into(),
        ),
        None => (Strategy::HardReset, "the default".into()),
    };
    if strategy == Strategy::HardReset && !table.replicas.is_empty() && !run.allow_empty_replicas {
        return Err(Error::invalid(
            "--strategy",
            format!(
                "{} is a global table with replicas in {}: a hard reset deletes every item, and \
                 every replica would be empty until the copy is done. Use --strategy diff (the \
                 default for it), or pass --allow-empty-replicas to empty them anyway",
                table.name,
                table.replicas.join(", ")
            ),
        ));
    }
    Ok((strategy, why))
}
