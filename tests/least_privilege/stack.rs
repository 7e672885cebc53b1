//! The stack as generated: each worker action, run by the binary as a Lambda function behind a
//! recording proxy, evaluated against its function's role from the template; what each state
//! machine asks of IAM (its Tasks' service integrations), against the machine's role.

use std::time::{Duration, SystemTime};

use dynamo_dr_testkit::runtime_api::{Outcome as Invoked, RuntimeApi};
use serde_json::{Value, json};

use super::*;

const TABLE: &str = "Orders-Live";
const CONFIG: &str = "[environments.Prod]\nfunction_prefix = \"Prod-\"\ntags = { tier = \"prod\" }\n\
                      skip_recovery_events = [\"*Mailer*\"]\n\n\
                      [tables.Orders]\nname = \"Orders-Live\"\nenvironment = \"Prod\"\n\
                      keys_location = \"s3://dr-keys/incidents/\"\n\
                      export_bucket = \"dr-exports\"\nexport_prefix = \"incidents/\"\n";

/// `Fn::Sub` strings as CloudFormation resolves them in moto's account and region.
pub fn resolved(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("Fn::Sub") => json!(
            o["Fn::Sub"]
                .as_str()
                .expect("a Fn::Sub string")
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::Region}", emulator::REGION)
                .replace("${AWS::AccountId}", ACCOUNT)
        ),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), resolved(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(resolved).collect()),
        other => other.clone(),
    }
}

/// The policy of role `id` in `template`, resolved.
pub fn role_policy(template: &Value, id: &str) -> Value {
    let doc = &template["Resources"][id]["Properties"]["Policies"][0]["PolicyDocument"];
    assert!(doc.is_object(), "no role {id} in the template");
    resolved(doc)
}

/// `dynamo-dr stack FLAGS` with `config`.
pub fn template(moto: &Emulator, dir: &tempfile::TempDir, config: &str, flags: &[&str]) -> Value {
    let config = support::write_file(dir, "stack.toml", config);
    let mut args = vec![
        "--config",
        config.as_str(),
        "stack",
        "--journal-table",
        JOURNAL,
    ];
    args.extend_from_slice(flags);
    let run = support::dr(moto, &args, None);
    run.assert_code(0);
    run.json()
}

/// The binary serving one function of the stack, its requests through `proxy`.
struct Function {
    api: RuntimeApi,
    child: std::process::Child,
}

impl Function {
    fn spawn(moto: &Emulator, proxy: &RecordingProxy, name: &str, role: &str) -> Function {
        let api = RuntimeApi::start();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-dr"))
            .envs(moto.cli_env())
            .env("AWS_ENDPOINT_URL", proxy.url())
            .env("AWS_LAMBDA_RUNTIME_API", api.addr())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("DYNAMO_DR_JOURNAL", format!("dynamodb://{JOURNAL}"))
            .env("DYNAMO_DR_CONFIG", CONFIG)
            .env("DYNAMO_DR_ROLE", role)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the function");
        Function { api, child }
    }

    async fn ok(&self, payload: Value) -> Value {
        match self
            .api
            .invoke(payload.clone(), Duration::from_secs(120))
            .await
        {
            Invoked::Response(v) => v,
            Invoked::Error(e) => panic!("{payload}: {e}"),
        }
    }

