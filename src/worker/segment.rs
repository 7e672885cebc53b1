//! The `segment` action: one segment advanced from its checkpoint, its checkpoints written into
//! the segment's own journal item by version, so that many workers run one phase at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{Answer, Invocation, Next, hold, load, recorded_request, still_recovering};
use crate::digest::KeyDigest;
use crate::emf::WorkerMetrics;
use crate::error::{Error, Result};
use crate::item::{Item, key_to_json};
use crate::journal::lease::{Fence, LeaseGuard};
use crate::journal::seal::{self, JournalKey};
use crate::journal::{
    Execution, Journal, PageTally, Phase, Scope, SegmentCheckpoint, SegmentRecord, Status,
};
use crate::machine::Work;
use crate::session::Session;
use crate::sync::{self, Checkpoint, SyncOptions};
use crate::table;
use crate::targeted::KeysFile;

/// Writes one segment's checkpoints into its own journal item, by version.
struct SegmentWriter {
    journal: Arc<dyn Journal>,
    id: String,
    phase: Phase,
    segment: u32,
    record: tokio::sync::Mutex<SegmentRecord>,
    version: AtomicU64,
    /// No worker has touched the segment before: its first page is not written twice.
    fresh: AtomicBool,
    /// Another worker wrote the segment first: this one stops, and its iteration asks again.
    lost: AtomicBool,
    lease: std::sync::Mutex<Option<LeaseGuard>>,
    fence: Arc<Fence>,
    sealer: Option<JournalKey>,
}

impl SegmentWriter {
    async fn check_lease(&self) -> Result<u64> {
        self.fence.check().await.map(|()| self.fence.number())
    }

    fn detach(&self) {
        if let Some(l) = self.lease.lock().unwrap_or_else(|p| p.into_inner()).take() {
            l.detach();
        }
    }
}

