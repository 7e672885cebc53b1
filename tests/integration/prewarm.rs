//! `--prewarm UNITS`: phase one raises the live table's warm write throughput, and each GSI's
//! below it, with one UpdateTable before any backup or restore; run again it asks for nothing;
//! where it cannot help it is refused before anything changes.

use aws_sdk_dynamodb::Client;
use dynamo_dr_testkit::*;

use crate::support::{dr_env, restore_args};

fn update_tables(proxy: &RecordingProxy) -> Vec<serde_json::Value> {
    proxy
        .requests()
        .into_iter()
        .filter(|r| r.call().ends_with(".UpdateTable"))
        .map(|r| serde_json::from_str(&r.body).expect("JSON body"))
        .collect()
}

/// The table's and each GSI's warm write units, as DescribeTable reports them.
async fn warm(client: &Client, table: &str) -> Vec<i64> {
    let t = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .expect("table");
    let mut out = vec![
        t.warm_throughput()
            .and_then(|w| w.write_units_per_second())
            .unwrap_or(0),
    ];
    for g in t.global_secondary_indexes() {
        out.push(
            g.warm_throughput()
                .and_then(|w| w.write_units_per_second())
                .unwrap_or(0),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prewarm_raises_the_table_and_its_gsi_once_before_the_backup() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Prod-Orders-PW1");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..200).map(|i| mixed_item(&spec, i))).await;
    assert_eq!(warm(&client, &spec.name).await, [4_000, 4_000]);
    let proxy = RecordingProxy::start(&moto.endpoint());
    let env = [("AWS_ENDPOINT_URL", proxy.url())];

    let run = dr_env(
        &moto,
        &env,
        &restore_args(&spec.name, "pw-1", &["--prewarm", "20000"]),
        None,
    );
    run.assert_code(0);
    let plan = format!("{}{}", run.stdout, run.stderr);
    assert!(plan.contains("pre-warmed to"), "{plan}");
    assert!(plan.contains("charges for the increase once"), "{plan}");
    let updates = update_tables(&proxy);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0]["WarmThroughput"]["WriteUnitsPerSecond"], 20_000);
    let gsi = &updates[0]["GlobalSecondaryIndexUpdates"][0]["Update"];
    assert_eq!(
        gsi["WarmThroughput"]["WriteUnitsPerSecond"], 20_000,
        "{gsi}"
    );
    assert_eq!(warm(&client, &spec.name).await, [20_000, 20_000]);
    // Before the forensic backup and the restore: a refusal leaves nothing behind.
    let order: Vec<String> = proxy.requests().iter().map(|r| r.call()).collect();
    let at = |call: &str| order.iter().position(|c| c.ends_with(call));
    assert!(at(".UpdateTable") < at(".CreateBackup"), "{order:?}");
    assert!(
        at(".UpdateTable") < at(".RestoreTableToPointInTime"),
        "{order:?}"
    );
    let status = dr_env(
        &moto,
        &[],
        &["--output", "json", "status", "pw-1.Prod-Orders-PW1"],
        None,
    );
    assert!(
        status.stdout.contains("pre-warm: asked DynamoDB to raise"),
        "{}",
        status.stdout
    );

    // Run again (a second incident, or a late worker): already warm, nothing asked.
    let again = RecordingProxy::start(&moto.endpoint());
    let env = [("AWS_ENDPOINT_URL", again.url())];
    dr_env(
        &moto,
        &env,
        &restore_args(&spec.name, "pw-2", &["--prewarm", "20000"]),
        None,
    )
    .assert_code(0);
    assert!(update_tables(&again).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prewarm_that_cannot_help_is_refused_before_anything_changes() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    provisioned_table(&client, "Prod-Provisioned-PW", 100).await;
    // A maximum above the pre-warm is refused too (src/restore/preflight.rs's unit test: moto
    // keeps no OnDemandThroughput).
    let name = "Prod-Provisioned-PW";
    enable_pitr(&client, name).await;
    let proxy = RecordingProxy::start(&moto.endpoint());
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let run = dr_env(
        &moto,
        &env,
        &restore_args(name, "pw-3", &["--prewarm", "5000"]),
        None,
    );
    run.assert_code(2);
    assert!(
        run.stdout
            .contains("raise the provisioned capacity instead"),
        "{}",
        run.stdout
    );
    let calls: Vec<String> = proxy.requests().iter().map(|r| r.call()).collect();
    assert!(
        calls
            .iter()
            .all(|c| c.contains(".Describe") || c.contains(".List") || !c.contains("DynamoDB")),
        "{calls:?}"
    );
}
