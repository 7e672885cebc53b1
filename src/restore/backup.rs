//! Phase 1a: the forensic backup, found again after a crash only when AWS shows it is ours.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::BackupStatus;
use jiff::Timestamp;

use super::*;
use crate::aws;
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{Error, Result};
use crate::execution::Recorder;
use crate::progress::Progress;
use crate::validate::millis;

/// The forensic backup, taken once per execution: a resume adopts the one already requested,
/// found by its recorded ARN or, if the run died before recording it, by its name.
pub(super) async fn forensic_backup(
    client: &Client,
    plan: &Plan,
    rec: &Arc<Recorder>,
) -> Result<()> {
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
                kind: aws::error_kind(&err),
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
            let created = aws::timestamp(at).unwrap_or(Timestamp::UNIX_EPOCH);
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
