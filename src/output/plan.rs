//! The plan the operator reads before anything changes: the source, what will be created, the
//! write capacity and pace, what else sees the table's writes, and the estimate.

use crate::journal::{Mode, Scope, Strategy};
use crate::restore::{Plan, SourceDetail};
use crate::table::TableInfo;
use crate::validate::time_text;
use crate::watchers::{Seen, Watchers};

/// The capacity a copy-back writes against, and what the table's GSIs add to it. `prewarm`:
/// what `--prewarm` asked for (the table's warm throughput already counts it).
pub fn capacity_text(t: &TableInfo, prewarm: Option<u64>) -> String {
    let limits = &t.write_limits;
    let start = match (&limits.warm, prewarm) {
        (Some(warm), Some(units)) if warm.units == units => {
            format!("the {units} write units/s it is pre-warmed to")
        }
        (Some(warm), _) => format!("its warm throughput, {warm}"),
        (None, _) => format!(
            "the ~{} writes/s a new on-demand table sustains",
            crate::estimate::ON_DEMAND_START_WRITES
        ),
    };
    let table = match t.write_capacity {
        Some(w) => format!("{w} provisioned write units/s"),
        None => format!(
            "on-demand (each segment starts at its share of {start}, doubles each calm quarter \
             second until the first throttle, then finds its key range's pace)"
        ),
    };
    let table = match (&limits.max, t.write_capacity) {
        (Some(max), None) => format!("{table}; never above {max}, in any second"),
        (Some(max), Some(w)) if max.units < w => format!("{table}; capped at {max}"),
        _ => table,
    };
    let table = format!("{table}{}", on_demand_time(t, prewarm));
    match t.gsis {
        0 => table,
        n => format!(
            "{table}; every write also writes each of the {n} global secondary index(es) that \
             project it, against the same quota: up to {}x the units, and a GSI short of \
             capacity throttles the table",
            n + 1
        ),
    }
}

/// An on-demand table's hard reset: its time at the starting pace and at the most the table may
/// take (its maximum, else the default per-table quota), and the pre-warm asked for or worth it.
fn on_demand_time(t: &TableInfo, prewarm: Option<u64>) -> String {
    let (items, bytes) = (t.approx_items.unwrap_or(0), t.approx_bytes.unwrap_or(0));
    if t.write_capacity.is_some() || items <= 0 {
        return String::new();
    }
    let limits = &t.write_limits;
    let writes = crate::estimate::estimate(items as u64, bytes.max(0) as u64)
        .hard_reset
        .writes;
    let at = |rate: f64| crate::estimate::time(Some(writes / rate));
    let most = limits
        .max
        .as_ref()
        .map_or(crate::estimate::TABLE_QUOTA_WRITES, |m| m.units);
    let floor = limits
        .max
        .as_ref()
        .map(|_| {
            let most = most as f64 / (1.0 + crate::rate::PACE_CREDIT_SECONDS);
            format!(", never under {} at the maximum", at(most))
        })
        .unwrap_or_default();
    let mut text = format!(
        "; a hard reset's ~{writes:.0} write units take ~{} at the starting pace, less as it \
         climbs{floor}",
        at(limits.start())
    );
    let slow = writes / limits.start() > 600.0 && limits.start() * 2.0 < most as f64;
    match prewarm {
        Some(units) => text.push_str(&format!(
            "; phase one first raises its warm write throughput, and each GSI's below it, to \
             {units} units/s (--prewarm): DynamoDB charges for the increase once (see \
             https://aws.amazon.com/dynamodb/pricing/; dynamo-dr does not know the price), and \
             it cannot be lowered again"
        )),
        None if slow => text.push_str(&format!(
            "; --prewarm UNITS (up to {most}) would start the copy there, ~{} at {most}, for a \
             one-time charge by DynamoDB",
            at(most as f64)
        )),
        None => {}
    }
    text
}

/// The plan the operator confirms.
/// Where the plan restores from, as people read it.
fn source_text(source: &SourceDetail) -> String {
    match source {
        SourceDetail::Pitr {
            time,
            earliest,
            latest,
            ..
        } => {
            format!(
                "point-in-time recovery to {} (restorable window {} to {})",
                time.text(),
                time_text(*earliest),
                time_text(*latest)
            )
        }
        SourceDetail::Backup {
            arn,
            name,
            created,
            source_table,
        } => {
            format!(
                "backup {name} of {source_table}, taken {} ({arn})",
                time_text(*created)
            )
        }
    }
}

