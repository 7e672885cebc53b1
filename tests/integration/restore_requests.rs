//! The exact requests a restore makes, where the emulators cannot show them: the KMS key and
//! billing overrides, the restore instant, and the ownership check before DeleteTable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::operation::create_backup::CreateBackupOutput;
use aws_sdk_dynamodb::operation::delete_table::DeleteTableOutput;
use aws_sdk_dynamodb::operation::describe_backup::DescribeBackupOutput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::list_tags_of_resource::ListTagsOfResourceOutput;
use aws_sdk_dynamodb::operation::restore_table_to_point_in_time::{
    RestoreTableToPointInTimeInput, RestoreTableToPointInTimeOutput,
};
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::tag_resource::TagResourceOutput;
use aws_sdk_dynamodb::types::{
    BackupDescription, BackupDetails, BackupStatus, BackupType, BillingMode, KeySchemaElement,
    KeyType, RestoreSummary, SseDescription, SseStatus, SseType, TableDescription, TableStatus,
    Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use dynamo_dr::execution::Recorder;
use dynamo_dr::journal::local::LocalJournal;
use dynamo_dr::journal::{Execution, Inputs, Journal, Kind, Phase};
use dynamo_dr::restore::{self, Plan, RestoreRequest, Source, SourceDetail, TempTableFate};
use dynamo_dr::sync::SyncOptions;
use dynamo_dr::table::TableInfo;
use dynamo_dr::validate::PitrTime;

const DEST: &str = "Prod-ProviderTable";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111-2222";

fn description(name: &str, kms: bool) -> TableDescription {
    let mut t = TableDescription::builder()
        .table_name(name)
        .table_arn(format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/{name}"
        ))
        .table_status(TableStatus::Active)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("k"),
        );
    if kms {
        t = t.sse_description(
            SseDescription::builder()
                .status(SseStatus::Enabled)
                .sse_type(SseType::Kms)
                .kms_master_key_arn(KEY)
                .build(),
        );
    }
    t.build()
}

fn plan(at: jiff::Timestamp) -> Plan {
    let dest = TableInfo::from_description(&description(DEST, true)).expect("info");
    Plan {
        keys: None,
        watchers: Default::default(),
        strategy: Default::default(),
        segments_why: None,
        s3: None,
        request: RestoreRequest {
            sync: SyncOptions {
                segments: 2,
                ..SyncOptions::default()
            },
            backup_deadline: Duration::from_secs(5),
            restore_deadline: Duration::from_secs(5),
            ..RestoreRequest::new(
                (DEST, &Default::default()),
                "inc-7".into(),
                Source::Pitr(PitrTime::At(at)),
                Default::default(),
                SyncOptions::default(),
            )
            .expect("request")
        },
        dest,
        source: SourceDetail::Pitr {
            time: PitrTime::At(at),
            earliest: at,
            latest: at,
            recovery_period_days: Some(7),
        },
    }
}

const AT: &str = "2025-01-15T09:00:00.123Z";

/// What the temporary table's RestoreSummary says: the source table's ARN and the instant.
#[derive(Clone, Copy)]
struct Summary {
    source: &'static str,
    at: &'static str,
}

const OURS: Summary = Summary {
    source: DEST,
    at: AT,
};

