//! Least-privilege IAM policies: exactly the calls dynamo-dr makes for one table's recovery, or
//! for one environment's recovery mode, on exactly those resources. The seed gives each table's
//! Step Function minimal, table-specific permissions; this makes that policy for any role.

use serde_json::{Value, json};

use crate::config::EnvironmentConfig;
use crate::restore::{EXECUTION_TAG, INCIDENT_TAG, SOURCE_TAG};
use crate::validate::{NAME_SEPARATOR, TEMP_TABLE_PREFIX};

/// Where the policy applies: one region always; the account is `*` where the operator did not
/// say.
#[derive(Debug, Clone)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    fn dynamodb(&self, resource: &str) -> String {
        format!(
            "arn:{}:dynamodb:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    fn lambda(&self, resource: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

/// What the policy is for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Physical table names to restore (and sync into).
    pub tables: Vec<String>,
    /// The shared journal's control table, when one is used.
    pub journal_table: Option<String>,
    /// An environment whose recovery mode the role runs.
    pub recovery_mode: Option<(String, EnvironmentConfig)>,
    /// Customer managed KMS keys of the tables: the backup, the restore (which keeps the key)
    /// and every read and write go through them.
    pub kms_keys: Vec<String>,
    /// The KMS key that wraps sensitive tables' journal keys (`--journal-kms-key`), as an ARN.
    pub journal_kms_key: Option<String>,
    /// Also `journal init`: CreateTable on the journal table, in a statement of its own so that
    /// it can be granted once and removed.
    pub journal_init: bool,
}

/// A region code such as us-east-1 or ap-southeast-2 (no wildcards), else why not.
pub fn region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region code, e.g. us-east-1 or eu-west-2"
        ))
    }
}

/// A KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), else why not.
pub fn kms_key_arn(arn: &str) -> Result<(), String> {
    match arn.splitn(6, ':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, "kms", region, account, resource]
            if !arn.contains(['*', '?'])
                && !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{arn:?} is not a KMS key ARN, e.g. \
             arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        )),
    }
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// Statement ids may hold only letters and digits.
fn sid(prefix: &str, name: &str) -> String {
    let clean: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}{clean}")
}