    /// Asks `payload` until the answer's state is `done` or `until` holds.
    async fn until(&self, payload: Value, until: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            let answer = self.ok(payload.clone()).await;
            if answer["state"] == "done" || until(&answer) {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{payload} never finished");
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// After phase 1 (moto restores current data): a bad job deletes two items and adds one.
async fn damage(moto: &Emulator) {
    let client = moto.client();
    let spec = TableSpec::hash_only(TABLE, Scalar::S);
    for i in [3, 5] {
        client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(spec.key(i)))
            .send()
            .await
            .expect("damage");
    }
    put_all(&client, TABLE, [sized_item(&spec, 9_999, 100)]).await;
}

/// The parent's and the child's Tasks, as the state machines send them, to the end; the
/// damage after phase 1 when `damaged` (moto's PITR restores current data).
async fn recover(f: &Function, moto: &Emulator, input: Value, damaged: bool) {
    let started = f
        .ok(json!({ "action": "start", "table": "Orders", "input": input }))
        .await;
    let id = started["executionId"].clone();
    let advance = json!({ "action": "advance", "executionId": id });
    f.until(advance.clone(), |a| a["phase"] != "backup-and-restore")
        .await;
    if damaged {
        damage(moto).await;
    }
    loop {
        let phase = f.ok(json!({ "action": "phase", "executionId": id })).await;
        if phase["state"] == "done" {
            break;
        }
        for n in phase["segments"].as_array().expect("segments") {
            let segment = json!({ "action": "segment", "executionId": id,
                                  "phase": phase["phase"], "segment": n });
            f.until(segment, |_| false).await;
        }
    }
    let done = f.until(advance, |_| false).await;
    assert_eq!(done["phase"], "done", "{done}");
}

/// From a backup, the keys of a file in S3 (conditional puts and deletes), then a partition
/// (Query), as the state machines run them.
async fn targeted(f: &Function, moto: &Emulator) {
    let client = moto.client();
    let backup = create_backup(&client, TABLE, "before-the-job").await;
    damage(moto).await;
    let spec = TableSpec::hash_only(TABLE, Scalar::S);
    let lines: String = [spec.key(3), spec.key(9_999)]
        .iter()
        .map(|k| format!("{}\n", dynamo_dr::item::key_to_json(k).expect("key")))
        .collect();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_s3::config::Credentials::for_tests())
        .region(aws_sdk_s3::config::Region::new(emulator::REGION))
        .endpoint_url(moto.endpoint())
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    s3.create_bucket()
        .bucket("dr-keys")
        .send()
        .await
        .expect("bucket");
    s3.put_object()
        .bucket("dr-keys")
        .key("incidents/stack-2.jsonl")
        .body(lines.into_bytes().into())
        .send()
        .await
        .expect("keys object");
    let base = json!({ "backupArn": backup, "tableNameRecoveryConfirmation": TABLE });
    let mut keys = base.clone();
    keys["incidentId"] = json!("stack-2");
    keys["scope"] = json!("keys");
    keys["keys"] = json!("s3://dr-keys/incidents/stack-2.jsonl");
    recover(f, moto, keys, false).await;
    let mut partition = base;
    partition["incidentId"] = json!("stack-3");
    partition["scope"] = json!("partition");
    let value = match spec.key(5).remove("id") {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(v)) => v,
        other => panic!("key {other:?}"),
    };
    partition["partitionValues"] = json!([value]);
    recover(f, moto, partition, false).await;
}

/// A bad write on a clock two hours back, after PITR was turned on at its start: the window
/// scope exports the window and reverts from it, as the state machines run it.
async fn window(f: &Function, moto: &Emulator, history: &FaultProxy, base: SystemTime) {
    moto.s3("PUT", "/dr-exports", b"");
    let spec = TableSpec::hash_only(TABLE, Scalar::S);
    history
        .history()
        .set_clock(Some(base + Duration::from_secs(30 * 60)));
    let bad = (100..105).map(|i| sized_item(&spec, i, 90));
    put_all(&history.client(), TABLE, bad).await;
    history.history().set_clock(None);
    let at = |m: u64| rfc3339(base + Duration::from_secs(m * 60));
    let input = json!({ "incidentId": "stack-4", "tableNameRecoveryConfirmation": TABLE,
                        "scope": "window", "from": at(15), "to": at(45) });
    recover(f, moto, input, false).await;
}

