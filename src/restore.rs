//! The whole in-place recovery: preflight (read-only), then the four phases.
//!
//! Phase 1 takes the forensic backup and restores the temporary table concurrently; phase 2 is
//! [`crate::sync`]; phase 3 is [`crate::verify`]; phase 4 deletes the temporary table, but only
//! when its tags prove this execution created it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    BackupStatus, BillingMode, PointInTimeRecoveryStatus, SseSpecification, SseType, Tag,
};
use jiff::Timestamp;

use crate::aws;
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{Error, Result};
use crate::execution::{self, Recorder};
use crate::item::KeySchema;
use crate::journal::{Execution, Phase};
use crate::progress::Progress;
use crate::sync::{SyncOptions, SyncReport};
use crate::table::{self, TableInfo, wait_active};
use crate::validate::{Names, PitrTime, TEMP_TABLE_PREFIX, millis};
use crate::verify::CountCheck;

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

fn from_aws_time(t: &aws_smithy_types::DateTime) -> Option<Timestamp> {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
}

fn to_aws_time(t: Timestamp) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(
        t.as_second(),
        t.subsec_nanosecond().max(0) as u32,
    )
}

/// Read-only checks of everything the run will rely on. Any failure here is an
/// [`Error::Invalid`]: nothing has been changed.
pub async fn preflight(
    client: &Client,
    mut request: RestoreRequest,
    resuming: bool,
) -> Result<Plan> {
    let dest = table::describe_existing(client, &request.table, "table").await?;
    if request.sync.segments == 0 {
        let (n, why) = crate::estimate::segments(
            dest.approx_items.unwrap_or_default().max(0) as u64,
            dest.approx_bytes.unwrap_or_default().max(0) as u64,
            dest.write_capacity.map(|w| w as f64),
        );
        request.sync.segments = n;
        request.segments_why = why;
    }
    if !dest.is_active() {
        return Err(Error::invalid(
            "table",
            format!(
                "{} is {}, not ACTIVE; wait until it is ACTIVE and run again",
                dest.name, dest.status
            ),
        ));
    }
    let source = match &request.source {
        Source::Pitr(time) => pitr_window(client, &dest, *time).await?,
        Source::Backup(arn) => backup_detail(client, &dest, arn).await?,
    };
    if resuming {
        return Ok(Plan {
            request,
            dest,
            source,
        });
    }
    if let Some(existing) = table::describe(client, &request.names.temp_table).await? {
        return Err(Error::invalid(
            "incident id",
            format!(
                "the temporary table {} already exists ({}), probably from an earlier run of incident \
                 {}; inspect it, delete it if it is no longer needed, or use a new incident id",
                existing.name, existing.status, request.incident
            ),
        ));
    }
    Ok(Plan {
        request,
        dest,
        source,
    })
}

async fn pitr_window(client: &Client, dest: &TableInfo, time: PitrTime) -> Result<SourceDetail> {
    let out = client
        .describe_continuous_backups()
        .table_name(&dest.name)
        .send()
        .await
        .map_err(|e| aws::aws_error("DescribeContinuousBackups", &dest.name, &e))?;
    let pitr = out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description());
    let status = pitr
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "DISABLED".into());
    let (Some(p), true) = (pitr, status == PointInTimeRecoveryStatus::Enabled.as_str()) else {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "point-in-time recovery is {status} on {}, so it has no restorable window; restore \
                 from an on-demand or AWS Backup backup with --backup-arn instead",
                dest.name
            ),
        ));
    };
    let window = p
        .earliest_restorable_date_time()
        .and_then(from_aws_time)
        .zip(p.latest_restorable_date_time().and_then(from_aws_time));
    let Some((earliest, latest)) = window else {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "DescribeContinuousBackups gave no restorable window for {}; try again in a few minutes",
                dest.name
            ),
        ));
    };
    // Compared, and shown, at DynamoDB's precision: the window's edge as AWS prints it is inside.
    let (earliest, latest) = (millis(earliest), millis(latest));
    if let PitrTime::At(t) = time
        && (millis(t) < earliest || millis(t) > latest)
    {
        let period = p
            .recovery_period_in_days()
            .map(|d| format!(" (recovery period {d} days)"))
            .unwrap_or_default();
        return Err(Error::invalid(
            "PITR time",
            format!(
                "{t} is outside the restorable window of {}: {earliest} to {latest}{period}; choose \
                 a time inside it, or latest",
                dest.name
            ),
        ));
    }
    Ok(SourceDetail::Pitr {
        time,
        earliest,
        latest,
        recovery_period_days: p.recovery_period_in_days(),
    })
}

