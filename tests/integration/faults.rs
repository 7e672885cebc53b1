//! Runs through the fault-injecting proxy: throttling, server errors, resets, hangs, partial
//! batches and latency, each at a high rate and all mixed; and faults that outlast the budget.

use std::time::Duration;

use dynamo_dr_testkit::*;

use crate::support::{dr, dr_env, pages_done, record, spawn_env, until_copying};

const ITEMS: u64 = 2_000;

/// Source and destination on dynalite: the destination holds stale versions, extra items and
/// misses some, so both phases write.
async fn tables(dynalite: &Emulator, prefix: &str) -> (TableSpec, TableSpec) {
    let client = dynalite.client();
    let src = TableSpec::seed_like(&format!("{prefix}-Source"));
    let dst = TableSpec::seed_like(&format!("{prefix}-Dest"));
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..ITEMS).map(|i| mixed_item(&src, i))).await;
    put_all(
        &client,
        &dst.name,
        (ITEMS / 2..ITEMS + 300).map(|i| mixed_item(&dst, i * 7 % (ITEMS + 300))),
    )
    .await;
    (src, dst)
}

fn sync_args<'a>(src: &'a TableSpec, dst: &'a TableSpec, id: &'a str) -> Vec<&'a str> {
    vec![
        "sync",
        "--source",
        &src.name,
        "--dest",
        &dst.name,
        "--confirm",
        &dst.name,
        "--incident-id",
        id,
        "--segments",
        "4",
        "--scan-page-limit",
        "100",
        "--attempt-timeout",
        "1",
        "--yes",
        "--output",
        "json",
    ]
}

/// A sync through the proxy under `faults` ends verified and exact; returns what was injected.
async fn sync_under(prefix: &str, faults: Faults) -> std::collections::BTreeMap<&'static str, u64> {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (src, dst) = tables(&dynalite, prefix).await;
    let expected = scan_all(&client, &src.name).await;
    let proxy = FaultProxy::start(&dynalite.endpoint(), faults);
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let run = dr_env(&dynalite, &env, &sync_args(&src, &dst, "faults"), None);
    let injected = proxy.injected().snapshot();
    eprintln!("{prefix}: injected {injected:?}");
    run.assert_code(0);
    let out = run.json();
    assert_eq!(out["copiedItems"], ITEMS, "{out}");
    assert_eq!(out["destItemCount"], ITEMS, "{out}");
    let id = format!("faults.{}", dst.name);
    let status = dr(&dynalite, &["status", &id], None);
    assert!(
        status.stdout.contains(&format!(
            "verified: both tables hold the same {ITEMS} items"
        )),
        "{}",
        status.stdout
    );
    // Read directly, not through the proxy: nothing lost, nothing extra.
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );
    injected
}

fn only(kind: &str, rate: f64) -> Faults {
    let mut f = Faults::none();
    match kind {
        "throughput_exceeded" => f.throughput_exceeded = rate,
        "throttling" => f.throttling = rate,
        "internal_error" => f.internal_error = rate,
        "unavailable" => f.unavailable = rate,
        "reset" => f.reset = rate,
        "hang" => {
            f.hang = rate;
            f.hang_for = Duration::from_millis(1500);
        }
        "partial_batch" => f.partial_batch = rate,
        "latency" => {
            f.latency = rate;
            f.latency_max = Duration::from_millis(50);
        }
        other => panic!("unknown fault kind {other}"),
    }
    f
}

