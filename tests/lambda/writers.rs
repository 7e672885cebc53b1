//! One writer, ever: the binary as Lambda functions (real runtime loops on the testkit's Runtime
//! API) beside CLI processes, against moto. Each scenario is one a review reproduced before the
//! fencing tokens; each ends with the table exact, and staying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_dr::journal::{HolderKind, Journal};

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_dynamo-dr");

/// The environment's tables are tied to it only where a scenario needs recovery mode.
fn config(tied: bool, extra: &str) -> String {
    let env = if tied { "environment = \"Prod\"\n" } else { "" };
    format!(
        "[tables.OrdersTable]\nname = \"{TABLE}\"\nsegments = {SEGMENTS}\nscan_page_limit = 40\n{env}\n\
         [environments.Prod]\nfunction_prefix = \"Prod-\"\n{extra}"
    )
}

/// A temporary directory holding `text` as its `dynamo-dr.toml`, and that file's path.
fn with_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("dynamo-dr.toml");
    std::fs::write(&cfg, text).expect("config");
    (dir, cfg)
}

/// `text` with a write rate cap so low that a worker is mid-segment for seconds.
fn slow(text: String) -> String {
    text.replace(
        "scan_page_limit = 40\n",
        "scan_page_limit = 40\nmax_write_rate = 30\n",
    )
}

/// The binary as one Lambda function: `processes` runtime loops on one Runtime API, so that
/// invocations run at once; their JSON logs (with each write's fencing number) in one file.
pub struct Function {
    pub api: Arc<RuntimeApi>,
    children: std::sync::Mutex<Vec<Child>>,
    command: std::sync::Mutex<Command>,
    pub log: PathBuf,
}

impl Function {
    pub fn spawn(
        moto: &Emulator,
        dir: &Path,
        role: &str,
        config: &str,
        processes: usize,
        extra: &[(&str, &str)],
    ) -> Function {
        let name = format!("dynamo-dr-{}", role.replace(':', "-"));
        let log = dir.join(format!("{name}.log"));
        let api = Arc::new(RuntimeApi::start());
        let mut command = Command::new(BIN);
        command
            .envs(moto.cli_env())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("DYNAMO_DR_JOURNAL", format!("dynamodb://{JOURNAL}"))
            .env("DYNAMO_DR_CONFIG", config)
            .env("DYNAMO_DR_ROLE", role)
            .env("DYNAMO_DR_ATTEMPT_TIMEOUT_SECONDS", "2")
            .env("DYNAMO_DR_MARGIN_SECONDS", "2")
            .env("RUST_LOG", "info,dynamo_dr::fence=debug")
            .envs(extra.iter().copied())
            .stderr(Stdio::null());
        let f = Function {
            api,
            children: Default::default(),
            command: std::sync::Mutex::new(command),
            log,
        };
        for _ in 0..processes {
            let child = f.start_one();
            f.children.lock().expect("children").push(child);
        }
        f
    }

    fn start_one(&self) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        self.command
            .lock()
            .expect("command")
            .stdout(out)
            .spawn()
            .expect("function")
    }

    /// Kills process `n` (its invocation, if any, is never answered) and starts another.
    pub fn restart(&self, n: usize) {
        let fresh = self.start_one();
        let mut children = self.children.lock().expect("children");
        let n = n % children.len();
        let mut old = std::mem::replace(&mut children[n], fresh);
        let _ = old.kill();
        let _ = old.wait();
    }

    pub async fn call(&self, payload: serde_json::Value, secs: u64) -> Outcome {
        self.api.invoke(payload, Duration::from_secs(secs)).await
    }

    pub async fn ok(&self, payload: serde_json::Value) -> serde_json::Value {
        match self.call(payload.clone(), 120).await {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("{payload}: {e}"),
        }
    }

    /// A refusal's message; panics on anything else.
    pub async fn refused(&self, payload: serde_json::Value) -> String {
        match self.call(payload.clone(), 120).await {
            Outcome::Error(e) if e["errorType"] == "Refused" => {
                e["errorMessage"].as_str().unwrap_or("").to_string()
            }
            other => panic!("{payload} was not refused: {other:?}"),
        }
    }
}

