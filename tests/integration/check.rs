//! The runbook's preflight: `check`'s checklist, and `restore --dry-run`'s plan and estimate.

use std::sync::Arc;

use dynamo_dr::journal::local::LocalJournal;
use dynamo_dr_testkit::*;

use crate::support::{dr_env, inventory, record, write_file};

fn failed(report: &serde_json::Value, logical: &str) -> Vec<String> {
    report["report"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["logical"] == logical)
        .unwrap_or_else(|| panic!("no {logical} in {report}"))["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["result"] == "fail")
        .map(|i| i["check"].as_str().expect("check").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_flags_pitr_off_a_time_outside_the_window_an_excluded_table_and_a_running_restore() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    for name in ["Prod-A", "Prod-B", "Prod-C", "Prod-D"] {
        create_table(&client, &TableSpec::seed_like(name)).await;
        if name != "Prod-B" {
            enable_pitr(&client, name).await;
        }
    }
    let (earliest, _) = pitr_window(&client, "Prod-A").await;
    let before = jiff::Timestamp::new(earliest.secs() - 3600, 0).expect("time");
    // A run in progress on Prod-D holds its lease.
    let journal = Arc::new(LocalJournal::open(&moto.journal_dir).expect("journal"));
    let timing = dynamo_dr::journal::lease::Timing::default();
    let (_lease, _) =
        dynamo_dr::journal::lease::acquire(journal, "Prod-D", "inc-9.Prod-D", false, timing)
            .await
            .expect("lease");

    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "all.toml",
        r#"
[environments.Prod]
[environments.Staging]
[tables.A]
name = "Prod-A"
environment = "Prod"
[tables.B]
name = "Prod-B"
environment = "Prod"
[tables.C]
name = "Prod-C"
excluded = "holds SSNs"
[tables.D]
name = "Prod-D"
environment = "Prod"
[tables.Staging]
name = "Staging-X"
environment = "Staging"
"#,
    );
    let run = dr_env(
        &moto,
        &[],
        &[
            "--config",
            &config,
            "--output",
            "json",
            "check",
            "--environment",
            "Prod",
            "--pitr-time",
            &before.to_string(),
        ],
        None,
    );
    run.assert_code(1);
    let report = run.json();
    assert_eq!(report["ok"], false);
    assert_eq!(failed(&report, "A"), ["PITR time"]);
    assert_eq!(failed(&report, "B"), ["PITR"]);
    // An excluded table is listed but never read, so no PITR check runs on it.
    assert_eq!(failed(&report, "C"), ["excluded"]);
    assert_eq!(failed(&report, "D"), ["PITR time", "running restore"]);
    let tables: Vec<&str> = report["report"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["logical"].as_str())
        .collect();
    assert_eq!(
        tables,
        ["A", "B", "C", "D"],
        "other environments are left out"
    );
    assert_eq!(report["report"]["recoveryMode"]["result"], "info");

    // The text checklist, and a clean table passing.
    let text = dr_env(
        &moto,
        &[],
        &["--config", &config, "check", "--environment", "Prod"],
        None,
    );
    text.assert_code(1);
    assert!(
        text.stdout
            .contains("[FAIL] PITR: point-in-time recovery is not enabled"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("execution inc-9.Prod-D holds the table"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("up to 6 h stale"), "{}", text.stdout);
    let only_a = write_file(
        &dir,
        "a.toml",
        "[environments.Prod]\n[tables.A]\nname = \"Prod-A\"\nenvironment = \"Prod\"\n",
    );
    let clean = dr_env(
        &moto,
        &[],
        &["--config", &only_a, "check", "--environment", "Prod"],
        None,
    );
    clean.assert_code(0);
    assert!(
        clean.stdout.contains("All checks passed."),
        "{}",
        clean.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_dry_run_shows_the_plan_and_its_cost_and_changes_nothing() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Dry-Orders");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..300).map(|i| mixed_item(&spec, i))).await;
    let before = inventory(&client).await;
    let run = dr_env(
        &moto,
        &[],
        &[
            "--max-write-rate",
            "500",
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "dry",
            "--pitr-time",
            "latest",
            "--confirm",
            &spec.name,
            "--dry-run",
        ],
        None,
    );
    run.assert_code(0);
    for expected in [
        "forensic backup DR-FORENSIC-Dry-Orders.dry",
        "temporary table DR-TEMP-Dry-Orders.dry",
        "hard-reset",
        "diff, all changed",
        "read units",
        "write units",
        "time at the caps",
        "Dry run: nothing was changed.",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} in {}",
            run.stdout
        );
    }
    assert_eq!(inventory(&client).await, before);
    assert!(
        record(&moto, "dry.Dry-Orders").is_none(),
        "nothing journaled"
    );
}
