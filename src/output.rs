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

use crate::journal::{Mode, Scope, Strategy};
use crate::restore::{Plan, RestoreReport, Source, SourceDetail};
use crate::table::TableInfo;
use crate::validate::time_text;
use crate::watchers::{Seen, Watchers};
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

/// The capacity a copy-back writes against, and what the table's GSIs add to it.
pub fn capacity_text(t: &TableInfo) -> String {
    let limits = &t.write_limits;
    let start = match &limits.warm {
        Some(warm) => format!("its warm throughput, {warm}"),
        None => format!(
            "the ~{} writes/s a new on-demand table sustains",
            crate::estimate::ON_DEMAND_START_WRITES
        ),
    };
    let table = match t.write_capacity {
        Some(w) => format!("{w} provisioned write units/s"),
        None => format!(
            "on-demand (each segment starts at its share of {start}, doubles each calm second \
             until the first throttle, then finds its key range's pace)"
        ),
    };
    let table = match (&limits.max, t.write_capacity) {
        (Some(max), None) => format!("{table}; never above {max}, in any second"),
        (Some(max), Some(w)) if max.units < w => format!("{table}; capped at {max}"),
        _ => table,
    };
    let (items, bytes) = (t.approx_items.unwrap_or(0), t.approx_bytes.unwrap_or(0));
    let table = if t.write_capacity.is_none() && items > 0 {
        let writes = crate::estimate::estimate(items as u64, bytes.max(0) as u64)
            .hard_reset
            .writes;
        let at = |rate: f64| crate::estimate::time(Some(writes / rate));
        let floor = limits
            .max
            .as_ref()
            .map(|m| {
                let most = m.units as f64 / (1.0 + crate::rate::PACE_CREDIT_SECONDS);
                format!(", never under {} at the maximum", at(most))
            })
            .unwrap_or_default();
        format!(
            "{table}; a hard reset's ~{writes:.0} write units take ~{} at the starting pace, less \
             as it climbs{floor}",
            at(limits.start())
        )
    } else {
        table
    };
    match t.gsis {
        0 => table,
        n => format!(
            "{table}; every write also writes each of the {n} global secondary index(es) that \
             project it, against the same quota: up to {}x the units, and a GSI short of \
             capacity throttles the table",
            n + 1
        ),
    }
}

/// The plan the operator confirms.
/// Where the plan restores from, as people read it.
fn source_text(source: &SourceDetail) -> String {
    match source {
        SourceDetail::Pitr {
            time,
            earliest,
            latest,
            ..
        } => {
            format!(
                "point-in-time recovery to {} (restorable window {} to {})",
                time.text(),
                time_text(*earliest),
                time_text(*latest)
            )
        }
        SourceDetail::Backup {
            arn,
            name,
            created,
            source_table,
        } => {
            format!(
                "backup {name} of {source_table}, taken {} ({arn})",
                time_text(*created)
            )
        }
    }
}

/// The run's mode in the plan's heading, and what it will then do to the live table.
fn mode_text(plan: &Plan) -> (&'static str, String) {
    let r = &plan.request;
    let (strategy, _) = &plan.strategy;
    let mode = Mode::of(&r.scope, *strategy);
    let targeted = mode.targeted().map(|scope| {
        let condition = match scope {
            Scope::Window {
                overwrite_later_writes: true,
                ..
            } => "each put or delete UNCONDITIONAL (--overwrite-later-writes)",
            Scope::Window { .. } => {
                "each put or delete conditional on the live item still being as the window left \
                 it (an item written since is kept and reported as a conflict)"
            }
            _ => {
                "each put or delete conditional on the live item being as read (a changed item \
                 is kept and reported as a conflict)"
            }
        };
        (
            "TARGETED",
            format!(
                "write only {}, {condition}; every other item is left alone, so recovery mode is \
                 not required",
                scope.describe()
            ),
        )
    });
    match (targeted, strategy) {
        (Some(t), _) => t,
        (None, Strategy::HardReset) => (
            "HARD RESET",
            format!(
                "DELETE every item of {} and copy the restored items back",
                plan.dest.name
            ),
        ),
        (None, Strategy::Diff) => (
            "DIFF",
            format!(
                "delete only the items of {} absent from the restore, and put only missing or \
                 different ones",
                plan.dest.name
            ),
        ),
    }
}

