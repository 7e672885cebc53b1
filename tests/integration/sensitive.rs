//! A table marked sensitive: its keys and values reach neither the journal, nor the logs, nor
//! stderr; its checkpoints are sealed under the operator's key; its forensic backup can be off.

use std::collections::BTreeSet;
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
    let key_file = write_file(&dir, "journal.key", KEY_HEX);
    let log = dir.path().join("run.log").display().to_string();
    let mut seen = String::new();
    let sync = |id: &'static str| {
        vec![
            "--config",
            config.as_str(),
            "-v",
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
    let refused = dr_env(&dynalite, &[], &sync("inc-5"), None);
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
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dynamo-dr"))
        .envs(dynalite.cli_env())
        .env("AWS_ENDPOINT_URL", proxy.url())
        .current_dir(dir.path())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let id = "inc-5.Ssn-Live";
    until_copying(&dynalite, id, &mut child).await;
    proxy.set(Faults {
        throttling: 1.0,
        ..slow
    });
    let stopped: Run = child.wait_with_output().expect("wait").into();
    stopped.assert_code(1);
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
    let verify = dr_env(
        &dynalite,
        &[],
        &[
            "--config", &config, "verify", "--source", &src.name, "--dest", "Ssn-Live",
        ],
        None,
    );
    verify.assert_code(3);
    assert!(verify.stderr.contains("key-sha256:"), "{}", verify.stderr);
    keep(&verify, &mut seen);
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
    let wrong = write_file(&dir, "wrong.key", &KEY_HEX.replace('8', "9"));
    let mut with_wrong = vec!["--journal-key-file", wrong.as_str()];
    with_wrong.extend(resume.iter().copied());
    let wrong_run = dr_env(&dynalite, &[], &with_wrong, None);
    assert_ne!(wrong_run.code, 0, "a wrong key must not resume");
    assert!(wrong_run.stderr.contains("decrypt"), "{}", wrong_run.stderr);
    keep(&wrong_run, &mut seen);
    let mut with_key = vec!["--journal-key-file", key_file.as_str()];
    with_key.extend(resume.iter().copied());
    let resumed = dr_env(&dynalite, &[], &with_key, None);
    resumed.assert_code(0);
    keep(&resumed, &mut seen);
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
