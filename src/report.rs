//! The incident report: what was done to which table, by whom, when, and with what result, as
//! Markdown for the incident document and JSON for tooling. Built from the journal alone, so it
//! can be written again at any time (`dynamo-dr report`), from any machine sharing the journal.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::journal::{
    Event, Execution, Journal, Kind, Mode, Operator, Phase, Principal, Status, Strategy,
    Verification, VerificationMethod,
};
use crate::recovery_mode::{RecoveryMode, State};
use crate::validate::{PitrTime, time_text};

/// Bumped when a field of the JSON report changes meaning.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub format_version: u32,
    /// The incident id, or the execution id when the report is of one execution.
    pub subject: String,
    pub incident_id: Option<String>,
    /// `recovered` (every execution succeeded), `failed` or `in progress`.
    pub outcome: String,
    pub generated_at: Timestamp,
    pub generated_by: Principal,
    pub executions: Vec<ExecutionReport>,
    pub recovery_mode: Vec<RecoveryModeWindow>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionReport {
    pub execution_id: String,
    pub kind: Kind,
    pub table: String,
    pub status: Status,
    pub phase: String,
    /// As given: an RFC 3339 time, `latest`, `backup:<arn>` or `table:<name>`.
    pub source: String,
    /// For a restore to a given time, the whole second asked of DynamoDB, as people read it:
    /// `2025-01-15T09:04:59Z (DynamoDB restores to the second; .250 dropped)`.
    pub restore_point: Option<String>,
    /// The instant the restored data is from, as DynamoDB reported it.
    pub restored_to: Option<Timestamp>,
    pub strategy: Strategy,
    pub scope: crate::journal::Scope,
    /// A targeted restore's puts, deletes, unchanged items and conflicts.
    pub targeted: Option<crate::journal::Targeted>,
    pub segments: u32,
    pub content_verification: bool,
    pub sensitive: bool,
    pub forensic_backup_requested: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: Operator,
    /// Every start and resume, with the AWS principal it acted as.
    pub principals: Vec<Principal>,
    pub phases: Vec<PhaseTiming>,
    pub counts: Counts,
    pub backup_name: Option<String>,
    pub backup_arn: Option<String>,
    pub temp_table: Option<String>,
    pub temp_table_fate: Option<crate::journal::TempTableFate>,
    /// A window scope's exports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<crate::journal::ExportRecord>,
    pub verification: Option<Verification>,
    pub last_error: Option<String>,
    pub audit_trail: Vec<Event>,
    /// What each sync phase did over time, for the HTML report's charts (not in the JSON).
    #[serde(skip)]
    pub activity: Vec<PhaseActivity>,
}