/// What a state machine's Tasks ask of IAM: `lambda:invoke` invokes the function,
/// `startExecution.sync:2` starts the child and waits on it through the managed rule, a
/// distributed Map starts child executions of its own machine
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/service-integration-iam-templates.html>,
/// <https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html>).
pub fn machine_requests(template: &Value, machine: &str) -> Vec<Authorization> {
    let props = &template["Resources"][machine]["Properties"];
    let name_of = |v: &Value| -> String {
        let id = v["Ref"]
            .as_str()
            .or(v["Fn::GetAtt"][0].as_str())
            .expect("a reference");
        let p = &template["Resources"][id]["Properties"];
        match p["FunctionName"].as_str() {
            Some(f) => iam::function_arn(f),
            None => states_arn(
                "stateMachine",
                p["StateMachineName"].as_str().expect("name"),
            ),
        }
    };
    let subs: BTreeMap<String, String> = props["DefinitionSubstitutions"]
        .as_object()
        .expect("substitutions")
        .iter()
        .map(|(k, v)| (format!("${{{k}}}"), name_of(v)))
        .collect();
    let own = props["StateMachineName"].as_str().expect("name");
    let mut out = Vec::new();
    walk(&props["Definition"], &mut |state| {
        let task = |a: &str, r: &str| Authorization::new(a, r.to_string(), machine);
        let param = |k: &str| subs[state["Parameters"][k].as_str().unwrap_or_default()].clone();
        match state["Resource"].as_str() {
            Some("arn:aws:states:::lambda:invoke") => {
                out.push(task("lambda:InvokeFunction", &param("FunctionName")))
            }
            Some("arn:aws:states:::states:startExecution.sync:2") => {
                let child = param("StateMachineArn");
                let name = child.rsplit(':').next().unwrap_or_default().to_string();
                let execution = states_arn("execution", &format!("{name}:run-1"));
                out.push(task("states:StartExecution", &child));
                out.push(task("states:DescribeExecution", &execution));
                out.push(task("states:StopExecution", &execution));
                let rule = format!(
                    "arn:aws:events:{}:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule",
                    emulator::REGION
                );
                for action in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
                    out.push(task(action, &rule));
                }
            }
            _ => {}
        }
        if state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED" {
            let run = states_arn("execution", &format!("{own}/map-1:run-1"));
            out.push(task(
                "states:StartExecution",
                &states_arn("stateMachine", own),
            ));
            out.push(task("states:DescribeExecution", &run));
            out.push(task("states:StopExecution", &run));
        }
    });
    out
}

fn states_arn(kind: &str, rest: &str) -> String {
    format!(
        "arn:aws:states:{}:{ACCOUNT}:{kind}:{rest}",
        emulator::REGION
    )
}