/// The run's mode in the plan's heading, and what it will then do to the live table.
fn mode_text(plan: &Plan) -> (&'static str, String) {
    let r = &plan.request;
    let (strategy, _) = &plan.strategy;
    let mode = Mode::of(&r.scope, *strategy);
    let targeted = mode.targeted().map(|scope| {
        let condition = match scope {
            Scope::Window {
                overwrite_later_writes: true,
                ..
            } => "each put or delete UNCONDITIONAL (--overwrite-later-writes)",
            Scope::Window { .. } => {
                "each put or delete conditional on the live item still being as the window left \
                 it (an item written since is kept and reported as a conflict)"
            }
            _ => {
                "each put or delete conditional on the live item being as read (a changed item \
                 is kept and reported as a conflict)"
            }
        };
        (
            "TARGETED",
            format!(
                "write only {}, {condition}; every other item is left alone, so recovery mode is \
                 not required",
                scope.describe()
            ),
        )
    });
    match (targeted, strategy) {
        (Some(t), _) => t,
        (None, Strategy::HardReset) => (
            "HARD RESET",
            format!(
                "DELETE every item of {} and copy the restored items back",
                plan.dest.name
            ),
        ),
        (None, Strategy::Diff) => (
            "DIFF",
            format!(
                "delete only the items of {} absent from the restore, and put only missing or \
                 different ones",
                plan.dest.name
            ),
        ),
    }
}

pub fn plan_summary(plan: &Plan) -> String {
    let r = &plan.request;
    let approx = plan
        .dest
        .approx_items
        .map(|n| format!("~{n} items (DescribeTable, up to 6 h stale)"))
        .unwrap_or_else(|| "unknown size".into());
    let source = source_text(&plan.source);
    let (strategy, strategy_why) = &plan.strategy;
    let (mode, then) = mode_text(plan);
    let mut text = format!(
        "\nIn-place recovery plan, execution {exec}\n\
         \x20 table ({mode}): {table} ({approx}), key {key}\n\
         \x20 restore from:       {source}\n\
         \x20 will create:        {backup}\n\
         \x20                     {temp}\n\
         \x20 will then {then}\n\
         \x20 scope:              {scope} (--scope table|missing|keys|partition|window)\n\
         \x20 strategy:           {strategy} ({strategy_why}; --strategy hard-reset|diff)\n\
         \x20 segments:           {segments}\n\
         \x20 write capacity:     {capacity}\n\
         \x20 temporary table:    {after}\n",
        strategy = match Mode::of(&r.scope, *strategy) {
            Mode::Targeted(_) => "none, targeted writes",
            Mode::Table(s) => s.as_str(),
        },
        scope = r.scope.as_str(),
        segments = match &plan.segments_why {
            None => format!("{} (--segments or the config)", r.sync.segments),
            Some(why) => why.clone(),
        },
        capacity = capacity_text(&plan.dest, r.prewarm),
        exec = r.names.execution_id,
        table = plan.dest.name,
        key = plan.dest.key,
        backup = if r.forensic_backup {
            format!("forensic backup {}", r.names.backup)
        } else {
            "NO forensic backup (forensic_backup = false in the config)".into()
        },
        temp = match &r.scope {
            Scope::Window {
                from,
                to,
                bucket,
                prefix,
                ..
            } => format!(
                "incremental export of {from} to {to} into s3://{bucket}/{} (no table is restored)",
                prefix.as_deref().unwrap_or("")
            ),
            _ => format!(
                "temporary table {} (on-demand{}{})",
                r.names.temp_table,
                plan.dest
                    .kms_key_arn
                    .as_ref()
                    .map(|k| format!(", KMS key {k}"))
                    .unwrap_or_default(),
                without_indexes(&plan.dest.indexes),
            ),
        },
        after = match (&r.scope, r.keep_restored_table) {
            (Scope::Window { .. }, _) => "none (the export is kept in S3)",
            (_, true) if !plan.dest.indexes.is_empty() => {
                "kept afterwards (without secondary indexes)"
            }
            (_, true) => "kept afterwards",
            (_, false) => "deleted afterwards",
        },
    );
    text.push_str(&downstream_text(&plan.dest, &plan.watchers));
    text
}