/// A sync phase over time: its trace and when each segment finished.
#[derive(Debug, Clone, Default)]
pub struct PhaseActivity {
    pub phase: String,
    pub started_at: Option<Timestamp>,
    pub trace: crate::journal::Trace,
    pub finished: Vec<Option<Timestamp>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTiming {
    pub phase: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub deleted_items: u64,
    pub copied_items: u64,
    pub source_items: Option<u64>,
    pub dest_items: Option<u64>,
    pub scan_requests: u64,
    pub write_requests: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub rewritten_pages: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryModeWindow {
    pub environment: String,
    /// The incident's tables that belong to this environment.
    pub tables: Vec<String>,
    /// `none` when recovery mode was never started for the environment.
    pub state: String,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub functions_paused: usize,
    pub mappings_disabled: usize,
    /// Mappings replaced by twins at `LATEST` at `end` (the `skip` policy).
    pub mappings_replaced: Vec<ReplacedMapping>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplacedMapping {
    pub function: String,
    pub pattern: String,
    pub old_uuid: String,
    /// `None` until `end` has created the twin.
    pub new_uuid: Option<String>,
}

/// The executions `id` names: the execution of that id, or else every execution of the incident.
pub async fn executions(journal: &dyn Journal, id: &str) -> Result<(Vec<Execution>, bool)> {
    if let Some(exec) = journal.load(id).await? {
        return Ok((vec![crate::journal::merged(journal, exec).await?], false));
    }
    let mut all: Vec<Execution> = journal
        .list()
        .await?
        .into_iter()
        .filter(|e| e.inputs.incident_id.as_deref() == Some(id))
        .collect();
    if all.is_empty() {
        return Err(Error::invalid(
            "report",
            format!(
                "no execution and no incident {id} in the journal {}; give an execution id \
                 (inc-1.MyTable) or an incident id (inc-1), as `dynamo-dr executions` lists them",
                journal.describe()
            ),
        ));
    }
    all.sort_by(|a, b| a.inputs.table.cmp(&b.inputs.table));
    Ok((all, true))
}

/// Builds the report of `id` (an execution or an incident) from its [`executions`] and the
/// journal's recovery-mode records.
pub async fn build(
    journal: &dyn Journal,
    config: &Config,
    id: &str,
    (executions, is_incident): (Vec<Execution>, bool),
    generated_by: Principal,
) -> Result<Report> {
    let mut environments: Vec<(String, Vec<String>)> = Vec::new();
    for e in &executions {
        if let Some(env) = config.environment_of(&e.inputs.table) {
            match environments.iter_mut().find(|(name, _)| *name == env) {
                Some((_, tables)) => tables.push(e.inputs.table.clone()),
                None => environments.push((env, vec![e.inputs.table.clone()])),
            }
        }
    }
    let mut recovery_mode = Vec::new();
    for (env, tables) in environments {
        let record = journal.load_recovery_mode(&env).await?;
        recovery_mode.push(window(env, tables, record.as_ref()));
    }
    let outcome = if executions.iter().all(|e| e.status == Status::Succeeded) {
        "recovered"
    } else if executions.iter().any(|e| e.status == Status::Failed) {
        "failed"
    } else {
        "in progress"
    };
    Ok(Report {
        format_version: FORMAT_VERSION,
        subject: id.to_string(),
        incident_id: if is_incident {
            Some(id.to_string())
        } else {
            executions
                .first()
                .and_then(|e| e.inputs.incident_id.clone())
        },
        outcome: outcome.into(),
        generated_at: Timestamp::now(),
        generated_by,
        executions: executions.iter().map(execution_report).collect(),
        recovery_mode,
    })
}

fn window(
    environment: String,
    tables: Vec<String>,
    record: Option<&RecoveryMode>,
) -> RecoveryModeWindow {
    let state = match record.map(|r| r.state) {
        None => "none",
        Some(State::Starting) => "starting",
        Some(State::On) => "on",
        Some(State::Ending) => "ending",
        Some(State::Off) => "off",
    };
    RecoveryModeWindow {
        environment,
        tables,
        state: state.into(),
        started_at: record.and_then(|r| r.started_at),
        ended_at: record.and_then(|r| r.ended_at),
        functions_paused: record
            .map_or(0, |r| r.functions.values().filter(|f| f.throttled).count()),
        mappings_disabled: record.map_or(0, |r| r.mappings.values().filter(|m| m.disabled).count()),
        mappings_replaced: record
            .into_iter()
            .flat_map(|r| &r.mappings)
            .filter_map(|(uuid, m)| {
                let rep = m.replacement.as_ref()?;
                Some(ReplacedMapping {
                    function: m.function.clone(),
                    pattern: rep.pattern.clone(),
                    old_uuid: uuid.clone(),
                    new_uuid: rep.new_uuid.clone(),
                })
            })
            .collect(),
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.duration_since(from).as_secs_f64() * 10.0).round() / 10.0
}

fn execution_report(e: &Execution) -> ExecutionReport {
    let both = |f: fn(&crate::journal::PhaseProgress) -> u64| f(&e.delete) + f(&e.copy);
    ExecutionReport {
        execution_id: e.id.clone(),
        kind: e.kind,
        table: e.inputs.table.clone(),
        status: e.status,
        phase: e.phase.as_str().into(),
        source: e.inputs.source.to_string(),
        restore_point: match &e.inputs.source {
            crate::journal::Source::Pitr(t @ PitrTime::At(_)) => Some(t.text()),
            _ => None,
        },
        restored_to: e.resources.restored_to,
        strategy: e.inputs.strategy,
        scope: e.inputs.scope.clone(),
        targeted: e.inputs.mode().targeted().map(|_| e.targeted.clone()),
        segments: e.inputs.segments,
        content_verification: e.inputs.verify,
        sensitive: e.inputs.sensitive,
        forensic_backup_requested: e.inputs.forensic_backup,
        created_at: e.created_at,
        updated_at: e.updated_at,
        created_by: e.created_by.clone(),
        principals: e.principals.clone(),
        phases: e
            .phases
            .iter()
            .map(|s| PhaseTiming {
                phase: s.phase.as_str().into(),
                started_at: s.started_at,
                finished_at: s.finished_at,
                seconds: s.finished_at.map(|f| seconds(s.started_at, f)),
            })
            .collect(),
        counts: Counts {
            deleted_items: e.delete.items(),
            copied_items: e.copy.items(),
            source_items: e.source_count,
            dest_items: e.dest_count,
            scan_requests: both(|p| p.scan_requests),
            write_requests: both(|p| p.write_requests),
            read_units: e.units().0,
            write_units: e.units().1,
            rewritten_pages: e.rewritten_pages(),
        },
        backup_name: e.resources.backup_name.clone(),
        backup_arn: e.resources.backup_arn.clone(),
        temp_table: e.resources.temp_table.clone(),
        temp_table_fate: e.resources.temp_table_fate,
        exports: e.resources.exports.clone(),
        verification: e.verification.clone(),
        last_error: e.last_error.clone(),
        audit_trail: e.events.clone(),
        activity: [(Phase::Delete, &e.delete), (Phase::Copy, &e.copy)]
            .into_iter()
            .filter(|(_, p)| !p.segments.is_empty())
            .map(|(phase, p)| PhaseActivity {
                phase: phase.as_str().into(),
                started_at: p.started_at,
                trace: p.activity(),
                finished: p.segments.iter().map(|s| s.finished_at).collect(),
            })
            .collect(),
    }
}

/// Table cells hold one line, and a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Markdown is for people: instants to the millisecond (the JSON keeps full precision).
fn opt_time(t: Option<Timestamp>) -> String {
    t.map(time_text).unwrap_or_else(|| "-".into())
}

fn principal(p: &Principal) -> String {
    let local = format!(
        "{}@{} (pid {})",
        p.operator.user, p.operator.host, p.operator.pid
    );
    match (&p.aws, &p.aws_error) {
        (Some(aws), _) => format!("{local} as {} (account {})", aws.arn, aws.account),
        (None, Some(err)) => format!("{local}; AWS identity unknown: {err}"),
        (None, None) => local,
    }
}

fn verification_text(v: &Option<Verification>) -> String {
    match v {
        None => "not run".into(),
        Some(v) => format!(
            "{} {}",
            if v.passed { "PASSED" } else { "FAILED" },
            match v.method {
                VerificationMethod::Content => "(every item, every attribute)",
                VerificationMethod::Count => "(item counts only: --no-verify)",
                VerificationMethod::Scope => "(every item in scope against the restore point)",
            }
        ),
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        self.summary_markdown(&mut md);
        self.tables_markdown(&mut md);
        self.recovery_mode_markdown(&mut md);
        for e in &self.executions {
            md.push_str(&execution_markdown(e));
        }
        md
    }

    /// The heading and the incident's outcome, restore point and author.
    fn summary_markdown(&self, md: &mut String) {
        let ok = self
            .executions
            .iter()
            .filter(|e| e.status == Status::Succeeded)
            .count();
        md.push_str(&format!(
            "# Incident {}: in-place DynamoDB recovery\n\n",
            self.incident_id.as_deref().unwrap_or(&self.subject)
        ));
        md.push_str("| | |\n|---|---|\n");
        md.push_str(&format!(
            "| Outcome | **{}** ({ok} of {} executions succeeded) |\n",
            self.outcome,
            self.executions.len()
        ));
        if self.subject != self.incident_id.as_deref().unwrap_or_default() {
            md.push_str(&format!("| Execution | {} |\n", cell(&self.subject)));
        }
        let mut sources: Vec<&str> = self.executions.iter().map(restore_point).collect();
        sources.sort_unstable();
        sources.dedup();
        if let [one] = sources.as_slice() {
            md.push_str(&format!("| Restore point | {} |\n", cell(one)));
        }
        md.push_str(&format!(
            "| Report generated | {} by {} |\n\n",
            time_text(self.generated_at),
            cell(&principal(&self.generated_by))
        ));
    }

    /// One row per table.
    fn tables_markdown(&self, md: &mut String) {
        md.push_str("## Tables\n\n");
        md.push_str("| Table | Execution | Status | Restore point | Items copied | Verification | Forensic backup | Temporary table |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for e in &self.executions {
            md.push_str(&format!(
                "| {} | {} | {} (phase {}) | {} | {} | {} | {} | {} |\n",
                cell(&e.table),
                cell(&e.execution_id),
                status(e.status),
                e.phase,
                cell(restore_point(e)),
                e.counts.copied_items,
                verification_text(&e.verification),
                cell(
                    e.backup_arn
                        .as_deref()
                        .unwrap_or(if e.forensic_backup_requested {
                            "none recorded"
                        } else {
                            "none (forensic_backup = false)"
                        })
                ),
                cell(&format!(
                    "{} ({})",
                    e.temp_table.as_deref().unwrap_or("-"),
                    e.temp_table_fate
                        .map(|f| f.as_str())
                        .unwrap_or("not cleaned up")
                )),
            ));
        }
    }

    /// The recovery-mode window of each environment, and the consumers that skipped it.
    fn recovery_mode_markdown(&self, md: &mut String) {
        md.push_str("\n## Recovery mode\n\n");
        if self.recovery_mode.is_empty() {
            md.push_str(
                "No table of this report belongs to a configured environment, so no recovery mode \
                 applies.\n",
            );
        } else {
            md.push_str("| Environment | Tables | State now | Started | Ended | Functions paused | Event source mappings disabled |\n");
            md.push_str("|---|---|---|---|---|---|---|\n");
            for w in &self.recovery_mode {
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    cell(&w.environment),
                    cell(&w.tables.join(", ")),
                    w.state,
                    opt_time(w.started_at),
                    opt_time(w.ended_at),
                    w.functions_paused,
                    w.mappings_disabled
                ));
            }
            for w in &self.recovery_mode {
                for m in &w.mappings_replaced {
                    md.push_str(&format!(
                        "\nSkipped the recovery's stream records: mapping `{}` of {} (pattern \
                         `{}`) was replaced by `{}`, which starts at LATEST; the old mapping's \
                         configuration is in the journal's recovery-mode record of {}.\n",
                        m.old_uuid,
                        cell(&m.function),
                        cell(&m.pattern),
                        m.new_uuid.as_deref().unwrap_or("(not created yet)"),
                        cell(&w.environment)
                    ));
                }
            }
            if self.recovery_mode.iter().any(|w| w.ended_at.is_none()) {
                md.push_str(
                    "\nRecovery mode has not ended for every environment: after `dynamo-dr \
                     recovery-mode end`, write this report again with `dynamo-dr report` to \
                     record the window's end.\n",
                );
            }
        }
    }
}

/// What an execution restored to, for the tables: the restore point when a time was given.
fn restore_point(e: &ExecutionReport) -> &str {
    e.restore_point.as_deref().unwrap_or(&e.source)
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Failed => "FAILED",
        Status::Succeeded => "succeeded",
    }
}

