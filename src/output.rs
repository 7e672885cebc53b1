//! Final summaries: text for people, one JSON object for scripts.

/// `print!` that survives a closed pipe.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!($($t)*)) };
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {out, outln};

use serde_json::{Value, json};

use crate::journal::Mode;
use crate::restore::{RestoreReport, Source};
use crate::validate::time_text;
use std::time::Duration;

use crate::journal::{Execution, PhaseProgress, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub fn restore_json(r: &RestoreReport) -> Value {
    let (source, pitr) = match &r.source {
        Source::Pitr(t) => (
            "pitr",
            r.restored_to
                .map(|t| t.to_string())
                .unwrap_or_else(|| t.to_string()),
        ),
        Source::Backup(_) => (
            "backup",
            r.restored_to.map(|t| t.to_string()).unwrap_or_default(),
        ),
    };
    json!({
        "executionId": r.execution_id,
        "status": "succeeded",
        "table": r.table,
        "restoredTable": r.restored_table,
        "restoredTableFate": r.restored_table_fate.as_str(),
        "backupArn": r.backup_arn,
        "source": source,
        "sourceBackupArn": match &r.source { Source::Backup(a) => Value::from(a.as_str()), Source::Pitr(_) => Value::Null },
        "pitrTime": pitr,
        "deletedItems": r.sync.deleted_items,
        "copiedItems": r.sync.copied_items,
        "sourceItemCount": r.counts.source,
        "destItemCount": r.counts.dest,
        "scanRequests": r.sync.scan_requests,
        "writeRequests": r.sync.write_requests,
        "rewrittenPages": r.rewritten_pages,
        "strategy": r.strategy.as_str(),
        "scope": r.scope.as_str(),
        "readUnits": r.read_units,
        "writeUnits": r.write_units,
        "phaseSeconds": {
            "delete": secs(r.sync.delete_duration),
            "copy": secs(r.sync.copy_duration),
        },
        "durationSeconds": secs(r.duration),
    })
}

pub fn restore_text(r: &RestoreReport) -> String {
    let source = match &r.source {
        Source::Pitr(t) => format!(
            "point in time {}",
            r.restored_to.map(time_text).unwrap_or_else(|| t.text())
        ),
        Source::Backup(a) => format!(
            "backup {a}{}",
            r.restored_to
                .map(|t| format!(" (taken {})", time_text(t)))
                .unwrap_or_default()
        ),
    };
    let (what, deleted, copied, checked) = match Mode::of(&r.scope, r.strategy) {
        Mode::Table(_) => (
            r.table.clone(),
            "deleted items:   ",
            "copied items:    ",
            format!(
                "item count check: {} in {} = {} in the restore (full scans)",
                r.counts.dest, r.table, r.counts.source
            ),
        ),
        Mode::Targeted(scope) => (
            format!("scope {} of {}", scope.as_str(), r.table),
            "deletes:         ",
            "puts:            ",
            "scope check:      every item in scope equals the restore point".to_string(),
        ),
    };
    format!(
        "Recovery succeeded: {what} is back to {source}\n\
         \x20 execution:        {exec}\n\
         \x20 forensic backup:  {backup}\n\
         \x20 temporary table:  {temp} ({fate})\n\
         \x20 {deleted} {deleted_n} in {del_s:.1} s\n\
         \x20 {copied} {copied_n} in {copy_s:.1} s\n\
         \x20 {checked}\n\
         \x20 total time:       {total:.1} s\n",
        exec = r.execution_id,
        backup = if r.backup_arn.is_empty() {
            "none (forensic_backup = false in the config)".to_string()
        } else {
            format!("{} (kept)", r.backup_arn)
        },
        temp = r.restored_table,
        fate = r.restored_table_fate.as_str(),
        deleted_n = r.sync.deleted_items,
        del_s = r.sync.delete_duration.as_secs_f64(),
        copied_n = r.sync.copied_items,
        copy_s = r.sync.copy_duration.as_secs_f64(),
        total = r.duration.as_secs_f64(),
    )
}

fn phase_seconds(p: &PhaseProgress) -> f64 {
    match (p.started_at, p.finished_at) {
        (Some(a), Some(b)) => secs(Duration::try_from(b.duration_since(a)).unwrap_or_default()),
        _ => 0.0,
    }
}

pub fn sync_json(e: &Execution, total: Duration) -> Value {
    json!({
        "executionId": e.id,
        "status": "succeeded",
        "source": source_name(&e.inputs.source),
        "dest": e.inputs.table,
        "deletedItems": e.delete.items(),
        "copiedItems": e.copy.items(),
        "sourceItemCount": e.source_count,
        "destItemCount": e.dest_count,
        "scanRequests": e.delete.scan_requests + e.copy.scan_requests,
        "writeRequests": e.delete.write_requests + e.copy.write_requests,
        "rewrittenPages": e.rewritten_pages(),
        "strategy": e.inputs.strategy.as_str(),
        "readUnits": e.units().0,
        "writeUnits": e.units().1,
        "phaseSeconds": { "delete": phase_seconds(&e.delete), "copy": phase_seconds(&e.copy) },
        "durationSeconds": secs(total),
    })
}

pub fn sync_text(e: &Execution, total: Duration) -> String {
    format!(
        "Sync succeeded: {dest} now holds the items of {source}\n\
         \x20 execution:        {id}\n\
         \x20 deleted items:    {} in {:.1} s\n\
         \x20 copied items:     {} in {:.1} s\n\
         \x20 item count check: {} = {} (full scans)\n\
         \x20 requests:         {} scan, {} BatchWriteItem\n\
         \x20 total time:       {:.1} s\n",
        e.delete.items(),
        phase_seconds(&e.delete),
        e.copy.items(),
        phase_seconds(&e.copy),
        e.dest_count.unwrap_or_default(),
        e.source_count.unwrap_or_default(),
        e.delete.scan_requests + e.copy.scan_requests,
        e.delete.write_requests + e.copy.write_requests,
        total.as_secs_f64(),
        dest = e.inputs.table,
        source = source_name(&e.inputs.source),
        id = e.id,
    )
}

/// A sync's source table by name; any other source as recorded.
fn source_name(source: &crate::journal::Source) -> String {
    match source {
        crate::journal::Source::Table(t) => t.clone(),
        other => other.to_string(),
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Failed => "failed",
        Status::Succeeded => "succeeded",
    }
}

/// `dynamo-dr status`: what a person needs to decide what to do next.
pub fn status_text(e: &Execution) -> String {
    let mut out = format!(
        "execution {}\n  kind:     {:?}\n  table:    {}\n  source:   {}\n  status:   {}\n  phase:    {}\n  created:  {} by {}@{} (pid {})\n  updated:  {}\n",
        e.id,
        e.kind,
        e.inputs.table,
        e.inputs.source,
        status_word(e.status),
        e.phase.as_str(),
        time_text(e.created_at),
        e.created_by.user,
        e.created_by.host,
        e.created_by.pid,
        time_text(e.updated_at),
    );
    let r = &e.resources;
    if let Some(b) = r.backup_arn.as_ref().or(r.backup_name.as_ref()) {
        out.push_str(&format!("  backup:   {b}\n"));
    }
    if let Some(t) = &r.temp_table {
        out.push_str(&format!(
            "  temp:     {t}{}\n",
            r.temp_table_fate
                .map(|f| format!(" ({})", f.as_str()))
                .unwrap_or_default()
        ));
    }
    for (name, p) in [("delete", &e.delete), ("copy", &e.copy)] {
        if p.segments.is_empty() {
            continue;
        }
        let done = p.segments.iter().filter(|s| s.done).count();
        out.push_str(&format!(
            "  {name}:   {} items, {done}/{} segments done, {:.1} s\n",
            p.items(),
            p.segments.len(),
            phase_seconds(p)
        ));
        for (i, s) in p.segments.iter().enumerate() {
            let state = if s.done {
                "done"
            } else if s.pages > 0 {
                "in progress"
            } else {
                "not started"
            };
            out.push_str(&format!(
                "    segment {i:>3}: {state:<11} {:>9} items {:>6} pages {:>3} re-written\n",
                s.items, s.pages, s.rewritten_pages
            ));
        }
    }
    if let (Some(s), Some(d)) = (e.source_count, e.dest_count) {
        out.push_str(&format!("  counts:   source {s}, destination {d}\n"));
    }
    if let Some(err) = &e.last_error {
        out.push_str(&format!("  last error: {err}\n"));
    }
    out.push_str("  events:\n");
    for ev in &e.events {
        out.push_str(&format!(
            "    {} {}@{}: {}\n",
            time_text(ev.at),
            ev.by.user,
            ev.by.host,
            ev.what
        ));
    }
    out
}

pub fn executions_json(all: &[Execution]) -> Value {
    Value::Array(
        all.iter()
            .map(|e| {
                json!({
                    "executionId": e.id,
                    "kind": e.kind,
                    "table": e.inputs.table,
                    "status": status_word(e.status),
                    "phase": e.phase.as_str(),
                    "createdAt": e.created_at.to_string(),
                    "updatedAt": e.updated_at.to_string(),
                    "createdBy": format!("{}@{}", e.created_by.user, e.created_by.host),
                    "lastError": e.last_error,
                })
            })
            .collect(),
    )
}

pub fn executions_text(all: &[Execution]) -> String {
    let mut out = format!(
        "{:<50} {:<8} {:<10} {:<19} {:<24} {}\n",
        "EXECUTION", "KIND", "STATUS", "PHASE", "CREATED", "BY"
    );
    for e in all {
        out.push_str(&format!(
            "{:<50} {:<8} {:<10} {:<19} {:<24} {}@{}\n",
            e.id,
            format!("{:?}", e.kind).to_lowercase(),
            status_word(e.status),
            e.phase.as_str(),
            time_text(e.created_at),
            e.created_by.user,
            e.created_by.host
        ));
    }
    out
}

pub fn actions_text(title: &str, actions: &[crate::recovery_mode::Action]) -> String {
    let mut out = format!("\n{title}\n");
    for a in actions {
        let mark = match (&a.error, a.done) {
            (Some(_), _) => "FAILED ",
            (None, true) => "done   ",
            (None, false) => "planned",
        };
        out.push_str(&format!("  {mark} {:<60} {}", a.target, a.action));
        if let Some(e) = &a.error {
            out.push_str(&format!(": {e}"));
        }
        out.push('\n');
    }
    if actions.is_empty() {
        out.push_str("  nothing to do\n");
    }
    out
}

fn reserved_text(v: Option<i32>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

pub fn recovery_status_text(
    env: &str,
    record: Option<&crate::recovery_mode::RecoveryMode>,
    functions: &[crate::recovery_mode::FunctionStatus],
) -> String {
    let state = record
        .map(|r| format!("{:?}", r.state).to_lowercase())
        .unwrap_or_else(|| "never started".into());
    let mut out = format!("recovery mode for {env}: {state}\n");
    out.push_str(&format!(
        "  {:<60} {:>8} {:>8}  {}\n",
        "FUNCTION", "CURRENT", "SAVED", "DRIFT"
    ));
    for f in functions {
        out.push_str(&format!(
            "  {:<60} {:>8} {:>8}  {}\n",
            f.function,
            reserved_text(f.current_reserved),
            if f.throttled_by_tool {
                reserved_text(f.saved_reserved)
            } else {
                "-".into()
            },
            f.drift.as_deref().unwrap_or("")
        ));
    }
    if let Some(r) = record {
        let disabled = r
            .mappings
            .values()
            .filter(|m| m.disabled && !m.restored)
            .count();
        out.push_str(&format!(
            "  event source mappings disabled by dynamo-dr: {disabled}\n"
        ));
        for (uuid, m) in &r.mappings {
            let Some(rep) = &m.replacement else {
                continue;
            };
            let new = match (&rep.new_uuid, rep.old_deleted) {
                (Some(new), _) => format!("replaced by {new} at LATEST"),
                (None, true) => "deleted; its twin is not created yet (run end again)".into(),
                (None, false) => "configuration recorded; not replaced yet (run end again)".into(),
            };
            out.push_str(&format!(
                "  skip (pattern {:?}): {} mapping {uuid} {new}; its configuration is in the \
                 journal\n",
                rep.pattern, m.function
            ));
        }
    }
    out
}

pub fn recovery_status_json(
    env: &str,
    record: Option<&crate::recovery_mode::RecoveryMode>,
    functions: &[crate::recovery_mode::FunctionStatus],
) -> Value {
    json!({ "environment": env, "record": record, "functions": functions })
}

/// The JSON printed on stdout when a run ends in an error, so scripts never parse stderr.
pub fn error_json(e: &crate::Error) -> Value {
    let status = match e.exit_status() {
        crate::ExitStatus::Refused => "refused",
        crate::ExitStatus::Mismatch => "mismatch",
        crate::ExitStatus::Failed => "failed",
    };
    json!({ "status": status, "exitCode": e.exit_status() as i32, "error": e.to_string() })
}

/// Writes to stdout as `print!` does, except that a reader that went away (`| head -1`) ends
/// the output quietly instead of panicking.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(args) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("warning: cannot write to stdout: {e}"),
    }
}

