//! One step of a restore, for the state machines `stack` writes: each Lambda invocation is one
//! [`Action`], advances the execution for as long as its deadline allows, checkpoints in the
//! journal, and answers with an [`Answer`] the state machine routes on. The checks, guard rails,
//! refusals and journal are the CLI's own: `start` runs the same preflight as `dynamo-dr
//! restore`, so an execution started in AWS can be inspected, resumed or reported from the CLI,
//! and the reverse.
//!
//! - `start` checks the seed's payload and writes the start record under the execution's lease.
//! - `advance` runs phase 1 (the backup and the restore, answering `wait` while AWS works), then
//!   after the child the check and the clean-up.
//! - `phase` (the child's first state) gives the current sync phase and its unfinished segments,
//!   folding the segments' own records into the execution's when a phase is complete.
//! - `segment` advances one segment from its checkpoint until it is done or the deadline is
//!   near; its checkpoints go into the segment's own journal item, so many run at once.
//! - `recovery-mode` starts or ends an environment's recovery mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::execution::{self, Recorder};
use crate::journal::lease::{self, LeaseGuard, Timing};
use crate::journal::{self, Execution, Journal, Phase, SegmentCheckpoint, Status};
use crate::machine::{self, Step};
use crate::options::{self, BACKUP_DEADLINE, RESTORE_TIMEOUT_MINUTES, RunOptions};
use crate::restore::{self, job};
use crate::session::Session;
use crate::{lifecycle, recovery_mode};

mod request;
mod segment;
use request::{recorded_request, seed_request};
use segment::segment_step;

/// How long phase 1 looks at the backup and the restore in one invocation before it answers
/// `wait`: a quick restore finishes in one go, a long one costs a few seconds per look.
pub const POLL_WINDOW: Duration = Duration::from_secs(20);
/// The Wait state between two looks.
pub const WAIT_SECONDS: u64 = 30;

/// What the state machine asks of one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// The parent's first state: `table` is the logical name, `input` the seed's payload.
    Start {
        table: String,
        input: serde_json::Value,
    },
    #[serde(rename_all = "camelCase")]
    Advance {
        execution_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Phase {
        execution_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Segment {
        execution_id: String,
        /// `delete` or `copy`: the phases with segments.
        phase: Phase,
        segment: u32,
    },
    RecoveryMode {
        environment: String,
        change: Change,
    },
}

/// A change of recovery mode the state machine asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Start,
    End,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Start => "start",
            Change::End => "end",
        }
    }
}

impl Action {
    /// The payload as a Task sends it; anything else is refused with the valid forms.
    pub fn parse(payload: serde_json::Value) -> Result<Action> {
        serde_json::from_value(payload).map_err(|e| {
            Error::invalid(
                "payload",
                format!(
                    "{e}; the handler takes {{\"action\": \"start\", \"table\": LOGICAL, \"input\": \
                     {{\"incidentId\", \"pitrBackupTime\", \"tableNameRecoveryConfirmation\"}}}}, \
                     {{\"action\": \"advance\" | \"phase\", \"executionId\"}}, {{\"action\": \
                     \"segment\", \"executionId\", \"phase\", \"segment\"}} or {{\"action\": \
                     \"recovery-mode\", \"environment\", \"change\": \"start\" | \"end\"}}, as the \
                     state machines of `dynamo-dr stack` send them"
                ),
            )
        })
    }
}

/// What the state machine does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Next {
    /// Wait `waitSeconds`, then ask again.
    Wait,
    /// Ask again (or, from `phase`, run the segments).
    Continue,
    Done,
}

/// An invocation's answer; every field is always present, as the Tasks' `ResultSelector`s need.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub execution_id: String,
    pub phase: String,
    pub state: Next,
    pub wait_seconds: u64,
    /// From `phase`: the segments the Map runs.
    pub segments: Vec<u32>,
    /// From `segment`: the segment advanced.
    pub segment: Option<u32>,
    /// Items the phase (or the segment) has written so far.
    pub items: u64,
    pub detail: String,
    /// What a segment invocation did, logged by the function as an embedded-metric line.
    #[serde(skip)]
    pub metrics: Option<crate::emf::WorkerMetrics>,
}