fn execution_markdown(e: &ExecutionReport) -> String {
    let mut md = format!("\n## {} ({})\n\n", cell(&e.table), cell(&e.execution_id));
    for section in [
        kind_markdown,
        targeted_markdown,
        source_markdown,
        operators_markdown,
        outcome_markdown,
        timeline_markdown,
    ] {
        section(&mut md, e);
    }
    md
}

/// What kind of run: in place or from another table, a strategy or a targeted scope.
fn kind_markdown(md: &mut String, e: &ExecutionReport) {
    let kind = match e.kind {
        Kind::Restore => "restore in place",
        Kind::Sync => "sync from another table",
    };
    if let Some(scope) = Mode::of(&e.scope, e.strategy).targeted() {
        md.push_str(&format!("- Kind: {kind}, targeted: {}\n", scope.describe()));
    } else {
        md.push_str(&format!(
            "- Kind: {kind}, strategy {}\n",
            e.strategy.as_str()
        ));
    }
}

/// A targeted run's writes and conflicts.
fn targeted_markdown(md: &mut String, e: &ExecutionReport) {
    if let Some(t) = &e.targeted {
        md.push_str(&format!(
            "- Targeted writes: {} put, {} deleted, {} already equal, {} conflict(s){}\n",
            t.puts,
            t.deletes,
            t.unchanged,
            t.conflicts,
            if t.replanned > 0 {
                format!(
                    " ({} conflict(s) of earlier passes planned again)",
                    t.replanned
                )
            } else {
                String::new()
            }
        ));
        if !t.conflict_keys.is_empty() {
            md.push_str(
                "- Conflicts: changed by the application after the tool read them, and kept as \
                 the application wrote them:\n",
            );
            for k in &t.conflict_keys {
                md.push_str(&format!("  - `{}`\n", cell(k)));
            }
            if t.conflicts as usize > t.conflict_keys.len() {
                md.push_str(&format!(
                    "  - and {} more (the record keeps the first {})\n",
                    t.conflicts as usize - t.conflict_keys.len(),
                    t.conflict_keys.len()
                ));
            }
        }
    }
}

