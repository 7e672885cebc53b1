//! Recovery mode against moto: the exact round trip, an interrupted start, dry runs, the restore
//! guard; and full pagination through exact response sequences.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client as Lambda;
use dynamo_dr_testkit::*;

use crate::support::{dr, write_file};

/// Every function's reserved concurrency and every mapping's state: what must come back exactly.
#[derive(Debug, PartialEq)]
struct Snapshot {
    reserved: BTreeMap<String, Option<i32>>,
    mappings: BTreeMap<String, (String, String)>,
}

async fn snapshot(lambda: &Lambda) -> Snapshot {
    let functions = lambda.list_functions().send().await.expect("ListFunctions");
    let mut reserved = BTreeMap::new();
    for f in functions.functions() {
        let name = f.function_name().expect("name").to_string();
        let r = lambda
            .get_function_concurrency()
            .function_name(&name)
            .send()
            .await
            .expect("concurrency");
        reserved.insert(name, r.reserved_concurrent_executions());
    }
    let mappings = lambda
        .list_event_source_mappings()
        .send()
        .await
        .expect("mappings")
        .event_source_mappings()
        .iter()
        .map(|m| {
            let function = m
                .function_arn()
                .unwrap_or_default()
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string();
            (
                m.uuid().expect("uuid").to_string(),
                (function, m.state().unwrap_or_default().to_string()),
            )
        })
        .collect();
    Snapshot { reserved, mappings }
}

