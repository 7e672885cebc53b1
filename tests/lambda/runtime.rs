//! The binary's real runtime loop (`lambda_runtime`), through a local Runtime API: one
//! invocation of each kind, and a whole restore.

use std::time::Duration;

use super::*;

/// Runs the state machines' sequence of invocations through the Runtime API.
async fn invoke(api: &RuntimeApi, payload: serde_json::Value) -> serde_json::Value {
    match api.invoke(payload.clone(), Duration::from_secs(120)).await {
        Outcome::Response(v) => v,
        Outcome::Error(e) => panic!("{payload}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_every_kind_of_invocation_through_the_runtime_api() {
    init();
    let moto = Emulator::start(Kind::Moto).await;
    let (before, input) = scenario(&moto).await;
    let lambda = moto.lambda();
    let role = create_role(&moto, "app-role");
    create_function(&lambda, "Prod-Mailer", &role, Some(5), &[]).await;
    let api = RuntimeApi::start();
    let mut function = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-dr"));
    function
        .envs(moto.cli_env())
        .env("AWS_LAMBDA_RUNTIME_API", api.addr())
        .env("AWS_LAMBDA_FUNCTION_NAME", "dynamo-dr-OrdersTable")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("DYNAMO_DR_JOURNAL", format!("dynamodb://{JOURNAL}"))
        .env("DYNAMO_DR_CONFIG", config_text())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut recovery_function = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-dr"));
    let rm_api = RuntimeApi::start();
    recovery_function
        .envs(moto.cli_env())
        .env("AWS_LAMBDA_RUNTIME_API", rm_api.addr())
        .env("AWS_LAMBDA_FUNCTION_NAME", "dynamo-dr-recovery-mode-Prod")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("DYNAMO_DR_JOURNAL", format!("dynamodb://{JOURNAL}"))
        .env("DYNAMO_DR_CONFIG", config_text())
        .env("DYNAMO_DR_ROLE", "recovery-mode:Prod")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    function.env("DYNAMO_DR_ROLE", "table:OrdersTable");
    let mut child = function.spawn().expect("function");
    let mut rm_child = recovery_function.spawn().expect("recovery-mode function");

    // Each function keeps to its role: the table's refuses recovery mode and other tables, the
    // environment's refuses restores, each before anything is written.
    for (api, payload, names) in [
        (
            &api,
            json!({"action": "recovery-mode", "environment": "Prod", "change": "end"}),
            "the worker of table OrdersTable",
        ),
        (
            &api,
            json!({"action": "start", "table": "OtherTable", "input": input}),
            "a start of table OtherTable",
        ),
        (
            &rm_api,
            json!({"action": "start", "table": "OrdersTable", "input": input}),
            "the recovery-mode function of environment Prod",
        ),
        (
            &rm_api,
            json!({"action": "recovery-mode", "environment": "Test", "change": "start"}),
            "a recovery-mode change of Test",
        ),
    ] {
        match api.invoke(payload.clone(), Duration::from_secs(60)).await {
            Outcome::Error(e) => {
                assert_eq!(e["errorType"], "Refused", "{payload}: {e}");
                let message = e["errorMessage"].as_str().unwrap_or("");
                assert!(message.contains(names), "{payload}: {message}");
            }
            other => panic!("{payload} was accepted: {other:?}"),
        }
    }
    let journal = session(&moto).open().await.expect("journal").1;
    assert_eq!(
        journal.load_recovery_mode("Prod").await.expect("load"),
        None,
        "a refused recovery-mode action records nothing"
    );
    assert!(
        journal.list().await.expect("list").is_empty(),
        "nor a refused start"
    );

    // A refusal is a function error of type Refused, which the parent's first state catches.
    let mut wrong = input.clone();
    wrong["tableNameRecoveryConfirmation"] = json!("nope");
    match api
        .invoke(
            json!({"action": "start", "table": "OrdersTable", "input": wrong}),
            Duration::from_secs(60),
        )
        .await
    {
        Outcome::Error(e) => {
            assert_eq!(e["errorType"], "Refused", "{e}");
            assert!(
                e["errorMessage"]
                    .as_str()
                    .unwrap_or("")
                    .contains("does not match"),
                "{e}"
            );
        }
        other => panic!("a wrong confirmation was accepted: {other:?}"),
    }
    match api
        .invoke(json!({"action": "explode"}), Duration::from_secs(60))
        .await
    {
        Outcome::Error(e) => assert_eq!(e["errorType"], "Refused", "{e}"),
        other => panic!("an unknown action was accepted: {other:?}"),
    }

    let started = invoke(
        &api,
        json!({"action": "start", "table": "OrdersTable", "input": input}),
    )
    .await;
    assert_eq!(started["state"], "continue", "{started}");
    let id = started["executionId"].as_str().expect("id").to_string();
    let mut advanced = invoke(&api, json!({"action": "advance", "executionId": id})).await;
    for _ in 0..20 {
        if advanced["phase"] != "backup-and-restore" {
            break;
        }
        advanced = invoke(&api, json!({"action": "advance", "executionId": id})).await;
    }
    assert_eq!(advanced["phase"], "delete", "{advanced}");
    for field in [
        "executionId",
        "phase",
        "state",
        "waitSeconds",
        "segments",
        "segment",
    ] {
        assert!(advanced.get(field).is_some(), "{field} in {advanced}");
    }
    damage(&moto).await;
    let mut segment_invocations = 0;
    loop {
        let phase = invoke(&api, json!({"action": "phase", "executionId": id})).await;
        if phase["state"] == "done" {
            break;
        }
        for n in phase["segments"].as_array().expect("segments") {
            loop {
                segment_invocations += 1;
                let s = invoke(
                    &api,
                    json!({"action": "segment", "executionId": id, "phase": phase["phase"], "segment": n}),
                )
                .await;
                assert_eq!(&s["segment"], n, "{s}");
                if s["state"] == "done" {
                    break;
                }
            }
        }
        assert!(segment_invocations < 100);
    }
    let done = invoke(&api, json!({"action": "advance", "executionId": id})).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(scan_all(&moto.client(), TABLE).await, before);

    // Recovery mode, by the environment's function.
    let rm = invoke(
        &rm_api,
        json!({"action": "recovery-mode", "environment": "Prod", "change": "start"}),
    )
    .await;
    assert_eq!(rm["state"], "done", "{rm}");
    assert_eq!(
        reserved_concurrency(&lambda, "Prod-Mailer").await,
        Some(0),
        "paused"
    );
    invoke(
        &rm_api,
        json!({"action": "recovery-mode", "environment": "Prod", "change": "end"}),
    )
    .await;
    assert_eq!(
        reserved_concurrency(&lambda, "Prod-Mailer").await,
        Some(5),
        "put back"
    );
    assert_eq!(api.init_error(), None);
    assert_eq!(rm_api.init_error(), None);
    for c in [&mut child, &mut rm_child] {
        let _ = c.kill();
        let _ = c.wait();
    }
    super::writers::stays_exact(&moto, &before, Duration::from_secs(60)).await;
}
