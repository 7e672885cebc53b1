//! The execution record: everything needed to audit a run and to resume it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::aws::AwsIdentity;
use crate::error::{Error, Result};
use crate::validate::PitrTime;

/// Bumped when a field changes meaning; a newer record is refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Restore,
    Sync,
}

/// Where a run is. Phases only move forward; `resume` continues the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    BackupAndRestore,
    Delete,
    Copy,
    Check,
    CleanUp,
    Done,
}

impl std::str::FromStr for Phase {
    type Err = String;

    /// A phase as [`Phase::as_str`] writes it (the state machines' payloads carry it so).
    fn from_str(text: &str) -> std::result::Result<Phase, String> {
        serde_json::from_value(serde_json::Value::String(text.to_string()))
            .map_err(|_| format!("{text:?} is not a phase"))
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::BackupAndRestore => "backup-and-restore",
            Phase::Delete => "delete",
            Phase::Copy => "copy",
            Phase::Check => "check",
            Phase::CleanUp => "clean-up",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Running,
    Failed,
    Succeeded,
}

/// Who ran it, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub user: String,
    pub host: String,
    pub pid: u32,
}

impl Operator {
    pub fn current() -> Operator {
        Operator {
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
        }
    }
}

/// The validated inputs; a rerun must match them to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    pub table: String,
    pub incident_id: Option<String>,
    pub source: Source,
    pub segments: u32,
    pub keep_restored_table: bool,
    /// Prove content equality at the end (`--no-verify` turns it off; the count check remains).
    #[serde(default = "default_true")]
    pub verify: bool,
    /// `hard-reset` (the seed's: delete everything, copy everything) or `diff` (write only what
    /// differs).
    #[serde(default)]
    pub strategy: Strategy,
    /// The table is marked sensitive: checkpoint keys are sealed, keys shown only as digests.
    #[serde(default)]
    pub sensitive: bool,
    /// Whether phase 1 takes a forensic backup (a table's config may forbid it).
    #[serde(default = "default_true")]
    pub forensic_backup: bool,
    /// The part of the table the restore puts back.
    #[serde(default)]
    pub scope: super::Scope,
    /// `--prewarm`: the warm write units per second phase one raises the live table (and each
    /// GSI below it) to before the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<u64>,
}

impl Inputs {
    pub fn mode(&self) -> super::Mode<'_> {
        super::Mode::of(&self.scope, self.strategy)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    HardReset,
    Diff,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::HardReset => "hard-reset",
            Strategy::Diff => "diff",
        }
    }
}

fn default_true() -> bool {
    true
}

/// Progress of one scan segment of the delete or copy phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentCheckpoint {
    pub done: bool,
    /// ExclusiveStartKey of the first page not yet fully acknowledged, in DynamoDB JSON.
    pub next_key: Option<serde_json::Value>,
    pub items: u64,
    pub pages: u64,
    /// Pages written again after a resume: at most one per interrupted segment.
    pub rewritten_pages: u64,
    /// When its last page was acknowledged, for the report's segment chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// One segment's checkpoint kept apart from its execution's record, so that workers advancing
/// different segments at once (a Step Functions Map) never overwrite one another. Changed only by
/// compare-and-swap on a version, so two workers on one segment cannot both advance it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentRecord {
    pub checkpoint: SegmentCheckpoint,
    pub scan_requests: u64,
    pub write_requests: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub updated_at: Option<Timestamp>,
    /// Who advanced it last: a Lambda request id, or `user@host pid`.
    pub worker: String,
    /// A targeted phase's writes and conflicts in this segment, folded into the execution's
    /// when the phase ends (absent for the whole table's phases).
    #[serde(default, skip_serializing_if = "super::Targeted::is_empty")]
    pub targeted: super::Targeted,
    /// What the segment did over time; summed into the phase's when the phase ends.
    #[serde(default, skip_serializing_if = "super::Trace::is_empty")]
    pub trace: super::Trace,
}

impl SegmentCheckpoint {
    /// A page acknowledged: the segment continues at `next` (`None`: it is finished).
    pub fn advance(&mut self, next: Option<serde_json::Value>, items: u64, rewritten: bool) {
        self.done = next.is_none();
        self.finished_at = self.done.then(Timestamp::now);
        self.next_key = next;
        self.items += items;
        self.pages += 1;
        self.rewritten_pages += u64::from(rewritten);
    }

