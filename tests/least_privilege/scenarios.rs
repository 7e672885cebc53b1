//! Every scenario the tool supports, run as an operator would, each role's requests evaluated
//! against the policy `iam-policy` prints for it; then every grant of every policy is checked
//! against the requests that used it.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::types::EventSourcePosition;

use super::*;

const J: &str = "dynamodb://dr-journal";

const CONFIG: &str = r#"
[environments.Prod]
function_prefix = "Prod-"
tags = { tier = "prod" }
skip_recovery_events = ["*Mailer*"]

[tables.Orders]
name = "Prod-Orders"
environment = "Prod"

[environments.Vault]
function_prefix = "Vault-"

[tables.Ssn]
name = "Ssn-Live"
environment = "Vault"
sensitive = true

[tables.SsnSource]
name = "Ssn-Src"
environment = "Vault"
sensitive = true

[environments.Books]
function_prefix = "Books-"

[tables.Ledger]
name = "Ledger"
environment = "Books"

[environments.Shop]
function_prefix = "Shop-"

[tables.ShopA]
name = "Shop-A"
environment = "Shop"

[tables.ShopB]
name = "Shop-B"
environment = "Shop"

[environments.Feed]
function_prefix = "Feed-"

[tables.Feed]
name = "Events"
environment = "Feed"
export_bucket = "dr-exports"
export_prefix = "incidents"
"#;

const ITEMS: u64 = 120;

/// The lab and every role's outcome so far.
pub struct Scenarios {
    pub lab: Lab,
    pub outcomes: Vec<Outcome>,
}

impl Scenarios {
    /// Runs each `(args, exit code)` through one recorder, with `global` flags first, and
    /// evaluates its requests against the policy `iam-policy` prints for `global` and `flags`.
    pub fn role(
        &mut self,
        scenario: &str,
        global: &[&str],
        flags: &[&str],
        names: &[&str],
        commands: &[(&[&str], i32)],
    ) {
        let proxy = self.lab.recorder();
        for (args, code) in commands {
            let mut all = global.to_vec();
            all.extend_from_slice(args);
            self.lab.run(&proxy, &all).assert_code(*code);
        }
        self.judge(scenario, global, flags, names, &[proxy]);
    }

    /// Evaluates what `proxies` recorded against the policy of `global` and `flags`.
    pub fn judge(
        &mut self,
        scenario: &str,
        global: &[&str],
        flags: &[&str],
        names: &[&str],
        proxies: &[RecordingProxy],
    ) {
        let auths = proxies.iter().flat_map(|p| p.authorizations()).collect();
        let policy = self.lab.policy(global, flags);
        self.outcomes
            .push(evaluate(scenario, vec![policy], auths, names));
    }

    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        self.lab.moto.client()
    }
}

/// A loaded table with PITR on.
async fn loaded(client: &aws_sdk_dynamodb::Client, spec: &TableSpec) {
    create_table(client, spec).await;
    enable_pitr(client, &spec.name).await;
    put_all(
        client,
        &spec.name,
        (0..ITEMS).map(|i| sized_item(spec, i, 100)),
    )
    .await;
}

/// A loaded table with PITR and a stream, and `consumers` (with their reserved concurrency)
/// reading it, tagged as the environment's functions.
pub async fn streamed_table(moto: &Emulator, table: &str, consumers: &[(&str, Option<i32>)]) {
    let client = moto.client();
    loaded(&client, &TableSpec::hash_only(table, Scalar::S)).await;
    let stream = aws_sdk_dynamodb::types::StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
        .build()
        .expect("stream");
    let arn = client
        .update_table()
        .table_name(table)
        .stream_specification(stream)
        .send()
        .await
        .expect("enable stream")
        .table_description
        .and_then(|t| t.latest_stream_arn)
        .expect("stream arn");
    let lambda = moto.lambda();
    let role = create_role(moto, "consumer-role");
    for (function, reserved) in consumers {
        create_function(&lambda, function, &role, *reserved, &[("tier", "prod")]).await;
        lambda
            .create_event_source_mapping()
            .event_source_arn(&arn)
            .function_name(*function)
            .starting_position(EventSourcePosition::TrimHorizon)
            .send()
            .await
            .expect("mapping");
    }
}

