//! Targeted recovery on moto, from a backup (moto's backups are real snapshots): after the
//! restore point a bad job deleted 300 items and modified 200, then the application wrote 100
//! good new items and modified 50 others. Each scope puts back exactly its part and leaves every
//! other item as it is.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::*;

use crate::support::{dr, dr_env, record, spawn, until_copying, write_file};

const TABLE: &str = "Ledger";
const ITEMS: u64 = 1000;
/// The partition key `partition` restores: items 30..39 and ten new ones.
const PARTITION: u64 = 3;

fn spec() -> TableSpec {
    // Ten items share each partition key: `k#00000003` holds items 30 to 39.
    TableSpec {
        gsi: false,
        ..TableSpec::seed_like(TABLE)
    }
}

fn item(i: u64, v: &str) -> Item {
    let mut item = sized_item(&spec(), i, 100);
    item.insert("v".into(), AttributeValue::S(v.into()));
    item
}

/// Deleted by the bad job: the first three items of every partition key.
fn deleted(i: u64) -> bool {
    i % 10 < 3
}

/// Modified by the bad job: the next two of every partition key.
fn modified(i: u64) -> bool {
    matches!(i % 10, 3 | 4)
}

/// Modified by the application afterwards: the sixth item of the first 50 partition keys.
fn app_modified(i: u64) -> bool {
    i % 10 == 5 && i < 500
}

/// Written by the application afterwards: ten new items under each of the first ten keys.
fn app_new() -> Vec<Item> {
    (0..10u64)
        .flat_map(|p| {
            (0..10u64).map(move |j| {
                let mut item = item(p * 10, "new");
                item.insert("sk".into(), AttributeValue::S(format!("new#{j}")));
                item
            })
        })
        .collect()
}

struct Scenario {
    moto: Emulator,
    backup: String,
    /// The table at the restore point, and as the incident left it.
    before: BTreeMap<String, Item>,
    damaged: BTreeMap<String, Item>,
}

async fn scenario() -> Scenario {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    create_table(&client, &spec()).await;
    put_all(&client, TABLE, (0..ITEMS).map(|i| item(i, "original"))).await;
    let backup = create_backup(&client, TABLE, "restore-point").await;
    let before = scan_all(&client, TABLE).await;
    for i in (0..ITEMS).filter(|i| deleted(*i)) {
        client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(spec().key(i)))
            .send()
            .await
            .expect("the bad job's delete");
    }
    let bad = (0..ITEMS).filter(|i| modified(*i)).map(|i| item(i, "bad"));
    put_all(&client, TABLE, bad).await;
    put_all(&client, TABLE, app_new()).await;
    let good = (0..ITEMS)
        .filter(|i| app_modified(*i))
        .map(|i| item(i, "app"));
    put_all(&client, TABLE, good).await;
    let damaged = scan_all(&client, TABLE).await;
    assert_eq!(damaged.len(), 1000 - 300 + 100);
    Scenario {
        moto,
        backup,
        before,
        damaged,
    }
}

fn key_of(i: u64) -> String {
    key_string(&["pk", "sk"], &spec().key(i))
}

fn restore_args<'a>(backup: &'a str, incident: &'a str, scope: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        "--table",
        TABLE,
        "--incident-id",
        incident,
        "--backup-arn",
        backup,
        "--confirm",
        TABLE,
        "--yes",
    ];
    args.extend_from_slice(scope);
    args
}

/// Where the table must end: as the incident left it, with `keys` at their restore-point versions
/// (absent where they did not exist then).
fn expected(s: &Scenario, keys: impl Fn(&str, Option<&Item>) -> bool) -> BTreeMap<String, Item> {
    let mut out = s.damaged.clone();
    let all: Vec<String> = s.before.keys().chain(s.damaged.keys()).cloned().collect();
    for k in all {
        if keys(&k, s.damaged.get(&k)) {
            match s.before.get(&k) {
                Some(item) => out.insert(k, item.clone()),
                None => out.remove(&k),
            };
        }
    }
    out
}