    /// Of two checkpoints of one segment, the one further on: pages only grow, whoever writes.
    pub fn further<'a>(&'a self, other: &'a SegmentCheckpoint) -> &'a SegmentCheckpoint {
        match (self.done, other.done) {
            (true, _) => self,
            (false, true) => other,
            _ if other.pages > self.pages => other,
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseProgress {
    pub segments: Vec<SegmentCheckpoint>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub write_requests: u64,
    pub scan_requests: u64,
    #[serde(default)]
    pub read_units: f64,
    #[serde(default)]
    pub write_units: f64,
    /// What the phase did over time in the processes that ran its segments themselves (a CLI
    /// run), added to page by page.
    #[serde(default, skip_serializing_if = "super::Trace::is_empty")]
    pub trace: super::Trace,
    /// The sum of the segment workers' traces, as last read from their records: replaced
    /// whole, never added to, so reading it again counts nothing twice.
    #[serde(default, skip_serializing_if = "super::Trace::is_empty")]
    pub workers_trace: super::Trace,
}

impl PhaseProgress {
    /// Everything the phase did over time, whoever ran it.
    pub fn activity(&self) -> super::Trace {
        super::Trace::sum([&self.trace, &self.workers_trace])
    }
}

impl PhaseProgress {
    pub fn items(&self) -> u64 {
        self.segments.iter().map(|s| s.items).sum()
    }
}

/// What the run created, so a resume adopts instead of repeating and clean-up knows its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub backup_name: Option<String>,
    /// When CreateBackup was first called: a backup found by name afterwards is adopted only
    /// if it was made since (older records lack it).
    #[serde(default)]
    pub backup_requested_at: Option<Timestamp>,
    pub backup_arn: Option<String>,
    pub temp_table: Option<String>,
    /// Set before RestoreTable* is called, so a resume knows a table of that name is its own.
    pub restore_requested: bool,
    pub restored_to: Option<Timestamp>,
    pub temp_table_fate: Option<TempTableFate>,
    /// A window scope's exports, oldest first; each recorded when started, before waiting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<ExportRecord>,
}

/// One incremental export of a window scope, as started and then as checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRecord {
    pub arn: String,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// `manifest-files.json`'s S3 key and MD5 (hex), once the export completed and its
    /// manifests were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<(String, String)>,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub items: u64,
}

/// What a run reads its items from, as the record names it: `latest`, an RFC 3339 time,
/// `backup:<arn>`, or `table:<name>` for a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pitr(PitrTime),
    Backup(String),
    Table(String),
}

const BACKUP_SOURCE: &str = "backup:";
const TABLE_SOURCE: &str = "table:";

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Pitr(t) => write!(f, "{t}"),
            Source::Backup(arn) => write!(f, "{BACKUP_SOURCE}{arn}"),
            Source::Table(t) => write!(f, "{TABLE_SOURCE}{t}"),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    /// The recorded form; a recorded time is not checked against now (it was when recorded).
    fn from_str(text: &str) -> std::result::Result<Source, String> {
        if let Some(arn) = text.strip_prefix(BACKUP_SOURCE) {
            return Ok(Source::Backup(arn.to_string()));
        }
        if let Some(table) = text.strip_prefix(TABLE_SOURCE) {
            return Ok(Source::Table(table.to_string()));
        }
        if text == "latest" {
            return Ok(Source::Pitr(PitrTime::Latest));
        }
        text.parse::<Timestamp>()
            .map(|t| Source::Pitr(PitrTime::At(t)))
            .map_err(|e| {
                format!("source {text:?} is not latest, a time, backup:ARN or table:NAME: {e}")
            })
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Source, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What became of a restore's temporary table; recorded in the words people read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TempTableFate {
    #[serde(rename = "deleted")]
    Deleted,
    /// `--keep-restored-table`.
    #[serde(rename = "kept")]
    Kept,
    /// Its restore summary or tags did not name this execution, so it was left alone.
    #[serde(rename = "kept (tags do not name this execution)")]
    NotOurs,
    /// A window scope reads an export and restores no table.
    #[serde(rename = "none created")]
    NotCreated,
}

impl TempTableFate {
    pub fn as_str(self) -> &'static str {
        match self {
            TempTableFate::Deleted => "deleted",
            TempTableFate::Kept => "kept",
            TempTableFate::NotOurs => "kept (tags do not name this execution)",
            TempTableFate::NotCreated => "none created",
        }
    }
}

/// Who started or resumed a run: the local user and host, and the AWS principal, or why it could
/// not be learnt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    pub at: Timestamp,
    pub operator: Operator,
    pub aws: Option<AwsIdentity>,
    pub aws_error: Option<String>,
}

/// A sensitive table's journal key, generated by KMS for one execution and stored only wrapped:
/// any operator allowed to decrypt with the KMS key can resume the run, from any machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrappedKey {
    /// The KMS key's ARN, as GenerateDataKey reported it.
    pub kms_key_id: String,
    /// The data key encrypted under it (base64), bound to the execution id.
    pub ciphertext: String,
}

