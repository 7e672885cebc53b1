//! `--scope window` on moto through the testkit's history: a table of 5,000 items, a good write
//! at 09:00, a bad deploy's writes from 09:10 to 09:40 to 300 items (updates, deletes, inserts,
//! some items twice), then 40 good writes after 09:45 to some of the same items. Undoing
//! 09:05–09:45 puts back exactly the 300 minus the 40, keeps the 40 and exits 3 naming them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::*;

use crate::support::{dr_env, record, spawn_env, until_copying};

const TABLE: &str = "Orders";
const ITEMS: u64 = 5000;
const BUCKET: &str = "dr-exports";

fn spec() -> TableSpec {
    TableSpec {
        gsi: false,
        ..TableSpec::seed_like(TABLE)
    }
}

fn item(i: u64, v: &str) -> Item {
    let mut item = sized_item(&spec(), i, 60);
    item.insert("v".into(), AttributeValue::S(v.into()));
    item
}

fn key(i: u64) -> String {
    key_string(&["pk", "sk"], &spec().key(i))
}

/// The bad deploy: 200 updated (100..300, the first 40 twice), 50 deleted (300..350), 50
/// inserted (10_000..10_050).
fn updated(i: u64) -> bool {
    (100..300).contains(&i)
}
fn deleted(i: u64) -> bool {
    (300..350).contains(&i)
}
const INSERTED: std::ops::Range<u64> = 10_000..10_050;
/// Written again after the window: 20 updated, 10 deleted, 10 inserted.
fn later(i: u64) -> bool {
    (100..120).contains(&i) || (300..310).contains(&i) || (10_000..10_010).contains(&i)
}

struct Scenario {
    moto: Emulator,
    proxy: FaultProxy,
    from: String,
    to: String,
    /// What the table must hold after the revert.
    expected: BTreeMap<String, Item>,
}

fn at(base: SystemTime, minutes: u64) -> SystemTime {
    base + Duration::from_secs(minutes * 60)
}

async fn scenario() -> Scenario {
    let moto = Emulator::start(Kind::Moto).await;
    let direct = moto.client();
    create_table(&direct, &spec()).await;
    put_all(&direct, TABLE, (0..ITEMS).map(|i| item(i, "original"))).await;
    moto.s3("PUT", &format!("/{BUCKET}"), b"");
    let proxy = FaultProxy::with_history(&moto.endpoint(), Faults::none());
    let client = proxy.client();
    let history = proxy.history();
    // 08:55 on a clock three hours back, so the whole story is in the past.
    let base = SystemTime::now() - Duration::from_secs(3 * 3600);
    history.set_clock(Some(base));
    enable_pitr(&client, TABLE).await;
    history.set_clock(Some(at(base, 5)));
    put_all(&client, TABLE, (0..10).map(|i| item(i, "good 09:00"))).await;
    let before = scan_all(&direct, TABLE).await;
    history.set_clock(Some(at(base, 15)));
    put_all(
        &client,
        TABLE,
        (0..ITEMS).filter(|i| updated(*i)).map(|i| item(i, "bad")),
    )
    .await;
    history.set_clock(Some(at(base, 25)));
    for i in (0..ITEMS).filter(|i| deleted(*i)) {
        let key = spec().key(i);
        let del = client.delete_item().table_name(TABLE).set_key(Some(key));
        del.send().await.expect("the bad deploy's delete");
    }
    history.set_clock(Some(at(base, 35)));
    put_all(&client, TABLE, INSERTED.map(|i| item(i, "bad insert"))).await;
    put_all(&client, TABLE, (100..140).map(|i| item(i, "bad again"))).await;
    history.set_clock(Some(at(base, 55)));
    let later_items: Vec<Item> = (0..ITEMS)
        .chain(INSERTED)
        .filter(|i| later(*i))
        .map(|i| item(i, "good later"))
        .collect();
    put_all(&client, TABLE, later_items.clone()).await;
    history.set_clock(None);
    let mut expected = before;
    for i in INSERTED.filter(|i| !later(*i)) {
        expected.remove(&key(i));
    }
    for item in later_items {
        expected.insert(key_string(&["pk", "sk"], &item), item);
    }
    Scenario {
        from: rfc3339(at(base, 10)),
        to: rfc3339(at(base, 50)),
        moto,
        proxy,
        expected,
    }
}