/// 24 Prod functions (reserved none, 25 or 100), 2 DR functions, 4 Staging functions, and
/// mappings on SQS and a DynamoDB stream, some already disabled.
async fn environment(moto: &Emulator, prod: usize) -> Lambda {
    let lambda = moto.lambda();
    let role = create_role(moto, "app-role");
    let reserved = [None, Some(25), Some(100)];
    for i in 0..prod {
        create_function(
            &lambda,
            &format!("Prod-App-{i:02}"),
            &role,
            reserved[i % 3],
            &[("Environment", "Prod")],
        )
        .await;
    }
    for name in ["Prod-DisasterRecoveryRestore", "Prod-DisasterRecoverySync"] {
        create_function(&lambda, name, &role, Some(10), &[]).await;
    }
    for i in 0..4 {
        create_function(
            &lambda,
            &format!("Staging-App-{i}"),
            &role,
            reserved[i % 3],
            &[],
        )
        .await;
    }
    let stream_table = aws_sdk_dynamodb::types::StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewImage)
        .build()
        .expect("stream");
    let client = moto.client();
    create_table(&client, &TableSpec::hash_only("Events-Stream", Scalar::S)).await;
    let stream_arn = client
        .update_table()
        .table_name("Events-Stream")
        .stream_specification(stream_table)
        .send()
        .await
        .expect("enable stream")
        .table_description
        .and_then(|t| t.latest_stream_arn)
        .expect("stream arn");
    let map = |source: String, function: &str, enabled: bool| {
        let lambda = lambda.clone();
        let function = function.to_string();
        async move {
            let mut req = lambda
                .create_event_source_mapping()
                .event_source_arn(source)
                .function_name(function)
                .enabled(enabled);
            if req
                .get_event_source_arn()
                .as_deref()
                .is_some_and(|a| a.contains(":dynamodb:"))
            {
                req = req.starting_position(aws_sdk_lambda::types::EventSourcePosition::Latest);
            }
            req.send().await.expect("CreateEventSourceMapping");
        }
    };
    map(create_queue(moto, "orders"), "Prod-App-00", true).await;
    map(create_queue(moto, "emails"), "Prod-App-01", true).await;
    map(create_queue(moto, "paused"), "Prod-App-02", false).await;
    map(stream_arn.clone(), "Prod-App-03", true).await;
    map(stream_arn, "Prod-App-04", false).await;
    map(create_queue(moto, "staging"), "Staging-App-0", true).await;
    lambda
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_then_end_leaves_every_function_and_mapping_exactly_as_it_was() {
    let moto = Emulator::start(Kind::Moto).await;
    let lambda = environment(&moto, 24).await;
    let before = snapshot(&lambda).await;
    assert_eq!(before.reserved.len(), 30);

    let dry = dr(
        &moto,
        &[
            "recovery-mode",
            "start",
            "--environment",
            "Prod",
            "--dry-run",
        ],
        None,
    );
    dry.assert_code(0);
    assert_eq!(
        snapshot(&lambda).await,
        before,
        "a dry run changed something"
    );
    for i in 0..24 {
        assert!(
            dry.stdout.contains(&format!("Prod-App-{i:02}")),
            "{}",
            dry.stdout
        );
    }
    assert!(
        dry.stdout.contains("Prod-DisasterRecoveryRestore") && dry.stdout.contains("excluded"),
        "{}",
        dry.stdout
    );
    assert!(
        !dry.stdout.contains("Staging-App"),
        "other environments are not listed: {}",
        dry.stdout
    );

    dr(
        &moto,
        &["recovery-mode", "start", "--environment", "Prod", "--yes"],
        None,
    )
    .assert_code(0);
    let on = snapshot(&lambda).await;
    for (name, value) in &on.reserved {
        let expected = if name.starts_with("Prod-App-") {
            Some(0)
        } else {
            before.reserved[name]
        };
        assert_eq!(*value, expected, "{name}");
    }
    for (uuid, (function, state)) in &on.mappings {
        let was = &before.mappings[uuid].1;
        let expected = if function.starts_with("Prod-App-") {
            "Disabled"
        } else {
            was.as_str()
        };
        assert_eq!(state, expected, "mapping of {function}");
    }
    // A second start must not record the zeros as the originals.
    dr(
        &moto,
        &["recovery-mode", "start", "--environment", "Prod", "--yes"],
        None,
    )
    .assert_code(0);

    // Someone changes a paused function meanwhile: status flags it.
    lambda
        .put_function_concurrency()
        .function_name("Prod-App-05")
        .reserved_concurrent_executions(7)
        .send()
        .await
        .expect("drift");
    let status = dr(
        &moto,
        &["recovery-mode", "status", "--environment", "Prod"],
        None,
    );
    status.assert_code(0);
    let drifted: Vec<&str> = status
        .stdout
        .lines()
        .filter(|l| l.contains("changed to"))
        .collect();
    assert_eq!(drifted.len(), 1, "{}", status.stdout);
    assert!(drifted[0].contains("Prod-App-05"), "{}", status.stdout);

    let dry_end = dr(
        &moto,
        &["recovery-mode", "end", "--environment", "Prod", "--dry-run"],
        None,
    );
    dry_end.assert_code(0);
    assert!(dry_end.stdout.contains("re-enable"), "{}", dry_end.stdout);
    let after_dry_end = snapshot(&lambda).await;
    assert_eq!(
        after_dry_end.reserved["Prod-App-01"],
        Some(0),
        "a dry end changed something"
    );

    dr(
        &moto,
        &["recovery-mode", "end", "--environment", "Prod", "--yes"],
        None,
    )
    .assert_code(0);
    assert_eq!(snapshot(&lambda).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_killed_halfway_is_undone_exactly_by_end() {
    let moto = Emulator::start(Kind::Moto).await;
    let lambda = environment(&moto, 60).await;
    let before = snapshot(&lambda).await;
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("dynamo-dr"))
        .envs(moto.cli_env())
        .args(["recovery-mode", "start", "--environment", "Prod", "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let record = moto.journal_dir.join("recovery-mode/Prod.json");
    let started = Instant::now();
    let paused = loop {
        let n = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["functions"]
                    .as_object()
                    .map(|f| f.values().filter(|s| s["throttled"] == true).count())
            })
            .unwrap_or(0);
        if n >= 10 {
            break n;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "start finished before it could be interrupted"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "start never got going"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let mid = snapshot(&lambda).await;
    let zeros = mid
        .reserved
        .iter()
        .filter(|(n, v)| n.starts_with("Prod-App-") && **v == Some(0))
        .count();
    assert!(
        zeros >= paused && zeros < 60,
        "killed halfway: {zeros} of 60 paused"
    );

    let status = dr(
        &moto,
        &["recovery-mode", "status", "--environment", "Prod"],
        None,
    );
    assert!(status.stdout.contains("starting"), "{}", status.stdout);
    dr(
        &moto,
        &["recovery-mode", "end", "--environment", "Prod", "--yes"],
        None,
    )
    .assert_code(0);
    assert_eq!(snapshot(&lambda).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_refused_while_recovery_mode_is_off() {
    let moto = Emulator::start(Kind::Moto).await;
    let lambda = environment(&moto, 6).await;
    let client = moto.client();
    let spec = TableSpec::seed_like("Prod-Users-1");
    create_table(&client, &spec).await;
    enable_pitr(&client, &spec.name).await;
    put_all(&client, &spec.name, (0..20).map(|i| mixed_item(&spec, i))).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dr.toml",
        "[environments.Prod]\n\n[tables.Users]\nname = \"Prod-Users-1\"\nenvironment = \"Prod\"\n",
    );
    let restore = |incident: &str, extra: &[&str]| {
        let mut a = vec![
            "--config",
            config.as_str(),
            "restore",
            "--table",
            "Users",
            "--incident-id",
        ];
        a.push(incident);
        a.extend([
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-Users-1",
            "--yes",
        ]);
        a.extend(extra);
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        dr(
            &moto,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        )
    };

    let refused = run(restore("guard-1", &[]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("recovery-mode start --environment Prod"),
        "{}",
        refused.stderr
    );
    assert!(
        client
            .list_backups()
            .send()
            .await
            .expect("backups")
            .backup_summaries()
            .is_empty()
    );

    let live = run(restore("guard-2", &["--allow-live-traffic"]));
    live.assert_code(0);
    let status = dr(&moto, &["status", "guard-2.Prod-Users-1"], None);
    assert!(
        status.stdout.contains("LIVE TRAFFIC ALLOWED"),
        "{}",
        status.stdout
    );

    dr(
        &moto,
        &[
            "--config",
            &config,
            "recovery-mode",
            "start",
            "--environment",
            "Prod",
            "--yes",
        ],
        None,
    )
    .assert_code(0);
    run(restore("guard-3", &[])).assert_code(0);
    dr(
        &moto,
        &[
            "--config",
            &config,
            "recovery-mode",
            "end",
            "--environment",
            "Prod",
            "--yes",
        ],
        None,
    )
    .assert_code(0);
    let reserved = lambda
        .get_function_concurrency()
        .function_name("Prod-App-01")
        .send()
        .await
        .expect("c");
    assert_eq!(reserved.reserved_concurrent_executions(), Some(25));
}

#[tokio::test]
async fn every_page_of_functions_and_mappings_is_read() {
    use aws_sdk_lambda::operation::list_event_source_mappings::ListEventSourceMappingsOutput;
    use aws_sdk_lambda::operation::list_functions::ListFunctionsOutput;
    use aws_sdk_lambda::types::{EventSourceMappingConfiguration, FunctionConfiguration};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    let page = |names: &[&str], next: Option<&str>| {
        let mut out = ListFunctionsOutput::builder().set_next_marker(next.map(str::to_string));
        for n in names {
            out = out.functions(FunctionConfiguration::builder().function_name(*n).build());
        }
        out.build()
    };
    let functions = mock!(aws_sdk_lambda::Client::list_functions)
        .sequence()
        .output(move || page(&["Prod-A", "Staging-X"], Some("m1")))
        .output(move || page(&["Prod-B", "Prod-DisasterRecovery-1"], Some("m2")))
        .output(move || page(&["Prod-C"], None))
        .build();
    let mapping = |uuid: &str, state: &str| {
        EventSourceMappingConfiguration::builder()
            .uuid(uuid)
            .state(state)
            .event_source_arn("arn:q")
            .build()
    };
    let mappings = mock!(aws_sdk_lambda::Client::list_event_source_mappings)
        .sequence()
        .output(move || {
            ListEventSourceMappingsOutput::builder()
                .event_source_mappings(mapping("u1", "Enabled"))
                .next_marker("n1")
                .build()
        })
        .output(move || {
            ListEventSourceMappingsOutput::builder()
                .event_source_mappings(mapping("u2", "Disabled"))
                .event_source_mappings(mapping("u3", "Enabled"))
                .build()
        })
        .build();
    let client = mock_client!(
        aws_sdk_lambda,
        RuleMode::Sequential,
        [&functions, &mappings]
    );
    let env = dynamo_dr::config::Config::default()
        .environment("Prod")
        .expect("env");
    let selected = dynamo_dr::recovery_mode::select(&client, &env)
        .await
        .expect("select");
    let names: Vec<(&str, bool)> = selected
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.decision == dynamo_dr::recovery_mode::Decision::Pause,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("Prod-A", true),
            ("Prod-B", true),
            ("Prod-C", true),
            ("Prod-DisasterRecovery-1", false)
        ]
    );
    assert_eq!(functions.num_calls(), 3);
    let enabled = dynamo_dr::recovery_mode::enabled_mappings(&client, "Prod-A")
        .await
        .expect("mappings");
    let uuids: Vec<&str> = enabled.iter().map(|(u, _)| u.as_str()).collect();
    assert_eq!(uuids, ["u1", "u3"]);
    assert_eq!(mappings.num_calls(), 2);
}

#[tokio::test]
async fn failures_are_reported_others_still_done_and_a_rerun_finishes() {
    use aws_sdk_lambda::operation::get_function_concurrency::GetFunctionConcurrencyOutput;
    use aws_sdk_lambda::operation::list_event_source_mappings::ListEventSourceMappingsOutput;
    use aws_sdk_lambda::operation::list_functions::ListFunctionsOutput;
    use aws_sdk_lambda::operation::put_function_concurrency::{
        PutFunctionConcurrencyError, PutFunctionConcurrencyOutput,
    };
    use aws_sdk_lambda::types::FunctionConfiguration;
    use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
    use dynamo_dr::recovery_mode::{self, State};

    let functions = mock!(aws_sdk_lambda::Client::list_functions).then_output(|| {
        ListFunctionsOutput::builder()
            .functions(
                FunctionConfiguration::builder()
                    .function_name("Prod-A")
                    .build(),
            )
            .functions(
                FunctionConfiguration::builder()
                    .function_name("Prod-B")
                    .build(),
            )
            .functions(
                FunctionConfiguration::builder()
                    .function_name("Prod-C")
                    .build(),
            )
            .build()
    });
    let get = mock!(aws_sdk_lambda::Client::get_function_concurrency).then_output(|| {
        GetFunctionConcurrencyOutput::builder()
            .reserved_concurrent_executions(25)
            .build()
    });
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let f = failures.clone();
    let put =
        mock!(aws_sdk_lambda::Client::put_function_concurrency).then_compute_response(move |req| {
            // Prod-B fails the first time only.
            if req.function_name() == Some("Prod-B")
                && f.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
            {
                MockResponse::Error(PutFunctionConcurrencyError::generic(
                    aws_sdk_lambda::error::ErrorMetadata::builder()
                        .code("ServiceException")
                        .message("boom")
                        .build(),
                ))
            } else {
                MockResponse::Output(PutFunctionConcurrencyOutput::builder().build())
            }
        });
    let mappings = mock!(aws_sdk_lambda::Client::list_event_source_mappings)
        .then_output(|| ListEventSourceMappingsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_lambda,
        RuleMode::MatchAny,
        [&functions, &get, &put, &mappings],
        |c| c.retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
    );
    let dir = tempfile::tempdir().expect("dir");
    let journal: std::sync::Arc<dyn dynamo_dr::journal::Journal> = std::sync::Arc::new(
        dynamo_dr::journal::local::LocalJournal::open(dir.path()).expect("journal"),
    );
    let env = dynamo_dr::config::Config::default()
        .environment("Prod")
        .expect("env");
    let change = recovery_mode::Change {
        client: &client,
        journal: &journal,
        environment: "Prod",
        dry_run: false,
        timing: dynamo_dr::journal::lease::Timing::default(),
    };

    let first = recovery_mode::start(&change, &env).await.expect("start");
    let failed: Vec<&str> = first
        .iter()
        .filter(|a| a.error.is_some())
        .map(|a| a.target.as_str())
        .collect();
    assert_eq!(failed, ["Prod-B"]);
    assert_eq!(
        first.iter().filter(|a| a.done).count(),
        2,
        "the others were still paused"
    );
    let record = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    assert_eq!(record.state, State::Starting);
    assert!(
        record
            .functions
            .values()
            .all(|s| s.saved_reserved == Some(25))
    );

    let second = recovery_mode::start(&change, &env)
        .await
        .expect("start again");
    assert!(second.iter().all(|a| a.error.is_none()), "{second:?}");
    assert_eq!(
        second
            .iter()
            .filter(|a| a.done)
            .map(|a| a.target.as_str())
            .collect::<Vec<_>>(),
        ["Prod-B"],
        "only what was left"
    );
    let record = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    assert_eq!(record.state, State::On);
    assert!(
        record
            .functions
            .values()
            .all(|s| s.saved_reserved == Some(25) && s.throttled),
        "{record:?}"
    );
}