impl Answer {
    fn of(exec: &Execution, state: Next, detail: impl Into<String>) -> Answer {
        Answer {
            execution_id: exec.id.clone(),
            phase: exec.phase.as_str().to_string(),
            state,
            wait_seconds: 0,
            segments: Vec::new(),
            segment: None,
            items: exec.progress(exec.phase).map_or(0, |p| p.items()),
            detail: detail.into(),
            metrics: None,
        }
    }
}

/// What a function is for, from its environment (`DYNAMO_DR_ROLE`, written by `dynamo-dr
/// stack`): it refuses every other action, and every other table's executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The worker of one table, by its logical name in the config.
    Table(String),
    /// The recovery mode of one environment.
    RecoveryMode(String),
}

impl Role {
    /// `table:LOGICAL` or `recovery-mode:ENVIRONMENT`.
    pub fn parse(text: &str) -> Result<Role> {
        match text.split_once(':') {
            Some(("table", t)) if !t.is_empty() => Ok(Role::Table(t.to_string())),
            Some(("recovery-mode", e)) if !e.is_empty() => Ok(Role::RecoveryMode(e.to_string())),
            _ => Err(Error::invalid(
                "DYNAMO_DR_ROLE",
                format!(
                    "{text:?} is not a function's role; give table:LOGICAL (a table's worker) or \
                     recovery-mode:ENVIRONMENT, as `dynamo-dr stack` writes it"
                ),
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Role::Table(t) => format!("the worker of table {t}"),
            Role::RecoveryMode(e) => format!("the recovery-mode function of environment {e}"),
        }
    }

    fn refuse(&self, what: String) -> Error {
        Error::invalid(
            "action",
            format!(
                "this function is {}, so it does not take {what}; send it to the function that \
                 `dynamo-dr stack` made for that",
                self.describe()
            ),
        )
    }

    /// Refuses an action that is not this function's, before anything is read or written.
    fn admit(&self, action: &Action) -> Result<()> {
        match (self, action) {
            (Role::Table(mine), Action::Start { table, .. }) if table != mine => {
                Err(self.refuse(format!("a start of table {table}")))
            }
            (Role::Table(_), Action::RecoveryMode { environment, .. }) => {
                Err(self.refuse(format!("a recovery-mode change of {environment}")))
            }
            (Role::Table(_), _) => Ok(()),
            (Role::RecoveryMode(mine), Action::RecoveryMode { environment, .. })
                if environment == mine =>
            {
                Ok(())
            }
            (Role::RecoveryMode(_), Action::RecoveryMode { environment, .. }) => {
                Err(self.refuse(format!("a recovery-mode change of {environment}")))
            }
            (Role::RecoveryMode(_), _) => Err(self.refuse("a table's restore actions".into())),
        }
    }

    /// Refuses an execution of another table than this function's.
    fn owns(&self, session: &Session, exec: &Execution) -> Result<()> {
        let Role::Table(logical) = self else {
            return Err(self.refuse(format!("execution {}", exec.id)));
        };
        let mine = session.config.resolve("table", logical)?.physical;
        if exec.inputs.table != mine {
            return Err(self.refuse(format!(
                "execution {} of table {}",
                exec.id, exec.inputs.table
            )));
        }
        Ok(())
    }
}

/// One invocation's time: it stops `margin` before `deadline`, checkpointed.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub deadline: Instant,
    pub margin: Duration,
    /// The Lambda request id, recorded with each segment checkpoint.
    pub worker: String,
    /// The function's role.
    pub role: Role,
}

impl Invocation {
    fn stop_at(&self) -> Instant {
        self.deadline
            .checked_sub(self.margin)
            .unwrap_or_else(Instant::now)
    }

    /// The deadline as a time another machine can read: Lambda stops the invocation there.
    fn deadline_at(&self) -> jiff::Timestamp {
        let left = self.deadline.saturating_duration_since(Instant::now());
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::try_from(left).unwrap_or_default())
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }

