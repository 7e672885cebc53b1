//! Phase 1b and 4: the temporary table, used and deleted only when AWS shows it is ours.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{BillingMode, SseSpecification, SseType, Tag};

use super::*;
use crate::aws;
use crate::error::{AwsErrorKind, Error, Result};
use crate::execution::Recorder;
use crate::table::{self, TableInfo, wait_active};
use crate::validate::{self, PitrTime, TEMP_TABLE_PREFIX, time_text};

/// Restores into the temporary table once per execution, waits for it, and tags it as this
/// execution's. A table of that name is adopted (after a lost answer or an interruption) only
/// when DynamoDB itself shows it is this execution's: see [`check_provenance`].
pub(super) async fn restore_temp_table(
    client: &Client,
    plan: &Plan,
    rec: &Arc<Recorder>,
) -> Result<TableInfo> {
    let req = &plan.request;
    let temp = &req.names.temp_table;
    let requested = rec.snapshot().await.resources.restore_requested;
    let found = match requested {
        true => table::describe(client, temp).await?,
        false => None,
    };
    if let Some(existing) = found {
        check_provenance(client, plan, &existing).await?;
        rec.update(|e| {
            e.event(format!(
                "adopted temporary table {temp} requested before an interruption (its restore \
                 summary names {})",
                expected_source(plan)
            ))
        })
        .await?;
    } else {
        // Recorded before the call, so the journal shows what may exist if the run dies here.
        rec.update(|e| {
            e.resources.temp_table = Some(temp.clone());
            e.resources.restore_requested = true;
        })
        .await?;
        match start_restore(client, plan).await {
            // Our own request whose answer was lost (the SDK retried it), or somebody else's
            // table of this name: only DynamoDB's description of it can tell.
            Err(Error::Aws {
                kind: AwsErrorKind::AlreadyExists,
                ..
            }) => {
                let existing =
                    table::describe(client, temp)
                        .await?
                        .ok_or_else(|| Error::BadState {
                            what: format!("temporary table {temp}"),
                            state: "reported as existing, but DescribeTable does not find it"
                                .into(),
                            hint: "run `dynamo-dr resume` in a minute".into(),
                        })?;
                check_provenance(client, plan, &existing).await?;
                tracing::info!(table = %temp, "the restore already requested is under way");
            }
            other => other?,
        }
        rec.update(|e| e.event(format!("restore to {temp} requested")))
            .await?;
    }
    let restored = wait_active(
        client,
        temp,
        req.restore_deadline,
        &format!("restore to {temp}"),
    )
    .await?;
    // Again once ACTIVE, before the tag that makes it ours and before any item is read from it.
    if !check_provenance(client, plan, &restored).await? {
        tag_as_ours(client, &restored, plan).await?;
    }
    Ok(restored)
}

/// What a temporary table of this plan must say it was restored from.
fn expected_source(plan: &Plan) -> String {
    match &plan.request.source {
        Source::Pitr(PitrTime::At(t)) => format!(
            "table {} at {}",
            plan.dest.arn,
            validate::restore_point_text(*t)
        ),
        Source::Pitr(PitrTime::Latest) => format!("table {}", plan.dest.arn),
        Source::Backup(arn) => format!("backup {arn}"),
    }
}

