//! Recovery mode: pause an environment's Lambda functions (reserved concurrency 0) and their
//! event source mappings, and later put back exactly what was there.
//!
//! Every original value is written to the journal before it is changed, so `end` can restore it
//! from any machine, and a `start` killed halfway is finished by `start` or undone by `end`.

use std::sync::Arc;

use aws_sdk_lambda::Client;
use jiff::Timestamp;
use serde::Serialize;

use crate::config::EnvironmentConfig;
use crate::error::{AwsErrorKind, Error, Result};
use crate::journal::lease::{self, Fence};
pub use crate::journal::recovery::{
    FORMAT_VERSION, FunctionState, MappingState, RecoveryMode, Replacement, State,
};
use crate::journal::{self, Journal, Operator};
use crate::mappings;

/// Stream records are trimmed after 24 hours: a consumer paused longer loses them silently.
pub const STREAM_RETENTION_WARN_HOURS: i64 = 20;

/// A warning when recovery mode has been on for more than 20 hours on an environment whose tables
/// have streams: its paused consumers are about to lose records the 24-hour retention trims.
pub fn stale_streams(record: &RecoveryMode, streamed: bool, now: Timestamp) -> Option<String> {
    let started = record.started_at.filter(|_| record.is_on() && streamed)?;
    let hours = now.duration_since(started).as_hours();
    (hours >= STREAM_RETENTION_WARN_HOURS).then(|| {
        format!(
            "WARNING: recovery mode has been on for {} for {hours} h, and its tables have streams: \
             DynamoDB keeps stream records for 24 hours, so records the paused consumers have not \
             read are trimmed from hour 24 on. End recovery mode soon (`dynamo-dr recovery-mode \
             end --environment {}`)",
            record.environment, record.environment
        )
    })
}

/// What recovery mode does to one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Pause,
    Excluded(String),
}

/// A function of the environment, with the decision for it.
#[derive(Debug, Clone)]
pub struct Selected {
    pub name: String,
    pub decision: Decision,
}

fn lambda_error<E>(
    operation: &'static str,
    resource: &str,
    err: &aws_sdk_lambda::error::SdkError<E, aws_sdk_lambda::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::aws::aws_error(operation, resource, err)
}

/// Every function of the environment (by name prefix and tags), each with its decision. Functions
/// of other environments are not returned.
pub async fn select(client: &Client, env: &EnvironmentConfig) -> Result<Vec<Selected>> {
    let functions = client
        .list_functions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| lambda_error("ListFunctions", "functions", &e))?;
    let mut out = Vec::new();
    for f in functions {
        let Some(name) = f.function_name() else {
            continue;
        };
        if !name.starts_with(&env.function_prefix) {
            continue;
        }
        if !env.tags.is_empty() {
            let arn = f.function_arn().unwrap_or(name);
            let tags = client
                .list_tags()
                .resource(arn)
                .send()
                .await
                .map_err(|e| lambda_error("ListTags", name, &e))?;
            let have = tags.tags();
            let matches = env
                .tags
                .iter()
                .all(|(k, v)| have.and_then(|t| t.get(k)) == Some(v));
            if !matches {
                continue;
            }
        }
        let decision = match env
            .exclude
            .iter()
            .find(|p| wildmatch::WildMatch::new(p).matches(name))
        {
            Some(p) => Decision::Excluded(format!("matches exclusion pattern {p:?}")),
            None => Decision::Pause,
        };
        out.push(Selected {
            name: name.to_string(),
            decision,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The function's enabled event source mappings: (uuid, source ARN).
pub async fn enabled_mappings(client: &Client, function: &str) -> Result<Vec<(String, String)>> {
    let all = client
        .list_event_source_mappings()
        .function_name(function)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| lambda_error("ListEventSourceMappings", function, &e))?;
    Ok(all
        .into_iter()
        .filter(|m| matches!(m.state(), Some("Enabled" | "Enabling" | "Updating")))
        .filter_map(|m| {
            Some((
                m.uuid()?.to_string(),
                m.event_source_arn().unwrap_or_default().to_string(),
            ))
        })
        .collect())
}

pub async fn reserved(client: &Client, function: &str) -> Result<Option<i32>> {
    let out = client
        .get_function_concurrency()
        .function_name(function)
        .send()
        .await
        .map_err(|e| lambda_error("GetFunctionConcurrency", function, &e))?;
    Ok(out.reserved_concurrent_executions())
}

async fn set_reserved(client: &Client, function: &str, value: Option<i32>) -> Result<()> {
    match value {
        Some(v) => client
            .put_function_concurrency()
            .function_name(function)
            .reserved_concurrent_executions(v)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| lambda_error("PutFunctionConcurrency", function, &e)),
        None => client
            .delete_function_concurrency()
            .function_name(function)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| lambda_error("DeleteFunctionConcurrency", function, &e)),
    }
}

