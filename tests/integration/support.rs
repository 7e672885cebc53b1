//! Running the `dynamo-dr` binary against an emulator, and checking that nothing was created.

use std::collections::BTreeSet;
use std::process::Output;

use aws_sdk_dynamodb::Client;
use std::process::{Child, Command, Stdio};

use dynamo_dr_testkit::Emulator;

/// The result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(
        Output {
            status,
            stdout,
            stderr,
        }: Output,
    ) -> Run {
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `dynamo-dr ARGS` with only this emulator's endpoint and static credentials, optionally
/// feeding `stdin`. Blocking: the emulator is another process.
pub fn dr(emulator: &Emulator, args: &[&str], stdin: Option<&str>) -> Run {
    dr_env(emulator, &[], args, stdin)
}

/// [`dr`] with more environment, e.g. `AWS_ENDPOINT_URL` pointing at a [`FaultProxy`].
pub fn dr_env(
    emulator: &Emulator,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("dynamo-dr").expect("dynamo-dr binary");
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(emulator.cli_env())
        .envs(env.iter().copied())
        .args(args);
    // Every test runs in a fresh directory so no ./dynamo-dr.toml is picked up by accident.
    let dir = tempfile::tempdir().expect("temp dir");
    cmd.current_dir(dir.path());
    cmd.write_stdin(stdin.unwrap_or(""));
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run dynamo-dr");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Everything in the account that a run could create.
#[derive(Debug, PartialEq, Eq)]
pub struct Inventory {
    pub tables: BTreeSet<String>,
    pub backups: BTreeSet<String>,
}

pub async fn inventory(client: &Client) -> Inventory {
    let tables = client
        .list_tables()
        .send()
        .await
        .expect("ListTables")
        .table_names()
        .iter()
        .cloned()
        .collect();
    // dynalite has no backups at all.
    let backups = match client.list_backups().send().await {
        Ok(out) => out
            .backup_summaries()
            .iter()
            .filter_map(|b| b.backup_arn().map(str::to_string))
            .collect(),
        Err(_) => BTreeSet::new(),
    };
    Inventory { tables, backups }
}

pub fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

/// Runs `dynamo-dr ARGS` on a pseudo-terminal (util-linux `script`), typing `typed` at the prompt.
pub fn dr_on_tty(emulator: &Emulator, args: &[&str], typed: &str) -> Run {
    let bin = assert_cmd::cargo::cargo_bin("dynamo-dr");
    let line = std::iter::once(bin.display().to_string())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = assert_cmd::Command::new("script");
    cmd.current_dir(work_dir(emulator))
        .envs(emulator.cli_env())
        .args(["-qec", &line, "/dev/null"])
        .write_stdin(format!("{typed}\n"));
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run script");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A working directory that lives as long as the emulator, for runs that outlive a call (their
/// incident reports land there, not in the repository).
pub fn work_dir(emulator: &Emulator) -> std::path::PathBuf {
    let dir = emulator.journal_dir.join("cwd");
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

/// Starts `dynamo-dr ARGS` without waiting for it.
pub fn spawn(emulator: &Emulator, args: &[&str]) -> Child {
    spawn_env(emulator, &[], args)
}

pub fn spawn_env(emulator: &Emulator, env: &[(&str, &str)], args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("dynamo-dr"))
        .current_dir(work_dir(emulator))
        .envs(emulator.cli_env())
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dynamo-dr")
}

/// The execution record as the journal holds it right now.
pub fn record(emulator: &Emulator, id: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(
        emulator
            .journal_dir
            .join("executions")
            .join(format!("{id}.json")),
    )
    .ok()?;
    Some(serde_json::from_slice(&bytes).expect("a journal record must always parse, even mid-kill"))
}

pub fn pages_done(rec: &serde_json::Value, phase: &str) -> u64 {
    rec[phase]["segments"]
        .as_array()
        .map(|s| s.iter().map(|x| x["pages"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Waits (polling the journal) until the running `child` has finished at least one page of its
/// copy phase; fails if it ends first or makes no progress within two minutes.
pub async fn until_copying(emulator: &Emulator, id: &str, child: &mut Child) {
    let started = std::time::Instant::now();
    while !record(emulator, id).is_some_and(|r| r["phase"] == "copy" && pages_done(&r, "copy") > 0)
    {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "run {id} ended before its copy phase made progress"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "run {id}: no copy progress"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// `restore TABLE` to the latest PITR time for `incident`, confirmed, as JSON; then `extra`.
pub fn restore_args<'a>(table: &'a str, incident: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        "--table",
        table,
        "--incident-id",
        incident,
        "--pitr-time",
        "latest",
        "--confirm",
        table,
        "--yes",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    args
}
