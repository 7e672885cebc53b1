//! Phase 3: the destination must hold as many items as the restore point.
//!
//! Counted by full, strongly consistent parallel scans: DescribeTable's ItemCount is refreshed only
//! about every six hours and proves nothing.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, Select};

use crate::aws::{ThrottleScope, throttle_scope};
use crate::calls::{batch_get, charge_read, retrying};
use crate::digest::{Fingerprint, KeyDigest, item_digest};
use crate::error::{Error, Result};
use crate::estimate::{PARTITION_READ_UNITS, TABLE_QUOTA_READS};
use crate::item::{Item, key_only, key_text};
use crate::progress::Progress;
use crate::rate::{KeyRangePace, Limiter, PACE_CREDIT_SECONDS, RateCap, RateUnit};
use crate::sync::{PageBudget, SyncOptions};
use crate::table::TableInfo;

/// One parallel scan: of which table, in how many segments, paced how, shown as what, and
/// whether it only counts.
struct ScanJob<'a> {
    table: &'a TableInfo,
    segments: u32,
    pace: &'a SyncOptions,
    what: &'a str,
    count_only: bool,
}

/// How each segment of a scan reads: from its share of what the table serves at once, up to
/// its share of the table's most, in pages of about half a second of its pace.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SegmentReads {
    start: f64,
    ceiling: f64,
    /// The operator's page size, which holds as it is.
    page_limit: Option<i32>,
    /// Read units an item costs, from DescribeTable's sizes until a page tells.
    per_item: Option<f64>,
    /// The table's stated most, which every reader's pages are paid from: a reader slowed in
    /// its key range leaves its share to the rest.
    table: Option<f64>,
}

/// A first page's items when nothing tells an item's size (dynalite states no item count): a
/// small probe, rather than a 1 MB page that costs a partition several seconds at once.
const PROBE_ITEMS: i32 = 100;

impl SegmentReads {
    /// Items for about half a second at `rate` units per second.
    fn page(&self, rate: f64, per_item: Option<f64>) -> i32 {
        self.page_limit.unwrap_or_else(|| {
            per_item
                .filter(|u| *u > 0.0)
                .map_or(PROBE_ITEMS, |u| (rate / 2.0 / u).clamp(25.0, 1000.0) as i32)
        })
    }
}

impl SegmentReads {
    /// Provisioned read capacity is each segment's share of it (DynamoDB's burst capacity
    /// absorbs a pace's credit); an on-demand maximum is a hard limit, less that credit; without
    /// one, a segment may climb to its share of the default table quota, at least a partition's
    /// most (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html>).
    fn of(table: &TableInfo, segments: u32, page_limit: Option<i32>) -> SegmentReads {
        let n = f64::from(segments.max(1));
        let limits = &table.read_limits;
        let start = limits.start() / n;
        let table_most = match (limits.max, limits.provisioned) {
            (Some(_), true) => Some(limits.ceiling()),
            (Some(_), false) => Some(limits.ceiling() / (1.0 + PACE_CREDIT_SECONDS)),
            (None, _) => None,
        };
        // Under a stated most, a reader may take up to twice its share (within a partition's
        // most) while others are slowed; the table's bucket keeps the sum.
        let ceiling = match table_most {
            Some(most) => (2.0 * most / n).min(PARTITION_READ_UNITS).max(most / n),
            None => PARTITION_READ_UNITS.max(TABLE_QUOTA_READS as f64 / n),
        };
        // A strongly consistent Scan costs a unit per 4 KB of the items it returns.
        let per_item = || {
            let items = table.approx_items.filter(|n| *n > 0)?;
            Some(table.approx_bytes.filter(|b| *b > 0)? as f64 / items as f64 / 4096.0)
        };
        SegmentReads {
            start,
            ceiling: ceiling.max(start),
            page_limit,
            per_item: per_item(),
            table: table_most,
        }
    }
}

