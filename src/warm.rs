//! Pre-warming the live table before a copy (`--prewarm UNITS`): UpdateTable raises the warm
//! write throughput of the table and of every GSI below it, and the run waits until DynamoDB
//! reports it ACTIVE. Warm throughput is what a table serves at once; raising it is charged once
//! and cannot be undone
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html>,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/update-warm-throughput.html>).
//! Run twice, late or beside another run it asks for nothing more: whatever is already at least
//! UNITS, or still UPDATING, is left alone.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    GlobalSecondaryIndexUpdate, IndexStatus, TableDescription, TableStatus,
    UpdateGlobalSecondaryIndexAction, WarmThroughput,
};

use crate::aws;
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{AwsErrorKind, Error, Result};

/// How long a pre-warm may take to become ACTIVE; DynamoDB says only that it depends on the
/// values and the table's size.
pub const PREWARM_DEADLINE: Duration = Duration::from_secs(3600);

/// How long DescribeTable may take to show a pre-warm asked for, as UPDATING or done.
const SHOWN_WITHIN: Duration = Duration::from_secs(120);

/// One part of a table with its own warm throughput: the table itself, or a GSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `None`: the table.
    pub index: Option<String>,
    /// Its warm write units per second now (`None`: DynamoDB did not say).
    pub warm: Option<u64>,
    /// DynamoDB is still applying an earlier change of it.
    pub updating: bool,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.index {
            None => write!(f, "the table")?,
            Some(i) => write!(f, "GSI {i}")?,
        }
        match self.warm {
            Some(w) => write!(f, " ({w} write units/s)"),
            None => write!(f, " (no warm throughput reported)"),
        }
    }
}

/// The table's parts and their warm write throughput, as DescribeTable reports them.
pub fn parts(t: &TableDescription) -> Vec<Part> {
    let warm = |n: Option<i64>| n.filter(|n| *n > 0).map(|n| n as u64);
    let table = t.warm_throughput();
    let mut out = vec![Part {
        index: None,
        warm: warm(table.and_then(|w| w.write_units_per_second())),
        updating: table
            .and_then(|w| w.status())
            .is_some_and(|s| *s != TableStatus::Active),
    }];
    for g in t.global_secondary_indexes() {
        let w = g.warm_throughput();
        out.push(Part {
            index: g.index_name().map(str::to_string),
            warm: warm(w.and_then(|w| w.write_units_per_second())),
            updating: w
                .and_then(|w| w.status())
                .is_some_and(|s| *s != IndexStatus::Active),
        });
    }
    out
}

/// The parts whose warm write throughput is below `units`.
pub fn below(parts: &[Part], units: u64) -> Vec<Part> {
    parts
        .iter()
        .filter(|p| p.warm.is_none_or(|w| w < units))
        .cloned()
        .collect()
}

/// Asks DynamoDB to raise every part of `table` below `units` write units/s to `units`, unless
/// an earlier change is still UPDATING (then [`warmed`] waits for it and checks the values).
/// Returns the parts found below (empty: nothing to do). A refusal comes back before anything
/// else of the run has started.
pub async fn prewarm(client: &Client, table: &str, units: u64) -> Result<Vec<Part>> {
    let now = parts(&describe(client, table).await?);
    let short = below(&now, units);
    if !short.is_empty() && !now.iter().any(|p| p.updating) {
        request(client, table, units, &short).await?;
    }
    Ok(short)
}

