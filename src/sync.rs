//! Phase 2: make the destination hold the source's items. A hard reset deletes every item of
//! the destination, then copies every item of the source into it; a diff deletes only the
//! destination's items absent from the source and puts only those missing or different.
//!
//! Each scan segment runs as its own task and overlaps the scan of its next page with the writes
//! of the current one, so memory holds at most two pages per segment whatever the table's size.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::aws;
use crate::backoff::RetryPolicy;
use crate::calls::{self, Units, charge_read, consumed_units, retrying};
use crate::digest::item_digest;
use crate::error::{Error, Result};
use crate::estimate::{PARTITION_WRITE_UNITS, TABLE_QUOTA_WRITES};
use crate::item::{
    Item, KeySchema, key_from_json, key_of, key_only, key_projection, key_text, write_units,
};
use crate::journal::{PageTally, Phase, SegmentCheckpoint};
pub use crate::pages::PageBudget;
use crate::progress::Progress;
use crate::rate::{self, KeyRangePace, Limiter};
use crate::table::TableInfo;

/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// The most batches one segment has in flight: enough to hide a round trip at a partition's
/// pace, few enough that a throttled key range is not asked many times at once.
const MAX_BATCHES_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Parallel scan segments per table.
    pub segments: u32,
    /// BatchWriteItem requests in flight at once, across all segments.
    pub write_concurrency: usize,
    /// MB of decoded scan pages held in memory at once, across all segments: this, not the
    /// table's size or the segment count, bounds the memory a sync uses. A scan reserves what
    /// DynamoDB's 1 MB page takes once decoded before it is sent, and gives back what its page
    /// did not use.
    pub pages_in_memory: usize,
    /// Items per Scan page (`Limit`); `None` for DynamoDB's 1 MB pages. Smaller pages mean more
    /// frequent checkpoints and smaller bursts against the table.
    pub page_limit: Option<i32>,
    pub retry: RetryPolicy,
    /// Shared by every segment (and the check phase's scans): `--max-read-rate`.
    pub read_rate: Arc<Limiter>,
    /// Shared by every segment: `--max-write-rate`.
    pub write_rate: Arc<Limiter>,
    /// The destination's write capacity, units per second: its provisioned capacity, else what a
    /// new on-demand table sustains. Each segment starts at its share and finds its own pace.
    pub table_write_units: Option<f64>,
    /// When set, each segment stops at the first page boundary past this instant, its
    /// checkpoint written: a Lambda invocation ends before its deadline and the next continues.
    pub stop_at: Option<std::time::Instant>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            segments: 8,
            write_concurrency: 32,
            pages_in_memory: 64,
            page_limit: None,
            retry: RetryPolicy::default(),
            read_rate: Arc::new(Limiter::unlimited()),
            write_rate: Arc::new(Limiter::unlimited()),
            table_write_units: None,
            stop_at: None,
        }
    }
}

/// Counts of one sync, for the summary and the JSON output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub deleted_items: u64,
    pub copied_items: u64,
    pub scan_requests: u64,
    pub write_requests: u64,
    pub delete_duration: Duration,
    pub copy_duration: Duration,
}

/// Told when every write of a scan page is acknowledged, before the segment writes its next page;
/// the journal stores it as the segment's checkpoint.
#[async_trait::async_trait]
pub trait Checkpoint: Send + Sync {
    /// `next` is where the segment continues (`None`: it is finished); `page` is what the page
    /// wrote and cost;
    /// `rewritten` marks the first page after a resume, which may have been written before.
    async fn page_done(
        &self,
        phase: Phase,
        segment: u32,
        next: Option<&Item>,
        page: PageTally,
        rewritten: bool,
    ) -> Result<()>;

    /// Called right before every write request: an error stops the run before it writes
    /// again (a writer whose lease another took over must not write beside it). Returns the
    /// writer's fencing number (0: not journaled), logged with the write.
    async fn may_write(&self) -> Result<u64> {
        Ok(0)
    }

    /// A targeted page's writes, told before its `page_done`.
    async fn targeted(&self, _puts: u64, _deletes: u64, _unchanged: u64) -> Result<()> {
        Ok(())
    }

    /// A targeted write refused by its condition, told at once: a redo of its page must not plan
    /// it again.
    async fn conflict(&self, _key: &str) -> Result<()> {
        Ok(())
    }
}

/// For runs that are not journaled.
pub struct NoCheckpoint;