impl Function {
    pub fn pids(&self) -> Vec<u32> {
        self.children
            .lock()
            .expect("children")
            .iter()
            .map(Child::id)
            .collect()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        for c in self.children.get_mut().expect("children").iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `dynamo-dr ARGS` against moto and the DynamoDB journal, its JSON log in `log`.
pub fn cli(moto: &Emulator, config: &Path, log: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.envs(moto.cli_env())
        .env("RUST_LOG", "info,dynamo_dr::fence=debug")
        .args(["--journal", &format!("dynamodb://{JOURNAL}")])
        .arg("--config")
        .arg(config)
        .arg("--log-file")
        .arg(log)
        .args(["--attempt-timeout", "2"])
        .args(args)
        .stdin(Stdio::null());
    // Reports go beside the log, not into the checkout.
    if let Some(dir) = log.parent() {
        c.current_dir(dir);
    }
    c
}

pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every write's (time, fencing number, answered) in JSON log lines.
pub fn fence_events(text: &str) -> Vec<(jiff::Timestamp, u64, bool)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "dynamo_dr::fence")
        .filter_map(|v| {
            let at: jiff::Timestamp = v["timestamp"].as_str()?.parse().ok()?;
            let fence = v["fields"]["fence"].as_u64()?;
            let answered = v["fields"]["message"] == "write answered";
            Some((at, fence, answered))
        })
        .collect()
}

/// No write of an older holder is answered after a newer holder sent its first write.
pub fn assert_fenced(events: &[(jiff::Timestamp, u64, bool)]) {
    let mut fences: Vec<u64> = events.iter().map(|e| e.1).collect();
    fences.sort_unstable();
    fences.dedup();
    for &newer in &fences {
        let Some(first) = events
            .iter()
            .filter(|e| e.1 == newer && !e.2)
            .map(|e| e.0)
            .min()
        else {
            continue;
        };
        for (at, fence, _) in events.iter().filter(|e| e.1 < newer && e.2) {
            assert!(
                *at < first,
                "a write of fence {fence} was answered at {at}, after fence {newer}'s first write \
                 at {first}"
            );
        }
    }
}

