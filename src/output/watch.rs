//! `status --watch`: what changed since the last look, as a rate and a time left.

use jiff::Timestamp;

use crate::journal::{Execution, Phase, Scope, Source};

/// One look at an execution: when, and the items its current phase had done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub at: Timestamp,
    pub phase: Phase,
    pub items: u64,
}

impl Look {
    pub fn of(e: &Execution, at: Timestamp) -> Look {
        Look {
            at,
            phase: e.phase,
            items: e.progress(e.phase).map_or(0, |p| p.items()),
        }
    }
}

/// The table whose item count bounds the current phase of a whole-table run: the destination
/// for the delete, the table copied from for the copy; none for a targeted scope.
pub fn counted_table(e: &Execution) -> Option<String> {
    if e.inputs.scope != Scope::Table {
        return None;
    }
    match e.phase {
        Phase::Delete => Some(e.inputs.table.clone()),
        Phase::Copy => match &e.inputs.source {
            Source::Table(t) => Some(t.clone()),
            _ => e.resources.temp_table.clone(),
        },
        _ => None,
    }
}

/// The line above each redraw: the phase's rate since the last look and, from the table's
/// approximate item count (DynamoDB refreshes it about every six hours), about how long is left.
pub fn rate_line(prev: Option<Look>, now: Look, approx_total: Option<u64>) -> String {
    let mut line = format!(
        "{} at {}: {} items",
        now.phase.as_str(),
        now.at.strftime("%H:%M:%SZ"),
        now.items
    );
    let Some(prev) = prev.filter(|p| p.phase == now.phase && now.at > p.at) else {
        return line;
    };
    let seconds = now.at.duration_since(prev.at).as_secs_f64();
    let rate = now.items.saturating_sub(prev.items) as f64 / seconds;
    line.push_str(&format!(", {rate:.0} items/s"));
    if let Some(total) = approx_total.filter(|t| *t > now.items && rate > 0.0) {
        let left = (total - now.items) as f64 / rate;
        line.push_str(&format!(
            ", about {} left of ~{total} (DescribeTable's approximate count)",
            duration_text(left)
        ));
    }
    line
}

fn duration_text(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(seconds: i64, phase: Phase, items: u64) -> Look {
        Look {
            at: Timestamp::from_second(1_780_000_000 + seconds).unwrap(),
            phase,
            items,
        }
    }

    #[test]
    fn the_rate_is_since_the_last_look_of_the_same_phase_and_the_time_left_from_the_count() {
        let first = look(0, Phase::Copy, 1_000);
        assert_eq!(
            rate_line(None, first, Some(10_000)),
            "copy at 20:26:40Z: 1000 items"
        );
        let now = look(5, Phase::Copy, 6_000);
        assert_eq!(
            rate_line(Some(first), now, Some(106_000)),
            "copy at 20:26:45Z: 6000 items, 1000 items/s, about 1 min 40 s left of ~106000 \
             (DescribeTable's approximate count)"
        );
        // A phase changed since the last look has no rate yet; a count already passed, no ETA.
        assert_eq!(
            rate_line(Some(look(0, Phase::Delete, 9)), now, None),
            "copy at 20:26:45Z: 6000 items"
        );
        assert_eq!(
            rate_line(Some(first), now, Some(5_000)),
            "copy at 20:26:45Z: 6000 items, 1000 items/s"
        );
    }
}
