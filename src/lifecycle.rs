//! How every journaled run starts and ends, whatever it runs: the checks of an earlier record
//! and of recovery mode, the start record under the held lease, Ctrl-C, the outcome record and
//! the incident report.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::execution::Recorder;
use crate::journal::lease::LeaseGuard;
use crate::journal::seal::JournalKey;
use crate::journal::{self, Execution, Inputs, Journal, Kind, Status};
use crate::options::RunOptions;
use crate::session::Session;
use crate::validate;

/// An earlier record with this id: resumable, or a reason to refuse.
pub fn check_existing(
    existing: &Option<Execution>,
    kind: Kind,
    inputs: &Inputs,
    journal: &dyn Journal,
) -> Result<()> {
    let Some(e) = existing else { return Ok(()) };
    if e.status == Status::Succeeded {
        return Err(Error::invalid(
            "incident id",
            format!(
                "execution {} already succeeded at {} (journal {}); to run again use a new incident id",
                e.id,
                crate::validate::time_text(e.updated_at),
                journal.describe()
            ),
        ));
    }
    if e.kind != kind
        || (&e.inputs.table, &e.inputs.incident_id, &e.inputs.source)
            != (&inputs.table, &inputs.incident_id, &inputs.source)
        || !e.inputs.scope.same_request(&inputs.scope)
    {
        return Err(Error::invalid(
            "incident id",
            format!(
                "execution {} exists with other inputs (table {}, source {}, scope {}); resume \
                 it with `dynamo-dr resume {}`, or use a new incident id",
                e.id,
                e.inputs.table,
                e.inputs.source,
                e.inputs.scope.as_str(),
                e.id
            ),
        ));
    }
    Ok(())
}

/// The restore guard: a table tied to an environment is restored only while that environment's
/// recovery mode is on. Returns a sentence for the journal when the operator overrides it.
pub async fn recovery_mode_guard(
    session: &Session,
    journal: &dyn Journal,
    table: &str,
    run: RunOptions,
) -> Result<Option<String>> {
    let Some(env) = session.config.environment_of(table) else {
        return Ok(None);
    };
    let on = journal
        .load_recovery_mode(&env)
        .await?
        .is_some_and(|r| r.is_on());
    if on {
        return Ok(None);
    }
    if run.allow_live_traffic {
        let note = format!(
            "LIVE TRAFFIC ALLOWED: recovery mode is not on for environment {env}; the application may write to {table} during the run (--allow-live-traffic)"
        );
        tracing::warn!("{note}");
        return Ok(Some(note));
    }
    Err(Error::invalid(
        "recovery mode",
        format!(
            "{table} belongs to environment {env}, whose recovery mode is not on, so the application could \
             write to it during the run. Start it with `dynamo-dr recovery-mode start --environment {env}`, \
             or pass --allow-live-traffic to run anyway"
        ),
    ))
}

/// How a journaled run starts: the journal, the record to resume (if any), the lease already
/// taken, notes for the trail, the sealing key and the AWS principal.
pub struct Start {
    pub journal: Arc<dyn Journal>,
    pub existing: Option<Execution>,
    pub lease: (LeaseGuard, Option<String>),
    pub notes: Vec<String>,
    pub key: Option<JournalKey>,
    /// A new execution's journal key from KMS, wrapped, to store in its record.
    pub data_key: Option<journal::WrappedKey>,
    pub identity: std::result::Result<journal::AwsIdentity, String>,
    /// The environment whose recovery mode must be on, checked again under the lease (`None`:
    /// the table has none, or `--allow-live-traffic`).
    pub recovery_env: Option<String>,
}

/// The environment whose recovery mode a run of `table` needs, unless the operator allowed live
/// traffic.
pub fn guarded_environment(session: &Session, table: &str, run: RunOptions) -> Option<String> {
    session
        .config
        .environment_of(table)
        .filter(|_| !run.allow_live_traffic)
}

/// Checked again under the lease: `recovery-mode end` saves Ending before it looks for leases,
/// so one of the two always sees the other.
async fn still_in_recovery_mode(journal: &dyn Journal, env: Option<&str>) -> Result<()> {
    let Some(env) = env else {
        return Ok(());
    };
    if journal
        .load_recovery_mode(env)
        .await?
        .is_some_and(|r| r.is_on())
    {
        return Ok(());
    }
    Err(Error::invalid(
        "recovery mode",
        format!(
            "recovery mode of environment {env} ended while this run was starting, so the \
             application may write to the table; nothing was changed. Start it again \
             (`dynamo-dr recovery-mode start --environment {env}`), then run again"
        ),
    ))
}

