//! A journaled run: the recorder that keeps the execution record durable, and the sync phases
//! (delete, copy, check) that `restore` and `sync` share, each resumable from its checkpoints.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use jiff::Timestamp;

use crate::digest::KeyDigest;
use crate::error::{Error, Result};
use crate::item::{Item, key_to_json};
use crate::journal::lease::{Fence, LeaseGuard};
use crate::journal::seal::{self, JournalKey};
use crate::journal::{
    Execution, Journal, Phase, Scope, SegmentCheckpoint, Status, Strategy, Targeted, Verification,
    VerificationMethod,
};
use crate::sync::{self, Checkpoint, SyncOptions, Totals};
use crate::table::TableInfo;
use crate::targeted::{self, Pass};
use crate::verify;

/// Owns the in-memory execution record and saves every change before reporting it done.
pub struct Recorder {
    journal: Arc<dyn Journal>,
    /// Seals checkpoint keys of sensitive tables.
    key: Option<JournalKey>,
    exec: tokio::sync::Mutex<Execution>,
    lease: std::sync::Mutex<Option<LeaseGuard>>,
    fence: Option<Arc<Fence>>,
}

impl Recorder {
    pub fn new(
        journal: Arc<dyn Journal>,
        exec: Execution,
        lease: Option<LeaseGuard>,
        key: Option<JournalKey>,
    ) -> Recorder {
        Recorder {
            journal,
            key,
            exec: tokio::sync::Mutex::new(exec),
            fence: lease.as_ref().map(LeaseGuard::fence),
            lease: std::sync::Mutex::new(lease),
        }
    }

    /// Applies `change` and saves the record. Saves are serialised, so an older state can never
    /// overwrite a newer one.
    pub async fn update(&self, change: impl FnOnce(&mut Execution)) -> Result<()> {
        let mut exec = self.exec.lock().await;
        change(&mut exec);
        exec.updated_at = Timestamp::now();
        self.journal.save(&mut exec).await
    }

    pub async fn snapshot(&self) -> Execution {
        self.exec.lock().await.clone()
    }

    /// Names sensitive keys in this run's output: under the journal key, so its holder can look
    /// them up.
    pub fn key_digest(&self) -> KeyDigest {
        self.key
            .as_ref()
            .map_or_else(KeyDigest::ephemeral, JournalKey::digest_key)
    }

    /// Fails once this run's lease token is no longer the lease's (see [`Fence::check`]).
    pub async fn check_lease(&self) -> Result<u64> {
        match &self.fence {
            Some(f) => f.check().await.map(|()| f.number()),
            None => Ok(0),
        }
    }

    /// Ends this worker's part: the lease stays the execution's, for its next worker.
    pub fn detach_lease(&self) {
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(lease) = lease {
            lease.detach();
        }
    }

    /// Records the outcome and releases the lease.
    pub async fn finish(&self, error: Option<&Error>) -> Result<Execution> {
        let saved = self
            .update(|e| match error {
                None => {
                    e.status = Status::Succeeded;
                    e.last_error = None;
                    e.event("succeeded");
                }
                Some(err) => {
                    e.status = Status::Failed;
                    e.last_error = Some(err.to_string());
                    let phase = e.phase.as_str();
                    e.event(format!("failed in phase {phase}: {err}"));
                }
            })
            .await;
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take();
        let released = match (lease, error) {
            (Some(l), None) => Some(l.release().await),
            (Some(l), Some(_)) => Some(l.release_after_failure().await),
            (None, _) => None,
        };
        if let Some(Err(e)) = released {
            tracing::warn!(error = %e, "could not release the lease; it expires by itself");
        }
        saved?;
        Ok(self.snapshot().await)
    }
}

impl Recorder {
    /// Where a delete or copy phase starts: its recorded checkpoints, opened; or, on first entry,
    /// `segments` fresh ones recorded (nothing was written before, so nothing is re-written).
    async fn phase_start(
        &self,
        exec: &Execution,
        phase: Phase,
        segments: u32,
    ) -> Result<Vec<SegmentCheckpoint>> {
        let recorded = if phase == Phase::Delete {
            &exec.delete.segments
        } else {
            &exec.copy.segments
        };
        if !recorded.is_empty() {
            return self.opened(recorded).await;
        }
        let fresh = vec![SegmentCheckpoint::default(); segments as usize];
        self.update(|e| {
            if let Some(p) = e.progress_mut(phase) {
                p.segments = fresh;
                p.started_at = Some(Timestamp::now());
            }
        })
        .await?;
        Ok(Vec::new())
    }

