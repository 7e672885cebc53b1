//! Benchmark: hard reset against diff when 1%, 10% and 100% of the items differ. Run with
//! `scripts/bench-strategy [ITEMS]` (release build).

use dynamo_dr_testkit::*;

const ITEM_BYTES: usize = 1024;

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let percents: Vec<u64> = std::env::var("BENCH_PERCENTS")
        .unwrap_or_else(|_| "1 10 100".into())
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("strategy-source", Scalar::S);
    let dst = TableSpec::hash_only("strategy-dest", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(
        &client,
        &src.name,
        (0..n).map(|i| sized_item(&src, i, ITEM_BYTES)),
    )
    .await;
    put_all(
        &client,
        &dst.name,
        (0..n).map(|i| sized_item(&dst, i, ITEM_BYTES)),
    )
    .await;
    println!(
        "| items | changed | strategy | wall s | write requests | items written | read units | write units | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut run_id = 0;
    for pct in percents {
        for strategy in ["hard-reset", "diff"] {
            // Change pct% of the destination's items (a third deleted, a third changed, a third
            // extra), so each run starts from the same damage.
            let k = n * pct / 100;
            let third = k / 3;
            for i in 0..third {
                client
                    .delete_item()
                    .table_name(&dst.name)
                    .set_key(Some(dst.key(i)))
                    .send()
                    .await
                    .expect("delete");
            }
            put_all(
                &client,
                &dst.name,
                (third..2 * third).map(|i| {
                    let mut item = sized_item(&dst, i, ITEM_BYTES);
                    item.insert(
                        "n".into(),
                        aws_sdk_dynamodb::types::AttributeValue::N("-1".into()),
                    );
                    item
                }),
            )
            .await;
            put_all(
                &client,
                &dst.name,
                (0..k - 2 * third).map(|i| sized_item(&dst, 50_000_000 + i, ITEM_BYTES)),
            )
            .await;
            run_id += 1;
            let incident = format!("bench-{run_id}");
            let (json, rss) = run_measured(
                &sibling_binary(),
                &dynalite.cli_env(),
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
                    "--strategy",
                    strategy,
                    "--no-verify",
                    "--yes",
                    "--output",
                    "json",
                ],
            );
            let written = json["copiedItems"].as_u64().unwrap_or(0)
                + json["deletedItems"].as_u64().unwrap_or(0);
            println!(
                "| {n} | {pct}% | {strategy} | {:.1} | {} | {written} | {:.0} | {:.0} | {rss:.1} |",
                json["durationSeconds"].as_f64().unwrap_or_default(),
                json["writeRequests"],
                json["readUnits"].as_f64().unwrap_or_default(),
                json["writeUnits"].as_f64().unwrap_or_default(),
            );
        }
    }
}
