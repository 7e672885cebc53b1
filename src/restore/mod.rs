//! The whole in-place recovery: preflight (read-only), then the four phases.
//!
//! Phase 1 takes the forensic backup and restores the temporary table concurrently; phase 2 is
//! [`crate::sync`]; phase 3 is [`crate::verify`]; phase 4 deletes the temporary table, but only
//! when its tags prove this execution created it.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::Result;
use crate::journal;
use crate::sync::{SyncOptions, SyncReport};
use crate::table::TableInfo;
use crate::validate::{Names, PitrTime};
use crate::verify::CountCheck;

mod backup;
pub mod job;
mod phases;
mod preflight;
mod temp_table;
mod window;

pub use phases::{clean_up, execute, phase_one, plan_work, restored_table};
pub use preflight::preflight;
pub use temp_table::{check_provenance, delete_if_ours};

/// Tag on every table this tool creates; its value is the execution id.
pub const EXECUTION_TAG: &str = "dynamo-dr:execution-id";
pub const INCIDENT_TAG: &str = "dynamo-dr:incident-id";
pub const SOURCE_TAG: &str = "dynamo-dr:source-table";

/// Where the temporary table's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pitr(PitrTime),
    Backup(String),
}

impl From<&Source> for journal::Source {
    fn from(s: &Source) -> journal::Source {
        match s {
            Source::Pitr(t) => journal::Source::Pitr(*t),
            Source::Backup(arn) => journal::Source::Backup(arn.clone()),
        }
    }
}

impl Source {
    /// The source a restore's record names.
    pub fn from_record(recorded: &journal::Source) -> Result<Source> {
        match recorded {
            journal::Source::Pitr(t) => Ok(Source::Pitr(*t)),
            journal::Source::Backup(arn) => Ok(Source::Backup(arn.clone())),
            journal::Source::Table(t) => Err(crate::error::Error::BadState {
                what: "the execution's record".into(),
                state: format!("a restore whose source is table {t}"),
                hint: "the journal is damaged; inspect the record".into(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The physical name of the table to put back in place.
    pub table: String,
    pub incident: String,
    pub source: Source,
    pub names: Names,
    pub keep_restored_table: bool,
    /// Marked sensitive in the config.
    pub sensitive: bool,
    /// False when the table's config forbids backups.
    pub forensic_backup: bool,
    pub sync: SyncOptions,
    pub backup_deadline: Duration,
    pub restore_deadline: Duration,
    /// The part of the table to put back.
    pub scope: journal::Scope,
    /// `--prewarm`: warm write units per second to raise the live table to before the copy.
    pub prewarm: Option<u64>,
}

impl RestoreRequest {
    /// A new restore of `table` (its physical name and config options) for `incident`, as the
    /// CLI's flags and a state machine's payload both ask for one; the deadlines are the
    /// defaults and the restored table is deleted at the end.
    pub fn new(
        (table, options): (&str, &crate::config::TableOptions),
        incident: String,
        source: Source,
        scope: journal::Scope,
        sync: SyncOptions,
    ) -> Result<RestoreRequest> {
        Ok(RestoreRequest {
            names: crate::validate::names(table, &incident)?,
            table: table.to_string(),
            incident,
            source,
            keep_restored_table: false,
            sensitive: options.sensitive.unwrap_or(false),
            forensic_backup: options.forensic_backup.unwrap_or(true),
            sync,
            backup_deadline: crate::options::BACKUP_DEADLINE,
            restore_deadline: crate::options::restore_deadline(
                crate::options::RESTORE_TIMEOUT_MINUTES,
            ),
            scope,
            prewarm: None,
        })
    }

    /// The restore a recorded execution continues with: every choice the record's, as `resume`
    /// and the state machines' workers continue it.
    pub fn recorded(exec: &journal::Execution, sync: SyncOptions) -> Result<RestoreRequest> {
        let incident = exec.inputs.incident_id.clone().unwrap_or_default();
        Ok(RestoreRequest {
            table: exec.inputs.table.clone(),
            names: crate::lifecycle::recorded_names(exec, &incident)?,
            incident,
            source: Source::from_record(&exec.inputs.source)?,
            keep_restored_table: exec.inputs.keep_restored_table,
            sensitive: exec.inputs.sensitive,
            forensic_backup: exec.inputs.forensic_backup,
            sync,
            backup_deadline: crate::options::BACKUP_DEADLINE,
            restore_deadline: crate::options::restore_deadline(
                crate::options::RESTORE_TIMEOUT_MINUTES,
            ),
            scope: exec.inputs.scope.clone(),
            prewarm: exec.inputs.prewarm,
        })
    }
}

/// Everything preflight learned; shown to the operator before anything changes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub request: RestoreRequest,
    pub dest: TableInfo,
    pub source: SourceDetail,
    /// What else receives the table's writes (found after preflight, when a job is prepared).
    pub watchers: crate::watchers::Watchers,
    /// The strategy the run will use, and why.
    pub strategy: (journal::Strategy, String),
    /// A keys scope's file, where this process reads it.
    pub keys: Option<crate::targeted::KeysFile>,
    /// How the segment count was chosen, when the table's size or capacity changed it.
    pub segments_why: Option<String>,
    /// Reads a window scope's export.
    pub s3: Option<aws_sdk_s3::Client>,
}

#[derive(Debug, Clone)]
pub enum SourceDetail {
    Pitr {
        time: PitrTime,
        earliest: Timestamp,
        latest: Timestamp,
        recovery_period_days: Option<i32>,
    },
    Backup {
        arn: String,
        name: String,
        created: Timestamp,
        source_table: String,
    },
}

pub use crate::journal::TempTableFate;

#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub execution_id: String,
    pub table: String,
    pub restored_table: String,
    pub restored_table_fate: TempTableFate,
    pub backup_arn: String,
    /// The instant the data was put back to: the PITR time (resolved for `latest`) or the
    /// backup's creation time.
    pub restored_to: Option<Timestamp>,
    pub source: Source,
    pub sync: SyncReport,
    pub counts: CountCheck,
    /// Pages written a second time because a previous run stopped before acknowledging them.
    pub rewritten_pages: u64,
    pub strategy: crate::journal::Strategy,
    pub scope: crate::journal::Scope,
    /// Capacity units the sync consumed, as DynamoDB reported them.
    pub read_units: f64,
    pub write_units: f64,
    pub duration: Duration,
}

pub(crate) use crate::aws::to_aws_time;