    /// Records a finished delete or copy phase with what it did, and enters the next one.
    async fn phase_done(&self, phase: Phase, totals: Option<Totals>) -> Result<()> {
        let next = if phase == Phase::Delete {
            Phase::Copy
        } else {
            Phase::Check
        };
        self.update(|e| {
            if let Some(p) = e.progress_mut(phase) {
                p.finished_at = Some(Timestamp::now());
                if let Some(t) = totals {
                    p.scan_requests += t.scans;
                    p.write_requests += t.writes;
                    p.read_units += t.read_units;
                    p.write_units += t.write_units;
                }
            }
            e.enter(next);
        })
        .await
    }

    /// A sensitive table's checkpoint key, sealed; any other table's, as it is.
    async fn seal(&self, key: serde_json::Value) -> Result<serde_json::Value> {
        let exec = self.exec.lock().await;
        if !exec.inputs.sensitive {
            return Ok(key);
        }
        let sealer = self
            .key
            .as_ref()
            .ok_or_else(|| missing_key(&exec.inputs.table))?;
        sealer.seal(&key, &exec.id)
    }

    /// Checkpoints as the sync engine reads them: sealed keys opened.
    async fn opened(&self, recorded: &[SegmentCheckpoint]) -> Result<Vec<SegmentCheckpoint>> {
        let exec = self.exec.lock().await;
        recorded
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(k) = c.next_key.as_ref().filter(|k| seal::is_sealed(k)) {
                    let sealer = self
                        .key
                        .as_ref()
                        .ok_or_else(|| missing_key(&exec.inputs.table))?;
                    c.next_key = Some(sealer.open(k, &exec.id)?);
                }
                Ok(c)
            })
            .collect()
    }
}

/// A sensitive table's run needs the journal key, before anything is changed.
pub fn missing_key(table: &str) -> Error {
    Error::invalid(
        "journal key",
        format!(
            "{table} is marked sensitive, so its checkpoint keys are encrypted in the journal; pass \
             --journal-kms-key KMS_KEY (KMS makes a key per execution and any operator allowed to \
             decrypt can resume), or a 256-bit key with --journal-key-file FILE or {} (make one \
             with `openssl rand -hex 32` and keep it with the incident's secrets: a resume needs \
             the same key)",
            seal::KEY_ENV
        ),
    )
}

#[async_trait::async_trait]
impl Checkpoint for Recorder {
    async fn page_done(
        &self,
        phase: Phase,
        segment: u32,
        next: Option<&Item>,
        items: u64,
        rewritten: bool,
    ) -> Result<()> {
        self.check_lease().await?;
        let key = next.map(key_to_json).transpose()?;
        let key = match key {
            Some(k) => Some(self.seal(k).await?),
            None => None,
        };
        self.update(|e| {
            if let Some(seg) = e
                .progress_mut(phase)
                .and_then(|p| p.segments.get_mut(segment as usize))
            {
                seg.advance(key, items, rewritten);
            }
        })
        .await
    }

    async fn may_write(&self) -> Result<u64> {
        self.check_lease().await
    }

    async fn targeted(&self, puts: u64, deletes: u64, unchanged: u64) -> Result<()> {
        self.update(|e| {
            e.targeted.puts += puts;
            e.targeted.deletes += deletes;
            e.targeted.unchanged += unchanged;
        })
        .await
    }

    async fn conflict(&self, key: &str) -> Result<()> {
        self.update(|e| e.targeted.add_conflict(key.to_string()))
            .await
    }
}

