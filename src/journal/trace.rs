//! What one segment did over time, for the incident report's rate charts: per time bucket the
//! items written, the read and write units consumed and the requests DynamoDB throttled.
//!
//! Bounded whatever the run's length: buckets are one second while they fit in
//! [`MAX_BUCKETS`], and each time they would not, neighbouring buckets are merged and a bucket
//! covers twice as long. A segment's record stays a few kilobytes even in a DynamoDB journal.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Buckets kept per segment: ten minutes at one second each, then coarser.
pub const MAX_BUCKETS: usize = 600;

/// One page's work, as the sync engine tells it to a checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PageTally {
    pub items: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub throttled: u64,
    /// The table's stated most write and read units per second, when DynamoDB states one.
    pub capacity: (Option<f64>, Option<f64>),
}

/// One bucket's totals, kept as `[items, read tenths of a unit, write tenths, throttled]` so that
/// a trace is a few kilobytes of JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket(u64, u64, u64, u64);

impl Bucket {
    fn of(page: PageTally) -> Bucket {
        let tenths = |u: f64| (u.max(0.0) * 10.0).round() as u64;
        Bucket(
            page.items,
            tenths(page.read_units),
            tenths(page.write_units),
            page.throttled,
        )
    }

    fn add(&mut self, other: &Bucket) {
        self.0 += other.0;
        self.1 += other.1;
        self.2 += other.2;
        self.3 += other.3;
    }

    pub fn items(&self) -> u64 {
        self.0
    }

    pub fn read_units(&self) -> f64 {
        self.1 as f64 / 10.0
    }

    pub fn write_units(&self) -> f64 {
        self.2 as f64 / 10.0
    }

    pub fn throttled(&self) -> u64 {
        self.3
    }

    fn tally(&self) -> PageTally {
        PageTally {
            items: self.0,
            read_units: self.read_units(),
            write_units: self.write_units(),
            throttled: self.3,
            capacity: (None, None),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// The start of bucket 0: the first page's time.
    pub started_at: Option<Timestamp>,
    /// Seconds each bucket covers: 1, 2, 4, …
    #[serde(default = "one")]
    pub bucket_seconds: u32,
    pub buckets: Vec<Bucket>,
    /// The table's stated most write and read units per second, as the pages last saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_capacity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_capacity: Option<f64>,
}

fn one() -> u32 {
    1
}

impl Trace {
    pub fn is_empty(&self) -> bool {
        self.started_at.is_none()
    }

    /// Adds a page finished at `at` into its bucket.
    pub fn record(&mut self, at: Timestamp, page: PageTally) {
        let started = *self.started_at.get_or_insert(at);
        self.write_capacity = page.capacity.0.or(self.write_capacity);
        self.read_capacity = page.capacity.1.or(self.read_capacity);
        self.bucket_seconds = self.bucket_seconds.max(1);
        let offset = at.duration_since(started).as_secs().max(0) as u64;
        let mut index = (offset / u64::from(self.bucket_seconds)) as usize;
        while index >= MAX_BUCKETS {
            self.coarsen();
            index = (offset / u64::from(self.bucket_seconds)) as usize;
        }
        if self.buckets.len() <= index {
            self.buckets.resize(index + 1, Bucket::default());
        }
        self.buckets[index].add(&Bucket::of(page));
    }

    /// Merges neighbouring buckets: half as many, each twice as long.
    fn coarsen(&mut self) {
        self.buckets = self
            .buckets
            .chunks(2)
            .map(|pair| {
                let mut b = pair[0];
                if let Some(next) = pair.get(1) {
                    b.add(next);
                }
                b
            })
            .collect();
        self.bucket_seconds = self.bucket_seconds.saturating_mul(2);
    }

    /// The sum of several traces (a phase's segments), in buckets as long as the coarsest's.
    pub fn sum<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> Trace {
        let traces: Vec<&Trace> = traces.into_iter().collect();
        let mut total = Trace {
            started_at: traces.iter().filter_map(|t| t.started_at).min(),
            bucket_seconds: traces.iter().map(|t| t.bucket_seconds).max().unwrap_or(1),
            buckets: Vec::new(),
            write_capacity: traces.iter().find_map(|t| t.write_capacity),
            read_capacity: traces.iter().find_map(|t| t.read_capacity),
        };
        for t in traces {
            for (at, b) in t.points() {
                total.record(at, b.tally());
            }
        }
        total
    }

    /// Every bucket with its start time.
    pub fn points(&self) -> impl Iterator<Item = (Timestamp, &Bucket)> {
        let step = i64::from(self.bucket_seconds.max(1));
        self.started_at.into_iter().flat_map(move |start| {
            self.buckets.iter().enumerate().map(move |(i, b)| {
                let at = start
                    .checked_add(jiff::SignedDuration::from_secs(i as i64 * step))
                    .unwrap_or(start);
                (at, b)
            })
        })
    }

    /// When the last bucket ends: about when the segment last finished a page.
    pub fn ended_at(&self) -> Option<Timestamp> {
        let start = self.started_at?;
        let seconds = self.buckets.len() as i64 * i64::from(self.bucket_seconds.max(1));
        start
            .checked_add(jiff::SignedDuration::from_secs(seconds))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: u64) -> PageTally {
        PageTally {
            items,
            read_units: items as f64 / 4.0,
            write_units: items as f64,
            throttled: 1,
            capacity: (Some(100.0), None),
        }
    }

    #[test]
    fn pages_fall_into_one_second_buckets_until_they_would_not_fit() {
        let start: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let mut t = Trace::default();
        t.record(start, page(10));
        t.record(start + jiff::SignedDuration::from_millis(900), page(5));
        t.record(start + jiff::SignedDuration::from_secs(3), page(7));
        assert_eq!(t.bucket_seconds, 1);
        assert_eq!(
            t.buckets.iter().map(Bucket::items).collect::<Vec<_>>(),
            [15, 0, 0, 7]
        );
        // Two hours of pages: never more than the bound, and nothing lost.
        for s in 4..7_200 {
            t.record(start + jiff::SignedDuration::from_secs(s), page(1));
        }
        assert!(t.buckets.len() <= MAX_BUCKETS, "{}", t.buckets.len());
        assert_eq!(t.bucket_seconds, 16);
        let total: Bucket = t.buckets.iter().fold(Bucket::default(), |mut a, b| {
            a.add(b);
            a
        });
        assert_eq!(total.items(), 22 + 7_196);
        assert_eq!(total.throttled(), 3 + 7_196);
        assert_eq!(total.write_units(), (22 + 7_196) as f64);
        // Compact: a few kilobytes however long the run.
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.len() < 16_000, "{}", json.len());
        let ended = t.ended_at().unwrap();
        assert!(ended >= start + jiff::SignedDuration::from_secs(7_199));
        assert_eq!(t.points().count(), t.buckets.len());
        // Two segments' traces add up, in the coarser one's buckets.
        let mut other = Trace::default();
        other.record(start + jiff::SignedDuration::from_secs(1), page(4));
        let sum = Trace::sum([&t, &other]);
        assert_eq!(sum.bucket_seconds, 16);
        assert_eq!((sum.write_capacity, sum.read_capacity), (Some(100.0), None));
        assert_eq!(sum.buckets[0].items(), t.buckets[0].items() + 4);
        assert_eq!(
            sum.buckets.iter().map(Bucket::items).sum::<u64>(),
            22 + 7_196 + 4
        );
    }
}