/// `Prod-Orders` with two consumers: one replays the recovery (no reserved concurrency, so it
/// is given back by deleting it), one skips it; and a function of the prefix without the
/// environment's tag, which is not the environment's.
async fn streamed_orders(lab: &Lab) {
    let consumers = [
        ("Prod-SearchIndexer", None),
        ("Prod-WelcomeMailer", Some(3)),
    ];
    streamed_table(&lab.moto, "Prod-Orders", &consumers).await;
    let role = create_role(&lab.moto, "other-role");
    create_function(&lab.moto.lambda(), "Prod-Untagged", &role, Some(1), &[]).await;
}

/// The journal table, created by the role `journal init` needs.
fn journal(s: &mut Scenarios) {
    s.role(
        "journal init",
        &["--journal", J],
        &["--table", "Orders", "--journal-init"],
        &["Prod-Orders", "Orders"],
        &[(&["journal", "init"], 0)],
    );
}

/// Recovery mode around a whole-table PITR restore of a streamed table: start, restore, the
/// operator's reads, then end with one consumer replaying and one skipping.
fn pitr_in_recovery_mode(s: &mut Scenarios, dir: &str) {
    let mode = ["--environment", "Prod", "--recovery-mode"];
    let rm = |verb: &'static str| -> Vec<&'static str> {
        vec!["recovery-mode", verb, "--environment", "Prod", "--yes"]
    };
    let (start, end) = (rm("start"), rm("end"));
    let names = ["Prod"];
    let starting = s.lab.recorder();
    let mut global = vec!["--journal", J];
    global.extend_from_slice(&start);
    s.lab.run(&starting, &global).assert_code(0);
    let restore = [
        "restore",
        "--table",
        "Orders",
        "--incident-id",
        "inc-1",
        "--pitr-time",
        "latest",
        "--confirm",
        "Prod-Orders",
        "--yes",
    ];
    s.role(
        "restore from PITR",
        &["--journal", J],
        &["--table", "Orders"],
        &["Prod-Orders", "Orders", "Prod"],
        &[
            (
                &["check", "--environment", "Prod", "--pitr-time", "latest"],
                0,
            ),
            (&restore, 0),
            (&["status", "inc-1.Prod-Orders"], 0),
            (&["executions"], 0),
            (&["report", "inc-1", "--report-dir", dir], 0),
        ],
    );
    let ending = s.lab.recorder();
    for args in [
        vec!["recovery-mode", "status", "--environment", "Prod"],
        end,
    ] {
        let mut all = vec!["--journal", J];
        all.extend_from_slice(&args);
        s.lab.run(&ending, &all).assert_code(0);
    }
    s.judge(
        "recovery mode",
        &["--journal", J],
        &mode,
        &names,
        &[starting, ending],
    );
}

