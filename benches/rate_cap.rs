//! Benchmark: `dynamo-dr sync --max-write-rate CAP` on dynalite, through the testkit's proxy,
//! which counts the items written each second. Run with `scripts/bench-rate` (release build).
//!
//! Usage: rate_cap [CAP ...]   (default 500 2000 5000 items/s)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dynamo_dr_testkit::*;

/// About this many seconds of copying at the cap.
const SECONDS: u64 = 20;

#[tokio::main]
async fn main() {
    let caps: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let caps = if caps.is_empty() {
        vec![500, 2_000, 5_000]
    } else {
        caps
    };
    println!(
        "| cap items/s | items | copy-phase mean items/s | steady seconds | per-second min / median / max | mean vs cap |"
    );
    println!("|---|---|---|---|---|---|");
    for cap in caps {
        let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
        let client = dynalite.client();
        let src = TableSpec::hash_only("rate-source", Scalar::S);
        let dst = TableSpec::hash_only("rate-dest", Scalar::S);
        create_table(&client, &src).await;
        create_table(&client, &dst).await;
        let n = cap * SECONDS;
        put_all(&client, &src.name, (0..n).map(|i| sized_item(&src, i, 200))).await;
        let proxy = FaultProxy::start(&dynalite.endpoint(), Faults::none());
        let cap_arg = cap.to_string();
        let mut child = Command::new(sibling_binary())
            .envs(dynalite.cli_env())
            .env("AWS_ENDPOINT_URL", proxy.url())
            .args([
                "sync",
                "--source",
                &src.name,
                "--dest",
                &dst.name,
                "--confirm",
                &dst.name,
                "--yes",
                "--no-verify",
                "--output",
                "json",
                "--max-write-rate",
                &cap_arg,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dynamo-dr");
        // Items written in each whole second, sampled from the proxy's counter.
        let mut per_second = Vec::new();
        let mut last = 0;
        let mut tick = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if tick.elapsed() >= Duration::from_secs(1) {
                let now = proxy
                    .injected()
                    .written
                    .load(std::sync::atomic::Ordering::Relaxed);
                per_second.push((now - last) as f64 / tick.elapsed().as_secs_f64());
                last = now;
                tick = Instant::now();
            }
        }
        let out = child.wait_with_output().expect("output");
        assert!(out.status.success(), "sync failed");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
        assert_eq!(json["copiedItems"], n);
        let mean = n as f64 / json["phaseSeconds"]["copy"].as_f64().expect("copy seconds");
        // Steady state: the whole seconds of writing, without the partial first and last.
        let mut steady: Vec<f64> = per_second
            .iter()
            .copied()
            .skip_while(|r| *r == 0.0)
            .collect();
        while steady.last().is_some_and(|r| *r == 0.0) {
            steady.pop();
        }
        steady.pop();
        steady.remove(0);
        steady.sort_by(f64::total_cmp);
        let (min, max) = (steady[0], steady[steady.len() - 1]);
        let median = steady[steady.len() / 2];
        println!(
            "| {cap} | {n} | {mean:.0} | {} | {min:.0} / {median:.0} / {max:.0} | {:+.1}% |",
            steady.len(),
            100.0 * (mean - cap as f64) / cap as f64
        );
    }
}