/// The indexes a restore leaves out, and why that is worth saying.
fn without_indexes(indexes: &[String]) -> String {
    if indexes.is_empty() {
        return String::new();
    }
    format!(
        ", without the indexes the table has now, {}: DynamoDB builds none of them, so the \
         restore ends sooner, and the tool reads only the base table",
        indexes.join(", ")
    )
}

/// What else sees the table's writes, and how many stream records each strategy emits.
pub fn downstream_text(t: &TableInfo, w: &Watchers) -> String {
    let mut text = String::new();
    match &t.stream {
        None => text.push_str("  stream:             none\n"),
        Some(s) => {
            let mappings = w.mappings.list(|m| {
                let at_end = match &m.at_end {
                    None => String::new(),
                    Some(crate::watchers::EndPolicy::Replay) => {
                        ", replays the recovery's records at recovery-mode end".into()
                    }
                    Some(crate::watchers::EndPolicy::Skip(p)) => format!(
                        ", SKIPS them: replaced at recovery-mode end by a mapping at LATEST \
                         (skip_recovery_events {p:?})"
                    ),
                };
                format!(
                    "{} ({}, batch {}, window {} s, uuid {}{at_end})",
                    m.function,
                    m.state,
                    m.batch_size.map_or("default".into(), |b| b.to_string()),
                    m.batching_window_seconds.unwrap_or(0),
                    m.uuid
                )
            });
            let live = t.approx_items.unwrap_or_default().max(0) as u64;
            text.push_str(&format!(
                "  stream:             {} ({})\n\
                 \x20 its consumers:      {}\n\
                 \x20 stream records:     hard-reset ~{} ({live} REMOVE then ~{live} INSERT, from \
                 DescribeTable's count); diff: one per real difference only (a put that changes \
                 nothing emits no record)\n",
                s.arn,
                s.view_type,
                mappings,
                crate::watchers::hard_reset_records(live, live),
            ));
        }
    }
    let kinesis = w.kinesis.list(|d| {
        format!(
            "{} ({}; receives every write of the recovery)",
            d.stream_arn, d.status
        )
    });
    text.push_str(&format!("  Kinesis streams:    {kinesis}\n"));
    text.push_str(&format!(
        "  replicas:           {}\n",
        if t.replicas.is_empty() {
            "none".to_string()
        } else {
            let e = crate::estimate::estimate(
                t.approx_items.unwrap_or_default().max(0) as u64,
                t.approx_bytes.unwrap_or_default().max(0) as u64,
            );
            let (reset, reset_cost) =
                crate::estimate::replicated_writes(&e.hard_reset, t.replicas.len());
            let (diff, diff_cost) =
                crate::estimate::replicated_writes(&e.diff_worst, t.replicas.len());
            format!(
                "{} (every write is billed in all {} regions as replicated write units: \
                 hard-reset ~{reset:.0} replicated write units (${reset_cost:.2}); diff from 0 \
                 to ~{diff:.0} (${diff_cost:.2}) as the differences go; plus cross-Region data \
                 transfer)",
                t.replicas.join(", "),
                t.replicas.len() + 1
            )
        }
    ));
    let ttl = match &w.ttl {
        Seen::Known(Some(a)) => format!(
            "on, attribute {a} (expired items the restore brings back are deleted again by TTL)"
        ),
        Seen::Known(None) => "off".into(),
        Seen::Unknown(why) => format!("UNKNOWN ({why})"),
    };
    text.push_str(&format!("  TTL:                {ttl}\n"));
    text
}

/// The estimate as lines for the plan.
pub fn estimate_text(
    e: &crate::estimate::Estimate,
    read: Option<crate::rate::RateCap>,
    write: Option<crate::rate::RateCap>,
) -> String {
    let line = |name: &str, u: &crate::estimate::Units| {
        format!(
            "  {name:<22} {:>14.0} read units, {:>14.0} write units, ${:.2}, time at the caps: {}\n",
            u.reads,
            u.writes,
            u.dollars(),
            crate::estimate::time(u.seconds(read, write))
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
