//! Recovery mode's per-consumer policy on moto: at `end`, a `replay` mapping is the same mapping,
//! enabled again; a `skip` mapping is replaced by a twin at LATEST with every other setting equal,
//! its old configuration recorded first, and a rerun adopts the twin by its tag.

use aws_sdk_lambda::types::{
    DestinationConfig, EventSourcePosition, Filter, FilterCriteria, FunctionResponseType, OnFailure,
};
use dynamo_dr::journal::Journal;
use dynamo_dr::journal::local::LocalJournal;
use dynamo_dr::mappings::{self, MappingConfig};
use dynamo_dr_testkit::*;

use crate::downstream::table;
use crate::support::{dr, write_file};

const MAILER: &str = "Prod-WelcomeMailer";

/// The mappings on `stream` of `function`, by UUID.
async fn mappings_of(lambda: &aws_sdk_lambda::Client, stream: &str, function: &str) -> Vec<String> {
    lambda
        .list_event_source_mappings()
        .event_source_arn(stream)
        .send()
        .await
        .expect("ListEventSourceMappings")
        .event_source_mappings()
        .iter()
        .filter(|m| {
            m.function_arn()
                .is_some_and(|a| a.ends_with(&format!(":function:{function}")))
        })
        .filter_map(|m| m.uuid().map(str::to_string))
        .collect()
}

