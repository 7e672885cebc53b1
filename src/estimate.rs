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
        (self.reads * DOLLARS_PER_MILLION_READS + self.writes * DOLLARS_PER_MILLION_WRITES) / 1e6
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

fn time(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.0} min", s / 60.0),
        Some(s) => format!("{s:.0} s"),
        None => "not capped: set --max-write-rate/--max-read-rate to bound it".into(),
    }
}

/// The estimate as lines for the plan.
pub fn text(e: &Estimate, read: Option<RateCap>, write: Option<RateCap>) -> String {
    let line = |name: &str, u: &Units| {
        format!(
            "  {name:<22} {:>14.0} read units, {:>14.0} write units, ${:.2}, time at the caps: {}\n",
            u.reads,
            u.writes,
            u.dollars(),
            time(u.seconds(read, write))
        )
    };
    format!(
        "Estimate from DescribeTable (~{} items, ~{} bytes, up to 6 h stale), us-east-1 on-demand \
         prices:\n  restore to the temporary table: ${:.2}\n{}{}{}",
        e.items,
        e.bytes,
        e.restore_dollars,
        line("hard-reset", &e.hard_reset),
        line("diff, nothing changed", &e.diff_best),
        line("diff, all changed", &e.diff_worst),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn an_empty_table_costs_nothing_to_copy() {
        let e = estimate(0, 0);
        assert_eq!(e.hard_reset.dollars(), 0.0);
        assert_eq!(e.diff_worst.writes, 0.0);
    }
}
