//! Read-only checks before anything changes: the table, the PITR window or the backup.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{BackupStatus, PointInTimeRecoveryStatus};
use jiff::Timestamp;

use super::*;
use crate::aws;
use crate::error::{AwsErrorKind, Error, Result};
use crate::item::KeySchema;
use crate::table::{self, TableInfo};
use crate::validate::{self, PitrTime, time_text};

/// Read-only checks of everything the run will rely on. Any failure here is an
/// [`Error::Invalid`]: nothing has been changed.
pub async fn preflight(
    (client, aws): (&Client, &aws::AwsOptions),
    mut request: RestoreRequest,
    resuming: bool,
) -> Result<Plan> {
    let mut dest = table::describe_existing(client, &request.table, "table").await?;
    if let Some(units) = request.prewarm {
        prewarm(&mut dest, units)?;
    }
    let (segments, segments_why) = dest.segments(request.sync.segments, &dest);
    request.sync.segments = segments;
    if !dest.is_active() {
        return Err(Error::invalid(
            "table",
            format!(
                "{} is {}, not ACTIVE; wait until it is ACTIVE and run again",
                dest.name, dest.status
            ),
        ));
    }
    let keys = crate::targeted::KeysFile::open(aws, &request.scope).await?;
    let s3 = match &request.scope {
        journal::Scope::Window { .. } => Some(aws::s3_client(aws).await),
        _ => None,
    };
    scope(&mut request.scope, &dest, keys.as_ref())?;
    let source = match &request.source {
        Source::Pitr(time) => pitr_window(client, &dest, *time).await?,
        Source::Backup(arn) => backup_detail(client, &dest, arn).await?,
    };
    window_end(&request.scope, &source, &dest.name)?;
    if resuming {
        return Ok(Plan {
            watchers: Default::default(),
            strategy: Default::default(),
            keys,
            segments_why,
            s3: s3.clone(),
            request,
            dest,
            source,
        });
    }
    if let Some(existing) = table::describe(client, &request.names.temp_table).await? {
        return Err(Error::invalid(
            "incident id",
            format!(
                "the temporary table {} already exists ({}), probably from an earlier run of incident \
                 {}; inspect it, delete it if it is no longer needed, or use a new incident id",
                existing.name, existing.status, request.incident
            ),
        ));
    }
    Ok(Plan {
        watchers: Default::default(),
        strategy: Default::default(),
        keys,
        segments_why,
        s3,
        request,
        dest,
        source,
    })
}

/// `--prewarm UNITS` only where it can make the copy faster: an on-demand table, below its
/// maximum. The plan's pace then starts at UNITS (phase one raises it before any copy).
fn prewarm(dest: &mut TableInfo, units: u64) -> Result<()> {
    if let Some(w) = dest.write_capacity {
        return Err(Error::invalid(
            "--prewarm",
            format!(
                "{} is provisioned at {w} write units/s, and a copy writes at its provisioned \
                 capacity whatever its warm throughput; raise the provisioned capacity instead, \
                 and run without --prewarm",
                dest.name
            ),
        ));
    }
    if let Some(max) = dest.write_limits.max.as_ref().filter(|m| m.units < units) {
        return Err(Error::invalid(
            "--prewarm",
            format!(
                "{units} is above the maximum of {}, {max}, which the copy never exceeds; give \
                 --prewarm {} or less, or raise the maximum first",
                dest.name, max.units
            ),
        ));
    }
    dest.write_limits.prewarm(units);
    Ok(())
}