/// Every table's outcome and the incident report's paths.
pub fn print_restores(
    format: Format,
    results: &[crate::restore::job::Outcome],
    report: &crate::Result<crate::report::Written>,
) {
    if let Err(e) = report {
        tracing::warn!(
            "the incident report was not written: {e}; write it with `dynamo-dr report`"
        );
    }
    let paths = report.as_ref().ok();
    match format {
        Format::Json => {
            let mut tables: Vec<serde_json::Value> = results
                .iter()
                .map(|(id, table, r)| match r {
                    Ok(r) => restore_json(r),
                    Err(e) => serde_json::json!({
                        "executionId": id,
                        "table": table,
                        "status": "failed",
                        "error": error_json(e),
                    }),
                })
                .collect();
            let report = paths.map(crate::report::Written::json).unwrap_or_default();
            if let [single] = tables.as_mut_slice() {
                if results.iter().all(|(_, _, r)| r.is_ok()) {
                    single["report"] = report;
                    outln!("{single}");
                }
                return;
            }
            outln!(
                "{}",
                serde_json::json!({
                    "status": if results.iter().all(|(_, _, r)| r.is_ok()) { "succeeded" } else { "failed" },
                    "tables": tables,
                    "report": report,
                })
            );
        }
        Format::Text => {
            let mut out = String::new();
            for (_, table, r) in results {
                match r {
                    Ok(r) => out.push_str(&restore_text(r)),
                    Err(_) if results.len() == 1 => {}
                    Err(e) => out.push_str(&format!("Recovery of {table} FAILED: {e}\n")),
                }
            }
            if results.len() > 1 {
                let ok = results.iter().filter(|(_, _, r)| r.is_ok()).count();
                out.push_str(&format!("\n{ok} of {} tables recovered\n", results.len()));
            }
            if let Some(w) = paths {
                out.push_str(&format!("incident report: {}\n", w.text()));
            }
            out!("{out}");
        }
    }
}

/// The checklist as text.
pub fn check_text(r: &crate::check::Report) -> String {
    let mark = |i: &crate::check::Item| match i.result {
        "ok" => "ok  ",
        "fail" => "FAIL",
        _ => "    ",
    };
    let mut out = format!(
        "Preflight for environment {}\n  [{}] {}: {}\n",
        r.environment,
        mark(&r.recovery_mode),
        r.recovery_mode.check,
        r.recovery_mode.detail
    );
    for t in &r.tables {
        out.push_str(&format!("\n{} ({})\n", t.logical, t.table));
        for i in &t.items {
            out.push_str(&format!("  [{}] {}: {}\n", mark(i), i.check, i.detail));
        }
    }
    let failures = r.failures();
    out.push_str(&if failures == 0 {
        "\nAll checks passed.\n".to_string()
    } else {
        format!("\n{failures} check(s) failed.\n")
    });
    out
}

mod plan;
pub mod watch;
pub use plan::{capacity_text, estimate_text, plan_summary};

#[cfg(test)]
mod tests;