/// The table equals `want` now and at every look for `window`: no late writer changes it.
pub async fn stays_exact(moto: &Emulator, want: &BTreeMap<String, Item>, window: Duration) {
    let client = moto.client();
    let started = Instant::now();
    loop {
        let now = scan_all(&client, TABLE).await;
        assert!(
            &now == want,
            "the table changed {:?} after every process finished: {:?}",
            started.elapsed(),
            diff_summary(want, &now)
        );
        if started.elapsed() >= window {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Polls the journal until `pred` holds of the table's lease.
async fn wait_lease(journal: &dyn Journal, pred: impl Fn(&dynamo_dr::journal::Lease) -> bool) {
    wait_for("the lease", Duration::from_secs(60), || async {
        journal
            .read_lease(TABLE)
            .await
            .expect("lease")
            .is_some_and(|(l, _)| pred(&l))
    })
    .await;
}

/// Starts an execution through `f` and advances it past phase 1; returns its id.
async fn started(f: &Function, input: &serde_json::Value) -> String {
    let s = f
        .ok(json!({"action": "start", "table": "OrdersTable", "input": input}))
        .await;
    let id = s["executionId"].as_str().expect("id").to_string();
    for _ in 0..30 {
        let a = f.ok(json!({"action": "advance", "executionId": id})).await;
        if a["phase"] != "backup-and-restore" {
            assert_eq!(a["phase"], "delete", "{a}");
            return id;
        }
    }
    panic!("phase 1 never finished");
}

/// Scenario 1: a `segment` worker still running when the operator breaks the lock from the CLI
/// stops at its next write; the CLI waits out its in-flight writes first, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_left_running_stops_before_its_next_write_once_the_cli_breaks_the_lock() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (restore_point, input) = scenario(&moto).await;
    // A slow worker: 30 items a second, so it is mid-segment when the lock is broken.
    let text = slow(config(false, ""));
    let (dir, cfg) = with_config(&text);
    let f = Arc::new(Function::spawn(
        &moto,
        dir.path(),
        "table:OrdersTable",
        &text,
        2,
        &[],
    ));
    let id = started(&f, &input).await;
    damage(&moto).await;
    let phase = f.ok(json!({"action": "phase", "executionId": id})).await;
    assert_eq!(phase["phase"], "delete");
    let worker = {
        let (f, id) = (f.clone(), id.clone());
        tokio::spawn(async move {
            f.call(
                json!({"action": "segment", "executionId": id, "phase": "delete", "segment": 0}),
                90,
            )
            .await
        })
    };
    let journal = session(&moto).open().await.expect("journal").1;
    wait_for(
        "the worker's first page",
        Duration::from_secs(60),
        || async {
            journal
                .load_segment(&id, Phase::Delete, 0)
                .await
                .expect("segment")
                .is_some_and(|(r, _)| r.checkpoint.pages >= 1)
        },
    )
    .await;

    // Without --break-lock the CLI is refused, naming the workers and their time left.
    let log = dir.path().join("cli.log");
    let refused = cli(&moto, &cfg, &log, &["resume", &id, "--yes"])
        .output()
        .expect("resume");
    assert_eq!(refused.status.code(), Some(2), "{}", output_text(&refused));
    let text = output_text(&refused);
    assert!(text.contains("the Lambda workers of function"), "{text}");
    assert!(text.contains("s left"), "{text}");

    let resumed = cli(
        &moto,
        &cfg,
        &log,
        &[
            "--max-write-rate",
            "2000",
            "resume",
            &id,
            "--yes",
            "--break-lock",
        ],
    )
    .output()
    .expect("resume");
    assert!(resumed.status.success(), "{}", output_text(&resumed));
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert!(
        exec.events
            .iter()
            .any(|e| e.what.contains("LEASE BROKEN") && e.what.contains("waited until")),
        "the record says the lock was broken and what was waited for: {:?}",
        exec.events.iter().map(|e| &e.what).collect::<Vec<_>>()
    );
    match worker.await.expect("worker") {
        Outcome::Error(e) => {
            assert_eq!(e["errorType"], "Failed", "{e}");
            assert!(
                e["errorMessage"]
                    .as_str()
                    .unwrap_or("")
                    .contains("stale writer"),
                "{e}"
            );
        }
        other => panic!("the stale worker went on: {other:?}"),
    }
    let function_log = f.log.clone();
    drop(f);
    let logs = std::fs::read_to_string(function_log).expect("function log")
        + &std::fs::read_to_string(&log).expect("cli log");
    let events = fence_events(&logs);
    assert!(
        events.iter().map(|e| e.1).max() > events.iter().map(|e| e.1).min(),
        "both holders wrote: {events:?}"
    );
    assert_fenced(&events);
    stays_exact(&moto, &restore_point, Duration::from_secs(60)).await;
}

/// Scenario 2: a Lambda `start` of the same execution beside a live CLI run is refused, naming
/// the CLI process and its time left; the CLI's record is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lambda_start_beside_a_live_cli_run_is_refused_and_the_run_finishes_exact() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (before, input) = scenario(&moto).await;
    let text = config(false, "");
    let (dir, cfg) = with_config(&text);
    let f = Function::spawn(&moto, dir.path(), "table:OrdersTable", &text, 1, &[]);
    let log = dir.path().join("cli.log");
    let mut run = cli(
        &moto,
        &cfg,
        &log,
        &[
            "--max-write-rate",
            "60",
            "restore",
            "--table",
            TABLE,
            "--confirm",
            TABLE,
            "--pitr-time",
            "latest",
            "--incident-id",
            "lambda-1",
            "--yes",
            "--report-dir",
        ],
    );
    run.arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = run.spawn().expect("restore");
    let journal = session(&moto).open().await.expect("journal").1;
    wait_lease(journal.as_ref(), |l| {
        l.kind == HolderKind::Cli && !l.released && l.execution_id == "lambda-1.Orders-Prod-ABC123"
    })
    .await;
    let record_before = journal
        .load("lambda-1.Orders-Prod-ABC123")
        .await
        .expect("load");
    let message = f
        .refused(json!({"action": "start", "table": "OrdersTable", "input": input}))
        .await;
    assert!(message.contains("a CLI process"), "{message}");
    assert!(message.contains("s left"), "{message}");
    let after = journal
        .load("lambda-1.Orders-Prod-ABC123")
        .await
        .expect("load");
    assert!(
        after.as_ref().map(|e| e.version) >= record_before.as_ref().map(|e| e.version),
        "only the CLI advanced the record"
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("restore");
    assert!(out.status.success(), "{}", output_text(&out));
    let exec = journal
        .load("lambda-1.Orders-Prod-ABC123")
        .await
        .expect("load")
        .expect("record");
    assert_eq!(exec.status, Status::Succeeded);
    let pids = f.pids();
    assert!(
        exec.events.iter().all(|e| !pids.contains(&e.by.pid)),
        "the refused function wrote nothing into the record"
    );
    drop(f);
    stays_exact(&moto, &before, Duration::from_secs(60)).await;
}

/// Functions Prod-F00… with reserved concurrencies 1 to 5, and one without.
async fn environment_functions(moto: &Emulator, n: usize) -> BTreeMap<String, Option<i32>> {
    let lambda = moto.lambda();
    let role = create_role(moto, "app-role");
    let mut originals = BTreeMap::new();
    for i in 0..n {
        let name = format!("Prod-F{i:02}");
        let reserved = (i > 0).then_some((i % 5) as i32 + 1);
        create_function(&lambda, &name, &role, reserved, &[]).await;
        originals.insert(name, reserved);
    }
    originals
}

async fn concurrencies(
    moto: &Emulator,
    names: impl Iterator<Item = &String>,
) -> BTreeMap<String, Option<i32>> {
    let lambda = moto.lambda();
    let mut now = BTreeMap::new();
    for name in names {
        now.insert(name.clone(), reserved_concurrency(&lambda, name).await);
    }
    now
}

/// Scenario 3: two Lambda `recovery-mode start`s and a CLI one, all at once: one writer holds the
/// environment's lease, the others are refused or find its record, and no original is ever
/// recorded as the 0 another start set. `end` puts every original back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_recovery_mode_starts_never_record_a_paused_value_as_an_original() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (before, _) = scenario(&moto).await;
    let originals = environment_functions(&moto, 25).await;
    let text = config(false, "");
    let (dir, cfg) = with_config(&text);
    let f = Arc::new(Function::spawn(
        &moto,
        dir.path(),
        "recovery-mode:Prod",
        &text,
        2,
        &[],
    ));
    let start = json!({"action": "recovery-mode", "environment": "Prod", "change": "start"});
    let lambdas: Vec<_> = (0..2)
        .map(|_| {
            let (f, start) = (f.clone(), start.clone());
            tokio::spawn(async move { f.call(start, 120).await })
        })
        .collect();
    let log = dir.path().join("cli.log");
    let mut by_cli = cli(
        &moto,
        &cfg,
        &log,
        &["recovery-mode", "start", "--environment", "Prod", "--yes"],
    );
    let by_cli = tokio::task::spawn_blocking(move || by_cli.output().expect("cli"));
    let mut done = 0;
    for l in lambdas {
        match l.await.expect("join") {
            Outcome::Response(_) => done += 1,
            Outcome::Error(e) => {
                assert_eq!(e["errorType"], "Refused", "{e}");
                assert!(
                    e["errorMessage"]
                        .as_str()
                        .unwrap_or("")
                        .contains("one writer"),
                    "{e}"
                );
            }
        }
    }
    let out = by_cli.await.expect("join");
    match out.status.code() {
        Some(0) => done += 1,
        Some(2) => assert!(
            output_text(&out).contains("one writer"),
            "{}",
            output_text(&out)
        ),
        other => panic!("{other:?}: {}", output_text(&out)),
    }
    assert!(done >= 1, "one of the starts ran");
    let journal = session(&moto).open().await.expect("journal").1;
    let record = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    assert!(record.is_on(), "{:?}", record.state);
    for (name, original) in &originals {
        let saved = record.functions.get(name).expect("recorded");
        assert_eq!(saved.saved_reserved, *original, "{name}'s original");
    }
    assert!(
        concurrencies(&moto, originals.keys())
            .await
            .values()
            .all(|v| *v == Some(0)),
        "every function paused"
    );
    f.ok(json!({"action": "recovery-mode", "environment": "Prod", "change": "end"}))
        .await;
    assert_eq!(concurrencies(&moto, originals.keys()).await, originals);
    drop(f);
    stays_exact(&moto, &before, Duration::from_secs(60)).await;
}

/// Scenario 4: with the skip policy, `end` replaces the consumer's mapping by its twin and waits
/// until the twin is Enabled before any function gets its concurrency back: no application
/// write can happen while no mapping reads the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_mode_end_enables_every_twin_before_any_function_runs_again() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    client
        .create_table()
        .table_name("Prod-Orders")
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .expect("key"),
        )
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .expect("stream"),
        )
        .send()
        .await
        .expect("table");
    assert!(
        dynamo_dr::journal::dynamo::init(&client, JOURNAL)
            .await
            .expect("journal")
    );
    let stream = client
        .describe_table()
        .table_name("Prod-Orders")
        .send()
        .await
        .expect("describe")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("stream arn");
    let originals = environment_functions(&moto, 4).await;
    let lambda = moto.lambda();
    let old = lambda
        .create_event_source_mapping()
        .event_source_arn(&stream)
        .function_name("Prod-F01")
        .starting_position(aws_sdk_lambda::types::EventSourcePosition::TrimHorizon)
        .send()
        .await
        .expect("mapping")
        .uuid
        .expect("uuid");
    let dir = tempfile::tempdir().expect("dir");
    let text = config(false, "skip_recovery_events = [\"Prod-F01\"]\n");
    let proxy = RecordingProxy::start(&moto.endpoint());
    let f = Function::spawn(
        &moto,
        dir.path(),
        "recovery-mode:Prod",
        &text,
        1,
        &[("AWS_ENDPOINT_URL_LAMBDA", proxy.url())],
    );
    f.ok(json!({"action": "recovery-mode", "environment": "Prod", "change": "start"}))
        .await;
    let ended_from = proxy.requests().len();
    f.ok(json!({"action": "recovery-mode", "environment": "Prod", "change": "end"}))
        .await;
    let calls: Vec<String> = proxy.requests()[ended_from..]
        .iter()
        .map(Recorded::call)
        .collect();
    let created = calls
        .iter()
        .position(|c| c.starts_with("POST /2015-03-31/event-source-mappings"))
        .unwrap_or_else(|| panic!("no twin created: {calls:#?}"));
    let first_back = calls
        .iter()
        .position(|c| c.ends_with("/concurrency") && !c.starts_with("GET"))
        .unwrap_or_else(|| panic!("no concurrency put back: {calls:#?}"));
    let enabled_seen = calls[created..first_back]
        .iter()
        .any(|c| c.starts_with("GET /2015-03-31/event-source-mappings/"));
    assert!(
        created < first_back && enabled_seen,
        "the twin is created and seen Enabled before any function runs again: {calls:#?}"
    );
    assert_eq!(concurrencies(&moto, originals.keys()).await, originals);
    let twin = lambda
        .list_event_source_mappings()
        .event_source_arn(&stream)
        .send()
        .await
        .expect("list")
        .event_source_mappings()
        .iter()
        .find(|m| m.uuid() != Some(old.as_str()))
        .map(|m| {
            (
                m.state().unwrap_or_default().to_string(),
                m.starting_position().cloned(),
            )
        })
        .expect("the twin");
    assert_eq!(twin.0, "Enabled");
    assert_eq!(
        twin.1,
        Some(aws_sdk_lambda::types::EventSourcePosition::Latest)
    );
}