pub fn plan_summary(plan: &Plan) -> String {
    let r = &plan.request;
    let approx = plan
        .dest
        .approx_items
        .map(|n| format!("~{n} items (DescribeTable, up to 6 h stale)"))
        .unwrap_or_else(|| "unknown size".into());
    let source = source_text(&plan.source);
    let (strategy, strategy_why) = &plan.strategy;
    let (mode, then) = mode_text(plan);
    let mut text = format!(
        "\nIn-place recovery plan, execution {exec}\n\
         \x20 table ({mode}): {table} ({approx}), key {key}\n\
         \x20 restore from:       {source}\n\
         \x20 will create:        {backup}\n\
         \x20                     {temp}\n\
         \x20 will then {then}\n\
         \x20 scope:              {scope} (--scope table|missing|keys|partition|window)\n\
         \x20 strategy:           {strategy} ({strategy_why}; --strategy hard-reset|diff)\n\
         \x20 segments:           {segments}\n\
         \x20 write capacity:     {capacity}\n\
         \x20 temporary table:    {after}\n",
        strategy = match Mode::of(&r.scope, *strategy) {
            Mode::Targeted(_) => "none, targeted writes",
            Mode::Table(s) => s.as_str(),
        },
        scope = r.scope.as_str(),
        segments = match &plan.segments_why {
            None => format!("{} (--segments or the config)", r.sync.segments),
            Some(why) => why.clone(),
        },
        capacity = capacity_text(&plan.dest),
        exec = r.names.execution_id,
        table = plan.dest.name,
        key = plan.dest.key,
        backup = if r.forensic_backup {
            format!("forensic backup {}", r.names.backup)
        } else {
            "NO forensic backup (forensic_backup = false in the config)".into()
        },
        temp = match &r.scope {
            Scope::Window {
                from,
                to,
                bucket,
                prefix,
                ..
            } => format!(
                "incremental export of {from} to {to} into s3://{bucket}/{} (no table is restored)",
                prefix.as_deref().unwrap_or("")
            ),
            _ => format!(
                "temporary table {} (on-demand{}{})",
                r.names.temp_table,
                plan.dest
                    .kms_key_arn
                    .as_ref()
                    .map(|k| format!(", KMS key {k}"))
                    .unwrap_or_default(),
                without_indexes(&plan.dest.indexes),
            ),
        },
        after = match (&r.scope, r.keep_restored_table) {
            (Scope::Window { .. }, _) => "none (the export is kept in S3)",
            (_, true) if !plan.dest.indexes.is_empty() => {
                "kept afterwards (without secondary indexes)"
            }
            (_, true) => "kept afterwards",
            (_, false) => "deleted afterwards",
        },
    );
    text.push_str(&downstream_text(&plan.dest, &plan.watchers));
    text
}

/// The indexes a restore leaves out, and why that is worth saying.
fn without_indexes(indexes: &[String]) -> String {
    if indexes.is_empty() {
        return String::new();
    }
    format!(
        ", without the indexes the table has now, {}: DynamoDB builds none of them, so the \
         restore ends sooner, and the tool reads only the base table",
        indexes.join(", ")
    )
}

