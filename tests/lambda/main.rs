//! The Lambda handler on moto, driven exactly as the state machines of `dynamo-dr stack` drive it:
//! in-process (`worker::handle`), and through the real runtime loop of the binary against a local
//! Runtime API. A test binary of its own: the in-process SDK clients read static credentials from
//! the environment, which is set once here before any test makes a call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dynamo_dr::config::Config;
use dynamo_dr::journal::{self, Phase, Status};
use dynamo_dr::session::Session;
use dynamo_dr::worker::{self, Action, Answer, Invocation, Next, Role};
use dynamo_dr_testkit::runtime_api::{Outcome, RuntimeApi};
use dynamo_dr_testkit::*;
use serde_json::json;

mod chaos;
mod runtime;
mod scopes;
mod sfn;
mod window;
mod writers;

const TABLE: &str = "Orders-Prod-ABC123";
const ITEMS: u64 = 1200;
const SEGMENTS: u32 = 4;

/// Static credentials and a region for every SDK client of this process, set before any test
/// thread reads the environment.
fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ] {
            // SAFETY: every test of this binary calls init() first, so no other thread of
            // this process reads the environment while it is written.
            unsafe { std::env::set_var(k, v) };
        }
    });
}

fn spec() -> TableSpec {
    TableSpec::hash_only(TABLE, Scalar::S)
}

/// The function's config: its table, split in four segments of 40-item pages, so that each
/// invocation of a segment has several pages to checkpoint.
fn config_text() -> String {
    format!(
        "[tables.OrdersTable]\nname = \"{TABLE}\"\nsegments = {SEGMENTS}\nscan_page_limit = 40\n\n\
         [environments.Prod]\nfunction_prefix = \"Prod-\"\n"
    )
}

const JOURNAL: &str = "dr-journal";

fn session(moto: &Emulator) -> Session {
    Session {
        config: Config::parse(&config_text()).expect("config"),
        aws: dynamo_dr::aws::AwsOptions {
            sdk: Default::default(),
            region: Some("us-east-1".into()),
            profile: None,
            endpoint_url: Some(moto.endpoint()),
            attempt_timeout: Some(Duration::from_secs(30)),
            max_attempts: Some(5),
        },
        journal: journal::Location::DynamoDb(JOURNAL.into()),
        retry: Default::default(),
        max_read_rate: None,
        max_write_rate: None,
        journal_key: None,
        journal_kms_key: None,
    }
}

/// The live table with ITEMS items and PITR on, the journal table, and the seed's payload.
async fn scenario(moto: &Emulator) -> (BTreeMap<String, Item>, serde_json::Value) {
    let client = moto.client();
    create_table(&client, &spec()).await;
    put_all(
        &client,
        TABLE,
        (0..ITEMS).map(|i| sized_item(&spec(), i, 200)),
    )
    .await;
    enable_pitr(&client, TABLE).await;
    assert!(
        dynamo_dr::journal::dynamo::init(&client, JOURNAL)
            .await
            .expect("journal init")
    );
    let before = scan_all(&client, TABLE).await;
    assert_eq!(before.len() as u64, ITEMS);
    let input = json!({
        "incidentId": "lambda-1",
        // moto records a restore's RestoreDateTime as the moment it ran, not the time asked
        // for, so only `latest` passes the provenance check there.
        "pitrBackupTime": "latest",
        "tableNameRecoveryConfirmation": TABLE,
    });
    (before, input)
}

/// After phase 1 (moto's PITR restores the data as it is at the restore, so the damage comes
/// after it): deletes, modifies and adds items, as a bad job would.
async fn damage(moto: &Emulator) {
    let client = moto.client();
    corrupt(&client, &spec(), ITEMS, 150).await;
    for i in 0..100 {
        client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(spec().key(i * 7)))
            .send()
            .await
            .expect("delete");
    }
    put_all(
        &client,
        TABLE,
        (ITEMS..ITEMS + 80).map(|i| sized_item(&spec(), i, 50)),
    )
    .await;
}

/// An invocation with plenty of time.
fn long() -> Invocation {
    Invocation {
        deadline: Instant::now() + Duration::from_secs(120),
        margin: Duration::from_secs(10),
        worker: "test-long".into(),
        role: Role::Table("OrdersTable".into()),
    }
}

/// An invocation whose deadline is so near that it stops at its first page boundary.
fn short() -> Invocation {
    Invocation {
        deadline: Instant::now() + Duration::from_secs(60),
        margin: Duration::from_secs(60),
        worker: "test-short".into(),
        role: Role::Table("OrdersTable".into()),
    }
}

/// An invocation killed at once: the runtime's timeout, before any page is acknowledged.
fn killed() -> Invocation {
    Invocation {
        deadline: Instant::now(),
        margin: Duration::ZERO,
        worker: "test-killed".into(),
        role: Role::Table("OrdersTable".into()),
    }
}

