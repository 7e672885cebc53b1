//! Phase 3: the destination must hold as many items as the restore point.
//!
//! Counted by full, strongly consistent parallel scans: DescribeTable's ItemCount is refreshed only
//! about every six hours and proves nothing.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::Select;

use crate::backoff::RetryPolicy;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::sync::retrying;

/// Counts the items of `table` with `segments` parallel scans.
pub async fn count_items(
    client: &Client,
    table: &str,
    segments: u32,
    retry: &RetryPolicy,
) -> Result<u64> {
    let segments = segments.max(1);
    let progress = Progress::items(&format!("count {table}"));
    let mut tasks = tokio::task::JoinSet::new();
    for segment in 0..segments {
        let (client, table, retry, progress) = (
            client.clone(),
            table.to_string(),
            retry.clone(),
            progress.clone(),
        );
        tasks.spawn(async move {
            let mut start = None;
            let mut count = 0u64;
            loop {
                let req = client
                    .scan()
                    .table_name(&table)
                    .select(Select::Count)
                    .consistent_read(true)
                    .segment(segment as i32)
                    .total_segments(segments as i32)
                    .set_exclusive_start_key(start);
                let out = retrying(&retry, "Scan", &table, || req.clone().send()).await?;
                let n = u64::try_from(out.count).unwrap_or(0);
                count += n;
                progress.add(n);
                match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                    Some(k) => start = Some(k),
                    None => return Ok::<u64, Error>(count),
                }
            }
        });
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined.map_err(|e| Error::BadState {
            what: format!("count of {table}"),
            state: e.to_string(),
            hint: "this is a bug in dynamo-dr; run the check again".into(),
        })??;
    }
    progress.finish();
    Ok(total)
}

/// The outcome of comparing the two counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountCheck {
    pub source: u64,
    pub dest: u64,
}

/// Counts both tables concurrently and fails with [`Error::CountMismatch`] when they differ.
pub async fn check_counts(
    client: &Client,
    source: &str,
    dest: &str,
    segments: u32,
    retry: &RetryPolicy,
) -> Result<CountCheck> {
    let (s, d) = tokio::try_join!(
        count_items(client, source, segments, retry),
        count_items(client, dest, segments, retry)
    )?;
    if s != d {
        return Err(Error::CountMismatch {
            source_table: source.to_string(),
            dest: dest.to_string(),
            source_count: s,
            dest_count: d,
        });
    }
    Ok(CountCheck { source: s, dest: d })
}
