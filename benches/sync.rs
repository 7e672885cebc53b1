//! Benchmark: `dynamo-dr sync` of ~1 KB items on dynalite, against a minimal raw concurrent
//! writer's ceiling on the same emulator. Run with `scripts/bench` (release build).
//!
//! Usage: sync [ITEMS ...]   (default 100000)

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use dynamo_dr_testkit::*;
use tokio::sync::Mutex;

const ITEM_BYTES: usize = 1024;
const CONCURRENCY: usize = 32;

/// CONCURRENCY tasks each take the next 25-item batch and write it: nothing else.
async fn raw_writer(client: &Client, table: &str, items: Vec<Item>) -> (f64, u64) {
    let batches: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|c| {
            c.iter()
                .map(|i| {
                    let put = PutRequest::builder()
                        .set_item(Some(i.clone()))
                        .build()
                        .expect("put");
                    WriteRequest::builder().put_request(put).build()
                })
                .collect()
        })
        .collect();
    let n = items.len() as u64;
    drop(items);
    let queue = Arc::new(Mutex::new(batches));
    let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (client, table, queue, requests) = (
            client.clone(),
            table.to_string(),
            queue.clone(),
            requests.clone(),
        );
        tasks.spawn(async move {
            loop {
                let Some(mut batch) = queue.lock().await.pop() else {
                    return;
                };
                while !batch.is_empty() {
                    requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let out = client
                        .batch_write_item()
                        .request_items(&table, batch.clone())
                        .send()
                        .await
                        .expect("write");
                    batch = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    (
        n as f64 / secs,
        requests.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// `BENCH_SEGMENTS="1 8 16"` runs the sync once per segment count; default 8.
fn segment_counts() -> Vec<u32> {
    let parsed: Vec<u32> = std::env::var("BENCH_SEGMENTS")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    if parsed.is_empty() { vec![8] } else { parsed }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000]
    } else {
        sizes
    };
    println!(
        "| items | segments | raw writer items/s | sync copy items/s | % of raw | requests (scan / write) | sync wall s | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let dynalite = Emulator::start_with(
            Kind::Dynalite,
            &["--createTableMs", "0", "--deleteTableMs", "0"],
        )
        .await;
        let client = dynalite.client();
        let src = TableSpec::hash_only("bench-source", Scalar::S);
        let dst = TableSpec::hash_only("bench-dest", Scalar::S);
        let raw = TableSpec::hash_only("bench-raw", Scalar::S);
        for t in [&src, &dst, &raw] {
            create_table(&client, t).await;
        }
        put_all(
            &client,
            &src.name,
            (0..n).map(|i| sized_item(&src, i, ITEM_BYTES)),
        )
        .await;

        let (raw_rate, _) = raw_writer(
            &client,
            &raw.name,
            (0..n).map(|i| sized_item(&raw, i, ITEM_BYTES)).collect(),
        )
        .await;
        // The raw table's data would slow dynalite's later scans of other tables; drop it.
        client
            .delete_table()
            .table_name(&raw.name)
            .send()
            .await
            .expect("delete raw");

        for segments in segment_counts() {
            let segments_arg = segments.to_string();
            let (json, rss_mb) = run_measured(
                &sibling_binary(),
                &dynalite.cli_env(),
                &[
                    "sync",
                    "--source",
                    &src.name,
                    "--dest",
                    &dst.name,
                    "--confirm",
                    &dst.name,
                    "--yes",
                    "--output",
                    "json",
                    "--segments",
                    &segments_arg,
                ],
            );
            let copy_s = json["phaseSeconds"]["copy"].as_f64().expect("copy seconds");
            let copied = json["copiedItems"].as_u64().expect("copied");
            assert_eq!(copied, n);
            let rate = copied as f64 / copy_s;
            println!(
                "| {n} | {segments} | {raw_rate:.0} | {rate:.0} | {:.0}% | {} / {} | {:.1} | {:.1} |",
                100.0 * rate / raw_rate,
                json["scanRequests"],
                json["writeRequests"],
                json["durationSeconds"].as_f64().unwrap_or_default(),
                rss_mb
            );
        }
    }
}
