//! Benchmark: a hard reset and a diff through the testkit's partition model in front of
//! dynalite, at 16 and 64 partitions, against the model's capacity; and the seed's approach (one
//! sequential scan, one writer) on the same model. Run with `scripts/bench-partitions`.
//!
//! Usage: partitions [PARTITIONS ...] [--no-seed]   (default 16 64; the seed's approach takes
//! minutes at 64 partitions)

use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use dynamo_dr_testkit::capacity::Counters;
use dynamo_dr_testkit::*;

const ITEMS: u64 = 12_000;

/// Items of the run: `BENCH_ITEMS`, else [`ITEMS`]. Reads at the model's read capacity are
/// fast: a diff's and a verify's read share needs a larger table to be measured.
fn items() -> u64 {
    std::env::var("BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITEMS)
}
/// About 1 KB: one write unit each.
const ITEM_BYTES: usize = 900;
/// Write units per second of the whole model.
const CAPACITY: f64 = 2_400.0;
/// Start-up and tail seconds left out of "steady state".
const TRIM: usize = 2;

struct Row {
    what: String,
    /// Write units per second in the delete and the copy phase, from the run's own timings.
    phases: Option<(f64, f64)>,
    partitions: u32,
    capacity: f64,
    counters: Counters,
    wall: Duration,
    exact: bool,
    rss_mb: Option<f64>,
}

impl Row {
    fn print(&self) {
        let c = &self.counters;
        let rate = c.write_units_per_second();
        let phases = self.phases.map_or("-".into(), |(d, c)| {
            format!(
                "{d:.0} ({:.1}%) / {c:.0} ({:.1}%)",
                100.0 * d / self.capacity,
                100.0 * c / self.capacity
            )
        });
        println!(
            "| {} | {} | {:.0} | {phases} | {:.0} ({:.1}%) | {} of {} ({:.1}%) | {:.1}% | {:.1} of {} | {:.1} s | {} | {} |",
            self.what,
            self.partitions,
            self.capacity,
            rate,
            100.0 * rate / self.capacity,
            c.throttled_write_requests,
            c.write_requests,
            100.0 * c.throttled_write_requests as f64 / c.write_requests.max(1) as f64,
            100.0 * c.throttled_share(TRIM),
            c.mean_busy_partitions(),
            self.partitions,
            self.wall.as_secs_f64(),
            if self.exact { "exact" } else { "DIFFERS" },
            self.rss_mb.map_or("-".into(), |m| format!("{m:.0} MB")),
        );
    }
}

/// A source of ITEMS items and a destination with the same keys, other values, behind the model.
struct Bench {
    dynalite: Emulator,
    client: Client,
    src: TableSpec,
    expected: std::collections::BTreeMap<String, Item>,
    capacity: Capacity,
    proxy: FaultProxy,
}

impl Bench {
    /// With `mostly_equal`, four items in five of the destination already equal the source's.
    async fn start(partitions: u32, mostly_equal: bool) -> Bench {
        let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
        let client = dynalite.client();
        let src = TableSpec::hash_only("bench-source", Scalar::S);
        create_table(&client, &src).await;
        provisioned_table(&client, "bench-dest", CAPACITY as i64).await;
        put_all(
            &client,
            &src.name,
            (0..items()).map(|i| sized_item(&src, i, ITEM_BYTES)),
        )
        .await;
        let dest_items = (0..items()).map(|i| {
            if mostly_equal && i % 5 != 0 {
                return sized_item(&src, i, ITEM_BYTES);
            }
            let mut item = sized_item(&src, i + items(), ITEM_BYTES);
            item.insert("id".into(), src.key(i)["id"].clone());
            item
        });
        put_all(&client, "bench-dest", dest_items).await;
        let expected = scan_all(&client, &src.name).await;
        let mut capacity = Capacity::partitioned(
            "bench-dest",
            "id",
            partitions,
            CAPACITY / f64::from(partitions),
        );
        // DynamoDB states every table's warm throughput: here, what the partitions serve.
        capacity.warm_write_units = Some(CAPACITY as u64);
        let proxy =
            FaultProxy::with_capacity(&dynalite.endpoint(), Faults::none(), capacity.clone());
        Bench {
            dynalite,
            client,
            src,
            expected,
            capacity,
            proxy,
        }
    }
}

/// `dynamo-dr sync` through the model; `strategy` hard-reset or diff.
async fn tool(partitions: u32, strategy: &str) -> Row {
    let bench = Bench::start(partitions, strategy == "diff").await;
    let mut env = bench.dynalite.cli_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), bench.proxy.url().to_string()));
    let started = Instant::now();
    let (out, rss) = run_measured(
        &sibling_binary(),
        &env,
        &[
            "sync",
            "--source",
            &bench.src.name,
            "--dest",
            "bench-dest",
            "--confirm",
            "bench-dest",
            "--strategy",
            strategy,
            "--yes",
            "--output",
            "json",
        ],
    );
    let wall = started.elapsed();
    assert_eq!(out["status"], "succeeded", "{out}");
    // One unit per item: ~900-byte puts, and deletes.
    let per_phase = |items: &str, phase: &str| {
        out[items].as_f64().unwrap_or(0.0)
            / out["phaseSeconds"][phase].as_f64().unwrap_or(1.0).max(1e-3)
    };
    let phases = Some((
        per_phase("deletedItems", "delete"),
        per_phase("copiedItems", "copy"),
    ));
    let exact = scan_all(&bench.client, "bench-dest").await == bench.expected;
    if strategy == "diff" {
        reads(&bench, &env, &out).await;
    }
    Row {
        what: format!("dynamo-dr, defaults, {strategy}"),
        phases,
        partitions,
        capacity: bench.capacity.total_write_units(),
        counters: bench.proxy.capacity_counters(),
        wall,
        exact,
        rss_mb: Some(rss),
    }
}

