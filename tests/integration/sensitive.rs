//! A table marked sensitive: its keys and values reach neither the journal, nor the logs, nor
//! stderr; its checkpoints are sealed under the operator's key; its forensic backup can be off.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as A;
use dynamo_dr_testkit::*;

use crate::support::{Run, dr_env, inventory, record, until_copying, write_file};

const KEY_HEX: &str = "8f1c2d3e4a5b69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// An item whose every value is a distinctive secret, remembered in `secrets`.
fn secret_item(i: u64, version: &str, secrets: &mut BTreeSet<String>) -> Item {
    let tag = |what: &str| format!("{what}{:012x}{version}", fastrand::u64(..) >> 16);
    let (key, ssn, note) = (format!("SSNKEY{i:06}x{}", tag("")), tag("SSN"), tag("NOTE"));
    let number = format!(
        "{}",
        700_000_000_000_000 + fastrand::u64(..1_000_000_000_000)
    );
    for s in [&key, &ssn, &note, &number] {
        secrets.insert(s.clone());
    }
    [
        ("id".to_string(), A::S(key)),
        ("ssn".to_string(), A::S(ssn)),
        ("amount".to_string(), A::N(number)),
        (
            "profile".to_string(),
            A::M([("note".to_string(), A::S(note))].into()),
        ),
    ]
    .into()
}

fn keep(run: &Run, seen: &mut String) {
    seen.push_str(&run.stdout);
    seen.push_str(&run.stderr);
}

