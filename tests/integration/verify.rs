//! Content verification and the forensic diff on dynalite.

use dynamo_dr_testkit::*;

use crate::support::dr;

async fn pair(dynalite: &Emulator) -> (TableSpec, TableSpec) {
    let client = dynalite.client();
    let (a, b) = (
        TableSpec::seed_like("Verify-A"),
        TableSpec::seed_like("Verify-B"),
    );
    create_table(&client, &a).await;
    create_table(&client, &b).await;
    put_all(&client, &a.name, (0..1500).map(|i| mixed_item(&a, i))).await;
    put_all(&client, &b.name, (0..1500).map(|i| mixed_item(&b, i))).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_equality_and_names_every_differing_key() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (a, b) = pair(&dynalite).await;
    let equal = dr(
        &dynalite,
        &[
            "verify", "--source", &a.name, "--dest", &b.name, "--output", "json",
        ],
        None,
    );
    equal.assert_code(0);
    assert_eq!(equal.json()["items"], 1500);

    // 3 deleted, 4 changed, 5 added: `corrupt` with n = 3 deletes 3, changes 3, adds 3; one more
    // change and two more additions make the counts distinct.
    corrupt(&client, &b, 1500, 3).await;
    let mut changed = mixed_item(&b, 100);
    changed.insert(
        "str".into(),
        aws_sdk_dynamodb::types::AttributeValue::S("tampered".into()),
    );
    put_all(
        &client,
        &b.name,
        [
            changed,
            mixed_item(&b, 20_000_000),
            mixed_item(&b, 20_000_001),
        ],
    )
    .await;

    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys.jsonl");
    let keys_arg = keys.display().to_string();
    let run = dr(
        &dynalite,
        &[
            "verify",
            "--source",
            &a.name,
            "--dest",
            &b.name,
            "--keys-out",
            &keys_arg,
        ],
        None,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("3 missing, 5 extra, 4 changed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("k#00000000"),
        "the message names keys: {}",
        run.stderr
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&keys)
        .expect("keys file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 12);
    let count = |k: &str| lines.iter().filter(|l| l["kind"] == k).count();
    assert_eq!(
        (count("missing"), count("extra"), count("changed")),
        (3, 5, 4)
    );
    assert!(
        lines
            .iter()
            .all(|l| l["key"]["pk"]["S"].is_string() && l["key"]["sk"]["S"].is_string()),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_exports_what_differs_with_both_versions() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let (a, b) = pair(&dynalite).await;
    corrupt(&client, &b, 1500, 2).await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("diff.jsonl");
    let out_arg = out.display().to_string();
    let run = dr(
        &dynalite,
        &[
            "diff", "--source", &a.name, "--dest", &b.name, "--out", &out_arg, "--output", "json",
        ],
        None,
    );
    run.assert_code(0);
    let summary = run.json();
    assert_eq!(
        (
            summary["onlyInSource"].as_u64(),
            summary["onlyInDest"].as_u64(),
            summary["changed"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("diff")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines {
        match l["kind"].as_str() {
            Some("only-in-source") => assert!(l["source"].is_object() && l["dest"].is_null()),
            Some("only-in-dest") => assert!(l["dest"].is_object() && l["source"].is_null()),
            Some("changed") => {
                assert_eq!(l["dest"]["str"]["S"], "CORRUPTED", "{l}");
                assert_ne!(l["source"]["str"], l["dest"]["str"]);
                // Every attribute type survives the DynamoDB JSON export.
                for t in [
                    ("nums", "NS"),
                    ("bins", "BS"),
                    ("map", "M"),
                    ("list", "L"),
                    ("flag", "BOOL"),
                    ("nothing", "NULL"),
                    ("bin", "B"),
                ] {
                    assert!(!l["source"][t.0][t.1].is_null(), "{} missing in {l}", t.0);
                }
            }
            other => panic!("unexpected kind {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ends_with_content_verification_unless_told_not_to() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let (a, b) = pair(&dynalite).await;
    let sync = |incident: &str, extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--source",
            &a.name,
            "--dest",
            &b.name,
            "--confirm",
            &b.name,
            "--incident-id",
            incident,
            "--yes",
        ];
        args.extend(extra);
        dr(&dynalite, &args, None)
    };
    sync("v1", &[]).assert_code(0);
    let status = dr(&dynalite, &["status", &format!("v1.{}", b.name)], None);
    assert!(
        status
            .stdout
            .contains("verified: both tables hold the same 1500 items"),
        "{}",
        status.stdout
    );
    sync("v2", &["--no-verify"]).assert_code(0);
    let status = dr(&dynalite, &["status", &format!("v2.{}", b.name)], None);
    assert!(
        status.stdout.contains("content not verified"),
        "{}",
        status.stdout
    );
}