    /// The timing of the execution's lease, held by this invocation until its deadline.
    fn timing(&self, session: &Session) -> Timing {
        Timing::execution(session.aws.attempt_timeout(), Some(self.deadline_at()))
    }
}

/// Runs one action, if it is this function's.
pub async fn handle(session: &Session, action: Action, inv: &Invocation) -> Result<Answer> {
    inv.role.admit(&action)?;
    match action {
        Action::Start { table, input } => start(session, &table, input, inv).await,
        Action::Advance { execution_id } => advance(session, &execution_id, inv).await,
        Action::Phase { execution_id } => phase(session, &execution_id, inv).await,
        Action::Segment {
            execution_id,
            phase,
            segment,
        } => segment_step(session, &execution_id, phase, segment, inv).await,
        Action::RecoveryMode {
            environment,
            change,
        } => recovery(session, &environment, change, inv).await,
    }
}

async fn start(
    session: &Session,
    logical: &str,
    input: serde_json::Value,
    inv: &Invocation,
) -> Result<Answer> {
    let request = seed_request(session, logical, input)?;
    let checked = job::check_all(session, vec![request], RunOptions::default()).await?;
    let rec = job::record_start(session, checked, inv.deadline_at()).await?;
    rec.detach_lease();
    let exec = rec.snapshot().await;
    tracing::info!(execution = %exec.id, phase = exec.phase.as_str(), "started");
    Ok(Answer::of(&exec, Next::Continue, "started"))
}

/// The execution `id`, if it is this function's table's; refused before anything is written.
async fn load(
    session: &Session,
    journal: &dyn Journal,
    id: &str,
    inv: &Invocation,
) -> Result<Execution> {
    let exec = journal.load(id).await?.ok_or_else(|| {
        Error::invalid(
            "executionId",
            format!(
                "no execution {id} in the journal {}; a state machine's `start` writes it",
                journal.describe()
            ),
        )
    })?;
    inv.role.owns(session, &exec)?;
    Ok(exec)
}

/// The restore guard again, for a step that writes: recovery mode may have ended since the
/// execution started, and then the application writes beside it.
async fn still_recovering(
    session: &Session,
    journal: &dyn Journal,
    exec: &Execution,
) -> Result<()> {
    // An execution the operator started with --allow-live-traffic keeps that choice.
    let allowed = exec
        .events
        .iter()
        .any(|e| e.what.starts_with("LIVE TRAFFIC ALLOWED"));
    let run = RunOptions {
        allow_live_traffic: allowed,
        ..RunOptions::default()
    };
    lifecycle::recovery_mode_guard(session, journal, &exec.inputs.table, run)
        .await
        .map(|_| ())
}

/// A recorder of `exec` under the execution's lease, with its sealing key; no event is added,
/// so many invocations do not grow the record.
async fn recorder(
    session: &Session,
    journal: &Arc<dyn Journal>,
    exec: Execution,
    inv: &Invocation,
) -> Result<Arc<Recorder>> {
    let (guard, note) = hold(session, journal, &exec, inv).await?;
    let (key, _) = match session
        .execution_key(
            Some(&exec),
            exec.inputs.sensitive,
            &exec.id,
            &exec.inputs.table,
        )
        .await
    {
        Ok(k) => k,
        Err(e) => {
            guard.detach();
            return Err(e);
        }
    };
    let rec = Arc::new(Recorder::new(journal.clone(), exec, Some(guard), key));
    if let Some(n) = note
        && let Err(e) = rec.update(|e| e.event(n)).await
    {
        rec.detach_lease();
        return Err(e);
    }
    Ok(rec)
}

async fn hold(
    session: &Session,
    journal: &Arc<dyn Journal>,
    exec: &Execution,
    inv: &Invocation,
) -> Result<(LeaseGuard, Option<String>)> {
    lease::hold_for_execution(
        journal.clone(),
        &exec.inputs.table,
        &exec.id,
        inv.timing(session),
    )
    .await
}