#[async_trait::async_trait]
impl Checkpoint for NoCheckpoint {
    async fn page_done(
        &self,
        _: Phase,
        _: u32,
        _: Option<&Item>,
        _: PageTally,
        _: bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// Where a segment (re)starts.
struct SegmentStart {
    key: Option<Item>,
    /// The first page may have been written before an interruption.
    rewritten: bool,
}

/// Where each segment starts (`None`: already finished): from the journal's checkpoints, or from
/// the beginning.
fn starts(segments: u32, from: &[SegmentCheckpoint]) -> Result<Vec<Option<SegmentStart>>> {
    if from.is_empty() {
        return Ok((0..segments)
            .map(|_| {
                Some(SegmentStart {
                    key: None,
                    rewritten: false,
                })
            })
            .collect());
    }
    from.iter()
        .map(|c| {
            if c.done {
                return Ok(None);
            }
            let key = c.next_key.as_ref().map(key_from_json).transpose()?;
            // The page after the checkpoint may have been partly written before the interruption.
            Ok(Some(SegmentStart {
                key,
                rewritten: true,
            }))
        })
        .collect()
}

/// The seed's hard reset, not journaled: delete every item of `dest`, then copy every item of
/// `source`.
pub async fn hard_reset(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let cp: Arc<dyn Checkpoint> = Arc::new(NoCheckpoint);
    let deleted = prune(client, dest, None, opts, &[], cp.clone()).await?;
    let copied = copy(client, source, dest, false, opts, &[], cp).await?;
    Ok(SyncReport {
        deleted_items: deleted.items,
        copied_items: copied.items,
        scan_requests: deleted.scans + copied.scans,
        write_requests: deleted.writes + copied.writes,
        delete_duration: deleted.duration,
        copy_duration: copied.duration,
    })
}

/// Deletes the items of `dest` whose keys are not in `keep_if_in` (all of them when `None`),
/// continuing from `from` when it holds checkpoints.
pub async fn prune(
    client: &Client,
    dest: &TableInfo,
    keep_if_in: Option<&TableInfo>,
    opts: &SyncOptions,
    from: &[SegmentCheckpoint],
    cp: Arc<dyn Checkpoint>,
) -> Result<Totals> {
    let job = Job {
        scan: dest,
        dest,
        op: Op::Delete(dest.key.clone(), keep_if_in.cloned().map(Box::new)),
        phase: Phase::Delete,
    };
    transfer(client, job, opts, from, cp).await
}

/// Writes the items of `source` into `dest`: all of them, or with `only_changed` only those
/// missing from or different in `dest`. Continues from `from` when it holds checkpoints.
pub async fn copy(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    only_changed: bool,
    opts: &SyncOptions,
    from: &[SegmentCheckpoint],
    cp: Arc<dyn Checkpoint>,
) -> Result<Totals> {
    let job = Job {
        scan: source,
        dest,
        op: Op::Put(only_changed),
        phase: Phase::Copy,
    };
    transfer(client, job, opts, from, cp).await
}

#[derive(Debug, Clone)]
enum Op {
    /// Put scanned items; with `true`, only those missing from or different in the destination.
    Put(bool),
    /// Delete by key (the scan reads only the key attributes); with a table, only keys absent
    /// from it.
    Delete(KeySchema, Option<Box<TableInfo>>),
}

/// What one run of a phase did (a resumed phase counts only its own work).
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub items: u64,
    pub scans: u64,
    pub writes: u64,
    pub duration: Duration,
    /// Capacity units consumed, as DynamoDB reported them (ReturnConsumedCapacity=TOTAL).
    pub read_units: f64,
    pub write_units: f64,
}

struct Ctx {
    client: Client,
    scan_table: String,
    dest_table: String,
    op: Op,
    segments: u32,
    writers: Semaphore,
    write_concurrency: usize,
    pages: PageBudget,
    page_limit: Option<i32>,
    retry: RetryPolicy,
    read_rate: Arc<Limiter>,
    write_rate: Arc<Limiter>,
    progress: Progress,
    phase: Phase,
    cp: Arc<dyn Checkpoint>,
    scans: AtomicU64,
    writes: AtomicU64,
    units: Units,
    /// The key schema both tables share.
    key: KeySchema,
    /// Where each segment's pace starts (units per second).
    segment_start_rate: f64,
    /// How high a segment's pace may climb: its share of the table's maximum when DynamoDB
    /// states one, else one partition's most.
    segment_ceiling: f64,
    /// The destination's stated most write units per second and the scanned table's most read
    /// units, for the trace.
    capacity: (Option<f64>, Option<f64>),
    /// Segments this process started, and those still running: as they finish, the others
    /// take over their share (never another process's: a Lambda invocation runs one segment).
    running: u64,
    active: AtomicU64,
    stop_at: Option<std::time::Instant>,
}

/// One phase's work: scan one table, and write what the operation makes of it into another.
struct Job<'a> {
    scan: &'a TableInfo,
    dest: &'a TableInfo,
    op: Op,
    phase: Phase,
}

