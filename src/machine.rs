//! The recovery as one state machine over the execution record, for both drivers.
//!
//! [`next_step`] reads the record alone and says what comes next; [`segment_count`] says how
//! many segments a phase has; [`Work`] runs a phase's segments (all of them, or the one a
//! Lambda invocation was given), whatever the mode: the whole table (delete and copy, or diff)
//! or a targeted scope. The CLI steps the machine in-process (`execution::run_step`, every
//! segment of a phase at once); the Lambda worker runs one step, or one segment, per
//! invocation. Neither sequences the phases itself.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::digest::KeyDigest;
use crate::error::Result;
use crate::journal::{Execution, Inputs, Mode, Phase, Scope, SegmentRecord, Strategy, Targeted};
use crate::sync::{self, Checkpoint, SyncOptions, Totals};
use crate::table::TableInfo;
use crate::targeted::{self, KeysFile, Pass};

/// What an execution does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The forensic backup and the restore into the temporary table (a restore's first phase).
    PhaseOne,
    /// The segments of `Delete` or `Copy`.
    Segments(Phase),
    /// The check: both tables' contents or counts, or a targeted scope against its restore point.
    Check,
    /// A targeted pass whose check found conflicts: its scope is planned again.
    Replan,
    CleanUp,
    Done,
}

/// The next step, from the record alone.
pub fn next_step(exec: &Execution) -> Step {
    match exec.phase {
        Phase::BackupAndRestore => Step::PhaseOne,
        Phase::Delete | Phase::Copy => Step::Segments(exec.phase),
        Phase::Check if replans(exec) => Step::Replan,
        Phase::Check => Step::Check,
        Phase::CleanUp => Step::CleanUp,
        Phase::Done => Step::Done,
    }
}

/// A targeted run is planned again after a check that failed; a whole table's check is run again.
fn replans(exec: &Execution) -> bool {
    let targeted = exec.inputs.mode().targeted().is_some();
    targeted && exec.verification.as_ref().is_some_and(|v| !v.passed)
}

/// The segments of a phase: the record's scan segments for the whole table; for a targeted
/// scope, its own ([`targeted::segments`]: none, for a phase it does not run).
pub fn segment_count(inputs: &Inputs, phase: Phase) -> u32 {
    targeted::segments(&inputs.scope, phase, inputs.segments.max(1))
}

/// A phase's end in the record: its span closed, what it did (this process's `totals`, and what
/// the segment workers recorded apart) added, and the next phase entered.
pub fn close_phase(
    exec: &mut Execution,
    phase: Phase,
    totals: Option<Totals>,
    workers: &[Option<SegmentRecord>],
) {
    let mut targeted = Targeted::default();
    if let Some(p) = exec.progress_mut(phase) {
        p.finished_at = Some(jiff::Timestamp::now());
        if let Some(t) = totals {
            p.scan_requests += t.scans;
            p.write_requests += t.writes;
            p.read_units += t.read_units;
            p.write_units += t.write_units;
        }
        for r in workers.iter().flatten() {
            p.scan_requests += r.scan_requests;
            p.write_requests += r.write_requests;
            p.read_units += r.read_units;
            p.write_units += r.write_units;
            targeted.absorb(&r.targeted);
        }
    }
    exec.targeted.absorb(&targeted);
    exec.enter(match phase {
        Phase::Delete => Phase::Copy,
        _ => Phase::Check,
    });
}

/// What one execution's segments work on: both tables (the restore point's and the one put
/// back), the record's choices, and a targeted scope's typed inputs.
pub struct Work {
    /// The temporary table of a restore, or a sync's source.
    pub source: TableInfo,
    pub dest: TableInfo,
    pub inputs: Inputs,
    /// A partition scope's values, typed by the table's hash key.
    partitions: Vec<AttributeValue>,
    /// Names a sensitive table's keys in conflicts and samples.
    digest: Option<KeyDigest>,
    /// The scope as this process reads it: a keys scope's file is the local copy.
    scope: Scope,
    /// That copy, kept while the work runs.
    _keys: Option<KeysFile>,
    /// A window scope's exports, as recorded.
    window: Option<targeted::WindowInputs>,
}

impl Work {
    /// `keys` is where this process reads a keys scope's file (a fetched copy of an S3 object).
    pub fn new(
        source: &TableInfo,
        dest: &TableInfo,
        inputs: &Inputs,
        digest: KeyDigest,
        keys: Option<KeysFile>,
    ) -> Result<Work> {
        let (mut source, mut dest) = (source.clone(), dest.clone());
        source.sensitive |= inputs.sensitive;
        dest.sensitive |= inputs.sensitive;
        let partitions = match &inputs.scope {
            Scope::Partition { values } => targeted::partition_values(&dest, values)?,
            Scope::Table | Scope::Missing | Scope::Keys { .. } | Scope::Window { .. } => Vec::new(),
        };
        let scope = match (&inputs.scope, &keys) {
            (Scope::Keys { sha256, keys, .. }, Some(local)) => Scope::Keys {
                file: local.path().display().to_string(),
                sha256: sha256.clone(),
                keys: *keys,
            },
            (scope, _) => scope.clone(),
        };
        Ok(Work {
            source,
            dest,
            digest: inputs.sensitive.then_some(digest),
            inputs: inputs.clone(),
            partitions,
            scope,
            _keys: keys,
            window: None,
        })
    }