impl SegmentWriter {
    async fn save(&self, change: impl FnOnce(&mut SegmentRecord)) -> Result<()> {
        let mut record = self.record.lock().await;
        change(&mut record);
        record.updated_at = Some(jiff::Timestamp::now());
        let v = self.version.load(Ordering::SeqCst);
        let saved = self
            .journal
            .swap_segment(&self.id, self.phase, self.segment, &record, v)
            .await?;
        if !saved {
            self.lost.store(true, Ordering::SeqCst);
            return Err(Error::Journal(format!(
                "segment {} of phase {} of {} was advanced by another worker; this one stopped",
                self.segment,
                self.phase.as_str(),
                self.id
            )));
        }
        self.version.store(v + 1, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Checkpoint for SegmentWriter {
    async fn page_done(
        &self,
        _phase: Phase,
        _segment: u32,
        next: Option<&Item>,
        page: PageTally,
        rewritten: bool,
    ) -> Result<()> {
        self.check_lease().await?;
        let key = next.map(key_to_json).transpose()?;
        let key = match (key, &self.sealer) {
            (Some(k), Some(s)) => Some(s.seal(&k, &self.id)?),
            (k, _) => k,
        };
        let fresh = self.fresh.swap(false, Ordering::SeqCst);
        self.save(|r| {
            r.trace.record(jiff::Timestamp::now(), page);
            r.checkpoint.advance(key, page.items, rewritten && !fresh)
        })
        .await
    }

    async fn may_write(&self) -> Result<u64> {
        self.check_lease().await
    }

    /// Saved with the page's checkpoint, next: a page redone after a kill is counted once.
    async fn targeted(&self, puts: u64, deletes: u64, unchanged: u64) -> Result<()> {
        let mut record = self.record.lock().await;
        record.targeted.puts += puts;
        record.targeted.deletes += deletes;
        record.targeted.unchanged += unchanged;
        Ok(())
    }

    async fn conflict(&self, key: &str) -> Result<()> {
        self.save(|r| r.targeted.add_conflict(key.to_string()))
            .await
    }
}

/// The phases with segments; another is refused with the valid ones.
pub(super) fn segment_phase(phase: Phase) -> Result<Phase> {
    match phase {
        Phase::Delete | Phase::Copy => Ok(phase),
        other => Err(Error::invalid(
            "phase",
            format!(
                "{:?} is not a phase with segments; give \"delete\" or \"copy\"",
                other.as_str()
            ),
        )),
    }
}

/// Where one segment resumes: its record (stored, or fresh) at the further checkpoint, and the
/// checkpoints the sync engine starts from (every other segment marked done).
struct Resume {
    record: SegmentRecord,
    version: u64,
    /// No worker touched the segment before: its first page is not counted as rewritten.
    pristine: bool,
    from: Vec<SegmentCheckpoint>,
    key: Option<JournalKey>,
}

/// The segment's resume point; `None` when it is already done.
async fn resume_point(
    session: &Session,
    journal: &dyn Journal,
    exec: &Execution,
    phase: Phase,
    segment: u32,
    inv: &Invocation,
) -> Result<std::result::Result<Resume, SegmentCheckpoint>> {
    let id = &exec.id;
    let recorded = exec
        .progress(phase)
        .map(|p| p.segments.clone())
        .unwrap_or_default();
    let Some(mine) = recorded.get(segment as usize).cloned() else {
        return Err(Error::invalid(
            "segment",
            format!(
                "phase {} of {id} has {} segment(s); {segment} is none of them",
                phase.as_str(),
                recorded.len()
            ),
        ));
    };
    let stored = journal.load_segment(id, phase, segment).await?;
    let pristine = stored.is_none() && mine == SegmentCheckpoint::default();
    let (mut record, version) = stored.unwrap_or_default();
    record.checkpoint = mine.further(&record.checkpoint).clone();
    record.worker = inv.worker.clone();
    if record.checkpoint.done {
        return Ok(Err(record.checkpoint));
    }
    let (key, _) = session
        .execution_key(Some(exec), exec.inputs.sensitive, id, &exec.inputs.table)
        .await?;
    let done = SegmentCheckpoint {
        done: true,
        ..Default::default()
    };
    let mut from = vec![done; recorded.len()];
    let mut start = record.checkpoint.clone();
    if let Some(k) = start.next_key.as_ref().filter(|k| seal::is_sealed(k)) {
        let sealer = key
            .as_ref()
            .ok_or_else(|| crate::execution::missing_key(&exec.inputs.table))?;
        start.next_key = Some(sealer.open(k, id)?);
    }
    from[segment as usize] = start;
    Ok(Ok(Resume {
        record,
        version,
        pristine,
        from,
        key: key.filter(|_| exec.inputs.sensitive),
    }))
}

/// The segment's writer under the execution's lease, its record claimed before any write; an
/// answer instead when the execution moved on or another worker claimed the segment first.
async fn claim(
    session: &Session,
    journal: &Arc<dyn Journal>,
    exec: &Execution,
    (phase, segment): (Phase, u32),
    resume: Resume,
    inv: &Invocation,
) -> Result<std::result::Result<Arc<SegmentWriter>, (Next, &'static str)>> {
    let (guard, _) = hold(session, journal, exec, inv).await?;
    // Read again under the lease: a CLI run may have ended the execution or moved it on since
    // it was loaded, and released its lease.
    let current = match journal.load(&exec.id).await {
        Ok(e) => e,
        Err(e) => {
            guard.detach();
            return Err(e);
        }
    };
    if current.is_none_or(|e| e.status != Status::Running || e.phase != phase) {
        guard.detach();
        return Ok(Err((
            Next::Done,
            "the execution moved on while this worker started",
        )));
    }
    let writer = Arc::new(SegmentWriter {
        journal: journal.clone(),
        id: exec.id.clone(),
        phase,
        segment,
        record: tokio::sync::Mutex::new(resume.record),
        version: AtomicU64::new(resume.version),
        fresh: AtomicBool::new(resume.pristine),
        lost: AtomicBool::new(false),
        fence: guard.fence(),
        lease: std::sync::Mutex::new(Some(guard)),
        sealer: resume.key,
    });
    // Claimed before any write, also from a checkpoint: a duplicate invocation that read the
    // same version loses here, before it writes a page, and a worker after a kill counts its
    // redone page.
    let claimed = async {
        writer.check_lease().await?;
        writer.save(|_| {}).await
    };
    match claimed.await {
        Ok(()) => Ok(Ok(writer)),
        Err(_) if writer.lost.load(Ordering::SeqCst) => {
            writer.detach();
            Ok(Err((
                Next::Continue,
                "another worker claimed this segment; asking again",
            )))
        }
        Err(e) => {
            writer.detach();
            Err(e)
        }
    }
}

/// Advances one segment from its checkpoint until it is done or the deadline is near.
pub(super) async fn segment_step(
    session: &Session,
    id: &str,
    phase: Phase,
    segment: u32,
    inv: &Invocation,
) -> Result<Answer> {
    let phase = segment_phase(phase)?;
    let (client, journal) = session.open().await?;
    let exec = load(session, journal.as_ref(), id, inv).await?;
    let mut answer = Answer::of(&exec, Next::Done, "");
    answer.segment = Some(segment);
    answer.phase = phase.as_str().to_string();
    if exec.status != Status::Running || exec.phase != phase {
        answer.detail = format!("the execution is in phase {}", exec.phase.as_str());
        return Ok(answer);
    }
    still_recovering(session, journal.as_ref(), &exec).await?;
    let request = recorded_request(session, &exec)?;
    let resume = match resume_point(session, journal.as_ref(), &exec, phase, segment, inv).await? {
        Ok(r) => r,
        Err(done) => {
            answer.items = done.items;
            answer.detail = "done".into();
            return Ok(answer);
        }
    };
    let segments = resume.from.len() as u32;
    let from = resume.from.clone();
    let digest = resume
        .key
        .as_ref()
        .map_or_else(KeyDigest::ephemeral, JournalKey::digest_key);
    let work = segment_work(session, &client, &exec, &request, digest).await?;
    // This segment's own conflicts too: a page redone after one must keep the item.
    let mut known = exec.targeted.clone();
    known.absorb(&resume.record.targeted);
    let writer = match claim(session, &journal, &exec, (phase, segment), resume, inv).await? {
        Ok(w) => w,
        Err((state, detail)) => {
            answer.state = state;
            answer.detail = detail.into();
            return Ok(answer);
        }
    };
    let opts = SyncOptions {
        segments,
        stop_at: Some(inv.stop_at()),
        ..request.sync
    };
    let cp: Arc<dyn Checkpoint> = writer.clone();
    let stop = tokio::time::Instant::from_std(inv.stop_at() + inv.margin / 2);
    let work = work.run(&client, phase, &opts, &from, cp, &known);
    // A page cut mid-way is written again by the next invocation, from the checkpoint.
    let result = tokio::time::timeout_at(stop, work).await;
    let metrics = match &result {
        Ok(Ok(totals)) => Some(metrics(&exec, (phase, segment), totals, &opts)),
        _ => None,
    };
    let mut answer = finish(&writer, result, answer).await?;
    answer.metrics = metrics;
    Ok(answer)
}

/// What this invocation did, for the function's embedded-metric log line.
fn metrics(
    exec: &Execution,
    (phase, segment): (Phase, u32),
    totals: &sync::Totals,
    opts: &SyncOptions,
) -> WorkerMetrics {
    let deleting = phase == Phase::Delete;
    WorkerMetrics {
        table: exec.inputs.table.clone(),
        execution: exec.id.clone(),
        phase: phase.as_str().to_string(),
        segment: Some(segment),
        items_written: if deleting { 0 } else { totals.items },
        items_deleted: if deleting { totals.items } else { 0 },
        pages: totals.scans,
        write_requests: totals.writes,
        throttled: opts.write_rate.throttles() + opts.read_rate.throttles(),
        read_units: totals.read_units,
        write_units: totals.write_units,
        seconds: totals.duration.as_secs_f64(),
    }
}

/// What the segment works on: the temporary table (a window's exports) and the table, and a keys
/// scope's file read again from S3 and refused if it changed since the execution started.
async fn segment_work(
    session: &Session,
    client: &aws_sdk_dynamodb::Client,
    exec: &Execution,
    request: &crate::restore::RestoreRequest,
    digest: KeyDigest,
) -> Result<Work> {
    let dest = table::describe_existing(client, &exec.inputs.table, "table").await?;
    // A window restores no table: its targets are in the export(s) phase 1 recorded.
    if let Scope::Window { .. } = exec.inputs.scope {
        let window = crate::targeted::WindowInputs {
            s3: crate::aws::s3_client(&session.aws).await,
            exports: exec.resources.exports.clone(),
        };
        return Ok(Work::new(&dest, &dest, &exec.inputs, digest, None)?.with_window(Some(window)));
    }
    let temp = &request.names.temp_table;
    let source = table::describe_existing(client, temp, "temporary table").await?;
    let keys = KeysFile::open(&session.aws, &exec.inputs.scope).await?;
    if let (Some(k), Scope::Keys { file, sha256, .. }) = (&keys, &exec.inputs.scope) {
        let (_, now) = crate::targeted::read_keys_file(k.path(), &dest.key)?;
        if now != *sha256 {
            return Err(Error::invalid(
                "keys",
                format!(
                    "{file} changed since execution {} started (SHA-256 {sha256}, now {now}); \
                     put the original object back, or restore the new keys under a new \
                     incident id",
                    exec.id
                ),
            ));
        }
    }
    Work::new(&source, &dest, &exec.inputs, digest, keys)
}

/// The segment's totals saved and the answer to the state machine.
async fn finish(
    writer: &SegmentWriter,
    result: std::result::Result<Result<sync::Totals>, tokio::time::error::Elapsed>,
    mut answer: Answer,
) -> Result<Answer> {
    let outcome = match result {
        Ok(Ok(totals)) => {
            writer
                .save(|r| {
                    r.scan_requests += totals.scans;
                    r.write_requests += totals.writes;
                    r.read_units += totals.read_units;
                    r.write_units += totals.write_units;
                })
                .await
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(()),
    };
    let lost = writer.lost.load(Ordering::SeqCst);
    let checkpoint = writer.record.lock().await.checkpoint.clone();
    writer.detach();
    match outcome {
        Err(_) if lost => {
            answer.state = Next::Continue;
            answer.detail = "another worker advanced this segment; asking again".into();
        }
        Err(e) => return Err(e),
        Ok(()) => {
            answer.state = if checkpoint.done {
                Next::Done
            } else {
                Next::Continue
            };
            answer.detail = format!("{} page(s)", checkpoint.pages);
        }
    }
    answer.items = checkpoint.items;
    Ok(answer)
}
