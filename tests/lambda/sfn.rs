//! The state machines' control flow, executed by moto's Step Functions engine (the ASL
//! interpreter it runs when `execute_state_machine` is on): the parent and the child exactly as
//! `dynamo-dr stack` writes them, their Lambda tasks answered in-process by the handler through
//! a router that moto's engine calls as its endpoint (`MOTO_PORT`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dynamo_dr_testkit::lambda_router::{Handler, LambdaRouter};

use super::*;

const FUNCTION: &str = "arn:aws:lambda:us-east-1:123456789012:function:dynamo-dr-OrdersTable";

/// A definition with its `${…}` substitutions made, as CloudFormation makes them.
pub(crate) fn definition(def: serde_json::Value, subs: &[(&str, &str)]) -> String {
    let mut text = def.to_string();
    for (k, v) in subs {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    text
}

pub(crate) fn create_machine(moto: &Emulator, name: &str, definition: &str, role: &str) -> String {
    let body =
        json!({ "name": name, "definition": definition, "roleArn": role, "type": "STANDARD" });
    let made = moto.json_call(
        "states",
        "AWSStepFunctions.CreateStateMachine",
        &body.to_string(),
    );
    made["stateMachineArn"].as_str().expect("arn").to_string()
}

pub(crate) async fn run_to_end(
    moto: &Emulator,
    machine: &str,
    name: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    let body = json!({ "stateMachineArn": machine, "name": name, "input": input.to_string() });
    let started = moto.json_call(
        "states",
        "AWSStepFunctions.StartExecution",
        &body.to_string(),
    );
    let arn = started["executionArn"]
        .as_str()
        .expect("execution")
        .to_string();
    let mut last = json!(null);
    wait_for("the execution to end", Duration::from_secs(240), || {
        let d = moto.json_call(
            "states",
            "AWSStepFunctions.DescribeExecution",
            &json!({ "executionArn": arn }).to_string(),
        );
        let running = d["status"] == "RUNNING";
        last = d;
        async move { !running }
    })
    .await;
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_runs_the_parent_and_the_child_with_the_handler_answering_their_tasks() {
    init();
    let session: Arc<OnceLock<Arc<Session>>> = Arc::default();
    let endpoint: Arc<OnceLock<Emulator>> = Arc::default();
    let damaged = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicBool::new(false));
    let handler: Handler = {
        let (session, endpoint, damaged) = (session.clone(), endpoint.clone(), damaged.clone());
        let cut = cut.clone();
        Arc::new(move |function, payload| {
            let (session, endpoint, damaged) = (session.clone(), endpoint.clone(), damaged.clone());
            let cut = cut.clone();
            Box::pin(async move {
                let s = session.get().expect("session").clone();
                let action = Action::parse(payload).map_err(|e| diag(&e))?;
                // The bad data is there when the child starts (moto's PITR restores what the
                // table holds at the restore, so it comes after phase 1).
                if matches!(action, Action::Phase { .. }) && !damaged.swap(true, Ordering::SeqCst) {
                    damage(endpoint.get().expect("moto")).await;
                }
                // Segments stop at their first page boundary: the Map iterations loop.
                // The first look at phase 1 is cut by its deadline: the parent waits.
                let mut inv = match action {
                    Action::Segment { .. } => short(),
                    Action::Advance { .. } if !cut.swap(true, Ordering::SeqCst) => killed(),
                    _ => long(),
                };
                // Each function's role, as `dynamo-dr stack` sets it.
                if function.contains("recovery-mode") {
                    inv.role = worker::Role::RecoveryMode("Prod".into());
                }
                let mut answer = worker::handle(&s, action, &inv)
                    .await
                    .map_err(|e| diag(&e))?;
                if answer.state == Next::Wait {
                    // A second, not the handler's 30, keeps the test short.
                    answer.wait_seconds = 1;
                }
                Ok(serde_json::to_value(answer).expect("answer"))
            })
        })
    };
    let router = LambdaRouter::start(handler);
    let port = router.port().to_string();
    let moto = Emulator::start_with_env(Kind::Moto, &[], &[("MOTO_PORT", &port)]).await;
    router.forward_to(&moto.endpoint());
    let reply = moto.post(
        "/moto-api/config",
        "Content-Type: application/json\r\n",
        r#"{"stepfunctions": {"execute_state_machine": true}}"#,
    );
    // moto answers 201 and shows only some of its config.
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    let (before, input) = scenario(&moto).await;
    let _ = session.set(Arc::new(super::session(&moto)));
    let role = create_role(&moto, "states-role");
    let names = dynamo_dr::stack::Names::of("OrdersTable");
    let child = create_machine(
        &moto,
        &names.sync_machine,
        &definition(
            dynamo_dr::stack::sync_definition("OrdersTable", 4),
            &[("Function", FUNCTION)],
        ),
        &role,
    );
    let parent = create_machine(
        &moto,
        &names.restore_machine,
        &definition(
            dynamo_dr::stack::restore_definition("OrdersTable"),
            &[("Function", FUNCTION), ("SyncMachine", &child)],
        ),
        &role,
    );
    let _ = endpoint.set(moto);
    let moto = endpoint.get().expect("moto");

    // A wrong confirmation ends in the Refused state, before anything changes.
    let mut wrong = input.clone();
    wrong["tableNameRecoveryConfirmation"] = json!("Orders-Prod");
    let refused = run_to_end(moto, &parent, "refused", &wrong).await;
    assert_eq!(refused["status"], "FAILED", "{refused}");
    assert_eq!(refused["error"], "Refused", "{refused}");
    assert!(!damaged.load(Ordering::SeqCst));

    let mut ended = run_to_end(moto, &parent, "recovery", &input).await;
    let first_run = ended["executionArn"].clone();
    if ended["status"] == "FAILED" {
        // moto 5.2.5 passes a service integration's ASL field names to boto3 unconverted, so
        // `states:startExecution.sync:2` fails with `'StateMachineArn'` (reproduced with a Pass
        // child alone). Then the child runs as the parent would start it, and the parent again
        // with the same input, which continues the same execution.
        let history = moto.json_call(
            "states",
            "AWSStepFunctions.GetExecutionHistory",
            &json!({ "executionArn": ended["executionArn"], "maxResults": 1000 }).to_string(),
        );
        let failed: Vec<&serde_json::Value> = history["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["type"] == "TaskFailed")
            .collect();
        assert_eq!(failed.len(), 1, "{history:#}");
        assert_eq!(
            failed[0]["taskFailedEventDetails"]["cause"], "'StateMachineArn'",
            "{history:#}"
        );
        let sync = run_to_end(
            moto,
            &child,
            "sync",
            &json!({ "executionId": "lambda-1.Orders-Prod-ABC123" }),
        )
        .await;
        assert_eq!(sync["status"], "SUCCEEDED", "{sync}");
        ended = run_to_end(moto, &parent, "recovery-2", &input).await;
    }
    assert_eq!(ended["status"], "SUCCEEDED", "{ended}");
    assert_eq!(
        scan_all(&moto.client(), TABLE).await,
        before,
        "the table equals the restore point"
    );
    let calls: Vec<String> = router.calls().into_iter().map(|(_, a)| a).collect();
    let count = |a: &str| calls.iter().filter(|c| c.as_str() == a).count();
    assert!(count("start") >= 2, "{calls:?}");
    assert!(count("advance") >= 2, "{calls:?}");
    // Delete and copy, then done: three calls of the child's first state.
    assert_eq!(count("phase"), 3, "{calls:?}");
    assert!(count("segment") > 2 * SEGMENTS as usize, "{calls:?}");
    let (_, journal) = session
        .get()
        .expect("session")
        .open()
        .await
        .expect("journal");
    let exec = journal
        .load("lambda-1.Orders-Prod-ABC123")
        .await
        .expect("load")
        .expect("record");
    assert_eq!(exec.status, Status::Succeeded);
    let history = |arn: &serde_json::Value| {
        moto.json_call(
            "states",
            "AWSStepFunctions.GetExecutionHistory",
            &json!({ "executionArn": arn, "maxResults": 1000 }).to_string(),
        )
    };
    let first = history(&first_run);
    let waited = first["events"]
        .as_array()
        .expect("events")
        .iter()
        .any(|e| e["type"] == "WaitStateEntered");
    assert!(waited, "the parent waited for the restore: {first:#}");

    // The environment's recovery-mode machine pauses and puts back its functions.
    let lambda = moto.lambda();
    create_function(&lambda, "Prod-Mailer", &role, Some(5), &[]).await;
    let rm_function = "arn:aws:lambda:us-east-1:123456789012:function:dynamo-dr-recovery-mode-Prod";
    let rm = create_machine(
        moto,
        "DRRecoveryModeProdStateMachine",
        &definition(
            dynamo_dr::stack::recovery_mode_definition("Prod"),
            &[("Function", rm_function)],
        ),
        &role,
    );
    let started = run_to_end(moto, &rm, "rm-start", &json!({ "change": "start" })).await;
    assert_eq!(started["status"], "SUCCEEDED", "{started}");
    assert_eq!(
        reserved_concurrency(&lambda, "Prod-Mailer").await,
        Some(0),
        "paused"
    );
    let ended = run_to_end(moto, &rm, "rm-end", &json!({ "change": "end" })).await;
    assert_eq!(ended["status"], "SUCCEEDED", "{ended}");
    assert_eq!(
        reserved_concurrency(&lambda, "Prod-Mailer").await,
        Some(5),
        "put back"
    );
}

pub(crate) fn diag(e: &dynamo_dr::Error) -> serde_json::Value {
    let d = dynamo_dr::lambda::diagnostic(e);
    json!({ "errorType": d.error_type, "errorMessage": d.error_message })
}