/// `dynamo-dr --config CONFIG ARGS…`.
fn with(moto: &Emulator, config: &str, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["--config", config];
    all.extend_from_slice(args);
    dr(moto, &all, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_consumer_gets_a_twin_at_latest_and_a_replayed_one_is_re_enabled() {
    let moto = Emulator::start(Kind::Moto).await;
    let stream = table(&moto, "Prod-Orders", true).await.expect("stream arn");
    let lambda = moto.lambda();
    let role = create_role(&moto, "consumer-role");
    create_function(&lambda, "Prod-SearchIndexer", &role, None, &[]).await;
    create_function(&lambda, MAILER, &role, Some(5), &[]).await;
    let indexer = lambda
        .create_event_source_mapping()
        .event_source_arn(&stream)
        .function_name("Prod-SearchIndexer")
        .starting_position(EventSourcePosition::TrimHorizon)
        .batch_size(100)
        .send()
        .await
        .expect("indexer mapping")
        .uuid
        .expect("uuid");
    let dlq = create_queue(&moto, "mailer-dlq");
    let mailer = lambda
        .create_event_source_mapping()
        .event_source_arn(&stream)
        .function_name(MAILER)
        .starting_position(EventSourcePosition::TrimHorizon)
        .batch_size(50)
        .maximum_batching_window_in_seconds(2)
        .parallelization_factor(3)
        .maximum_record_age_in_seconds(3600)
        .bisect_batch_on_function_error(true)
        .maximum_retry_attempts(4)
        .tumbling_window_in_seconds(30)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .filter_criteria(
            FilterCriteria::builder()
                .filters(
                    Filter::builder()
                        .pattern(r#"{"eventName":["INSERT"]}"#)
                        .build(),
                )
                .build(),
        )
        .destination_config(
            DestinationConfig::builder()
                .on_failure(OnFailure::builder().destination(&dlq).build())
                .build(),
        )
        .tags("team", "growth")
        .send()
        .await
        .expect("mailer mapping")
        .uuid
        .expect("uuid");
    let before: MappingConfig = mappings::get(&lambda, &mailer)
        .await
        .expect("GetEventSourceMapping")
        .expect("the mailer's mapping");
    assert_eq!(before.batch_size, Some(50));
    assert_eq!(before.filter_patterns.len(), 1);
    assert_eq!(before.tags.get("team").map(String::as_str), Some("growth"));

    // The table belongs to Prod, whose mailers skip the recovery's records.
    let dir = tempfile::tempdir().expect("dir");
    let config = write_file(
        &dir,
        "dynamo-dr.toml",
        "[environments.Prod]\nskip_recovery_events = [\"*Mailer*\"]\n\n\
         [tables.Orders]\nname = \"Prod-Orders\"\nenvironment = \"Prod\"\n",
    );
    let config = config.as_str();
    with(
        &moto,
        config,
        &["recovery-mode", "start", "--environment", "Prod", "--yes"],
    )
    .assert_code(0);
    // The plan says what `end` will do with each consumer.
    let restore = |last: &[&str]| {
        let mut args = vec![
            "restore",
            "--table",
            "Prod-Orders",
            "--incident-id",
            "inc-skip",
            "--pitr-time",
            "latest",
            "--confirm",
            "Prod-Orders",
        ];
        args.extend_from_slice(last);
        with(&moto, config, &args)
    };
    let plan = restore(&["--dry-run"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.contains(&format!(
            "{indexer}, replays the recovery's records at recovery-mode end"
        )) && plan.stdout.contains(&format!(
            "{mailer}, SKIPS them: replaced at recovery-mode end by a mapping at LATEST \
             (skip_recovery_events \"*Mailer*\")"
        )),
        "{}",
        plan.stdout
    );
    let report_dir = dir.path().display().to_string();
    let recovery = restore(&["--yes", "--report-dir", &report_dir]);
    recovery.assert_code(0);

    // A dry run names both policies and changes nothing; with no config, the flag chooses.
    let dry = dr(
        &moto,
        &[
            "recovery-mode",
            "end",
            "--environment",
            "Prod",
            "--dry-run",
            "--skip-recovery-events",
            "*Mailer*",
        ],
        None,
    );
    dry.assert_code(0);
    let line = |uuid: &str| {
        dry.stdout
            .lines()
            .find(|l| l.contains(uuid))
            .unwrap_or_else(|| panic!("no line for {uuid}:\n{}", dry.stdout))
            .to_string()
    };
    assert!(
        line(&mailer).contains("replace by a twin at LATEST"),
        "{}",
        dry.stdout
    );
    assert!(line(&indexer).contains("re-enable"), "{}", dry.stdout);
    assert_eq!(
        mappings_of(&lambda, &stream, MAILER).await,
        vec![mailer.clone()]
    );

    with(
        &moto,
        config,
        &["recovery-mode", "end", "--environment", "Prod", "--yes"],
    )
    .assert_code(0);

    // replay: the same mapping, enabled.
    let replayed = lambda
        .get_event_source_mapping()
        .uuid(&indexer)
        .send()
        .await
        .expect("the indexer's mapping is kept");
    assert_eq!(replayed.state(), Some("Enabled"));
    assert_eq!(replayed.batch_size(), Some(100));

    // skip: the old mapping is gone, and one twin at LATEST has every other setting.
    assert!(
        mappings::get(&lambda, &mailer)
            .await
            .expect("get")
            .is_none(),
        "the skipped mapping was not deleted"
    );
    let twins = mappings_of(&lambda, &stream, MAILER).await;
    assert_eq!(twins.len(), 1, "{twins:?}");
    let twin = mappings::get(&lambda, &twins[0])
        .await
        .expect("get")
        .expect("the twin");
    assert_ne!(twin.uuid, mailer);
    assert_eq!(twin.starting_position.as_deref(), Some("LATEST"));
    assert_eq!(twin.state.as_deref(), Some("Enabled"));
    assert_eq!(twin.settings(), before.settings());
    assert_eq!(
        twin.tags.get(mappings::REPLACES_TAG),
        Some(&mailer),
        "the twin names the mapping it replaces"
    );

    // The journal holds the old configuration, and status shows both UUIDs.
    let status = dr(
        &moto,
        &[
            "recovery-mode",
            "status",
            "--environment",
            "Prod",
            "--output",
            "json",
        ],
        None,
    );
    status.assert_code(0);
    let record = &status.json()["record"]["mappings"][&mailer]["replacement"];
    let recorded: MappingConfig =
        serde_json::from_value(record["old"].clone()).expect("the recorded configuration");
    assert_eq!(recorded.uuid, mailer);
    assert_eq!(recorded.starting_position.as_deref(), Some("TRIM_HORIZON"));
    assert_eq!(recorded.settings(), before.settings());
    assert_eq!(record["newUuid"], twin.uuid.as_str());
    let text = dr(
        &moto,
        &["recovery-mode", "status", "--environment", "Prod"],
        None,
    );
    let skip_line = text
        .stdout
        .lines()
        .find(|l| l.contains("skip (pattern"))
        .unwrap_or_else(|| panic!("{}", text.stdout));
    assert!(
        skip_line.contains(&mailer) && skip_line.contains(&twin.uuid),
        "{skip_line}"
    );

    // The report of the incident names both.
    with(
        &moto,
        config,
        &[
            "report",
            "inc-skip",
            "--report-dir",
            &dir.path().display().to_string(),
        ],
    )
    .assert_code(0);
    let md =
        std::fs::read_to_string(dir.path().join("dynamo-dr-report-inc-skip.md")).expect("report");
    assert!(
        md.contains(&format!("mapping `{mailer}` of {MAILER}")) && md.contains(&twin.uuid),
        "{md}"
    );

    // An `end` killed after it created the twin but before it recorded it: the rerun adopts the
    // twin by its tag (with no pattern given: the recorded decision stands) and creates no other.
    let journal = LocalJournal::open(&moto.journal_dir).expect("journal");
    let mut rm = journal
        .load_recovery_mode("Prod")
        .await
        .expect("load")
        .expect("record");
    rm.state = dynamo_dr::recovery_mode::State::Ending;
    let m = rm.mappings.get_mut(&mailer).expect("mailer state");
    m.restored = false;
    m.replacement.as_mut().expect("replacement").new_uuid = None;
    journal.save_recovery_mode(&mut rm).await.expect("save");
    dr(
        &moto,
        &["recovery-mode", "end", "--environment", "Prod", "--yes"],
        None,
    )
    .assert_code(0);
    assert_eq!(
        mappings_of(&lambda, &stream, MAILER).await,
        vec![twin.uuid.clone()],
        "the rerun made a second twin"
    );
}