fn window_args<'a>(s: &'a Scenario, incident: &'a str) -> Vec<&'a str> {
    vec![
        "restore",
        "--table",
        TABLE,
        "--confirm",
        TABLE,
        "--incident-id",
        incident,
        "--scope",
        "window",
        "--from",
        &s.from,
        "--to",
        &s.to,
        "--export-bucket",
        BUCKET,
        "--export-prefix",
        "incidents",
        "--yes",
    ]
}

fn assert_reverted(s: &Scenario, now: &BTreeMap<String, Item>) {
    if let Some(diff) = diff_summary(&s.expected, now) {
        panic!("the table is not the expected one: {diff}");
    }
}

#[tokio::test]
async fn a_window_is_undone_and_later_writes_are_kept_as_conflicts() {
    let s = scenario().await;
    let env = [("AWS_ENDPOINT_URL", s.proxy.url())];
    let run = dr_env(&s.moto, &env, &window_args(&s, "bad-deploy"), None);
    run.assert_code(3);
    assert_reverted(&s, &scan_all(&s.moto.client(), TABLE).await);
    assert!(run.stderr.contains("40"), "{}", run.stderr);
    let id = restore_id("bad-deploy");
    let rec = record(&s.moto, &id).expect("the record");
    let t = &rec["targeted"];
    assert_eq!(t["conflicts"], 40, "{t}");
    assert_eq!(
        t["puts"].as_u64().unwrap() + t["deletes"].as_u64().unwrap(),
        260,
        "{t}"
    );
    assert_eq!(t["deletes"], 40, "{t}");
    let conflicts: Vec<&str> = t["conflictKeys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    // Item 100 (written again after the window) is named; item 150 (not) is not.
    let named = |pk: &str, sk: &str| {
        let (pk, sk) = (format!("{{\"S\":\"{pk}\"}}"), format!("{{\"S\":\"{sk}\"}}"));
        conflicts.iter().any(|k| k.contains(&pk) && k.contains(&sk))
    };
    assert!(named("k#00000010", "k#00000000"), "{conflicts:?}");
    assert!(!named("k#00000015", "k#00000000"), "{conflicts:?}");
    let exports = rec["resources"]["exports"].as_array().expect("exports");
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0]["items"], 300, "{}", exports[0]);
    assert!(exports[0]["arn"].as_str().unwrap().contains("/export/"));
    // No Scan of the table and no restored table: the export named every key.
    assert_eq!(s.proxy.injected().count("Scan"), 0);
    assert_eq!(s.proxy.injected().count("RestoreTableToPointInTime"), 0);
}

#[tokio::test]
async fn a_damaged_export_file_writes_nothing() {
    let s = scenario().await;
    let before = scan_all(&s.moto.client(), TABLE).await;
    let writes =
        || ["PutItem", "DeleteItem", "BatchWriteItem"].map(|op| s.proxy.injected().count(op));
    let writes_before = writes();
    s.proxy.history().corrupt_next_export();
    let env = [("AWS_ENDPOINT_URL", s.proxy.url())];
    let run = dr_env(&s.moto, &env, &window_args(&s, "damaged"), None);
    run.assert_code(1);
    assert!(run.stderr.contains("MD5"), "{}", run.stderr);
    assert_eq!(writes(), writes_before, "no write reached the table");
    let after = scan_all(&s.moto.client(), TABLE).await;
    assert_eq!(diff_summary(&before, &after), None);
}

#[tokio::test]
async fn a_killed_revert_resumes_exactly() {
    let s = scenario().await;
    let env = [("AWS_ENDPOINT_URL", s.proxy.url())];
    let mut args = window_args(&s, "killed");
    args.extend(["--max-write-rate", "40"]);
    let mut child = spawn_env(&s.moto, &env, &args);
    let id = restore_id("killed");
    until_copying(&s.moto, &id, &mut child).await;
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let rec = record(&s.moto, &id).expect("the record");
    assert_eq!(rec["phase"], "copy", "killed mid-revert");
    let run = dr_env(&s.moto, &env, &["resume", &id, "--yes"], None);
    run.assert_code(3);
    assert_reverted(&s, &scan_all(&s.moto.client(), TABLE).await);
    let rec = record(&s.moto, &id).expect("the record");
    assert_eq!(rec["targeted"]["conflicts"], 40, "{}", rec["targeted"]);
    assert_eq!(
        rec["resources"]["exports"].as_array().map(Vec::len),
        Some(1),
        "the resume adopted the recorded export"
    );
    assert_eq!(s.proxy.injected().count("ExportTableToPointInTime"), 1);
}