/// What else sees the table's writes, and how many stream records each strategy emits.
pub fn downstream_text(t: &TableInfo, w: &Watchers) -> String {
    let mut text = String::new();
    match &t.stream {
        None => text.push_str("  stream:             none\n"),
        Some(s) => {
            let mappings = w.mappings.list(|m| {
                let at_end = match &m.at_end {
                    None => String::new(),
                    Some(crate::watchers::EndPolicy::Replay) => {
                        ", replays the recovery's records at recovery-mode end".into()
                    }
                    Some(crate::watchers::EndPolicy::Skip(p)) => format!(
                        ", SKIPS them: replaced at recovery-mode end by a mapping at LATEST \
                         (skip_recovery_events {p:?})"
                    ),
                };
                format!(
                    "{} ({}, batch {}, window {} s, uuid {}{at_end})",
                    m.function,
                    m.state,
                    m.batch_size.map_or("default".into(), |b| b.to_string()),
                    m.batching_window_seconds.unwrap_or(0),
                    m.uuid
                )
            });
            let live = t.approx_items.unwrap_or_default().max(0) as u64;
            text.push_str(&format!(
                "  stream:             {} ({})\n\
                 \x20 its consumers:      {}\n\
                 \x20 stream records:     hard-reset ~{} ({live} REMOVE then ~{live} INSERT, from \
                 DescribeTable's count); diff: one per real difference only (a put that changes \
                 nothing emits no record)\n",
                s.arn,
                s.view_type,
                mappings,
                crate::watchers::hard_reset_records(live, live),
            ));
        }
    }
    let kinesis = w.kinesis.list(|d| {
        format!(
            "{} ({}; receives every write of the recovery)",
            d.stream_arn, d.status
        )
    });
    text.push_str(&format!("  Kinesis streams:    {kinesis}\n"));
    text.push_str(&format!(
        "  replicas:           {}\n",
        if t.replicas.is_empty() {
            "none".to_string()
        } else {
            let e = crate::estimate::estimate(
                t.approx_items.unwrap_or_default().max(0) as u64,
                t.approx_bytes.unwrap_or_default().max(0) as u64,
            );
            let (reset, reset_cost) =
                crate::estimate::replicated_writes(&e.hard_reset, t.replicas.len());
            let (diff, diff_cost) =
                crate::estimate::replicated_writes(&e.diff_worst, t.replicas.len());
            format!(
                "{} (every write is billed in all {} regions as replicated write units: \
                 hard-reset ~{reset:.0} replicated write units (${reset_cost:.2}); diff from 0 \
                 to ~{diff:.0} (${diff_cost:.2}) as the differences go; plus cross-Region data \
                 transfer)",
                t.replicas.join(", "),
                t.replicas.len() + 1
            )
        }
    ));
    let ttl = match &w.ttl {
        Seen::Known(Some(a)) => format!(
            "on, attribute {a} (expired items the restore brings back are deleted again by TTL)"
        ),
        Seen::Known(None) => "off".into(),
        Seen::Unknown(why) => format!("UNKNOWN ({why})"),
    };
    text.push_str(&format!("  TTL:                {ttl}\n"));
    text
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

/// The estimate as lines for the plan.
pub fn estimate_text(
    e: &crate::estimate::Estimate,
    read: Option<crate::rate::RateCap>,
    write: Option<crate::rate::RateCap>,
) -> String {
    let line = |name: &str, u: &crate::estimate::Units| {
        format!(
            "  {name:<22} {:>14.0} read units, {:>14.0} write units, ${:.2}, time at the caps: {}\n",
            u.reads,
            u.writes,
            u.dollars(),
            crate::estimate::time(u.seconds(read, write))
        )
    };
    format!(
        "Estimate from DescribeTable (~{} items, ~{} bytes, up to 6 h stale), us-east-1 on-demand \
         prices:\n  restore to the temporary table: ${:.2}\n{}{}{}",
        e.items,
        e.bytes,
        e.restore_dollars,
        line("hard-reset", &e.hard_reset),
        line("diff, nothing changed", &e.diff_best),
        line("diff, all changed", &e.diff_worst),
    )
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

#[cfg(test)]
mod tests;