/// Runs the delete, copy and check phases from wherever the record says the run is.
pub async fn sync_phases(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    opts: &SyncOptions,
    rec: &Arc<Recorder>,
) -> Result<()> {
    let inputs = rec.snapshot().await.inputs;
    let segments = inputs.segments.max(1);
    let (mut source, mut dest) = (source.clone(), dest.clone());
    source.sensitive |= inputs.sensitive;
    dest.sensitive |= inputs.sensitive;
    let (source, dest) = (&source, &dest);
    let opts = SyncOptions {
        segments,
        ..opts.clone()
    };
    for phase in [Phase::Delete, Phase::Copy] {
        let exec = rec.snapshot().await;
        if exec.phase != phase {
            continue;
        }
        rec.check_lease().await?;
        let from = rec.phase_start(&exec, phase, segments).await?;
        let cp: Arc<dyn Checkpoint> = rec.clone();
        let diff = exec.inputs.strategy == Strategy::Diff;
        let totals: Totals = if phase == Phase::Delete {
            let keep_if_in = diff.then_some(source);
            sync::prune(client, dest, keep_if_in, &opts, &from, cp).await?
        } else {
            sync::copy(client, source, dest, diff, &opts, &from, cp).await?
        };
        rec.phase_done(phase, Some(totals)).await?;
    }
    let exec = rec.snapshot().await;
    if exec.phase == Phase::Check {
        rec.check_lease().await?;
        let checked = if exec.inputs.verify {
            content_check(client, source, dest, &opts, rec).await
        } else {
            count_check(client, source, dest, &opts).await
        };
        record_check(rec, checked).await?;
        rec.update(|e| e.enter(Phase::CleanUp)).await?;
    }
    Ok(())
}

/// A check's outcome, to record: its verification (`source_items` unset when it could not
/// finish) and its result.
struct Checked {
    verification: Verification,
    result: Result<()>,
}

impl Checked {
    fn new(
        method: VerificationMethod,
        counts: Option<(u64, u64)>,
        fingerprint: Option<String>,
        detail: String,
        result: Result<()>,
    ) -> Checked {
        let verification = Verification {
            method,
            passed: result.is_ok(),
            source_items: counts.map(|c| c.0),
            dest_items: counts.map(|c| c.1),
            fingerprint,
            detail,
            at: Timestamp::now(),
        };
        Checked {
            verification,
            result,
        }
    }
}

/// Every attribute of every item of both tables.
async fn content_check(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    opts: &SyncOptions,
    rec: &Arc<Recorder>,
) -> Checked {
    let digest = rec.key_digest();
    let checked = verify::verify_tables(client, source, dest, opts.segments, opts, &digest, |_| {
        Ok(())
    })
    .await;
    let counts = match &checked {
        Ok((s, d)) => Some((s.count, d.count)),
        Err(Error::VerifyMismatch {
            source_items,
            dest_items,
            ..
        }) => Some((*source_items, *dest_items)),
        Err(_) => None,
    };
    let what = match &checked {
        Ok((s, _)) => format!(
            "verified: both tables hold the same {} items (fingerprint {})",
            s.count,
            s.hex()
        ),
        Err(e) => format!("verification failed: {e}"),
    };
    let fingerprint = checked.as_ref().ok().map(|(s, _)| s.hex());
    let method = VerificationMethod::Content;
    Checked::new(method, counts, fingerprint, what, checked.map(|_| ()))
}

/// Item counts only (--no-verify).
async fn count_check(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    opts: &SyncOptions,
) -> Checked {
    let checked = verify::check_counts(client, &source.name, &dest.name, opts.segments, opts).await;
    let counts = match &checked {
        Ok(c) => Some((c.source, c.dest)),
        Err(Error::CountMismatch {
            source_count,
            dest_count,
            ..
        }) => Some((*source_count, *dest_count)),
        Err(_) => None,
    };
    let what = match &counts {
        Some((s, d)) => {
            format!("count check (content not verified: --no-verify): source {s}, destination {d}")
        }
        None => "count check failed".into(),
    };
    let method = VerificationMethod::Count;
    Checked::new(method, counts, None, what, checked.map(|_| ()))
}

/// Records a check that finished (one that could not, on an AWS error, proves nothing either
/// way), and returns its result.
async fn record_check(rec: &Arc<Recorder>, checked: Checked) -> Result<()> {
    let Checked {
        verification,
        result,
    } = checked;
    if verification.source_items.is_some() {
        rec.update(|e| {
            e.source_count = verification.source_items;
            e.dest_count = verification.dest_items;
            e.event(verification.detail.clone());
            e.verification = Some(verification);
        })
        .await?;
    }
    result
}

