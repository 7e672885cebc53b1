//! One restore, or several to one instant: every table is checked before any is touched, the
//! caller has the operator confirm them together, every lease is taken before any record is
//! written, and then they run concurrently, each its own resumable execution, with one incident
//! report.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

use super::{Plan, RestoreReport, RestoreRequest};
use crate::error::{Error, ExitStatus, Result};
use crate::execution::Recorder;
use crate::journal::{Execution, Inputs, Journal, Kind, Phase, Strategy, lease};
use crate::lifecycle::{self, Start};
use crate::options::{self, RunOptions};
use crate::session::Session;
use crate::sync::SyncOptions;

/// A restore that passed every check and waits for the operator's go.
pub struct Prepared {
    pub plan: Plan,
    pub inputs: Inputs,
    pub existing: Option<Execution>,
    notes: Vec<String>,
}

/// Every table checked, read-only; nothing is created, taken or journaled yet.
pub struct Checked {
    pub client: Client,
    pub journal: Arc<dyn Journal>,
    pub prepared: Vec<Prepared>,
    incident: String,
}

/// One table's outcome: its execution id, its table, and its report or why it failed.
pub type Outcome = (String, String, Result<RestoreReport>);

/// The checks that need AWS and the journal, all read-only: recovery mode, an earlier execution
/// of the same id, the table, the source and the names.
async fn prepare(
    session: &Session,
    (client, lambda): (&Client, &aws_sdk_lambda::Client),
    journal: &dyn Journal,
    request: RestoreRequest,
    run: RunOptions,
) -> Result<Prepared> {
    let mode = crate::journal::Mode::of(&request.scope, Strategy::default());
    // A targeted scope's note is written once preflight has read its inputs.
    let mut notes: Vec<String> = if !mode.needs_recovery_mode() {
        Vec::new()
    } else {
        lifecycle::recovery_mode_guard(session, journal, &request.table, run)
            .await?
            .into_iter()
            .collect()
    };
    let mut inputs = Inputs {
        table: request.table.clone(),
        incident_id: Some(request.incident.clone()),
        source: (&request.source).into(),
        segments: request.sync.segments,
        keep_restored_table: request.keep_restored_table,
        verify: !run.no_verify,
        strategy: Strategy::default(),
        sensitive: request.sensitive,
        forensic_backup: request.forensic_backup,
        scope: request.scope.clone(),
        prewarm: request.prewarm,
    };
    // With the checkpoints segment workers in AWS wrote apart from the record.
    let existing = match journal.load(&request.names.execution_id).await? {
        Some(e) => Some(crate::journal::merged(journal, e).await?),
        None => None,
    };
    lifecycle::check_existing(&existing, Kind::Restore, &inputs, journal)?;
    // Checkpoints belong to the recorded segment count and choices.
    let request = match &existing {
        Some(e) => RestoreRequest {
            keep_restored_table: e.inputs.keep_restored_table,
            // The recorded hash: preflight refuses a keys file changed since.
            scope: e.inputs.scope.clone(),
            prewarm: e.inputs.prewarm,
            sync: SyncOptions {
                segments: e.inputs.segments,
                ..request.sync
            },
            ..request
        },
        None => request,
    };
    let mut plan = super::preflight((client, &session.aws), request, existing.is_some()).await?;
    plan.watchers = crate::watchers::describe(client, lambda, &plan.dest).await?;
    session.mark_end_policies(&plan.dest.name, &mut plan.watchers)?;
    plan.strategy = options::strategy(existing.as_ref(), run, &plan.dest, &plan.watchers)?;
    inputs.strategy = plan.strategy.0;
    inputs.scope = plan.request.scope.clone();
    // The count preflight chose (from the table's size, when none was asked for) is the one
    // the run's checkpoints belong to.
    inputs.segments = plan.request.sync.segments;
    if let Some(scope) = inputs.mode().targeted() {
        notes.push(format!(
            "scope {}: targeted writes touch no other item, so recovery mode is not required",
            scope.describe()
        ));
    }
    notes.push(plan.watchers.sentence(&plan.dest));
    notes.push(format!(
        "strategy {} ({})",
        plan.strategy.0.as_str(),
        plan.strategy.1
    ));
    Ok(Prepared {
        plan,
        inputs,
        existing,
        notes,
    })
}

