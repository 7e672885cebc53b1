//! Benchmark: three tables restored in place one after another, against the same three restored
//! by one multi-table command. Run with `scripts/bench-multi [ITEMS_PER_TABLE]` (release build,
//! private moto).

use std::time::Instant;

use dynamo_dr_testkit::*;

const TABLES: [&str; 3] = ["bench-orders", "bench-customers", "bench-payments"];

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3_000);
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    for name in TABLES {
        let spec = TableSpec::seed_like(name);
        create_table(&client, &spec).await;
        enable_pitr(&client, name).await;
        put_all(&client, name, (0..n).map(|i| mixed_item(&spec, i))).await;
    }
    // moto freezes each PITR window when it is enabled; the proxy moves it forward as DynamoDB
    // does, so the three tables share an instant. Both runs go through it.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            live_pitr_window: true,
            ..Faults::none()
        },
    );
    let mut env = moto.cli_env();
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.url().to_string()));
    let mut instant = jiff::Timestamp::UNIX_EPOCH;
    for t in TABLES {
        let (earliest, _) = pitr_window(&client, t).await;
        let e = jiff::Timestamp::new(earliest.secs(), earliest.subsec_nanos() as i32)
            .expect("timestamp");
        instant = instant.max(e);
    }
    let instant = (instant + jiff::SignedDuration::from_millis(1)).to_string();
    let reports = std::env::temp_dir().join("dynamo-dr-bench-multi");
    let reports = reports.display().to_string();
    let common = |incident: &'static str| {
        vec![
            "--output",
            "json",
            "restore",
            "--pitr-time",
            instant.as_str(),
            "--incident-id",
            incident,
            "--segments",
            "4",
            "--report-dir",
            reports.as_str(),
            "--yes",
        ]
    };

    let started = Instant::now();
    let mut rss_max: f64 = 0.0;
    for t in TABLES {
        let mut args = common("bench-seq");
        args.extend(["--table", t, "--confirm", t]);
        let (json, rss) = run_measured(&sibling_binary(), &env, &args);
        assert_eq!(json["status"], "succeeded", "{json}");
        rss_max = rss_max.max(rss);
    }
    let sequential = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut args = common("bench-multi");
    for t in TABLES {
        args.extend(["--table", t, "--confirm", t]);
    }
    let (json, rss) = run_measured(&sibling_binary(), &env, &args);
    assert_eq!(json["status"], "succeeded", "{json}");
    let concurrent = started.elapsed().as_secs_f64();

    println!("| items per table | tables | how | wall s | peak RSS MB |");
    println!("|---|---|---|---|---|");
    println!("| {n} | 3 | one after another | {sequential:.1} | {rss_max:.1} |");
    println!("| {n} | 3 | one command, concurrently | {concurrent:.1} | {rss:.1} |");
}
