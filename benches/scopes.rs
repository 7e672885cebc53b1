//! Benchmark: the writes of each targeted scope against a hard reset and a diff of the same
//! table, after the same damage. Run with `scripts/bench-scopes [ITEMS]` (release build, private
//! moto: a restore point needs a backup, and moto's backups are real snapshots).
//!
//! The damage, as in the tests: after the backup a bad job deletes 30% of the items and modifies
//! 20%, then the application writes 10% new items and modifies 5% others. Write units are counted
//! by DynamoDB's rule (one per KB of each item written, a delete one for an item of under 1 KB):
//! moto reports a constant instead.

use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::*;

/// Under 1 KB with its key: one write unit each.
const ITEM_BYTES: usize = 900;

fn item(spec: &TableSpec, i: u64, v: &str) -> Item {
    let mut item = sized_item(spec, i, ITEM_BYTES);
    item.insert("v".into(), AttributeValue::S(v.into()));
    item
}

/// A damaged table and its restore point's backup.
async fn damaged(moto: &Emulator, name: &str, n: u64) -> String {
    let client = moto.client();
    let spec = TableSpec {
        gsi: false,
        ..TableSpec::seed_like(name)
    };
    create_table(&client, &spec).await;
    put_all(&client, name, (0..n).map(|i| item(&spec, i, "original"))).await;
    let backup = create_backup(&client, name, &format!("{name}-point")).await;
    let deletes = (0..n).filter(|i| i % 10 < 3).map(|i| spec.key(i));
    delete_all(&client, name, deletes).await;
    let bad = (0..n)
        .filter(|i| matches!(i % 10, 3 | 4))
        .map(|i| item(&spec, i, "bad"));
    put_all(&client, name, bad).await;
    let new = (n..n + n / 10).map(|i| item(&spec, i, "new"));
    put_all(&client, name, new).await;
    let app = (0..n)
        .filter(|i| i % 20 == 5)
        .map(|i| item(&spec, i, "app"));
    put_all(&client, name, app).await;
    backup
}

async fn delete_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: impl Iterator<Item = Item>,
) {
    for key in keys {
        client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .send()
            .await
            .expect("the bad job's delete");
    }
}

fn sum(rec: &serde_json::Value, phase: &str, field: &str) -> u64 {
    rec[phase]["segments"]
        .as_array()
        .map(|s| s.iter().filter_map(|x| x[field].as_u64()).sum())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let keys_file = dir.path().join("modified.jsonl");
    let spec = TableSpec::seed_like("keys");
    let lines: Vec<String> = (0..n)
        .filter(|i| matches!(i % 10, 3 | 4))
        .map(|i| key_string(&["pk", "sk"], &spec.key(i)))
        .collect();
    std::fs::write(&keys_file, lines.join("\n") + "\n").expect("keys file");
    let keys_arg = keys_file.display().to_string();
    let partition = format!("k#{:08}", 3);
    let runs: [(&str, Vec<&str>); 5] = [
        ("hard reset", vec!["--strategy", "hard-reset"]),
        ("diff", vec!["--strategy", "diff"]),
        ("missing", vec!["--scope", "missing"]),
        (
            "keys (the modified)",
            vec!["--scope", "keys", "--keys", &keys_arg],
        ),
        (
            "partition (one key)",
            vec!["--scope", "partition", "--partition-key", &partition],
        ),
    ];
    println!(
        "| items | scope | wall s | puts | deletes | write requests | write units | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (label, extra)) in runs.iter().enumerate() {
        let table = format!("Ledger{i}");
        let backup = damaged(&moto, &table, n).await;
        let incident = format!("bench-{i}");
        let mut args = vec![
            "restore",
            "--table",
            &table,
            "--incident-id",
            &incident,
            "--backup-arn",
            &backup,
            "--confirm",
            &table,
            "--yes",
            "--output",
            "json",
        ];
        args.extend(extra.iter().copied());
        let started = Instant::now();
        let (_, rss) = run_measured(&sibling_binary(), &moto.cli_env(), &args);
        let wall = started.elapsed().as_secs_f64();
        let path = moto
            .journal_dir
            .join("executions")
            .join(format!("{incident}.{table}.json"));
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("record")).expect("JSON record");
        let (puts, deletes) = if extra[0] == "--scope" {
            (
                rec["targeted"]["puts"].as_u64().unwrap_or(0),
                rec["targeted"]["deletes"].as_u64().unwrap_or(0),
            )
        } else {
            (sum(&rec, "copy", "items"), sum(&rec, "delete", "items"))
        };
        let requests = rec["delete"]["writeRequests"].as_u64().unwrap_or(0)
            + rec["copy"]["writeRequests"].as_u64().unwrap_or(0);
        println!(
            "| {n} | {label} | {wall:.1} | {puts} | {deletes} | {requests} | {} | {rss:.1} |",
            puts + deletes
        );
    }
}