fn read_units(c: &Counters) -> f64 {
    c.read_units.iter().flatten().sum()
}

/// After a diff: its copy phase against the least time DynamoDB allows it, the longer of reading
/// the destination by key at the model's read capacity (its BatchGetItem units alone, not the
/// count check's scans) and writing what differed at the write capacity; then `dynamo-dr verify`
/// of the same tables, its destination reads per second against that capacity. The source is
/// not modelled, and is served by a dynalite of its own for the verify: one single-threaded
/// emulator serving both tables' scans was itself slower than the model's read capacity.
async fn reads(bench: &Bench, env: &[(String, String)], diff: &serde_json::Value) {
    let (capacity, proxy) = (&bench.capacity, &bench.proxy);
    let partitions = capacity.partitions;
    let read_capacity = capacity.partition_read_units * f64::from(partitions);
    let before = proxy.capacity_counters();
    let key_units = before.key_read_units;
    let reading = key_units / read_capacity;
    let writing = diff["copiedItems"].as_f64().unwrap_or(0.0) / CAPACITY;
    let copy_seconds = diff["phaseSeconds"]["copy"].as_f64().unwrap_or(0.0);
    let own = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    create_table(&own.client(), &bench.src).await;
    put_all(
        &own.client(),
        &bench.src.name,
        bench.expected.values().cloned(),
    )
    .await;
    proxy.route(&bench.src.name, &own.endpoint());
    let (out, wall) = timed_verify(bench, env, proxy.url());
    let c = proxy.capacity_counters();
    let verify_units = read_units(&c) - read_units(&before);
    println!(
        "READS | {partitions} | {read_capacity:.0} | {key_units:.0} | {reading:.2} | {writing:.2} | {copy_seconds:.2} | {:.2} | {verify_units:.0} | {wall:.2} | {:.0} ({:.1}%) | {} | {} | {} |",
        copy_seconds / reading.max(writing).max(1e-9),
        verify_units / wall,
        100.0 * verify_units / wall / read_capacity,
        steady_text(steady_reads(&before, &c), read_capacity),
        c.throttled_read_requests,
        out["status"],
    );
    // The same verify with no model: what the emulators and the machine allow, beside the tool.
    let plain = FaultProxy::start(&bench.dynalite.endpoint(), Faults::none());
    plain.route(&bench.src.name, &own.endpoint());
    let (_, ceiling) = timed_verify(bench, env, plain.url());
    println!(
        "VERIFY with no model: {ceiling:.2} s (at the model's read capacity: {:.2} s)",
        verify_units / read_capacity
    );
    slower_reads(bench, env, &own, verify_units).await;
}