/// Scans `table` with `segments` parallel readers (strongly consistent), folding every page into
/// a per-reader accumulator and merging those at the end; `fold` returns the items it saw, for
/// the progress display. Each reader paces itself on the units DynamoDB says each page
/// consumed, paid after the page (the first is served from the burst capacity DynamoDB keeps),
/// and slows where DynamoDB throttles it. The table is cut into [`SEGMENTS_PER_READER`] times
/// as many Scan segments, taken from one queue: a reader that finishes early takes the next
/// key range, so the scan does not wait on its slowest reader's whole share.
async fn parallel_scan<T, F>(
    client: &Client,
    job: ScanJob<'_>,
    fold: F,
    merge: impl Fn(&mut T, T),
) -> Result<T>
where
    T: Default + Send + 'static,
    F: Fn(&mut T, ScanOutput) -> u64 + Copy + Send + 'static,
{
    let readers = job.segments.max(1);
    let reads = SegmentReads::of(job.table, readers, job.pace.page_limit);
    let queue = SegmentQueue::new(readers);
    let scan = Arc::new(SegmentScan {
        client: crate::aws::without_retries(client),
        table: job.table.name.clone(),
        total_segments: queue.total(),
        queue,
        reads,
        count_only: job.count_only,
        pace: job.pace.clone(),
        budget: PageBudget::new(job.pace.pages_in_memory),
        table_rate: reads.table.map(|per_second| {
            Limiter::new(Some(RateCap {
                per_second,
                unit: RateUnit::CapacityUnits,
            }))
        }),
    });
    let progress = Progress::items(&format!("{} {}", job.what, job.table.name));
    let mut tasks = tokio::task::JoinSet::new();
    for reader in 0..readers {
        let (scan, progress) = (scan.clone(), progress.clone());
        tasks.spawn(async move { scan.run(reader, fold, &progress).await });
    }
    let mut total = T::default();
    while let Some(joined) = tasks.join_next().await {
        let part = joined.map_err(|e| Error::BadState {
            what: format!("{} of {}", job.what, job.table.name),
            state: e.to_string(),
            hint: "this is a bug in dynamo-dr; run the check again".into(),
        })??;
        merge(&mut total, part);
    }
    progress.finish();
    Ok(total)
}

/// Scan segments per reader: enough that the last reader to finish holds a small key range,
/// few enough that a small table's empty segments cost little.
const SEGMENTS_PER_READER: u32 = 4;

/// DynamoDB's most segments in one parallel scan
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html#DDB-Scan-request-TotalSegments>).
const MAX_TOTAL_SEGMENTS: u32 = 1_000_000;

/// The Scan segments of one parallel scan: each reader owns a stretch of the key space
/// ([`SEGMENTS_PER_READER`] adjacent segments, so mostly one partition) and reads it in order;
/// a reader whose stretch is done takes the next segment of the stretch with the most left.
#[derive(Debug)]
struct SegmentQueue {
    per_reader: u32,
    /// Per stretch, how many of its segments were handed out.
    taken: std::sync::Mutex<Vec<u32>>,
}

impl SegmentQueue {
    fn new(readers: u32) -> SegmentQueue {
        let readers = readers.clamp(1, MAX_TOTAL_SEGMENTS);
        SegmentQueue {
            per_reader: SEGMENTS_PER_READER.min(MAX_TOTAL_SEGMENTS / readers),
            taken: std::sync::Mutex::new(vec![0; readers as usize]),
        }
    }

    fn total(&self) -> u32 {
        let readers = self.taken.lock().unwrap_or_else(|p| p.into_inner()).len() as u32;
        readers * self.per_reader
    }

    /// The next segment for `reader`, or `None` when every one was handed out.
    fn take(&self, reader: u32) -> Option<u32> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let own = reader as usize % taken.len();
        let stretch = if taken[own] < self.per_reader {
            own
        } else {
            (0..taken.len()).min_by_key(|s| taken[*s])?
        };
        let next = taken[stretch];
        (next < self.per_reader).then(|| {
            taken[stretch] += 1;
            stretch as u32 * self.per_reader + next
        })
    }
}

/// One reader's pace, what its last page cost an item, and what it owes for that page.
struct Reader {
    pace: KeyRangePace,
    per_item: Option<f64>,
    owed: f64,
}

/// What every reader of one parallel scan shares.
struct SegmentScan {
    client: Client,
    table: String,
    queue: SegmentQueue,
    total_segments: u32,
    reads: SegmentReads,
    count_only: bool,
    pace: SyncOptions,
    budget: PageBudget,
    /// The table's stated most read units per second, shared by every reader.
    table_rate: Option<Limiter>,
}

