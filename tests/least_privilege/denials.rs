//! The denials that must hold, each beside the grant it borders so that a test can fail both
//! ways: another table, another table's temporary tables (also a table whose name extends this
//! one's with a dot), another environment's functions and the stack's own, and from a table's
//! function role another table's journal items and KMS encryption context.

use dynamo_dr::journal::dynamo::{execution_pk, lease_pk, segments_pk};
use dynamo_dr::journal::envelope::CONTEXT_KEY;
use serde_json::json;

use super::*;

const CONFIG: &str = r#"
[environments.Prod]
function_prefix = "Prod-"
tags = { tier = "prod" }
exclude = ["Prod-Legacy*"]

[environments.Staging]
function_prefix = "Staging-"

[tables.Orders]
name = "Prod-Orders"
environment = "Prod"
sensitive = true

[tables.Customers]
name = "Prod-Customers"
environment = "Prod"
sensitive = true
"#;

fn journal_key() -> String {
    format!(
        "arn:aws:kms:{}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        emulator::REGION
    )
}

/// Each `(authorization, allowed)` evaluated against `policy`; every mismatch, one line each.
fn mismatches(policy: &Value, cases: Vec<(Authorization, bool)>) -> Vec<String> {
    let (auths, want): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    iam::evaluate(std::slice::from_ref(policy), &auths)
        .into_iter()
        .zip(want)
        .filter(|(v, want)| v.allowed() != *want)
        .map(|(v, want)| {
            let a = &v.authorization;
            format!(
                "{} {} {:?}: {} (want allowed={want})",
                a.action, a.resource, a.context, v.result
            )
        })
        .collect()
}

fn on(action: &str, resource: String) -> Authorization {
    Authorization::new(action, resource, "denials")
}

fn journal_item(action: &str, key: String) -> Authorization {
    on(action, iam::table_arn(JOURNAL)).with("dynamodb:LeadingKeys", json!([key]))
}

fn data_key(execution: &str) -> Authorization {
    on("kms:Decrypt", journal_key())
        .with(
            &format!("kms:EncryptionContext:{CONTEXT_KEY}"),
            json!(execution),
        )
        .with("kms:EncryptionContextKeys", json!([CONTEXT_KEY]))
}