    /// A window scope's exports and the client that reads them.
    pub fn with_window(mut self, window: Option<targeted::WindowInputs>) -> Work {
        self.window = window;
        self
    }

    /// One targeted pass; `known` conflicts are never planned again.
    pub fn pass(&self, known: &Targeted) -> Pass<'_> {
        Pass {
            restored: &self.source,
            live: &self.dest,
            scope: &self.scope,
            partitions: &self.partitions,
            window: self.window.as_ref(),
            digest: self.digest.as_ref(),
            known_conflicts: known.conflict_keys.iter().cloned().collect(),
        }
    }

    /// Runs `phase` from `from`'s checkpoints (segments marked done are skipped), each page
    /// acknowledged through `cp`, every write fenced by it.
    pub async fn run(
        &self,
        client: &Client,
        phase: Phase,
        opts: &SyncOptions,
        from: &[crate::journal::SegmentCheckpoint],
        cp: Arc<dyn Checkpoint>,
        known: &Targeted,
    ) -> Result<Totals> {
        let diff = match self.inputs.mode() {
            Mode::Targeted(_) => {
                return targeted::run(client, self.pass(known), phase, opts, from, cp).await;
            }
            Mode::Table(strategy) => strategy == Strategy::Diff,
        };
        match phase {
            Phase::Delete => {
                let keep_if_in = diff.then_some(&self.source);
                sync::prune(client, &self.dest, keep_if_in, opts, from, cp).await
            }
            _ => sync::copy(client, &self.source, &self.dest, diff, opts, from, cp).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Kind, Verification, VerificationMethod};

    fn exec(scope: Scope, phase: Phase) -> Execution {
        let inputs = Inputs {
            table: "T".into(),
            incident_id: Some("i".into()),
            source: crate::journal::Source::Pitr(crate::validate::PitrTime::Latest),
            segments: 4,
            keep_restored_table: false,
            verify: true,
            strategy: Strategy::HardReset,
            sensitive: false,
            forensic_backup: true,
            scope,
            prewarm: None,
        };
        Execution::new("i.T".into(), Kind::Restore, inputs, phase)
    }

    fn failed_check() -> Verification {
        Verification {
            method: VerificationMethod::Scope,
            passed: false,
            source_items: Some(2),
            dest_items: Some(1),
            fingerprint: None,
            detail: String::new(),
            at: jiff::Timestamp::now(),
        }
    }

    #[test]
    fn the_next_step_follows_the_phase_and_a_failed_targeted_check_replans() {
        let steps = [
            (Phase::BackupAndRestore, Step::PhaseOne),
            (Phase::Delete, Step::Segments(Phase::Delete)),
            (Phase::Copy, Step::Segments(Phase::Copy)),
            (Phase::Check, Step::Check),
            (Phase::CleanUp, Step::CleanUp),
            (Phase::Done, Step::Done),
        ];
        for (phase, step) in steps {
            assert_eq!(next_step(&exec(Scope::Missing, phase)), step, "{phase:?}");
        }
        let mut targeted = exec(Scope::Missing, Phase::Check);
        targeted.verification = Some(failed_check());
        assert_eq!(next_step(&targeted), Step::Replan);
        let mut table = exec(Scope::Table, Phase::Check);
        table.verification = Some(failed_check());
        assert_eq!(
            next_step(&table),
            Step::Check,
            "a whole table's check runs again"
        );
    }

    #[test]
    fn segments_are_the_scans_for_the_table_and_the_scopes_own_otherwise() {
        let count = |scope, phase| segment_count(&exec(scope, phase).inputs, phase);
        assert_eq!(count(Scope::Table, Phase::Delete), 4);
        assert_eq!(count(Scope::Missing, Phase::Delete), 0);
        assert_eq!(count(Scope::Missing, Phase::Copy), 4);
        let values = vec!["a".to_string(), "b".to_string()];
        assert_eq!(count(Scope::Partition { values }, Phase::Delete), 2);
        let keys = Scope::Keys {
            file: "k".into(),
            sha256: "h".into(),
            keys: 9,
        };
        assert_eq!(count(keys, Phase::Copy), 1);
    }

    #[test]
    fn a_phase_closes_with_its_workers_counts_and_conflicts() {
        let mut e = exec(Scope::Missing, Phase::Copy);
        let mut worker = SegmentRecord {
            scan_requests: 3,
            ..Default::default()
        };
        worker.targeted.puts = 5;
        worker.targeted.add_conflict("k1".into());
        let totals = Totals {
            scans: 2,
            ..Default::default()
        };
        close_phase(&mut e, Phase::Copy, Some(totals), &[Some(worker), None]);
        assert_eq!(e.phase, Phase::Check);
        assert_eq!(e.copy.scan_requests, 5);
        assert_eq!(e.targeted.puts, 5);
        assert_eq!(e.targeted.conflicts, 1);
        assert_eq!(e.targeted.conflict_keys, vec!["k1".to_string()]);
    }
}