impl SegmentScan {
    /// One reader: segments from the queue until none is left, at one pace throughout (mostly
    /// one partition's).
    async fn run<T: Default, F>(&self, reader: u32, fold: F, progress: &Progress) -> Result<T>
    where
        F: Fn(&mut T, ScanOutput) -> u64 + Copy,
    {
        let mut state = Reader {
            pace: KeyRangePace::new(self.reads.start, self.reads.ceiling),
            per_item: self.reads.per_item,
            owed: 0.0,
        };
        let mut acc = T::default();
        while let Some(segment) = self.queue.take(reader) {
            self.segment(segment, &mut state, &mut acc, fold, progress)
                .await?;
        }
        Ok(acc)
    }

    async fn segment<T, F>(
        &self,
        segment: u32,
        reader: &mut Reader,
        acc: &mut T,
        fold: F,
        progress: &Progress,
    ) -> Result<()>
    where
        F: Fn(&mut T, ScanOutput) -> u64,
    {
        let (retry, read) = (&self.pace.retry, &self.pace.read_rate);
        let pace = &reader.pace;
        let mut start = None;
        loop {
            // The last page is paid before the next request, whichever segment it was in.
            pace.take(std::mem::take(&mut reader.owed)).await;
            let mut req = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .segment(segment as i32)
                .total_segments(self.total_segments as i32)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .limit(self.reads.page(pace.rate(), reader.per_item))
                .set_exclusive_start_key(start);
            if self.count_only {
                req = req.select(Select::Count);
            }
            let mut permit = self.budget.reserve().await?;
            let table = self.table_rate.as_ref();
            let mut out = retrying(retry, read, "Scan", &self.table, || {
                let sent = req.clone().send();
                async move {
                    if let Some(t) = table {
                        t.ready().await;
                    }
                    let answer = sent.await;
                    match (answer.as_ref().err().and_then(throttle_scope), table) {
                        (Some(ThrottleScope::Table), Some(t)) => t.throttled(),
                        (Some(_), _) => pace.throttled(),
                        (None, Some(t)) if answer.is_ok() => t.succeeded(),
                        (None, _) => {}
                    }
                    answer
                }
            })
            .await?;
            PageBudget::keep(&mut permit, out.items());
            let consumed = out
                .consumed_capacity
                .as_ref()
                .and_then(|c| c.capacity_units);
            for limiter in std::iter::once(read.as_ref()).chain(table) {
                if self.count_only {
                    limiter.charge(out.count as f64, consumed.unwrap_or(1.0));
                } else {
                    charge_read(limiter, out.items(), consumed);
                }
            }
            // The next page from what this one cost: smaller while the pace is down.
            if let Some(units) = consumed.filter(|_| out.scanned_count > 0) {
                reader.per_item = Some(units / f64::from(out.scanned_count));
            }
            let next = out.last_evaluated_key.take().filter(|k| !k.is_empty());
            progress.add(fold(acc, out));
            drop(permit);
            reader.owed = consumed.unwrap_or(1.0);
            match next {
                Some(k) => start = Some(k),
                None => return Ok(()),
            }
        }
    }
}

/// Counts the items of `table` with `segments` parallel scans.
pub async fn count_items(
    client: &Client,
    table: &TableInfo,
    segments: u32,
    pace: &SyncOptions,
) -> Result<u64> {
    let fold = |n: &mut u64, out: ScanOutput| {
        let c = u64::try_from(out.count).unwrap_or(0);
        *n += c;
        c
    };
    let job = ScanJob {
        table,
        segments,
        pace,
        what: "count",
        count_only: true,
    };
    parallel_scan(client, job, fold, |a, b| *a += b).await
}

/// The outcome of comparing the two counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountCheck {
    pub source: u64,
    pub dest: u64,
}

/// Counts both tables concurrently and fails with [`Error::CountMismatch`] when they differ.
pub async fn check_counts(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    segments: u32,
    pace: &SyncOptions,
) -> Result<CountCheck> {
    let (s, d) = tokio::try_join!(
        count_items(client, source, segments, pace),
        count_items(client, dest, segments, pace)
    )?;
    if s != d {
        return Err(Error::CountMismatch {
            source_table: source.name.clone(),
            dest: dest.name.clone(),
            source_count: s,
            dest_count: d,
        });
    }
    Ok(CountCheck { source: s, dest: d })
}