fn assert_table(actual: &BTreeMap<String, Item>, expected: &BTreeMap<String, Item>) {
    if let Some(diff) = diff_summary(expected, actual) {
        panic!("the table is not as expected: {diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_puts_back_exactly_the_deleted_items() {
    let s = scenario().await;
    let run = dr(
        &s.moto,
        &restore_args(
            &s.backup,
            "inc-m",
            &["--scope", "missing", "--output", "json"],
        ),
        None,
    );
    run.assert_code(0);
    assert_eq!(run.json()["scope"], "missing", "{}", run.stdout);
    assert_eq!(run.json()["copiedItems"], 300, "{}", run.stdout);
    assert_eq!(run.json()["deletedItems"], 0, "{}", run.stdout);
    let live = scan_all(&s.moto.client(), TABLE).await;
    assert_table(&live, &expected(&s, |_, now| now.is_none()));
    let rec = record(&s.moto, &format!("inc-m.{TABLE}")).expect("record");
    assert_eq!(rec["targeted"]["puts"], 300, "{:#}", rec["targeted"]);
    assert_eq!(rec["targeted"]["deletes"], 0);
    assert_eq!(rec["targeted"]["conflicts"], 0);
    assert_eq!(rec["verification"]["passed"], true);
    assert!(
        rec["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["what"]
                .as_str()
                .unwrap_or_default()
                .contains("recovery mode is not required")),
        "{:#}",
        rec["events"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_restore_exactly_the_listed_items_and_a_racing_write_is_kept_as_a_conflict() {
    let s = scenario().await;
    let dir = tempfile::tempdir().expect("dir");
    // Half as plain keys, half as `verify --keys-out` lines.
    let lines: Vec<String> = (0..ITEMS)
        .filter(|i| modified(*i))
        .enumerate()
        .map(|(n, i)| match n % 2 {
            0 => key_of(i),
            _ => format!(r#"{{"kind":"changed","key":{}}}"#, key_of(i)),
        })
        .collect();
    assert_eq!(lines.len(), 200);
    let keys = write_file(&dir, "keys.jsonl", &(lines.join("\n") + "\n"));
    let scope = ["--scope", "keys", "--keys", keys.as_str()];

    let mut dry = restore_args(&s.backup, "inc-k", &scope);
    dry.retain(|a| *a != "--yes");
    dry.push("--dry-run");
    let plan = dr(&s.moto, &dry, None);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains("table (TARGETED)") && plan.stdout.contains("200 keys from"),
        "{}",
        plan.stdout
    );

    // The application writes three of the keys between the tool's read and its write.
    let proxy = FaultProxy::start(
        &s.moto.endpoint(),
        Faults {
            race: 3,
            ..Faults::none()
        },
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let report_dir = dir.path().display().to_string();
    let mut args = restore_args(&s.backup, "inc-k", &scope);
    args.extend(["--report-dir", report_dir.as_str()]);
    let raced = dr_env(&s.moto, &env, &args, None);
    raced.assert_code(3);
    assert!(
        raced.stderr.contains("3 item(s) of Ledger changed"),
        "{}",
        raced.stderr
    );
    let live = scan_all(&s.moto.client(), TABLE).await;
    let kept: Vec<&String> = live
        .iter()
        .filter(|(_, i)| i.contains_key("raced"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept.len(), 3, "the application's writes are kept");
    let listed = |k: &str, _: Option<&Item>| lines.iter().any(|l| l.contains(k));
    let mut want = expected(&s, |k, now| {
        listed(k, now) && !kept.contains(&&k.to_string())
    });
    for k in &kept {
        want.insert((*k).clone(), live[*k].clone());
    }
    assert_table(&live, &want);
    let report =
        std::fs::read_to_string(dir.path().join("dynamo-dr-report-inc-k.md")).expect("the report");
    assert!(report.contains("3 conflict(s)"), "{report}");
    for k in &kept {
        assert!(
            report.contains(k.as_str()),
            "{k} not in the report:\n{report}"
        );
    }

    // A rerun plans them again: now every listed key is at its restore-point version.
    let resume = dr_env(
        &s.moto,
        &env,
        &["resume", &format!("inc-k.{TABLE}"), "--yes"],
        None,
    );
    resume.assert_code(0);
    let live = scan_all(&s.moto.client(), TABLE).await;
    assert_table(&live, &expected(&s, listed));
    assert_eq!(
        proxy.injected().count("Scan"),
        0,
        "a keys scope reads by key only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_restores_one_partition_key_by_query() {
    let s = scenario().await;
    let value = format!("k#{PARTITION:08}");
    // Flags of another scope are refused before anything is read.
    for wrong in [
        vec!["--partition-key", value.as_str()],
        vec!["--scope", "partition"],
        vec![
            "--scope",
            "partition",
            "--partition-key",
            &value,
            "--strategy",
            "diff",
        ],
    ] {
        let run = dr(&s.moto, &restore_args(&s.backup, "inc-p", &wrong), None);
        run.assert_code(2);
    }
    let mut dry = restore_args(
        &s.backup,
        "inc-p",
        &["--scope", "partition", "--partition-key", &value],
    );
    dry.push("--dry-run");
    let plan = dr(&s.moto, &dry, None);
    plan.assert_code(0);
    // 10 items, 3 deleted since, 10 new.
    assert!(
        plan.stdout
            .contains("17 live item(s) under the value(s) now"),
        "{}",
        plan.stdout
    );
    let proxy = FaultProxy::start(&s.moto.endpoint(), Faults::none());
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let run = dr_env(
        &s.moto,
        &env,
        &restore_args(
            &s.backup,
            "inc-p",
            &["--scope", "partition", "--partition-key", &value],
        ),
        None,
    );
    run.assert_code(0);
    let live = scan_all(&s.moto.client(), TABLE).await;
    let under = format!(r#""pk":{{"S":"{value}"}}"#);
    assert_table(&live, &expected(&s, |k, _| k.contains(&under)));
    let rec = record(&s.moto, &format!("inc-p.{TABLE}")).expect("record");
    // 3 deleted and 2 modified put back, 1 application change reverted, 10 new items deleted.
    assert_eq!(rec["targeted"]["puts"], 6, "{:#}", rec["targeted"]);
    assert_eq!(rec["targeted"]["deletes"], 10, "{:#}", rec["targeted"]);
    assert!(proxy.injected().count("Query") >= 2);
    // Only the restore's own check phase may scan: the temporary table and the live table are
    // never scanned for the scope itself.
    assert_eq!(proxy.injected().count("Scan"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_restore_killed_mid_copy_resumes_exactly() {
    let s = scenario().await;
    let id = format!("inc-r.{TABLE}");
    let args = restore_args(
        &s.backup,
        "inc-r",
        &[
            "--scope",
            "missing",
            "--scan-page-limit",
            "10",
            "--segments",
            "2",
        ],
    );
    let mut child = spawn(&s.moto, &args);
    until_copying(&s.moto, &id, &mut child).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let resume = dr(&s.moto, &["resume", &id, "--yes"], None);
    resume.assert_code(0);
    let live = scan_all(&s.moto.client(), TABLE).await;
    assert_table(&live, &expected(&s, |_, now| now.is_none()));
    let rec = record(&s.moto, &id).expect("record");
    assert_eq!(rec["targeted"]["conflicts"], 0);
    assert_eq!(rec["verification"]["passed"], true);
}

/// The moto S3 bucket of this test's keys files, through the SDK's own client.
async fn keys_object(moto: &Emulator, key: &str, body: String) -> String {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
        .region(aws_sdk_s3::config::Region::new(emulator::REGION))
        .endpoint_url(moto.endpoint())
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    // Created by the first call; moto answers the second with the bucket the caller owns.
    let _ = s3.create_bucket().bucket("dr-keys").send().await;
    s3.put_object()
        .bucket("dr-keys")
        .key(key)
        .body(body.into_bytes().into())
        .send()
        .await
        .expect("keys object");
    format!("s3://dr-keys/{key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_file_in_s3_is_read_under_keys_location_and_refused_elsewhere() {
    let s = scenario().await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dr.toml",
        &format!(
            "[tables.Ledger]\nname = \"{TABLE}\"\nkeys_location = \"s3://dr-keys/incidents/\"\n"
        ),
    );
    let lines: String = (0..ITEMS)
        .filter(|i| modified(*i))
        .map(|i| key_of(i) + "\n")
        .collect();
    let outside = keys_object(&s.moto, "elsewhere/keys.jsonl", lines.clone()).await;
    let inside = keys_object(&s.moto, "incidents/inc-s3.jsonl", lines).await;
    let with = |uri: &str| {
        let mut args = vec!["--config", config.as_str()];
        args.extend(restore_args(
            &s.backup,
            "inc-s3",
            &["--scope", "keys", "--keys", uri],
        ));
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let refused = with(&outside);
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let run = dr(&s.moto, &refused, None);
    run.assert_code(2);
    assert!(run.stderr.contains("keys_location"), "{}", run.stderr);
    assert!(
        record(&s.moto, &format!("inc-s3.{TABLE}")).is_none(),
        "nothing recorded"
    );
    assert_table(&scan_all(&s.moto.client(), TABLE).await, &s.damaged);

    let accepted = with(&inside);
    let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
    dr(&s.moto, &accepted, None).assert_code(0);
    let live = scan_all(&s.moto.client(), TABLE).await;
    let want = expected(&s, |k, _| (0..ITEMS).any(|i| modified(i) && key_of(i) == k));
    assert_table(&live, &want);
    let rec = record(&s.moto, &format!("inc-s3.{TABLE}")).expect("record");
    assert_eq!(
        rec["inputs"]["scope"]["file"], inside,
        "{:#}",
        rec["inputs"]
    );
    assert_eq!(rec["inputs"]["scope"]["keys"], 200);
}