/// Every unfinished segment at once; the first failure fails the phase (the others are
/// aborted with the set).
async fn run_segments(
    ctx: &Arc<Ctx>,
    starts: Vec<Option<SegmentStart>>,
    label: &str,
) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (segment, start) in starts.into_iter().enumerate() {
        let Some(SegmentStart { key, rewritten }) = start else {
            continue;
        };
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let done = ctx.run_segment(segment as u32, key, rewritten).await;
            ctx.active.fetch_sub(1, Ordering::Relaxed);
            done
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            // Dropping the JoinSet aborts the other segments: the run has failed as a whole.
            Ok(Err(e)) => return Err(e),
            Err(join) => {
                return Err(Error::BadState {
                    what: format!("{label} segment task"),
                    state: join.to_string(),
                    hint: "this is a bug in dynamo-dr; run again to continue".into(),
                });
            }
        }
    }
    Ok(())
}

async fn transfer(
    client: &Client,
    job: Job<'_>,
    opts: &SyncOptions,
    from: &[SegmentCheckpoint],
    cp: Arc<dyn Checkpoint>,
) -> Result<Totals> {
    let Job {
        scan,
        dest,
        op,
        phase,
    } = job;
    let segments = if from.is_empty() {
        opts.segments.max(1)
    } else {
        from.len() as u32
    };
    let starts = starts(segments, from)?;
    // Named by table: a multi-table restore runs several of these at once.
    let label = format!("{} {}", phase.as_str(), dest.name);
    let share = segment_share(opts, dest, segments);
    // The segments this process runs: all of them, or one in a Lambda segment invocation.
    let running = starts.iter().filter(|s| s.is_some()).count() as u64;
    let ctx = Arc::new(Ctx {
        client: aws::without_retries(client),
        scan_table: scan.name.clone(),
        dest_table: dest.name.clone(),
        op,
        segments,
        writers: Semaphore::new(opts.write_concurrency.max(1)),
        write_concurrency: opts.write_concurrency.max(1),
        pages: PageBudget::new(opts.pages_in_memory),
        page_limit: opts
            .page_limit
            .or_else(|| paced_page_limit(opts, segments))
            .or_else(|| share_page_limit(share, segments)),
        retry: opts.retry.clone(),
        read_rate: opts.read_rate.clone(),
        write_rate: opts.write_rate.clone(),
        progress: Progress::items_of(&label, scan.approx_items.map(|n| n.max(0) as u64)),
        phase,
        cp,
        scans: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        units: Units::default(),
        key: dest.key.clone(),
        segment_start_rate: share,
        segment_ceiling: segment_ceiling(opts, dest, segments, share),
        capacity: (
            dest.write_capacity.map(|w| w as f64).or(dest
                .write_limits
                .max
                .as_ref()
                .map(|m| m.units as f64)),
            scan.read_limits.max.map(|m| m as f64),
        ),
        running,
        active: AtomicU64::new(running),
        stop_at: opts.stop_at,
    });
    run_segments(&ctx, starts, &label).await?;
    let (items, duration) = ctx.progress.clone().finish();
    Ok(Totals {
        items,
        scans: ctx.scans.load(Ordering::Relaxed),
        writes: ctx.writes.load(Ordering::Relaxed),
        duration,
        read_units: ctx.units.read(),
        write_units: ctx.units.write(),
    })
}

/// Under an item read cap, pages of about one second's share per segment, so that no single 1 MB
/// page bursts far above the cap before the next request waits.
fn paced_page_limit(opts: &SyncOptions, segments: u32) -> Option<i32> {
    let cap = opts.read_rate.cap()?;
    (cap.unit == rate::RateUnit::Items)
        .then(|| (cap.per_second / f64::from(segments.max(1))).clamp(25.0, 1000.0) as i32)
}