/// The verify again where the destination's read capacity (provisioned, and the model's) is a
/// third of the above, 1:1 with its writes, so that the model and not the machine is the limit.
async fn slower_reads(bench: &Bench, env: &[(String, String)], own: &Emulator, units: f64) {
    let client = &bench.client;
    let write = CAPACITY as i64;
    client
        .update_table()
        .table_name("bench-dest")
        .provisioned_throughput(
            aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                .read_capacity_units(write)
                .write_capacity_units(write)
                .build()
                .expect("throughput"),
        )
        .send()
        .await
        .expect("UpdateTable");
    wait_for("bench-dest ACTIVE", Duration::from_secs(30), || async {
        let t = client
            .describe_table()
            .table_name("bench-dest")
            .send()
            .await;
        t.ok()
            .and_then(|t| t.table().and_then(|t| t.table_status().cloned()))
            == Some(aws_sdk_dynamodb::types::TableStatus::Active)
    })
    .await;
    let partitions = bench.capacity.partitions;
    // Provisioned capacity is spread evenly over the partitions; adaptive capacity lets a busier
    // partition take more of the table's unused share, up to its own most
    // (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html>).
    // Measured both ways: each partition held to its even share (stricter than DynamoDB), and
    // the table's limit with partitions as in the rest of the bench.
    for adaptive in [false, true] {
        let mut capacity = bench.capacity.clone();
        if adaptive {
            capacity.table_read_units = Some(CAPACITY);
        } else {
            capacity.partition_read_units = CAPACITY / f64::from(partitions);
        }
        capacity.warm_write_units = None;
        let proxy = FaultProxy::with_capacity(&bench.dynalite.endpoint(), Faults::none(), capacity);
        proxy.route(&bench.src.name, &own.endpoint());
        let (out, wall) = timed_verify(bench, env, proxy.url());
        let c = proxy.capacity_counters();
        let verify_units = read_units(&c);
        let model = if adaptive {
            "the table's limit, adaptive capacity"
        } else {
            "each partition its even share"
        };
        println!(
            "VERIFY at {CAPACITY:.0} read units/s ({model}): {verify_units:.0} units (was {units:.0}) in {wall:.2} s: {:.0} ({:.1}%); whole seconds inside its span {}; throttled reads {}; {}",
            verify_units / wall,
            100.0 * verify_units / wall / CAPACITY,
            steady_text(steady_reads(&Counters::default(), &c), CAPACITY),
            c.throttled_read_requests,
            out["status"],
        );
    }
}

fn steady_text(steady: Option<(usize, f64)>, capacity: f64) -> String {
    steady.map_or("-".into(), |(n, u)| {
        format!("{u:.0} ({:.1}%) over {n} s", 100.0 * u / capacity)
    })
}

/// `dynamo-dr verify` of the bench's tables through `url`: its JSON and wall seconds.
fn timed_verify(bench: &Bench, env: &[(String, String)], url: &str) -> (serde_json::Value, f64) {
    let mut env = env.to_vec();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), url.to_string()));
    let started = Instant::now();
    let (out, _) = run_measured(
        &sibling_binary(),
        &env,
        &[
            "verify",
            "--source",
            &bench.src.name,
            "--dest",
            "bench-dest",
            "--output",
            "json",
        ],
    );
    (out, started.elapsed().as_secs_f64())
}

