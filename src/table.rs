//! What the tool needs to know about a table, read from DescribeTable.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{TableDescription, TableStatus};

use crate::aws;
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{AwsErrorKind, Error, Result};
use crate::item::KeySchema;
use crate::progress::Progress;

/// A table's identity, state and key schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    pub name: String,
    pub arn: String,
    pub status: String,
    /// Hash key first, then the range key if any.
    pub key: KeySchema,
    /// The customer managed KMS key, when the table uses one.
    pub kms_key_arn: Option<String>,
    /// DescribeTable's ItemCount: refreshed about every six hours, so only ever shown as approximate.
    pub approx_items: Option<i64>,
    pub approx_bytes: Option<i64>,
    /// For a restored table: the instant its data is as of.
    pub restored_to: Option<jiff::Timestamp>,
    /// For a restored table: what its RestoreSummary says it was restored from.
    pub restored_from: Option<RestoredFrom>,
    /// Marked `sensitive` in the config: its keys are shown only as digests.
    pub sensitive: bool,
    /// Provisioned write capacity units per second; `None` for an on-demand table.
    pub write_capacity: Option<u64>,
    /// Global secondary indexes: each write to the table also writes each that projects it.
    pub gsis: usize,
    /// Names of its global and local secondary indexes: a restore leaves them out.
    pub indexes: Vec<String>,
    /// What DynamoDB says the table's writes may reach, GSIs included.
    pub write_limits: WriteLimits,
    /// What DynamoDB says a scan of the table may read.
    pub read_limits: ReadLimits,
    /// The table's stream, when one is enabled.
    pub stream: Option<StreamInfo>,
    /// The regions of a global table's replicas (DescribeTable's Replicas).
    pub replicas: Vec<String>,
    /// The hash key's type (`S`, `N` or `B`), from AttributeDefinitions.
    pub hash_type: Option<String>,
}

/// An enabled stream: every write to the table appears in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub arn: String,
    /// KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES.
    pub view_type: String,
}

/// A restored table's sources, from its RestoreSummary: a PITR restore names the table, a
/// backup restore the backup (and usually the table the backup was taken of).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredFrom {
    pub table_arn: Option<String>,
    pub backup_arn: Option<String>,
}

impl std::fmt::Display for RestoredFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.backup_arn, &self.table_arn) {
            (Some(b), _) => write!(f, "backup {b}"),
            (None, Some(t)) => write!(f, "table {t}"),
            (None, None) => f.write_str("an unnamed source"),
        }
    }
}

impl TableInfo {
    pub fn from_description(t: &TableDescription) -> Result<TableInfo> {
        let name = t.table_name().unwrap_or_default().to_string();
        let key = KeySchema::from_elements(t.key_schema()).ok_or_else(|| Error::BadState {
            what: format!("table {name}"),
            state: "no HASH key in DescribeTable's KeySchema".into(),
            hint: "this is not a table the tool can copy".into(),
        })?;
        let hash_type = t
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == key.hash)
            .map(|d| d.attribute_type().as_str().to_string());
        let kms_key_arn = t
            .sse_description()
            .and_then(|s| s.kms_master_key_arn())
            .map(str::to_string);
        Ok(TableInfo {
            arn: t.table_arn().unwrap_or_default().to_string(),
            status: t
                .table_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| "UNKNOWN".into()),
            key,
            kms_key_arn,
            approx_items: t.item_count(),
            approx_bytes: t.table_size_bytes(),
            restored_to: t
                .restore_summary()
                .and_then(|r| crate::aws::timestamp(r.restore_date_time())),
            restored_from: t.restore_summary().map(|r| RestoredFrom {
                table_arn: r.source_table_arn().map(str::to_string),
                backup_arn: r.source_backup_arn().map(str::to_string),
            }),
            sensitive: false,
            write_capacity: provisioned_writes(t),
            write_limits: WriteLimits::of(t),
            read_limits: ReadLimits::of(t),
            gsis: t.global_secondary_indexes().len(),
            indexes: t
                .global_secondary_indexes()
                .iter()
                .filter_map(|i| i.index_name())
                .chain(
                    t.local_secondary_indexes()
                        .iter()
                        .filter_map(|i| i.index_name()),
                )
                .map(str::to_string)
                .collect(),
            stream: t
                .stream_specification()
                .filter(|s| s.stream_enabled())
                .zip(t.latest_stream_arn())
                .map(|(s, arn)| StreamInfo {
                    arn: arn.to_string(),
                    view_type: s
                        .stream_view_type()
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default(),
                }),
            replicas: t
                .replicas()
                .iter()
                .filter_map(|r| r.region_name().map(str::to_string))
                .collect(),
            hash_type,
            name,
        })
    }

    pub fn is_active(&self) -> bool {
        self.status == TableStatus::Active.as_str()
    }
}