/// The end of an execution in this invocation: the outcome recorded, the lease released.
async fn ended(rec: &Recorder, error: Option<Error>) -> Result<Answer> {
    let exec = rec.finish(error.as_ref()).await?;
    match error {
        Some(e) => Err(e),
        None => Ok(Answer::of(&exec, Next::Done, "recovered")),
    }
}

/// The parent's steps, as [`machine::next_step`] names them: phase one (answering `wait` while
/// AWS works), then after the child the check and the clean-up. A step of segments is the
/// child's: the answer names its phase, which the parent routes on.
async fn advance(session: &Session, id: &str, inv: &Invocation) -> Result<Answer> {
    let (_, journal) = session.open().await?;
    let exec = load(session, journal.as_ref(), id, inv).await?;
    match (exec.status, machine::next_step(&exec)) {
        (Status::Succeeded, _) => return Ok(Answer::of(&exec, Next::Done, "already succeeded")),
        (Status::Failed, _) => {
            return Err(Error::invalid(
                "executionId",
                format!(
                    "execution {id} failed ({}); start the state machine again with the same \
                     input to continue it, or `dynamo-dr resume {id}`",
                    exec.last_error.as_deref().unwrap_or("no error recorded")
                ),
            ));
        }
        (_, Step::Segments(_)) => {
            let detail = "the sync phases run in the child";
            return Ok(Answer::of(&exec, Next::Continue, detail));
        }
        _ => {}
    }
    let mut request = recorded_request(session, &exec)?;
    // Phase 1 looks briefly, then the state machine waits: AWS does the work meanwhile.
    let window = POLL_WINDOW.min(inv.stop_at().saturating_duration_since(Instant::now()));
    let phase_one = exec.phase == Phase::BackupAndRestore;
    if phase_one {
        request.backup_deadline = window;
        request.restore_deadline = window;
    }
    let checked = job::check_all(session, vec![request], RunOptions::default()).await?;
    let client = checked.client.clone();
    let prepared = checked
        .prepared
        .into_iter()
        .next()
        .ok_or(Error::Interrupted)?;
    let plan = prepared.plan;
    // check_all read the record again, merged with the workers' checkpoints.
    let exec = prepared.existing.unwrap_or(exec);
    let rec = recorder(session, &journal, exec, inv).await?;
    if phase_one {
        return advance_phase_one(&client, &plan, &rec, inv).await;
    }
    advance_to_end(&client, &plan, &rec, inv).await
}

/// Phase one for as long as the invocation allows: `wait` while AWS works, past its limit a
/// failure that keeps what exists.
async fn advance_phase_one(
    client: &aws_sdk_dynamodb::Client,
    plan: &restore::Plan,
    rec: &Arc<Recorder>,
    inv: &Invocation,
) -> Result<Answer> {
    let stop = tokio::time::Instant::from_std(inv.stop_at());
    let done = tokio::time::timeout_at(stop, restore::phase_one(client, plan, rec)).await;
    let waited = match done {
        Ok(Ok(())) => None,
        Ok(Err(Error::WaitTimeout { last_state, .. })) => Some(last_state),
        Err(_) => Some("the invocation's deadline".to_string()),
        Ok(Err(e)) => return ended(rec, Some(e)).await,
    };
    let exec = rec.snapshot().await;
    let Some(state) = waited else {
        rec.detach_lease();
        return Ok(Answer::of(&exec, Next::Continue, "phase 1 done"));
    };
    let limit = options::restore_deadline(RESTORE_TIMEOUT_MINUTES).max(BACKUP_DEADLINE);
    let elapsed = jiff::Timestamp::now().duration_since(exec.created_at);
    if elapsed.as_secs() as u64 > limit.as_secs() {
        let e = Error::Incomplete(format!(
            "phase 1 of {} has waited {}s, past its limit of {}s ({state}); the backup and the \
             temporary table are kept. Look at them in the console, then `dynamo-dr resume {}`",
            exec.id,
            elapsed.as_secs(),
            limit.as_secs(),
            exec.id
        ));
        return ended(rec, Some(e)).await;
    }
    rec.detach_lease();
    let mut answer = Answer::of(&exec, Next::Wait, format!("waiting: {state}"));
    answer.wait_seconds = WAIT_SECONDS;
    Ok(answer)
}

