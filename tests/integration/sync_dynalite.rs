//! `dynamo-dr sync` at volume on dynalite.

use dynamo_dr_testkit::*;

use crate::support::dr;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_of_50k_items_with_8_segments_is_exact() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let source = TableSpec::seed_like("DR-TEMP-Events-inc-9");
    let dest = TableSpec::seed_like("Events");
    create_table(&client, &source).await;
    create_table(&client, &dest).await;
    const N: u64 = 50_000;
    put_all(
        &client,
        &source.name,
        (0..N).map(|i| mixed_item(&source, i)),
    )
    .await;
    // The destination holds stale versions, items the source lacks, and misses some.
    put_all(
        &client,
        &dest.name,
        (N / 2..N + 3_000).map(|i| mixed_item(&dest, i * 7 % (N + 3_000))),
    )
    .await;
    let expected = scan_all(&client, &source.name).await;
    assert_eq!(expected.len() as u64, N);
    let stale = scan_all(&client, &dest.name).await.len() as u64;

    let run = dr(
        &dynalite,
        &[
            "sync",
            "--source",
            &source.name,
            "--dest",
            &dest.name,
            "--confirm",
            &dest.name,
            "--segments",
            "8",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    run.assert_code(0);
    let out = run.json();
    assert_eq!(out["copiedItems"], N);
    assert_eq!(out["deletedItems"], stale);
    assert_eq!(out["destItemCount"], N);
    // 25 items per request at best: no request may be wasted on tiny batches overall.
    let writes = out["writeRequests"].as_u64().expect("writeRequests");
    assert!(
        writes >= (N + stale).div_ceil(25),
        "{writes} write requests"
    );
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dest.name).await),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_strategy_writes_only_what_changed() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let source = TableSpec::seed_like("Diff-Source");
    let dest = TableSpec::seed_like("Diff-Dest");
    create_table(&client, &source).await;
    create_table(&client, &dest).await;
    const N: u64 = 50_000;
    put_all(
        &client,
        &source.name,
        (0..N).map(|i| mixed_item(&source, i)),
    )
    .await;
    put_all(&client, &dest.name, (0..N).map(|i| mixed_item(&dest, i))).await;
    // 1% of the items differ: 167 missing from dest, 167 changed, 166 extra.
    corrupt(&client, &dest, N, 167).await;
    for i in 0..(167 - 166) {
        client
            .delete_item()
            .table_name(&dest.name)
            .set_key(Some(dest.key(10_000_000 + i)))
            .send()
            .await
            .expect("delete");
    }
    let changed = 167 + 167 + 166;
    let expected = scan_all(&client, &source.name).await;

    let run = dr(
        &dynalite,
        &[
            "sync",
            "--source",
            &source.name,
            "--dest",
            &dest.name,
            "--confirm",
            &dest.name,
            "--strategy",
            "diff",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    run.assert_code(0);
    let out = run.json();
    let writes = out["copiedItems"].as_u64().expect("copied")
        + out["deletedItems"].as_u64().expect("deleted");
    assert!(
        writes as f64 <= 1.05 * changed as f64,
        "{writes} writes for {changed} changed items: {out}"
    );
    assert_eq!(out["copiedItems"], 334);
    assert_eq!(out["deletedItems"], 166);
    assert_eq!(out["strategy"], "diff");
    assert!(
        out["writeUnits"].as_f64().is_some() && out["readUnits"].as_f64().is_some(),
        "{out}"
    );
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dest.name).await),
        None
    );
    let status = dr(
        &dynalite,
        &["status", out["executionId"].as_str().expect("id")],
        None,
    );
    assert!(
        status
            .stdout
            .contains("verified: both tables hold the same 50000 items"),
        "{}",
        status.stdout
    );
}
