//! Final summaries: text for people, one JSON object for scripts.

use serde_json::{Value, json};

use crate::restore::{RestoreReport, Source};
use crate::sync::SyncReport;
use crate::verify::CountCheck;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

fn secs(d: std::time::Duration) -> f64 {
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
        "phaseSeconds": {
            "backupAndRestore": secs(r.phase1_duration),
            "delete": secs(r.sync.delete_duration),
            "copy": secs(r.sync.copy_duration),
            "check": secs(r.verify_duration),
        },
        "durationSeconds": secs(r.duration),
    })
}

pub fn restore_text(r: &RestoreReport) -> String {
    let source = match &r.source {
        Source::Pitr(t) => format!(
            "point in time {}",
            r.restored_to
                .map(|t| t.to_string())
                .unwrap_or_else(|| t.to_string())
        ),
        Source::Backup(a) => format!(
            "backup {a}{}",
            r.restored_to
                .map(|t| format!(" (taken {t})"))
                .unwrap_or_default()
        ),
    };
    format!(
        "Recovery succeeded: {table} is back to {source}\n\
         \x20 execution:        {exec}\n\
         \x20 forensic backup:  {backup} (kept)\n\
         \x20 temporary table:  {temp} ({fate})\n\
         \x20 deleted items:    {deleted} in {del_s:.1} s\n\
         \x20 copied items:     {copied} in {copy_s:.1} s\n\
         \x20 item count check: {dest_n} in {table} = {src_n} in the restore (full scans)\n\
         \x20 total time:       {total:.1} s\n",
        table = r.table,
        exec = r.execution_id,
        backup = r.backup_arn,
        temp = r.restored_table,
        fate = r.restored_table_fate.as_str(),
        deleted = r.sync.deleted_items,
        del_s = r.sync.delete_duration.as_secs_f64(),
        copied = r.sync.copied_items,
        copy_s = r.sync.copy_duration.as_secs_f64(),
        dest_n = r.counts.dest,
        src_n = r.counts.source,
        total = r.duration.as_secs_f64(),
    )
}

pub fn sync_json(
    source: &str,
    dest: &str,
    s: &SyncReport,
    counts: &CountCheck,
    total: std::time::Duration,
) -> Value {
    json!({
        "status": "succeeded",
        "source": source,
        "dest": dest,
        "deletedItems": s.deleted_items,
        "copiedItems": s.copied_items,
        "sourceItemCount": counts.source,
        "destItemCount": counts.dest,
        "scanRequests": s.scan_requests,
        "writeRequests": s.write_requests,
        "phaseSeconds": { "delete": secs(s.delete_duration), "copy": secs(s.copy_duration) },
        "durationSeconds": secs(total),
    })
}

pub fn sync_text(
    source: &str,
    dest: &str,
    s: &SyncReport,
    counts: &CountCheck,
    total: std::time::Duration,
) -> String {
    format!(
        "Sync succeeded: {dest} now holds the items of {source}\n\
         \x20 deleted items:    {} in {:.1} s\n\
         \x20 copied items:     {} in {:.1} s\n\
         \x20 item count check: {} = {} (full scans)\n\
         \x20 requests:         {} scan, {} BatchWriteItem\n\
         \x20 total time:       {:.1} s\n",
        s.deleted_items,
        s.delete_duration.as_secs_f64(),
        s.copied_items,
        s.copy_duration.as_secs_f64(),
        counts.dest,
        counts.source,
        s.scan_requests,
        s.write_requests,
        total.as_secs_f64(),
    )
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
