//! The Step Functions form runs what the CLI runs: on moto's engine, with the handler answering
//! its Tasks through the router, a restore from a backup of the whole table, then `missing`,
//! `partition` and `keys` (the keys file read from S3, its SHA-256 recorded), each after a bad
//! job damaged the table again, each leaving the table exactly as its scope says.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::lambda_router::{Handler, LambdaRouter};
use sha2::{Digest, Sha256};

use super::sfn::{create_machine, definition, diag, run_to_end};
use super::*;

pub(super) const LEDGER: &str = "Ledger-Prod";
const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:dynamo-dr-LedgerTable";
const BUCKET: &str = "dr-keys";
/// Ten items under each partition key value.
pub(super) const LEDGER_ITEMS: u64 = 300;

pub(super) fn ledger() -> TableSpec {
    TableSpec {
        gsi: false,
        ..TableSpec::seed_like(LEDGER)
    }
}

fn ledger_session(moto: &Emulator) -> Session {
    let config = format!(
        "[tables.LedgerTable]\nname = \"{LEDGER}\"\nsegments = 2\nscan_page_limit = 40\n\
         keys_location = \"s3://{BUCKET}/incidents/\"\n"
    );
    Session {
        config: Config::parse(&config).expect("config"),
        ..session(moto)
    }
}

/// A bad job: deletes two items of every partition key, rewrites one, and adds one.
async fn damage(moto: &Emulator, round: u64) {
    let client = moto.client();
    for i in (0..LEDGER_ITEMS).filter(|i| i % 10 < 2) {
        client
            .delete_item()
            .table_name(LEDGER)
            .set_key(Some(ledger().key(i)))
            .send()
            .await
            .expect("delete");
    }
    let bad = (0..LEDGER_ITEMS).filter(|i| i % 10 == 2).map(|i| {
        let mut item = sized_item(&ledger(), i, 100);
        item.insert("v".into(), AttributeValue::S(format!("bad-{round}")));
        item
    });
    put_all(&client, LEDGER, bad).await;
    let added = (0..LEDGER_ITEMS / 10).map(|p| {
        let mut item = sized_item(&ledger(), p * 10, 60);
        item.insert("sk".into(), AttributeValue::S(format!("added#{round}")));
        item
    });
    put_all(&client, LEDGER, added).await;
}