/// Whether `table` is this execution's, by what DynamoDB says of it, never by its name:
/// - its RestoreSummary names this plan's source: the live table's ARN (and, for a PITR time,
///   the whole second the restore asked for: [`validate::RESTORE_PRECISION`]), or the backup's ARN
///   (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_RestoreSummary.html>);
/// - its execution tag, if it has one, names this execution.
///
/// Returns whether the tag is already there. Anything else is [`Error::NotOurs`], and nothing is
/// changed: the table is neither tagged nor deleted.
pub async fn check_provenance(client: &Client, plan: &Plan, table: &TableInfo) -> Result<bool> {
    let execution = &plan.request.names.execution_id;
    let from = table.restored_from.as_ref();
    let source_matches = match &plan.request.source {
        Source::Pitr(_) => from.is_some_and(|f| {
            f.backup_arn.is_none() && f.table_arn.as_deref() == Some(plan.dest.arn.as_str())
        }),
        Source::Backup(arn) => from.is_some_and(|f| f.backup_arn.as_deref() == Some(arn)),
    };
    let instant_matches = match (&plan.request.source, table.restored_to) {
        // At the restore's precision: DynamoDB may report the second alone, or more.
        (Source::Pitr(PitrTime::At(t)), Some(at)) => {
            validate::restore_second(at) == validate::restore_second(*t)
        }
        (Source::Pitr(PitrTime::At(_)), None) => false,
        _ => true,
    };
    let tags = tag_values(client, table, EXECUTION_TAG).await?;
    let others: Vec<&String> = tags.iter().filter(|v| *v != execution).collect();
    let found = || {
        let at = table
            .restored_to
            .map(|t| format!(" at {}", time_text(t)))
            .unwrap_or_default();
        match from {
            Some(f) => format!("restored from {f}{at}"),
            None => "not restored from anything (no RestoreSummary)".into(),
        }
    };
    let why = if !source_matches || !instant_matches {
        Some(format!(
            "it was {}, not from {}",
            found(),
            expected_source(plan)
        ))
    } else if !others.is_empty() {
        Some(format!(
            "its {EXECUTION_TAG} tag names {}, not {execution}",
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    } else {
        None
    };
    match why {
        None => Ok(!tags.is_empty()),
        Some(why) => {
            tracing::error!(table = %table.name, %why, "a table of the temporary name is not this execution's; left untouched");
            Err(Error::NotOurs {
                what: format!("table {}", table.name),
                why,
                table: plan.dest.name.clone(),
            })
        }
    }
}

async fn start_restore(client: &Client, plan: &Plan) -> Result<()> {
    let req = &plan.request;
    let temp = &req.names.temp_table;
    // Keep the destination's customer managed key; otherwise the restore would use the
    // AWS-owned key and silently change the encryption of the data at rest.
    let sse = plan.dest.kms_key_arn.as_ref().map(|key| {
        SseSpecification::builder()
            .enabled(true)
            .sse_type(SseType::Kms)
            .kms_master_key_id(key)
            .build()
    });
    // On-demand, so the copy phase's reads are never throttled by a small provisioned capacity.
    // Without secondary indexes: the tool reads only the base table, and DynamoDB builds every
    // index it restores, which lengthens the restore; an empty override leaves them all out
    // (API_RestoreTableToPointInTime: "exclude some or all of the indexes at the time of restore",
    // <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_RestoreTableToPointInTime.html>).
    let (gsis, lsis) = (Some(Vec::new()), Some(Vec::new()));
    match &req.source {
        Source::Pitr(time) => {
            let mut call = client
                .restore_table_to_point_in_time()
                .source_table_name(&plan.dest.name)
                .target_table_name(temp)
                .billing_mode_override(BillingMode::PayPerRequest)
                .set_global_secondary_index_override(gsis)
                .set_local_secondary_index_override(lsis)
                .set_sse_specification_override(sse);
            call = match time {
                PitrTime::Latest => call.use_latest_restorable_time(true),
                PitrTime::At(t) => {
                    call.restore_date_time(to_aws_time(validate::restore_second(*t)))
                }
            };
            call.send()
                .await
                .map_err(|e| aws::aws_error("RestoreTableToPointInTime", temp, &e))?;
        }
        Source::Backup(arn) => {
            client
                .restore_table_from_backup()
                .target_table_name(temp)
                .backup_arn(arn)
                .billing_mode_override(BillingMode::PayPerRequest)
                .set_global_secondary_index_override(gsis)
                .set_local_secondary_index_override(lsis)
                .set_sse_specification_override(sse)
                .send()
                .await
                .map_err(|e| aws::aws_error("RestoreTableFromBackup", temp, &e))?;
        }
    }
    tracing::info!(table = %temp, "restore started");
    Ok(())
}

async fn tag_as_ours(client: &Client, table: &TableInfo, plan: &Plan) -> Result<()> {
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let tags = [
        tag(EXECUTION_TAG, &plan.request.names.execution_id),
        tag(INCIDENT_TAG, &plan.request.incident),
        tag(SOURCE_TAG, &plan.dest.name),
    ]
    .into_iter()
    .collect::<std::result::Result<Vec<_>, _>>()
    .map_err(|e| Error::BadState {
        what: "tags".into(),
        state: e.to_string(),
        hint: "this is a bug in dynamo-dr".into(),
    })?;
    client
        .tag_resource()
        .resource_arn(&table.arn)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| aws::aws_error("TagResource", &table.name, &e))?;
    Ok(())
}

/// All values of `key` on a table (a key may appear more than once on some emulators).
async fn tag_values(client: &Client, table: &TableInfo, key: &str) -> Result<Vec<String>> {
    let mut values = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_tags_of_resource()
            .resource_arn(&table.arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| aws::aws_error("ListTagsOfResource", &table.name, &e))?;
        values.extend(
            out.tags()
                .iter()
                .filter(|t| t.key() == key)
                .map(|t| t.value().to_string()),
        );
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(values),
        }
    }
}

/// Deletes `table` only if its name is a temporary one and its tags name `execution_id`.
pub async fn delete_if_ours(
    client: &Client,
    table: &TableInfo,
    execution_id: &str,
) -> Result<TempTableFate> {
    let values = tag_values(client, table, EXECUTION_TAG).await?;
    let ours = table.name.starts_with(TEMP_TABLE_PREFIX)
        && !values.is_empty()
        && values.iter().all(|v| v == execution_id);
    if !ours {
        tracing::warn!(table = %table.name, tags = ?values, "not deleting: the table's tags do not show this execution created it");
        return Ok(TempTableFate::NotOurs);
    }
    match client.delete_table().table_name(&table.name).send().await {
        Ok(_) => {}
        // An attempt whose answer was lost deleted it already (the SDK retried).
        Err(e) if aws::error_kind(&e) == AwsErrorKind::NotFound => {}
        Err(e) => return Err(aws::aws_error("DeleteTable", &table.name, &e)),
    }
    tracing::info!(table = %table.name, "temporary table deleted");
    Ok(TempTableFate::Deleted)
}