/// Where the data came from, the run's state and its options.
fn source_markdown(md: &mut String, e: &ExecutionReport) {
    md.push_str(&format!("- Source: {}\n", e.source));
    if let Some(point) = &e.restore_point {
        md.push_str(&format!("- Restore point: restoring to {point}\n"));
    }
    if let Some(t) = e.restored_to.map(time_text) {
        md.push_str(&format!(
            "- Restored data as of (DynamoDB's RestoreSummary): {t}\n"
        ));
    }
    md.push_str(&format!(
        "- Status: {}, phase {}; created {}, last updated {}\n",
        status(e.status),
        e.phase,
        time_text(e.created_at),
        time_text(e.updated_at)
    ));
    md.push_str(&format!(
        "- Options: {} segments; content verification {}; sensitive {}; forensic backup {}\n",
        e.segments,
        if e.content_verification { "on" } else { "off" },
        if e.sensitive { "yes" } else { "no" },
        if e.forensic_backup_requested {
            "requested"
        } else {
            "disabled by config"
        },
    ));
}

/// Who ran it, with the AWS identities recorded.
fn operators_markdown(md: &mut String, e: &ExecutionReport) {
    md.push_str("- Operators:\n");
    if e.principals.is_empty() {
        md.push_str(&format!(
            "  - created by {}@{} (pid {}); no AWS identity recorded\n",
            e.created_by.user, e.created_by.host, e.created_by.pid
        ));
    }
    for p in &e.principals {
        md.push_str(&format!("  - {}: {}\n", time_text(p.at), principal(p)));
    }
}