/// The steps after the child: the check (or a targeted scope planned again, which hands the
/// execution back to the child), then the clean-up.
async fn advance_to_end(
    client: &aws_sdk_dynamodb::Client,
    plan: &restore::Plan,
    rec: &Arc<Recorder>,
    inv: &Invocation,
) -> Result<Answer> {
    let stop = tokio::time::Instant::from_std(inv.stop_at());
    let steps = async {
        let mut work = None;
        loop {
            match machine::next_step(&rec.snapshot().await) {
                Step::Done => return Ok(true),
                Step::Segments(_) => return Ok(false),
                Step::CleanUp => restore::clean_up(client, plan, rec).await?,
                step => {
                    if work.is_none() {
                        work = Some(restore::plan_work(client, plan, rec).await?);
                    }
                    let work = work.as_ref().expect("made above");
                    execution::run_step(client, work, step, &plan.request.sync, rec).await?;
                }
            }
        }
    };
    match tokio::time::timeout_at(stop, steps).await {
        Ok(Ok(true)) => ended(rec, None).await,
        Ok(Ok(false)) => {
            rec.detach_lease();
            let exec = rec.snapshot().await;
            Ok(Answer::of(
                &exec,
                Next::Continue,
                "planned again: the child runs it",
            ))
        }
        Ok(Err(e)) => ended(rec, Some(e)).await,
        Err(_) => {
            let id = rec.snapshot().await.id;
            let e = Error::Incomplete(format!(
                "the check of {id} did not finish within one invocation; raise the function's \
                 timeout (at most 900 s), or run it from a machine with `dynamo-dr resume {id}`"
            ));
            ended(rec, Some(e)).await
        }
    }
}

/// The child's coordinator: the current sync phase's unfinished segments, or the next phase's
/// once every segment of this one is done.
async fn phase(session: &Session, id: &str, inv: &Invocation) -> Result<Answer> {
    let (_, journal) = session.open().await?;
    let exec = load(session, journal.as_ref(), id, inv).await?;
    recorded_request(session, &exec)?;
    if exec.status != Status::Running || !matches!(exec.phase, Phase::Delete | Phase::Copy) {
        return Ok(Answer::of(&exec, Next::Done, "no sync phase to run"));
    }
    still_recovering(session, journal.as_ref(), &exec).await?;
    let rec = recorder(session, &journal, exec, inv).await?;
    let answer = next_segments(&journal, &rec).await;
    // Kept for the workers either way: a renewer left running would outlive the invocation.
    rec.detach_lease();
    answer
}

/// The current phase's unfinished segments, entering the next phase while there are none.
async fn next_segments(journal: &Arc<dyn Journal>, rec: &Recorder) -> Result<Answer> {
    loop {
        let exec = rec.snapshot().await;
        let phase = exec.phase;
        let Step::Segments(_) = machine::next_step(&exec) else {
            return Ok(Answer::of(&exec, Next::Done, "the sync phases are done"));
        };
        let recorded = exec.progress(phase).map_or(0, |p| p.segments.len()) as u32;
        let count = machine::segment_count(&exec.inputs, phase);
        if recorded == 0 && count > 0 {
            rec.update(|e| {
                if let Some(p) = e.progress_mut(phase) {
                    p.segments = vec![SegmentCheckpoint::default(); count as usize];
                    p.started_at = Some(jiff::Timestamp::now());
                }
            })
            .await?;
            continue;
        }
        let loaded = journal::load_segments(journal.as_ref(), &exec.id, phase, recorded).await?;
        let mut merged = exec
            .progress(phase)
            .map(|p| p.segments.clone())
            .unwrap_or_default();
        journal::fold(&mut merged, &loaded);
        let open: Vec<u32> = (0..recorded)
            .filter(|&n| !merged[n as usize].done)
            .collect();
        if !open.is_empty() {
            let detail = format!("{} segment(s) to run", open.len());
            let mut answer = Answer::of(&exec, Next::Continue, detail);
            answer.items = merged.iter().map(|s| s.items).sum();
            answer.segments = open;
            return Ok(answer);
        }
        rec.update(|e| {
            if let Some(p) = e.progress_mut(phase) {
                p.segments = merged;
                journal::fold_trace(&mut p.workers_trace, &loaded);
            }
            e.event(format!(
                "phase {} done by {recorded} segment worker(s)",
                phase.as_str()
            ));
            machine::close_phase(e, phase, None, &loaded);
        })
        .await?;
    }
}