/// A targeted scope's inputs, checked against the table: every line of a keys file is one of
/// its keys (and, on a resume, the file is the one the run started with), every partition value
/// is of its hash key's type.
fn scope(
    scope: &mut journal::Scope,
    dest: &TableInfo,
    local: Option<&crate::targeted::KeysFile>,
) -> Result<()> {
    match scope {
        journal::Scope::Keys { file, sha256, keys } => {
            let path = local.map_or_else(|| std::path::Path::new(file.as_str()), |k| k.path());
            let (count, hash) = crate::targeted::read_keys_file(path, &dest.key)?;
            if !sha256.is_empty() && *sha256 != hash {
                return Err(Error::invalid(
                    "--keys",
                    format!(
                        "{file} changed since this execution started (SHA-256 {sha256}, now \
                         {hash}); its checkpoints count its lines, so put the original file back, \
                         or restore the new keys under a new incident id"
                    ),
                ));
            }
            *sha256 = hash;
            *keys = count;
        }
        journal::Scope::Partition { values } => {
            crate::targeted::partition_values(dest, values)?;
        }
        journal::Scope::Window { from, to, .. } => {
            let span = to.duration_since(*from);
            if span < jiff::SignedDuration::try_from(crate::export::MIN_WINDOW).unwrap_or_default()
            {
                return Err(Error::invalid(
                    "--to",
                    format!(
                        "the window {from} to {to} is shorter than 15 minutes, the shortest an \
                         incremental export covers; widen it (writes before the bad ones are \
                         kept only if they are outside it, so choose --from just before them)"
                    ),
                ));
            }
        }
        journal::Scope::Table | journal::Scope::Missing => {}
    }
    Ok(())
}

/// A window must end inside the table's PITR window: DynamoDB exports only what it can restore.
fn window_end(scope: &journal::Scope, source: &SourceDetail, table: &str) -> Result<()> {
    let (journal::Scope::Window { to, .. }, SourceDetail::Pitr { latest, .. }) = (scope, source)
    else {
        return Ok(());
    };
    if to > latest {
        return Err(Error::invalid(
            "--to",
            format!(
                "{to} is later than {table}'s latest restorable time ({}); an export can end no \
                 later than that. Choose an earlier --to, or wait",
                time_text(*latest)
            ),
        ));
    }
    Ok(())
}

async fn pitr_window(client: &Client, dest: &TableInfo, time: PitrTime) -> Result<SourceDetail> {
    let out = client
        .describe_continuous_backups()
        .table_name(&dest.name)
        .send()
        .await
        .map_err(|e| aws::aws_error("DescribeContinuousBackups", &dest.name, &e))?;
    let pitr = out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description());
    let status = pitr
        .and_then(|p| p.point_in_time_recovery_status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "DISABLED".into());
    let (Some(p), true) = (pitr, status == PointInTimeRecoveryStatus::Enabled.as_str()) else {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "point-in-time recovery is {status} on {}, so it has no restorable window; restore \
                 from an on-demand or AWS Backup backup with --backup-arn instead",
                dest.name
            ),
        ));
    };
    let window = p
        .earliest_restorable_date_time()
        .and_then(aws::timestamp)
        .zip(p.latest_restorable_date_time().and_then(aws::timestamp));
    let Some((earliest, latest)) = window else {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "DescribeContinuousBackups gave no restorable window for {}; try again in a few minutes",
                dest.name
            ),
        ));
    };
    // The window arrives to the millisecond (see `aws::timestamp`); the restore asks for the
    // whole second (see `validate::RESTORE_PRECISION`), so that is what must lie inside it.
    if let PitrTime::At(t) = time
        && !validate::restorable(t, earliest, latest)
    {
        let period = p
            .recovery_period_in_days()
            .map(|d| format!(" (recovery period {d} days)"))
            .unwrap_or_default();
        return Err(Error::invalid(
            "PITR time",
            format!(
                "{} is outside the restorable window of {}: {} to {}{period}; {}",
                validate::restore_point_text(t),
                dest.name,
                time_text(earliest),
                time_text(latest),
                outside_hint(t, earliest, latest)
            ),
        ));
    }
    Ok(SourceDetail::Pitr {
        time,
        earliest,
        latest,
        recovery_period_days: p.recovery_period_in_days(),
    })
}