async fn one_kind(kind: &str, rate: f64) {
    let injected = sync_under(&format!("Fault-{kind}"), only(kind, rate)).await;
    assert!(
        injected[kind] >= 20,
        "only {} {kind} injected",
        injected[kind]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_provisioned_throughput_exceeded() {
    one_kind("throughput_exceeded", 0.5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_throttling_exceptions() {
    one_kind("throttling", 0.5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_internal_server_errors() {
    one_kind("internal_error", 0.5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_service_unavailable() {
    one_kind("unavailable", 0.5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_connection_resets() {
    one_kind("reset", 0.5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_hangs_past_the_attempt_timeout() {
    one_kind("hang", 0.3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_partial_batches() {
    let injected = sync_under("Fault-partial", only("partial_batch", 0.7)).await;
    assert!(injected["partial_batch"] >= 20, "{injected:?}");
    assert!(injected["unprocessed_items"] >= 200, "{injected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_added_latency() {
    one_kind("latency", 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_survives_every_kind_mixed_at_30_percent() {
    let injected = sync_under(
        "Fault-mixed",
        Faults::mixed(0.3, Duration::from_millis(1500)),
    )
    .await;
    for kind in [
        "throughput_exceeded",
        "throttling",
        "internal_error",
        "unavailable",
        "reset",
        "hang",
        "partial_batch",
    ] {
        assert!(injected[kind] > 0, "no {kind} injected: {injected:?}");
    }
}

/// The whole restore on moto, control plane included: CreateBackup, RestoreTableToPointInTime,
/// TagResource and DeleteTable meet the faults too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_survives_every_kind_mixed_at_30_percent() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Faulty-Orders");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..800).map(|i| mixed_item(&spec, i))).await;
    let expected = scan_all(&client, &spec.name).await;
    // moto answers a full scan page in seconds, so attempts get more time here.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults::mixed(0.3, Duration::from_millis(6000)),
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let run = dr_env(
        &moto,
        &env,
        &[
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "faulty",
            "--pitr-time",
            "latest",
            "--confirm",
            &spec.name,
            "--segments",
            "2",
            "--scan-page-limit",
            "100",
            "--attempt-timeout",
            "5",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    let injected = proxy.injected().snapshot();
    eprintln!("restore: injected {injected:?}");
    run.assert_code(0);
    assert!(proxy.injected().faults() >= 10, "{injected:?}");
    let out = run.json();
    assert_eq!(out["destItemCount"], 800, "{out}");
    assert_eq!(out["restoredTableFate"], "deleted", "{out}");
    let status = dr(&moto, &["status", &format!("faulty.{}", spec.name)], None);
    assert!(
        status
            .stdout
            .contains("verified: both tables hold the same 800 items"),
        "{}",
        status.stdout
    );
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &spec.name).await),
        None
    );
    let tables = client.list_tables().send().await.expect("ListTables");
    assert_eq!(tables.table_names(), std::slice::from_ref(&spec.name));
    assert_eq!(
        forensic_backups(&client, &spec.name).await,
        1,
        "one forensic backup, whatever CreateBackup met"
    );
}

async fn forensic_backups(client: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    client
        .list_backups()
        .table_name(table)
        .send()
        .await
        .expect("ListBackups")
        .backup_summaries()
        .iter()
        .filter(|b| {
            b.backup_name()
                .is_some_and(|n| n.starts_with("DR-FORENSIC-"))
        })
        .count()
}

/// CreateBackup is applied but its answer never comes back: the run finds the backup by name and
/// adopts it, rather than making a second, billed copy on retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_create_backup_answer_adopts_the_backup_instead_of_making_another() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Lost-Answer");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..100).map(|i| mixed_item(&spec, i))).await;
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            hang: 1.0,
            hang_for: Duration::from_millis(2500),
            ..Faults::none()
        }
        .only(&["CreateBackup"]),
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let run = dr_env(
        &moto,
        &env,
        &[
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "lost",
            "--pitr-time",
            "latest",
            "--confirm",
            &spec.name,
            "--attempt-timeout",
            "1",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(
        proxy
            .injected()
            .hang
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one CreateBackup was sent, and its answer lost"
    );
    assert_eq!(forensic_backups(&client, &spec.name).await, 1);
    let out = run.json();
    let arn = out["backupArn"].as_str().expect("backupArn");
    assert!(arn.contains("/backup/"), "{out}");
    assert!(
        run.stderr.contains("adopted"),
        "the adoption is logged: {}",
        run.stderr
    );
}

/// Faults that outlast the retry budget stop the run with exit 1 and a journal that says where;
/// once they stop, `resume` finishes it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_past_the_budget_fail_cleanly_and_resume_completes() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (src, dst) = tables(&dynalite, "Budget").await;
    let expected = scan_all(&client, &src.name).await;
    // Latency keeps the run going long enough to be caught mid-copy.
    let slow = Faults {
        latency: 1.0,
        latency_max: Duration::from_millis(40),
        ..Faults::none()
    };
    let proxy = FaultProxy::start(&dynalite.endpoint(), slow.clone());
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let mut args = sync_args(&src, &dst, "budget");
    args.extend(["--retry-budget", "4", "--write-concurrency", "2"]);
    let mut child = spawn_env(&dynalite, &env, &args);
    let id = format!("budget.{}", dst.name);
    until_copying(&dynalite, &id, &mut child).await;
    proxy.set(Faults {
        throughput_exceeded: 1.0,
        ..slow
    });
    let status = child.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(1),
        "a spent budget is a resumable failure"
    );
    let rec = record(&dynalite, &id).expect("record");
    assert_eq!(rec["status"], "failed", "{rec}");
    assert_eq!(rec["phase"], "copy", "{rec}");
    let error = rec["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("ProvisionedThroughputExceededException") && error.contains("attempts"),
        "{error}"
    );
    let copied_before = pages_done(&rec, "copy");
    assert!(copied_before > 0);

    proxy.set(Faults::none());
    let resumed = dr_env(&dynalite, &env, &["resume", &id, "--yes"], None);
    resumed.assert_code(0);
    let rec = record(&dynalite, &id).expect("record");
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );
}