async fn recovery(
    session: &Session,
    environment: &str,
    change: Change,
    inv: &Invocation,
) -> Result<Answer> {
    let env = session.config.environment(environment)?;
    let (_, journal) = session.open().await?;
    let lambda = crate::aws::lambda_client(&session.aws).await;
    let run = recovery_mode::Change {
        client: &lambda,
        journal: &journal,
        environment,
        dry_run: false,
        timing: Timing {
            deadline: Some(inv.deadline_at()),
            ..Timing::cli(session.aws.attempt_timeout())
        },
    };
    let actions = match change {
        Change::Start => recovery_mode::start(&run, &env).await?,
        Change::End => {
            let end = recovery_mode::EndOptions {
                skip: &env.skip_recovery_events,
                tables: session.config.tables_of(environment),
                force: false,
            };
            recovery_mode::end(&run, &end).await?
        }
    };
    let failures = recovery_mode::failures(&actions);
    if !failures.is_empty() {
        return Err(Error::Incomplete(format!(
            "recovery-mode {} for {environment}: {} call(s) failed; the others were done \
             and recorded. Start the state machine again to finish:\n  {}",
            change.as_str(),
            failures.len(),
            failures.join("\n  ")
        )));
    }
    Ok(Answer {
        execution_id: String::new(),
        phase: format!("recovery-mode-{}", change.as_str()),
        state: Next::Done,
        wait_seconds: 0,
        segments: Vec::new(),
        segment: None,
        items: 0,
        detail: format!("{} action(s) done for {environment}", actions.len()),
        metrics: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Kind, Scope, Strategy};
    use crate::validate;

    #[test]
    fn the_state_machines_payloads_parse_and_others_are_refused() {
        let a = Action::parse(serde_json::json!({"action": "segment", "executionId": "i.T", "phase": "copy", "segment": 3}))
            .unwrap();
        assert_eq!(
            a,
            Action::Segment {
                execution_id: "i.T".into(),
                phase: Phase::Copy,
                segment: 3
            }
        );
        let a = Action::parse(
            serde_json::json!({"action": "start", "table": "T", "input": {"incidentId": "i"}}),
        )
        .unwrap();
        assert!(matches!(a, Action::Start { .. }));
        let err = Action::parse(serde_json::json!({"action": "explode"})).unwrap_err();
        assert_eq!(err.exit_status(), crate::error::ExitStatus::Refused);
        assert!(err.to_string().contains("advance"), "{err}");
        assert!(segment::segment_phase(Phase::Check).is_err());
        let change = serde_json::json!({"action": "recovery-mode", "environment": "Prod", "change": "pause"});
        let err = Action::parse(change).unwrap_err();
        assert_eq!(err.exit_status(), crate::error::ExitStatus::Refused);
    }

    #[test]
    fn an_answer_has_every_field_the_result_selectors_read() {
        let exec = Execution::new(
            "i.T".into(),
            Kind::Restore,
            journal::Inputs {
                table: "T".into(),
                incident_id: Some("i".into()),
                source: journal::Source::Pitr(validate::PitrTime::Latest),
                segments: 2,
                keep_restored_table: false,
                verify: true,
                strategy: Strategy::Diff,
                sensitive: false,
                forensic_backup: true,
                scope: Scope::Table,
                prewarm: None,
            },
            Phase::BackupAndRestore,
        );
        let v = serde_json::to_value(Answer::of(&exec, Next::Wait, "x")).unwrap();
        for field in [
            "executionId",
            "phase",
            "state",
            "waitSeconds",
            "segments",
            "segment",
        ] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["state"], "wait");
        assert_eq!(v["phase"], "backup-and-restore");
    }
}
