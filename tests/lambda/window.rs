//! `"scope": "window"` as a Step Functions execution on moto's engine: the handler answers the
//! Tasks through the router, its requests through the testkit's history, so that phase 1 is an
//! incremental export and the child's segments revert from it. Writes made after the window
//! are kept, reported as conflicts, and fail the execution's check.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::lambda_router::LambdaRouter;

use super::scopes::{
    Current, LEDGER, LEDGER_ITEMS, failures, handler, ledger, machines, run_recovery,
};
use super::*;

const EXPORTS: &str = "dr-exports";

fn window_session(moto: &Emulator, proxy: &FaultProxy) -> Session {
    let config = format!(
        "[tables.LedgerTable]\nname = \"{LEDGER}\"\nsegments = 2\nscan_page_limit = 40\n\
         export_bucket = \"{EXPORTS}\"\nexport_prefix = \"incidents\"\n"
    );
    let mut s = Session {
        config: Config::parse(&config).expect("config"),
        ..session(moto)
    };
    s.aws.endpoint_url = Some(proxy.url().to_string());
    s
}

fn item(i: u64, v: &str) -> Item {
    let mut item = sized_item(&ledger(), i, 80);
    item.insert("v".into(), AttributeValue::S(v.into()));
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_machines_undo_a_window_and_keep_the_writes_after_it() {
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
    let direct = moto.client();
    create_table(&direct, &ledger()).await;
    put_all(
        &direct,
        LEDGER,
        (0..LEDGER_ITEMS).map(|i| item(i, "original")),
    )
    .await;
    moto.s3("PUT", &format!("/{EXPORTS}"), b"");
    assert!(
        journal::dynamo::init(&direct, JOURNAL)
            .await
            .expect("journal init")
    );

    // On a clock two hours back: PITR on, a bad deploy at +30 min (40 rewritten, 10 deleted,
    // 10 added), good writes at +50 min to 5 rewritten items and 1 added one.
    let proxy = FaultProxy::with_history(&moto.endpoint(), Faults::none());
    let (client, history) = (proxy.client(), proxy.history());
    let base = SystemTime::now() - Duration::from_secs(2 * 3600);
    let at = |m: u64| base + Duration::from_secs(m * 60);
    history.set_clock(Some(base));
    enable_pitr(&client, LEDGER).await;
    let before = scan_all(&direct, LEDGER).await;
    history.set_clock(Some(at(30)));
    put_all(&client, LEDGER, (0..40).map(|i| item(i, "bad"))).await;
    for i in 40..50 {
        let del = client.delete_item().table_name(LEDGER);
        del.set_key(Some(ledger().key(i)))
            .send()
            .await
            .expect("the bad deploy's delete");
    }
    let added = LEDGER_ITEMS..LEDGER_ITEMS + 10;
    put_all(&client, LEDGER, added.clone().map(|i| item(i, "bad"))).await;
    history.set_clock(Some(at(50)));
    let later: Vec<Item> = (0..5)
        .chain([LEDGER_ITEMS])
        .map(|i| item(i, "good later"))
        .collect();
    put_all(&client, LEDGER, later.clone()).await;
    history.set_clock(None);
    let mut expected = before;
    for item in &later {
        expected.insert(key_string(&["pk", "sk"], item), item.clone());
    }

    *session.lock().expect("session") = Some(Arc::new(window_session(&moto, &proxy)));
    let m = machines(&moto).await;
    let input = json!({ "incidentId": "inc-window", "tableNameRecoveryConfirmation": LEDGER,
                        "scope": "window", "from": rfc3339(at(20)), "to": rfc3339(at(45)) });
    let ended = run_recovery(&moto, &m, "window", &input).await;
    let failed = failures(&moto, &ended);
    assert_eq!(ended["status"], "FAILED", "{failed}");
    assert!(failed.contains("VerificationFailed"), "{failed}");
    assert_eq!(
        scan_all(&direct, LEDGER).await,
        expected,
        "the window undone, the later writes kept"
    );

    let (_, journal) = window_session(&moto, &proxy).open().await.expect("journal");
    let id = format!("inc-window.{LEDGER}");
    let exec = journal.load(&id).await.expect("load").expect("record");
    assert_eq!(exec.resources.exports.len(), 1, "{:?}", exec.resources);
    assert_eq!(exec.resources.exports[0].items, 60, "{:?}", exec.resources);
    assert_eq!(exec.targeted.conflicts, 6, "{:?}", exec.targeted);
    assert_eq!(exec.targeted.puts, 45, "{:?}", exec.targeted);
    assert_eq!(exec.targeted.deletes, 9, "{:?}", exec.targeted);
    assert_eq!(
        proxy.injected().count("Scan"),
        0,
        "a window reads no table whole"
    );
    let calls: Vec<String> = router.calls().into_iter().map(|(_, a)| a).collect();
    assert!(calls.iter().any(|c| c == "segment"), "{calls:?}");
}