/// Checks every table; refuses them all, each with its reason, if any is refused.
pub async fn check_all(
    session: &Session,
    requests: Vec<RestoreRequest>,
    run: RunOptions,
) -> Result<Checked> {
    let (client, journal) = session.open().await?;
    let lambda = crate::aws::lambda_client(&session.aws).await;
    let incident = requests
        .first()
        .map(|r| r.incident.clone())
        .unwrap_or_default();
    let total = requests.len();
    let checked = futures_util::future::join_all(requests.into_iter().map(|r| {
        let (clients, journal) = ((&client, &lambda), journal.as_ref());
        async move {
            let table = r.table.clone();
            (table, prepare(session, clients, journal, r, run).await)
        }
    }))
    .await;
    let mut prepared = Vec::new();
    let mut refused = Vec::new();
    for (table, outcome) in checked {
        match outcome {
            Ok(p) => prepared.push(p),
            Err(e) => refused.push((table, e)),
        }
    }
    if !refused.is_empty() {
        return Err(refusal(refused, total));
    }
    Ok(Checked {
        client,
        journal,
        prepared,
        incident,
    })
}

async fn release(leases: Vec<(lease::LeaseGuard, Option<String>)>) {
    for (guard, _) in leases {
        let _ = guard.release().await;
    }
}

type Held = (lease::LeaseGuard, Option<String>);
type Keys = (
    Option<crate::journal::seal::JournalKey>,
    Option<crate::journal::WrappedKey>,
);

/// Every table's lease, then every sealing key; on any failure every lease taken is released.
async fn leases_and_keys(
    session: &Session,
    journal: &Arc<dyn Journal>,
    prepared: &[Prepared],
    run: RunOptions,
) -> Result<(Vec<Held>, Vec<Keys>)> {
    let mut leases = Vec::new();
    for p in prepared {
        let id = &p.plan.request.names.execution_id;
        let timing = lease::Timing::cli(session.aws.attempt_timeout());
        let taken = lease::acquire(
            journal.clone(),
            &p.plan.dest.name,
            id,
            run.break_lock,
            timing,
        );
        match taken.await {
            Ok(held) => leases.push(held),
            Err(e) => {
                release(leases).await;
                return Err(e);
            }
        }
    }
    let mut keys = Vec::new();
    for p in prepared {
        let id = &p.plan.request.names.execution_id;
        match session
            .execution_key(p.existing.as_ref(), p.inputs.sensitive, id, &p.inputs.table)
            .await
        {
            Ok(k) => keys.push(k),
            Err(e) => {
                release(leases).await;
                return Err(e);
            }
        }
    }
    Ok((leases, keys))
}

/// Runs the confirmed restores: every lease first, then every key, then all of them at once,
/// then the incident report (an error there is returned beside the outcomes, which stand).
pub async fn run_all(
    session: &Session,
    checked: Checked,
    run: RunOptions,
    report_dir: &std::path::Path,
) -> Result<(Vec<Outcome>, Result<crate::report::Written>)> {
    let Checked {
        client,
        journal,
        prepared,
        incident,
    } = checked;
    let (leases, keys) = leases_and_keys(session, &journal, &prepared, run).await?;
    let identity = crate::aws::caller_identity(&session.aws).await;
    if let Err(e) = &identity {
        tracing::warn!("{e}; the journal records the local user only");
    }
    let runs = prepared
        .into_iter()
        .zip(leases)
        .zip(keys)
        .map(|((p, lease), (key, data_key))| {
            let start = Start {
                journal: journal.clone(),
                existing: p.existing,
                lease,
                notes: p.notes,
                key,
                data_key,
                identity: identity.clone(),
                recovery_env: lifecycle::guarded_environment(session, &p.plan.dest.name, run),
            };
            let client = &client;
            async move {
                let plan = p.plan;
                let (id, table) = (
                    plan.request.names.execution_id.clone(),
                    plan.dest.name.clone(),
                );
                let fresh =
                    || Execution::new(id.clone(), Kind::Restore, p.inputs, Phase::BackupAndRestore);
                let outcome = lifecycle::journaled(start, fresh, |rec| async move {
                    super::execute(client, &plan, &rec).await
                })
                .await
                .map(|(report, _)| report);
                (id, table, outcome)
            }
        });
    let results = futures_util::future::join_all(runs).await;
    let report = lifecycle::write_report(
        session,
        journal.as_ref(),
        &incident,
        report_dir,
        Some(identity),
    )
    .await;
    Ok((results, report))
}