/// The fingerprint of every item of `table`, from `segments` parallel scans.
pub async fn fingerprint(
    client: &Client,
    table: &TableInfo,
    segments: u32,
    pace: &SyncOptions,
) -> Result<Fingerprint> {
    let fold = |fp: &mut Fingerprint, out: ScanOutput| {
        let items = out.items.unwrap_or_default();
        items.iter().for_each(|i| fp.add(&item_digest(i)));
        items.len() as u64
    };
    let job = ScanJob {
        table,
        segments,
        pace,
        what: "fingerprint",
        count_only: false,
    };
    parallel_scan(client, job, fold, |a, b| a.merge(&b)).await
}

/// Items that differ between two tables, found without holding either table in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    /// In the source, not in the destination.
    pub missing: u64,
    /// In the destination, not in the source.
    pub extra: u64,
    /// In both, with different content.
    pub changed: u64,
    /// Up to [`SAMPLE`] keys of each kind, as DynamoDB JSON.
    pub sample: Vec<String>,
}

pub const SAMPLE: usize = 10;

impl Differences {
    pub fn total(&self) -> u64 {
        self.missing + self.extra + self.changed
    }
}

/// What one differing key is, for `--keys-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    Missing,
    Extra,
    Changed,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::Changed => "changed",
        }
    }
}

/// One differing item: its key (as DynamoDB JSON) and its versions in the source and destination.
pub struct Difference<'a> {
    pub kind: DiffKind,
    pub key: &'a str,
    pub source: Option<&'a Item>,
    pub dest: Option<&'a Item>,
}

