//! Several tables restored to one instant under one incident, and the incident report.

use std::collections::BTreeMap;

use dynamo_dr_testkit::*;

use std::time::Duration;

use crate::support::{dr_env, inventory, record, spawn_env, until_copying, write_file};

const TABLES: [&str; 3] = ["Prod-Orders", "Prod-Customers", "Prod-Payments"];
const ITEMS: u64 = 300;

/// Three loaded tables with PITR, all of environment Prod, and a config naming them.
async fn three_tables(moto: &Emulator, dir: &tempfile::TempDir) -> (String, Vec<TableSpec>) {
    let client = moto.client();
    let mut specs = Vec::new();
    for name in TABLES {
        let spec = TableSpec::seed_like(name);
        create_table(&client, &spec).await;
        enable_pitr(&client, name).await;
        put_all(&client, name, (0..ITEMS).map(|i| mixed_item(&spec, i))).await;
        specs.push(spec);
    }
    let config = write_file(
        dir,
        "dynamo-dr.toml",
        r#"
[environments.Prod]
[tables.Orders]
name = "Prod-Orders"
environment = "Prod"
[tables.Customers]
name = "Prod-Customers"
environment = "Prod"
[tables.Payments]
name = "Prod-Payments"
environment = "Prod"
"#,
    );
    (config, specs)
}

/// `restore --table` and `--confirm` for each of `confirm`, plus `extra`.
fn restore_args<'a>(config: &'a str, confirm: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--config", config, "--output", "json", "restore"];
    for t in TABLES {
        args.extend(["--table", t]);
    }
    for c in confirm {
        args.extend(["--confirm", c]);
    }
    args.extend(["--incident-id", "inc-77", "--segments", "2", "--yes"]);
    args.extend(extra);
    args
}

/// `recovery-mode start` or `end` for Prod, which must succeed.
fn recovery_mode(moto: &Emulator, env: &[(&str, &str)], config: &str, verb: &str) {
    dr_env(
        moto,
        env,
        &[
            "--config",
            config,
            "recovery-mode",
            verb,
            "--environment",
            "Prod",
            "--yes",
        ],
        None,
    )
    .assert_code(0);
}

/// An instant inside every table's restorable window, as the proxy's live windows answer it: the
/// first whole second after the last enable (a restore asks for the second), once it has passed.
async fn shared_instant(client: &aws_sdk_dynamodb::Client, tables: &[&str]) -> String {
    let mut latest_enable = jiff::Timestamp::UNIX_EPOCH;
    for t in tables {
        let (earliest, _) = pitr_window(client, t).await;
        let e = jiff::Timestamp::new(earliest.secs(), earliest.subsec_nanos() as i32).expect("t");
        latest_enable = latest_enable.max(e);
    }
    let ceil = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Ceil);
    let instant = latest_enable.round(ceil).expect("second");
    while jiff::Timestamp::now() <= instant {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    instant.to_string()
}

/// moto freezes each table's window at the instant PITR was enabled; this proxy lets it move
/// forward as DynamoDB's does, so the tables share the instants after the last enable.
fn live_windows(moto: &Emulator) -> FaultProxy {
    FaultProxy::start(
        &moto.endpoint(),
        Faults {
            live_pitr_window: true,
            ..Faults::none()
        },
    )
}

