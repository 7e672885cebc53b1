//! The seed runbook's pre-execution checklist as a command: for every configured table of an
//! environment, whether a recovery could start now, read-only.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::PointInTimeRecoveryStatus;
use jiff::Timestamp;
use serde::Serialize;

use crate::aws;
use crate::config::Config;
use crate::error::Result;
use crate::journal::Journal;
use crate::table;
use crate::validate::{self, time_text};

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub check: &'static str,
    /// `ok`, `fail`, or `info` (shown, never failing).
    pub result: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    pub logical: String,
    pub table: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub environment: String,
    pub recovery_mode: Item,
    pub tables: Vec<TableReport>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| &t.items)
            .filter(|i| i.result == "fail")
            .count()
    }
}

fn ok(check: &'static str, detail: impl Into<String>) -> Item {
    Item {
        check,
        result: "ok",
        detail: detail.into(),
    }
}

fn fail(check: &'static str, detail: impl Into<String>) -> Item {
    Item {
        check,
        result: "fail",
        detail: detail.into(),
    }
}

fn info(check: &'static str, detail: impl Into<String>) -> Item {
    Item {
        check,
        result: "info",
        detail: detail.into(),
    }
}

/// Checks every configured table of `environment` (and those tied to none), optionally against a
/// PITR time the operator means to use.
pub async fn run(
    (client, lambda): (&Client, &aws_sdk_lambda::Client),
    journal: &dyn Journal,
    config: &Config,
    environment: &str,
    pitr_time: Option<Timestamp>,
) -> Result<Report> {
    config.environment(environment)?;
    let record = journal.load_recovery_mode(environment).await?;
    let on = record.as_ref().is_some_and(|r| r.is_on());
    let mut streamed = false;
    let mut recovery_mode = if on {
        ok("recovery mode", format!("on for {environment}"))
    } else {
        info(
            "recovery mode",
            format!(
                "off for {environment}: start it with `dynamo-dr recovery-mode start --environment {environment}` before restoring its tables"
            ),
        )
    };
    let mut tables = Vec::new();
    for (logical, t) in &config.tables {
        if t.environment.as_deref().is_some_and(|e| e != environment) {
            continue;
        }
        let mut items = Vec::new();
        // An excluded table is not read at all, not even described.
        match &t.excluded {
            Some(reason) => items.push(fail(
                "excluded",
                format!("excluded from disaster recovery: {reason}; not read"),
            )),
            None => {
                let c = Checking {
                    client,
                    lambda,
                    journal,
                    pitr_time,
                    streamed: &mut streamed,
                };
                check_table(c, &t.name, &mut items).await?
            }
        }
        tables.push(TableReport {
            logical: logical.clone(),
            table: t.name.clone(),
            items,
        });
    }
    if let Some(warning) = record
        .as_ref()
        .and_then(|r| crate::recovery_mode::stale_streams(r, streamed, Timestamp::now()))
    {
        recovery_mode = info("recovery mode", warning);
    }
    Ok(Report {
        environment: environment.to_string(),
        recovery_mode,
        tables,
    })
}

/// What `check` reads a table with, and where it says what it found.
struct Checking<'a> {
    client: &'a Client,
    lambda: &'a aws_sdk_lambda::Client,
    journal: &'a dyn Journal,
    pitr_time: Option<Timestamp>,
    /// Set when the table has a stream.
    streamed: &'a mut bool,
}

async fn check_table(c: Checking<'_>, name: &str, items: &mut Vec<Item>) -> Result<()> {
    let Checking {
        client,
        lambda,
        journal,
        pitr_time,
        streamed,
    } = c;
    let Some(t) = described(client, name, items).await? else {
        return Ok(());
    };
    let info_t = table::TableInfo::from_description(&t)?;
    items.push(ok("exists", info_t.arn.clone()));
    items.push(if info_t.is_active() {
        ok("status", "ACTIVE")
    } else {
        fail("status", format!("{}, not ACTIVE", info_t.status))
    });
    pitr_items(client, name, pitr_time, items).await?;
    fact_items(&t, &info_t, items);
    let watchers = crate::watchers::describe(client, lambda, &info_t).await?;
    items.push(info("downstream", watchers.sentence(&info_t)));
    if info_t.stream.is_some() {
        *streamed = true;
    }
    lease_item(journal, name, items).await
}