/// A limit on write units per second, and whose it is: the table's, or a GSI's (every write to
/// the table is a write to each GSI that projects it, and a GSI short of capacity throttles the
/// table: "Global secondary indexes — provisioned throughput considerations",
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub units: u64,
    /// `None`: the table itself; else the GSI's name.
    pub index: Option<String>,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.index {
            None => write!(f, "{} write units/s (the table)", self.units),
            Some(i) => write!(f, "{} write units/s (GSI {i})", self.units),
        }
    }
}

/// DescribeTable's numbers for writes: the warm throughput the table (and each GSI) serves at
/// once, and the maximum it must never be asked for: an on-demand table's OnDemandThroughput
/// maximum or a provisioned table's capacity
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html>,
/// <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html>).
/// Each is the least of the table's and its GSIs'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteLimits {
    pub warm: Option<Limit>,
    pub max: Option<Limit>,
}

impl WriteLimits {
    pub fn of(t: &TableDescription) -> WriteLimits {
        let on_demand = provisioned_writes(t).is_none();
        let table_max = if on_demand {
            positive(
                t.on_demand_throughput()
                    .and_then(|o| o.max_write_request_units()),
            )
        } else {
            provisioned_writes(t)
        };
        let mut warm = Vec::new();
        let mut max = Vec::new();
        let mut add = |index: Option<&str>, w: Option<u64>, m: Option<u64>| {
            let limit = |units: u64| Limit {
                units,
                index: index.map(str::to_string),
            };
            warm.extend(w.map(limit));
            max.extend(m.map(limit));
        };
        add(
            None,
            positive(t.warm_throughput().and_then(|w| w.write_units_per_second())),
            table_max,
        );
        for g in t.global_secondary_indexes() {
            let gsi_max = if on_demand {
                positive(
                    g.on_demand_throughput()
                        .and_then(|o| o.max_write_request_units()),
                )
            } else {
                positive(
                    g.provisioned_throughput()
                        .and_then(|p| p.write_capacity_units()),
                )
            };
            let gsi_warm = positive(g.warm_throughput().and_then(|w| w.write_units_per_second()));
            add(g.index_name(), gsi_warm, gsi_max);
        }
        let least = |v: Vec<Limit>| v.into_iter().min_by_key(|l| l.units);
        WriteLimits {
            warm: least(warm),
            max: least(max),
        }
    }

    /// After a pre-warm to `units`, every part of the table is warm to at least that.
    pub fn prewarm(&mut self, units: u64) {
        if self.warm.as_ref().is_none_or(|w| w.units < units) {
            self.warm = Some(Limit { units, index: None });
        }
    }

    /// Where a copy starts, units per second: the warm throughput, else what a new on-demand
    /// table sustains; never above the maximum.
    pub fn start(&self) -> f64 {
        let warm = self
            .warm
            .as_ref()
            .map_or(crate::estimate::ON_DEMAND_START_WRITES, |l| l.units as f64);
        self.max.as_ref().map_or(warm, |m| warm.min(m.units as f64))
    }
}

/// DescribeTable's numbers for reads of the table itself (a scan reads no index): the warm
/// throughput it serves at once, and its most: an on-demand table's OnDemandThroughput maximum
/// or a provisioned table's read capacity, a limit the reads share with nothing else the tool
/// does to that table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadLimits {
    pub warm: Option<u64>,
    pub max: Option<u64>,
    /// The max is provisioned capacity (DynamoDB's burst capacity absorbs a little overshoot),
    /// not an on-demand maximum (a hard limit).
    pub provisioned: bool,
}

