//! The seed's form as a CloudFormation template (`dynamo-dr stack`): cfn-lint passes it, and
//! moto's CloudFormation deploys it with the seed's names and a role per table that reaches only
//! that table.

use std::time::Duration;

use dynamo_dr_testkit::*;

use crate::support::{dr, write_file};

const CONFIG: &str = r#"
[environments.Prod]

[tables.TransactionHistoryTable]
name = "Prod-TransactionHistory-ABC"
environment = "Prod"

[tables.ProviderTable]
name = "Prod-Provider-DEF"
environment = "Prod"

[tables.SSNTable]
name = "Prod-SSN-GHI"
excluded = "holds SSNs: needs additional security requirements"
"#;

const MACHINES: [&str; 5] = [
    "DRRestoreDynamoDbTableTransactionHistoryTableStateMachine",
    "TransactionHistoryTableDRSyncTableDataStateMachine",
    "DRRestoreDynamoDbTableProviderTableStateMachine",
    "ProviderTableDRSyncTableDataStateMachine",
    "DRRecoveryModeProdStateMachine",
];

/// The template, written to a file in `dir`.
fn template(moto: &Emulator, dir: &tempfile::TempDir) -> (String, serde_json::Value) {
    let config = write_file(dir, "dynamo-dr.toml", CONFIG);
    let run = dr(moto, &["--config", &config, "stack"], None);
    run.assert_code(0);
    let path = write_file(dir, "template.json", &run.stdout);
    (path, run.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_passes_cfn_lint_with_no_errors() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let (path, _) = template(&moto, &dir);
    let lint = std::process::Command::new(cache_dir().join("tools/bin/cfn-lint"))
        .args(["--format", "parseable", &path])
        .output()
        .expect("cfn-lint (scripts/setup-emulators installs it)");
    let text = String::from_utf8_lossy(&lint.stdout);
    // cfn-lint's exit code is a bit set: 2 errors, 4 warnings, 8 informational.
    let code = lint.status.code().expect("an exit code");
    assert_eq!(code & 2, 0, "cfn-lint found errors:\n{text}");
    assert!(
        !text.lines().any(|l| l.contains(":E")),
        "cfn-lint found errors:\n{text}"
    );
    // It reads the state machine definitions: a broken one is an error (E3601).
    let (_, mut broken) = template(&moto, &dir);
    broken["Resources"]["ProviderTableDRSyncTableDataStateMachine"]["Properties"]["Definition"]["States"]
        ["Synced"]["Type"] = "Bogus".into();
    let path = write_file(&dir, "broken.json", &broken.to_string());
    let lint = std::process::Command::new(cache_dir().join("tools/bin/cfn-lint"))
        .args(["--format", "parseable", &path])
        .output()
        .expect("cfn-lint");
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(
        text.contains("E3601"),
        "cfn-lint did not check the definition:\n{text}"
    );
}

/// The text between `<tag>` and `</tag>`, the first of them.
fn xml<'a>(reply: &'a str, tag: &str) -> Option<&'a str> {
    let start = reply.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = reply[start..].find(&format!("</{tag}>"))? + start;
    Some(&reply[start..end])
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_deploys_on_moto_with_a_role_per_table() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let (_, body) = template(&moto, &dir);
    moto.s3("PUT", "/artifacts", b"");
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend([0u8; 18]);
    moto.s3("PUT", "/artifacts/dynamo-dr.zip", &zip);
    let text = body.to_string();
    moto.query(
        "cloudformation",
        &form(&[
            ("Action", "CreateStack"),
            ("StackName", "dynamo-dr"),
            ("TemplateBody", &text),
            ("Capabilities.member.1", "CAPABILITY_NAMED_IAM"),
            ("Parameters.member.1.ParameterKey", "ArtifactBucket"),
            ("Parameters.member.1.ParameterValue", "artifacts"),
            ("Parameters.member.2.ParameterKey", "ArtifactKey"),
            ("Parameters.member.2.ParameterValue", "dynamo-dr.zip"),
        ]),
    );
    wait_for(
        "the stack to be created",
        Duration::from_secs(60),
        || async {
            let reply = moto.query(
                "cloudformation",
                &form(&[("Action", "DescribeStacks"), ("StackName", "dynamo-dr")]),
            );
            let status = xml(&reply, "StackStatus").unwrap_or_default().to_string();
            assert!(
                !status.contains("FAILED") && !status.contains("ROLLBACK"),
                "{reply}"
            );
            status == "CREATE_COMPLETE"
        },
    )
    .await;

    let listed = moto.json_call("states", "AWSStepFunctions.ListStateMachines", "{}");
    let names: Vec<&str> = listed["stateMachines"]
        .as_array()
        .expect("stateMachines")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for m in MACHINES {
        assert!(names.contains(&m), "no {m} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("SSNTable")),
        "the excluded table got a state machine: {names:?}"
    );

    let lambda = moto.lambda();
    let client = moto.client();
    for (logical, own, other) in [
        (
            "TransactionHistoryTable",
            "Prod-TransactionHistory-ABC",
            "Prod-Provider-DEF",
        ),
        (
            "ProviderTable",
            "Prod-Provider-DEF",
            "Prod-TransactionHistory-ABC",
        ),
    ] {
        let function = format!("dynamo-dr-{logical}");
        let f = lambda
            .get_function()
            .function_name(&function)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{function}: {e:?}"));
        let role_arn = f
            .configuration()
            .and_then(|c| c.role())
            .expect("the function's role")
            .to_string();
        let role = role_arn.rsplit('/').next().expect("role name");
        let reply = moto.query(
            "iam",
            &form(&[
                ("Action", "GetRolePolicy"),
                ("RoleName", role),
                ("PolicyName", &function),
            ]),
        );
        let document = xml(&reply, "PolicyDocument").expect("a policy document");
        let document: String = form_urlencoded::parse(format!("d={document}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .next()
            .unwrap_or_default();
        assert!(document.contains(&format!("table/{own}")), "{document}");
        assert!(
            !document.contains(other),
            "{function} may act on {other}: {document}"
        );
        assert!(!document.contains("table/*"), "{document}");
        dashboard_deployed(&moto, logical, own, &names);
    }
    let journal = client
        .describe_table()
        .table_name("dynamo-dr-journal")
        .send()
        .await
        .expect("the journal table");
    assert_eq!(
        journal
            .table()
            .and_then(|t| t.key_schema().first())
            .map(|k| k.attribute_name()),
        Some("pk")
    );
}

/// The table's dashboard as moto's CloudWatch holds it: its `Fn::Sub` resolved to both machines'
/// ARNs and the table's name. (moto's CloudFormation implements no `AWS::CloudWatch::Alarm`; it
/// skips the alarm, which cfn-lint checks instead.)
fn dashboard_deployed(moto: &Emulator, logical: &str, table: &str, machines: &[&str]) {
    let reply = moto.query(
        "monitoring",
        &form(&[
            ("Action", "GetDashboard"),
            ("Version", "2010-08-01"),
            ("DashboardName", &format!("dynamo-dr-{logical}")),
        ]),
    );
    let body = xml(&reply, "DashboardBody").unwrap_or_else(|| panic!("no dashboard: {reply}"));
    let body = body
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON dashboard body");
    let text = body.to_string();
    assert!(!text.contains("${"), "an unresolved substitution: {text}");
    let own: Vec<_> = machines.iter().filter(|m| m.contains(logical)).collect();
    assert_eq!(own.len(), 2, "{machines:?}");
    for m in own {
        assert!(
            text.contains(&format!(":stateMachine:{m}\"")),
            "{m}: {text}"
        );
    }
    assert!(
        text.contains(&format!("\"TableName\",\"{table}\"")),
        "{text}"
    );
    assert!(text.contains(&format!("\"Table\",\"{table}\"")), "{text}");
}
