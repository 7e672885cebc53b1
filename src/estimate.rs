//! What a restore will cost before it runs: request units under each strategy, their price at
//! on-demand rates, and the time at the configured rate caps. From DescribeTable's approximate
//! size, so only ever an estimate.

use crate::rate::{RateCap, RateUnit};

/// us-east-1 on-demand list prices (November 2024), dollars per million request units; the
/// temporary table is always on-demand, the live table may not be.
const DOLLARS_PER_MILLION_READS: f64 = 0.125;
const DOLLARS_PER_MILLION_WRITES: f64 = 0.625;
/// Point-in-time and backup restores, dollars per GB restored (us-east-1).
const DOLLARS_PER_GB_RESTORED: f64 = 0.15;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Units {
    pub reads: f64,
    pub writes: f64,
    /// Items written, for item caps.
    pub items_written: f64,
    pub items_read: f64,
}

impl Units {
    pub fn dollars(&self) -> f64 {
        self.reads * DOLLARS_PER_MILLION_READS / 1e6 + self.dollars_of_writes()
    }

    pub fn dollars_of_writes(&self) -> f64 {
        self.writes * DOLLARS_PER_MILLION_WRITES / 1e6
    }

    /// Seconds at the caps (`None` when the stage that bounds the run is uncapped).
    pub fn seconds(&self, read: Option<RateCap>, write: Option<RateCap>) -> Option<f64> {
        let at = |cap: RateCap, items: f64, units: f64| match cap.unit {
            RateUnit::Items => items / cap.per_second,
            RateUnit::CapacityUnits => units / cap.per_second,
        };
        let w = write.map(|c| at(c, self.items_written, self.writes));
        let r = read.map(|c| at(c, self.items_read, self.reads));
        match (r, w) {
            (Some(r), Some(w)) => Some(r.max(w)),
            (Some(x), None) | (None, Some(x)) => Some(x),
            (None, None) => None,
        }
    }
}

/// What a new on-demand table sustains before it has grown
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html>).
pub const ON_DEMAND_START_WRITES: f64 = 4_000.0;
/// The same page's figure for reads.
pub const ON_DEMAND_START_READS: f64 = 12_000.0;
/// DynamoDB's default per-table read quota, units per second (Service Quotas).
pub const TABLE_QUOTA_READS: u64 = 40_000;
/// One partition's most: 3,000 read units per second
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>).
pub const PARTITION_READ_UNITS: f64 = 3_000.0;
/// DynamoDB's default per-table write quota, units per second (Service Quotas; an account may have
/// it raised): the most an on-demand table without a stated maximum is asked for, and the most a
/// pre-warm is offered up to.
pub const TABLE_QUOTA_WRITES: u64 = 40_000;
/// Segments for a table whose size DescribeTable does not know yet.
const UNKNOWN_SIZE_SEGMENTS: u32 = 64;

/// One partition's most: 1,000 write units per second.
pub const PARTITION_WRITE_UNITS: f64 = 1_000.0;

/// The scan segments for a table, and why.
///
/// A parallel scan's segments map onto the table's key ranges, and so onto its partitions, each
/// of which takes at most 1,000 write units per second. DynamoDB does not say how many partitions
/// a table has (a table keeps the partitions of its busiest past), so the count is generous: a
/// segment per 100 items, at least one per 2 GB and four per partition its capacity implies,
/// as a power of two (segments then align with power-of-two partition splits), between 1 and
/// 1,024. Every segment runs at once and is paced on its own.
pub fn segments(items: u64, bytes: u64, write_units: Option<f64>) -> (u32, String) {
    // DescribeTable refreshes its counts about every six hours: 0 may be a table of any size.
    if items == 0 && bytes == 0 {
        let n = UNKNOWN_SIZE_SEGMENTS;
        return (
            n,
            format!(
                "{n} segments: DescribeTable reports no items yet (its counts are refreshed \
                 about every six hours), so as many as for a table of ~{} items",
                u64::from(n) * 100
            ),
        );
    }
    let by_items = items / 100;
    let by_bytes = bytes.div_ceil(2 << 30);
    let by_capacity = write_units.map_or(0, |w| 4 * (w / PARTITION_WRITE_UNITS).ceil() as u64);
    let wanted = by_items.max(by_bytes).max(by_capacity).clamp(1, 1024);
    let n = wanted.next_power_of_two().min(1024) as u32;
    let why = format!(
        "{n} segments: one per 100 of ~{items} items ({by_items}), per 2 GB ({by_bytes}), 4 per \
         partition its write capacity implies ({by_capacity}); a power of two, at most 1024"
    );
    (n, why)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub items: u64,
    pub bytes: u64,
    pub hard_reset: Units,
    /// The diff strategy when nothing changed, and when everything did.
    pub diff_best: Units,
    pub diff_worst: Units,
    pub restore_dollars: f64,
}