async fn backup_detail(client: &Client, dest: &TableInfo, arn: &str) -> Result<SourceDetail> {
    let out = match client.describe_backup().backup_arn(arn).send().await {
        Ok(out) => out,
        Err(e) if aws::error_code(&e) == Some("BackupNotFoundException") => {
            return Err(Error::invalid(
                "backup ARN",
                format!(
                    "no backup {arn} in this account and region; list them with `aws dynamodb list-backups --table-name {}`",
                    dest.name
                ),
            ));
        }
        Err(e) => return Err(aws::aws_error("DescribeBackup", arn, &e)),
    };
    let desc = out.backup_description();
    let details = desc.and_then(|d| d.backup_details());
    let source = desc.and_then(|d| d.source_table_details());
    let (Some(details), Some(source)) = (details, source) else {
        return Err(Error::invalid(
            "backup ARN",
            format!("DescribeBackup returned no details for {arn}"),
        ));
    };
    if details.backup_status() != &BackupStatus::Available {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} is {}, not AVAILABLE; wait for it or choose another",
                details.backup_status().as_str()
            ),
        ));
    }
    if source.table_name() != dest.name {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} was taken of table {}, not {}; a backup of another table would \
                 replace this table's data with that table's. Pass a backup of {}, or restore the \
                 backup to a new table yourself and use `dynamo-dr sync`",
                source.table_name(),
                dest.name,
                dest.name
            ),
        ));
    }
    let backup_key = KeySchema::from_elements(source.key_schema());
    if backup_key.as_ref() != Some(&dest.key) {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} has key schema {}, but {} has {}; the items could not be written back",
                backup_key
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "none".into()),
                dest.name,
                dest.key
            ),
        ));
    }
    Ok(SourceDetail::Backup {
        arn: arn.to_string(),
        name: details.backup_name().to_string(),
        created: from_aws_time(details.backup_creation_date_time())
            .unwrap_or(Timestamp::UNIX_EPOCH),
        source_table: source.table_name().to_string(),
    })
}

/// What exists now, for the message when a phase fails.
fn left_in_place(exec: &Execution) -> String {
    let r = &exec.resources;
    let backup = match (&r.backup_arn, &r.backup_name) {
        (Some(a), _) => format!("forensic backup {a} is kept"),
        (None, Some(n)) => format!("forensic backup {n} may be in progress"),
        _ => "no forensic backup was requested".into(),
    };
    let temp = match (&r.temp_table, r.restore_requested) {
        (Some(t), true) => format!("temporary table {t} is kept"),
        _ => "no temporary table was requested".into(),
    };
    format!(
        "{backup}; {temp}. `dynamo-dr resume {}` continues from phase {}",
        exec.id,
        exec.phase.as_str()
    )
}

