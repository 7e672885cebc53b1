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