/// A copy is made the tool's own by its tags, so tagging and deleting are held to them: only an
/// untagged copy of this table may be tagged, only with the tool's keys and as this table's;
/// only a copy tagged as this table's may be deleted.
fn tagging_and_deleting_copies() -> Vec<(Authorization, bool)> {
    let copy = iam::table_arn("DR-TEMP-Prod-Orders.inc-1");
    let tag = |tags: &[(&str, &str)]| {
        let mut a = on("dynamodb:TagResource", copy.clone());
        for (k, v) in tags {
            a = a.with(&format!("aws:RequestTag/{k}"), json!(v));
        }
        let keys: Vec<&str> = tags.iter().map(|(k, _)| *k).collect();
        a.with("aws:TagKeys", json!(keys))
    };
    let (exec, source) = ("dynamo-dr:execution-id", "dynamo-dr:source-table");
    let ours = [(exec, "inc-1.Prod-Orders"), (source, "Prod-Orders")];
    let delete = |source_tag: Option<&str>| {
        let a = on("dynamodb:DeleteTable", copy.clone());
        match source_tag {
            Some(v) => a.with(&format!("aws:ResourceTag/{source}"), json!(v)),
            None => a,
        }
    };
    let tagged = format!("aws:ResourceTag/{exec}");
    vec![
        (tag(&ours), true),
        (tag(&ours).with(&tagged, json!("inc-0.Prod-Orders")), false),
        (
            tag(&[(exec, "inc-1.Prod-Orders"), (source, "Prod-Customers")]),
            false,
        ),
        (
            tag(&[
                (exec, "inc-1.Prod-Orders"),
                (source, "Prod-Orders"),
                ("team", "x"),
            ]),
            false,
        ),
        (delete(Some("Prod-Orders")), true),
        (delete(Some("Prod-Customers")), false),
        (delete(None), false),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_role_reaches_its_table_and_its_own_temporary_tables_only() {
    let lab = Lab::start(CONFIG).await;
    let policy = lab.policy(
        &["--journal", "dynamodb://dr-journal"],
        &["--table", "Orders"],
    );
    let mut cases = Vec::new();
    for action in [
        "dynamodb:BatchWriteItem",
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
    ] {
        cases.push((on(action, iam::table_arn("Prod-Orders")), true));
        cases.push((
            on(action, iam::table_arn("DR-TEMP-Prod-Orders.inc-1")),
            true,
        ));
        cases.push((on(action, iam::table_arn("Prod-Customers")), false));
        cases.push((
            on(action, iam::table_arn("DR-TEMP-Prod-Customers.inc-1")),
            false,
        ));
        // The temporary table of `Prod-Orders.Archive`, whose name extends this one's.
        cases.push((
            on(action, iam::table_arn("DR-TEMP-Prod-Orders.Archive.inc-1")),
            false,
        ));
        cases.push((on(action, iam::table_arn("Prod-Orders.Archive")), false));
    }
    cases.push((
        on("dynamodb:DeleteTable", iam::table_arn("Prod-Customers")),
        false,
    ));
    cases.extend(tagging_and_deleting_copies());
    let bad = mismatches(&policy, cases);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_mode_reaches_its_environments_functions_only() {
    let lab = Lab::start(CONFIG).await;
    let policy = lab.policy(
        &["--journal", "dynamodb://dr-journal"],
        &["--environment", "Prod", "--recovery-mode"],
    );
    let mapping = iam::mapping_arn("a1b2c3d4-5678-90ab-cdef-11111EXAMPLE");
    let mut cases = vec![
        (on("lambda:ListTags", mapping.clone()), true),
        (
            on("lambda:TagResource", mapping.clone())
                .with("aws:RequestTag/dynamo-dr:replaces", json!("uuid-1"))
                .with("aws:TagKeys", json!(["dynamo-dr:replaces"])),
            true,
        ),
        (on("lambda:TagResource", mapping), false),
    ];
    // Every function here carries the environment's tag; only Prod-Mailer is the environment's:
    // the others are another environment's, the stack's own, or excluded.
    for function in [
        "Prod-Mailer",
        "Prod-LegacyMailer",
        "Staging-Mailer",
        "dynamo-dr-Orders",
        "dynamo-dr-recovery-mode-Prod",
    ] {
        let allowed = function == "Prod-Mailer";
        let arn = iam::function_arn(function);
        let tagged =
            |action: &str| on(action, arn.clone()).with("aws:ResourceTag/tier", json!("prod"));
        cases.push((tagged("lambda:PutFunctionConcurrency"), allowed));
        cases.push((tagged("lambda:DeleteFunctionConcurrency"), allowed));
        cases.push((
            on(
                "lambda:UpdateEventSourceMapping",
                iam::mapping_arn("uuid-2"),
            )
            .with("lambda:FunctionArn", json!(arn)),
            allowed,
        ));
    }
    // A function of the prefix without the environment's tags is not the environment's.
    let untagged = iam::function_arn("Prod-Untagged");
    cases.push((on("lambda:PutFunctionConcurrency", untagged.clone()), false));
    cases.push((on("lambda:ListTags", untagged), true));
    let bad = mismatches(&policy, cases);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_function_reaches_its_own_journal_items_and_data_keys_only() {
    let moto = Emulator::start(Kind::Moto).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = support::write_file(&dir, "dynamo-dr.toml", CONFIG);
    let key = journal_key();
    let args = [
        "--config",
        config.as_str(),
        "--journal-kms-key",
        key.as_str(),
        "stack",
        "--journal-table",
        JOURNAL,
    ];
    let run = support::dr(&moto, &args, None);
    run.assert_code(0);
    let policy = crate::stack::role_policy(&run.json(), "OrdersFunctionRole");
    let (mine, theirs, dotted) = (
        "inc-1.Prod-Orders",
        "inc-1.Prod-Customers",
        "inc-1.Archive.Prod-Orders",
    );
    let mut cases = vec![
        (data_key(mine), true),
        (data_key(theirs), false),
        (data_key(dotted), false),
    ];
    // Leases are released, never deleted, so their fencing numbers only grow.
    cases.push((
        journal_item("dynamodb:DeleteItem", lease_pk("Prod-Orders")),
        false,
    ));
    cases.push((
        journal_item("dynamodb:DeleteItem", execution_pk(mine)),
        false,
    ));
    for action in ["dynamodb:GetItem", "dynamodb:PutItem"] {
        cases.push((journal_item(action, lease_pk("Prod-Orders")), true));
        cases.push((journal_item(action, execution_pk(mine)), true));
        cases.push((
            journal_item(action, format!("{}3", segments_pk(mine))),
            true,
        ));
        cases.push((journal_item(action, lease_pk("Prod-Customers")), false));
        cases.push((journal_item(action, execution_pk(theirs)), false));
        cases.push((
            journal_item(action, format!("{}3", segments_pk(theirs))),
            false,
        ));
        cases.push((journal_item(action, execution_pk(dotted)), false));
    }
    // Its environment's recovery-mode record: read, never written.
    cases.push((
        journal_item("dynamodb:GetItem", "recovery-mode#Prod".into()),
        true,
    ));
    cases.push((
        journal_item("dynamodb:PutItem", "recovery-mode#Prod".into()),
        false,
    ));
    cases.push((on("dynamodb:Scan", iam::table_arn(JOURNAL)), false));
    let bad = mismatches(&policy, cases);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The suite can fail: a policy without one of its statements denies what the scenario asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_with_one_statement_removed_is_caught() {
    let lab = Lab::start(CONFIG).await;
    let global = ["--journal", "dynamodb://dr-journal"];
    let proxy = lab.recorder();
    let client = lab.moto.client();
    let spec = TableSpec::hash_only("Prod-Orders", Scalar::S);
    create_table(&client, &spec).await;
    put_all(
        &client,
        "Prod-Orders",
        (0..20).map(|i| sized_item(&spec, i, 50)),
    )
    .await;
    let mut args = global.to_vec();
    args.extend(["journal", "init"]);
    lab.run(&proxy, &args).assert_code(0);
    let mut args = global.to_vec();
    args.extend(["--output", "json", "check", "--environment", "Prod"]);
    lab.run(&proxy, &args);
    let tables = [
        "--table",
        "Orders",
        "--table",
        "Customers",
        "--journal-init",
    ];
    let policy = lab.policy(&global, &tables);
    let whole = evaluate("whole", vec![policy.clone()], proxy.authorizations(), &[]);
    assert!(denied(&whole).is_empty(), "{:?}", denied(&whole));
    let statements = policy["Statement"].as_array().expect("statements");
    let mut caught = 0;
    for (n, s) in statements.iter().enumerate() {
        let sid = s["Sid"].as_str().unwrap_or_default();
        // A statement that alone allowed some request: without it, that request is denied.
        let sole = whole.verdicts.iter().any(|v| v.allowed_by == [sid]);
        if !sole {
            continue;
        }
        let mut cut = policy.clone();
        cut["Statement"]
            .as_array_mut()
            .expect("statements")
            .remove(n);
        let without = evaluate("cut", vec![cut], proxy.authorizations(), &[]);
        assert!(
            !denied(&without).is_empty(),
            "without {sid}, nothing was denied"
        );
        caught += 1;
    }
    assert!(
        caught >= 3,
        "only {caught} statements were each the sole grant of a request"
    );
}