/// A segment's share of the destination's write capacity: what it starts at. The table's warm
/// throughput when DynamoDB gives it (else what a new on-demand table sustains), never above
/// its maximum.
fn segment_share(opts: &SyncOptions, dest: &TableInfo, segments: u32) -> f64 {
    let table = opts
        .table_write_units
        .or(dest.write_capacity.map(|w| w as f64))
        .unwrap_or_else(|| dest.write_limits.start());
    table / f64::from(segments.max(1))
}

/// How high a segment may climb. An on-demand table's (or GSI's) OnDemandThroughput maximum is
/// a hard limit: each segment's share of it less the tenth of a second of credit a pace may
/// hold, so that all segments together never ask for more in any second. Provisioned capacity
/// (the least of the table's and its GSIs'): each segment's share of it, the credit's overshoot
/// served from the burst capacity DynamoDB keeps
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html>).
/// Else the segment's share of the table's default quota, at least one partition's most: a
/// segment of a table with more partitions than segments spans several, and the pace finds
/// where DynamoDB throttles.
fn segment_ceiling(opts: &SyncOptions, dest: &TableInfo, segments: u32, share: f64) -> f64 {
    let per_segment = |units: f64| units / f64::from(segments.max(1));
    match (&dest.write_limits.max, dest.write_capacity) {
        (Some(max), None) => per_segment(max.units as f64) / (1.0 + rate::PACE_CREDIT_SECONDS),
        (Some(max), Some(_)) => per_segment(max.units as f64),
        (None, _) if opts.table_write_units.is_some() => share,
        (None, _) => PARTITION_WRITE_UNITS.max(per_segment(TABLE_QUOTA_WRITES as f64)),
    }
}

/// Without a page limit of the operator's, and with many segments: pages of about a second of
/// the segment's share (25 to 1,000 items), so that every segment writes steadily, checkpoints
/// often, and holds little memory.
fn share_page_limit(share: f64, segments: u32) -> Option<i32> {
    (segments > 8).then(|| share.clamp(25.0, 1000.0) as i32)
}

struct Page {
    items: Vec<Item>,
    next: Option<Item>,
    /// What the Scan consumed.
    read_units: f64,
    /// Held until the page's items are written, so memory stays within `pages_in_memory`.
    permit: OwnedSemaphorePermit,
}

impl Ctx {
    async fn run_segment(
        &self,
        segment: u32,
        start: Option<Item>,
        mut rewritten: bool,
    ) -> Result<()> {
        let pace = KeyRangePace::new(self.segment_start_rate, self.segment_ceiling);
        let pace = &pace;
        let mut page = self.scan_page(segment, start).await?;
        let mut throttles = 0;
        loop {
            let Page {
                items,
                next,
                read_units,
                permit,
            } = page;
            // The permit moves into the writes, so it is released as soon as they finish even
            // while the next page's scan still waits for one.
            let writes = async move {
                let _permit = permit;
                self.write_page(items, pace).await
            };
            // What the page wrote and cost, for the journal's trace.
            let mut tally = |(items, write_units): (u64, f64)| {
                let now = pace.throttles();
                let seen = std::mem::replace(&mut throttles, now);
                PageTally {
                    items,
                    read_units,
                    write_units,
                    throttled: now.saturating_sub(seen),
                    capacity: self.capacity,
                }
            };
            match next {
                Some(start) => {
                    let (n, next) =
                        tokio::try_join!(writes, self.scan_page(segment, Some(start.clone())))?;
                    // Checkpoint before the next page's writes begin: a kill then re-writes at
                    // most that one page.
                    self.cp
                        .page_done(self.phase, segment, Some(&start), tally(n), rewritten)
                        .await?;
                    rewritten = false;
                    if self.stop_at.is_some_and(|t| std::time::Instant::now() >= t) {
                        // The page read ahead is dropped unwritten; the checkpoint points at it.
                        return Ok(());
                    }
                    page = next;
                }
                None => {
                    let n = writes.await?;
                    return self
                        .cp
                        .page_done(self.phase, segment, None, tally(n), rewritten)
                        .await;
                }
            }
        }
    }