fn all_text(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_text(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}

/// A key file only its owner can read, as the tool demands.
fn private_key_file(dir: &tempfile::TempDir, name: &str, hex: &str) -> String {
    let path = write_file(dir, name, hex);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sensitive_tables_keys_and_values_reach_no_journal_log_or_stderr() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("DR-TEMP-Ssn-inc-5", Scalar::S);
    let dst = TableSpec::hash_only("Ssn-Live", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    let mut secrets = BTreeSet::new();
    put_all(
        &client,
        &src.name,
        (0..1_500)
            .map(|i| secret_item(i, "a", &mut secrets))
            .collect::<Vec<_>>(),
    )
    .await;
    put_all(
        &client,
        &dst.name,
        (1_000..2_000)
            .map(|i| secret_item(i, "b", &mut secrets))
            .collect::<Vec<_>>(),
    )
    .await;
    let expected = scan_all(&client, &src.name).await;
    let before = scan_all(&client, &dst.name).await;

    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[tables.Ssn]\nname = \"Ssn-Live\"\nsensitive = true\nforensic_backup = false\n",
    );
    let key_file = private_key_file(&dir, "journal.key", KEY_HEX);
    let log = dir.path().join("run.log").display().to_string();
    let mut seen = String::new();
    // The most verbose logging there is: the SDK's own wire-level traces are asked for too.
    let trace = [("RUST_LOG", "trace")];
    let sync = |id: &'static str| {
        vec![
            "--config",
            config.as_str(),
            "-vv",
            "--log-file",
            log.as_str(),
            "sync",
            "--source",
            src.name.as_str(),
            "--dest",
            "Ssn",
            "--confirm",
            "Ssn-Live",
            "--incident-id",
            id,
            "--segments",
            "3",
            "--scan-page-limit",
            "40",
            "--retry-budget",
            "3",
            "--yes",
        ]
    };

    // Without the key nothing starts.
    let refused = dr_env(&dynalite, &trace, &sync("inc-5"), None);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("--journal-key-file"),
        "{}",
        refused.stderr
    );
    assert_eq!(scan_all(&client, &dst.name).await, before);
    keep(&refused, &mut seen);

    // A run stopped mid-copy by throttling past its budget leaves sealed checkpoints behind.
    let slow = Faults {
        latency: 1.0,
        latency_max: Duration::from_millis(30),
        ..Faults::none()
    };
    let proxy = FaultProxy::start(&dynalite.endpoint(), slow.clone());
    let mut args = vec!["--journal-key-file", key_file.as_str()];
    args.extend(sync("inc-5"));
    let stderr_file = dir.path().join("stderr.txt");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dynamo-dr"))
        .envs(dynalite.cli_env())
        .env("AWS_ENDPOINT_URL", proxy.url())
        .env("RUST_LOG", "trace")
        // Colour is off because stderr is no terminal, not because NO_COLOR says so.
        .env_remove("NO_COLOR")
        .current_dir(dir.path())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // To a file: at TRACE the run writes more than a pipe holds before anyone reads it.
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let id = "inc-5.Ssn-Live";
    until_copying(&dynalite, id, &mut child).await;
    proxy.set(Faults {
        throttling: 1.0,
        ..slow
    });
    let mut stopped: Run = child.wait_with_output().expect("wait").into();
    stopped.stderr = std::fs::read_to_string(&stderr_file).expect("stderr");
    stopped.assert_code(1);
    // The SDK's DEBUG lines pass; its TRACE lines, which hold whole responses, do not.
    assert!(
        stopped.stderr.contains("DEBUG") && stopped.stderr.contains("rpc.method=\"Scan\""),
        "verbose logging was on: {}",
        &stopped.stderr[..stopped.stderr.len().min(2000)]
    );
    assert!(
        !stopped.stderr.contains('\x1b'),
        "stderr is not a terminal, so it carries no escape codes"
    );
    keep(&stopped, &mut seen);
    let rec = record(&dynalite, id).expect("record");
    let sealed = rec["copy"]["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter(|s| s["nextKey"]["sealed"].is_string())
        .count();
    assert!(sealed > 0, "no sealed checkpoint: {rec}");

    // The differing keys are named by digest only.
    // The differing keys are named by a keyed digest, which the key's holder can look up.
    let verify = dr_env(
        &dynalite,
        &trace,
        &[
            "--config",
            &config,
            "--journal-key-file",
            &key_file,
            "-vv",
            "verify",
            "--source",
            &src.name,
            "--dest",
            "Ssn-Live",
        ],
        None,
    );
    verify.assert_code(3);
    let digest = verify
        .stderr
        .split("\"key-hmac:")
        .nth(1)
        .and_then(|rest| rest.get(..24))
        .unwrap_or_else(|| panic!("no key digest in {}", verify.stderr));
    keep(&verify, &mut seen);
    let looked_up = expected.values().chain(before.values()).find_map(|item| {
        let key = serde_json::json!({ "id": { "S": item["id"].as_s().expect("id") } });
        let run = dr_env(
            &dynalite,
            &[],
            &[
                "--journal-key-file",
                &key_file,
                "key-digest",
                &key.to_string(),
            ],
            None,
        );
        run.assert_code(0);
        run.stdout.contains(digest).then_some(run.stdout)
    });
    assert!(
        looked_up.is_some(),
        "key-digest finds the key behind {digest}"
    );
    let diff = dr_env(
        &dynalite,
        &[],
        &[
            "--config", &config, "diff", "--source", &src.name, "--dest", "Ssn-Live", "--out",
            "d.jsonl",
        ],
        None,
    );
    diff.assert_code(2);
    keep(&diff, &mut seen);

    // Resuming needs the same key, and then finishes exactly.
    let mut resume = vec![
        "--config",
        config.as_str(),
        "-v",
        "--log-file",
        log.as_str(),
    ];
    resume.extend(["resume", id, "--yes"]);
    let no_key = dr_env(&dynalite, &[], &resume, None);
    no_key.assert_code(2);
    keep(&no_key, &mut seen);
    let wrong = private_key_file(&dir, "wrong.key", &KEY_HEX.replace('8', "9"));
    let mut with_wrong = vec!["--journal-key-file", wrong.as_str()];
    with_wrong.extend(resume.iter().copied());
    let wrong_run = dr_env(&dynalite, &[], &with_wrong, None);
    assert_ne!(wrong_run.code, 0, "a wrong key must not resume");
    assert!(wrong_run.stderr.contains("decrypt"), "{}", wrong_run.stderr);
    keep(&wrong_run, &mut seen);
    let mut with_key = vec!["--journal-key-file", key_file.as_str()];
    with_key.extend(resume.iter().copied());
    let resumed = dr_env(&dynalite, &trace, &with_key, None);
    resumed.assert_code(0);
    keep(&resumed, &mut seen);
    let log_mode = std::fs::metadata(&log).expect("log").permissions().mode() & 0o777;
    assert_eq!(log_mode, 0o600, "the log file is owner-only");
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );

    all_text(&dynalite.journal_dir, &mut seen);
    seen.push_str(&std::fs::read_to_string(&log).expect("log file"));
    assert!(seen.contains("\"inc-5.Ssn-Live\""), "the journal was read");
    let leaked: Vec<&String> = secrets
        .iter()
        .filter(|s| seen.contains(s.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "{} of {} secret values leaked, e.g. {:?}",
        leaked.len(),
        secrets.len(),
        leaked.first()
    );
}