impl ReadLimits {
    pub fn of(t: &TableDescription) -> ReadLimits {
        let provisioned = provisioned_writes(t).is_some();
        let max = if provisioned {
            positive(
                t.provisioned_throughput()
                    .and_then(|p| p.read_capacity_units()),
            )
        } else {
            positive(
                t.on_demand_throughput()
                    .and_then(|o| o.max_read_request_units()),
            )
        };
        ReadLimits {
            warm: positive(t.warm_throughput().and_then(|w| w.read_units_per_second())),
            max,
            provisioned,
        }
    }

    /// Where a scan starts, units per second: a provisioned table's capacity, else its warm
    /// throughput (else what a new on-demand table sustains), never above the maximum.
    pub fn start(&self) -> f64 {
        if let (true, Some(m)) = (self.provisioned, self.max) {
            return m as f64;
        }
        let warm = self
            .warm
            .map_or(crate::estimate::ON_DEMAND_START_READS, |w| w as f64);
        self.max.map_or(warm, |m| warm.min(m as f64))
    }

    /// How high a scan's pace may climb: the maximum, else the default table quota.
    pub fn ceiling(&self) -> f64 {
        self.max
            .map_or(crate::estimate::TABLE_QUOTA_READS as f64, |m| m as f64)
    }
}

/// A figure DynamoDB states, when it states one: 0 and -1 mean none.
fn positive(n: Option<i64>) -> Option<u64> {
    n.filter(|n| *n > 0).map(|n| n as u64)
}

/// A provisioned table's write units; on-demand tables report 0 there.
fn provisioned_writes(t: &TableDescription) -> Option<u64> {
    let on_demand = t
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        .is_some_and(|m| *m == aws_sdk_dynamodb::types::BillingMode::PayPerRequest);
    t.provisioned_throughput()
        .and_then(|p| p.write_capacity_units())
        .filter(|w| *w > 0 && !on_demand)
        .map(|w| w as u64)
}

/// DescribeTable; `Ok(None)` when the table does not exist.
pub async fn describe(client: &Client, name: &str) -> Result<Option<TableInfo>> {
    match client.describe_table().table_name(name).send().await {
        Ok(out) => match out.table() {
            Some(t) => TableInfo::from_description(t).map(Some),
            None => Ok(None),
        },
        Err(e) if aws::error_kind(&e) == AwsErrorKind::NotFound => Ok(None),
        Err(e) => Err(aws::aws_error("DescribeTable", name, &e)),
    }
}

/// DescribeTable for a table that must exist.
pub async fn describe_existing(client: &Client, name: &str, field: &str) -> Result<TableInfo> {
    describe(client, name).await?.ok_or_else(|| {
        Error::invalid(
            field,
            format!(
                "table {name:?} does not exist in this account and region. Check the name (it is \
                 case-sensitive; copy it from the DynamoDB console or `aws dynamodb list-tables`) \
                 and --region/--profile"
            ),
        )
    })
}

/// Polls DescribeTable until the table is ACTIVE, showing its state meanwhile.
pub async fn wait_active(
    client: &Client,
    name: &str,
    deadline: Duration,
    phase: &str,
) -> Result<TableInfo> {
    let progress = Progress::waiting(phase);
    let policy = PollPolicy::new(deadline);
    let info = poll_until(
        &format!("table {name} to become ACTIVE"),
        &policy,
        |state, _| progress.set_message(state),
        || async {
            match describe(client, name).await? {
                // Right after a create the table may not be visible yet.
                None => Ok(Poll::Pending("not visible yet".into())),
                Some(t) if t.is_active() => Ok(Poll::Ready(t)),
                Some(t) if matches!(t.status.as_str(), "CREATING" | "UPDATING") => {
                    Ok(Poll::Pending(t.status))
                }
                Some(t) => Err(Error::BadState {
                    what: format!("table {name}"),
                    state: t.status,
                    hint: "it cannot become ACTIVE; check it in the console".into(),
                }),
            }
        },
    )
    .await?;
    progress.finish();
    Ok(info)
}

impl TableInfo {
    /// The one place a run's segment count is chosen: `requested` (the operator's, the config's or
    /// the execution record's) when not 0, else from this table's size and the write capacity of
    /// `dest`, the table the copy writes, with why.
    pub fn segments(&self, requested: u32, dest: &TableInfo) -> (u32, Option<String>) {
        if requested > 0 {
            return (requested, None);
        }
        let (n, why) = crate::estimate::segments(
            self.approx_items.unwrap_or_default().max(0) as u64,
            self.approx_bytes.unwrap_or_default().max(0) as u64,
            dest.write_capacity.map(|w| w as f64),
        );
        (n, Some(why))
    }