    async fn scan_page(&self, segment: u32, start: Option<Item>) -> Result<Page> {
        let mut permit = self.pages.reserve().await?;
        let mut req = self
            .client
            .scan()
            .table_name(&self.scan_table)
            .segment(segment as i32)
            .total_segments(self.segments as i32)
            // Strongly consistent: an item written just before the scan must not be missed.
            .consistent_read(true)
            .set_limit(self.page_limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        if let Op::Delete(key, _) = &self.op {
            let (projection, names) = key_projection(key);
            req = req
                .projection_expression(projection)
                .set_expression_attribute_names(Some(names));
        }
        let out = retrying(
            &self.retry,
            &self.read_rate,
            "Scan",
            &self.scan_table,
            || {
                self.scans.fetch_add(1, Ordering::Relaxed);
                req.clone().send()
            },
        )
        .await?;
        let consumed = out
            .consumed_capacity
            .as_ref()
            .and_then(|c| c.capacity_units);
        self.units.add_read(consumed);
        charge_read(&self.read_rate, out.items(), consumed);
        let items = out.items.unwrap_or_default();
        PageBudget::keep(&mut permit, &items);
        Ok(Page {
            read_units: consumed.unwrap_or_default(),
            items,
            next: out.last_evaluated_key.filter(|k| !k.is_empty()),
            permit,
        })
    }

    /// For the diff strategy, drops the items that need no write, by reading the same keys from
    /// the other table.
    async fn needing_writes(&self, items: Vec<Item>) -> Result<Vec<Item>> {
        let (other, keys_only) = match &self.op {
            Op::Put(true) => (self.dest_table.as_str(), None),
            Op::Delete(key, Some(keep)) => (keep.name.as_str(), Some(key)),
            _ => return Ok(items),
        };
        if items.is_empty() {
            return Ok(items);
        }
        let keys = items.iter().map(|i| key_only(&self.key, i)).collect();
        let theirs = calls::batch_get(
            &self.client,
            other,
            keys,
            keys_only,
            &self.retry,
            &self.read_rate,
            Some(&self.units),
        )
        .await?;
        let theirs: HashMap<String, [u8; 32]> = theirs
            .iter()
            .map(|i| (key_text(&self.key, i), item_digest(i)))
            .collect();
        Ok(items
            .into_iter()
            .filter(|i| match (&self.op, theirs.get(&key_text(&self.key, i))) {
                (Op::Put(_), Some(d)) => *d != item_digest(i),
                (Op::Put(_), None) => true,
                (Op::Delete(..), found) => found.is_none(),
            })
            .collect())
    }

    /// How much faster than its own pace a segment may write because others have finished.
    fn boost(&self) -> f64 {
        let active = self.active.load(Ordering::Relaxed).max(1);
        (self.running.max(1) as f64 / active as f64).min(8.0)
    }

    /// Batches one segment sends at once: its share of the write slots, more as others finish.
    fn batches_in_flight(&self) -> usize {
        let active = self.active.load(Ordering::Relaxed).max(1) as usize;
        (self.write_concurrency / active).clamp(1, MAX_BATCHES_IN_FLIGHT)
    }

    /// Writes the page; returns how many items it wrote.
    /// The page's items written and their write units (a put by its size, a delete one).
    async fn write_page(&self, items: Vec<Item>, pace: &KeyRangePace) -> Result<(u64, f64)> {
        let items = self.needing_writes(items).await?;
        let written = items.len() as u64;
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            requests.push(self.write_request(item)?);
        }
        let units = requests.iter().map(write_cost).sum();
        // Batches of about half a second at the segment's pace: a slow key range gets small
        // batches, so its writes arrive smoothly rather than in bursts its partition refuses.
        let size = ((pace.rate() * self.boost() / 2.0) as usize).clamp(1, BATCH_SIZE);
        let mut batches = Vec::with_capacity(requests.len().div_ceil(size));
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(size));
            batches.push(std::mem::replace(&mut requests, rest));
        }
        // Each batch pays the segment's pace before it is sent, so the pace, not its page, sets
        // how fast its key range is written; a few in flight at once when the write slots allow,
        // so that one request's round trip does not (a throttled batch holds no write slot).
        let in_flight = self.batches_in_flight();
        futures_util::stream::iter(batches.into_iter().map(|b| self.write_batch(b, pace)))
            .buffer_unordered(in_flight)
            .try_for_each(|()| async { Ok(()) })
            .await?;
        Ok((written, units))
    }

    fn write_request(&self, item: Item) -> Result<WriteRequest> {
        let built = match &self.op {
            Op::Put(_) => PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|p| WriteRequest::builder().put_request(p).build()),
            Op::Delete(key, _) => DeleteRequest::builder()
                .set_key(Some(key_of(key, item, &self.scan_table)?))
                .build()
                .map(|d| WriteRequest::builder().delete_request(d).build()),
        };
        built.map_err(|e| Error::BadState {
            what: format!("write request for {}", self.dest_table),
            state: e.to_string(),
            hint: "this is a bug in dynamo-dr".into(),
        })
    }

    /// A batch that wrote nothing: its cost refunded, and the pace slowed where DynamoDB says
    /// the limit is (this key range, or the whole table). Returns the cause, for the budget.
    fn nothing_written(
        &self,
        e: &BatchWriteError,
        items: usize,
        cost: f64,
        pace: &KeyRangePace,
    ) -> String {
        self.write_rate.charge(-(items as f64), -cost);
        pace.refund(cost / self.boost());
        match aws::throttle_scope(e) {
            Some(aws::ThrottleScope::KeyRange) => pace.throttled(),
            Some(aws::ThrottleScope::Table) => {
                pace.throttled();
                self.write_rate.throttled();
            }
            None => {}
        }
        aws::describe(e)
    }

    /// Writes one batch, retrying UnprocessedItems and throttling until all are acknowledged or
    /// the budget is spent. Never returns Ok with an item left behind.
    async fn write_batch(
        &self,
        mut requests: Vec<WriteRequest>,
        pace: &KeyRangePace,
    ) -> Result<()> {
        let mut backoff = self.retry.start();
        loop {
            let cost: f64 = requests.iter().map(write_cost).sum();
            pace.take(cost / self.boost()).await;
            self.write_rate.take(requests.len() as u64, cost).await;
            let permit = self
                .writers
                .acquire()
                .await
                .map_err(|_| Error::Interrupted)?;
            let fence = self.cp.may_write().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "dynamo_dr::fence", fence, table = %self.dest_table, "write sent");
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.dest_table, requests.clone())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            tracing::debug!(target: "dynamo_dr::fence", fence, table = %self.dest_table, ok = sent.is_ok(), "write answered");
            let last_cause = match sent {
                Ok(out) => {
                    let consumed = consumed_units(out.consumed_capacity());
                    self.units.add_write(consumed);
                    let left = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.dest_table))
                        .unwrap_or_default();
                    let done = requests.len().saturating_sub(left.len());
                    self.progress.add(done as u64);
                    // Unprocessed items are paid for again when they are retried; the rest is
                    // settled at what DynamoDB says it consumed.
                    let left_cost: f64 = left.iter().map(write_cost).sum();
                    let settle = consumed.map_or(0.0, |c| c - (cost - left_cost));
                    // A delete or an overwrite costs the stored item's size, which only the
                    // answer tells: the key range's pace pays what DynamoDB charged.
                    pace.refund(-settle / self.boost());
                    self.write_rate
                        .charge(-(left.len() as f64), settle - left_cost);
                    if left.is_empty() {
                        self.write_rate.succeeded();
                        return Ok(());
                    }
                    // UnprocessedItems say no more than that these keys' ranges were busy: a
                    // key-range signal, for this segment alone.
                    pace.refund(left_cost / self.boost());
                    pace.throttled();
                    self.write_rate.succeeded();
                    if done > 0 {
                        backoff.progressed();
                    }
                    tracing::debug!(table = %self.dest_table, unprocessed = left.len(), "retrying UnprocessedItems");
                    requests = left;
                    format!("{} UnprocessedItems", requests.len())
                }
                Err(e) if aws::is_retryable(&e) => {
                    self.nothing_written(&e, requests.len(), cost, pace)
                }
                Err(e) => return Err(aws::aws_error("BatchWriteItem", &self.dest_table, &e)),
            };
            // A batch waiting out its backoff holds no write slot: other key ranges use it.
            drop(permit);
            if backoff.wait().await.is_none() {
                return Err(Error::RetryBudgetExhausted {
                    operation: "BatchWriteItem",
                    table: self.dest_table.clone(),
                    pending: requests.len(),
                    attempts: backoff.attempts() + 1,
                    elapsed: backoff.elapsed(),
                    last_cause,
                });
            }
        }
    }
}

type BatchWriteError = aws_sdk_dynamodb::error::SdkError<
    aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError,
    aws_sdk_dynamodb::config::http::HttpResponse,
>;

/// What a write request costs in write units before DynamoDB says: a put by the item's size, a
/// delete one unit (the deleted item's size is unknown until it is gone).
fn write_cost(r: &WriteRequest) -> f64 {
    r.put_request().map_or(1.0, |p| write_units(p.item()))
}