/// Every call a restore of an empty table makes; ListTagsOfResource answers with `owner`, and
/// DescribeTable of the temporary table with `summary`.
fn rules(
    owner: &'static str,
    summary: Summary,
    seen: Arc<Mutex<Option<RestoreTableToPointInTimeInput>>>,
) -> (Vec<Rule>, Rule) {
    let delete = mock!(Client::delete_table).then_output(|| DeleteTableOutput::builder().build());
    let rules = vec![
        mock!(Client::describe_table).then_compute_output(move |req| {
            let name = req.table_name().unwrap_or_default();
            let mut table = description(name, name == DEST);
            if name != DEST {
                let at: jiff::Timestamp = summary.at.parse().expect("time");
                table.restore_summary = Some(
                    RestoreSummary::builder()
                        .source_table_arn(format!(
                            "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
                            summary.source
                        ))
                        .restore_date_time(aws_smithy_types::DateTime::from_millis(
                            at.as_millisecond(),
                        ))
                        .restore_in_progress(false)
                        .build()
                        .expect("summary"),
                );
            }
            DescribeTableOutput::builder().table(table).build()
        }),
        mock!(Client::create_backup).then_output(|| {
            CreateBackupOutput::builder()
                .backup_details(
                    BackupDetails::builder()
                        .backup_arn("arn:backup/1")
                        .backup_name("b")
                        .backup_status(BackupStatus::Creating)
                        .backup_type(BackupType::User)
                        .backup_creation_date_time(aws_smithy_types::DateTime::from_secs(0))
                        .build()
                        .expect("details"),
                )
                .build()
        }),
        mock!(Client::describe_backup).then_output(|| {
            DescribeBackupOutput::builder()
                .backup_description(
                    BackupDescription::builder()
                        .backup_details(
                            BackupDetails::builder()
                                .backup_arn("arn:backup/1")
                                .backup_name("b")
                                .backup_status(BackupStatus::Available)
                                .backup_type(BackupType::User)
                                .backup_creation_date_time(aws_smithy_types::DateTime::from_secs(0))
                                .build()
                                .expect("details"),
                        )
                        .build(),
                )
                .build()
        }),
        mock!(Client::restore_table_to_point_in_time).then_compute_output(move |req| {
            *seen.lock().expect("lock") = Some(req.clone());
            RestoreTableToPointInTimeOutput::builder()
                .table_description(description("x", false))
                .build()
        }),
        mock!(Client::tag_resource).then_output(|| TagResourceOutput::builder().build()),
        mock!(Client::list_tags_of_resource).then_output(move || {
            ListTagsOfResourceOutput::builder()
                .tags(
                    Tag::builder()
                        .key("dynamo-dr:execution-id")
                        .value(owner)
                        .build()
                        .expect("tag"),
                )
                .build()
        }),
        mock!(Client::scan).then_output(|| ScanOutput::builder().count(0).build()),
    ];
    (rules, delete)
}

async fn run(
    owner: &'static str,
    summary: Summary,
) -> (
    dynamo_dr::Result<restore::RestoreReport>,
    Option<RestoreTableToPointInTimeInput>,
    usize,
) {
    let seen = Arc::new(Mutex::new(None));
    let (mut rules, delete) = rules(owner, summary, seen.clone());
    rules.push(delete);
    let refs: Vec<&Rule> = rules.iter().collect();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &refs);
    let at: jiff::Timestamp = AT.parse().expect("time");
    let plan = plan(at);
    let dir = tempfile::tempdir().expect("dir");
    let journal: Arc<dyn Journal> = Arc::new(LocalJournal::open(dir.path()).expect("journal"));
    let exec = Execution::new(
        plan.request.names.execution_id.clone(),
        Kind::Restore,
        Inputs {
            table: DEST.into(),
            incident_id: Some("inc-7".into()),
            source: dynamo_dr::journal::Source::Pitr(PitrTime::At(at)),
            segments: 2,
            keep_restored_table: false,
            verify: true,
            strategy: Default::default(),
            sensitive: false,
            forensic_backup: true,
            scope: Default::default(),
            prewarm: None,
        },
        Phase::BackupAndRestore,
    );
    let rec = Arc::new(Recorder::new(journal, exec, None, None));
    let report = restore::execute(&client, &plan, &rec).await;
    let deletes = rules.last().map(|r| r.num_calls()).unwrap_or_default();
    let input = seen.lock().expect("lock").take();
    (report, input, deletes)
}

#[tokio::test]
async fn the_restore_keeps_the_kms_key_uses_on_demand_and_asks_for_the_whole_second() {
    let (report, input, deletes) = run("inc-7.Prod-ProviderTable", OURS).await;
    let report = report.expect("restore");
    let input = input.expect("RestoreTableToPointInTime was called");
    assert_eq!(input.source_table_name(), Some(DEST));
    assert_eq!(
        input.target_table_name(),
        Some("DR-TEMP-Prod-ProviderTable.inc-7")
    );
    let sse = input.sse_specification_override().expect("SSE override");
    assert_eq!(sse.kms_master_key_id(), Some(KEY));
    assert_eq!(sse.sse_type(), Some(&SseType::Kms));
    assert_eq!(
        input.billing_mode_override(),
        Some(&BillingMode::PayPerRequest)
    );
    // `.123` asked: DynamoDB restores to the second, so the request carries 09:00:00 (floor).
    let t = input.restore_date_time().expect("restore time");
    assert_eq!((t.secs(), t.subsec_nanos()), (1_736_931_600, 0));
    assert_ne!(input.use_latest_restorable_time(), Some(true));
    assert_eq!(report.restored_table_fate, TempTableFate::Deleted);
    assert_eq!(deletes, 1);
}