/// Waits until every part of `table` is ACTIVE at `units` write units/s or more.
pub async fn warmed(client: &Client, table: &str, units: u64) -> Result<()> {
    let started = std::time::Instant::now();
    poll_until(
        &format!("the warm throughput of {table} to reach {units} write units/s"),
        &PollPolicy::new(PREWARM_DEADLINE),
        |state, waited| tracing::info!(table, state, ?waited, "waiting for the pre-warm"),
        || async {
            let now = parts(&describe(client, table).await?);
            if let Some(busy) = now.iter().find(|p| p.updating) {
                return Ok(Poll::Pending(format!("{busy} UPDATING")));
            }
            let short = below(&now, units);
            if short.is_empty() {
                return Ok(Poll::Ready(()));
            }
            let short: Vec<String> = short.iter().map(Part::to_string).collect();
            // DescribeTable is eventually consistent: just after UpdateTable it may still show
            // the old values, ACTIVE, before it shows UPDATING.
            if started.elapsed() < SHOWN_WITHIN {
                return Ok(Poll::Pending(format!("ACTIVE at {}", short.join(", "))));
            }
            Err(Error::BadState {
                what: format!("the warm throughput of {table}"),
                state: format!("ACTIVE, below {units} write units/s: {}", short.join(", ")),
                hint: "the pre-warm asked for was not applied (a GSI added or another update \
                       since?); nothing was written to the table yet; run again to ask again"
                    .into(),
            })
        },
    )
    .await
}

async fn describe(client: &Client, table: &str) -> Result<TableDescription> {
    let out = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| aws::aws_error("DescribeTable", table, &e))?;
    out.table.ok_or_else(|| Error::BadState {
        what: format!("table {table}"),
        state: "missing from DescribeTable's answer".into(),
        hint: "run again".into(),
    })
}

/// One UpdateTable for the table and its GSIs below `units`. Another change of the table in
/// progress is no failure: [`warmed`] waits for it and finds what is still short.
async fn request(client: &Client, table: &str, units: u64, short: &[Part]) -> Result<()> {
    let warm = WarmThroughput::builder()
        .write_units_per_second(units as i64)
        .build();
    let mut call = client.update_table().table_name(table);
    for part in short {
        match &part.index {
            None => call = call.warm_throughput(warm.clone()),
            Some(index) => {
                let update = UpdateGlobalSecondaryIndexAction::builder()
                    .index_name(index)
                    .warm_throughput(warm.clone())
                    .build()
                    .map_err(|e| Error::BadState {
                        what: format!("the pre-warm request of GSI {index}"),
                        state: e.to_string(),
                        hint: "this is a bug in dynamo-dr".into(),
                    })?;
                call = call.global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().update(update).build(),
                );
            }
        }
    }
    match call.send().await {
        Ok(_) => {
            tracing::info!(table, units, "pre-warm requested");
            Ok(())
        }
        // Another update of the table is in progress (ResourceInUseException).
        Err(e) if aws::error_kind(&e) == AwsErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::invalid(
            "--prewarm",
            format!(
                "DynamoDB refused to raise the warm throughput of {table} to {units} write \
                 units/s: {}; nothing was written to the table. Choose a value within the \
                 table's quota (Service Quotas, per-table write units), or run without --prewarm",
                aws::describe(&e)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, GlobalSecondaryIndexWarmThroughputDescription,
        TableWarmThroughputDescription,
    };

    #[test]
    fn only_the_parts_below_the_asked_units_are_raised() {
        let gsi = |name: &str, warm: i64, status: IndexStatus| {
            GlobalSecondaryIndexDescription::builder()
                .index_name(name)
                .warm_throughput(
                    GlobalSecondaryIndexWarmThroughputDescription::builder()
                        .write_units_per_second(warm)
                        .status(status)
                        .build(),
                )
                .build()
        };
        let t = TableDescription::builder()
            .warm_throughput(
                TableWarmThroughputDescription::builder()
                    .write_units_per_second(4_000)
                    .status(TableStatus::Active)
                    .build(),
            )
            .global_secondary_indexes(gsi("ByCustomer", 20_000, IndexStatus::Active))
            .global_secondary_indexes(gsi("ByDay", 4_000, IndexStatus::Updating))
            .build();
        let all = parts(&t);
        assert!(all[2].updating && !all[0].updating && !all[1].updating);
        let short = below(&all, 10_000);
        let names: Vec<String> = short.iter().map(Part::to_string).collect();
        assert_eq!(
            names,
            [
                "the table (4000 write units/s)",
                "GSI ByDay (4000 write units/s)"
            ]
        );
        assert!(below(&all, 4_000).is_empty(), "already warm enough");
    }
}
