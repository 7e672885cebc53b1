//! Safety by provenance: a table of the temporary name is adopted only when DynamoDB shows it is
//! this execution's, never by its name; derived names never collide.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use dynamo_dr::execution::Recorder;
use dynamo_dr::journal::local::LocalJournal;
use dynamo_dr::journal::{Execution, Inputs, Journal, Kind, Phase};
use dynamo_dr::restore::{self, RestoreRequest, Source};
use dynamo_dr::sync::SyncOptions;
use dynamo_dr::validate::PitrTime;
use dynamo_dr_testkit::*;

use crate::support::{dr, dr_env, restore_args};

async fn loaded(client: &Client, name: &str, from: u64) -> TableSpec {
    let spec = TableSpec::seed_like(name);
    create_table(client, &spec).await;
    enable_pitr(client, name).await;
    put_all(
        client,
        name,
        (from..from + 200).map(|i| mixed_item(&spec, i)),
    )
    .await;
    spec
}

async fn execution_tags(client: &Client, table: &str) -> Vec<String> {
    let arn = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable")
        .table()
        .and_then(|t| t.table_arn().map(str::to_string))
        .expect("arn");
    client
        .list_tags_of_resource()
        .resource_arn(arn)
        .send()
        .await
        .expect("ListTagsOfResource")
        .tags()
        .iter()
        .filter(|t| t.key() == restore::EXECUTION_TAG)
        .map(|t| t.value().to_string())
        .collect()
}

/// The reproduction: `Orders` + `Archive-inc1` and `Orders-Archive` + `inc1` once derived
/// the same temporary table, and a resume of the first copied the second table's data into
/// `Orders`. Now each has its own, and neither run touches the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_never_copies_another_runs_temporary_table_into_the_live_table() {
    let moto = Emulator::start(dynamo_dr_testkit::Kind::Moto).await;
    let client = moto.client();
    let orders = loaded(&client, "Orders", 0).await;
    let archive = loaded(&client, "Orders-Archive", 10_000).await;
    let orders_before = scan_all(&client, &orders.name).await;
    let archive_before = scan_all(&client, &archive.name).await;

    // 1. The first run's restore call fails; the journal says it was requested.
    let proxy = FaultProxy::start(
        &moto.endpoint(),
        Faults {
            internal_error: 1.0,
            ..Faults::none()
        }
        .only(&["RestoreTableToPointInTime"]),
    );
    let failed = dr_env(
        &moto,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &restore_args("Orders", "Archive-inc1", &["--retry-budget", "1"]),
        None,
    );
    failed.assert_code(1);
    drop(proxy);

    // 2. The other table's run succeeds and keeps its temporary table.
    let other = dr(
        &moto,
        &restore_args("Orders-Archive", "inc1", &["--keep-restored-table"]),
        None,
    );
    other.assert_code(0);
    let other_temp = other.json()["restoredTable"]
        .as_str()
        .expect("restoredTable")
        .to_string();
    let other_tags = execution_tags(&client, &other_temp).await;
    assert_eq!(other_tags, ["inc1.Orders-Archive"]);

    // 3. The first run resumes into a table of its own, and Orders keeps its own data.
    let resumed = dr(
        &moto,
        &["resume", "Archive-inc1.Orders", "--yes", "--output", "json"],
        None,
    );
    resumed.assert_code(0);
    let out = resumed.json();
    let ours = out["restoredTable"].as_str().expect("restoredTable");
    assert_ne!(ours, other_temp, "the two runs' temporary tables differ");
    assert_eq!(
        diff_summary(&orders_before, &scan_all(&client, &orders.name).await),
        None,
        "Orders holds its own items, not Orders-Archive's"
    );
    // The other run's table: untouched, and tagged only by its own run.
    assert_eq!(execution_tags(&client, &other_temp).await, other_tags);
    assert_eq!(
        diff_summary(&archive_before, &scan_all(&client, &other_temp).await),
        None
    );
}

/// An execution's request, on moto, with its journal, ready for [`restore::execute`].
async fn planned(moto: &Emulator, table: &str, incident: &str) -> (restore::Plan, Arc<Recorder>) {
    let client = moto.client();
    let request = RestoreRequest {
        forensic_backup: false,
        backup_deadline: Duration::from_secs(60),
        restore_deadline: Duration::from_secs(60),
        ..RestoreRequest::new(
            (table, &Default::default()),
            incident.into(),
            Source::Pitr(PitrTime::Latest),
            Default::default(),
            SyncOptions::default(),
        )
        .expect("request")
    };
    let plan = restore::preflight((&client, &Default::default()), request, false)
        .await
        .expect("preflight");
    let journal: Arc<dyn Journal> =
        Arc::new(LocalJournal::open(&moto.journal_dir).expect("journal"));
    let exec = Execution::new(
        plan.request.names.execution_id.clone(),
        Kind::Restore,
        Inputs {
            table: table.into(),
            incident_id: Some(incident.into()),
            source: dynamo_dr::journal::Source::Pitr(dynamo_dr::validate::PitrTime::Latest),
            segments: 2,
            keep_restored_table: false,
            verify: true,
            strategy: Default::default(),
            sensitive: false,
            forensic_backup: false,
            scope: Default::default(),
            prewarm: None,
        },
        Phase::BackupAndRestore,
    );
    (plan, Arc::new(Recorder::new(journal, exec, None, None)))
}

/// Run A passes preflight and waits at the prompt; meanwhile somebody makes a table of A's
/// temporary name (here: a restore of another table). A's restore meets it and refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_temporary_name_made_during_the_prompt_is_not_adopted() {
    let moto = Emulator::start(dynamo_dr_testkit::Kind::Moto).await;
    let client = moto.client();
    let live = loaded(&client, "Live", 0).await;
    let intruder = loaded(&client, "Intruder", 50_000).await;
    let before = scan_all(&client, &live.name).await;
    let (plan, rec) = planned(&moto, "Live", "race-1").await;
    let temp = plan.request.names.temp_table.clone();

    client
        .restore_table_to_point_in_time()
        .source_table_name(&intruder.name)
        .target_table_name(&temp)
        .use_latest_restorable_time(true)
        .send()
        .await
        .expect("the other party's restore");
    let intruders = scan_all(&client, &temp).await;

    let e = restore::execute(&client, &plan, &rec)
        .await
        .expect_err("the table of another source must be refused");
    let text = e.to_string();
    assert_eq!(e.exit_status(), dynamo_dr::ExitStatus::Failed, "{text}");
    assert!(text.contains("is not this execution's"), "{text}");
    assert!(text.contains(&temp), "names the table: {text}");
    assert!(
        text.contains("table/Intruder"),
        "says what it was restored from: {text}"
    );
    assert_eq!(
        diff_summary(&before, &scan_all(&client, &live.name).await),
        None
    );
    assert_eq!(
        diff_summary(&intruders, &scan_all(&client, &temp).await),
        None,
        "the other table is untouched"
    );
    assert!(
        execution_tags(&client, &temp).await.is_empty(),
        "and untagged"
    );
}
