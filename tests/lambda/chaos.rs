//! Randomized: two CLI processes and three Lambda workers of one execution, killed, restarted
//! and lock-broken at random points, over 30 trials. After each trial the table is exact; over
//! them all, no write of a stale holder is answered after a newer holder's first write (every
//! writer logs its fencing number with each write).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::writers::{Function, assert_fenced, cli, fence_events, output_text};
use super::*;

const TRIALS: u64 = 30;
const CHAOS_ITEMS: u64 = 300;

/// The table as a trial finds it, then damaged as a bad deploy would.
async fn damage_some(moto: &Emulator, trial: u64) {
    let client = moto.client();
    for i in 0..20 {
        client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(spec().key((i * 13 + trial) % CHAOS_ITEMS)))
            .send()
            .await
            .expect("delete");
    }
    put_all(
        &client,
        TABLE,
        (0..20).map(|i| sized_item(&spec(), (i * 7 + trial) % CHAOS_ITEMS, 90)),
    )
    .await;
    put_all(
        &client,
        TABLE,
        (0..10).map(|i| sized_item(&spec(), 1_000_000 + trial * 100 + i, 50)),
    )
    .await;
}

/// The state machines, as far as they get: `start`, `advance` through phase 1, then the child's
/// `phase` and its segments at once (each cut at a random deadline), then `advance`. Like a
/// failed state machine, it stops at the first error or unanswered invocation.
async fn state_machine(
    f: Arc<Function>,
    input: serde_json::Value,
    seed: u64,
    damaged: Arc<tokio::sync::Notify>,
) -> Option<()> {
    let rng = std::sync::Mutex::new(fastrand::Rng::with_seed(seed));
    let call = |payload: serde_json::Value| {
        // Segments are cut at random deadlines; the other steps have a function's usual time.
        let secs = match payload["action"].as_str() {
            Some("segment") => rng.lock().expect("rng").u64(4..10),
            _ => 60,
        };
        let f = f.clone();
        async move {
            match f.api.try_invoke(payload, Duration::from_secs(secs)).await? {
                Outcome::Response(v) => Some(v),
                Outcome::Error(_) => None,
            }
        }
    };
    let s = call(json!({"action": "start", "table": "OrdersTable", "input": input})).await?;
    let id = s["executionId"].as_str()?.to_string();
    for _ in 0..20 {
        let a = call(json!({"action": "advance", "executionId": id})).await?;
        if a["phase"] != "backup-and-restore" {
            break;
        }
    }
    // The bad deploy's writes are all in before the sync starts, as recovery mode makes sure.
    damaged.notified().await;
    for _ in 0..4 {
        let p = call(json!({"action": "phase", "executionId": id})).await?;
        if p["state"] == "done" {
            break;
        }
        let iterations = p["segments"].as_array()?.iter().map(|n| {
            let payload =
                json!({"action": "segment", "executionId": id, "phase": p["phase"], "segment": n});
            let call = &call;
            async move {
                for _ in 0..50 {
                    if call(payload.clone()).await?["state"] == "done" {
                        return Some(());
                    }
                }
                None
            }
        });
        for r in futures_util::future::join_all(iterations).await {
            r?;
        }
    }
    call(json!({"action": "advance", "executionId": id})).await?;
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_killed_restarted_and_lock_broken_at_random_never_write_out_of_turn() {
    init();
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos seed {seed} (CHAOS_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    create_table(&client, &spec()).await;
    put_all(
        &client,
        TABLE,
        (0..CHAOS_ITEMS).map(|i| sized_item(&spec(), i, 200)),
    )
    .await;
    enable_pitr(&client, TABLE).await;
    dynamo_dr::journal::dynamo::init(&client, JOURNAL)
        .await
        .expect("journal");
    let dir = tempfile::tempdir().expect("dir");
    let text = format!(
        "[tables.OrdersTable]\nname = \"{TABLE}\"\nsegments = {SEGMENTS}\nscan_page_limit = 25\n\
         max_write_rate = 150\n"
    );
    let cfg = dir.path().join("dynamo-dr.toml");
    std::fs::write(&cfg, &text).expect("config");
    let f = Arc::new(Function::spawn(
        &moto,
        dir.path(),
        "table:OrdersTable",
        &text,
        3,
        &[],
    ));
    let journal = session(&moto).open().await.expect("journal").1;
    let mut cli_logs: Vec<PathBuf> = Vec::new();
    for trial in 0..TRIALS {
        let restore_point = scan_all(&client, TABLE).await;
        let incident = format!("chaos-{trial}");
        let id = format!("{incident}.{TABLE}");
        let input = json!({
            "incidentId": incident,
            "pitrBackupTime": "latest",
            "tableNameRecoveryConfirmation": TABLE,
        });
        let began = std::time::Instant::now();
        let damaged = Arc::new(tokio::sync::Notify::new());
        let machine = tokio::spawn(state_machine(
            f.clone(),
            input,
            rng.u64(..),
            damaged.clone(),
        ));
        // The damage lands once phase 1 restored the table as it was (moto restores what the
        // table holds at the restore).
        wait_for("phase 1", Duration::from_secs(180), || async {
            machine.is_finished()
                || journal
                    .load(&id)
                    .await
                    .expect("load")
                    .is_some_and(|e| e.phase > Phase::BackupAndRestore)
        })
        .await;
        let recorded = journal.load(&id).await.expect("load");
        if recorded.is_some_and(|e| e.phase > Phase::BackupAndRestore) {
            damage_some(&moto, trial).await;
        }
        damaged.notify_one();
        let mut running: Vec<Child> = Vec::new();
        for _ in 0..rng.usize(2..6) {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..2500))).await;
            match rng.u8(0..3) {
                0 => f.restart(rng.usize(0..3)),
                1 if running.len() < 2 => {
                    let log = dir
                        .path()
                        .join(format!("cli-{trial}-{}.log", running.len()));
                    cli_logs.push(log.clone());
                    let child = cli(&moto, &cfg, &log, &["resume", &id, "--yes", "--break-lock"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("cli");
                    running.push(child);
                }
                _ => {
                    if let Some(mut c) = running.pop() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                }
            }
        }
        for mut c in running {
            let _ = tokio::task::spawn_blocking(move || c.wait()).await;
        }
        let _ = machine.await;
        // Whatever the chaos left, one clean run finishes the execution: a resume, or a
        // restore when the state machine died before its start was recorded.
        let exec = journal.load(&id).await.expect("load");
        if exec.as_ref().is_none_or(|e| e.status != Status::Succeeded) {
            let log = dir.path().join(format!("cli-{trial}-final.log"));
            cli_logs.push(log.clone());
            let args: Vec<&str> = match &exec {
                Some(_) => vec!["resume", &id, "--yes", "--break-lock"],
                None => vec![
                    "restore",
                    "--table",
                    TABLE,
                    "--confirm",
                    TABLE,
                    "--pitr-time",
                    "latest",
                    "--incident-id",
                    &incident,
                    "--yes",
                    "--break-lock",
                ],
            };
            let out = cli(&moto, &cfg, &log, &args).output().expect("final run");
            assert!(out.status.success(), "trial {trial}: {}", output_text(&out));
        }
        eprintln!("trial {trial} exact after {:?}", began.elapsed());
        let now = scan_all(&client, TABLE).await;
        assert!(
            now == restore_point,
            "trial {trial} (seed {seed}): {:?}",
            diff_summary(&restore_point, &now)
        );
    }
    let mut logs = std::fs::read_to_string(&f.log).expect("function log");
    for l in &cli_logs {
        logs += &std::fs::read_to_string(l).unwrap_or_default();
    }
    let events = fence_events(&logs);
    let fences: std::collections::BTreeSet<u64> = events.iter().map(|e| e.1).collect();
    assert!(
        fences.len() as u64 > TRIALS,
        "holders changed within trials: {fences:?}"
    );
    assert_fenced(&events);
}
