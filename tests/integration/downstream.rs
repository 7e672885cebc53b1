//! What the rest of the system sees: the plan names a table's stream and the mappings on it,
//! the default strategy follows what watches the table, and a global table is never emptied
//! unless the operator says so.

use aws_sdk_dynamodb::types::{StreamSpecification, StreamViewType};
use dynamo_dr_testkit::*;

use crate::support::{dr, dr_env};

const ITEMS: u64 = 60;

/// A hash-key table of `ITEMS` string items with PITR, and with a stream when `streamed`;
/// returns the stream's ARN.
pub(crate) async fn table(moto: &Emulator, name: &str, streamed: bool) -> Option<String> {
    let client = moto.client();
    let spec = TableSpec::hash_only(name, Scalar::S);
    create_table(&client, &spec).await;
    enable_pitr(&client, name).await;
    // moto fails writes of binary attributes to a streamed table, so these hold strings only.
    put_all(&client, name, (0..ITEMS).map(|i| sized_item(&spec, i, 100))).await;
    if !streamed {
        return None;
    }
    let spec = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .expect("stream");
    client
        .update_table()
        .table_name(name)
        .stream_specification(spec)
        .send()
        .await
        .expect("enable stream")
        .table_description
        .and_then(|t| t.latest_stream_arn)
}

/// Two functions consuming the stream.
async fn consumers(moto: &Emulator, stream_arn: &str) -> Vec<String> {
    let lambda = moto.lambda();
    let role = create_role(moto, "consumer-role");
    let mut uuids = Vec::new();
    for function in ["Prod-SearchIndexer", "Prod-WelcomeMailer"] {
        create_function(&lambda, function, &role, None, &[]).await;
        let m = lambda
            .create_event_source_mapping()
            .event_source_arn(stream_arn)
            .function_name(function)
            .batch_size(50)
            .starting_position(aws_sdk_lambda::types::EventSourcePosition::TrimHorizon)
            .send()
            .await
            .expect("CreateEventSourceMapping");
        uuids.push(m.uuid.expect("uuid"));
    }
    uuids
}

fn dry_run(table: &str) -> Vec<String> {
    [
        "restore",
        "--table",
        table,
        "--incident-id",
        "inc-s",
        "--pitr-time",
        "latest",
        "--confirm",
        table,
        "--dry-run",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_names_the_stream_and_its_consumers_and_diff_is_their_default() {
    let moto = Emulator::start(Kind::Moto).await;
    let stream = table(&moto, "Prod-Orders", true).await.expect("stream arn");
    table(&moto, "Prod-Plain", false).await;
    let uuids = consumers(&moto, &stream).await;

    let args = dry_run("Prod-Orders");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plan = dr(&moto, &args, None);
    plan.assert_code(0);
    let text = &plan.stdout;
    for expected in [
        stream.as_str(),
        "NEW_AND_OLD_IMAGES",
        "Prod-SearchIndexer",
        "Prod-WelcomeMailer",
        "batch 50",
        &uuids[0],
        &uuids[1],
        &format!(
            "hard-reset ~{} ({ITEMS} REMOVE then ~{ITEMS} INSERT",
            2 * ITEMS
        ),
        "diff: one per real difference only",
        "table (DIFF)",
        "strategy:           diff (the default: the table's writes reach consumers",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the plan:\n{text}"
        );
    }

    let args = dry_run("Prod-Plain");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let plain = dr(&moto, &args, None);
    plain.assert_code(0);
    for expected in [
        "table (HARD RESET)",
        "strategy:           hard-reset (the default;",
        "stream:             none",
        "replicas:           none",
    ] {
        assert!(
            plain.stdout.contains(expected),
            "no {expected:?} in the plan:\n{}",
            plain.stdout
        );
    }

    // The restore itself runs the default it planned, and the report says what saw it.
    let reports = tempfile::tempdir().expect("dir");
    let restore = dr(
        &moto,
        &[
            "restore",
            "--table",
            "Prod-Orders",
            "--incident-id",
            "inc-s",
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-Orders",
            "--yes",
            "--output",
            "json",
            "--report-dir",
            &reports.path().display().to_string(),
        ],
        None,
    );
    restore.assert_code(0);
    assert_eq!(restore.json()["strategy"], "diff", "{}", restore.stdout);
    let report = std::fs::read_to_string(reports.path().join("dynamo-dr-report-inc-s.md"))
        .expect("the incident report");
    for expected in [
        format!("downstream of Prod-Orders: stream {stream} (NEW_AND_OLD_IMAGES)"),
        "Prod-SearchIndexer".into(),
        "Prod-WelcomeMailer".into(),
        "strategy diff (the default".into(),
        format!("stream records expected: hard-reset ~{}", 2 * ITEMS),
    ] {
        assert!(
            report.contains(&expected),
            "no {expected:?} in the report:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_table_is_not_emptied_without_the_flag() {
    let moto = Emulator::start(Kind::Moto).await;
    table(&moto, "Prod-Global", false).await;
    let client = moto.client();
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            replicas: vec![(
                "Prod-Global".into(),
                vec!["eu-west-1".into(), "ap-southeast-2".into()],
            )],
            ..Faults::none()
        },
    );
    let env = [("AWS_ENDPOINT_URL", proxy.url())];
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "restore",
            "--table",
            "Prod-Global",
            "--incident-id",
            "inc-g",
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-Global",
            "--strategy",
            "hard-reset",
            "--yes",
        ];
        args.extend_from_slice(extra);
        dr_env(&moto, &env, &args, None)
    };
    let refused = restore(&[]);
    refused.assert_code(2);
    assert!(
        refused
            .stderr
            .contains("global table with replicas in eu-west-1, ap-southeast-2")
            && refused.stderr.contains("--allow-empty-replicas"),
        "{}",
        refused.stderr
    );
    // Nothing was made: no backup, no temporary table.
    let backups = client
        .list_backups()
        .table_name("Prod-Global")
        .send()
        .await
        .expect("ListBackups");
    assert!(backups.backup_summaries().is_empty(), "{backups:?}");
    let tables = client.list_tables().send().await.expect("ListTables");
    assert_eq!(tables.table_names(), ["Prod-Global"]);

    // The plan shows the replicas; the flag lifts the refusal.
    let plan = restore(&["--dry-run", "--allow-empty-replicas"]);
    plan.assert_code(0);
    assert!(
        plan.stdout
            .contains("replicas:           eu-west-1, ap-southeast-2")
            && !plan.stdout.contains("WOULD BE REFUSED"),
        "{}",
        plan.stdout
    );
    // Each of the 2 x 60 one-unit writes of a hard reset is billed in all three regions.
    assert!(
        plan.stdout.contains("billed in all 3 regions")
            && plan.stdout.contains(&format!(
                "hard-reset ~{} replicated write units",
                3 * 2 * ITEMS
            )),
        "{}",
        plan.stdout
    );
    // Without a strategy, a global table gets diff.
    let default = dr_env(
        &moto,
        &env,
        &dry_run("Prod-Global")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
    );
    default.assert_code(0);
    assert!(
        default.stdout.contains("table (DIFF)"),
        "{}",
        default.stdout
    );
}