/// Every differing item: source pages against the destination, then destination pages against
/// the source, one page in memory at a time. `on_diff` sees each one (for `--keys-out` and
/// `diff --out`). Single-segment: it runs once fingerprints already disagree, or for an export.
pub async fn differences(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    pace: &SyncOptions,
    digest: &KeyDigest,
    mut on_diff: impl FnMut(Difference<'_>) -> Result<()>,
) -> Result<Differences> {
    let (retry, read) = (&pace.retry, pace.read_rate.as_ref());
    let client = &crate::aws::without_retries(client);
    let sensitive = source.sensitive || dest.sensitive;
    let mut d = Differences::default();
    let mut note = |d: &mut Differences, diff: Difference<'_>| -> Result<()> {
        match diff.kind {
            DiffKind::Missing => d.missing += 1,
            DiffKind::Extra => d.extra += 1,
            DiffKind::Changed => d.changed += 1,
        }
        if d.sample.len() < SAMPLE {
            d.sample
                .push(format!("{} {}", diff.kind.as_str(), diff.key));
        }
        on_diff(diff)
    };
    for (scan, other, forward) in [(source, dest, true), (dest, source, false)] {
        let mut start = None;
        loop {
            let req = client
                .scan()
                .table_name(&scan.name)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            let out = retrying(retry, read, "Scan", &scan.name, || req.clone().send()).await?;
            let items = out.items.unwrap_or_default();
            charge_read(read, &items, None);
            // Backwards, only whether the key exists in the source counts.
            let keys: Vec<Item> = items.iter().map(|i| key_only(&scan.key, i)).collect();
            let only = (!forward).then_some(&other.key);
            let theirs = batch_get(client, &other.name, keys, only, retry, read, None).await?;
            let theirs: HashMap<String, &Item> = theirs
                .iter()
                .map(|i| (key_text(&other.key, i), i))
                .collect();
            for item in &items {
                let key = key_text(&scan.key, item);
                let shown = if sensitive {
                    digest.name(&key)
                } else {
                    key.clone()
                };
                // A sensitive table's items never leave this function.
                let diff = |kind, source, dest| Difference {
                    kind,
                    key: &shown,
                    source: if sensitive { None } else { source },
                    dest: if sensitive { None } else { dest },
                };
                match (theirs.get(&key), forward) {
                    (None, true) => note(&mut d, diff(DiffKind::Missing, Some(item), None))?,
                    (None, false) => note(&mut d, diff(DiffKind::Extra, None, Some(item)))?,
                    (Some(t), true) if item_digest(t) != item_digest(item) => {
                        note(&mut d, diff(DiffKind::Changed, Some(item), Some(t)))?
                    }
                    _ => {}
                }
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    Ok(d)
}

/// Proves `dest` holds exactly the items of `source`: equal fingerprints, or
/// [`Error::VerifyMismatch`] with the differing keys counted and sampled.
pub async fn verify_tables(
    client: &Client,
    source: &TableInfo,
    dest: &TableInfo,
    segments: u32,
    pace: &SyncOptions,
    digest: &KeyDigest,
    on_diff: impl FnMut(Difference<'_>) -> Result<()>,
) -> Result<(Fingerprint, Fingerprint)> {
    let (s, d) = tokio::try_join!(
        fingerprint(client, source, segments, pace),
        fingerprint(client, dest, segments, pace)
    )?;
    if s == d {
        return Ok((s, d));
    }
    tracing::warn!(source = %source.name, dest = %dest.name, "fingerprints differ; finding the differing keys");
    let diff = differences(client, source, dest, pace, digest, on_diff).await?;
    Err(Error::VerifyMismatch {
        source_table: source.name.clone(),
        dest: dest.name.clone(),
        source_items: s.count,
        dest_items: d.count,
        missing: diff.missing,
        extra: diff.extra,
        changed: diff.changed,
        sample: diff.sample.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{
        KeySchemaElement, KeyType, ProvisionedThroughputDescription, TableDescription,
    };

    fn provisioned(read_units: i64, items: i64, bytes: i64) -> TableInfo {
        let t = TableDescription::builder()
            .table_name("T")
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .provisioned_throughput(
                ProvisionedThroughputDescription::builder()
                    .read_capacity_units(read_units)
                    .write_capacity_units(read_units / 3)
                    .build(),
            )
            .item_count(items)
            .table_size_bytes(bytes)
            .build();
        TableInfo::from_description(&t).unwrap()
    }

    #[test]
    fn readers_read_their_own_stretch_then_help_the_one_with_most_left() {
        let q = SegmentQueue::new(4);
        assert_eq!(q.total(), 16);
        // Each reader starts in its own quarter of the key space.
        assert_eq!([0, 1, 2, 3].map(|r| q.take(r)), [0, 4, 8, 12].map(Some));
        assert_eq!([0, 0, 0].map(|r| q.take(r)), [1, 2, 3].map(Some));
        // Reader 0's stretch is done: it helps the stretch with the most left (1's, first).
        assert_eq!(q.take(0), Some(5));
        let mut rest: Vec<u32> = std::iter::from_fn(|| q.take(2)).collect();
        rest.sort_unstable();
        assert_eq!(rest, [6, 7, 9, 10, 11, 13, 14, 15]);
        assert_eq!((q.take(0), q.take(3)), (None, None));
        // Never more segments than a Scan allows.
        let q = SegmentQueue::new(400_000);
        assert_eq!((q.total(), q.per_reader), (800_000, 2));
    }

    #[test]
    fn each_segment_reads_its_share_of_the_capacity_in_pages_of_half_a_second() {
        // 7,200 units over 128 segments: 56.25 each; half a second of that is 28 units, 112
        // items of 1 KB.
        let r = SegmentReads::of(&provisioned(7_200, 12_000, 12_288_000), 128, None);
        // A reader may take twice its share while others are slowed; the table keeps the sum.
        assert_eq!((r.start, r.ceiling, r.table), (56.25, 112.5, Some(7_200.0)));
        assert_eq!(r.page(r.start, r.per_item), 112);
        // A page that cost half a unit an item sizes the next: 56 items; never under 25.
        assert_eq!(r.page(r.start, Some(0.5)), 56);
        assert_eq!(r.page(5.0, Some(0.5)), 25);
        // The operator's page size wins; an unknown size starts with a small probe.
        let r = SegmentReads::of(&provisioned(7_200, 12_000, 12_288_000), 128, Some(10));
        assert_eq!(r.page(r.start, r.per_item), 10);
        let r = SegmentReads::of(&provisioned(7_200, 0, 0), 8, None);
        assert_eq!(r.page(r.start, r.per_item), PROBE_ITEMS);
        // A new on-demand table: 12,000 to start, up to the quota's share or a partition's most.
        let mut open = provisioned(7_200, 0, 0);
        open.read_limits = Default::default();
        let r = SegmentReads::of(&open, 8, None);
        assert_eq!((r.start, r.ceiling), (1_500.0, 5_000.0));
        let r = SegmentReads::of(&open, 64, None);
        assert_eq!((r.start, r.ceiling), (187.5, 3_000.0));
    }
}