/// Who starts or resumes the run, in its events and principals.
fn record_operator(
    exec: &mut Execution,
    identity: std::result::Result<journal::AwsIdentity, String>,
) {
    let me = journal::Operator::current();
    let principal = match &identity {
        Ok(id) => format!(" as {}", id.arn),
        Err(_) => String::new(),
    };
    if exec.events.len() > 1 || exec.status != Status::Running {
        exec.event(format!(
            "resumed by {}@{} (pid {}){principal} at phase {}",
            me.user,
            me.host,
            me.pid,
            exec.phase.as_str()
        ));
    } else {
        exec.event(format!(
            "started by {}@{} (pid {}){principal}: table {}, source {}, segments {}",
            me.user, me.host, me.pid, exec.inputs.table, exec.inputs.source, exec.inputs.segments
        ));
    }
    exec.principals.push(journal::Principal {
        at: jiff::Timestamp::now(),
        operator: me,
        aws: identity.as_ref().ok().cloned(),
        aws_error: identity.err(),
    });
}

/// Writes the start (or resume) into the journal under the held lease, and returns the recorder.
pub async fn begin(start: Start, fresh: impl FnOnce() -> Execution) -> Result<Arc<Recorder>> {
    let Start {
        journal,
        existing,
        lease: (guard, note),
        notes,
        key,
        data_key,
        identity,
        recovery_env,
    } = start;
    if let Err(e) = still_in_recovery_mode(journal.as_ref(), recovery_env.as_deref()).await {
        let _ = guard.release().await;
        return Err(e);
    }
    // Read again under the lease: a displaced writer may have saved it since it was checked.
    let latest = match &existing {
        Some(e) => match journal.load(&e.id).await {
            Ok(Some(now)) => Some(fenced(journal.as_ref(), now).await),
            Ok(None) => None,
            Err(err) => Some(Err(err)),
        },
        None => None,
    };
    let mut exec = match latest {
        Some(Ok(now)) => now,
        Some(Err(e)) => {
            let _ = guard.release().await;
            return Err(e);
        }
        None => existing.unwrap_or_else(fresh),
    };
    if data_key.is_some() {
        exec.data_key = data_key;
    }
    record_operator(&mut exec, identity);
    for n in note.into_iter().chain(notes) {
        exec.event(n);
    }
    exec.status = Status::Running;
    if let Err(e) = journal.save(&mut exec).await {
        let _ = guard.release().await;
        return Err(e);
    }
    Ok(Arc::new(Recorder::new(journal, exec, Some(guard), key)))
}

/// The record with its segment workers' checkpoints, read after fencing their records: a worker
/// still running can save none after the read, so no page it acknowledges is left out.
async fn fenced(journal: &dyn Journal, exec: Execution) -> Result<Execution> {
    journal::fence_segments(journal, &exec).await?;
    journal::merged(journal, exec).await
}

/// Runs `work` as a journaled execution: start record, Ctrl-C handling, outcome record.
pub async fn journaled<T, Fut>(
    start: Start,
    fresh: impl FnOnce() -> Execution,
    work: impl FnOnce(Arc<Recorder>) -> Fut,
) -> Result<(T, Execution)>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let rec = begin(start, fresh).await?;
    let id = rec.snapshot().await.id;
    let result = interruptible(work(rec.clone())).await.map_err(|e| match e {
        Error::Interrupted => Error::PhaseFailed {
            phase: "the run",
            state: format!("the journal holds the checkpoints; `dynamo-dr resume {id}` continues"),
            source: Box::new(Error::Interrupted),
        },
        other => other,
    });
    let exec = rec.finish(result.as_ref().err()).await?;
    Ok((result?, exec))
}

/// Stops the work on Ctrl-C with a clear error instead of a silent kill.
async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}

/// The names a restore derives, except those its record already holds (a record written by an
/// older version derived other names; provenance checks still decide what is ours).
pub fn recorded_names(exec: &Execution, incident: &str) -> Result<validate::Names> {
    let mut names = validate::names(&exec.inputs.table, incident)?;
    let r = &exec.resources;
    if let Some(t) = r.temp_table.clone() {
        names.temp_table = t;
    }
    if let Some(b) = r.backup_name.clone() {
        names.backup = b;
    }
    Ok(names)
}

/// Builds the report of `id` from the journal and writes it; `identity` is the caller's, if
/// already known (else STS is asked once the id is known to exist).
pub async fn write_report(
    session: &Session,
    journal: &dyn Journal,
    id: &str,
    dir: &std::path::Path,
    identity: Option<std::result::Result<journal::AwsIdentity, String>>,
) -> Result<crate::report::Written> {
    let executions = crate::report::executions(journal, id).await?;
    let identity = match identity {
        Some(known) => known,
        None => crate::aws::caller_identity(&session.aws).await,
    };
    let by = journal::Principal {
        at: jiff::Timestamp::now(),
        operator: journal::Operator::current(),
        aws: identity.as_ref().ok().cloned(),
        aws_error: identity.err(),
    };
    let report = crate::report::build(journal, &session.config, id, executions, by).await?;
    crate::report::write(&report, dir)
}
