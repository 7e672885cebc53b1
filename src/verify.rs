//! Phase 3: the destination must hold as many items as the restore point.
//!
//! Counted by full, strongly consistent parallel scans: DescribeTable's ItemCount is refreshed only
//! about every six hours and proves nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, Select};

use crate::calls::{batch_get, charge_read, retrying};
use crate::digest::{Fingerprint, KeyDigest, item_digest};
use crate::error::{Error, Result};
use crate::item::{Item, key_only, key_text};
use crate::progress::Progress;
use crate::sync::SyncOptions;
use crate::table::TableInfo;

/// Scans `table` in `segments` parallel segments (strongly consistent), folding every page into
/// a per-segment accumulator and merging those at the end; `fold` returns the items it saw, for
/// the progress display.
/// One parallel scan: of which table, in how many segments, paced how, shown as what, and
/// whether it only counts.
struct ScanJob<'a> {
    table: &'a str,
    segments: u32,
    pace: &'a SyncOptions,
    what: &'a str,
    count_only: bool,
}

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
    let ScanJob {
        table,
        segments,
        pace,
        what,
        count_only,
    } = job;
    // The operator's page size holds for these scans too: a small page is also a short attempt.
    let (retry, read, page_limit) = (&pace.retry, &pace.read_rate, pace.page_limit);
    let segments = segments.max(1);
    let client = crate::aws::without_retries(client);
    let progress = Progress::items(&format!("{what} {table}"));
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..segments {
        let (client, table, retry, read, progress) = (
            client.clone(),
            table.to_string(),
            retry.clone(),
            read.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let mut start = None;
            let mut acc = T::default();
            loop {
                let mut req = client
                    .scan()
                    .table_name(&table)
                    .consistent_read(true)
                    .segment(segment as i32)
                    .total_segments(segments as i32)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .set_limit(page_limit)
                    .set_exclusive_start_key(start);
                if count_only {
                    req = req.select(Select::Count);
                }
                let mut out =
                    retrying(&retry, &read, "Scan", &table, || req.clone().send()).await?;
                let consumed = out
                    .consumed_capacity
                    .as_ref()
                    .and_then(|c| c.capacity_units);
                if count_only {
                    read.charge(out.count as f64, consumed.unwrap_or(1.0));
                } else {
                    charge_read(&read, out.items(), consumed);
                }
                let next = out.last_evaluated_key.take().filter(|k| !k.is_empty());
                progress.add(fold(&mut acc, out));
                match next {
                    Some(k) => start = Some(k),
                    None => return Ok::<T, Error>(acc),
                }
            }
        });
    }
    let mut total = T::default();
    while let Some(joined) = tasks.join_next().await {
        let part = joined.map_err(|e| Error::BadState {
            what: format!("{what} of {table}"),
            state: e.to_string(),
            hint: "this is a bug in dynamo-dr; run the check again".into(),
        })??;
        merge(&mut total, part);
    }
    progress.finish();
    Ok(total)
}

/// Counts the items of `table` with `segments` parallel scans.
pub async fn count_items(
    client: &Client,
    table: &str,
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
    source: &str,
    dest: &str,
    segments: u32,
    pace: &SyncOptions,
) -> Result<CountCheck> {
    let (s, d) = tokio::try_join!(
        count_items(client, source, segments, pace),
        count_items(client, dest, segments, pace)
    )?;
    if s != d {
        return Err(Error::CountMismatch {
            source_table: source.to_string(),
            dest: dest.to_string(),
            source_count: s,
            dest_count: d,
        });
    }
    Ok(CountCheck { source: s, dest: d })
}

/// The fingerprint of every item of `table`, from `segments` parallel scans.
pub async fn fingerprint(
    client: &Client,
    table: &str,
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
        fingerprint(client, &source.name, segments, pace),
        fingerprint(client, &dest.name, segments, pace)
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