/// A whole-table restore from a backup, then each targeted scope from it after damage.
async fn backup_and_scopes(s: &mut Scenarios) {
    let spec = TableSpec {
        gsi: false,
        ..TableSpec::seed_like("Ledger")
    };
    let client = s.client();
    loaded(&client, &spec).await;
    let backup = create_backup(&client, "Ledger", "restore-point").await;
    let damage = || async {
        for i in 0..10 {
            client
                .delete_item()
                .table_name("Ledger")
                .set_key(Some(spec.key(i * 7)))
                .send()
                .await
                .expect("damage");
        }
    };
    damage().await;
    // Written after the restore point, before the keys scope runs: it deletes it.
    let late = sized_item(&spec, ITEMS + 1, 100);
    let keys: String = (0..5)
        .map(|i| spec.key(i * 7))
        .chain([late.clone()])
        .map(|k| key_string(&["pk", "sk"], &k) + "\n")
        .collect();
    let keys = support::write_file(&s.lab.dir, "keys.txt", &keys);
    let partition = match spec.key(7).get("pk") {
        Some(AttributeValue::S(v)) => v.clone(),
        other => panic!("a string partition key: {other:?}"),
    };
    let restore = |incident: &str, extra: &[&str]| -> Vec<String> {
        let mut v = vec![
            "restore",
            "--table",
            "Ledger",
            "--incident-id",
            incident,
            "--backup-arn",
            &backup,
            "--confirm",
            "Ledger",
            "--yes",
            "--allow-live-traffic",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_string).collect()
    };
    let runs = [
        restore("inc-b", &[]),
        restore("inc-m", &["--scope", "missing"]),
        restore("inc-k", &["--scope", "keys", "--keys", &keys]),
        restore(
            "inc-p",
            &["--scope", "partition", "--partition-key", &partition],
        ),
    ];
    let proxy = s.lab.recorder();
    for (n, args) in runs.iter().enumerate() {
        if n > 0 {
            damage().await;
        }
        if args.contains(&"keys".to_string()) {
            put_all(&client, "Ledger", [late.clone()]).await;
        }
        let mut all = vec!["--journal", J];
        all.extend(args.iter().map(String::as_str));
        s.lab.run(&proxy, &all).assert_code(0);
    }
    s.judge(
        "restore from a backup, and each targeted scope",
        &["--journal", J],
        &["--table", "Ledger"],
        &["Ledger", "Books"],
        &[proxy],
    );
}

/// The first whole second after the last of `tables` enabled PITR, once it has passed: inside
/// every table's live window.
async fn shared_instant(client: &aws_sdk_dynamodb::Client, tables: &[&str]) -> String {
    let mut last = jiff::Timestamp::UNIX_EPOCH;
    for t in tables {
        let (earliest, _) = pitr_window(client, t).await;
        last = last.max(jiff::Timestamp::new(earliest.secs(), 0).expect("time"));
    }
    let instant = last + jiff::SignedDuration::from_secs(1);
    while jiff::Timestamp::now() <= instant {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    instant.to_string()
}

/// Two tables to one instant, then sync, diff and verify between them, then a run that fails
/// mid-copy and its resume.
async fn several_tables_sync_and_resume(s: &mut Scenarios) {
    let client = s.client();
    for name in ["Shop-A", "Shop-B"] {
        loaded(&client, &TableSpec::hash_only(name, Scalar::S)).await;
    }
    let instant = shared_instant(&client, &["Shop-A", "Shop-B"]).await;
    let (a, b) = (["--table", "Shop-A"], ["--table", "Shop-B"]);
    let both: Vec<&str> = a.iter().chain(&b).copied().collect();
    let mut multi = vec!["restore", "--incident-id", "inc-2", "--pitr-time", &instant];
    multi.extend(&both);
    multi.extend([
        "--confirm",
        "Shop-A",
        "--confirm",
        "Shop-B",
        "--yes",
        "--allow-live-traffic",
    ]);
    let diff_out = s.lab.dir.path().join("diff.jsonl").display().to_string();
    let pair = ["--source", "Shop-A", "--dest", "Shop-B"];
    let sync = |incident: &'static str| -> Vec<&str> {
        let mut v = vec!["sync"];
        v.extend(pair);
        v.extend([
            "--confirm",
            "Shop-B",
            "--incident-id",
            incident,
            "--yes",
            "--allow-live-traffic",
        ]);
        v
    };
    let mut verify = vec!["verify"];
    verify.extend(pair);
    let mut diff = vec!["diff"];
    diff.extend(pair);
    diff.extend(["--out", diff_out.as_str()]);
    let sync_one = sync("inc-3");
    s.role(
        "several tables to one instant; sync, verify and diff",
        &["--journal", J],
        &both,
        &["Shop-A", "Shop-B", "Shop"],
        &[(&multi, 0), (&sync_one, 0), (&verify, 0), (&diff, 0)],
    );
    // A run whose writes fail (a 500 past the retry budget) stops resumable; `resume` ends it.
    put_all(
        &client,
        "Shop-A",
        (0..ITEMS).map(|i| sized_item(&TableSpec::hash_only("Shop-A", Scalar::S), i + ITEMS, 100)),
    )
    .await;
    let failing = s.lab.recorder();
    failing.refuse("DynamoDB_20120810.BatchWriteItem");
    let mut args = vec!["--journal", J];
    args.extend(sync("inc-4"));
    s.lab.run(&failing, &args).assert_code(1);
    let resuming = s.lab.recorder();
    let resume = [
        "--journal",
        J,
        "resume",
        "inc-4.Shop-B",
        "--yes",
        "--allow-live-traffic",
    ];
    s.lab.run(&resuming, &resume).assert_code(0);
    s.judge(
        "resume",
        &["--journal", J],
        &both,
        &["Shop-A", "Shop-B", "Shop"],
        &[failing, resuming],
    );
}