/// Every record on the table's stream so far, by event name.
async fn stream_records(
    moto: &Emulator,
    stream_arn: &str,
) -> std::collections::BTreeMap<String, u64> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(moto.endpoint())
        .build();
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(config);
    let described = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .expect("DescribeStream");
    let mut counts = std::collections::BTreeMap::new();
    let shards = described
        .stream_description
        .map(|d| d.shards.unwrap_or_default())
        .unwrap_or_default();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id.unwrap_or_default())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        while let Some(it) = iterator {
            let page = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .expect("GetRecords");
            let records = page.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for r in records {
                let name = r
                    .event_name
                    .map(|e| e.as_str().to_string())
                    .unwrap_or_default();
                *counts.entry(name).or_insert(0) += 1;
            }
            iterator = page.next_shard_iterator;
        }
    }
    counts
}

/// Counted from the stream itself: a hard reset emits a REMOVE and an INSERT per item, a diff one
/// record per real difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_reset_emits_two_records_an_item_and_a_diff_one_per_difference() {
    let moto = Emulator::start(Kind::Moto).await;
    let stream = table(&moto, "Prod-Ledger", true).await.expect("stream arn");
    let client = moto.client();
    let spec = TableSpec::hash_only("Prod-Ledger", Scalar::S);
    let backup = client
        .create_backup()
        .table_name("Prod-Ledger")
        .backup_name("known-good")
        .send()
        .await
        .expect("CreateBackup")
        .backup_details
        .expect("details")
        .backup_arn;
    let restore = |strategy: &'static str, incident: &'static str| {
        let backup = backup.clone();
        let moto = &moto;
        move || {
            dr(
                moto,
                &[
                    "restore",
                    "--table",
                    "Prod-Ledger",
                    "--incident-id",
                    incident,
                    "--backup-arn",
                    &backup,
                    "--confirm",
                    "Prod-Ledger",
                    "--strategy",
                    strategy,
                    "--yes",
                ],
                None,
            )
        }
    };
    let before = stream_records(&moto, &stream).await;
    restore("hard-reset", "inc-h")().assert_code(0);
    let after_reset = stream_records(&moto, &stream).await;
    let new = |after: &std::collections::BTreeMap<String, u64>,
               before: &std::collections::BTreeMap<String, u64>,
               kind: &str| {
        after.get(kind).copied().unwrap_or(0) - before.get(kind).copied().unwrap_or(0)
    };
    assert_eq!(
        new(&after_reset, &before, "REMOVE"),
        ITEMS,
        "{after_reset:?}"
    );
    assert_eq!(
        new(&after_reset, &before, "INSERT"),
        ITEMS,
        "{after_reset:?}"
    );
    assert_eq!(new(&after_reset, &before, "MODIFY"), 0, "{after_reset:?}");

    // The application changes 5 items, deletes 3 and adds 2; a diff puts back exactly those.
    let changed: Vec<_> = (0..5)
        .map(|i| {
            let mut item = sized_item(&spec, i, 100);
            item.insert(
                "payload".into(),
                aws_sdk_dynamodb::types::AttributeValue::S("overwritten".into()),
            );
            item
        })
        .chain((ITEMS..ITEMS + 2).map(|i| sized_item(&spec, i, 100)))
        .collect();
    put_all(&client, "Prod-Ledger", changed).await;
    for i in 5..8 {
        client
            .delete_item()
            .table_name("Prod-Ledger")
            .set_key(Some(spec.key(i)))
            .send()
            .await
            .expect("DeleteItem");
    }
    let before_diff = stream_records(&moto, &stream).await;
    restore("diff", "inc-d")().assert_code(0);
    let after_diff = stream_records(&moto, &stream).await;
    assert_eq!(
        new(&after_diff, &before_diff, "MODIFY"),
        5,
        "{after_diff:?}"
    );
    assert_eq!(
        new(&after_diff, &before_diff, "INSERT"),
        3,
        "{after_diff:?}"
    );
    assert_eq!(
        new(&after_diff, &before_diff, "REMOVE"),
        2,
        "{after_diff:?}"
    );
}