/// The policy document.
pub fn policy(scope: &Scope, req: &Request) -> Value {
    let mut statements = Vec::new();
    for table in &req.tables {
        let live = scope.dynamodb(&format!("table/{table}"));
        let temp = scope.dynamodb(&format!(
            "table/{TEMP_TABLE_PREFIX}{table}{NAME_SEPARATOR}*"
        ));
        statements.push(statement(
            &sid("LiveTable", table),
            &[
                // Preflight, forensic backup, the restore's source, and the hard reset or diff.
                "dynamodb:DescribeTable",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:CreateBackup",
                "dynamodb:RestoreTableToPointInTime",
                "dynamodb:Scan",
                "dynamodb:BatchWriteItem",
                "dynamodb:BatchGetItem",
                // What else sees the table's writes, for the plan and the default strategy.
                "dynamodb:DescribeTimeToLive",
                "dynamodb:DescribeKinesisStreamingDestination",
            ],
            vec![live.clone()],
        ));
        statements.push(statement(
            &sid("Backups", table),
            &["dynamodb:DescribeBackup", "dynamodb:RestoreTableFromBackup"],
            vec![format!("{live}/backup/*")],
        ));
        // A restore writes into its target table with these.
        statements.push(statement(
            &sid("TemporaryTables", table),
            &[
                "dynamodb:DescribeTable",
                "dynamodb:Scan",
                "dynamodb:Query",
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:ListTagsOfResource",
            ],
            vec![temp.clone()],
        ));
        // Tagging is what makes a table the tool's own (clean-up deletes by these tags), so the
        // role may tag only tables that carry no execution tag yet, only with the tool's three
        // keys, and only as this table's copy: it cannot make another run's table, or any other
        // table, look like its own. Condition keys as DynamoDB's ABAC documents them:
        // <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/abac-example-use-cases.html>.
        let mut tag = statement(
            &sid("TagTemporaryTables", table),
            &["dynamodb:TagResource"],
            vec![temp.clone()],
        );
        tag["Condition"] = json!({
            "Null": { format!("aws:ResourceTag/{EXECUTION_TAG}"): "true" },
            "StringEquals": { format!("aws:RequestTag/{SOURCE_TAG}"): table },
            "ForAllValues:StringEquals": { "aws:TagKeys": [EXECUTION_TAG, INCIDENT_TAG, SOURCE_TAG] },
        });
        statements.push(tag);
        // Only tables the tool tagged as this table's temporary copies.
        let mut delete = statement(
            &sid("DeleteTemporaryTables", table),
            &["dynamodb:DeleteTable"],
            vec![temp],
        );
        delete["Condition"] = json!({
            "StringEquals": { format!("aws:ResourceTag/{SOURCE_TAG}"): table }
        });
        statements.push(delete);
    }
    if !req.tables.is_empty() {
        // ListBackups has no resource-level permissions.
        statements.push(statement(
            "ListBackups",
            &["dynamodb:ListBackups"],
            vec!["*".into()],
        ));
    }
    if !req.kms_keys.is_empty() {
        // Only through DynamoDB: the role cannot use the key for anything else.
        let mut kms = statement(
            "TableKmsKeys",
            &[
                "kms:DescribeKey",
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:CreateGrant",
            ],
            req.kms_keys.clone(),
        );
        kms["Condition"] = json!({
            "StringEquals": { "kms:ViaService": format!("dynamodb.{}.amazonaws.com", scope.region) }
        });
        statements.push(kms);
    }
    if let Some(key) = &req.journal_kms_key {
        // Only data keys bound to an execution, as the tool makes them.
        let mut journal_key = statement(
            "JournalKmsKey",
            &["kms:GenerateDataKey", "kms:Decrypt"],
            vec![key.clone()],
        );
        journal_key["Condition"] = json!({
            "StringLike": {
                format!("kms:EncryptionContext:{}", crate::journal::envelope::CONTEXT_KEY): "*"
            }
        });
        statements.push(journal_key);
    }
    if let Some(journal) = &req.journal_table {
        statements.push(statement(
            "Journal",
            &[
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:DeleteItem",
                "dynamodb:Scan",
            ],
            vec![scope.dynamodb(&format!("table/{journal}"))],
        ));
        if req.journal_init {
            statements.push(statement(
                "JournalInit",
                &["dynamodb:CreateTable", "dynamodb:DescribeTable"],
                vec![scope.dynamodb(&format!("table/{journal}"))],
            ));
        }
    }
    if !req.tables.is_empty() {
        // The mappings on a table's stream; listing has no resource-level permissions.
        statements.push(statement(
            "StreamConsumers",
            &["lambda:ListEventSourceMappings"],
            vec!["*".into()],
        ));
    }
    if let Some((name, env)) = &req.recovery_mode {
        let functions = scope.lambda(&format!("function:{}*", env.function_prefix));
        // Listing has no resource-level permissions; the tool filters by prefix itself.
        statements.push(statement(
            &sid("ListLambda", name),
            &["lambda:ListFunctions", "lambda:ListEventSourceMappings"],
            vec!["*".into()],
        ));
        statements.push(statement(
            &sid("FunctionConcurrency", name),
            &[
                "lambda:GetFunctionConcurrency",
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
                "lambda:ListTags",
            ],
            vec![functions.clone()],
        ));
        // Only mappings of the environment's functions; Get, Delete and the tags serve the
        // `skip` policy, which replaces a mapping by a tagged twin.
        let mut mappings = statement(
            &sid("EventSourceMappings", name),
            &[
                "lambda:UpdateEventSourceMapping",
                "lambda:GetEventSourceMapping",
                "lambda:DeleteEventSourceMapping",
                "lambda:ListTags",
                "lambda:TagResource",
            ],
            vec![scope.lambda("event-source-mapping:*")],
        );
        mappings["Condition"] = json!({ "ArnLike": { "lambda:FunctionArn": functions.clone() } });
        statements.push(mappings);
        // CreateEventSourceMapping names no resource; the condition holds it to the functions.
        let mut create = statement(
            &sid("CreateEventSourceMapping", name),
            &["lambda:CreateEventSourceMapping"],
            vec!["*".into()],
        );
        create["Condition"] = json!({ "ArnLike": { "lambda:FunctionArn": functions } });
        statements.push(create);
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
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
            recovery_mode: None,
            kms_keys: Vec::new(),
            journal_kms_key: None,
            journal_init: false,
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
        // The live table is never deleted, nor are items deleted one by one there.
        assert!(!grants(&p).contains(&("dynamodb:DeleteItem".into(), format!("{arn}Orders"))));
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
        let journal = policy(
            &scope(),
            &Request {
                journal_kms_key: Some(key.into()),
                ..Request::default()
            },
        );
        assert_eq!(
            grants(&journal),
            BTreeSet::from([
                ("kms:Decrypt".to_string(), key.to_string()),
                ("kms:GenerateDataKey".to_string(), key.to_string()),
            ])
        );
        assert_eq!(
            journal["Statement"][0]["Condition"]["StringLike"]["kms:EncryptionContext:dynamo-dr:execution-id"],
            "*"
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
            recovery_mode: Some(("Prod".into(), env())),
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
        // Every statement on mappings is held to the environment's functions.
        let on_mappings = statements_with(&p, |a| a.ends_with("EventSourceMapping"));
        assert_eq!(on_mappings.len(), 2, "{p:#}");
        for s in on_mappings {
            assert_eq!(
                s["Condition"]["ArnLike"]["lambda:FunctionArn"],
                "arn:aws:lambda:us-east-1:123456789012:function:Prod-*",
                "{s:#}"
            );
        }
    }
}