/// The run stops, exit 1, naming the table and what it was restored from; it neither deletes nor
/// reads from the table.
fn assert_not_ours(report: dynamo_dr::Result<restore::RestoreReport>, says: &str, deletes: usize) {
    let e = report.expect_err("the run must refuse the table");
    assert_eq!(e.exit_status(), dynamo_dr::ExitStatus::Failed, "{e}");
    let text = e.to_string();
    assert!(text.contains("is not this execution's"), "{text}");
    assert!(text.contains(says), "{text}");
    assert!(text.contains("DR-TEMP-Prod-ProviderTable.inc-7"), "{text}");
    assert_eq!(deletes, 0, "DeleteTable must not be called");
}

#[tokio::test]
async fn a_temporary_table_tagged_for_another_execution_is_never_adopted_or_deleted() {
    let (report, _, deletes) = run("someone-else.Prod-ProviderTable", OURS).await;
    assert_not_ours(report, "names someone-else.Prod-ProviderTable", deletes);
}

#[tokio::test]
async fn a_temporary_table_restored_from_another_table_is_never_adopted() {
    let other = Summary {
        source: "Prod-ProviderTable-Archive",
        at: AT,
    };
    let (report, _, deletes) = run("inc-7.Prod-ProviderTable", other).await;
    assert_not_ours(report, "table/Prod-ProviderTable-Archive", deletes);
}

#[tokio::test]
async fn a_temporary_table_restored_to_another_instant_is_never_adopted() {
    let other = Summary {
        source: DEST,
        at: "2025-01-15T08:00:00Z",
    };
    let (report, _, deletes) = run("inc-7.Prod-ProviderTable", other).await;
    assert_not_ours(report, "at 2025-01-15T08:00:00Z", deletes);
}

/// DynamoDB need not keep the milliseconds: a RestoreSummary of the whole second is this
/// restore's (it was refused as "not ours" after the restore was paid for).
#[tokio::test]
async fn a_restore_summary_of_the_whole_second_is_ours() {
    let whole = Summary {
        source: DEST,
        at: "2025-01-15T09:00:00Z",
    };
    let (report, _, deletes) = run("inc-7.Prod-ProviderTable", whole).await;
    let report = report.expect("the restore is ours");
    assert_eq!(report.restored_table_fate, TempTableFate::Deleted);
    assert_eq!(deletes, 1);
}

#[tokio::test]
async fn a_temporary_table_restored_to_the_next_second_is_never_adopted() {
    let next = Summary {
        source: DEST,
        at: "2025-01-15T09:00:01Z",
    };
    let (report, _, deletes) = run("inc-7.Prod-ProviderTable", next).await;
    assert_not_ours(report, "at 2025-01-15T09:00:01Z", deletes);
}

/// DynamoDB sends the window as epoch-second floats; the SDK reads `1764841189.462` as
/// `….461999893`. The plan shows the edge as boto3 prints it (`…49.462000+00:00`), and that
/// time is restorable.
#[tokio::test]
async fn the_window_edge_reads_as_the_aws_cli_prints_it() {
    let window = r#"{"ContinuousBackupsDescription":{"ContinuousBackupsStatus":"ENABLED",
        "PointInTimeRecoveryDescription":{"PointInTimeRecoveryStatus":"ENABLED",
        "EarliestRestorableDateTime":1764840000.125,"LatestRestorableDateTime":1764841189.462}}}"#;
    let rules = [
        mock!(Client::describe_table).then_output(|| {
            DescribeTableOutput::builder()
                .table(description(DEST, true))
                .build()
        }),
        mock!(Client::describe_continuous_backups).then_http_response(move || {
            HttpResponse::new(200.try_into().expect("status"), SdkBody::from(window))
        }),
    ];
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &rules);
    let edge: jiff::Timestamp = "2025-12-04T09:39:49.462Z".parse().expect("time");
    let request = plan(edge).request;
    let plan = restore::preflight((&client, &Default::default()), request, true)
        .await
        .expect("the edge is inside the window");
    let SourceDetail::Pitr {
        latest, earliest, ..
    } = plan.source
    else {
        panic!("a PITR plan")
    };
    assert_eq!(latest, edge);
    assert_eq!(earliest.to_string(), "2025-12-04T09:20:00.125Z");
}