/// No execution record and no lease.
async fn journal_is_empty(moto: &Emulator) -> bool {
    let no_records = std::fs::read_dir(moto.journal_dir.join("executions"))
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(true);
    no_records && leases_released(moto).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_table_restore_with_one_table_refused_changes_nothing_in_any() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let dir = tempfile::tempdir().expect("dir");
    let (config, _) = three_tables(&moto, &dir).await;
    // Payments cannot be restored: its PITR is off.
    client
        .update_continuous_backups()
        .table_name("Prod-Payments")
        .point_in_time_recovery_specification(
            aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(false)
                .build()
                .expect("spec"),
        )
        .send()
        .await
        .expect("disable PITR");
    recovery_mode(&moto, &[], &config, "start");
    let before_inventory = inventory(&client).await;
    let mut before = BTreeMap::new();
    for t in TABLES {
        before.insert(t, scan_all(&client, t).await);
    }
    let t = shared_instant(&client, &TABLES[..2]).await;
    let proxy = live_windows(&moto);
    let env = [("AWS_ENDPOINT_URL", proxy.url())];

    let refused = [
        // Payments' PITR is off: found by the read-only preflight of every table.
        (
            restore_args(&config, &TABLES, &["--pitr-time", &t]),
            "Prod-Payments: PITR time: point-in-time recovery is DISABLED",
        ),
        // One confirmation short.
        (
            restore_args(
                &config,
                &["Prod-Orders", "Prod-Customers"],
                &["--pitr-time", &t],
            ),
            "Prod-Payments has no confirmation",
        ),
        // `latest` is a different instant for each table.
        (
            restore_args(&config, &TABLES, &["--pitr-time", "latest"]),
            "would not be restored to one instant",
        ),
        // A backup belongs to one table.
        (
            restore_args(
                &config,
                &TABLES,
                &[
                    "--backup-arn",
                    "arn:aws:dynamodb:us-east-1:123456789012:table/Prod-Orders/backup/01700000000000-abcd1234",
                ],
            ),
            "a backup holds one table",
        ),
    ];
    for (args, why) in refused {
        let run = dr_env(&moto, &env, &args, None);
        run.assert_code(2);
        assert!(run.stderr.contains(why), "expected {why:?}: {}", run.stderr);
        assert_eq!(run.json()["exitCode"], 2, "{}", run.stdout);
        if why.starts_with("Prod-Payments:") {
            assert!(
                run.stderr
                    .contains("1 of 3 tables cannot be restored, so none was touched"),
                "{}",
                run.stderr
            );
        }
    }

    // The plan shows every table, and every table that would be refused.
    let run = dr_env(
        &moto,
        &env,
        &restore_args(&config, &TABLES, &["--pitr-time", &t, "--dry-run"]),
        None,
    );
    run.assert_code(2);
    for plan in [
        "execution inc-77.Prod-Orders",
        "execution inc-77.Prod-Customers",
    ] {
        assert!(run.stdout.contains(plan), "{plan}: {}", run.stdout);
    }
    assert!(
        run.stdout.contains(
            "Prod-Payments: WOULD BE REFUSED: PITR time: point-in-time recovery is DISABLED"
        ),
        "{}",
        run.stdout
    );

    assert_eq!(
        inventory(&client).await,
        before_inventory,
        "nothing created"
    );
    for t in TABLES {
        assert_eq!(
            diff_summary(&before[t], &scan_all(&client, t).await),
            None,
            "{t} unchanged"
        );
    }
    assert!(
        journal_is_empty(&moto).await,
        "no execution record and no lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tables_restored_to_one_instant_concurrently_with_one_report() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let dir = tempfile::tempdir().expect("dir");
    let (config, specs) = three_tables(&moto, &dir).await;
    let proxy = live_windows(&moto);
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let instant = shared_instant(&client, &TABLES).await;
    recovery_mode(&moto, &env, &config, "start");
    // Damage every table after the instant.
    let mut damaged = Vec::new();
    for spec in &specs {
        corrupt(&client, spec, ITEMS, 25).await;
        damaged.push(scan_all(&client, &spec.name).await);
    }

    let reports = tempfile::tempdir().expect("dir");
    let report_dir = reports.path().display().to_string();
    let run = dr_env(
        &moto,
        &env,
        &restore_args(
            &config,
            &["Prod-Payments", "Prod-Orders", "Prod-Customers"],
            &["--pitr-time", &instant, "--report-dir", &report_dir],
        ),
        None,
    );
    run.assert_code(0);
    let out = run.json();
    assert_eq!(out["status"], "succeeded", "{out}");
    let tables = out["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 3);
    for (row, name) in tables.iter().zip(TABLES) {
        assert_eq!(row["status"], "succeeded");
        assert_eq!(row["table"], name);
        assert_eq!(row["executionId"], format!("inc-77.{name}"));
        assert_eq!(row["copiedItems"], ITEMS);
    }
    // moto's PITR restores the current data whatever the instant, so each table holds exactly
    // what it held when the run began: what is tested here is the orchestration.
    for (t, before) in TABLES.iter().zip(&damaged) {
        assert_eq!(
            diff_summary(before, &scan_all(&client, t).await),
            None,
            "{t}"
        );
    }
    let after = inventory(&client).await;
    assert!(
        !after.tables.iter().any(|n| n.starts_with("DR-TEMP-")),
        "temporary tables deleted: {after:?}"
    );
    assert_eq!(after.backups.len(), 3, "one forensic backup per table");

    // One report, for the incident.
    let mut files: Vec<String> = std::fs::read_dir(reports.path())
        .expect("report dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "dynamo-dr-report-inc-77.html",
            "dynamo-dr-report-inc-77.json",
            "dynamo-dr-report-inc-77.md"
        ]
    );
    assert_eq!(
        out["report"]["json"],
        reports
            .path()
            .join("dynamo-dr-report-inc-77.json")
            .display()
            .to_string()
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reports.path().join("dynamo-dr-report-inc-77.json")).expect("json"),
    )
    .expect("report parses");
    assert_eq!(report["incidentId"], "inc-77");
    assert_eq!(report["outcome"], "recovered");
    let execs = report["executions"].as_array().expect("executions");
    assert_eq!(execs.len(), 3);
    let mut created = Vec::new();
    let mut finished = Vec::new();
    for e in execs {
        let table = e["table"].as_str().expect("table");
        assert!(TABLES.contains(&table));
        assert_eq!(e["status"], "succeeded");
        assert_eq!(e["source"], instant.as_str(), "one instant for all");
        assert!(e["backupArn"].as_str().is_some_and(|a| a.contains(table)));
        assert_eq!(e["tempTableFate"], "deleted");
        assert_eq!(e["verification"]["passed"], true);
        assert_eq!(e["verification"]["method"], "content");
        assert_eq!(e["verification"]["sourceItems"], ITEMS);
        assert_eq!(e["counts"]["copiedItems"], ITEMS);
        assert_eq!(
            e["principals"][0]["aws"]["account"], ACCOUNT,
            "operator identity from STS: {e}"
        );
        let phases: Vec<&str> = e["phases"]
            .as_array()
            .expect("phases")
            .iter()
            .map(|p| p["phase"].as_str().expect("phase"))
            .collect();
        assert_eq!(
            phases,
            [
                "backup-and-restore",
                "delete",
                "copy",
                "check",
                "clean-up",
                "done"
            ]
        );
        for p in e["phases"].as_array().expect("phases") {
            assert!(p["seconds"].as_f64().is_some(), "every phase timed: {p}");
        }
        created.push(
            e["createdAt"]
                .as_str()
                .expect("created")
                .parse::<jiff::Timestamp>()
                .expect("ts"),
        );
        let done = e["phases"][5]["startedAt"].as_str().expect("done");
        finished.push(done.parse::<jiff::Timestamp>().expect("ts"));
    }
    // Concurrent: every execution started before any of them finished.
    assert!(
        created.iter().max() < finished.iter().min(),
        "started {created:?}, finished {finished:?}"
    );
    let window = &report["recoveryMode"][0];
    assert_eq!(window["environment"], "Prod");
    assert_eq!(window["state"], "on");
    assert!(window["startedAt"].is_string() && window["endedAt"].is_null());
    let md = std::fs::read_to_string(reports.path().join("dynamo-dr-report-inc-77.md"))
        .expect("markdown");
    for needle in [
        "# Incident inc-77",
        "**recovered** (3 of 3 executions succeeded)",
        "| Prod-Orders | inc-77.Prod-Orders | succeeded",
        "## Recovery mode",
        "PASSED (every item, every attribute)",
        "### Audit trail",
        "arn:aws:sts::123456789012",
    ] {
        assert!(md.contains(needle), "{needle:?} in the report:\n{md}");
    }

    // After recovery mode ends, `report` writes the whole window; one execution can be reported
    // alone too.
    recovery_mode(&moto, &env, &config, "end");
    let run = dr_env(
        &moto,
        &env,
        &[
            "--config",
            &config,
            "report",
            "inc-77",
            "--report-dir",
            &report_dir,
        ],
        None,
    );
    run.assert_code(0);
    assert!(
        run.stdout.contains("dynamo-dr-report-inc-77.md"),
        "{}",
        run.stdout
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(reports.path().join("dynamo-dr-report-inc-77.json")).expect("json"),
    )
    .expect("report parses");
    assert_eq!(report["recoveryMode"][0]["state"], "off");
    assert!(report["recoveryMode"][0]["endedAt"].is_string());
    let run = dr_env(
        &moto,
        &env,
        &[
            "--config",
            &config,
            "--output",
            "json",
            "report",
            "inc-77.Prod-Orders",
            "--report-dir",
            &report_dir,
        ],
        None,
    );
    run.assert_code(0);
    let one: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.json()["json"].as_str().expect("path")).expect("json"),
    )
    .expect("parses");
    assert_eq!(one["subject"], "inc-77.Prod-Orders");
    assert_eq!(one["executions"].as_array().map(Vec::len), Some(1));
    // An unknown id is refused, and nothing is written.
    let run = dr_env(
        &moto,
        &env,
        &["report", "inc-78", "--report-dir", &report_dir],
        None,
    );
    run.assert_code(2);
    assert!(run.stderr.contains("no execution and no incident inc-78"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_fails_mid_run_leaves_the_others_recovered_and_resumes_alone() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let dir = tempfile::tempdir().expect("dir");
    let (config, _) = three_tables(&moto, &dir).await;
    let instant = shared_instant(&client, &TABLES).await;
    // Every write to Payments is throttled, past a budget of 2 attempts.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            throttling: 1.0,
            operations: vec!["BatchWriteItem".into()],
            tables: vec!["Prod-Payments".into()],
            live_pitr_window: true,
            ..Faults::none()
        },
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let reports = tempfile::tempdir().expect("dir");
    let report_dir = reports.path().display().to_string();
    let mut args = vec!["--retry-budget", "2"];
    args.extend(restore_args(
        &config,
        &TABLES,
        &[
            "--pitr-time",
            &instant,
            "--report-dir",
            &report_dir,
            "--allow-live-traffic",
        ],
    ));
    let run = dr_env(&moto, &env, &args, None);
    run.assert_code(1);
    let out = run.json();
    assert_eq!(out["status"], "failed");
    let status: Vec<(&str, &str)> = out["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().expect("table"),
                t["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            ("Prod-Orders", "succeeded"),
            ("Prod-Customers", "succeeded"),
            ("Prod-Payments", "failed")
        ]
    );
    assert!(
        run.stderr.contains("1 of 3 tables were not recovered")
            && run
                .stderr
                .contains("then: dynamo-dr resume inc-77.Prod-Payments"),
        "{}",
        run.stderr
    );
    let report_path = reports.path().join("dynamo-dr-report-inc-77.json");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("parses");
    assert_eq!(report["outcome"], "failed");
    assert!(leases_released(&moto).await, "every lease released");
    assert!(
        proxy
            .injected()
            .throttling
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2,
        "the faults reached Payments"
    );

    // The capacity comes back: Payments alone is resumed, and the report says all recovered.
    proxy.set(Faults {
        live_pitr_window: true,
        ..Faults::none()
    });
    let run = dr_env(
        &moto,
        &env,
        &[
            "--config",
            &config,
            "resume",
            "inc-77.Prod-Payments",
            "--yes",
            "--allow-live-traffic",
            "--report-dir",
            &report_dir,
        ],
        None,
    );
    run.assert_code(0);
    assert!(
        run.stdout.contains("Recovery succeeded: Prod-Payments"),
        "{}",
        run.stdout
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("parses");
    assert_eq!(report["outcome"], "recovered");
    let payments = report["executions"]
        .as_array()
        .expect("executions")
        .iter()
        .find(|e| e["table"] == "Prod-Payments")
        .expect("Payments");
    assert_eq!(payments["principals"].as_array().map(Vec::len), Some(2));
    assert_eq!(payments["verification"]["passed"], true);
    assert!(
        payments["auditTrail"]
            .as_array()
            .expect("trail")
            .iter()
            .any(|e| e["what"]
                .as_str()
                .is_some_and(|w| w.starts_with("resumed by")))
    );
}

/// No run holds a lease on any of the tables: each was released (its item kept, for the next
/// holder's fencing number).
async fn leases_released(moto: &Emulator) -> bool {
    use dynamo_dr::journal::Journal;
    let journal =
        dynamo_dr::journal::local::LocalJournal::open(&moto.journal_dir).expect("journal");
    for t in TABLES {
        if journal
            .read_lease(t)
            .await
            .expect("read lease")
            .is_some_and(|(l, _)| !l.released)
        {
            return false;
        }
    }
    true
}

/// Ctrl-C during a three-table restore: every table's run stops, records where it was and
/// releases its lease; each then resumes alone to an exact table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_table_cleanly_and_each_resumes() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let dir = tempfile::tempdir().expect("dir");
    let (config, specs) = three_tables(&moto, &dir).await;
    let mut before = Vec::new();
    for spec in &specs {
        before.push(scan_all(&client, &spec.name).await);
    }
    let instant = shared_instant(&client, &TABLES).await;
    // Slow writes keep every table in its copy phase long enough to be interrupted there.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            latency: 1.0,
            latency_max: Duration::from_millis(400),
            live_pitr_window: true,
            ..Faults::none()
        }
        .only(&["BatchWriteItem"]),
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let mut args = restore_args(
        &config,
        &TABLES,
        &[
            "--pitr-time",
            &instant,
            "--allow-live-traffic",
            "--scan-page-limit",
            "25",
            "--write-concurrency",
            "1",
        ],
    );
    // One segment per table, so each copy is a sequence of slow pages.
    let at = args
        .iter()
        .position(|a| *a == "--segments")
        .expect("segments")
        + 1;
    args[at] = "1";
    let mut child = spawn_env(&moto, &env, &args);
    for t in TABLES {
        until_copying(&moto, &format!("inc-77.{t}"), &mut child).await;
    }
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "an interrupted run exits 1");
    for t in TABLES {
        let rec = record(&moto, &format!("inc-77.{t}")).expect("record");
        assert_eq!(rec["status"], "failed", "{t}: {rec}");
        assert!(
            rec["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("interrupted by the operator")),
            "{t}: {}",
            rec["lastError"]
        );
    }
    assert!(leases_released(&moto).await, "every lease released");

    proxy.set(Faults {
        live_pitr_window: true,
        ..Faults::none()
    });
    for (t, expected) in TABLES.iter().zip(&before) {
        dr_env(
            &moto,
            &env,
            &[
                "--config",
                &config,
                "resume",
                &format!("inc-77.{t}"),
                "--yes",
                "--allow-live-traffic",
            ],
            None,
        )
        .assert_code(0);
        assert_eq!(
            diff_summary(expected, &scan_all(&client, t).await),
            None,
            "{t}"
        );
        assert_eq!(
            record(&moto, &format!("inc-77.{t}")).expect("record")["status"],
            "succeeded"
        );
    }
}