/// For a table of `items` items and `bytes` bytes, restored to about the same. The final check
/// scans both tables once more, whether it counts or verifies content.
pub fn estimate(items: u64, bytes: u64) -> Estimate {
    let n = items as f64;
    let avg = if items == 0 { 0.0 } else { bytes as f64 / n };
    // Strongly consistent reads: one unit per 4 KB scanned; writes one per KB of each item.
    let scan = (bytes as f64 / 4096.0).ceil();
    let per_item_write = (avg / 1024.0).ceil().max(1.0);
    let per_item_get = (avg / 4096.0).ceil().max(1.0);
    let check = 2.0 * scan;
    let hard_reset = Units {
        reads: 2.0 * scan + check,
        writes: 2.0 * n * per_item_write,
        items_written: 2.0 * n,
        items_read: 4.0 * n,
    };
    // Diff reads each side once and looks every item up in the other table.
    let diff_reads = 2.0 * scan + 2.0 * n * per_item_get + check;
    let diff_best = Units {
        reads: diff_reads,
        writes: 0.0,
        items_written: 0.0,
        items_read: 6.0 * n,
    };
    let diff_worst = Units {
        writes: hard_reset.writes,
        items_written: hard_reset.items_written,
        ..diff_best
    };
    Estimate {
        items,
        bytes,
        hard_reset,
        diff_best,
        diff_worst,
        restore_dollars: bytes as f64 / 1e9 * DOLLARS_PER_GB_RESTORED,
    }
}

/// A global table bills each write in every region, its own included, as replicated write
/// units priced as write units
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/global-tables-billing.html>):
/// the replicated write units of `u` on a table with `replicas` other regions, and their price.
pub fn replicated_writes(u: &Units, replicas: usize) -> (f64, f64) {
    let units = u.writes * (replicas as f64 + 1.0);
    (units, units * DOLLARS_PER_MILLION_WRITES / 1e6)
}

/// A phase's time at the caps, or why it has no bound.
pub fn time(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{s:.0} s"),
        None => "not capped: set --max-write-rate/--max-read-rate to bound it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_grow_with_the_table_and_its_capacity() {
        assert_eq!(segments(0, 0, None).0, 64);
        assert_eq!(segments(50, 5_000, None).0, 1);
        assert_eq!(segments(12_000, 12_000_000, None).0, 128);
        assert_eq!(segments(12_000, 12_000_000, Some(2_400.0)).0, 128);
        assert_eq!(segments(1_000, 1_000_000, Some(40_000.0)).0, 256);
        assert_eq!(segments(1_000_000_000, 1 << 40, None).0, 1024);
        assert!(segments(12_000, 0, None).1.contains("128 segments"));
    }

    #[test]
    fn a_million_one_kb_items() {
        let e = estimate(1_000_000, 1_000_000_000);
        // Two writes of every item, one unit each.
        assert_eq!(e.hard_reset.writes, 2_000_000.0);
        assert_eq!(
            e.hard_reset.dollars(),
            (4.0 * 244_141.0 * 0.125 + 2e6 * 0.625) / 1e6
        );
        assert!(e.diff_best.writes == 0.0 && e.diff_worst.writes == e.hard_reset.writes);
        assert!((e.restore_dollars - 0.15).abs() < 1e-9);
        let cap = |s: &str| Some(s.parse::<RateCap>().unwrap());
        // 2,000,000 items written at 2,000/s.
        assert_eq!(e.hard_reset.seconds(None, cap("2000")), Some(1000.0));
        assert_eq!(e.hard_reset.seconds(None, None), None);
    }

    #[test]
    fn a_global_table_pays_each_write_in_every_region() {
        let e = estimate(1_000_000, 1_000_000_000);
        let (units, dollars) = replicated_writes(&e.hard_reset, 2);
        assert_eq!(units, 3.0 * e.hard_reset.writes);
        assert!((dollars - 3.0 * e.hard_reset.dollars_of_writes()).abs() < 1e-9);
        assert_eq!(replicated_writes(&e.diff_best, 2), (0.0, 0.0));
    }

    #[test]
    fn an_empty_table_costs_nothing_to_copy() {
        let e = estimate(0, 0);
        assert_eq!(e.hard_reset.dollars(), 0.0);
        assert_eq!(e.diff_worst.writes, 0.0);
    }
}
