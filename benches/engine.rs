//! Benchmark: the copy engine's own ceiling, against the testkit's synthetic endpoint (Scan pages
//! generated on demand, BatchWriteItem answered at once, nothing stored) in a process of its
//! own beside it. Run with `scripts/bench-engine [ITEM_BYTES] [ITEMS] [SEGMENTS]`.
//!
//! The engine is `sync::copy` exactly as a restore runs it, unpaced (a table write capacity far
//! above anything reachable), through the production SDK client. Figures are the engine process
//! alone: items/s, CPU seconds per million items, peak RSS; and the endpoint's CPU beside it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use dynamo_dr::sync::{self, NoCheckpoint, SyncOptions};
use dynamo_dr_testkit::synthetic::Synthetic;

/// User and system CPU seconds of a process, from /proc (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    (tick(11) + tick(12)) / 100.0
}

/// Peak resident set of this process, MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `--serve ITEMS BYTES`: the endpoint, until stdin closes.
fn serve(items: u64, bytes: usize) {
    let endpoint = Synthetic::start(items, bytes, 1);
    println!("{}", endpoint.url());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    eprintln!(
        "endpoint: {} items scanned, {} written",
        endpoint.scanned(),
        endpoint.written()
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    if args.first().map(String::as_str) == Some("--serve") {
        return serve(number(1, 0), number(2, 1024) as usize);
    }
    let bytes = number(0, 1024) as usize;
    let items = number(1, if bytes > 4096 { 200_000 } else { 1_000_000 });
    let segments = number(2, 16) as u32;
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--serve", &items.to_string(), &bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the endpoint process");
    let mut url = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("the endpoint's URL");
    let client = dynamo_dr_testkit::emulator::client_for(url.trim());
    let describe = |name: &'static str| {
        let client = client.clone();
        async move {
            dynamo_dr::table::describe(&client, name)
                .await
                .expect("DescribeTable")
                .expect("a table")
        }
    };
    let (source, dest) = (describe("Source").await, describe("Dest").await);
    let opts = SyncOptions {
        segments,
        table_write_units: Some(1e9),
        ..SyncOptions::default()
    };
    let (cpu0, endpoint_cpu0) = (cpu_seconds("self"), cpu_seconds(&child.id().to_string()));
    let started = Instant::now();
    let totals = sync::copy(
        &client,
        &source,
        &dest,
        false,
        &opts,
        &[],
        Arc::new(NoCheckpoint),
    )
    .await
    .expect("copy");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu0;
    let endpoint_cpu = cpu_seconds(&child.id().to_string()) - endpoint_cpu0;
    drop(child.stdin.take());
    let _ = child.wait();
    assert_eq!(totals.items, items, "every item copied");
    println!(
        "| item bytes | items | segments | wall s | items/s | engine CPU s per million items | engine peak RSS MB | endpoint CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {bytes} | {items} | {segments} | {wall:.1} | {:.0} | {:.1} | {:.1} | {endpoint_cpu:.1} |",
        items as f64 / wall,
        cpu / (items as f64 / 1e6),
        peak_rss_mb(),
    );
}