/// A targeted restore's phases (see [`targeted`]) from wherever the record says the run is:
/// deletes (for partitions), then puts, then the check of the scope. A finished run whose
/// check found conflicts plans its scope again when resumed.
pub async fn targeted_phases(
    client: &Client,
    restored: &TableInfo,
    live: &TableInfo,
    opts: &SyncOptions,
    rec: &Arc<Recorder>,
) -> Result<()> {
    let exec = rec.snapshot().await;
    let inputs = exec.inputs.clone();
    let opts = SyncOptions {
        segments: inputs.segments.max(1),
        ..opts.clone()
    };
    let partitions = match &inputs.scope {
        Scope::Partition { values } => targeted::partition_values(live, values)?,
        _ => Vec::new(),
    };
    let digest = inputs.sensitive.then(|| rec.key_digest());
    let pass = |known: &Targeted| Pass {
        restored,
        live,
        scope: &inputs.scope,
        partitions: &partitions,
        digest: digest.as_ref(),
        known_conflicts: known.conflict_keys.iter().cloned().collect(),
    };
    if exec.phase == Phase::Check && exec.verification.as_ref().is_some_and(|v| !v.passed) {
        replan(rec).await?;
    }
    for phase in [Phase::Delete, Phase::Copy] {
        let exec = rec.snapshot().await;
        if exec.phase != phase {
            continue;
        }
        rec.check_lease().await?;
        let segments = targeted::segments(&inputs.scope, phase, opts.segments);
        let from = rec.phase_start(&exec, phase, segments).await?;
        let totals = if segments == 0 {
            None
        } else {
            let cp: Arc<dyn Checkpoint> = rec.clone();
            let pass = pass(&exec.targeted);
            Some(targeted::run(client, pass, phase, &opts, &from, cp).await?)
        };
        rec.phase_done(phase, totals).await?;
    }
    let exec = rec.snapshot().await;
    if exec.phase != Phase::Check {
        return Ok(());
    }
    rec.check_lease().await?;
    let found = targeted::check(client, pass(&exec.targeted), &opts).await?;
    scope_checked(rec, &exec, &found, restored, live).await
}

/// A finished pass whose check found conflicts: its scope is planned again.
async fn replan(rec: &Arc<Recorder>) -> Result<()> {
    rec.update(|e| {
        let conflicts = e.targeted.conflicts;
        e.event(format!(
            "planning the scope again: {conflicts} conflict(s) of the last pass"
        ));
        e.targeted.replanned += conflicts;
        e.targeted.conflicts = 0;
        e.targeted.conflict_keys.clear();
        e.delete = Default::default();
        e.copy = Default::default();
        e.verification = None;
        e.enter(Phase::Delete);
    })
    .await
}

/// Records the scope's check, and fails on differences (exit 3) or conflicts (exit 3).
async fn scope_checked(
    rec: &Arc<Recorder>,
    exec: &Execution,
    found: &targeted::ScopeCheck,
    restored: &TableInfo,
    live: &TableInfo,
) -> Result<()> {
    let inputs = &exec.inputs;
    let conflicts = exec.targeted.conflicts;
    let detail = format!(
        "scope checked ({}): {} items in scope, {} equal to the restore point, {} differing, {} \
         conflict(s) kept as the application wrote them",
        inputs.scope.as_str(),
        found.in_scope,
        found.equal,
        found.differing,
        conflicts
    );
    let verification = Verification {
        method: VerificationMethod::Scope,
        passed: found.differing == 0 && conflicts == 0,
        source_items: Some(found.in_scope),
        dest_items: Some(found.equal),
        fingerprint: None,
        detail: detail.clone(),
        at: Timestamp::now(),
    };
    rec.update(|e| {
        e.event(detail);
        e.verification = Some(verification);
    })
    .await?;
    if found.differing > 0 {
        return Err(Error::ScopeMismatch {
            table: live.name.clone(),
            execution: exec.id.clone(),
            restored: restored.name.clone(),
            in_scope: found.in_scope,
            differing: found.differing,
            sample: found.sample.join(", "),
        });
    }
    if conflicts > 0 {
        return Err(Error::Conflicts {
            table: live.name.clone(),
            execution: exec.id.clone(),
            restored: restored.name.clone(),
            conflicts,
            sample: exec
                .targeted
                .conflict_keys
                .iter()
                .take(crate::verify::SAMPLE)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    rec.update(|e| e.enter(Phase::CleanUp)).await
}