/// What to choose instead of a time whose second is outside the window. A time just after the
/// window opens can be inside it while the second it restores to is not.
fn outside_hint(t: Timestamp, earliest: Timestamp, latest: Timestamp) -> String {
    if !(earliest..=latest).contains(&t) {
        return "choose a time inside it, or latest".into();
    }
    let ceil = jiff::TimestampRound::new()
        .smallest(validate::RESTORE_PRECISION)
        .mode(jiff::RoundMode::Ceil);
    match earliest.round(ceil) {
        Ok(first) if first <= latest => format!(
            "DynamoDB restores to the second, so choose {} or later, or latest",
            time_text(first)
        ),
        _ => "DynamoDB restores to the second and no whole second is inside it yet, so use latest"
            .into(),
    }
}

async fn backup_detail(client: &Client, dest: &TableInfo, arn: &str) -> Result<SourceDetail> {
    let out = match client.describe_backup().backup_arn(arn).send().await {
        Ok(out) => out,
        Err(e) if aws::error_kind(&e) == AwsErrorKind::NotFound => {
            return Err(Error::invalid(
                "backup ARN",
                format!(
                    "no backup {arn} in this account and region; list them with `aws dynamodb list-backups --table-name {}`",
                    dest.name
                ),
            ));
        }
        Err(e) => return Err(aws::aws_error("DescribeBackup", arn, &e)),
    };
    let desc = out.backup_description();
    let details = desc.and_then(|d| d.backup_details());
    let source = desc.and_then(|d| d.source_table_details());
    let (Some(details), Some(source)) = (details, source) else {
        return Err(Error::invalid(
            "backup ARN",
            format!("DescribeBackup returned no details for {arn}"),
        ));
    };
    if details.backup_status() != &BackupStatus::Available {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} is {}, not AVAILABLE; wait for it or choose another",
                details.backup_status().as_str()
            ),
        ));
    }
    if source.table_name() != dest.name {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} was taken of table {}, not {}; a backup of another table would \
                 replace this table's data with that table's. Pass a backup of {}, or restore the \
                 backup to a new table yourself and use `dynamo-dr sync`",
                source.table_name(),
                dest.name,
                dest.name
            ),
        ));
    }
    let backup_key = KeySchema::from_elements(source.key_schema());
    if backup_key.as_ref() != Some(&dest.key) {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "backup {arn} has key schema {}, but {} has {}; the items could not be written back",
                backup_key
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "none".into()),
                dest.name,
                dest.key
            ),
        ));
    }
    Ok(SourceDetail::Backup {
        arn: arn.to_string(),
        name: details.backup_name().to_string(),
        created: aws::timestamp(details.backup_creation_date_time())
            .unwrap_or(Timestamp::UNIX_EPOCH),
        source_table: source.table_name().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::{
        KeySchemaElement, KeyType, OnDemandThroughput, TableDescription,
    };

    use super::*;

    #[test]
    fn a_prewarm_above_the_maximum_is_refused_and_below_it_starts_the_pace() {
        let described = |max: i64| {
            TableDescription::builder()
                .table_name("Orders")
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("id")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("key"),
                )
                .on_demand_throughput(
                    OnDemandThroughput::builder()
                        .max_write_request_units(max)
                        .build(),
                )
                .build()
        };
        let mut capped = TableInfo::from_description(&described(2_000)).expect("info");
        let refused = prewarm(&mut capped, 5_000).expect_err("above the maximum");
        assert!(
            refused.to_string().contains("give --prewarm 2000 or less"),
            "{refused}"
        );
        prewarm(&mut capped, 1_500).expect("below the maximum");
        assert_eq!(capped.write_limits.start(), 1_500.0);
        let mut open = TableInfo::from_description(&described(-1)).expect("info");
        prewarm(&mut open, 30_000).expect("no maximum");
        assert_eq!(open.write_limits.start(), 30_000.0);
    }
}
