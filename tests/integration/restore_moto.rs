//! The full in-place restore against moto: backup path, PITR path, and the seed's JSON input.

use aws_sdk_dynamodb::Client;
use dynamo_dr_testkit::*;

use crate::support::{dr_env, dr_on_tty, inventory, write_file};

const ITEMS: u64 = 1500;

async fn loaded_table(client: &Client, name: &str) -> TableSpec {
    let spec = TableSpec::seed_like(name);
    create_table(client, &spec).await;
    enable_pitr(client, name).await;
    put_all(client, name, (0..ITEMS).map(|i| mixed_item(&spec, i))).await;
    spec
}

async fn backup_arn_named(client: &Client, table: &str, prefix: &str) -> Option<String> {
    let out = client
        .list_backups()
        .table_name(table)
        .send()
        .await
        .expect("ListBackups");
    out.backup_summaries()
        .iter()
        .find(|b| b.backup_name().is_some_and(|n| n.starts_with(prefix)))
        .and_then(|b| b.backup_arn().map(str::to_string))
}

async fn table_exists(client: &Client, name: &str) -> bool {
    client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_backup_after_corruption_puts_back_the_snapshot() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = loaded_table(&client, "Prod-ProviderTable-ABC123").await;
    let snapshot = scan_all(&client, &spec.name).await;
    let good = create_backup(&client, &spec.name, "known-good").await;
    corrupt(&client, &spec, ITEMS, 40).await;
    let corrupted = scan_all(&client, &spec.name).await;
    assert!(
        diff_summary(&snapshot, &corrupted).is_some(),
        "corruption must change the table"
    );

    let proxy = RecordingProxy::start(&moto.endpoint());
    let run = dr_env(
        &moto,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &[
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "inc-2025-001",
            "--backup-arn",
            &good,
            "--confirm",
            &spec.name,
            "--segments",
            "4",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    run.assert_code(0);
    let out = run.json();
    assert_eq!(out["status"], "succeeded");
    assert_eq!(out["executionId"], "inc-2025-001.Prod-ProviderTable-ABC123");
    assert_eq!(out["table"], spec.name.as_str());
    assert_eq!(
        out["restoredTable"],
        "DR-TEMP-Prod-ProviderTable-ABC123.inc-2025-001"
    );
    assert_eq!(out["deletedItems"], corrupted.len() as u64);
    assert_eq!(out["copiedItems"], ITEMS);
    assert_eq!(out["sourceItemCount"], ITEMS);
    assert!(out["durationSeconds"].as_f64().is_some());
    for field in ["backupArn", "pitrTime"] {
        assert!(
            out[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {out}"
        );
    }

    let restored = scan_all(&client, &spec.name).await;
    assert_eq!(diff_summary(&snapshot, &restored), None);
    let restore = proxy
        .requests()
        .into_iter()
        .find(|r| r.call().ends_with(".RestoreTableFromBackup"))
        .expect("RestoreTableFromBackup through the proxy");
    let body: serde_json::Value = serde_json::from_str(&restore.body).expect("JSON body");
    assert_eq!(body["GlobalSecondaryIndexOverride"], serde_json::json!([]));
    assert_eq!(body["LocalSecondaryIndexOverride"], serde_json::json!([]));

    // The temporary table is gone; the forensic backup holds the corrupted state.
    assert!(!table_exists(&client, "DR-TEMP-Prod-ProviderTable-ABC123.inc-2025-001").await);
    let forensic = backup_arn_named(&client, &spec.name, "DR-FORENSIC-")
        .await
        .expect("forensic backup");
    assert_eq!(out["backupArn"], forensic.as_str());
    client
        .restore_table_from_backup()
        .target_table_name("forensic-check")
        .backup_arn(&forensic)
        .send()
        .await
        .expect("restore forensic backup");
    assert_eq!(
        diff_summary(&corrupted, &scan_all(&client, "forensic-check").await),
        None
    );
    assert!(
        run.stderr.contains("phase 2"),
        "progress on stderr: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_latest_pitr_time_keeps_the_restored_table_on_request() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec {
        lsi: true,
        ..TableSpec::seed_like("DataEventTable-XYZ")
    };
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(
        &client,
        &spec.name,
        (0..ITEMS).map(|i| mixed_item(&spec, i)),
    )
    .await;
    let before = scan_all(&client, &spec.name).await;
    let proxy = RecordingProxy::start(&moto.endpoint());

    let run = dr_env(
        &moto,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &[
            "restore",
            "--table",
            &spec.name,
            "--incident-id",
            "pitr-1",
            "--pitr-time",
            "latest",
            "--confirm",
            &spec.name,
            "--keep-restored-table",
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    assert!(run.stdout.contains("Recovery succeeded"), "{}", run.stdout);
    // The temporary table is restored without the live table's GSI and LSI, and the plan says so.
    let restores: Vec<_> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.call().ends_with(".RestoreTableToPointInTime"))
        .collect();
    assert_eq!(restores.len(), 1, "{restores:?}");
    let body: serde_json::Value = serde_json::from_str(&restores[0].body).expect("JSON body");
    for list in [
        "GlobalSecondaryIndexOverride",
        "LocalSecondaryIndexOverride",
    ] {
        assert_eq!(body[list], serde_json::json!([]), "{list}: {body}");
    }
    let plan = format!("{}{}", run.stdout, run.stderr);
    assert!(
        plan.contains("without the indexes the table has now"),
        "{plan}"
    );
    assert!(
        run.stdout.contains(&format!("copied items:     {ITEMS}")),
        "{}",
        run.stdout
    );
    // moto's PITR restores the current data, so the table must come back unchanged.
    assert_eq!(
        diff_summary(&before, &scan_all(&client, &spec.name).await),
        None
    );
    let temp = "DR-TEMP-DataEventTable-XYZ.pitr-1";
    assert_eq!(diff_summary(&before, &scan_all(&client, temp).await), None);
    let arn = client
        .describe_table()
        .table_name(temp)
        .send()
        .await
        .expect("kept")
        .table
        .expect("t")
        .table_arn
        .expect("arn");
    let tags = client
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("tags");
    assert!(
        tags.tags().iter().any(
            |t| t.key() == "dynamo-dr:execution-id" && t.value() == "pitr-1.DataEventTable-XYZ"
        ),
        "{tags:?}"
    );
    assert!(
        backup_arn_named(&client, &spec.name, "DR-FORENSIC-DataEventTable-XYZ.pitr-1")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_from_the_seeds_json_payload_in_a_file_and_on_stdin() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = loaded_table(&client, "TransactionHistoryTable-1").await;
    let before = scan_all(&client, &spec.name).await;
    // Through the live-window proxy the window opens when PITR was enabled; a restore asks for a
    // whole second, so the first whole second after that, once it has passed.
    let enabled = pitr_window(&client, &spec.name).await.0;
    let t = jiff::Timestamp::new(enabled.secs() + 1, 0).expect("time");
    while jiff::Timestamp::now() <= t {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let offset_form = t
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%.f+00:00")
        .to_string();

    let payload = |incident: &str| {
        format!(
            r#"{{"incidentId": "{incident}", "pitrBackupTime": "{offset_form}", "tableNameRecoveryConfirmation": "{}"}}"#,
            spec.name
        )
    };
    // moto reports the moment of a PITR restore as its RestoreDateTime; DynamoDB reports the
    // instant asked for, which is what the provenance check compares.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            live_pitr_window: true,
            ..Faults::none()
        },
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let dir = tempfile::tempdir().expect("dir");
    let file = write_file(
        &dir,
        "payload.json",
        &payload("transaction-corruption-20250115"),
    );
    let run = dr_env(
        &moto,
        &env,
        &[
            "restore", "--table", &spec.name, "--input", &file, "--yes", "--output", "json",
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(run.json()["copiedItems"], ITEMS);
    assert_eq!(
        diff_summary(&before, &scan_all(&client, &spec.name).await),
        None
    );

    // The second run also uses the diff strategy: the table already equals the restore point, so
    // nothing is written.
    let run = dr_env(
        &moto,
        &env,
        &[
            "restore",
            "--table",
            &spec.name,
            "--input",
            "-",
            "--strategy",
            "diff",
            "--yes",
            "--output",
            "json",
        ],
        Some(&payload("stdin-incident")),
    );
    run.assert_code(0);
    assert_eq!(
        (
            run.json()["deletedItems"].as_u64(),
            run.json()["copiedItems"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(
        diff_summary(&before, &scan_all(&client, &spec.name).await),
        None
    );
    let inv = inventory(&client).await;
    assert_eq!(inv.backups.len(), 2, "one forensic backup per run: {inv:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_run_shows_the_plan_and_needs_the_typed_table_name() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("UsersTable-Interactive");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..50).map(|i| mixed_item(&spec, i))).await;
    let args = [
        "restore",
        "--table",
        &spec.name,
        "--incident-id",
        "tty-1",
        "--pitr-time",
        "latest",
        "--confirm",
        &spec.name,
    ];
    let before = inventory(&client).await;

    let refused = dr_on_tty(&moto, &args, "UsersTable");
    // On a terminal stdout and stderr arrive merged through the pty.
    assert_eq!(refused.code, 2, "{}", refused.stdout);
    assert!(
        refused.stdout.contains("HARD RESET")
            && refused
                .stdout
                .contains("DR-TEMP-UsersTable-Interactive.tty-1"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains("did not match"),
        "{}",
        refused.stdout
    );
    assert_eq!(
        inventory(&client).await,
        before,
        "a refused prompt changed the account"
    );

    let accepted = dr_on_tty(&moto, &args, &spec.name);
    assert_eq!(accepted.code, 0, "{}", accepted.stdout);
    assert!(
        accepted.stdout.contains("Recovery succeeded"),
        "{}",
        accepted.stdout
    );
    assert_eq!(inventory(&client).await.backups.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_up_leaves_a_temporary_table_it_cannot_prove_it_created() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let untagged = TableSpec::seed_like("DR-TEMP-Orders-inc-1");
    create_table(&client, &untagged).await;
    let info = dynamo_dr::table::describe(&client, &untagged.name)
        .await
        .expect("describe")
        .expect("exists");
    let fate = dynamo_dr::restore::delete_if_ours(&client, &info, "inc-1.Orders")
        .await
        .expect("clean-up");
    assert_eq!(fate, dynamo_dr::restore::TempTableFate::NotOurs);
    assert!(table_exists(&client, &untagged.name).await);

    // Tagged by this execution: deleted.
    client
        .tag_resource()
        .resource_arn(&info.arn)
        .tags(
            aws_sdk_dynamodb::types::Tag::builder()
                .key("dynamo-dr:execution-id")
                .value("inc-1.Orders")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("tag");
    let fate = dynamo_dr::restore::delete_if_ours(&client, &info, "inc-1.Orders")
        .await
        .expect("clean-up");
    assert_eq!(fate, dynamo_dr::restore::TempTableFate::Deleted);
    assert!(!table_exists(&client, &untagged.name).await);
}

/// Through the testkit's history, a PITR restore is of the table as it was at the instant asked
/// for (moto alone restores the current data): writes after it are undone in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pitr_restore_puts_back_the_table_as_it_was_at_that_instant() {
    use std::time::{Duration, SystemTime};
    let moto = Emulator::start(Kind::Moto).await;
    let direct = moto.client();
    let spec = TableSpec::seed_like("Accounts");
    create_table(&direct, &spec).await;
    put_all(&direct, &spec.name, (0..200).map(|i| mixed_item(&spec, i))).await;
    let faults = Faults {
        live_pitr_window: true,
        ..Faults::none()
    };
    // Through the partition model too: its DescribeTable figures must not hide the restore
    // summary the history gives the temporary table.
    let capacity = Capacity::partitioned(&spec.name, "pk", 4, 1000.0);
    let proxy = FaultProxy::with_history_and_capacity(&moto.endpoint(), faults, capacity);
    let history = proxy.history();
    let base = SystemTime::now() - Duration::from_secs(3600);
    history.set_clock(Some(base));
    enable_pitr(&proxy.client(), &spec.name).await;
    let at_instant = scan_all(&direct, &spec.name).await;
    history.set_clock(Some(base + Duration::from_secs(20 * 60)));
    corrupt(&proxy.client(), &spec, 200, 15).await;
    history.set_clock(None);
    assert_ne!(
        diff_summary(&at_instant, &scan_all(&direct, &spec.name).await),
        None
    );
    let secs = (base + Duration::from_secs(10 * 60))
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let instant = jiff::Timestamp::from_second(secs as i64)
        .expect("instant")
        .to_string();
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let args = [
        "restore",
        "--table",
        &spec.name,
        "--incident-id",
        "as-of",
        "--pitr-time",
        &instant,
        "--confirm",
        &spec.name,
        "--yes",
    ];
    dr_env(&moto, &env, &args, None).assert_code(0);
    assert_eq!(
        diff_summary(&at_instant, &scan_all(&direct, &spec.name).await),
        None,
        "the table is as it was at {instant}, not as it is now"
    );
}
