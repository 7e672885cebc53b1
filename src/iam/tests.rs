//! The policies' shape; `tests/least_privilege` evaluates them against every request.
use super::*;
use std::collections::BTreeSet;

fn scope() -> Scope {
    Scope {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
    }
}

fn env() -> EnvironmentConfig {
    EnvironmentConfig {
        function_prefix: "Prod-".into(),
        tags: Default::default(),
        exclude: vec!["*DisasterRecovery*".into()],
        disable_event_source_mappings: true,
        skip_recovery_events: Vec::new(),
    }
}

/// The policy's statements granting an action that `wanted` accepts.
fn statements_with(p: &Value, wanted: impl Fn(&str) -> bool) -> Vec<&Value> {
    p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| wanted(a.as_str().unwrap()))
        })
        .collect()
}

/// Every (action, resource) pair the policy grants.
fn grants(p: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for s in p["Statement"].as_array().unwrap() {
        if s["Effect"] == "Deny" {
            continue;
        }
        assert_eq!(s["Effect"], "Allow");
        for a in s["Action"].as_array().unwrap() {
            for r in s["Resource"].as_array().unwrap() {
                out.insert((a.as_str().unwrap().into(), r.as_str().unwrap().into()));
            }
        }
    }
    out
}

#[test]
fn a_table_policy_parses_and_grants_only_that_tables_resources() {
    let req = Request {
        tables: vec!["Orders".into()],
        journal_table: Some("dynamo-dr-journal".into()),
        ..Request::default()
    };
    let text = serde_json::to_string_pretty(&policy(&scope(), &req)).unwrap();
    let p: Value = serde_json::from_str(&text).unwrap();
    let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/";
    for (action, resource) in grants(&p) {
        // The mappings on the table's stream, for the plan; Lambda lists them for any ARN.
        if action == "lambda:ListEventSourceMappings" {
            assert_eq!(resource, "*");
            continue;
        }
        assert!(action.starts_with("dynamodb:"), "{action}");
        let allowed = resource == format!("{arn}Orders")
            || resource == format!("{arn}Orders/backup/*")
            || resource == format!("{arn}DR-TEMP-Orders.*")
            || resource == format!("{arn}dynamo-dr-journal")
            || (resource == "*" && action == "dynamodb:ListBackups");
        assert!(allowed, "{action} on {resource}");
        assert!(!action.contains('*'), "no wildcard actions: {action}");
    }
    let deletes: Vec<_> = grants(&p)
        .into_iter()
        .filter(|(a, _)| a == "dynamodb:DeleteTable")
        .collect();
    assert_eq!(
        deletes,
        [(
            "dynamodb:DeleteTable".into(),
            format!("{arn}DR-TEMP-Orders.*")
        )]
    );
    let delete = p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"][0] == "dynamodb:DeleteTable")
        .unwrap();
    assert_eq!(
        delete["Condition"]["StringEquals"]["aws:ResourceTag/dynamo-dr:source-table"],
        "Orders"
    );
    // The live table is never deleted.
    assert!(!grants(&p).contains(&("dynamodb:DeleteTable".into(), format!("{arn}Orders"))));
    // The run policy cannot create tables; that is journal init's statement alone.
    assert!(!grants(&p).iter().any(|(a, _)| a == "dynamodb:CreateTable"));
    let init = policy(
        &scope(),
        &Request {
            journal_init: true,
            ..req.clone()
        },
    );
    let init = init["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "JournalInit")
        .unwrap();
    assert_eq!(init["Action"][0], "dynamodb:CreateTable");
    assert_eq!(init["Resource"][0], format!("{arn}dynamo-dr-journal"));
}

#[test]
fn tagging_is_only_for_untagged_copies_with_the_tools_own_tags() {
    let p = policy(
        &scope(),
        &Request {
            tables: vec!["Orders".into()],
            ..Request::default()
        },
    );
    let taggers = statements_with(&p, |a| a == "dynamodb:TagResource");
    assert_eq!(taggers.len(), 1, "one statement grants TagResource");
    let c = &taggers[0]["Condition"];
    assert_eq!(c["Null"]["aws:ResourceTag/dynamo-dr:execution-id"], "true");
    assert_eq!(
        c["StringEquals"]["aws:RequestTag/dynamo-dr:source-table"],
        "Orders"
    );
    let keys = c["ForAllValues:StringEquals"]["aws:TagKeys"]
        .as_array()
        .unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(taggers[0]["Action"].as_array().unwrap().len(), 1);
}

#[test]
fn regions_and_kms_keys_refuse_wildcards() {
    for good in ["us-east-1", "eu-west-2", "ap-southeast-2", "us-gov-west-1"] {
        assert!(region(good).is_ok(), "{good}");
    }
    for bad in [
        "*",
        "",
        "us-east-*",
        "us-east",
        "US-EAST-1",
        "useast1",
        "us-east-0",
    ] {
        assert!(region(bad).is_err(), "{bad}");
    }
    assert!(kms_key_arn("arn:aws:kms:us-east-1:123456789012:key/*").is_err());
    assert!(kms_key_arn("arn:aws:kms:*:123456789012:key/abc").is_err());
}

#[test]
fn kms_keys_are_granted_only_through_dynamodb() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let req = Request {
        tables: vec!["Orders".into()],
        kms_keys: vec![key.into()],
        ..Request::default()
    };
    let p = policy(&scope(), &req);
    let kms: Vec<_> = grants(&p)
        .into_iter()
        .filter(|(a, _)| a.starts_with("kms:"))
        .collect();
    assert_eq!(kms.len(), 6);
    assert!(kms.iter().all(|(_, r)| r == key));
    let s = p["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "TableKmsKeys")
        .unwrap();
    assert_eq!(
        s["Condition"]["StringEquals"]["kms:ViaService"],
        "dynamodb.us-east-1.amazonaws.com"
    );
    assert!(kms_key_arn(key).is_ok());
    let journal = Value::Array(journal_kms_statements(&Request {
        tables: vec!["Orders".into()],
        journal_kms_key: Some(key.into()),
        ..Request::default()
    }));
    let context = "kms:EncryptionContext:dynamo-dr:execution-id";
    assert_eq!(
        journal[0]["Action"],
        json!(["kms:GenerateDataKey", "kms:Decrypt"])
    );
    assert_eq!(
        journal[0]["Condition"]["StringLike"][context],
        json!(["*.Orders"])
    );
    assert_eq!(journal[1]["Effect"], "Deny");
    assert_eq!(
        journal[1]["Condition"]["StringLike"][context],
        json!(["*.*.Orders"])
    );
    for bad in [
        "arn:aws:kms:us-east-1:123456789012:alias/x",
        "1234abcd",
        "arn:aws:kms:us-east-1:12:key/x",
        "arn:aws:kms:us-east-1:123456789012:key/",
    ] {
        assert!(kms_key_arn(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_recovery_mode_policy_touches_only_the_environments_functions() {
    let req = Request {
        recovery_mode: Some(RecoveryMode {
            name: "Prod".into(),
            env: env(),
            tables: Vec::new(),
        }),
        ..Request::default()
    };
    let p = policy(&scope(), &req);
    for (action, resource) in grants(&p) {
        assert!(action.starts_with("lambda:"), "{action}");
        match action.as_str() {
            "lambda:ListFunctions" | "lambda:ListEventSourceMappings" => {
                assert_eq!(resource, "*")
            }
            "lambda:CreateEventSourceMapping" => assert_eq!(resource, "*"),
            "lambda:UpdateEventSourceMapping"
            | "lambda:GetEventSourceMapping"
            | "lambda:DeleteEventSourceMapping"
            | "lambda:TagResource" => assert_eq!(
                resource,
                "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:*"
            ),
            "lambda:ListTags" => assert!(
                resource == "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:*"
                    || resource == "arn:aws:lambda:us-east-1:123456789012:function:Prod-*",
                "{resource}"
            ),
            _ => assert_eq!(
                resource,
                "arn:aws:lambda:us-east-1:123456789012:function:Prod-*"
            ),
        }
    }
    // Every statement that lets it change mappings is held to the environment's functions.
    let on_mappings: Vec<_> = statements_with(&p, |a| {
        a.ends_with("EventSourceMapping") && !a.starts_with("lambda:Get")
    })
    .into_iter()
    .filter(|s| s["Effect"] == "Allow")
    .collect();
    assert_eq!(on_mappings.len(), 2, "{p:#}");
    for s in on_mappings {
        assert_eq!(
            s["Condition"]["ArnLike"]["lambda:FunctionArn"],
            "arn:aws:lambda:us-east-1:123456789012:function:Prod-*",
            "{s:#}"
        );
    }
}

#[test]
fn tables_whose_names_extend_each_other_with_a_dot_need_a_role_each() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(shareable(&names(&["Orders", "Payments", "OrdersArchive"])).is_ok());
    for pair in [["Orders", "Orders.Archive"], ["Orders", "Prod.Orders"]] {
        let why = shareable(&names(&pair)).unwrap_err();
        assert!(why.contains("one policy per table"), "{why}");
    }
}

/// What operators and auditors read, as reviewed: a change of any grant is a reviewed diff.
#[test]
fn the_policies_read_as_reviewed() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let journal_key = "arn:aws:kms:us-east-1:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab";
    let operator = Request {
        tables: vec!["Orders".into()],
        journal_table: Some("dr-journal".into()),
        kms_keys: vec![key.into()],
        journal_kms_key: Some(journal_key.into()),
        environments: vec!["Prod".into()],
        ..Request::default()
    };
    insta::assert_json_snapshot!("operator", policy(&scope(), &operator));
    let function = Request {
        function: true,
        ..operator.clone()
    };
    insta::assert_json_snapshot!("stack_table_function", policy(&scope(), &function));
    let mut tagged = env();
    tagged.tags = [("tier".to_string(), "prod".to_string())].into();
    let mode = Request {
        journal_table: Some("dr-journal".into()),
        recovery_mode: Some(RecoveryMode {
            name: "Prod".into(),
            env: tagged,
            tables: vec!["Orders".into()],
        }),
        ..Request::default()
    };
    insta::assert_json_snapshot!("recovery_mode", policy(&scope(), &mode));
}

/// UpdateTable only on request, and then only on the live tables: it can change far more of a
/// table than its warm throughput.
#[test]
fn update_table_is_granted_only_for_a_prewarm_and_only_on_the_live_table() {
    let req = |prewarm: bool| Request {
        tables: vec!["Orders".into()],
        prewarm,
        ..Default::default()
    };
    let without = policy(&scope(), &req(false));
    assert!(statements_with(&without, |a| a == "dynamodb:UpdateTable").is_empty());
    let with = grants(&policy(&scope(), &req(true)));
    let updates: Vec<&String> = with
        .iter()
        .filter(|(a, _)| a == "dynamodb:UpdateTable")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        updates,
        ["arn:aws:dynamodb:us-east-1:123456789012:table/Orders"]
    );
}
