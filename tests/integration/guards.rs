//! The guard rails of "Safety by provenance" that need no restore: exclusions for every command,
//! owner-only files, IAM refusals, backup ARNs of another table, the PITR window's edge, and a
//! closed pipe.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use dynamo_dr_testkit::*;

use crate::support::{Run, dr, inventory, write_file};

const SECRET: &str = "SSN-123-45-6789";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every command that reads or writes a table refuses an excluded one, as source or destination,
/// and by a name derived from it; it prints none of its keys and writes no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_table_is_refused_by_every_command_that_reads_or_writes_it() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let ssn = TableSpec::hash_only("Prod-SSN", Scalar::S);
    let copy = TableSpec::hash_only("DR-TEMP-Prod-SSN.inc-1", Scalar::S);
    let other = TableSpec::hash_only("Scratch", Scalar::S);
    for t in [&ssn, &copy, &other] {
        create_table(&client, t).await;
    }
    let item = |v: &str| -> Item {
        [(
            "id".to_string(),
            aws_sdk_dynamodb::types::AttributeValue::S(v.into()),
        )]
        .into()
    };
    put_all(&client, &ssn.name, [item(SECRET)]).await;
    put_all(&client, &other.name, [item("other")]).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[tables.SSN]\nname = \"Prod-SSN\"\nsensitive = true\nexcluded = \"holds SSNs; security review pending\"\n\
         [tables.Scratch]\nname = \"Scratch\"\n",
    );
    let out = dir.path().join("diff.jsonl");
    let out = out.to_str().expect("path");
    let cases: Vec<Vec<&str>> = vec![
        vec!["verify", "--source", "Scratch", "--dest", "Prod-SSN"],
        vec!["verify", "--source", "Prod-SSN", "--dest", "Scratch"],
        vec!["verify", "--source", &copy.name, "--dest", "Scratch"],
        vec![
            "diff", "--source", "Scratch", "--dest", "Prod-SSN", "--out", out,
        ],
        vec!["diff", "--source", "SSN", "--dest", "Scratch", "--out", out],
        vec![
            "sync",
            "--source",
            "Prod-SSN",
            "--dest",
            "Scratch",
            "--confirm",
            "Scratch",
            "--yes",
        ],
        vec![
            "sync",
            "--source",
            "Scratch",
            "--dest",
            "SSN",
            "--confirm",
            "Prod-SSN",
            "--yes",
        ],
        vec![
            "restore",
            "--table",
            "SSN",
            "--incident-id",
            "i",
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-SSN",
            "--dry-run",
        ],
    ];
    let before = scan_all(&client, &other.name).await;
    for case in cases {
        let mut argv = vec!["--config", config.as_str()];
        argv.extend(&case);
        let run = dr(&dynalite, &argv, None);
        run.assert_code(2);
        assert!(
            run.stderr.contains("holds SSNs; security review pending"),
            "{case:?}: the configured reason: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
            "{case:?} printed the excluded table's key"
        );
        assert!(!Path::new(out).exists(), "{case:?} wrote a file");
    }
    assert_eq!(scan_all(&client, &other.name).await, before);
}

/// Whether `text` shows an instant with more than three fractional digits (`…:25.549000024Z`).
fn has_long_fraction(text: &str) -> bool {
    text.split('Z').any(|before| {
        let digits = before
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .count();
        digits > 3 && before[..before.len() - digits].ends_with('.')
    })
}

/// Runs `dynamo-dr` under `sh` with a permissive umask, as a careless shell profile would have it.
fn dr_umask(emulator: &Emulator, cwd: &Path, args: &[&str]) -> Run {
    let bin = assert_cmd::cargo::cargo_bin("dynamo-dr");
    let mut cmd = assert_cmd::Command::new("sh");
    cmd.current_dir(cwd)
        .envs(emulator.cli_env())
        .env_remove("RUST_LOG")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(bin)
        .args(args);
    cmd.write_stdin("");
    cmd.output().expect("run").into()
}

