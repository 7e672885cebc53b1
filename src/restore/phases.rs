//! The four phases, run from wherever the journal says the execution is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;

use super::backup::forensic_backup;
use super::temp_table::{delete_if_ours, restore_temp_table};
use super::*;
use crate::error::{Error, Result};
use crate::execution::{self, Recorder};
use crate::journal::{Execution, Mode, Phase, Scope};
use crate::machine::{self, Step, Work};
use crate::table::{self, TableInfo};
use crate::targeted::WindowInputs;

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
    report(plan, &exec, started.elapsed())
}

/// Steps the machine from wherever the record says the execution is, until it is done.
async fn run_phases(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let mut work = None;
    loop {
        let exec = rec.snapshot().await;
        match machine::next_step(&exec) {
            Step::PhaseOne => phase_one(client, plan, rec).await?,
            Step::CleanUp => clean_up(client, plan, rec).await?,
            Step::Done => return Ok(()),
            step => {
                if work.is_none() {
                    tracing::info!(dest = %plan.dest.name, scope = plan.request.scope.as_str(), "phase 2: {}", plan.request.scope.describe());
                    work = Some(plan_work(client, plan, rec).await?);
                }
                let work = work.as_ref().expect("made above");
                execution::run_step(client, work, step, &plan.request.sync, rec).await?;
            }
        }
    }
}

/// What the data phases work on: the temporary table, the table put back, the record's choices
/// and the keys file as read here.
pub async fn plan_work(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<Work> {
    let exec = rec.snapshot().await;
    // A window restores no table: its targets are in the export.
    let (restored, window) = match &plan.request.scope {
        Scope::Window { .. } => {
            let s3 = plan.s3.clone().ok_or_else(|| Error::BadState {
                what: "a window restore".into(),
                state: "planned without an S3 client".into(),
                hint: "this is a bug, report it".into(),
            })?;
            let exports = exec.resources.exports.clone();
            (plan.dest.clone(), Some(WindowInputs { s3, exports }))
        }
        _ => (restored_table(client, plan).await?, None),
    };
    Ok(Work::new(
        &restored,
        &plan.dest,
        &exec.inputs,
        rec.key_digest(),
        plan.keys.clone(),
    )?
    .with_window(window))
}

/// The temporary table, which must still exist after phase 1.
pub async fn restored_table(client: &Client, plan: &Plan) -> Result<TableInfo> {
    let temp = &plan.request.names.temp_table;
    table::describe(client, temp)
        .await?
        .ok_or_else(|| Error::BadState {
            what: format!("temporary table {temp}"),
            state: "missing".into(),
            hint: "it was deleted while the run was stopped; start again with a new incident id"
                .into(),
        })
}

/// Phase 1, when the record is there: the forensic backup and the restore into the temporary
/// table, concurrently; then the record enters the delete phase.
pub async fn phase_one(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let req = &plan.request;
    if rec.snapshot().await.phase == Phase::BackupAndRestore {
        rec.check_lease().await?;
        tracing::info!(execution = %req.names.execution_id, table = %plan.dest.name, "phase 1: forensic backup and restore to temporary table");
        prewarm(client, plan, rec).await?;
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
        let backup = async {
            // The copy starts after phase one: the pre-warm has until then to take effect.
            let warmed = async {
                match req.prewarm {
                    Some(units) => crate::warm::warmed(client, &plan.dest.name, units).await,
                    None => Ok(()),
                }
            };
            tokio::try_join!(backup, warmed).map(|_| ())
        };
        if let Scope::Window { from, .. } = &req.scope {
            tokio::try_join!(backup, super::window::exports(client, plan, rec))?;
            rec.update(|e| {
                e.resources.restored_to = Some(*from);
                e.enter(Phase::Delete);
            })
            .await?;
            return Ok(());
        }
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
    Ok(())
}

/// `--prewarm`: the live table's warm write throughput raised before anything else of phase
/// one starts, so that DynamoDB's refusal (a quota, say) comes before any backup or restore.
async fn prewarm(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let Some(units) = plan.request.prewarm else {
        return Ok(());
    };
    let table = &plan.dest.name;
    let short = crate::warm::prewarm(client, table, units).await?;
    let event = match short.as_slice() {
        [] => format!("pre-warm: {table} already serves {units} write units/s at once"),
        parts => format!(
            "pre-warm: asked DynamoDB to raise {} of {table} to {units} write units/s (charged \
             once; it cannot be lowered again)",
            parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    tracing::info!(table = %table, units, "{event}");
    rec.update(|e| e.event(event)).await
}

/// Phase 4, when the record is there: the temporary table deleted if it is provably ours (or
/// kept), then the record enters done.
pub async fn clean_up(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let req = &plan.request;
    if rec.snapshot().await.phase == Phase::CleanUp {
        tracing::info!("phase 4: clean-up");
        let fate = if matches!(req.scope, Scope::Window { .. }) {
            TempTableFate::NotCreated
        } else if req.keep_restored_table {
            TempTableFate::Kept
        } else {
            rec.check_lease().await?;
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
            e.resources.temp_table_fate = Some(fate);
            e.event(format!("temporary table {}", fate.as_str()));
            e.enter(Phase::Done);
        })
        .await?;
    }
    Ok(())
}

fn report(plan: &Plan, exec: &Execution, duration: Duration) -> Result<RestoreReport> {
    let span = |p: &crate::journal::PhaseProgress| match (p.started_at, p.finished_at) {
        (Some(a), Some(b)) => Duration::try_from(b.duration_since(a)).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let fate = exec
        .resources
        .temp_table_fate
        .ok_or_else(|| Error::BadState {
            what: format!("execution {}", exec.id),
            state: "done, with no fate recorded for its temporary table".into(),
            hint: "the journal is damaged; inspect the record".into(),
        })?;
    Ok(RestoreReport {
        execution_id: exec.id.clone(),
        table: plan.dest.name.clone(),
        restored_table: plan.request.names.temp_table.clone(),
        restored_table_fate: fate,
        backup_arn: exec.resources.backup_arn.clone().unwrap_or_default(),
        restored_to: exec.resources.restored_to,
        source: plan.request.source.clone(),
        sync: SyncReport {
            // A targeted phase's pages count the keys it looked at; its writes are counted apart.
            deleted_items: match exec.inputs.mode() {
                Mode::Targeted(_) => exec.targeted.deletes,
                Mode::Table(_) => exec.delete.items(),
            },
            copied_items: match exec.inputs.mode() {
                Mode::Targeted(_) => exec.targeted.puts,
                Mode::Table(_) => exec.copy.items(),
            },
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
        scope: exec.inputs.scope.clone(),
        read_units: exec.units().0,
        write_units: exec.units().1,
        rewritten_pages: exec.rewritten_pages(),
        duration,
    })
}