/// When the run first entered a phase and when it left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSpan {
    pub phase: Phase,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// How the check phase verified a run. Serialised as the strings journals have always held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationMethod {
    /// Every attribute of every item: `content`.
    Content,
    /// Item counts only (--no-verify): `count`.
    Count,
    /// A targeted run: every item in its scope against the restore point: `scope`.
    Scope,
}

/// The check phase's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub method: VerificationMethod,
    pub passed: bool,
    pub source_items: Option<u64>,
    pub dest_items: Option<u64>,
    /// The order-independent fingerprint both tables share, when content was proven equal.
    pub fingerprint: Option<String>,
    pub detail: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub at: Timestamp,
    pub by: Operator,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Execution {
    pub format_version: u32,
    pub id: String,
    pub kind: Kind,
    pub inputs: Inputs,
    pub status: Status,
    pub phase: Phase,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: Operator,
    pub resources: Resources,
    pub delete: PhaseProgress,
    pub copy: PhaseProgress,
    pub source_count: Option<u64>,
    pub dest_count: Option<u64>,
    pub last_error: Option<String>,
    /// The audit trail: phase transitions, resumes, lease take-overs, errors.
    pub events: Vec<Event>,
    /// Every start and resume, with its AWS principal.
    #[serde(default)]
    pub principals: Vec<Principal>,
    #[serde(default)]
    pub phases: Vec<PhaseSpan>,
    #[serde(default)]
    pub verification: Option<Verification>,
    /// Set when the journal key of a sensitive table comes from KMS (`--journal-kms-key`).
    #[serde(default)]
    pub data_key: Option<WrappedKey>,
    /// A targeted restore's writes and conflicts.
    #[serde(default)]
    pub targeted: super::Targeted,
    /// The record's version in the journal: saves are compare-and-swaps on it.
    #[serde(default)]
    pub version: u64,
}

impl Execution {
    pub fn new(id: String, kind: Kind, inputs: Inputs, first: Phase) -> Execution {
        let now = Timestamp::now();
        let mut e = Execution {
            format_version: FORMAT_VERSION,
            id,
            kind,
            inputs,
            status: Status::Running,
            phase: first,
            created_at: now,
            updated_at: now,
            created_by: Operator::current(),
            resources: Resources::default(),
            delete: PhaseProgress::default(),
            copy: PhaseProgress::default(),
            source_count: None,
            dest_count: None,
            last_error: None,
            events: Vec::new(),
            principals: Vec::new(),
            phases: Vec::new(),
            verification: None,
            data_key: None,
            targeted: Default::default(),
            version: 0,
        };
        e.event(format!("execution created, phase {}", first.as_str()));
        e.open_span(first, now);
        e
    }

    pub fn event(&mut self, what: impl Into<String>) {
        let at = Timestamp::now();
        self.updated_at = at;
        self.events.push(Event {
            at,
            by: Operator::current(),
            what: what.into(),
        });
    }

    pub fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.event(format!("phase {}", phase.as_str()));
        let now = self.updated_at;
        self.open_span(phase, now);
    }

    /// Closes the open span of any earlier phase and opens `phase`'s, once: a resume re-entering
    /// a phase keeps its first start.
    fn open_span(&mut self, phase: Phase, now: Timestamp) {
        for span in self.phases.iter_mut().filter(|s| s.phase < phase) {
            span.finished_at.get_or_insert(now);
        }
        if !self.phases.iter().any(|s| s.phase == phase) {
            self.phases.push(PhaseSpan {
                phase,
                started_at: now,
                finished_at: (phase == Phase::Done).then_some(now),
            });
        }
    }

    /// Pages written again after resumes, over both sync phases.
    pub fn rewritten_pages(&self) -> u64 {
        self.delete
            .segments
            .iter()
            .chain(&self.copy.segments)
            .map(|s| s.rewritten_pages)
            .sum()
    }

    /// Read and write capacity units consumed, over both sync phases.
    pub fn units(&self) -> (f64, f64) {
        (
            self.delete.read_units + self.copy.read_units,
            self.delete.write_units + self.copy.write_units,
        )
    }

    pub fn progress(&self, phase: Phase) -> Option<&PhaseProgress> {
        match phase {
            Phase::Delete => Some(&self.delete),
            Phase::Copy => Some(&self.copy),
            _ => None,
        }
    }

    pub fn progress_mut(&mut self, phase: Phase) -> Option<&mut PhaseProgress> {
        match phase {
            Phase::Delete => Some(&mut self.delete),
            Phase::Copy => Some(&mut self.copy),
            _ => None,
        }
    }

    /// Parses a stored record, refusing damaged ones and ones from a newer format.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Execution> {
        parse_versioned(bytes, origin, FORMAT_VERSION)
    }
}