/// The table after a targeted restore of `in_scope` keys: their restore-point version (or
/// nothing), every other item as the bad job left it.
fn expected(
    before: &BTreeMap<String, Item>,
    damaged: &BTreeMap<String, Item>,
    in_scope: impl Fn(&str, &Item) -> bool,
) -> BTreeMap<String, Item> {
    let mut out: BTreeMap<String, Item> = damaged
        .iter()
        .filter(|(k, v)| !in_scope(k, v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in before.iter().filter(|(k, v)| in_scope(k, v)) {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The keys file: thirty keys the job deleted or rewrote, and three it added.
fn keys_file(before: &BTreeMap<String, Item>, damaged: &BTreeMap<String, Item>) -> Vec<Item> {
    let key = dynamo_dr::item::KeySchema {
        hash: "pk".into(),
        range: Some("sk".into()),
    };
    let changed = before
        .iter()
        .filter(|(k, v)| damaged.get(*k) != Some(*v))
        .take(30);
    let added = damaged
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .take(3);
    changed
        .chain(added)
        .map(|(_, item)| dynamo_dr::item::key_only(&key, item))
        .collect()
}

/// The session the handler answers with; a test swaps it to put a proxy in the way.
pub(super) type Current = Arc<Mutex<Option<Arc<Session>>>>;

/// The handler, answering every Task in-process; segments stop at their first page boundary.
pub(super) fn handler(session: Current) -> Handler {
    Arc::new(move |_function, payload| {
        let session = session.clone();
        Box::pin(async move {
            let s = session.lock().expect("session").clone().expect("a session");
            let action = Action::parse(payload).map_err(|e| diag(&e))?;
            let mut inv = match action {
                Action::Segment { .. } => short(),
                _ => long(),
            };
            inv.role = Role::Table("LedgerTable".into());
            let mut answer = worker::handle(&s, action, &inv)
                .await
                .map_err(|e| diag(&e))?;
            if answer.state == Next::Wait {
                answer.wait_seconds = 1;
            }
            Ok(serde_json::to_value(answer).expect("answer"))
        })
    })
}

pub(super) struct Machines {
    parent: String,
    child: String,
}

/// One recovery by the parent, to its end; where moto's engine cannot start the child (see
/// `sfn.rs`), the child as the parent starts it, then the parent again with the same input.
pub(super) async fn run_recovery(
    moto: &Emulator,
    m: &Machines,
    name: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    let ended = run_to_end(moto, &m.parent, name, input).await;
    if ended["status"] != "FAILED"
        || ended["error"] == "Refused"
        || !child_not_started(moto, &ended)
    {
        return ended;
    }
    let id = format!("{}.{LEDGER}", input["incidentId"].as_str().expect("id"));
    let child_input = json!({ "executionId": id });
    let sync = run_to_end(moto, &m.child, &format!("{name}-sync"), &child_input).await;
    assert_eq!(
        sync["status"],
        "SUCCEEDED",
        "{name}: {}",
        failures(moto, &sync)
    );
    run_to_end(moto, &m.parent, &format!("{name}-2"), input).await
}

/// Whether the execution failed where moto 5.2.5 fails `startExecution.sync:2` (`sfn.rs`).
fn child_not_started(moto: &Emulator, ended: &serde_json::Value) -> bool {
    failures(moto, ended).contains("'StateMachineArn'")
}

async fn recover(moto: &Emulator, m: &Machines, name: &str, input: &serde_json::Value) {
    let ended = run_recovery(moto, m, name, input).await;
    assert_eq!(
        ended["status"],
        "SUCCEEDED",
        "{name}: {}",
        failures(moto, &ended)
    );
}

/// What failed in an execution: its Tasks' and Map iterations' errors.
pub(super) fn failures(moto: &Emulator, ended: &serde_json::Value) -> String {
    let history = moto.json_call(
        "states",
        "AWSStepFunctions.GetExecutionHistory",
        &json!({ "executionArn": ended["executionArn"], "maxResults": 1000 }).to_string(),
    );
    let failed: Vec<String> = history["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.ends_with("Failed")))
        .map(|e| e.to_string())
        .collect();
    format!("{ended}\n{}", failed.join("\n"))
}

pub(super) async fn machines(moto: &Emulator) -> Machines {
    let role = create_role(moto, "states-role");
    let names = dynamo_dr::stack::Names::of("LedgerTable");
    let child_def = dynamo_dr::stack::sync_definition("LedgerTable", 4);
    let child = create_machine(
        moto,
        &names.sync_machine,
        &definition(child_def, &[("Function", FUNCTION)]),
        &role,
    );
    let parent_def = dynamo_dr::stack::restore_definition("LedgerTable");
    let subs = [("Function", FUNCTION), ("SyncMachine", child.as_str())];
    let parent = create_machine(
        moto,
        &names.restore_machine,
        &definition(parent_def, &subs),
        &role,
    );
    Machines { parent, child }
}

async fn put_keys(moto: &Emulator, keys: &[Item]) -> (String, String) {
    let lines: String = keys
        .iter()
        .map(|k| format!("{}\n", dynamo_dr::item::key_to_json(k).expect("json")))
        .collect();
    let opts = ledger_session(moto).aws;
    let s3 = dynamo_dr::aws::s3_client(&opts).await;
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("bucket");
    let key = "incidents/inc-keys.jsonl";
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(lines.clone().into_bytes().into())
        .send()
        .await
        .expect("put keys");
    let sha = hex::encode(Sha256::digest(lines.as_bytes()));
    (format!("s3://{BUCKET}/{key}"), sha)
}

/// Moto running the machines, the handler behind the router, the table with its backup.
struct World {
    moto: Emulator,
    router: LambdaRouter,
    session: Current,
    m: Machines,
    backup: String,
    before: BTreeMap<String, Item>,
}

impl World {
    /// The payload from the backup, with `extra` fields.
    fn payload(&self, incident: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut input = json!({ "incidentId": incident, "backupArn": self.backup,
                                "tableNameRecoveryConfirmation": LEDGER });
        for (k, v) in extra.as_object().expect("object") {
            input[k] = v.clone();
        }
        input
    }
}

async fn world() -> World {
    init();
    let session: Current = Arc::default();
    let router = LambdaRouter::start(handler(session.clone()));
    let port = router.port().to_string();
    let moto = Emulator::start_with_env(Kind::Moto, &[], &[("MOTO_PORT", &port)]).await;
    router.forward_to(&moto.endpoint());
    let reply = moto.post(
        "/moto-api/config",
        "Content-Type: application/json\r\n",
        r#"{"stepfunctions": {"execute_state_machine": true}}"#,
    );
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    let client = moto.client();
    create_table(&client, &ledger()).await;
    let items = (0..LEDGER_ITEMS).map(|i| sized_item(&ledger(), i, 100));
    put_all(&client, LEDGER, items).await;
    let backup = create_backup(&client, LEDGER, "restore-point").await;
    let before = scan_all(&client, LEDGER).await;
    assert!(
        dynamo_dr::journal::dynamo::init(&client, JOURNAL)
            .await
            .expect("journal init")
    );
    *session.lock().expect("session") = Some(Arc::new(ledger_session(&moto)));
    let m = machines(&moto).await;
    World {
        moto,
        router,
        session,
        m,
        backup,
        before,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machines_restore_from_a_backup_and_every_targeted_scope() {
    let w = world().await;
    let (moto, m, before, router) = (&w.moto, &w.m, &w.before, &w.router);
    let client = moto.client();
    let payload = |incident: &str, extra| w.payload(incident, extra);

    damage(moto, 1).await;
    recover(moto, m, "table", &payload("inc-table", json!({}))).await;
    assert_eq!(&scan_all(&client, LEDGER).await, before, "the whole table");

    damage(moto, 2).await;
    let damaged = scan_all(&client, LEDGER).await;
    let missing = json!({ "scope": "missing" });
    recover(moto, m, "missing", &payload("inc-missing", missing)).await;
    let want = expected(before, &damaged, |k, _| !damaged.contains_key(k));
    assert_eq!(scan_all(&client, LEDGER).await, want, "missing items only");

    damage(moto, 3).await;
    let damaged = scan_all(&client, LEDGER).await;
    let partition = json!({ "scope": "partition", "partitionValues": ["k#00000003"] });
    recover(moto, m, "partition", &payload("inc-part", partition)).await;
    let value = AttributeValue::S("k#00000003".into());
    let want = expected(before, &damaged, |_, item| item.get("pk") == Some(&value));
    assert_eq!(scan_all(&client, LEDGER).await, want, "one partition");

    damage(moto, 4).await;
    let damaged = scan_all(&client, LEDGER).await;
    let keys = keys_file(before, &damaged);
    let (uri, sha) = put_keys(moto, &keys).await;
    let named: Vec<String> = scan_keys(&damaged, before, &keys);
    recover(
        moto,
        m,
        "keys",
        &payload("inc-keys", json!({ "scope": "keys", "keys": uri })),
    )
    .await;
    let want = expected(before, &damaged, |k, _| named.iter().any(|n| n == k));
    assert_eq!(
        scan_all(&client, LEDGER).await,
        want,
        "the keys of the file"
    );

    let (_, journal) = ledger_session(moto).open().await.expect("journal");
    let exec = journal
        .load(&format!("inc-keys.{LEDGER}"))
        .await
        .expect("load")
        .expect("record");
    assert_eq!(exec.status, Status::Succeeded);
    match &exec.inputs.scope {
        journal::Scope::Keys {
            file,
            sha256,
            keys: n,
        } => {
            assert_eq!(file, &uri);
            assert_eq!(sha256, &sha, "the object's SHA-256 is recorded");
            assert_eq!(*n, keys.len() as u64);
        }
        other => panic!("scope {other:?}"),
    }
    assert_eq!(exec.targeted.puts, 30, "{:?}", exec.targeted);
    assert_eq!(exec.targeted.deletes, 3, "{:?}", exec.targeted);
    let calls: Vec<String> = router.calls().into_iter().map(|(_, a)| a).collect();
    assert!(calls.iter().any(|c| c == "segment"), "{calls:?}");
}

/// The `scan_all` keys of the items a keys file names.
fn scan_keys(
    damaged: &BTreeMap<String, Item>,
    before: &BTreeMap<String, Item>,
    keys: &[Item],
) -> Vec<String> {
    damaged
        .iter()
        .chain(before.iter())
        .filter(|(_, item)| {
            keys.iter()
                .any(|k| k.iter().all(|(name, v)| item.get(name) == Some(v)))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Conflicts in AWS, then the state machine started again with the same input: the scope is
/// planned again from emptied segment records, its keys written, and the check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targeted_run_with_conflicts_in_aws_is_planned_again_when_started_again() {
    let w = world().await;
    let (moto, m) = (&w.moto, &w.m);
    let client = moto.client();
    damage(moto, 1).await;
    let damaged = scan_all(&client, LEDGER).await;
    let keys = keys_file(&w.before, &damaged);
    let (uri, _) = put_keys(moto, &keys).await;
    let named = scan_keys(&damaged, &w.before, &keys);
    // The application writes two of the keys between the worker's read and its write.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            race: 2,
            // The table's writes, not the journal's.
            tables: vec![LEDGER.to_string()],
            ..Faults::none()
        },
    );
    let mut raced = ledger_session(moto);
    raced.aws.endpoint_url = Some(proxy.url().to_string());
    let direct = w.session.lock().expect("session").replace(Arc::new(raced));
    let input = w.payload("inc-race", json!({ "scope": "keys", "keys": uri }));
    let ended = run_recovery(moto, m, "race", &input).await;
    let seen = proxy.injected();
    assert_eq!(
        ended["status"],
        "FAILED",
        "{ended}; through the proxy: {} PutItem, {} raced",
        seen.count("PutItem"),
        seen.raced.load(std::sync::atomic::Ordering::Relaxed)
    );
    let failed = failures(moto, &ended);
    assert!(failed.contains("VerificationFailed"), "{failed}");
    let (_, journal) = ledger_session(moto).open().await.expect("journal");
    let id = format!("inc-race.{LEDGER}");
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.targeted.conflicts, 2, "{:?}", exec.targeted);
    let kept: Vec<String> = scan_all(&client, LEDGER)
        .await
        .into_iter()
        .filter(|(_, i)| i.contains_key("raced"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kept.len(), 2, "the application's writes are kept");

    // Started again, without the racing application: every key of the file is put back.
    *w.session.lock().expect("session") = direct;
    let again = run_recovery(moto, m, "race-again", &input).await;
    let exec = journal.load(&id).await.expect("load").expect("record");
    let events: Vec<&str> = exec.events.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(
        again["status"],
        "SUCCEEDED",
        "{}\n{events:#?}",
        failures(moto, &again)
    );
    let want = expected(&w.before, &damaged, |k, _| named.iter().any(|n| n == k));
    assert_eq!(
        scan_all(&client, LEDGER).await,
        want,
        "the keys of the file"
    );
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.targeted.replanned, 2, "{:?}", exec.targeted);
    assert_eq!(exec.targeted.conflicts, 0, "{:?}", exec.targeted);
    assert_eq!(
        exec.targeted.puts + exec.targeted.deletes,
        33,
        "{:?}",
        exec.targeted
    );
}