/// Writes one checked restore's start record under its execution's lease and runs nothing: the
/// state machines' workers advance it ([`crate::worker`]). The lease stays with the recorder.
/// `deadline` is the invocation's: the lease records it, so that a take-over knows when the
/// worker can no longer write.
pub async fn record_start(
    session: &Session,
    checked: Checked,
    deadline: jiff::Timestamp,
) -> Result<Arc<Recorder>> {
    let Checked {
        journal, prepared, ..
    } = checked;
    let Some(p) = prepared.into_iter().next() else {
        return Err(Error::invalid("table", "no table to restore"));
    };
    let id = p.plan.request.names.execution_id.clone();
    let held = lease::hold_for_execution(
        journal.clone(),
        &p.plan.dest.name,
        &id,
        lease::Timing::execution(session.aws.attempt_timeout(), Some(deadline)),
    )
    .await?;
    let (key, data_key) = match session
        .execution_key(
            p.existing.as_ref(),
            p.inputs.sensitive,
            &id,
            &p.inputs.table,
        )
        .await
    {
        Ok(k) => k,
        Err(e) => {
            held.0.detach();
            return Err(e);
        }
    };
    let start = Start {
        journal,
        existing: p.existing,
        lease: held,
        notes: p.notes,
        key,
        data_key,
        identity: crate::aws::caller_identity(&session.aws).await,
        recovery_env: lifecycle::guarded_environment(
            session,
            &p.plan.dest.name,
            RunOptions::default(),
        ),
    };
    let inputs = p.inputs;
    lifecycle::begin(start, || {
        Execution::new(id.clone(), Kind::Restore, inputs, Phase::BackupAndRestore)
    })
    .await
}

/// The error a set of outcomes ends with, if any failed.
pub fn outcome(results: Vec<Outcome>) -> Result<()> {
    let total = results.len();
    let failed: Vec<(String, String, Error)> = results
        .into_iter()
        .filter_map(|(id, table, r)| r.err().map(|e| (id, table, e)))
        .collect();
    match (total, failed.len()) {
        (_, 0) => Ok(()),
        (1, _) => Err(failed
            .into_iter()
            .map(|(_, _, e)| e)
            .next()
            .unwrap_or(Error::Interrupted)),
        (_, n) => Err(several_failed(failed, n, total)),
    }
}

/// Why a multi-table restore did not start: each refused table and its reason.
pub fn refusal(refused: Vec<(String, Error)>, total: usize) -> Error {
    if total == 1 {
        if let Some((_, e)) = refused.into_iter().next() {
            return e;
        }
        return Error::Interrupted;
    }
    let all_input = refused
        .iter()
        .all(|(_, e)| e.exit_status() == ExitStatus::Refused);
    let lines: String = refused
        .iter()
        .map(|(t, e)| format!("\n  {t}: {e}"))
        .collect();
    let message = format!(
        "{} of {total} tables cannot be restored, so none was touched:{lines}\nFix what is listed \
         and run again. A table whose execution already exists continues on its own with \
         `dynamo-dr resume <incident>.<table>`",
        refused.len()
    );
    if all_input {
        Error::invalid("tables", message)
    } else {
        Error::Incomplete(message)
    }
}

fn several_failed(failed: Vec<(String, String, Error)>, n: usize, total: usize) -> Error {
    // A failure to resume outranks a verification difference: both need the operator.
    let status = if failed
        .iter()
        .all(|(_, _, e)| e.exit_status() == ExitStatus::Mismatch)
    {
        ExitStatus::Mismatch
    } else {
        ExitStatus::Failed
    };
    let lines: String = failed
        .iter()
        .map(|(id, t, e)| format!("\n  {t}: {e}\n    then: dynamo-dr resume {id}"))
        .collect();
    Error::Tables {
        message: format!("{n} of {total} tables were not recovered:{lines}"),
        status,
    }
}