    /// Refuses a pair of tables whose keys differ: items cannot move or be compared between them.
    pub fn require_same_key(&self, other: &TableInfo) -> Result<()> {
        if self.key == other.key {
            return Ok(());
        }
        Err(Error::invalid(
            "source",
            format!(
                "{} has key {} but {} has key {}; items cannot be copied between them",
                self.name, self.key, other.name, other.key
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, GlobalSecondaryIndexWarmThroughputDescription,
        OnDemandThroughput, TableWarmThroughputDescription,
    };

    #[test]
    fn the_least_warm_and_maximum_of_the_table_and_its_gsis_bound_the_writes() {
        let gsi = |name: &str, warm: i64, max: i64| {
            GlobalSecondaryIndexDescription::builder()
                .index_name(name)
                .warm_throughput(
                    GlobalSecondaryIndexWarmThroughputDescription::builder()
                        .write_units_per_second(warm)
                        .build(),
                )
                .on_demand_throughput(
                    OnDemandThroughput::builder()
                        .max_write_request_units(max)
                        .build(),
                )
                .build()
        };
        let t = TableDescription::builder()
            .warm_throughput(
                TableWarmThroughputDescription::builder()
                    .write_units_per_second(40_000)
                    .build(),
            )
            .on_demand_throughput(
                OnDemandThroughput::builder()
                    .max_write_request_units(-1)
                    .build(),
            )
            .global_secondary_indexes(gsi("ByCustomer", 12_000, 5_000))
            .global_secondary_indexes(gsi("ByDay", 20_000, -1))
            .build();
        let limits = WriteLimits::of(&t);
        let limit = |units, index: &str| Limit {
            units,
            index: Some(index.into()),
        };
        assert_eq!(limits.warm, Some(limit(12_000, "ByCustomer")));
        // -1 is "no maximum".
        assert_eq!(limits.max, Some(limit(5_000, "ByCustomer")));
        assert_eq!(limits.start(), 5_000.0);
        assert_eq!(
            limits.max.map(|m| m.to_string()).as_deref(),
            Some("5000 write units/s (GSI ByCustomer)")
        );
        assert_eq!(
            WriteLimits::of(&TableDescription::builder().build()).start(),
            4_000.0
        );
    }

    #[test]
    fn reads_start_from_the_capacity_else_the_warm_throughput_never_above_the_maximum() {
        use aws_sdk_dynamodb::types::{
            BillingMode, BillingModeSummary, ProvisionedThroughputDescription,
        };
        let on_demand = |warm: Option<i64>, max: i64| {
            let mut t = TableDescription::builder()
                .billing_mode_summary(
                    BillingModeSummary::builder()
                        .billing_mode(BillingMode::PayPerRequest)
                        .build(),
                )
                .on_demand_throughput(
                    OnDemandThroughput::builder()
                        .max_read_request_units(max)
                        .build(),
                );
            if let Some(w) = warm {
                t = t.warm_throughput(
                    TableWarmThroughputDescription::builder()
                        .read_units_per_second(w)
                        .build(),
                );
            }
            ReadLimits::of(&t.build())
        };
        let new = on_demand(None, -1);
        assert_eq!((new.start(), new.ceiling()), (12_000.0, 40_000.0));
        let warm = on_demand(Some(30_000), -1);
        assert_eq!(warm.start(), 30_000.0);
        let capped = on_demand(Some(30_000), 2_000);
        assert_eq!((capped.start(), capped.ceiling()), (2_000.0, 2_000.0));
        assert!(!capped.provisioned);
        let provisioned = ReadLimits::of(
            &TableDescription::builder()
                .provisioned_throughput(
                    ProvisionedThroughputDescription::builder()
                        .read_capacity_units(7_200)
                        .write_capacity_units(2_400)
                        .build(),
                )
                .warm_throughput(
                    TableWarmThroughputDescription::builder()
                        .read_units_per_second(12_000)
                        .build(),
                )
                .build(),
        );
        // Warm throughput above provisioned capacity is not the table's to give.
        assert_eq!(
            (provisioned.start(), provisioned.ceiling()),
            (7_200.0, 7_200.0)
        );
        assert!(provisioned.provisioned);
    }
}