async fn run(s: &Session, action: Action, inv: &Invocation) -> Answer {
    worker::handle(s, action.clone(), inv)
        .await
        .unwrap_or_else(|e| panic!("{action:?}: {e}"))
}

/// The child state machine: `phase`, then a Map over its segments, every iteration at once,
/// each invoking `segment` until it answers done; until `phase` answers done. Returns the
/// invocations each phase's segments took.
async fn child(s: &Session, id: &str) -> Vec<(String, Vec<u32>)> {
    let mut phases = Vec::new();
    for _ in 0..4 {
        let p = run(
            s,
            Action::Phase {
                execution_id: id.into(),
            },
            &long(),
        )
        .await;
        if p.state == Next::Done {
            return phases;
        }
        assert_eq!(p.state, Next::Continue, "{p:?}");
        let iterations = p.segments.iter().map(|&n| {
            let phase: Phase = p.phase.parse().expect("a phase");
            async move {
                let segment = Action::Segment {
                    execution_id: id.into(),
                    phase,
                    segment: n,
                };
                // The first invocation of each segment is killed before it acknowledges a page.
                let first = run(s, segment.clone(), &killed()).await;
                assert_eq!(first.state, Next::Continue, "{first:?}");
                let mut invocations = 1;
                loop {
                    invocations += 1;
                    let answer = if n == 0 && invocations == 3 {
                        // Step Functions retried an invocation that was still running: two
                        // workers on one segment; one wins, the other asks again.
                        let (one, two) = (short(), short());
                        let (a, b) = tokio::join!(
                            run(s, segment.clone(), &one),
                            run(s, segment.clone(), &two)
                        );
                        if a.state == Next::Done { a } else { b }
                    } else {
                        run(s, segment.clone(), &short()).await
                    };
                    assert_eq!(answer.segment, Some(n));
                    if answer.state == Next::Done {
                        return invocations;
                    }
                    assert!(invocations < 200, "segment {n} never finished");
                }
            }
        });
        let counts = futures_util::future::join_all(iterations).await;
        phases.push((p.phase.clone(), counts));
    }
    panic!("the child did not finish in four phases: {phases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_handler_driven_as_the_state_machines_drive_it_puts_the_table_back() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (before, input) = scenario(&moto).await;
    let s = session(&moto);

    // Refused in the first state, before anything changes: a wrong confirmation, an unknown
    // field, another table.
    let mut wrong = input.clone();
    wrong["tableNameRecoveryConfirmation"] = json!("Orders-Prod");
    let mut extra = input.clone();
    extra["pitrTime"] = json!("latest");
    for (table, bad) in [
        ("OrdersTable", wrong),
        ("OrdersTable", extra),
        ("OtherTable", input.clone()),
    ] {
        let err = worker::handle(
            &s,
            Action::Start {
                table: table.into(),
                input: bad,
            },
            &long(),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.exit_status(), dynamo_dr::ExitStatus::Refused, "{err}");
    }
    let client = moto.client();
    assert!(
        client
            .list_backups()
            .send()
            .await
            .expect("backups")
            .backup_summaries()
            .is_empty(),
        "a refusal changes nothing"
    );

    let started = run(
        &s,
        Action::Start {
            table: "OrdersTable".into(),
            input: input.clone(),
        },
        &long(),
    )
    .await;
    let id = started.execution_id.clone();
    assert_eq!(id, "lambda-1.Orders-Prod-ABC123");
    assert_eq!(started.phase, "backup-and-restore");

    // Phase 1: an invocation cut short by its deadline answers wait; the next ones finish it.
    let cut = run(
        &s,
        Action::Advance {
            execution_id: id.clone(),
        },
        &killed(),
    )
    .await;
    assert_eq!(
        (cut.state, cut.wait_seconds),
        (Next::Wait, worker::WAIT_SECONDS),
        "{cut:?}"
    );
    let mut advanced = cut;
    for _ in 0..20 {
        advanced = run(
            &s,
            Action::Advance {
                execution_id: id.clone(),
            },
            &long(),
        )
        .await;
        if advanced.phase != "backup-and-restore" {
            break;
        }
        assert_eq!(advanced.state, Next::Wait);
    }
    assert_eq!(
        (advanced.phase.as_str(), advanced.state),
        ("delete", Next::Continue)
    );

    damage(&moto).await;
    let phases = child(&s, &id).await;
    let names: Vec<&str> = phases.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["delete", "copy"], "{phases:?}");
    for (phase, counts) in &phases {
        assert_eq!(counts.len() as u32, SEGMENTS, "{phase}");
    }
    let (_, copy) = &phases[1];
    assert!(
        copy.iter().all(|n| *n > 2),
        "every copy segment took several invocations cut at a page boundary: {copy:?}"
    );

    let done = run(
        &s,
        Action::Advance {
            execution_id: id.clone(),
        },
        &long(),
    )
    .await;
    assert_eq!(
        (done.phase.as_str(), done.state),
        ("done", Next::Done),
        "{done:?}"
    );

    assert_eq!(
        scan_all(&client, TABLE).await,
        before,
        "the table equals the restore point"
    );
    let (_, journal) = s.open().await.expect("journal");
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.status, Status::Succeeded);
    assert_eq!(
        exec.copy.items(),
        ITEMS,
        "every item copied once, none lost to a cut: {:?}",
        exec.copy.segments
    );
    assert_eq!(exec.copy.segments.len() as u32, SEGMENTS);
    assert!(exec.verification.as_ref().is_some_and(|v| v.passed));
    assert!(
        journal
            .load_segment(&id, Phase::Copy, 0)
            .await
            .expect("segment")
            .is_some(),
        "the workers' checkpoints are their own items"
    );
    let (lease, _) = journal
        .read_lease(TABLE)
        .await
        .expect("lease")
        .expect("kept for its fencing number");
    assert!(lease.released, "released at the end: {lease:?}");
    assert_eq!(
        exec.resources.temp_table_fate,
        Some(journal::TempTableFate::Deleted)
    );
    let temp = exec.resources.temp_table.clone().expect("temporary table");
    assert!(
        dynamo_dr::table::describe(&client, &temp)
            .await
            .expect("describe")
            .is_none(),
        "{temp} is deleted"
    );
    // A finished execution answers done again, whoever asks.
    let again = run(
        &s,
        Action::Advance {
            execution_id: id.clone(),
        },
        &long(),
    )
    .await;
    assert_eq!(again.state, Next::Done);

    // The CLI reads the same journal.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-dr"))
        .args(["status", &id, "--journal", &format!("dynamodb://{JOURNAL}")])
        .envs(moto.cli_env())
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("succeeded"), "{text}");
}