async fn set_mapping(client: &Client, uuid: &str, enabled: bool) -> Result<()> {
    client
        .update_event_source_mapping()
        .uuid(uuid)
        .enabled(enabled)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| lambda_error("UpdateEventSourceMapping", uuid, &e))
}

/// One line of a plan or a report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub target: String,
    pub action: String,
    pub done: bool,
    pub error: Option<String>,
}

fn describe_reserved(v: Option<i32>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

/// The calls of a change that failed, one line each: `target: error`.
pub fn failures(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.target)))
        .collect()
}

/// How one `start` or `end` runs: against which journal and environment, for real or not.
pub struct Change<'a> {
    pub client: &'a Client,
    pub journal: &'a Arc<dyn Journal>,
    pub environment: &'a str,
    pub dry_run: bool,
    /// The environment lease's timing (the attempt timeout of this process's AWS calls).
    pub timing: lease::Timing,
}

/// A change in progress: under the environment's lease, each AWS change checked against its
/// fence first, the record saved by version.
struct Held<'a> {
    client: &'a Client,
    journal: &'a dyn Journal,
    fence: Option<Arc<Fence>>,
    dry_run: bool,
}

impl Held<'_> {
    /// Before each change to a function or a mapping: still the environment's one writer.
    async fn may_change(&self) -> Result<()> {
        match &self.fence {
            Some(f) => f.check().await,
            None => Ok(()),
        }
    }
}