/// What it made, moved and checked, and the next step after a failure.
fn outcome_markdown(md: &mut String, e: &ExecutionReport) {
    md.push_str(&format!(
        "- Forensic backup: {}\n",
        match (&e.backup_arn, &e.backup_name) {
            (Some(arn), _) => arn.clone(),
            (None, Some(name)) => format!("{name} (requested, ARN not recorded)"),
            _ if e.forensic_backup_requested => "none recorded".into(),
            _ => "none (forensic_backup = false in the config)".into(),
        }
    ));
    if let Some(t) = &e.temp_table {
        md.push_str(&format!(
            "- Temporary table: {t}, {}\n",
            e.temp_table_fate
                .map(|f| f.as_str())
                .unwrap_or("not cleaned up yet")
        ));
    }
    for x in &e.exports {
        md.push_str(&format!(
            "- Incremental export: {} ({} to {}): {} item(s) in {} file(s), manifests and MD5s \
             checked\n",
            x.arn,
            x.from.map_or("-".into(), time_text),
            x.to.map_or("-".into(), time_text),
            x.items,
            x.files
        ));
    }
    let c = &e.counts;
    md.push_str(&format!(
        "- Items: {} deleted, {} copied; item counts after: source {}, destination {}\n",
        c.deleted_items,
        c.copied_items,
        c.source_items.map_or("-".into(), |n| n.to_string()),
        c.dest_items.map_or("-".into(), |n| n.to_string()),
    ));
    md.push_str(&format!(
        "- Requests: {} scans, {} batch writes, {:.1} read units, {:.1} write units, {} pages rewritten after a resume\n",
        c.scan_requests, c.write_requests, c.read_units, c.write_units, c.rewritten_pages
    ));
    md.push_str(&format!(
        "- Verification: {}\n",
        match &e.verification {
            Some(v) => format!("{}: {}", verification_text(&e.verification), v.detail),
            None => "not run".into(),
        }
    ));
    if let Some(err) = &e.last_error {
        md.push_str(&format!(
            "- Last error: {err}\n- Next step: `dynamo-dr resume {}`\n",
            e.execution_id
        ));
    }
}