#[tokio::test]
async fn windows_out_of_bounds_are_refused_before_anything_is_created() {
    let s = scenario().await;
    let env = [("AWS_ENDPOINT_URL", s.proxy.url())];
    let now = SystemTime::now();
    let short = (
        rfc3339(now - Duration::from_secs(3600)),
        rfc3339(now - Duration::from_secs(3000)),
    );
    let before_pitr = (rfc3339(now - Duration::from_secs(5 * 3600)), s.to.clone());
    let future = (s.from.clone(), rfc3339(now + Duration::from_secs(3600)));
    let long = (
        rfc3339(now - Duration::from_secs(3 * 3600 - 60)),
        s.to.clone(),
    );
    for (what, (from, to), says) in [
        ("shorter than 15 minutes", short, "15 minutes"),
        ("before the PITR window", before_pitr, "restorable window"),
        ("ending in the future", future, "future"),
        ("without a bucket", long, "export-bucket"),
    ] {
        let mut args = window_args(&s, "refused");
        args.retain(|a| !matches!(*a, "--export-bucket" | BUCKET) || says != "export-bucket");
        let (f, t) = (
            args.iter().position(|a| *a == "--from").unwrap() + 1,
            args.iter().position(|a| *a == "--to").unwrap() + 1,
        );
        args[f] = &from;
        args[t] = &to;
        let run = dr_env(&s.moto, &env, &args, None);
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
    }
    assert_eq!(s.proxy.injected().count("ExportTableToPointInTime"), 0);
    assert_eq!(s.proxy.injected().count("CreateBackup"), 0);
}

fn restore_id(incident: &str) -> String {
    format!("{incident}.{TABLE}")
}

/// A 72-hour window is three exports of 24 hours, undone from the latest back: an item changed
/// in all three, one only in the last, one inserted in the first and deleted in the last, and
/// two written again after the window (conflicts, kept).
#[tokio::test]
async fn a_72_hour_window_chains_three_exports_and_folds_them() {
    let moto = Emulator::start(Kind::Moto).await;
    let direct = moto.client();
    create_table(&direct, &spec()).await;
    put_all(&direct, TABLE, (0..100).map(|i| item(i, "original"))).await;
    moto.s3("PUT", &format!("/{BUCKET}"), b"");
    let proxy = FaultProxy::with_history(&moto.endpoint(), Faults::none());
    let (client, history) = (proxy.client(), proxy.history());
    let base = SystemTime::now() - Duration::from_secs(80 * 3600);
    let hour = |h: u64| at(base, h * 60);
    history.set_clock(Some(base));
    enable_pitr(&client, TABLE).await;
    let before = scan_all(&direct, TABLE).await;
    let writes: [(u64, std::ops::Range<u64>, &str); 9] = [
        (2, 0..10, "first"),
        (3, 200..210, "inserted"),
        (4, 30..40, "first"),
        (26, 200..210, "changed"),
        (30, 0..10, "second"),
        (40, 35..40, "second"),
        (50, 10..20, "third"),
        (60, 0..10, "third"),
        (65, 35..40, "third"),
    ];
    for (h, range, v) in writes {
        history.set_clock(Some(hour(h)));
        put_all(&client, TABLE, range.map(|i| item(i, v))).await;
    }
    history.set_clock(Some(hour(70)));
    for i in 200..210 {
        let del = client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(spec().key(i)));
        del.send().await.expect("deleted in the last export");
    }
    history.set_clock(Some(hour(75)));
    put_all(&client, TABLE, (30..40).map(|i| item(i, "after"))).await;
    history.set_clock(None);
    let mut expected = before;
    for i in 30..40 {
        expected.insert(key(i), item(i, "after"));
    }
    let (from, to) = (rfc3339(hour(1)), rfc3339(hour(73)));
    let s = Scenario {
        moto,
        proxy,
        from,
        to,
        expected,
    };
    let env = [("AWS_ENDPOINT_URL", s.proxy.url())];
    let mut args = window_args(&s, "three-days");
    args.extend(["--segments", "2"]);
    dr_env(&s.moto, &env, &args, None).assert_code(3);
    assert_reverted(&s, &scan_all(&s.moto.client(), TABLE).await);
    let rec = record(&s.moto, &restore_id("three-days")).expect("the record");
    let exports = rec["resources"]["exports"].as_array().expect("exports");
    assert_eq!(exports.len(), 3, "{exports:?}");
    assert_eq!(rec["targeted"]["conflicts"], 10, "{}", rec["targeted"]);
    assert_eq!(s.proxy.injected().count("ExportTableToPointInTime"), 3);
}