/// Runs `body` under the environment's lease (none for a dry run): a second `start` or `end`
/// beside it is refused, naming the holder, and can never read the record halfway through.
async fn under_lease<T, F>(change: &Change<'_>, body: F) -> Result<T>
where
    F: AsyncFnOnce(&Held<'_>, Option<String>) -> Result<T>,
{
    let guard = if change.dry_run {
        None
    } else {
        let name = journal::environment_lease(change.environment);
        let id = format!("recovery-mode.{}", change.environment);
        Some(lease::acquire(change.journal.clone(), &name, &id, false, change.timing).await?)
    };
    let held = Held {
        client: change.client,
        journal: change.journal.as_ref(),
        fence: guard.as_ref().map(|(g, _)| g.fence()),
        dry_run: change.dry_run,
    };
    let note = guard.as_ref().and_then(|(_, n)| n.clone());
    let result = body(&held, note).await;
    if let Some((g, _)) = guard
        && let Err(e) = g.release().await
    {
        tracing::warn!(error = %e, "could not release the environment's lease; it expires by itself");
    }
    result
}

/// `recovery-mode start`. With `dry_run`, reads only and reports what it would do.
pub async fn start(change: &Change<'_>, env: &EnvironmentConfig) -> Result<Vec<Action>> {
    let name = change.environment;
    under_lease(change, async |h: &Held<'_>, note: Option<String>| {
        let selected = select(h.client, env).await?;
        let mut rm = h
            .journal
            .load_recovery_mode(name)
            .await?
            .unwrap_or_else(|| RecoveryMode::new(name));
        let mut actions = Vec::new();
        if !h.dry_run {
            if rm.state == State::Off {
                // A new cycle: what an earlier cycle saved was already put back.
                rm.functions.clear();
                rm.mappings.clear();
                rm.started_at = Some(Timestamp::now());
                rm.ended_at = None;
            }
            rm.state = State::Starting;
            let me = Operator::current();
            rm.event(format!("start by {}@{} (pid {})", me.user, me.host, me.pid));
            if let Some(n) = note {
                rm.event(n);
            }
            h.journal.save_recovery_mode(&mut rm).await?;
        }
        for f in &selected {
            if let Decision::Excluded(why) = &f.decision {
                actions.push(Action {
                    target: f.name.clone(),
                    action: format!("excluded: {why}"),
                    done: false,
                    error: None,
                });
                continue;
            }
            if let Err(e) = pause_function(h, &mut rm, &f.name, env, &mut actions).await {
                if matches!(e, Error::Fenced { .. } | Error::Conflict { .. }) {
                    return Err(e);
                }
                actions.push(Action {
                    target: f.name.clone(),
                    action: "pause".into(),
                    done: false,
                    error: Some(e.to_string()),
                });
            }
        }
        if !h.dry_run {
            let failed = actions.iter().filter(|a| a.error.is_some()).count();
            if failed == 0 {
                rm.state = State::On;
                rm.event("recovery mode ON");
            } else {
                rm.event(format!(
                    "start incomplete: {failed} failure(s); run start again to finish, or end to undo"
                ));
            }
            h.journal.save_recovery_mode(&mut rm).await?;
        }
        Ok(actions)
    })
    .await
}

async fn pause_function(
    h: &Held<'_>,
    rm: &mut RecoveryMode,
    function: &str,
    env: &EnvironmentConfig,
    actions: &mut Vec<Action>,
) -> Result<()> {
    let (client, journal, dry_run) = (h.client, h.journal, h.dry_run);
    // A second start keeps the first one's saved value: never overwrite it with 0.
    let saved = match rm.functions.get(function) {
        Some(s) => s.saved_reserved,
        None => {
            let current = reserved(client, function).await?;
            if !dry_run {
                rm.functions.insert(
                    function.to_string(),
                    FunctionState {
                        saved_reserved: current,
                        throttled: false,
                        restored: false,
                    },
                );
                journal.save_recovery_mode(rm).await?;
            }
            current
        }
    };
    let already = rm.functions.get(function).is_some_and(|s| s.throttled);
    if !already {
        if !dry_run {
            h.may_change().await?;
            set_reserved(client, function, Some(0)).await?;
            if let Some(s) = rm.functions.get_mut(function) {
                s.throttled = true;
            }
            journal.save_recovery_mode(rm).await?;
        }
        actions.push(Action {
            target: function.to_string(),
            action: format!("reserved concurrency {} -> 0", describe_reserved(saved)),
            done: !dry_run,
            error: None,
        });
    }
    if !env.disable_event_source_mappings {
        return Ok(());
    }
    for (uuid, source) in enabled_mappings(client, function).await? {
        if !dry_run {
            rm.mappings.entry(uuid.clone()).or_insert(MappingState {
                function: function.to_string(),
                event_source_arn: source.clone(),
                disabled: false,
                restored: false,
                replacement: None,
            });
            journal.save_recovery_mode(rm).await?;
            h.may_change().await?;
            set_mapping(client, &uuid, false).await?;
            if let Some(m) = rm.mappings.get_mut(&uuid) {
                m.disabled = true;
            }
            journal.save_recovery_mode(rm).await?;
        }
        actions.push(Action {
            target: format!("{function} mapping {uuid}"),
            action: format!("disable ({source})"),
            done: !dry_run,
            error: None,
        });
    }
    Ok(())
}

/// The first of `patterns` (`*` wildcards) that `function` matches.
fn matching<'a>(patterns: &'a [String], function: &str) -> Option<&'a String> {
    patterns
        .iter()
        .find(|p| wildmatch::WildMatch::new(p).matches(function))
}