/// Everything the tool writes is owner-only whatever the umask: journal, leases, reports,
/// exports and logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_the_tool_writes_is_owner_only() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("Modes-Src", Scalar::S);
    let dst = TableSpec::hash_only("Modes-Dst", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..50).map(|i| mixed_item(&src, i))).await;
    let dir = tempfile::tempdir().expect("dir");
    let journal = dir.path().join("journal");
    let reports = dir.path().join("reports");
    let log = dir.path().join("run.log");
    let keys = dir.path().join("keys.jsonl");
    let diff = dir.path().join("diff.jsonl");
    let (journal_s, log_s) = (journal.to_str().unwrap(), log.to_str().unwrap());
    let common = ["--journal", journal_s, "--log-file", log_s];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |argv: Vec<String>| {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        dr_umask(&dynalite, dir.path(), &argv)
    };
    run(with(&[
        "diff",
        "--source",
        &src.name,
        "--dest",
        &dst.name,
        "--out",
        diff.to_str().unwrap(),
    ]))
    .assert_code(0);
    run(with(&[
        "verify",
        "--source",
        &src.name,
        "--dest",
        &dst.name,
        "--keys-out",
        keys.to_str().unwrap(),
    ]))
    .assert_code(3);
    run(with(&[
        "sync",
        "--source",
        &src.name,
        "--dest",
        &dst.name,
        "--confirm",
        &dst.name,
        "--incident-id",
        "modes",
        "--yes",
    ]))
    .assert_code(0);
    run(with(&[
        "report",
        "modes",
        "--report-dir",
        reports.to_str().unwrap(),
    ]))
    .assert_code(0);
    // People read instants to the millisecond at most; the journal keeps them whole.
    let status = run(with(&["status", "modes.Modes-Dst"]));
    status.assert_code(0);
    assert!(status.stdout.contains("created:"), "{}", status.stdout);
    assert!(
        !has_long_fraction(&status.stdout),
        "status shows instants to the millisecond: {}",
        status.stdout
    );
    let report = std::fs::read_to_string(reports.join("dynamo-dr-report-modes.md")).expect("md");
    assert!(!has_long_fraction(&report), "{report}");
    for file in [&log, &keys, &diff] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&reports), 0o700);
    let mut files = 0;
    for dir in [
        journal.clone(),
        journal.join("executions"),
        journal.join("leases"),
        reports,
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            if entry.path().is_file() {
                files += 1;
                assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
            }
        }
    }
    assert!(
        files >= 3,
        "the record, the lease lock and the reports were checked"
    );
}

/// An IAM policy is refused (exit 2) for a wildcard KMS key, a region that is not one, no region
/// at all, and an environment whose function prefix would match every function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_policy_refuses_wildcards_and_a_missing_region() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[environments.Prod]\nfunction_prefix = \"\"\n",
    );
    for (args, says) in [
        (
            vec![
                "iam-policy",
                "--table",
                "Tab",
                "--kms-key",
                "arn:aws:kms:us-east-1:123456789012:key/*",
            ],
            "not a KMS key ARN",
        ),
        (
            vec!["--region", "*", "iam-policy", "--table", "Tab"],
            "not an AWS region",
        ),
        (
            vec!["--region", "us-east", "iam-policy", "--table", "Tab"],
            "not an AWS region",
        ),
        (
            vec![
                "--config",
                &config,
                "iam-policy",
                "--environment",
                "Prod",
                "--recovery-mode",
            ],
            "would match every function",
        ),
        (
            vec!["iam-policy", "--table", "Tab", "--journal-init"],
            "--journal dynamodb://",
        ),
    ] {
        let run = dr(&moto, &args, None);
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?} printed a policy");
    }
    // With no region anywhere (no flag, no AWS_REGION, no profile), none is guessed.
    let home = tempfile::tempdir().expect("home");
    let mut cmd = assert_cmd::Command::cargo_bin("dynamo-dr").expect("bin");
    for var in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_CONFIG_FILE",
    ] {
        cmd.env_remove(var);
    }
    let run: Run = cmd
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(home.path())
        .args(["iam-policy", "--table", "Tab"])
        .output()
        .expect("run")
        .into();
    run.assert_code(2);
    assert!(run.stderr.contains("no region"), "{}", run.stderr);
}