/// Every state of a definition, nested ones (Map iterations) too.
fn walk(definition: &Value, visit: &mut dyn FnMut(&Value)) {
    for state in definition["States"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
    {
        visit(state);
        for inner in ["ItemProcessor", "Iterator"] {
            if state[inner].is_object() {
                walk(&state[inner], visit);
            }
        }
    }
}

/// The journal, and a streamed table with PITR whose consumers recovery mode pauses: one
/// replays the recovery, one skips it.
async fn world(moto: &Emulator) {
    let consumers = [("Prod-Indexer", None), ("Prod-Mailer", Some(2))];
    crate::scenarios::streamed_table(moto, TABLE, &consumers).await;
    assert!(
        dynamo_dr::journal::dynamo::init(&moto.client(), JOURNAL)
            .await
            .expect("journal init")
    );
}

/// The stack's roles' outcomes: the table's and the environment's functions, run, and every
/// state machine's Tasks, for an inline Map and for a distributed one.
pub async fn outcomes() -> Vec<Outcome> {
    let moto = Emulator::start(Kind::Moto).await;
    world(&moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let t = template(&moto, &dir, CONFIG, &[]);
    let names = ["Orders-Live", "Orders", "Prod"];
    // The table's function reaches moto through the history, which exports a window.
    let history = FaultProxy::with_history(&moto.endpoint(), Faults::none());
    let base = SystemTime::now() - Duration::from_secs(2 * 3600);
    history.history().set_clock(Some(base));
    enable_pitr(&history.client(), TABLE).await;
    history.history().set_clock(None);
    let (table_proxy, mode_proxy) = (
        RecordingProxy::start(history.url()),
        RecordingProxy::start(&moto.endpoint()),
    );
    let mode = Function::spawn(
        &moto,
        &mode_proxy,
        "dynamo-dr-recovery-mode-Prod",
        "recovery-mode:Prod",
    );
    let table = Function::spawn(&moto, &table_proxy, "dynamo-dr-Orders", "table:Orders");
    let change = |c: &str| json!({ "action": "recovery-mode", "environment": "Prod", "change": c });
    mode.until(change("start"), |_| true).await;
    let input = json!({ "incidentId": "stack-1", "pitrBackupTime": "latest",
                        "tableNameRecoveryConfirmation": TABLE });
    recover(&table, &moto, input, true).await;
    targeted(&table, &moto).await;
    window(&table, &moto, &history, base).await;
    mode.until(change("end"), |_| true).await;
    let mut out = vec![
        evaluate(
            "stack: table function",
            vec![role_policy(&t, "OrdersFunctionRole")],
            table_proxy.authorizations(),
            &names,
        ),
        evaluate(
            "stack: recovery-mode function",
            vec![role_policy(&t, "ProdRecoveryModeFunctionRole")],
            mode_proxy.authorizations(),
            &names,
        ),
    ];
    let wide = template(&moto, &dir, CONFIG, &["--max-concurrency", "100"]);
    for (template, label) in [(&t, "inline"), (&wide, "distributed")] {
        for (machine, role) in [
            (
                "DRRestoreDynamoDbTableOrdersStateMachine",
                "OrdersStatesRole",
            ),
            ("OrdersDRSyncTableDataStateMachine", "OrdersStatesRole"),
            (
                "DRRecoveryModeProdStateMachine",
                "ProdRecoveryModeStatesRole",
            ),
        ] {
            out.push(evaluate(
                &format!("stack: {machine} ({label} Map)"),
                vec![role_policy(template, role)],
                machine_requests(template, machine),
                &names,
            ));
        }
    }
    out
}

/// A table encrypted with a customer managed key gets that key, through DynamoDB only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_a_customer_managed_key_gets_it_in_the_stack_and_the_policy() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let key = format!(
        "arn:aws:kms:{}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        emulator::REGION
    );
    let via = json!(format!("dynamodb.{}.amazonaws.com", emulator::REGION));
    let decrypt = |k: &str| {
        Authorization::new(
            "kms:Decrypt",
            k.to_string(),
            "DynamoDB on the role's behalf",
        )
        .with("kms:ViaService", via.clone())
    };
    let flag = format!("Orders={key}");
    let from_config = format!("{CONFIG}kms_key = \"{key}\"\n");
    for (config, flags) in [
        (CONFIG, vec!["--kms-key", flag.as_str()]),
        (from_config.as_str(), vec![]),
    ] {
        let t = template(&moto, &dir, config, &flags);
        let role = vec![role_policy(&t, "OrdersFunctionRole")];
        let verdicts = iam::evaluate(
            &role,
            &[decrypt(&key), decrypt(&key.replace("1234abcd", "9999abcd"))],
        );
        assert!(
            verdicts[0].allowed(),
            "the table's key, with {flags:?}: {:?}",
            verdicts[0]
        );
        assert!(!verdicts[1].allowed(), "another key: {:?}", verdicts[1]);
        let direct = iam::evaluate(
            &role,
            &[Authorization::new("kms:Decrypt", key.clone(), "direct")],
        );
        assert!(
            !direct[0].allowed(),
            "the key only through DynamoDB: {:?}",
            direct[0]
        );
    }
    let none = template(&moto, &dir, CONFIG, &[]);
    let verdict = iam::evaluate(
        &[role_policy(&none, "OrdersFunctionRole")],
        &[decrypt(&key)],
    );
    assert!(!verdict[0].allowed(), "no key without --kms-key or kms_key");
    // `iam-policy` reads the table's key from the config as well.
    let path = support::write_file(&dir, "kms.toml", &from_config);
    let run = support::dr(
        &moto,
        &[
            "--config",
            &path,
            "iam-policy",
            "--table",
            "Orders",
            "--account",
            ACCOUNT,
        ],
        None,
    );
    run.assert_code(0);
    let verdict = iam::evaluate(&[run.json()], &[decrypt(&key)]);
    assert!(
        verdict[0].allowed(),
        "iam-policy with kms_key: {:?}",
        verdict[0]
    );
}

/// A `function_prefix` that matches the stack's own functions would let recovery mode pause
/// them: refused, exit 2, no template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_prefix_matching_the_stacks_own_functions_is_refused() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    for prefix in ["dynamo-dr-", "dynamo-", "dynamo-dr-Orders"] {
        let config = CONFIG.replace(
            "function_prefix = \"Prod-\"",
            &format!("function_prefix = \"{prefix}\""),
        );
        let path = support::write_file(&dir, "bad.toml", &config);
        let run = support::dr(&moto, &["--config", &path, "stack"], None);
        run.assert_code(2);
        assert!(
            run.stdout.is_empty(),
            "{prefix}: no template: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains("function_prefix") && run.stderr.contains("dynamo-dr-Orders"),
            "{prefix}: {}",
            run.stderr
        );
    }
}