/// The SSN table's resource policy forbids backups: with `forensic_backup = false` the restore
/// takes none, says so, and still restores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forensic_backup_can_be_turned_off_per_table() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Prod-SSNTable");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..200).map(|i| mixed_item(&spec, i))).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[tables.SSNTable]\nname = \"Prod-SSNTable\"\nsensitive = true\nforensic_backup = false\n",
    );
    let run = dr_env(
        &moto,
        &[("DYNAMO_DR_JOURNAL_KEY", KEY_HEX)],
        &[
            "--config",
            &config,
            "restore",
            "--table",
            "SSNTable",
            "--incident-id",
            "inc-6",
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-SSNTable",
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    assert!(
        run.stderr.contains("NO forensic backup"),
        "the plan says so: {}",
        run.stderr
    );
    assert!(
        run.stdout.contains("none (forensic_backup = false"),
        "{}",
        run.stdout
    );
    let after = inventory(&client).await;
    assert!(after.backups.is_empty(), "{:?}", after.backups);
    assert_eq!(after.tables, BTreeSet::from([spec.name.clone()]));
    let status = dr_env(&moto, &[], &["status", "inc-6.Prod-SSNTable"], None);
    assert!(
        status.stdout.contains("forensic backup skipped"),
        "{}",
        status.stdout
    );
}

fn kms_client(moto: &Emulator) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(
            dynamo_dr_testkit::emulator::REGION,
        ))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// With `--journal-kms-key`, a sensitive run's checkpoints are sealed under a data key that KMS
/// wraps into the record: the resume needs no key file, only KMS, and the wrapped key is bound to
/// its execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_wrapped_journal_key_lets_any_operator_resume_without_a_key_file() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let kms = kms_client(&moto);
    let kms_key = kms
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .map(|m| m.arn().unwrap_or_default().to_string())
        .expect("key ARN");
    let src = TableSpec::hash_only("Ssn-Restored", Scalar::S);
    let dst = TableSpec::hash_only("Ssn-Live", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    let mut secrets = BTreeSet::new();
    let items: Vec<Item> = (0..600)
        .map(|i| secret_item(i, "a", &mut secrets))
        .collect();
    put_all(&client, &src.name, items).await;
    let expected = scan_all(&client, &src.name).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[tables.Ssn]\nname = \"Ssn-Live\"\nsensitive = true\n",
    );
    let slow = Faults {
        latency: 1.0,
        latency_max: Duration::from_millis(60),
        ..Faults::none()
    }
    .only(&["BatchWriteItem"]);
    let proxy = FaultProxy::start(&moto.endpoint(), slow.clone());
    let id = "inc-6.Ssn-Live";
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dynamo-dr"))
        .envs(moto.cli_env())
        .env("AWS_ENDPOINT_URL", proxy.url())
        .env_remove("DYNAMO_DR_JOURNAL_KEY")
        .current_dir(dir.path())
        .args([
            "--config",
            &config,
            "--journal-kms-key",
            &kms_key,
            "sync",
            "--source",
            &src.name,
            "--dest",
            "Ssn",
            "--confirm",
            "Ssn-Live",
            "--incident-id",
            "inc-6",
            "--segments",
            "2",
            "--scan-page-limit",
            "30",
            "--retry-budget",
            "3",
            "--yes",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    until_copying(&moto, id, &mut child).await;
    proxy.set(Faults {
        throttling: 1.0,
        ..slow
    });
    let stopped: Run = child.wait_with_output().expect("wait").into();
    stopped.assert_code(1);

    let rec = record(&moto, id).expect("record");
    assert_eq!(rec["dataKey"]["kmsKeyId"], kms_key.as_str(), "{rec}");
    let sealed = rec["copy"]["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .filter(|s| s["nextKey"]["sealed"].is_string())
        .count();
    assert!(sealed > 0, "no sealed checkpoint: {rec}");
    let mut journal = String::new();
    all_text(&moto.journal_dir, &mut journal);
    let leaked: Vec<_> = secrets.iter().filter(|s| journal.contains(*s)).collect();
    assert!(leaked.is_empty(), "in the journal: {leaked:?}");

    // The wrapped key opens only for its own execution.
    let wrapped: dynamo_dr::journal::WrappedKey =
        serde_json::from_value(rec["dataKey"].clone()).expect("wrapped key");
    let tool_kms = kms_client(&moto);
    assert!(
        dynamo_dr::journal::envelope::unwrap(&tool_kms, &wrapped, id)
            .await
            .is_ok()
    );
    assert!(
        dynamo_dr::journal::envelope::unwrap(&tool_kms, &wrapped, "inc-7.Ssn-Live")
            .await
            .is_err()
    );

    // Another operator, with no key file and no KMS flag: KMS unwraps the key from the record.
    proxy.set(Faults::none());
    let resumed = dr_env(
        &moto,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &["--config", &config, "resume", id, "--yes"],
        None,
    );
    resumed.assert_code(0);
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );
    let reused: u64 = record(&moto, id).expect("record")["copy"]["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["rewrittenPages"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        reused <= 2,
        "resumed from the sealed checkpoints: {reused} pages re-written"
    );

    // A key file and a KMS key together are ambiguous: refused before anything.
    let both = dr_env(
        &moto,
        &[("DYNAMO_DR_JOURNAL_KEY", KEY_HEX)],
        &["--journal-kms-key", &kms_key, "executions"],
        None,
    );
    both.assert_code(2);
    assert!(both.stderr.contains("ambiguous"), "{}", both.stderr);
}
