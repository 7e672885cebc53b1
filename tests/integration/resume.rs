//! Durability: SIGKILL at random instants in every phase, then resume to an exact result; reruns
//! resume; one run per table; damaged journals fail cleanly.

use std::collections::BTreeMap;
use std::process::Child;
use std::time::{Duration, Instant};

use dynamo_dr_testkit::*;

use crate::support::{dr, inventory, pages_done, record, spawn};

/// Waits until the run reaches `target` (with at least one page done in a sync phase), then kills
/// it after a random delay. Returns the phase the journal shows after the kill, or None when the
/// run finished first (its record says succeeded).
async fn kill_in(emulator: &Emulator, mut child: Child, id: &str, target: &str) -> Option<String> {
    let order = [
        "backup-and-restore",
        "delete",
        "copy",
        "check",
        "clean-up",
        "done",
    ];
    let rank = |p: &str| order.iter().position(|x| *x == p).unwrap_or(0);
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return None;
        }
        if let Some(rec) = record(emulator, id) {
            let phase = rec["phase"].as_str().unwrap_or_default().to_string();
            let in_sync_phase = matches!(target, "delete" | "copy");
            if rank(&phase) > rank(target)
                || (phase == target && (!in_sync_phase || pages_done(&rec, target) > 0))
            {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "run {id} never reached {target}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Clean-up lasts a few calls, then the run writes its report: kill it soon, or it is over.
    let delay = if target == "clean-up" { 0..5 } else { 0..25 };
    tokio::time::sleep(Duration::from_millis(fastrand::u64(delay))).await;
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    let rec = record(emulator, id);
    // Killed after the record said succeeded (writing the incident report): it finished first.
    if status.success() || rec.as_ref().is_some_and(|r| r["status"] == "succeeded") {
        return None;
    }
    rec.and_then(|r| r["phase"].as_str().map(str::to_string))
}

/// Pages re-written per phase after the resume, from `status --output json`.
fn rewritten(emulator: &Emulator, id: &str) -> (u64, u64) {
    let run = dr(emulator, &["status", id, "--output", "json"], None);
    run.assert_code(0);
    let rec = run.json();
    let sum = |phase: &str| {
        rec[phase]["segments"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|x| x["rewrittenPages"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    (sum("delete"), sum("copy"))
}

struct Tally {
    kills: BTreeMap<String, u32>,
    rewritten: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_killed_at_random_instants_resumes_to_an_exact_copy() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::seed_like("Kill-Source");
    let dst = TableSpec::seed_like("Kill-Dest");
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..3000).map(|i| mixed_item(&src, i))).await;
    let expected = scan_all(&client, &src.name).await;
    const SEGMENTS: u64 = 4;
    let mut tally = Tally {
        kills: BTreeMap::new(),
        rewritten: 0,
    };
    for trial in 0..18 {
        // Stale content for the delete phase to remove.
        put_all(
            &client,
            &dst.name,
            (0..300).map(|i| mixed_item(&dst, 50_000 + trial * 1000 + i)),
        )
        .await;
        let incident = format!("trial-{trial}");
        let id = format!("{incident}.{}", dst.name);
        let target = ["delete", "copy", "check"][trial as usize % 3];
        // Every other trial uses the diff strategy, whose phases resume the same way.
        let strategy = if trial % 2 == 0 { "hard-reset" } else { "diff" };
        let child = spawn(
            &dynalite,
            &[
                "sync",
                "--source",
                &src.name,
                "--dest",
                &dst.name,
                "--confirm",
                &dst.name,
                "--incident-id",
                &incident,
                "--segments",
                "4",
                "--scan-page-limit",
                "40",
                "--strategy",
                strategy,
                "--yes",
            ],
        );
        let killed_in = kill_in(&dynalite, child, &id, target).await;
        if let Some(phase) = killed_in {
            *tally.kills.entry(phase).or_default() += 1;
            let run = dr(
                &dynalite,
                &[
                    "resume",
                    &id,
                    "--yes",
                    "--scan-page-limit",
                    "40",
                    "--output",
                    "json",
                ],
                None,
            );
            run.assert_code(0);
        }
        assert_eq!(
            diff_summary(&expected, &scan_all(&client, &dst.name).await),
            None,
            "trial {trial} ({target})"
        );
        let (d, c) = rewritten(&dynalite, &id);
        assert!(
            d <= SEGMENTS && c <= SEGMENTS,
            "trial {trial}: re-wrote {d} delete and {c} copy pages; at most one per segment"
        );
        tally.rewritten += d + c;
    }
    eprintln!(
        "sync kill trials: kills by phase {:?}, pages re-written after resume {}",
        tally.kills, tally.rewritten
    );
    let kills: u32 = tally.kills.values().sum();
    assert!(
        kills >= 15,
        "only {kills} of 18 runs were killed before finishing: {:?}",
        tally.kills
    );
    for phase in ["delete", "copy", "check"] {
        assert!(
            tally.kills.contains_key(phase),
            "no kill landed in {phase}: {:?}",
            tally.kills
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_killed_at_random_instants_resumes_without_repeating_backup_or_restore() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Kill-Restore");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..800).map(|i| mixed_item(&spec, i))).await;
    let snapshot = scan_all(&client, &spec.name).await;
    let good = create_backup(&client, &spec.name, "known-good").await;
    let mut kills = BTreeMap::<String, u32>::new();
    for trial in 0..6u64 {
        corrupt(&client, &spec, 800, 10).await;
        let incident = format!("mtrial-{trial}");
        let id = format!("{incident}.{}", spec.name);
        let args = [
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            &incident,
            "--backup-arn",
            &good,
            "--confirm",
            &spec.name,
            "--segments",
            "2",
            "--scan-page-limit",
            "50",
            "--yes",
        ];
        let target = [
            "backup-and-restore",
            "delete",
            "copy",
            "check",
            "clean-up",
            "copy",
        ][trial as usize];
        let killed_in = kill_in(&moto, spawn(&moto, &args), &id, target).await;
        if let Some(phase) = killed_in {
            *kills.entry(phase).or_default() += 1;
            // Half the trials rerun the same command, half use `resume`.
            let run = if trial % 2 == 0 {
                dr(&moto, &args, None)
            } else {
                dr(&moto, &["resume", &id, "--yes"], None)
            };
            run.assert_code(0);
        }
        assert_eq!(
            diff_summary(&snapshot, &scan_all(&client, &spec.name).await),
            None,
            "trial {trial} ({target})"
        );
        let forensic = client
            .list_backups()
            .table_name(&spec.name)
            .send()
            .await
            .expect("ListBackups");
        let name = format!("DR-FORENSIC-{}.{incident}", spec.name);
        let copies = forensic
            .backup_summaries()
            .iter()
            .filter(|b| b.backup_name() == Some(name.as_str()))
            .count();
        assert_eq!(
            copies, 1,
            "trial {trial}: the forensic backup must be taken exactly once"
        );
        let temp = format!("DR-TEMP-{}.{incident}", spec.name);
        assert!(
            !inventory(&client).await.tables.contains(&temp),
            "trial {trial}: {temp} left behind"
        );
        let (d, c) = rewritten(&moto, &id);
        assert!(
            d <= 2 && c <= 2,
            "trial {trial}: re-wrote {d} delete and {c} copy pages"
        );
    }
    eprintln!("restore kill trials: kills by phase {kills:?}");
    assert!(kills.values().sum::<u32>() >= 5, "{kills:?}");
}

/// Waits until `id` is mid-copy or mid-delete, so it holds the table's lease.
async fn wait_running(
    emulator: &Emulator,
    child: &mut Child,
    id: &str,
    journal: impl Fn() -> Option<serde_json::Value>,
) {
    let started = Instant::now();
    loop {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "{id} ended before the test could race it"
        );
        if let Some(rec) = journal()
            && matches!(rec["phase"].as_str(), Some("delete" | "copy"))
            && pages_done(&rec, rec["phase"].as_str().unwrap_or_default()) > 0
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} never started on {}",
            emulator.endpoint()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_held_table_is_refused_for_local_and_shared_journals() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (src, dst) = (
        TableSpec::seed_like("Busy-Source"),
        TableSpec::seed_like("Busy-Dest"),
    );
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..3000).map(|i| mixed_item(&src, i))).await;
    let sync = |incident: &'static str| {
        [
            "sync",
            "--source",
            "Busy-Source",
            "--dest",
            "Busy-Dest",
            "--confirm",
            "Busy-Dest",
            "--incident-id",
            incident,
            "--segments",
            "2",
            "--scan-page-limit",
            "5",
            "--yes",
        ]
    };

    // Local journal.
    let mut first = spawn(&dynalite, &sync("first"));
    wait_running(&dynalite, &mut first, "first.Busy-Dest", || {
        record(&dynalite, "first.Busy-Dest")
    })
    .await;
    let second = dr(&dynalite, &sync("second"), None);
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(
        second.stderr.contains("first.Busy-Dest"),
        "the refusal names the holder: {}",
        second.stderr
    );
    assert!(
        record(&dynalite, "second.Busy-Dest").is_none(),
        "a refused run leaves no execution"
    );
    first.kill().expect("kill");
    first.wait().expect("wait");

    // Shared journal: a second operator sees the first one's lease and execution.
    let shared = ["--journal", "dynamodb://dr-journal"];
    dr(
        &dynalite,
        &[&shared[..], &["journal", "init"]].concat(),
        None,
    )
    .assert_code(0);
    let mut first = spawn(&dynalite, &[&shared[..], &sync("shared-first")].concat());
    let remote = client.clone();
    let journal_item = || {
        let remote = remote.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("rt")
                .block_on(async move {
                    let out = remote
                        .get_item()
                        .table_name("dr-journal")
                        .key(
                            "pk",
                            aws_sdk_dynamodb::types::AttributeValue::S(
                                "execution#shared-first.Busy-Dest".into(),
                            ),
                        )
                        .consistent_read(true)
                        .send()
                        .await
                        .ok()?;
                    let record = out.item?.get("record")?.as_s().ok()?.clone();
                    serde_json::from_str::<serde_json::Value>(&record).ok()
                })
        })
        .join()
        .expect("journal reader")
    };
    wait_running(
        &dynalite,
        &mut first,
        "shared-first.Busy-Dest",
        journal_item,
    )
    .await;
    let other = dr(
        &dynalite,
        &[&shared[..], &sync("shared-second")].concat(),
        None,
    );
    assert_eq!(other.code, 2, "{}", other.stderr);
    assert!(
        other.stderr.contains("shared-first.Busy-Dest"),
        "{}",
        other.stderr
    );
    let listed = dr(
        &dynalite,
        &[&shared[..], &["executions", "--output", "json"]].concat(),
        None,
    );
    listed.assert_code(0);
    assert!(
        listed.stdout.contains("shared-first.Busy-Dest")
            && !listed.stdout.contains("shared-second"),
        "{}",
        listed.stdout
    );
    first.kill().expect("kill");
    first.wait().expect("wait");
    // The killed run's lease is still live for others; --break-lock takes it, and says so.
    let broken = dr(
        &dynalite,
        &[&shared[..], &sync("shared-second"), &["--break-lock"]].concat(),
        None,
    );
    broken.assert_code(0);
    let status = dr(
        &dynalite,
        &[&shared[..], &["status", "shared-second.Busy-Dest"]].concat(),
        None,
    );
    assert!(status.stdout.contains("LEASE BROKEN"), "{}", status.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_fails_with_a_clear_error_and_exit_1() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    create_table(&client, &TableSpec::seed_like("J-Source")).await;
    create_table(&client, &TableSpec::seed_like("J-Dest")).await;
    let sync = [
        "sync",
        "--source",
        "J-Source",
        "--dest",
        "J-Dest",
        "--confirm",
        "J-Dest",
        "--incident-id",
        "j1",
        "--yes",
    ];
    dr(&dynalite, &sync, None).assert_code(0);
    let path = dynalite.journal_dir.join("executions/j1.J-Dest.json");
    let good = std::fs::read(&path).expect("record");
    let mut newer: serde_json::Value = serde_json::from_slice(&good).expect("json");
    newer["formatVersion"] = 42.into();
    for (bytes, expected) in [
        (good[..good.len() / 2].to_vec(), "damaged"),
        (vec![0u8, 159, 146, 150, 7], "damaged"),
        (serde_json::to_vec(&newer).expect("json"), "newer dynamo-dr"),
    ] {
        std::fs::write(&path, &bytes).expect("write");
        for args in [
            &["status", "j1.J-Dest"][..],
            &["resume", "j1.J-Dest", "--yes"],
            &sync,
            &["executions"],
        ] {
            let run = dr(&dynalite, args, None);
            assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
            assert!(
                run.stderr.contains(expected) && run.stderr.contains("j1.J-Dest.json"),
                "{args:?}: {}",
                run.stderr
            );
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_file_is_structured_and_holds_no_item_values() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (src, dst) = (
        TableSpec::seed_like("Log-Source"),
        TableSpec::seed_like("Log-Dest"),
    );
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..200).map(|i| mixed_item(&src, i))).await;
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("dr.log");
    let log_arg = log.display().to_string();
    let run = dr(
        &dynalite,
        &[
            "--log-file",
            &log_arg,
            "-v",
            "sync",
            "--source",
            &src.name,
            "--dest",
            &dst.name,
            "--confirm",
            &dst.name,
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    let text = std::fs::read_to_string(&log).expect("log file");
    assert!(text.lines().count() >= 5, "{text}");
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
    for value in ["value-1 ", "inner-1", "CORRUPTED", "üñí"] {
        assert!(
            !text.contains(value) && !run.stderr.contains(value),
            "item value {value:?} leaked into the logs"
        );
    }
}