/// Scenario 5: a streamed table whose consumers cannot be listed (ListEventSourceMappings fails)
/// gets `diff`, never a silent hard reset; the run then finishes exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_table_whose_consumers_are_unknown_gets_diff() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (restore_point, input) = scenario(&moto).await;
    moto.client()
        .update_table()
        .table_name(TABLE)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .expect("stream"),
        )
        .send()
        .await
        .expect("stream on");
    let text = config(false, "");
    let (dir, cfg) = with_config(&text);
    let proxy = RecordingProxy::start(&moto.endpoint());
    proxy.refuse("GET /2015-03-31/event-source-mappings");
    let f = Function::spawn(
        &moto,
        dir.path(),
        "table:OrdersTable",
        &text,
        1,
        &[("AWS_ENDPOINT_URL_LAMBDA", proxy.url())],
    );
    let id = started(&f, &input).await;
    assert!(
        proxy.requests().iter().any(|r| r
            .call()
            .starts_with("GET /2015-03-31/event-source-mappings")),
        "the lookup was made, and failed"
    );
    let journal = session(&moto).open().await.expect("journal").1;
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.inputs.strategy, dynamo_dr::journal::Strategy::Diff);
    assert!(
        exec.events
            .iter()
            .any(|e| e.what.contains("consumers are unknown")),
        "the record says why: {:?}",
        exec.events.iter().map(|e| &e.what).collect::<Vec<_>>()
    );
    damage(&moto).await;
    drop(f);
    let log = dir.path().join("cli.log");
    let out = cli(&moto, &cfg, &log, &["resume", &id, "--yes", "--break-lock"])
        .output()
        .expect("resume");
    assert!(out.status.success(), "{}", output_text(&out));
    stays_exact(&moto, &restore_point, Duration::from_secs(60)).await;
}