/// The table as DynamoDB describes it; `None` (and a failed item) when it does not exist.
async fn described(
    client: &Client,
    name: &str,
    items: &mut Vec<Item>,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
    let described = client.describe_table().table_name(name).send().await;
    let t = match described {
        Ok(out) => match out.table {
            Some(t) => t,
            None => {
                items.push(fail("exists", "DescribeTable returned no table"));
                return Ok(None);
            }
        },
        Err(e) if aws::error_kind(&e) == crate::error::AwsErrorKind::NotFound => {
            items.push(fail(
                "exists",
                "no such table in this account and region; fix the config's name or --region",
            ));
            return Ok(None);
        }
        Err(e) => return Err(aws::aws_error("DescribeTable", name, &e)),
    };
    Ok(Some(t))
}

/// Whether PITR is on, its window, and whether the asked time is inside it.
async fn pitr_items(
    client: &Client,
    name: &str,
    pitr_time: Option<Timestamp>,
    items: &mut Vec<Item>,
) -> Result<()> {
    let pitr = client
        .describe_continuous_backups()
        .table_name(name)
        .send()
        .await
        .map_err(|e| aws::aws_error("DescribeContinuousBackups", name, &e))?;
    let p = pitr
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description());
    let enabled = p
        .and_then(|p| p.point_in_time_recovery_status())
        .is_some_and(|s| *s == PointInTimeRecoveryStatus::Enabled);
    let window = p
        .and_then(|p| p.earliest_restorable_date_time().and_then(aws::timestamp))
        .zip(p.and_then(|p| p.latest_restorable_date_time().and_then(aws::timestamp)));
    match (enabled, window) {
        (true, Some((earliest, latest))) => {
            let period = p
                .and_then(|p| p.recovery_period_in_days())
                .map(|d| format!(", recovery period {d} days"))
                .unwrap_or_default();
            let window = format!("{} to {}", time_text(earliest), time_text(latest));
            items.push(ok(
                "PITR",
                format!("enabled{period}; restorable now {window}"),
            ));
            if let Some(at) = pitr_time {
                let at_text = validate::restore_point_text(at);
                items.push(if validate::restorable(at, earliest, latest) {
                    ok("PITR time", format!("{at_text} is inside the window"))
                } else {
                    fail(
                        "PITR time",
                        format!("{at_text} is outside the window {window}"),
                    )
                });
            }
        }
        _ => items.push(fail(
            "PITR",
            "point-in-time recovery is not enabled: only restores from backups are possible; \
             enable it now to protect the table from here on",
        )),
    }
    Ok(())
}

/// What the operator should know of the table: protection, key, size, segments.
fn fact_items(
    t: &aws_sdk_dynamodb::types::TableDescription,
    info_t: &table::TableInfo,
    items: &mut Vec<Item>,
) {
    items.push(info(
        "deletion protection",
        if t.deletion_protection_enabled().unwrap_or(false) {
            "on"
        } else {
            "off"
        },
    ));
    items.push(info(
        "encryption",
        info_t
            .kms_key_arn
            .clone()
            .map(|k| format!("customer managed KMS key {k}"))
            .unwrap_or_else(|| "AWS owned or AWS managed key".into()),
    ));
    items.push(info(
        "size",
        format!(
            "~{} items, ~{} bytes (DescribeTable, up to 6 h stale)",
            info_t.approx_items.unwrap_or_default(),
            info_t.approx_bytes.unwrap_or_default()
        ),
    ));
    items.push(info(
        "segments",
        info_t.segments(0, info_t).1.unwrap_or_default(),
    ));
}

/// Whether a run holds the table now.
async fn lease_item(journal: &dyn Journal, name: &str, items: &mut Vec<Item>) -> Result<()> {
    let lease = journal.read_lease(name).await?;
    let now = Timestamp::now();
    items.push(match lease {
        Some((l, _)) if !l.is_free(now) => fail(
            "running restore",
            format!(
                "execution {} holds the table ({}); see `dynamo-dr status {}`",
                l.execution_id,
                l.who(now),
                l.execution_id
            ),
        ),
        _ => ok("running restore", "none"),
    });
    Ok(())
}
