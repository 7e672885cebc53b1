//! `iam-policy`, `completions` and `man`: no AWS calls, so no emulator.

use assert_cmd::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::cargo_bin("dynamo-dr")
        .expect("binary")
        .current_dir(dir.path())
        .env_remove("DYNAMO_DR_JOURNAL")
        .env_remove("DYNAMO_DR_JOURNAL_KEY")
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_restore_policy_parses_and_deletes_only_the_tables_temporary_copies() {
    let (code, stdout, stderr) = run(&[
        "--region",
        "eu-west-1",
        "--journal",
        "dynamodb://dr-journal",
        "iam-policy",
        "--table",
        "Orders",
        "--account",
        "123456789012",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let policy: serde_json::Value = serde_json::from_str(&stdout).expect("policy JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("statements");
    let arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/";
    let mut resources = std::collections::BTreeSet::new();
    for s in statements {
        for a in s["Action"].as_array().expect("actions") {
            let a = a.as_str().expect("action");
            let rs: Vec<&str> = s["Resource"]
                .as_array()
                .expect("resources")
                .iter()
                .map(|r| r.as_str().expect("resource"))
                .collect();
            if s["Effect"] == "Deny" {
                // What only tables whose names continue `Orders.` or end `.Orders` own: their
                // copies and their journal items. Never this role's.
                let theirs = [
                    format!("{arn}DR-TEMP-Orders.*.*"),
                    format!("{arn}dr-journal"),
                ];
                assert!(rs.len() == 1 && theirs.contains(&rs[0].to_string()), "{s}");
                continue;
            }
            if a == "dynamodb:DeleteTable" {
                assert_eq!(rs, [format!("{arn}DR-TEMP-Orders.*")]);
            }
            resources.extend(rs.into_iter().map(str::to_string));
        }
    }
    let expected: std::collections::BTreeSet<String> = [
        format!("{arn}Orders"),
        format!("{arn}Orders/backup/*"),
        format!("{arn}DR-TEMP-Orders.*"),
        format!("{arn}dr-journal"),
        "*".to_string(),
    ]
    .into();
    assert_eq!(resources, expected);
}

#[test]
fn iam_policy_refuses_what_it_cannot_scope() {
    let (code, _, stderr) = run(&["iam-policy"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--recovery-mode"), "{stderr}");
    let (code, _, stderr) = run(&["iam-policy", "--table", "Orders", "--account", "12345"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("12 digits"), "{stderr}");
}

#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run(&["completions", shell]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("recovery-mode"), "{shell}: {stdout}");
    }
}

#[test]
fn a_tables_kms_key_is_granted_through_dynamodb_only_and_a_bad_arn_is_refused() {
    let key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (code, stdout, stderr) = run(&[
        "--region",
        "eu-west-1",
        "iam-policy",
        "--table",
        "Orders",
        "--kms-key",
        key,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let policy: serde_json::Value = serde_json::from_str(&stdout).expect("policy JSON");
    let kms = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["Sid"] == "TableKmsKeys")
        .expect("KMS statement");
    assert_eq!(kms["Resource"], serde_json::json!([key]));
    assert_eq!(
        kms["Condition"]["StringEquals"]["kms:ViaService"],
        "dynamodb.eu-west-1.amazonaws.com"
    );
    let (code, _, stderr) = run(&[
        "iam-policy",
        "--table",
        "Orders",
        "--kms-key",
        "alias/aws/dynamodb",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a KMS key ARN"), "{stderr}");
}

#[test]
fn man_pages_are_written_for_every_subcommand() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("man1");
    let (code, _, stderr) = run(&["man", "--dir", &out.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    let top = std::fs::read_to_string(out.join("dynamo-dr.1")).expect("dynamo-dr.1");
    assert!(
        top.contains("An incident, in order"),
        "the runbook is in the page"
    );
    let restore = std::fs::read_to_string(out.join("dynamo-dr-restore.1")).expect("restore page");
    assert!(restore.contains("report\\-dir"), "{restore}");
    assert!(out.join("dynamo-dr-report.1").exists());
}