/// Drives the child state machine through `f` until the sync phases are done.
async fn child_through(f: &Function, id: &str) {
    for _ in 0..4 {
        let p = f.ok(json!({"action": "phase", "executionId": id})).await;
        if p["state"] == "done" {
            return;
        }
        for n in p["segments"].as_array().expect("segments") {
            for _ in 0..100 {
                let s = f
                    .ok(json!({"action": "segment", "executionId": id, "phase": p["phase"], "segment": n}))
                    .await;
                if s["state"] == "done" {
                    break;
                }
            }
        }
    }
    panic!("the child never finished");
}

/// Scenario 6: `recovery-mode end` is refused while an execution of one of the environment's
/// tables holds its lease; `--force` ends it (recorded), and then the execution's `phase` and
/// `segment` refuse to write until recovery mode is on again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_mode_end_waits_for_live_runs_and_workers_recheck_it() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (restore_point, input) = scenario(&moto).await;
    let originals = environment_functions(&moto, 3).await;
    let text = config(true, "");
    let (dir, cfg) = with_config(&text);
    let table_fn = Function::spawn(&moto, dir.path(), "table:OrdersTable", &text, 1, &[]);
    let rm_fn = Function::spawn(&moto, dir.path(), "recovery-mode:Prod", &text, 1, &[]);
    let start = json!({"action": "recovery-mode", "environment": "Prod", "change": "start"});
    let end = json!({"action": "recovery-mode", "environment": "Prod", "change": "end"});
    rm_fn.ok(start).await;
    let id = started(&table_fn, &input).await;
    damage(&moto).await;

    let message = rm_fn.refused(end.clone()).await;
    assert!(
        message.contains("runs in progress") && message.contains(&id),
        "{message}"
    );
    let journal = session(&moto).open().await.expect("journal").1;
    let record = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    assert!(record.is_on());
    assert!(
        concurrencies(&moto, originals.keys())
            .await
            .values()
            .all(|v| *v == Some(0)),
        "nothing was put back"
    );

    let log = dir.path().join("cli.log");
    let forced = cli(
        &moto,
        &cfg,
        &log,
        &[
            "recovery-mode",
            "end",
            "--environment",
            "Prod",
            "--yes",
            "--force",
        ],
    )
    .output()
    .expect("end");
    assert!(forced.status.success(), "{}", output_text(&forced));
    let record = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    assert!(
        record
            .events
            .iter()
            .any(|e| e.what.contains("FORCED") && e.what.contains(&id)),
        "{:?}",
        record.events
    );
    let p = table_fn
        .refused(json!({"action": "phase", "executionId": id}))
        .await;
    assert!(p.contains("recovery mode is not on"), "{p}");
    let s = table_fn
        .refused(json!({"action": "segment", "executionId": id, "phase": "delete", "segment": 0}))
        .await;
    assert!(s.contains("recovery mode is not on"), "{s}");
    assert_eq!(
        journal
            .load_segment(&id, Phase::Delete, 0)
            .await
            .expect("segment"),
        None,
        "no worker wrote"
    );

    // On again, the execution finishes, and `end` puts every function back.
    let again = cli(
        &moto,
        &cfg,
        &log,
        &["recovery-mode", "start", "--environment", "Prod", "--yes"],
    )
    .output()
    .expect("start");
    assert!(again.status.success(), "{}", output_text(&again));
    child_through(&table_fn, &id).await;
    let done = table_fn
        .ok(json!({"action": "advance", "executionId": id}))
        .await;
    assert_eq!(done["state"], "done", "{done}");
    rm_fn.ok(end).await;
    assert_eq!(concurrencies(&moto, originals.keys()).await, originals);
    drop((table_fn, rm_fn));
    stays_exact(&moto, &restore_point, Duration::from_secs(60)).await;
}