/// Runs the phases from wherever the journal says this execution is. Call only after
/// [`preflight`], the operator's confirmation and taking the lease.
pub async fn execute(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<RestoreReport> {
    let started = Instant::now();
    let result = run_phases(client, plan, rec).await;
    let exec = rec.snapshot().await;
    if let Err(e) = result {
        return Err(Error::PhaseFailed {
            phase: exec.phase.as_str(),
            state: left_in_place(&exec),
            source: Box::new(e),
        });
    }
    Ok(report(plan, &exec, started.elapsed()))
}

async fn run_phases(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let req = &plan.request;
    if rec.snapshot().await.phase == Phase::BackupAndRestore {
        rec.check_lease()?;
        tracing::info!(execution = %req.names.execution_id, table = %plan.dest.name, "phase 1: forensic backup and restore to temporary table");
        let backup = async {
            if req.forensic_backup {
                forensic_backup(client, plan, rec).await
            } else {
                tracing::warn!(table = %plan.dest.name, "no forensic backup: forensic_backup = false in the config");
                rec.update(|e| {
                    e.event("forensic backup skipped: forensic_backup = false in the config")
                })
                .await
            }
        };
        let ((), restored) = tokio::try_join!(backup, restore_temp_table(client, plan, rec))?;
        if restored.key != plan.dest.key {
            return Err(Error::BadState {
                what: format!("restored table {}", restored.name),
                state: format!("key schema {}", restored.key),
                hint: format!(
                    "{} has {}; the destination was not touched",
                    plan.dest.name, plan.dest.key
                ),
            });
        }
        // A backup's data is as of its creation, whatever time the restore itself reports.
        let restored_to = match &plan.source {
            SourceDetail::Backup { created, .. } => Some(*created),
            SourceDetail::Pitr { .. } => restored.restored_to,
        };
        rec.update(|e| {
            e.resources.restored_to = restored_to;
            e.enter(Phase::Delete);
        })
        .await?;
    }
    let phase = rec.snapshot().await.phase;
    if phase < Phase::CleanUp {
        let restored = table::describe(client, &req.names.temp_table)
            .await?
            .ok_or_else(|| Error::BadState {
                what: format!("temporary table {}", req.names.temp_table),
                state: "missing".into(),
                hint:
                    "it was deleted while the run was stopped; start again with a new incident id"
                        .into(),
            })?;
        tracing::info!(source = %restored.name, dest = %plan.dest.name, "phase 2: delete then copy, then count check");
        execution::sync_phases(client, &restored, &plan.dest, &req.sync, rec).await?;
    }
    if rec.snapshot().await.phase == Phase::CleanUp {
        tracing::info!("phase 4: clean-up");
        let fate = if req.keep_restored_table {
            TempTableFate::Kept
        } else {
            rec.check_lease()?;
            match table::describe(client, &req.names.temp_table).await? {
                // Deleted only when both its restore summary and its tags show it is ours.
                Some(t) => match check_provenance(client, plan, &t).await {
                    Ok(_) => delete_if_ours(client, &t, &req.names.execution_id).await?,
                    Err(Error::NotOurs { why, .. }) => {
                        tracing::warn!(table = %t.name, %why, "not deleting it");
                        TempTableFate::NotOurs
                    }
                    Err(e) => return Err(e),
                },
                // Deleted by an earlier attempt that stopped before recording it.
                None => TempTableFate::Deleted,
            }
        };
        rec.update(|e| {
            e.resources.temp_table_fate = Some(fate.as_str().to_string());
            e.event(format!("temporary table {}", fate.as_str()));
            e.enter(Phase::Done);
        })
        .await?;
    }
    Ok(())
}

fn report(plan: &Plan, exec: &Execution, duration: Duration) -> RestoreReport {
    let span = |p: &crate::journal::PhaseProgress| match (p.started_at, p.finished_at) {
        (Some(a), Some(b)) => Duration::try_from(b.duration_since(a)).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let fate = match exec.resources.temp_table_fate.as_deref() {
        Some("kept") => TempTableFate::Kept,
        Some("deleted") => TempTableFate::Deleted,
        _ => TempTableFate::NotOurs,
    };
    RestoreReport {
        execution_id: exec.id.clone(),
        table: plan.dest.name.clone(),
        restored_table: plan.request.names.temp_table.clone(),
        restored_table_fate: fate,
        backup_arn: exec.resources.backup_arn.clone().unwrap_or_default(),
        restored_to: exec.resources.restored_to,
        source: plan.request.source.clone(),
        sync: SyncReport {
            deleted_items: exec.delete.items(),
            copied_items: exec.copy.items(),
            scan_requests: exec.delete.scan_requests + exec.copy.scan_requests,
            write_requests: exec.delete.write_requests + exec.copy.write_requests,
            delete_duration: span(&exec.delete),
            copy_duration: span(&exec.copy),
        },
        counts: CountCheck {
            source: exec.source_count.unwrap_or_default(),
            dest: exec.dest_count.unwrap_or_default(),
        },
        strategy: exec.inputs.strategy,
        read_units: exec.units().0,
        write_units: exec.units().1,
        rewritten_pages: exec.rewritten_pages(),
        duration,
    }
}

/// The forensic backup, taken once per execution: a resume adopts the one already requested,
/// found by its recorded ARN or, if the run died before recording it, by its name.
async fn forensic_backup(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let name = &plan.request.names.backup;
    let exec = rec.snapshot().await;
    let arn = match exec.resources.backup_arn.clone() {
        Some(arn) => arn,
        None => {
            let adopted = match exec.resources.backup_requested_at {
                Some(at) if exec.resources.backup_name.is_some() => {
                    find_requested_backup(client, plan, at).await?
                }
                _ => None,
            };
            let (arn, what) = match adopted {
                Some(arn) => (
                    arn,
                    "adopted the forensic backup requested before an interruption",
                ),
                None => {
                    let at = Timestamp::now();
                    rec.update(|e| {
                        e.resources.backup_name = Some(name.clone());
                        e.resources.backup_requested_at = Some(at);
                    })
                    .await?;
                    (
                        create_backup(client, plan, at).await?,
                        "forensic backup requested",
                    )
                }
            };
            rec.update(|e| {
                e.resources.backup_arn = Some(arn.clone());
                e.event(format!("{what}: {arn}"));
            })
            .await?;
            arn
        }
    };
    tracing::info!(backup = %arn, "forensic backup");
    let progress = Progress::waiting(&format!("forensic backup of {}", plan.dest.name));
    let policy = PollPolicy::new(plan.request.backup_deadline);
    poll_until(
        &format!("backup {arn}"),
        &policy,
        |state, _| progress.set_message(state),
        || async {
            let out = client
                .describe_backup()
                .backup_arn(&arn)
                .send()
                .await
                .map_err(|e| aws::aws_error("DescribeBackup", &arn, &e))?;
            let status = out
                .backup_description()
                .and_then(|d| d.backup_details())
                .map(|d| d.backup_status().clone());
            match status {
                Some(BackupStatus::Available) => Ok(Poll::Ready(())),
                Some(BackupStatus::Creating) | None => Ok(Poll::Pending("CREATING".into())),
                Some(other) => Err(Error::BadState {
                    what: format!("forensic backup {arn}"),
                    state: other.as_str().to_string(),
                    hint: "the backup did not complete; the live table was not touched".into(),
                }),
            }
        },
    )
    .await?;
    progress.finish();
    tracing::info!(backup = %arn, "forensic backup AVAILABLE");
    Ok(())
}

/// CreateBackup is not idempotent: an attempt whose answer is lost (a timeout, a dropped
/// connection, a 5xx) may still have made the backup, and a blind retry would make a second,
/// billed copy. So the tool retries it itself, and looks for the backup by name first.
async fn create_backup(client: &Client, plan: &Plan, requested_at: Timestamp) -> Result<String> {
    let name = &plan.request.names.backup;
    let table = &plan.dest.name;
    let once = aws::without_retries(client);
    let mut backoff = plan.request.sync.retry.start();
    let out = loop {
        let err = match once
            .create_backup()
            .table_name(table)
            .backup_name(name)
            .send()
            .await
        {
            Ok(out) => break out,
            Err(e) => e,
        };
        if !aws::is_retryable(&err) {
            return Err(aws::aws_error("CreateBackup", table, &err));
        }
        // A throttle is refused before any work is done; anything else may have made it.
        if !aws::is_throttle(&err)
            && let Some(arn) = find_requested_backup(client, plan, requested_at).await?
        {
            tracing::warn!(backup = %arn, "CreateBackup's answer was lost, but the backup was made; adopted it");
            return Ok(arn);
        }
        tracing::debug!(error = %aws::describe(&err), "CreateBackup failed; retrying");
        if backoff.wait().await.is_none() {
            return Err(Error::Aws {
                operation: "CreateBackup",
                resource: table.clone(),
                message: format!(
                    "{} (after {} attempts; no backup named {name} was made). Run again or resume \
                     once the table accepts backups",
                    aws::describe(&err),
                    backoff.attempts() + 1
                ),
            });
        }
    };
    out.backup_details()
        .map(|d| d.backup_arn().to_string())
        .ok_or_else(|| Error::BadState {
            what: format!("backup {name}"),
            state: "CreateBackup returned no ARN".into(),
            hint: "check the backups of the table in the console".into(),
        })
}

/// The backup an interrupted run requested. A CreateBackup sent just before the interruption may
/// still be landing, and ListBackups is eventually consistent, so look for a while before
/// concluding it was never made: a second forensic backup would be a needless, billed copy.
async fn find_requested_backup(
    client: &Client,
    plan: &Plan,
    requested_at: Timestamp,
) -> Result<Option<String>> {
    for wait_ms in [0, 250, 500, 1000, 2000, 4000] {
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        if let Some(arn) = find_backup(client, plan, requested_at).await? {
            return Ok(Some(arn));
        }
    }
    Ok(None)
}

/// Clocks differ between this machine and AWS; a backup's creation time is compared with the
/// request's allowing this much.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

/// The backup this execution requested, found by its name and proven by what ListBackups says of
/// it: taken of this very table (its ARN, not only its name: a table deleted and recreated
/// under the same name has another) and created since the request. A backup of that name that is
/// not provably ours is never adopted.
async fn find_backup(
    client: &Client,
    plan: &Plan,
    requested_at: Timestamp,
) -> Result<Option<String>> {
    let table = &plan.dest.name;
    let name = &plan.request.names.backup;
    let not_before = requested_at.checked_sub(CLOCK_SKEW).unwrap_or(requested_at);
    let mut start = None;
    let mut found: Option<(aws_smithy_types::DateTime, String)> = None;
    let mut foreign = None;
    loop {
        let out = client
            .list_backups()
            .table_name(table)
            .set_exclusive_start_backup_arn(start)
            .send()
            .await
            .map_err(|e| aws::aws_error("ListBackups", table, &e))?;
        for b in out.backup_summaries() {
            let (Some(arn), Some(at)) = (b.backup_arn(), b.backup_creation_date_time()) else {
                continue;
            };
            if b.backup_name() != Some(name.as_str()) {
                continue;
            }
            let created = from_aws_time(at).unwrap_or(Timestamp::UNIX_EPOCH);
            if b.table_arn() != Some(plan.dest.arn.as_str()) || created < not_before {
                foreign = Some(format!(
                    "backup {arn} of {} created {}",
                    b.table_arn().unwrap_or("an unnamed table"),
                    millis(created)
                ));
            } else if found.as_ref().is_none_or(|(t, _)| at.secs() > t.secs()) {
                found = Some((*at, arn.to_string()));
            }
        }
        match out.last_evaluated_backup_arn() {
            Some(arn) if !arn.is_empty() => start = Some(arn.to_string()),
            _ => break,
        }
    }
    match (found, foreign) {
        (Some((_, arn)), _) => Ok(Some(arn)),
        // Backup names need not be unique: leave theirs alone and make our own.
        (None, Some(why)) => {
            tracing::warn!(backup = %name, %why, "a backup of this name is not this execution's; not adopting it");
            Ok(None)
        }
        (None, None) => Ok(None),
    }
}

/// Restores into the temporary table once per execution, waits for it, and tags it as this
/// execution's. A table of that name is adopted (after a lost answer or an interruption) only
/// when DynamoDB itself shows it is this execution's: see [`check_provenance`].
async fn restore_temp_table(
    client: &Client,
    plan: &Plan,
    rec: &Arc<Recorder>,
) -> Result<TableInfo> {
    let req = &plan.request;
    let temp = &req.names.temp_table;
    let requested = rec.snapshot().await.resources.restore_requested;
    let found = match requested {
        true => table::describe(client, temp).await?,
        false => None,
    };
    if let Some(existing) = found {
        check_provenance(client, plan, &existing).await?;
        rec.update(|e| {
            e.event(format!(
                "adopted temporary table {temp} requested before an interruption (its restore \
                 summary names {})",
                expected_source(plan)
            ))
        })
        .await?;
    } else {
        // Recorded before the call, so the journal shows what may exist if the run dies here.
        rec.update(|e| {
            e.resources.temp_table = Some(temp.clone());
            e.resources.restore_requested = true;
        })
        .await?;
        match start_restore(client, plan).await {
            // Our own request whose answer was lost (the SDK retried it), or somebody else's
            // table of this name: only DynamoDB's description of it can tell.
            Err(Error::Aws { message, .. })
                if message.contains("TableAlreadyExistsException")
                    || message.contains("ResourceInUseException") =>
            {
                let existing =
                    table::describe(client, temp)
                        .await?
                        .ok_or_else(|| Error::BadState {
                            what: format!("temporary table {temp}"),
                            state: "reported as existing, but DescribeTable does not find it"
                                .into(),
                            hint: "run `dynamo-dr resume` in a minute".into(),
                        })?;
                check_provenance(client, plan, &existing).await?;
                tracing::info!(table = %temp, "the restore already requested is under way");
            }
            other => other?,
        }
        rec.update(|e| e.event(format!("restore to {temp} requested")))
            .await?;
    }
    let restored = wait_active(
        client,
        temp,
        req.restore_deadline,
        &format!("restore to {temp}"),
    )
    .await?;
    // Again once ACTIVE, before the tag that makes it ours and before any item is read from it.
    if !check_provenance(client, plan, &restored).await? {
        tag_as_ours(client, &restored, plan).await?;
    }
    Ok(restored)
}

/// What a temporary table of this plan must say it was restored from.
fn expected_source(plan: &Plan) -> String {
    match &plan.request.source {
        Source::Pitr(PitrTime::At(t)) => format!("table {} at {}", plan.dest.arn, millis(*t)),
        Source::Pitr(PitrTime::Latest) => format!("table {}", plan.dest.arn),
        Source::Backup(arn) => format!("backup {arn}"),
    }
}

/// Whether `table` is this execution's, by what DynamoDB says of it, never by its name:
/// - its RestoreSummary names this plan's source: the live table's ARN (and, for a PITR time,
///   that instant to the millisecond), or the backup's ARN
///   (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_RestoreSummary.html>);
/// - its execution tag, if it has one, names this execution.
///
/// Returns whether the tag is already there. Anything else is [`Error::NotOurs`], and nothing is
/// changed: the table is neither tagged nor deleted.
pub async fn check_provenance(client: &Client, plan: &Plan, table: &TableInfo) -> Result<bool> {
    let execution = &plan.request.names.execution_id;
    let from = table.restored_from.as_ref();
    let source_matches = match &plan.request.source {
        Source::Pitr(_) => from.is_some_and(|f| {
            f.backup_arn.is_none() && f.table_arn.as_deref() == Some(plan.dest.arn.as_str())
        }),
        Source::Backup(arn) => from.is_some_and(|f| f.backup_arn.as_deref() == Some(arn)),
    };
    let instant_matches = match (&plan.request.source, table.restored_to) {
        // Within a millisecond, DynamoDB's precision: the request carries the instant as
        // float epoch seconds, rounded to the millisecond on the way.
        (Source::Pitr(PitrTime::At(t)), Some(at)) => {
            at.duration_since(*t).abs() < jiff::SignedDuration::from_millis(1)
        }
        (Source::Pitr(PitrTime::At(_)), None) => false,
        _ => true,
    };
    let tags = tag_values(client, table, EXECUTION_TAG).await?;
    let others: Vec<&String> = tags.iter().filter(|v| *v != execution).collect();
    let found = || {
        let at = table
            .restored_to
            .map(|t| format!(" at {}", millis(t)))
            .unwrap_or_default();
        match from {
            Some(f) => format!("restored from {f}{at}"),
            None => "not restored from anything (no RestoreSummary)".into(),
        }
    };
    let why = if !source_matches || !instant_matches {
        Some(format!(
            "it was {}, not from {}",
            found(),
            expected_source(plan)
        ))
    } else if !others.is_empty() {
        Some(format!(
            "its {EXECUTION_TAG} tag names {}, not {execution}",
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        None
    };
    match why {
        None => Ok(!tags.is_empty()),
        Some(why) => {
            tracing::error!(table = %table.name, %why, "a table of the temporary name is not this execution's; left untouched");
            Err(Error::NotOurs {
                what: format!("table {}", table.name),
                why,
                table: plan.dest.name.clone(),
            })
        }
    }
}

async fn start_restore(client: &Client, plan: &Plan) -> Result<()> {
    let req = &plan.request;
    let temp = &req.names.temp_table;
    // Keep the destination's customer managed key; otherwise the restore would use the
    // AWS-owned key and silently change the encryption of the data at rest.
    let sse = plan.dest.kms_key_arn.as_ref().map(|key| {
        SseSpecification::builder()
            .enabled(true)
            .sse_type(SseType::Kms)
            .kms_master_key_id(key)
            .build()
    });
    // On-demand, so the copy phase's reads are never throttled by a small provisioned capacity.
    match &req.source {
        Source::Pitr(time) => {
            let mut call = client
                .restore_table_to_point_in_time()
                .source_table_name(&plan.dest.name)
                .target_table_name(temp)
                .billing_mode_override(BillingMode::PayPerRequest)
                .set_sse_specification_override(sse);
            call = match time {
                PitrTime::Latest => call.use_latest_restorable_time(true),
                PitrTime::At(t) => call.restore_date_time(to_aws_time(*t)),
            };
            call.send()
                .await
                .map_err(|e| aws::aws_error("RestoreTableToPointInTime", temp, &e))?;
        }
        Source::Backup(arn) => {
            client
                .restore_table_from_backup()
                .target_table_name(temp)
                .backup_arn(arn)
                .billing_mode_override(BillingMode::PayPerRequest)
                .set_sse_specification_override(sse)
                .send()
                .await
                .map_err(|e| aws::aws_error("RestoreTableFromBackup", temp, &e))?;
        }
    }
    tracing::info!(table = %temp, "restore started");
    Ok(())
}

async fn tag_as_ours(client: &Client, table: &TableInfo, plan: &Plan) -> Result<()> {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let tags = [
        tag(EXECUTION_TAG, &plan.request.names.execution_id),
        tag(INCIDENT_TAG, &plan.request.incident),
        tag(SOURCE_TAG, &plan.dest.name),
    ]
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| Error::BadState {
        what: "tags".into(),
        state: e.to_string(),
        hint: "this is a bug in dynamo-dr".into(),
    })?;
    client
        .tag_resource()
        .resource_arn(&table.arn)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| aws::aws_error("TagResource", &table.name, &e))?;
    Ok(())
}

/// All values of `key` on a table (a key may appear more than once on some emulators).
async fn tag_values(client: &Client, table: &TableInfo, key: &str) -> Result<Vec<String>> {
    let mut values = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_tags_of_resource()
            .resource_arn(&table.arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws::aws_error("ListTagsOfResource", &table.name, &e))?;
        values.extend(
            out.tags()
                .iter()
                .filter(|t| t.key() == key)
                .map(|t| t.value().to_string()),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(values),
        }
    }
}

/// Deletes `table` only if its name is a temporary one and its tags name `execution_id`.
pub async fn delete_if_ours(
    client: &Client,
    table: &TableInfo,
    execution_id: &str,
) -> Result<TempTableFate> {
    let values = tag_values(client, table, EXECUTION_TAG).await?;
    let ours = table.name.starts_with(TEMP_TABLE_PREFIX)
        && !values.is_empty()
        && values.iter().all(|v| v == execution_id);
    if !ours {
        tracing::warn!(table = %table.name, tags = ?values, "not deleting: the table's tags do not show this execution created it");
        return Ok(TempTableFate::NotOurs);
    }
    match client.delete_table().table_name(&table.name).send().await {
        Ok(_) => {}
        // An attempt whose answer was lost deleted it already (the SDK retried).
        Err(e) if aws::error_code(&e) == Some("ResourceNotFoundException") => {}
        Err(e) => return Err(aws::aws_error("DeleteTable", &table.name, &e)),
    }
    tracing::info!(table = %table.name, "temporary table deleted");
    Ok(TempTableFate::Deleted)
}