/// `dynamo-dr iam-policy | head -1` ends quietly when head closes the pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    let moto = Emulator::start(Kind::Moto).await;
    let bin = assert_cmd::cargo::cargo_bin("dynamo-dr");
    let out = std::process::Command::new("bash")
        .envs(moto.cli_env())
        .arg("-c")
        // Far more than a pipe holds, so the writes go on after head has gone.
        .arg(
            "tables=$(for i in $(seq 1 300); do printf -- '--table Tab%03d ' \"$i\"; done); \
             \"$0\" iam-policy $tables --account 123456789012 | head -c 1 >/dev/null; \
             echo \"exit ${PIPESTATUS[0]}\"",
        )
        .arg(bin)
        .output()
        .expect("run");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("exit 0"), "{stdout} {stderr}");
}

/// A backup of another table is refused before any call; so is one of another region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_arn_of_another_table_or_region_is_refused() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let t = TableSpec::seed_like("Arn-Orders");
    create_table(&client, &t).await;
    let before = inventory(&client).await;
    let arn = |table: &str, region: &str| {
        format!(
            "arn:aws:dynamodb:{region}:123456789012:table/{table}/backup/01700000000000-abcd1234"
        )
    };
    let region = moto
        .cli_env()
        .into_iter()
        .find(|(k, _)| k == "AWS_REGION")
        .map(|(_, v)| v)
        .expect("the emulator's region");
    let other_region = if region == "eu-west-1" {
        "us-east-1"
    } else {
        "eu-west-1"
    };
    for (arn, says) in [
        (arn("Arn-Orders-Archive", &region), "not of Arn-Orders"),
        (arn("Arn-Orders", other_region), "region"),
    ] {
        let run = dr(
            &moto,
            &[
                "restore",
                "--table",
                "Arn-Orders",
                "--incident-id",
                "i",
                "--backup-arn",
                &arn,
                "--confirm",
                "Arn-Orders",
                "--yes",
            ],
            None,
        );
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{arn}: {}", run.stderr);
    }
    assert_eq!(inventory(&client).await, before);
}

/// The window's edge as AWS prints it (to the millisecond, rounded: the SDK reads it as a float
/// just below) is judged at the restore's precision, the second. moto's window is one instant,
/// so a sub-second edge has no whole second inside it: refused before anything is made, saying
/// why and what to choose, with the window printed as AWS prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pitr_windows_edge_as_aws_prints_it_is_judged_at_the_second() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let t = TableSpec::seed_like("Edge-Orders");
    create_table(&client, &t).await;
    enable_pitr(&client, &t.name).await;
    let (earliest, _) = pitr_window(&client, &t.name).await;
    let millis = (earliest.as_nanos() + 500_000).div_euclid(1_000_000);
    let edge = jiff::Timestamp::from_millisecond(millis as i64).expect("instant");
    let printed = edge.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let run = dr(
        &moto,
        &[
            "restore",
            "--table",
            &t.name,
            "--incident-id",
            "edge",
            "--pitr-time",
            &printed,
            "--confirm",
            &t.name,
            "--dry-run",
        ],
        None,
    );
    if edge.subsec_nanosecond() == 0 {
        // The window opened on a whole second (1 run in 1000): that second is inside.
        run.assert_code(0);
        return;
    }
    run.assert_code(2);
    let window = format!("{printed} to {printed}");
    assert!(
        run.stderr.contains(&window),
        "the window as AWS prints it: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("DynamoDB restores to the second") && run.stderr.contains("use latest"),
        "{}",
        run.stderr
    );
}