/// What `end` is told besides the change.
pub struct EndOptions<'a> {
    /// `skip_recovery_events` patterns: the functions whose stream mappings get a twin at
    /// `LATEST` (see [`mappings`]).
    pub skip: &'a [String],
    /// The environment's tables (physical names): `end` is refused while a run holds one.
    pub tables: Vec<String>,
    /// End even so (`--force`), recorded.
    pub force: bool,
}

/// `recovery-mode end`: re-enables only the mappings it disabled, except that a mapping on a
/// DynamoDB stream whose function matches a `skip` pattern is replaced by a twin at `LATEST`,
/// waited for until Enabled; only once every mapping is back does it put back every function's
/// saved concurrency, so the application writes nothing a consumer would miss.
pub async fn end(change: &Change<'_>, opts: &EndOptions<'_>) -> Result<Vec<Action>> {
    let name = change.environment;
    under_lease(change, async |h: &Held<'_>, note: Option<String>| {
        let Some(mut rm) = h.journal.load_recovery_mode(name).await? else {
            return Err(Error::invalid(
                "--environment",
                format!(
                    "recovery mode was never started for {name} (journal {}); nothing to end",
                    h.journal.describe()
                ),
            ));
        };
        if rm.state == State::Off {
            return Ok(Vec::new());
        }
        // Ending is saved before the leases are read: a run that takes its lease after this
        // read finds recovery mode off when it checks again under its lease, and stops.
        let was = rm.state;
        if !h.dry_run {
            rm.state = State::Ending;
            let me = Operator::current();
            rm.event(format!("end by {}@{} (pid {})", me.user, me.host, me.pid));
            if let Some(n) = note {
                rm.event(n);
            }
            h.journal.save_recovery_mode(&mut rm).await?;
        }
        no_live_runs(h, &mut rm, was, opts).await?;
        let mut actions = Vec::new();
        let twin_missing = end_mappings(h, &mut rm, opts.skip, &mut actions).await?;
        if twin_missing && !opts.force {
            actions.push(Action {
                target: "functions".into(),
                action: "left paused: a skipped consumer's twin is not reading its stream yet, \
                         and records the application wrote meanwhile would never reach it"
                    .into(),
                done: false,
                error: Some(
                    "run end again once the mapping error above is fixed, or pass --force to \
                     give the functions back now"
                        .into(),
                ),
            });
        } else {
            end_functions(h, &mut rm, &mut actions).await?;
        }
        if !h.dry_run {
            let failed = actions.iter().filter(|a| a.error.is_some()).count();
            if failed == 0 {
                rm.state = State::Off;
                rm.ended_at = Some(Timestamp::now());
                rm.event("recovery mode OFF");
            } else {
                rm.event(format!(
                    "end incomplete: {failed} failure(s); run end again"
                ));
            }
            h.journal.save_recovery_mode(&mut rm).await?;
        }
        Ok(actions)
    })
    .await
}

/// Refuses to end while runs hold leases on the environment's tables (putting back the state
/// it `was` in), unless forced, which is recorded.
async fn no_live_runs(
    h: &Held<'_>,
    rm: &mut RecoveryMode,
    was: State,
    opts: &EndOptions<'_>,
) -> Result<()> {
    let name = rm.environment.clone();
    let live = live_runs(h.journal, &opts.tables).await?;
    if !live.is_empty() && !opts.force {
        if !h.dry_run {
            rm.state = was;
            rm.event("end refused: runs in progress");
            h.journal.save_recovery_mode(rm).await?;
        }
        return Err(Error::invalid(
            "recovery mode",
            format!(
                "{name} has runs in progress: {}. Ending recovery mode now lets the \
                 application write into a table mid-restore. Wait for them (dynamo-dr \
                 status), or pass --force to end it anyway (recorded)",
                live.join("; ")
            ),
        ));
    }
    if !live.is_empty() && !h.dry_run {
        let forced = format!(
            "FORCED (--force) while runs held leases: {}",
            live.join("; ")
        );
        rm.event(forced);
        h.journal.save_recovery_mode(rm).await?;
    }
    Ok(())
}