/// Parses a journal record whose `formatVersion` may be at most `max`. A damaged record or one
/// from a newer dynamo-dr is an error naming it; it is never guessed at or overwritten.
pub fn parse_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    origin: &str,
    max: u32,
) -> Result<T> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| damaged(origin, &e.to_string()))?;
    let version = value
        .get("formatVersion")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if version > u64::from(max) {
        return Err(Error::Journal(format!(
            "{origin} was written by a newer dynamo-dr (journal format {version}; this one reads up to \
             {max}); upgrade dynamo-dr to use it. The record was not changed"
        )));
    }
    serde_json::from_value(value).map_err(|e| damaged(origin, &e.to_string()))
}

fn damaged(origin: &str, why: &str) -> Error {
    Error::Journal(format!(
        "{origin} is damaged ({why}); it was not changed. Inspect it, and move it aside to start the \
         execution afresh"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_methods_keep_the_journal_strings() {
        for (method, text) in [
            (VerificationMethod::Content, "content"),
            (VerificationMethod::Count, "count"),
            (VerificationMethod::Scope, "scope"),
        ] {
            let json = serde_json::to_value(method).unwrap();
            assert_eq!(json, serde_json::json!(text));
            let read: VerificationMethod = serde_json::from_value(json).unwrap();
            assert_eq!(read, method);
        }
    }

    #[test]
    fn phase_spans_keep_the_first_start_and_close_on_the_next_phase() {
        let mut e = Execution::new(
            "i.T".into(),
            Kind::Restore,
            inputs(),
            Phase::BackupAndRestore,
        );
        e.enter(Phase::Delete);
        let delete_started = e.phases[1].started_at;
        assert_eq!(e.phases[0].finished_at, Some(delete_started));
        // A resume re-enters the phase it stopped in: the span keeps its first start.
        e.enter(Phase::Delete);
        assert_eq!(e.phases.len(), 2);
        assert_eq!(e.phases[1].started_at, delete_started);
        e.enter(Phase::Copy);
        e.enter(Phase::Done);
        let names: Vec<Phase> = e.phases.iter().map(|s| s.phase).collect();
        assert_eq!(
            names,
            [
                Phase::BackupAndRestore,
                Phase::Delete,
                Phase::Copy,
                Phase::Done
            ]
        );
        assert!(e.phases.iter().all(|s| s.finished_at.is_some()));
        assert!(
            e.phases
                .windows(2)
                .all(|w| w[0].finished_at == Some(w[1].started_at))
        );
    }

    fn inputs() -> Inputs {
        Inputs {
            table: "T".into(),
            incident_id: None,
            source: Source::Table("S".into()),
            segments: 1,
            keep_restored_table: false,
            verify: true,
            strategy: Default::default(),
            sensitive: false,
            forensic_backup: true,
            scope: Default::default(),
            prewarm: None,
        }
    }

    #[test]
    fn sources_and_fates_read_as_older_versions_wrote_them() {
        for text in [
            "latest",
            "2025-01-15T09:00:00Z",
            "backup:arn:aws:dynamodb:us-east-1:123456789012:table/T/backup/01",
            "table:Source-Table",
        ] {
            let json = serde_json::Value::String(text.into());
            let source: Source = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&source).unwrap(), json);
        }
        assert_eq!(
            "table:S".parse::<Source>().unwrap(),
            Source::Table("S".into())
        );
        assert!("yesterday".parse::<Source>().is_err());
        for fate in [
            TempTableFate::Deleted,
            TempTableFate::Kept,
            TempTableFate::NotOurs,
        ] {
            let json = serde_json::to_value(fate).unwrap();
            assert_eq!(json, serde_json::Value::String(fate.as_str().into()));
            assert_eq!(serde_json::from_value::<TempTableFate>(json).unwrap(), fate);
        }
        // An unknown fate is damage, not a silent "not ours".
        assert!(serde_json::from_str::<TempTableFate>("\"gone\"").is_err());
    }

    #[test]
    fn damaged_and_newer_records_are_refused() {
        let e = Execution::new("i.T".into(), Kind::Sync, inputs(), Phase::Delete);
        let good = serde_json::to_vec(&e).unwrap();
        assert_eq!(Execution::parse(&good, "x").unwrap(), e);
        let truncated = &good[..good.len() / 2];
        assert!(
            Execution::parse(truncated, "x")
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        assert!(
            Execution::parse(b"\x00\x01garbage", "x")
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        let mut newer: serde_json::Value = serde_json::from_slice(&good).unwrap();
        newer["formatVersion"] = 99.into();
        let err = Execution::parse(&serde_json::to_vec(&newer).unwrap(), "x").unwrap_err();
        assert!(err.to_string().contains("newer dynamo-dr"), "{err}");
    }
}
