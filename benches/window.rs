//! Benchmark: undoing a bad deploy's window from its incremental export, against a hard reset
//! and a diff of the same table from PITR. Run with `scripts/bench-window [ITEMS] [CHANGED]`
//! (release build, private moto behind the testkit's history proxy, which makes the export and
//! restores PITR as of the instant, and its partition model: the live table has the 4 partitions
//! of 1,000 write units per second of a new on-demand table, for single writes and batches alike).
//!
//! The table: ITEMS items of under 1 KB written before PITR was on; then, on the history's clock,
//! a bad deploy changes CHANGED of them (half updated, a quarter deleted, a quarter inserted)
//! inside the window. Each run gets its own copy of the same table and history.

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::*;

const ITEM_BYTES: usize = 900;
const BUCKET: &str = "bench-exports";

fn item(spec: &TableSpec, i: u64, v: &str) -> Item {
    let mut item = sized_item(spec, i, ITEM_BYTES);
    item.insert("v".into(), AttributeValue::S(v.into()));
    item
}

/// The table and its bad deploy at base + 20 minutes; returns the spec.
async fn damaged(
    moto: &Emulator,
    proxy: &FaultProxy,
    name: &str,
    n: u64,
    changed: u64,
    base: SystemTime,
) {
    let spec = TableSpec {
        gsi: false,
        ..TableSpec::seed_like(name)
    };
    create_table(&moto.client(), &spec).await;
    put_all(
        &moto.client(),
        name,
        (0..n).map(|i| item(&spec, i, "original")),
    )
    .await;
    let history = proxy.history();
    history.set_clock(Some(base));
    enable_pitr(&proxy.client(), name).await;
    history.set_clock(Some(base + Duration::from_secs(20 * 60)));
    let step = n / changed.max(1);
    let updated = (0..changed / 2).map(|j| item(&spec, j * step, "bad"));
    put_all(&proxy.client(), name, updated).await;
    for j in changed / 2..changed * 3 / 4 {
        let del = proxy
            .client()
            .delete_item()
            .table_name(name)
            .set_key(Some(spec.key(j * step)));
        del.send().await.expect("the bad deploy's delete");
    }
    let inserted = (n..n + changed / 4).map(|i| item(&spec, i, "inserted"));
    put_all(&proxy.client(), name, inserted).await;
    history.set_clock(None);
}

struct Counts {
    writes: u64,
    keys_read: u64,
    read_requests: u64,
    scans: u64,
}

fn counts(p: &FaultProxy) -> Counts {
    let i = p.injected();
    let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    Counts {
        writes: get(&i.written),
        keys_read: get(&i.keys_read),
        read_requests: ["GetItem", "BatchGetItem", "Query", "Scan"]
            .iter()
            .map(|o| i.count(o))
            .sum(),
        scans: i.count("Scan"),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<u64>().ok());
    let n = args.next().unwrap_or(100_000);
    let changed = args.next().unwrap_or(1_000);
    let moto = Emulator::start(Kind::Moto).await;
    moto.s3("PUT", &format!("/{BUCKET}"), b"");
    let faults = Faults {
        live_pitr_window: true,
        ..Faults::none()
    };
    let base = SystemTime::now() - Duration::from_secs(3600);
    let (from, to) = (
        rfc3339(base + Duration::from_secs(10 * 60)),
        rfc3339(base + Duration::from_secs(30 * 60)),
    );
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "window",
            vec![
                "--scope",
                "window",
                "--from",
                &from,
                "--to",
                &to,
                "--export-bucket",
                BUCKET,
            ],
        ),
        // 16 segments: moto answers each parallel-scan page by walking the whole table, so the
        // default (a segment per 100 items) would time out against it; DynamoDB would not.
        (
            "hard reset (PITR)",
            vec![
                "--pitr-time",
                &from,
                "--strategy",
                "hard-reset",
                "--segments",
                "16",
            ],
        ),
        (
            "diff (PITR)",
            vec![
                "--pitr-time",
                &from,
                "--strategy",
                "diff",
                "--segments",
                "16",
            ],
        ),
    ];
    println!(
        "| items | changed | run | wall s | writes | writes/changed | throttled writes | keys read | read requests | Scans | peak RSS MB | $ (requests + restore or export) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, (label, extra)) in runs.iter().enumerate() {
        let table = format!("Orders{i}");
        let capacity = Capacity::partitioned(&table, "pk", 4, 1000.0);
        let proxy =
            FaultProxy::with_history_and_capacity(&moto.endpoint(), faults.clone(), capacity);
        damaged(&moto, &proxy, &table, n, changed, base).await;
        let before = counts(&proxy);
        let throttled_before = proxy.capacity_counters().throttled_items;
        let incident = format!("bench-{i}");
        let mut args = vec![
            "restore",
            "--table",
            &table,
            "--incident-id",
            &incident,
            "--confirm",
            &table,
            "--yes",
            "--output",
            "json",
        ];
        args.extend(extra.iter().copied());
        let mut env = moto.cli_env();
        env.push(("AWS_ENDPOINT_URL".into(), proxy.url().into()));
        let started = Instant::now();
        let (_, rss) = run_measured(&sibling_binary(), &env, &args);
        let wall = started.elapsed().as_secs_f64();
        let after = counts(&proxy);
        let writes = after.writes - before.writes;
        let keys_read = after.keys_read - before.keys_read;
        let gb = (n as f64 * ITEM_BYTES as f64) / 1e9;
        // us-east-1 on-demand: $0.625 per million writes, $0.125 per million reads of 4 KB; PITR
        // restore $0.15/GB of the table; export $0.10/GB it processes (the changed items).
        let extra_cost = if *label == "window" {
            0.10 * changed as f64 * ITEM_BYTES as f64 / 1e9
        } else {
            0.15 * gb
        };
        // Read units: one per key read (items under 4 KB); a whole-table run scans both tables
        // with strongly consistent reads, one unit per 4 KB.
        let reads = if *label == "window" {
            keys_read as f64
        } else {
            2.0 * gb * 1e9 / 4096.0
        };
        let dollars = writes as f64 * 0.625e-6 + reads * 0.125e-6 + extra_cost;
        println!(
            "| {n} | {changed} | {label} | {wall:.1} | {writes} | {:.2} | {} | {keys_read} | {} | {} | {rss:.1} | {dollars:.4} |",
            writes as f64 / changed as f64,
            proxy.capacity_counters().throttled_items - throttled_before,
            after.read_requests - before.read_requests,
            after.scans - before.scans,
        );
    }
}