/// Scenario 8: a segment resumed from a checkpoint claims it (a conditional write of its record)
/// before its first write, so a delayed duplicate invocation loses before it writes a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_segment_resumed_from_a_checkpoint_claims_it_before_its_first_write() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (restore_point, input) = scenario(&moto).await;
    let text = slow(config(false, ""));
    let dir = tempfile::tempdir().expect("dir");
    let proxy = RecordingProxy::start(&moto.endpoint());
    let f = Arc::new(Function::spawn(
        &moto,
        dir.path(),
        "table:OrdersTable",
        &text,
        2,
        &[("AWS_ENDPOINT_URL_DYNAMODB", proxy.url())],
    ));
    let id = started(&f, &input).await;
    damage(&moto).await;
    f.ok(json!({"action": "phase", "executionId": id})).await;
    let segment = json!({"action": "segment", "executionId": id, "phase": "delete", "segment": 0});
    // A short invocation leaves a checkpoint mid-segment.
    let first = match f.call(segment.clone(), 4).await {
        Outcome::Response(v) => v,
        Outcome::Error(e) => panic!("{e}"),
    };
    assert_eq!(first["state"], "continue", "{first}");

    // Resumed from it: the claim of the segment's record comes before any write.
    let from = proxy.requests().len();
    let (a, b) = tokio::join!(f.call(segment.clone(), 60), f.call(segment.clone(), 60));
    let requests = proxy.requests()[from..].to_vec();
    let claim = format!("segment#{id}#delete#0");
    let claimed = requests
        .iter()
        .position(|r| r.call().ends_with(".PutItem") && r.body.contains(&claim))
        .expect("a claim");
    let wrote = requests
        .iter()
        .position(|r| r.call().ends_with(".BatchWriteItem"))
        .expect("a write");
    assert!(
        claimed < wrote,
        "claimed at {claimed}, first write at {wrote}"
    );
    let details: Vec<String> = [a, b]
        .into_iter()
        .map(|o| match o {
            Outcome::Response(v) => v["detail"].as_str().unwrap_or("").to_string(),
            Outcome::Error(e) => panic!("{e}"),
        })
        .collect();
    assert!(
        details.iter().any(|d| d.contains("another worker")),
        "of two workers resuming one checkpoint, one stood down: {details:?}"
    );
    child_through(&f, &id).await;
    let done = f.ok(json!({"action": "advance", "executionId": id})).await;
    assert_eq!(done["state"], "done", "{done}");
    drop(f);
    stays_exact(&moto, &restore_point, Duration::from_secs(60)).await;
}