/// The phases' times and the audit trail.
fn timeline_markdown(md: &mut String, e: &ExecutionReport) {
    md.push_str("\n| Phase | Started | Finished | Seconds |\n|---|---|---|---|\n");
    for p in &e.phases {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            p.phase,
            time_text(p.started_at),
            opt_time(p.finished_at),
            p.seconds.map_or("-".into(), |s| format!("{s:.1}"))
        ));
    }
    md.push_str("\n### Audit trail\n\n| Time | By | Event |\n|---|---|---|\n");
    for ev in &e.audit_trail {
        md.push_str(&format!(
            "| {} | {}@{} | {} |\n",
            time_text(ev.at),
            cell(&ev.by.user),
            cell(&ev.by.host),
            cell(&ev.what)
        ));
    }
}

/// Where a report was written.
#[derive(Debug, Clone)]
pub struct Written {
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub html: PathBuf,
}

impl Written {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "markdown": self.markdown.display().to_string(),
            "json": self.json.display().to_string(),
            "html": self.html.display().to_string(),
        })
    }

    pub fn text(&self) -> String {
        format!(
            "{}, {} and {} (open the HTML in a browser for the timeline and rate charts)",
            self.html.display(),
            self.markdown.display(),
            self.json.display()
        )
    }
}

/// Writes `dynamo-dr-report-<subject>.md`, `.json` and `.html` into `dir`, each replaced whole.
pub fn write(report: &Report, dir: &Path) -> Result<Written> {
    let io = |path: &Path, source: std::io::Error| Error::Write {
        path: path.display().to_string(),
        source,
    };
    crate::private::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let base = format!("dynamo-dr-report-{}", report.subject);
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::Journal(format!("cannot serialise the report: {e}")))?;
    let written = Written {
        markdown: dir.join(format!("{base}.md")),
        json: dir.join(format!("{base}.json")),
        html: dir.join(format!("{base}.html")),
    };
    // A chart that cannot be drawn still leaves the Markdown and JSON reports written.
    let page = html::page(report);
    let mut files = vec![
        (&written.markdown, report.markdown()),
        (&written.json, json),
    ];
    if let Ok(text) = &page {
        files.push((&written.html, text.clone()));
    }
    for (path, text) in files {
        let tmp = path.with_extension("tmp");
        crate::private::create(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    }
    if page.is_err() {
        // No page from an earlier run beside this run's Markdown and JSON.
        let _ = std::fs::remove_file(&written.html);
    }
    page.map(|_| written)
}

mod charts;
mod html;

#[cfg(test)]
mod tests;
