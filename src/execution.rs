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
    self, Execution, Journal, PageTally, Phase, SegmentCheckpoint, Status, Targeted, Verification,
    VerificationMethod,
};
use crate::machine::{self, Step, Work};
use crate::sync::{Checkpoint, SyncOptions, Totals};
use crate::table::TableInfo;
use crate::targeted;
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
        let recorded = exec.progress(phase).map_or(&[][..], |p| &p.segments[..]);
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

    /// The conflicts of this execution so far, those segment workers in AWS recorded in this
    /// phase included: a page they left unacknowledged and this run writes again must keep them.
    async fn known_conflicts(&self, exec: &Execution, phase: Phase) -> Result<Targeted> {
        let count = exec.progress(phase).map_or(0, |p| p.segments.len()) as u32;
        let workers = journal::load_segments(self.journal.as_ref(), &exec.id, phase, count).await?;
        let mut known = exec.targeted.clone();
        for r in workers.iter().flatten() {
            known.absorb(&r.targeted);
        }
        Ok(known)
    }

    /// Records a finished delete or copy phase with what it did (and what segment workers in
    /// AWS recorded apart, when they ran part of it), and enters the next one.
    async fn phase_done(&self, phase: Phase, totals: Option<Totals>) -> Result<()> {
        let (id, count) = {
            let exec = self.exec.lock().await;
            let count = exec.progress(phase).map_or(0, |p| p.segments.len()) as u32;
            (exec.id.clone(), count)
        };
        let workers = journal::load_segments(self.journal.as_ref(), &id, phase, count).await?;
        self.update(|e| machine::close_phase(e, phase, totals, &workers))
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
        page: PageTally,
        rewritten: bool,
    ) -> Result<()> {
        self.check_lease().await?;
        let key = next.map(key_to_json).transpose()?;
        let key = match key {
            Some(k) => Some(self.seal(k).await?),
            None => None,
        };
        self.update(|e| {
            if let Some(p) = e.progress_mut(phase) {
                p.trace.record(jiff::Timestamp::now(), page);
                if let Some(seg) = p.segments.get_mut(segment as usize) {
                    seg.advance(key, page.items, rewritten);
                }
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

/// Steps the machine from wherever the record says the run is, up to its clean-up: every
/// segment of a phase at once, in this process.
pub async fn run_to_clean_up(
    client: &Client,
    work: &Work,
    opts: &SyncOptions,
    rec: &Arc<Recorder>,
) -> Result<()> {
    loop {
        match machine::next_step(&rec.snapshot().await) {
            Step::PhaseOne | Step::CleanUp | Step::Done => return Ok(()),
            step => run_step(client, work, step, opts, rec).await?,
        }
    }
}

/// Runs one step after phase one and before the clean-up: a phase's segments (all of them),
/// the check, or a targeted scope planned again. Each ends by entering the next phase.
pub async fn run_step(
    client: &Client,
    work: &Work,
    step: Step,
    opts: &SyncOptions,
    rec: &Arc<Recorder>,
) -> Result<()> {
    let exec = rec.snapshot().await;
    let opts = SyncOptions {
        segments: exec.inputs.segments.max(1),
        ..opts.clone()
    };
    rec.check_lease().await?;
    match step {
        Step::Segments(phase) => {
            let segments = machine::segment_count(&exec.inputs, phase);
            let from = rec.phase_start(&exec, phase, segments).await?;
            let totals = if segments == 0 {
                None
            } else {
                let known = rec.known_conflicts(&exec, phase).await?;
                let cp: Arc<dyn Checkpoint> = rec.clone();
                Some(work.run(client, phase, &opts, &from, cp, &known).await?)
            };
            rec.phase_done(phase, totals).await
        }
        Step::Check if exec.inputs.mode().targeted().is_some() => {
            let found = targeted::check(client, work.pass(&exec.targeted), &opts).await?;
            scope_checked(rec, &exec, &found, work).await
        }
        Step::Check => {
            let (source, dest) = (&work.source, &work.dest);
            let checked = if exec.inputs.verify {
                content_check(client, source, dest, &opts, rec).await
            } else {
                count_check(client, source, dest, &opts).await
            };
            record_check(rec, checked).await?;
            rec.update(|e| e.enter(Phase::CleanUp)).await
        }
        Step::Replan => replan(rec).await,
        Step::PhaseOne | Step::CleanUp | Step::Done => Err(Error::BadState {
            what: format!("execution {}", exec.id),
            state: format!("in phase {}", exec.phase.as_str()),
            hint: "a step of the data phases was asked of it; this is a bug, report it".into(),
        }),
    }
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
    let checked = verify::check_counts(client, source, dest, opts.segments, opts).await;
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

/// A finished pass whose check found conflicts: its scope is planned again, from segment
/// records emptied (a pass in AWS left its own).
async fn replan(rec: &Arc<Recorder>) -> Result<()> {
    let exec = rec.snapshot().await;
    journal::reset_segments(rec.journal.as_ref(), &exec).await?;
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
    work: &Work,
) -> Result<()> {
    let (restored, live) = (&work.source, &work.dest);
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