/// The live leases on `tables`, one sentence each.
async fn live_runs(journal: &dyn Journal, tables: &[String]) -> Result<Vec<String>> {
    let now = Timestamp::now();
    let mut live = Vec::new();
    for t in tables {
        if let Some((l, _)) = journal.read_lease(t).await?
            && !l.is_free(now)
        {
            live.push(format!("{t}: {}", l.who(now)));
        }
    }
    Ok(live)
}

/// Gives each paused function its saved reserved concurrency back.
async fn end_functions(
    h: &Held<'_>,
    rm: &mut RecoveryMode,
    actions: &mut Vec<Action>,
) -> Result<()> {
    let functions: Vec<(String, FunctionState)> = rm
        .functions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (function, state) in functions.into_iter().filter(|(_, s)| !s.restored) {
        let action = match state.saved_reserved {
            None => "remove reserved concurrency (it had none)".to_string(),
            Some(v) => format!("reserved concurrency -> {v}"),
        };
        let result = if h.dry_run {
            Ok(())
        } else {
            h.may_change().await?;
            set_reserved(h.client, &function, state.saved_reserved).await
        };
        if result.is_ok() && !h.dry_run {
            if let Some(s) = rm.functions.get_mut(&function) {
                s.restored = true;
            }
            h.journal.save_recovery_mode(rm).await?;
        }
        actions.push(Action {
            target: function,
            action,
            done: !h.dry_run && result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    Ok(())
}

/// Re-enables each disabled mapping, or replaces it by its twin at `LATEST` (skip).
async fn end_mappings(
    h: &Held<'_>,
    rm: &mut RecoveryMode,
    skip: &[String],
    actions: &mut Vec<Action>,
) -> Result<bool> {
    let mappings: Vec<(String, MappingState)> = rm
        .mappings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut twin_missing = false;
    for (uuid, m) in mappings.into_iter().filter(|(_, m)| !m.restored) {
        let stream = mappings::is_dynamodb_stream(&m.event_source_arn);
        // A replacement once recorded is finished, whatever this run's patterns say.
        let pattern = match &m.replacement {
            Some(r) => Some(r.pattern.clone()),
            None => matching(skip, &m.function).filter(|_| stream).cloned(),
        };
        if !h.dry_run {
            h.may_change().await?;
        }
        let source = &m.event_source_arn;
        // Ok(None): the mapping was deleted after recovery mode started; nothing to put back.
        let (action, result) = match pattern {
            Some(pattern) => {
                let result = if h.dry_run {
                    Ok(Some(String::new()))
                } else {
                    replace(h, rm, &uuid, &pattern).await
                };
                twin_missing |= result.is_err();
                let action = match &result {
                    Ok(Some(new)) if !h.dry_run => format!(
                        "replaced by mapping {new} at LATEST, Enabled (skip, pattern {pattern:?}; \
                         the old configuration is in the journal) ({source})"
                    ),
                    _ => format!(
                        "replace by a twin at LATEST, so it skips the recovery's stream records \
                         (skip, pattern {pattern:?}) ({source})"
                    ),
                };
                (action, result.map(|r| r.map(|_| ())))
            }
            None => {
                let note = if !stream && matching(skip, &m.function).is_some() {
                    "; skip applies only to DynamoDB streams"
                } else {
                    ""
                };
                let result = reenable(h, &uuid).await;
                (format!("re-enable ({source}){note}"), result)
            }
        };
        let action = match &result {
            Ok(None) => format!(
                "gone: deleted after recovery mode started, so nothing to put back; recreate it \
                 from the function's infrastructure code ({source})"
            ),
            _ => action,
        };
        if result.is_ok() && !h.dry_run {
            if let Some(s) = rm.mappings.get_mut(&uuid) {
                s.restored = true;
            }
            rm.event(format!("mapping {uuid}: {action}"));
            h.journal.save_recovery_mode(rm).await?;
        }
        actions.push(Action {
            target: format!("{} mapping {uuid}", m.function),
            action,
            done: !h.dry_run && result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    Ok(twin_missing)
}

/// Enables mapping `uuid` again; `Ok(None)` when it was deleted after recovery mode started.
async fn reenable(h: &Held<'_>, uuid: &str) -> Result<Option<()>> {
    if h.dry_run {
        return Ok(Some(()));
    }
    match set_mapping(h.client, uuid, true).await {
        Err(Error::Aws {
            kind: AwsErrorKind::NotFound,
            ..
        }) => Ok(None),
        other => other.map(Some),
    }
}

/// Replaces mapping `uuid` by its twin at `LATEST`, recording each step before the next: the
/// old configuration, the deletion, the twin's UUID. Returns the twin's UUID.
async fn replace(
    h: &Held<'_>,
    rm: &mut RecoveryMode,
    uuid: &str,
    pattern: &str,
) -> Result<Option<String>> {
    let (client, journal) = (h.client, h.journal);
    let recorded = rm.mappings.get(uuid).and_then(|m| m.replacement.clone());
    let mut step = match recorded {
        Some(r) => r,
        None => {
            let Some(old) = mappings::get(client, uuid).await? else {
                return Ok(None);
            };
            let r = Replacement {
                old,
                pattern: pattern.to_string(),
                old_deleted: false,
                new_uuid: None,
            };
            record_replacement(journal, rm, uuid, &r, "configuration recorded").await?;
            r
        }
    };
    if !step.old_deleted {
        mappings::delete(client, uuid).await?;
        step.old_deleted = true;
        record_replacement(journal, rm, uuid, &step, "deleted").await?;
    }
    if let Some(new) = &step.new_uuid {
        mappings::wait_enabled(client, new).await?;
        return Ok(Some(new.clone()));
    }
    // A twin an interrupted run created before it could record it is adopted by its tag.
    let new = match mappings::find_twin(client, &step.old).await? {
        Some(new) => new,
        None => mappings::create_twin(client, &step.old).await?,
    };
    step.new_uuid = Some(new.clone());
    record_replacement(
        journal,
        rm,
        uuid,
        &step,
        &format!("replaced by {new} at LATEST"),
    )
    .await?;
    mappings::wait_enabled(client, &new).await?;
    Ok(Some(new))
}

async fn record_replacement(
    journal: &dyn Journal,
    rm: &mut RecoveryMode,
    uuid: &str,
    step: &Replacement,
    what: &str,
) -> Result<()> {
    if let Some(m) = rm.mappings.get_mut(uuid) {
        m.replacement = Some(step.clone());
    }
    rm.event(format!("skip mapping {uuid}: {what}"));
    journal.save_recovery_mode(rm).await
}

/// One function's current and saved state for `recovery-mode status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    pub function: String,
    pub current_reserved: Option<i32>,
    pub saved_reserved: Option<i32>,
    pub throttled_by_tool: bool,
    pub drift: Option<String>,
}

pub async fn status(
    client: &Client,
    journal: &dyn Journal,
    name: &str,
    env: &EnvironmentConfig,
) -> Result<(Option<RecoveryMode>, Vec<FunctionStatus>)> {
    let rm = journal.load_recovery_mode(name).await?;
    let selected = select(client, env).await?;
    let mut out = Vec::new();
    for f in &selected {
        let current = reserved(client, &f.name).await?;
        let saved = rm.as_ref().and_then(|r| r.functions.get(&f.name));
        let on = rm
            .as_ref()
            .is_some_and(|r| matches!(r.state, State::On | State::Starting));
        let drift = match (&f.decision, saved) {
            (Decision::Pause, Some(s)) if on && s.throttled && current != Some(0) => Some(format!(
                "reserved concurrency changed to {} by someone else",
                describe_reserved(current)
            )),
            (Decision::Pause, None) if on => {
                Some("not paused: it appeared after recovery mode started; run start again".into())
            }
            _ => None,
        };
        out.push(FunctionStatus {
            function: f.name.clone(),
            current_reserved: current,
            saved_reserved: saved.and_then(|s| s.saved_reserved),
            throttled_by_tool: saved.is_some_and(|s| s.throttled && !s.restored),
            drift,
        });
    }
    Ok((rm, out))
}

#[cfg(test)]
mod tests;