/// An execution started in AWS and stopped mid-copy is finished from the CLI: `resume` reads the
/// segment workers' checkpoints, skips the segments they finished and continues the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_execution_started_in_aws_is_resumed_from_the_cli_at_its_workers_checkpoints() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (before, input) = scenario(&moto).await;
    let s = session(&moto);
    let started = run(
        &s,
        Action::Start {
            table: "OrdersTable".into(),
            input,
        },
        &long(),
    )
    .await;
    let id = started.execution_id;
    let advanced = run(
        &s,
        Action::Advance {
            execution_id: id.clone(),
        },
        &long(),
    )
    .await;
    assert_eq!(advanced.phase, "delete", "{advanced:?}");
    damage(&moto).await;
    let segment = |phase: &str, n: u32| Action::Segment {
        execution_id: id.clone(),
        phase: phase.parse().expect("a phase"),
        segment: n,
    };
    let delete = run(
        &s,
        Action::Phase {
            execution_id: id.clone(),
        },
        &long(),
    )
    .await;
    for n in delete.segments {
        assert_eq!(
            run(&s, segment("delete", n), &long()).await.state,
            Next::Done
        );
    }
    let copy = run(
        &s,
        Action::Phase {
            execution_id: id.clone(),
        },
        &long(),
    )
    .await;
    assert_eq!(copy.phase, "copy");
    for n in 0..SEGMENTS - 1 {
        let done = run(&s, segment("copy", n), &long()).await;
        assert_eq!(done.state, Next::Done);
        // What the function logs as its embedded-metric line: this invocation's own work.
        let m = done
            .metrics
            .as_ref()
            .expect("a segment invocation's metrics");
        assert_eq!(
            (
                m.phase.as_str(),
                m.segment,
                m.items_written,
                m.items_deleted
            ),
            ("copy", Some(n), done.items, 0),
            "{done:?}"
        );
        assert!(m.pages >= 1 && m.table == TABLE, "{m:?}");
    }
    let last = run(&s, segment("copy", SEGMENTS - 1), &short()).await;
    assert_eq!(
        last.state,
        Next::Continue,
        "stopped after one page: {last:?}"
    );

    // The state machine is stopped; its lease lives on, so the operator breaks it.
    let reports = tempfile::tempdir().expect("dir");
    let resumed = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-dr"))
        .args(["resume", &id, "--yes", "--break-lock", "--journal"])
        .arg(format!("dynamodb://{JOURNAL}"))
        .arg("--report-dir")
        .arg(reports.path())
        .envs(moto.cli_env())
        .output()
        .expect("resume");
    assert!(
        resumed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&resumed.stdout),
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(scan_all(&moto.client(), TABLE).await, before);
    let (_, journal) = s.open().await.expect("journal");
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.status, Status::Succeeded);
    assert_eq!(exec.copy.items(), ITEMS);
    for n in 0..SEGMENTS as usize - 1 {
        assert_eq!(
            exec.copy.segments[n].rewritten_pages, 0,
            "segment {n}, finished in AWS, was not copied again: {:?}",
            exec.copy.segments
        );
    }
    assert_eq!(exec.copy.segments[SEGMENTS as usize - 1].rewritten_pages, 1);
}