/// A sensitive table synced with its journal key wrapped by KMS, then a key's digest found.
async fn sensitive(s: &mut Scenarios) {
    let client = s.client();
    for name in ["Ssn-Src", "Ssn-Live"] {
        loaded(&client, &TableSpec::hash_only(name, Scalar::S)).await;
    }
    let kms = kms_client(&s.lab.moto);
    let key = kms
        .create_key()
        .send()
        .await
        .expect("CreateKey")
        .key_metadata()
        .and_then(|m| m.arn().map(str::to_string))
        .expect("key ARN");
    let global = ["--journal", J, "--journal-kms-key", key.as_str()];
    let sync = [
        "sync",
        "--source",
        "Ssn-Src",
        "--dest",
        "Ssn",
        "--confirm",
        "Ssn-Live",
        "--incident-id",
        "inc-s",
        "--yes",
        "--allow-live-traffic",
    ];
    let digest = [
        "key-digest",
        r#"{"id":{"S":"a"}}"#,
        "--execution",
        "inc-s.Ssn-Live",
    ];
    s.role(
        "sensitive table, journal key under KMS",
        &global,
        &["--table", "Ssn-Src", "--table", "Ssn"],
        &["Ssn-Src", "Ssn-Live", "Ssn", "Vault"],
        &[(&sync, 0), (&digest, 0)],
    );
}

pub fn kms_client(moto: &Emulator) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(emulator::REGION))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .endpoint_url(moto.endpoint())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Every scenario on one moto, in the order an incident runs them.
pub async fn run_all() -> Scenarios {
    let lab = Lab::start(CONFIG).await;
    streamed_orders(&lab).await;
    let dir = lab.dir.path().display().to_string();
    let mut s = Scenarios {
        lab,
        outcomes: Vec::new(),
    };
    journal(&mut s);
    pitr_in_recovery_mode(&mut s, &dir);
    backup_and_scopes(&mut s).await;
    several_tables_sync_and_resume(&mut s).await;
    sensitive(&mut s).await;
    crate::window::window(&mut s).await;
    crate::prewarm::prewarm(&mut s);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_every_scenario_is_allowed_and_every_grant_is_used() {
    let s = run_all().await;
    let mut outcomes = s.outcomes;
    outcomes.extend(crate::stack::outcomes().await);
    let denied: Vec<String> = outcomes.iter().flat_map(denied).collect();
    assert!(denied.is_empty(), "denied:\n{}", denied.join("\n"));
    let unkeyed = unkeyed(&outcomes);
    assert!(
        unkeyed.is_empty(),
        "no leading keys:\n{}",
        unkeyed.join("\n")
    );
    let unexplained = unexplained(&outcomes);
    assert!(
        unexplained.is_empty(),
        "granted but never requested, and not in iam::UNREACHED or stack::UNREACHED: \
         {unexplained:?}\nrequested: {:#?}",
        requested(&outcomes)
    );
}