/// The destination's read units per second in the whole seconds strictly inside the span in
/// which a run read it (its first and last seconds are partly spent starting and finishing):
/// `(seconds, units per second)`, or `None` when the run read for under three seconds.
fn steady_reads(before: &Counters, after: &Counters) -> Option<(usize, f64)> {
    let per_second =
        |c: &Counters| -> Vec<f64> { c.read_units.iter().map(|s| s.iter().sum()).collect() };
    let (was, now) = (per_second(before), per_second(after));
    let read: Vec<f64> = (0..now.len())
        .map(|s| now[s] - was.get(s).copied().unwrap_or(0.0))
        .collect();
    let shown: Vec<String> = read
        .iter()
        .filter(|u| **u > 0.0)
        .map(|u| format!("{u:.0}"))
        .collect();
    println!(
        "VERIFY destination read units per second: {}",
        shown.join(" ")
    );
    let first = read.iter().position(|u| *u > 0.0)?;
    let last = read.iter().rposition(|u| *u > 0.0)?;
    let inner = read.get(first + 1..last)?;
    (!inner.is_empty()).then(|| (inner.len(), inner.iter().sum::<f64>() / inner.len() as f64))
}

/// One BatchWriteItem at a time, unprocessed items resent, throttles backed off: boto3's
/// batch writer as the seed's handlers use it.
async fn one_writer(client: &Client, table: &str, mut batch: Vec<WriteRequest>) {
    let mut delay = Duration::from_millis(50);
    while !batch.is_empty() {
        match client
            .batch_write_item()
            .request_items(table, batch.clone())
            .send()
            .await
        {
            Ok(out) => {
                batch = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
                delay = Duration::from_millis(50);
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The seed's approach: one sequential scan of the destination deleting, then of the source
/// copying, one writer.
async fn seed(partitions: u32) -> Row {
    // The emulator is bound too: it stops when dropped.
    let Bench {
        dynalite: _dynalite,
        client: direct,
        expected,
        capacity,
        proxy,
        src,
    } = Bench::start(partitions, false).await;
    let client = client_for(proxy.url());
    let started = Instant::now();
    for (table, delete) in [("bench-dest", true), (src.name.as_str(), false)] {
        let mut start = None;
        loop {
            let out = client
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan");
            for chunk in out.items().chunks(25) {
                let batch = chunk
                    .iter()
                    .map(|i| {
                        if delete {
                            let key = [("id".to_string(), i["id"].clone())].into();
                            WriteRequest::builder()
                                .delete_request(
                                    DeleteRequest::builder()
                                        .set_key(Some(key))
                                        .build()
                                        .expect("d"),
                                )
                                .build()
                        } else {
                            WriteRequest::builder()
                                .put_request(
                                    PutRequest::builder()
                                        .set_item(Some(i.clone()))
                                        .build()
                                        .expect("p"),
                                )
                                .build()
                        }
                    })
                    .collect();
                one_writer(&client, "bench-dest", batch).await;
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
    }
    let wall = started.elapsed();
    let exact = scan_all(&direct, "bench-dest").await == expected;
    Row {
        what: "the seed's handlers (one sequential scan, one writer)".into(),
        phases: None,
        partitions,
        capacity: capacity.total_write_units(),
        counters: proxy.capacity_counters(),
        wall,
        exact,
        rss_mb: None,
    }
}

fn client_for(url: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
        .endpoint_url(url)
        .build();
    Client::from_conf(config)
}

#[tokio::main]
async fn main() {
    let partitions: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let with_seed = !std::env::args().any(|a| a == "--no-seed");
    let partitions = if partitions.is_empty() {
        vec![16, 64]
    } else {
        partitions
    };
    assert!(
        Command::new(sibling_binary())
            .arg("--version")
            .output()
            .is_ok(),
        "build the release binary first (scripts/bench-partitions does)"
    );
    println!(
        "{} items of ~1 KB; the model: P partitions sharing {CAPACITY} write units/s; \
         steady state leaves out the first and last {TRIM} s of writing\n",
        items()
    );
    println!(
        "| run | partitions | capacity units/s | delete / copy phase units/s (share) | all writing seconds units/s (share) | throttled requests | throttled at steady state | partitions busy (mean) | wall time | result | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "(READS lines: partitions | read capacity units/s | diff's destination reads by key, units | reading them at capacity s | writing its differences at capacity s | diff copy phase s | ratio to the longer | verify's destination read units | verify wall s | verify units/s (share) | verify's whole seconds inside its span, units/s (share) | throttled reads | verify status)\n"
    );
    for p in partitions {
        tool(p, "hard-reset").await.print();
        tool(p, "diff").await.print();
        if with_seed {
            seed(p).await.print();
        }
    }
}
