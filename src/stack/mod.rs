//! `dynamo-dr stack`: the seed's form inside AWS as a CloudFormation template. Every configured,
//! non-excluded table gets its own function, execution role and pair of state machines, named as
//! in the seed (`DRRestoreDynamoDbTable{Table}StateMachine`, `{Table}DRSyncTableDataStateMachine`,
//! `{Table}` the table's logical name in the config), and a role that can act on that table
//! alone: the policy `iam-policy` computes. Each environment gets a recovery-mode state machine
//! whose role may change only that environment's functions. The journal table (PITR on) and log
//! groups with a retention complete it.
//!
//! The state machines drive the handler through a small contract: each Task invokes the table's
//! function with `{"action": …}` and reads back `{"executionId", "phase", "state", "waitSeconds",
//! "segments"}`, `state` being `wait`, `continue`, `done` or `failed`.

use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::iam::{self, Request, Scope};

mod asl;
mod dashboard;
pub use asl::{recovery_mode_definition, restore_definition, sync_definition};

/// Every ARN in a template is built from the stack's own partition, region and account.
fn scope() -> Scope {
    Scope {
        partition: "${AWS::Partition}".into(),
        region: "${AWS::Region}".into(),
        account: "${AWS::AccountId}".into(),
    }
}

/// Grants of the template's roles that no test's request reaches, with the call that needs them:
/// `(statement id, action, why)`, as [`iam::UNREACHED`] for the tool's own calls.
pub const UNREACHED: &[(&str, &str, &str)] = &[
    (
        "OwnLogs",
        "logs:*",
        "the Lambda service writes a function's logs with the function's role; the test's \
         Runtime API keeps them in the process's stdout instead",
    ),
    (
        "LogDelivery",
        "logs:*",
        "Step Functions sets up a state machine's log delivery with its role when the machine \
         is created or updated (https://docs.aws.amazon.com/step-functions/latest/dg/\
         cw-logs.html); no test deploys to a service that calls them",
    ),
];

/// Segment workers of one Map run at once; past this a Map runs in distributed mode.
pub const INLINE_MAP_LIMIT: u32 = 40;

/// What the template is made for.
#[derive(Debug, Clone)]
pub struct StackRequest {
    /// The shared journal's control table.
    pub journal_table: String,
    /// Segment workers one table's Map runs at once.
    pub max_concurrency: u32,
    /// The KMS key (ARN) that wraps sensitive tables' journal keys: required when a configured
    /// table is sensitive, since a function has no key file.
    pub journal_kms_key: Option<String>,
    /// Customer managed KMS keys by logical table name (`--kms-key`), over the config's.
    pub kms_keys: std::collections::BTreeMap<String, String>,
}

/// One table of the template.
struct Table {
    logical: String,
    physical: String,
    environment: Option<String>,
    sensitive: bool,
    /// The table's customer managed KMS key.
    kms_key: Option<String>,
    /// Where its keys files are read from S3.
    keys_location: Option<String>,
    /// Where a window's export is written.
    export_location: Option<String>,
    /// Its function's `DYNAMO_DR_CONFIG`.
    config: String,
}

/// Lambda allows 4 KB of environment variables per function.
const CONFIG_LIMIT: usize = 3500;

fn checked_config(text: String, what: &str) -> Result<String> {
    if text.len() > CONFIG_LIMIT {
        return Err(Error::invalid(
            "--config",
            format!(
                "the config of {what} is {} bytes, more than the {CONFIG_LIMIT} its function's \
                 environment holds (Lambda allows 4 KB); shorten its patterns and tags",
                text.len()
            ),
        ));
    }
    Ok(text)
}

/// The functions the template makes.
fn own_functions(tables: &[Table], environments: &[&String]) -> Vec<String> {
    let tables = tables.iter().map(|t| Names::of(&t.logical).function);
    let modes = environments.iter().map(|e| recovery_mode_function(e));
    tables.chain(modes).collect()
}

fn recovery_mode_function(environment: &str) -> String {
    let clean: String = environment
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("dynamo-dr-recovery-mode-{clean}")
}

/// The names of one table's resources.
pub struct Names {
    pub restore_machine: String,
    pub sync_machine: String,
    pub function: String,
}

impl Names {
    pub fn of(logical: &str) -> Names {
        Names {
            restore_machine: format!("DRRestoreDynamoDbTable{logical}StateMachine"),
            sync_machine: format!("{logical}DRSyncTableDataStateMachine"),
            function: format!("dynamo-dr-{logical}"),
        }
    }
}

/// The template for every configured, non-excluded table and every environment they name.
pub fn template(config: &Config, req: &StackRequest) -> Result<Value> {
    let tables = tables_of(config, req)?;
    check_tables(req, &tables)?;
    let mut resources = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    resources.insert("JournalTable".into(), journal_table(&req.journal_table));
    for t in &tables {
        table_resources(t, req, &mut resources, &mut outputs);
    }
    environment_resources(config, req, &tables, &mut resources, &mut outputs)?;
    Ok(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "dynamo-dr: in-place DynamoDB recovery, a pair of state machines per table (generated by `dynamo-dr stack`)",
        "Parameters": parameters(),
        "Resources": resources,
        "Outputs": outputs,
    }))
}

/// The configured, non-excluded tables, each with its key and its function's config.
fn tables_of(config: &Config, req: &StackRequest) -> Result<Vec<Table>> {
    let tables: Vec<Table> = config
        .tables
        .iter()
        .filter(|(_, t)| t.excluded.is_none())
        .map(|(logical, t)| {
            Ok(Table {
                logical: logical.clone(),
                physical: t.name.clone(),
                environment: t.environment.clone(),
                sensitive: config.is_sensitive(&t.name),
                kms_key: req.kms_keys.get(logical).or(t.kms_key.as_ref()).cloned(),
                keys_location: t.options.or(&config.defaults).keys_location,
                export_location: t.options.or(&config.defaults).export_location(),
                config: checked_config(
                    config.excerpt(Some(logical), None)?,
                    &format!("[tables.{logical}]"),
                )?,
            })
        })
        .collect::<Result<_>>()?;
    if tables.is_empty() {
        return Err(Error::invalid(
            "--config",
            format!(
                "{} configures no table that may be restored; add [tables.Name] sections with \
                 name = \"<physical table name>\"",
                config.describe_path()
            ),
        ));
    }
    Ok(tables)
}

/// Names a stack can carry, and the keys each table's function needs.
fn check_tables(req: &StackRequest, tables: &[Table]) -> Result<()> {
    for t in tables {
        // Logical ids and the seed's state machine names hold letters and digits only; a
        // function name has room for 54 of them after `dynamo-dr-`.
        if t.logical.is_empty()
            || !t.logical.chars().all(|c| c.is_ascii_alphanumeric())
            || t.logical.len() > 54
        {
            return Err(Error::invalid(
                "--config",
                format!(
                    "[tables.{}]: a stack needs logical names of 1 to 54 letters and digits, \
                     as the seed's TransactionHistoryTable, because they name the state machines \
                     and functions; rename the section",
                    t.logical
                ),
            ));
        }
    }
    if let Some(t) = tables.iter().find(|t| t.sensitive)
        && req.journal_kms_key.is_none()
    {
        return Err(Error::invalid(
            "--journal-kms-key",
            format!(
                "[tables.{}] is sensitive, so its function must seal its checkpoint keys, and a \
                 function has no key file; pass --journal-kms-key KMS_KEY_ARN (its role may then \
                 generate and decrypt data keys with that key alone)",
                t.logical
            ),
        ));
    }
    if let Some(key) = &req.journal_kms_key {
        iam::kms_key_arn(key).map_err(|why| Error::invalid("--journal-kms-key", why))?;
    }
    for t in tables {
        if let Some(key) = &t.kms_key {
            iam::kms_key_arn(key).map_err(|why| {
                Error::invalid(
                    "--kms-key",
                    format!("[tables.{}]: {why}; give the key DescribeTable shows (SSEDescription.KMSMasterKeyArn)", t.logical),
                )
            })?;
        }
    }
    Ok(())
}

/// A recovery-mode function and state machine per environment the tables name, whose prefix
/// must not reach the stack's own functions.
fn environment_resources(
    config: &Config,
    req: &StackRequest,
    tables: &[Table],
    resources: &mut serde_json::Map<String, Value>,
    outputs: &mut serde_json::Map<String, Value>,
) -> Result<()> {
    let mut environments: Vec<&String> = tables
        .iter()
        .filter_map(|t| t.environment.as_ref())
        .collect();
    environments.sort();
    environments.dedup();
    let own = own_functions(tables, &environments);
    for name in environments {
        let env = config.environment(name)?;
        if let Some(f) = own.iter().find(|f| f.starts_with(&env.function_prefix)) {
            return Err(Error::invalid(
                "function_prefix",
                format!(
                    "[environments.{name}] function_prefix {:?} matches {f}, a function of this \
                     stack, which its recovery mode would then pause; give the environment's own \
                     prefix, e.g. function_prefix = \"{name}-\"",
                    env.function_prefix
                ),
            ));
        }
        let text = checked_config(
            config.excerpt(None, Some(name))?,
            &format!("[environments.{name}]"),
        )?;
        let mode = iam::RecoveryMode {
            name: name.clone(),
            env,
            tables: config.tables_of(name),
        };
        recovery_mode_resources(&mode, &text, req, resources, outputs);
    }
    Ok(())
}

fn parameters() -> Value {
    json!({
        "ArtifactBucket": { "Type": "String", "Description": "S3 bucket of the function's zip (scripts/package-lambda)" },
        "ArtifactKey": { "Type": "String", "Description": "S3 key of the function's zip" },
        "FunctionMemory": { "Type": "Number", "Default": 1024, "MinValue": 128, "MaxValue": 10240 },
        "FunctionTimeout": { "Type": "Number", "Default": 900, "MinValue": 60, "MaxValue": 900,
            "Description": "Seconds; each invocation stops a margin before it and checkpoints" },
        "FunctionArchitecture": { "Type": "String", "Default": "arm64", "AllowedValues": ["arm64", "x86_64"] },
        "LogRetentionDays": { "Type": "Number", "Default": 90,
            "AllowedValues": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] },
    })
}

fn journal_table(name: &str) -> Value {
    json!({
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{ "AttributeName": "pk", "AttributeType": "S" }],
            "KeySchema": [{ "AttributeName": "pk", "KeyType": "HASH" }],
            "PointInTimeRecoverySpecification": { "PointInTimeRecoveryEnabled": true },
        },
    })
}

/// Every string holding `${AWS::…}` becomes a `Fn::Sub`, so a policy made for any scope reads
/// the stack's own partition, region and account.
fn substituted(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains("${") => json!({ "Fn::Sub": s }),
        Value::Array(a) => Value::Array(a.into_iter().map(substituted).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, substituted(v))).collect())
        }
        other => other,
    }
}

fn assume(service: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": { "Service": service }, "Action": "sts:AssumeRole" }],
    })
}

fn log_group(name: Value) -> Value {
    json!({
        "Type": "AWS::Logs::LogGroup",
        "Properties": { "LogGroupName": name, "RetentionInDays": { "Ref": "LogRetentionDays" } },
    })
}

/// A function of the handler, with its role and log group.
fn function(
    id: &str,
    name: &str,
    policy: Value,
    env: Value,
    resources: &mut serde_json::Map<String, Value>,
) {
    let group = format!("/aws/lambda/{name}");
    let mut statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    statements.push(json!({
        "Sid": "OwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [format!("arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{group}:*")],
    }));
    let document = json!({ "Version": "2012-10-17", "Statement": statements });
    resources.insert(
        format!("{id}Role"),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": assume("lambda.amazonaws.com"),
                "Policies": [{ "PolicyName": name, "PolicyDocument": substituted(document) }],
            },
        }),
    );
    resources.insert(format!("{id}Logs"), log_group(json!(group)));
    resources.insert(
        id.to_string(),
        json!({
            "Type": "AWS::Lambda::Function",
            "DependsOn": [format!("{id}Logs")],
            "Properties": {
                "FunctionName": name,
                "Runtime": "provided.al2023",
                "Handler": "bootstrap",
                "Code": { "S3Bucket": { "Ref": "ArtifactBucket" }, "S3Key": { "Ref": "ArtifactKey" } },
                "Role": { "Fn::GetAtt": [format!("{id}Role"), "Arn"] },
                "MemorySize": { "Ref": "FunctionMemory" },
                "Timeout": { "Ref": "FunctionTimeout" },
                "Architectures": [{ "Ref": "FunctionArchitecture" }],
                "Environment": { "Variables": env },
            },
        }),
    );
}

fn machine(name: &str, definition: &Value, substitutions: Value, role: &str) -> Value {
    json!({
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": name,
            "StateMachineType": "STANDARD",
            // An object, not a string, so that cfn-lint checks it (E3601).
            "Definition": definition,
            "DefinitionSubstitutions": substitutions,
            "RoleArn": { "Fn::GetAtt": [role, "Arn"] },
            "LoggingConfiguration": {
                "Level": "ERROR",
                "IncludeExecutionData": false,
                "Destinations": [{ "CloudWatchLogsLogGroup": { "LogGroupArn": { "Fn::GetAtt": [format!("{name}Logs"), "Arn"] } } }],
            },
        },
    })
}

/// What Step Functions itself needs: its log delivery (no resource-level permissions exist).
fn log_delivery() -> Value {
    json!({
        "Sid": "LogDelivery",
        "Effect": "Allow",
        "Action": ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"],
        "Resource": ["*"],
    })
}

/// What a table's state machines ask of IAM: its function, the child machine and its
/// executions, the managed rule `startExecution.sync` waits on, and a distributed Map's runs.
fn states_policy(names: &Names, max_concurrency: u32) -> Value {
    let arn = |service: &str, rest: &str| {
        format!("arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{rest}")
    };
    let mut states_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "OwnFunction", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
              "Resource": [arn("lambda", &format!("function:{}", names.function)),
                           arn("lambda", &format!("function:{}:*", names.function))] },
            { "Sid": "OwnSyncMachine", "Effect": "Allow", "Action": ["states:StartExecution"],
              "Resource": [arn("states", &format!("stateMachine:{}", names.sync_machine))] },
            { "Sid": "OwnSyncExecutions", "Effect": "Allow",
              "Action": ["states:DescribeExecution", "states:StopExecution"],
              "Resource": [arn("states", &format!("execution:{}:*", names.sync_machine))] },
            // startExecution.sync waits on the managed rule Step Functions creates.
            { "Sid": "SyncRule", "Effect": "Allow",
              "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
              "Resource": [arn("events", "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")] },
            log_delivery(),
        ],
    });
    if max_concurrency > INLINE_MAP_LIMIT {
        // A distributed Map starts child executions of its own state machine:
        // <https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html>.
        let runs = json!({ "Sid": "OwnMapRuns", "Effect": "Allow",
            "Action": ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"],
            "Resource": [arn("states", &format!("stateMachine:{}", names.sync_machine)),
                         arn("states", &format!("execution:{}/*", names.sync_machine))] });
        if let Some(list) = states_policy["Statement"].as_array_mut() {
            list.push(runs);
        }
    }
    states_policy
}

fn table_resources(
    t: &Table,
    req: &StackRequest,
    resources: &mut serde_json::Map<String, Value>,
    outputs: &mut serde_json::Map<String, Value>,
) {
    let names = Names::of(&t.logical);
    let fid = format!("{}Function", t.logical);
    let policy = iam::policy(
        &scope(),
        &Request {
            tables: vec![t.physical.clone()],
            journal_table: Some(req.journal_table.clone()),
            journal_kms_key: req.journal_kms_key.clone().filter(|_| t.sensitive),
            kms_keys: t.kms_key.iter().cloned().collect(),
            function: true,
            environments: t.environment.iter().cloned().collect(),
            keys_locations: t.keys_location.iter().cloned().collect(),
            export_locations: t.export_location.iter().cloned().collect(),
            ..Request::default()
        },
    );
    let mut env = json!({
        "DYNAMO_DR_JOURNAL": format!("dynamodb://{}", req.journal_table),
        "DYNAMO_DR_CONFIG": t.config,
        "DYNAMO_DR_ROLE": format!("table:{}", t.logical),
    });
    if let Some(key) = req.journal_kms_key.as_ref().filter(|_| t.sensitive) {
        env["DYNAMO_DR_JOURNAL_KMS_KEY"] = json!(key);
    }
    function(&fid, &names.function, policy, env, resources);
    let states_role = format!("{}StatesRole", t.logical);
    let states_policy = states_policy(&names, req.max_concurrency);
    resources.insert(
        states_role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": assume("states.amazonaws.com"),
                "Policies": [{ "PolicyName": format!("dynamo-dr-states-{}", t.logical),
                               "PolicyDocument": substituted(states_policy) }],
            },
        }),
    );
    let function_arn = json!({ "Fn::GetAtt": [fid, "Arn"] });
    dashboard::insert(&t.logical, &t.physical, resources, outputs);
    for (name, definition, subs) in [
        (
            &names.sync_machine,
            sync_definition(&t.logical, req.max_concurrency),
            json!({ "Function": function_arn }),
        ),
        (
            &names.restore_machine,
            restore_definition(&t.logical),
            json!({ "Function": function_arn, "SyncMachine": { "Ref": names.sync_machine } }),
        ),
    ] {
        resources.insert(
            format!("{name}Logs"),
            log_group(json!(format!("/aws/vendedlogs/states/{name}"))),
        );
        resources.insert(name.clone(), machine(name, &definition, subs, &states_role));
        outputs.insert(
            name.clone(),
            json!({ "Value": { "Ref": name }, "Description": format!("{} ({})", name, t.physical) }),
        );
    }
}

fn recovery_mode_resources(
    mode: &iam::RecoveryMode,
    config: &str,
    req: &StackRequest,
    resources: &mut serde_json::Map<String, Value>,
    outputs: &mut serde_json::Map<String, Value>,
) {
    let name = &mode.name;
    let clean: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let fid = format!("{clean}RecoveryModeFunction");
    let function_name = recovery_mode_function(name);
    let policy = iam::policy(
        &scope(),
        &Request {
            journal_table: Some(req.journal_table.clone()),
            recovery_mode: Some(mode.clone()),
            function: true,
            ..Request::default()
        },
    );
    let vars = json!({
        "DYNAMO_DR_JOURNAL": format!("dynamodb://{}", req.journal_table),
        "DYNAMO_DR_CONFIG": config,
        "DYNAMO_DR_ROLE": format!("recovery-mode:{name}"),
    });
    function(&fid, &function_name, policy, vars, resources);
    let machine_name = format!("DRRecoveryMode{clean}StateMachine");
    let role = format!("{clean}RecoveryModeStatesRole");
    let states_policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            { "Sid": "OwnFunction", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
              "Resource": [format!("arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{function_name}")] },
            log_delivery(),
        ],
    });
    resources.insert(
        role.clone(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": assume("states.amazonaws.com"),
                "Policies": [{ "PolicyName": format!("dynamo-dr-states-recovery-mode-{clean}"),
                               "PolicyDocument": substituted(states_policy) }],
            },
        }),
    );
    let definition = recovery_mode_definition(name);
    resources.insert(
        format!("{machine_name}Logs"),
        log_group(json!(format!("/aws/vendedlogs/states/{machine_name}"))),
    );
    resources.insert(
        machine_name.clone(),
        machine(
            &machine_name,
            &definition,
            json!({ "Function": { "Fn::GetAtt": [fid, "Arn"] } }),
            &role,
        ),
    );
    outputs.insert(
        machine_name.clone(),
        json!({ "Value": { "Ref": machine_name } }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
        excluded = "holds SSNs"
    "#;

    fn request() -> StackRequest {
        StackRequest {
            journal_table: "dynamo-dr-journal".into(),
            max_concurrency: 16,
            journal_kms_key: None,
            kms_keys: Default::default(),
        }
    }

    /// Every string of a value, `Fn::Sub` texts included.
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }

    /// The template as reviewed: a change of any resource, role or machine is a reviewed diff.
    #[test]
    fn the_template_reads_as_reviewed() {
        let config = Config::parse(CONFIG).unwrap();
        insta::assert_json_snapshot!("template", template(&config, &request()).unwrap());
    }

    #[test]
    fn each_table_gets_the_seeds_machines_and_a_role_for_that_table_alone() {
        let config = Config::parse(CONFIG).unwrap();
        let t = template(&config, &request()).unwrap();
        let r = &t["Resources"];
        for logical in ["TransactionHistoryTable", "ProviderTable"] {
            let names = Names::of(logical);
            assert_eq!(
                r[&names.restore_machine]["Properties"]["StateMachineName"],
                names.restore_machine
            );
            assert_eq!(
                r[&names.sync_machine]["Type"],
                "AWS::StepFunctions::StateMachine"
            );
            assert_eq!(
                r[format!("{logical}Function")]["Properties"]["FunctionName"],
                names.function
            );
        }
        assert_eq!(
            r["DRRestoreDynamoDbTableTransactionHistoryTableStateMachine"]["Type"],
            "AWS::StepFunctions::StateMachine"
        );
        assert!(
            r.get("DRRestoreDynamoDbTableSSNTableStateMachine")
                .is_none(),
            "an excluded table gets nothing"
        );
        // The function role of one table names no other table.
        let mut texts = Vec::new();
        strings(&r["TransactionHistoryTableFunctionRole"], &mut texts);
        let all = texts.join(" ");
        assert!(all.contains("table/Prod-TransactionHistory-ABC"), "{all}");
        for other in ["Prod-Provider-DEF", "Prod-SSN-GHI"] {
            assert!(!all.contains(other), "{other} in {all}");
        }
        assert!(!all.contains("table/*"), "{all}");
        // Its function's config holds its own table alone, and parses.
        let vars = &r["TransactionHistoryTableFunction"]["Properties"]["Environment"]["Variables"];
        let text = vars["DYNAMO_DR_CONFIG"].as_str().unwrap();
        let own = Config::parse(text).unwrap();
        assert_eq!(
            own.tables.keys().collect::<Vec<_>>(),
            ["TransactionHistoryTable"]
        );
        // Each function knows its role, and takes no other action.
        assert_eq!(vars["DYNAMO_DR_ROLE"], "table:TransactionHistoryTable");
        let rm = r
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with("RecoveryModeFunction"))
            .map(|(_, v)| v["Properties"]["Environment"]["Variables"].clone())
            .unwrap();
        assert_eq!(rm["DYNAMO_DR_ROLE"], "recovery-mode:Prod");
        // It knows its tables' names, so `end` can refuse while one is being restored.
        let rm_config = Config::parse(rm["DYNAMO_DR_CONFIG"].as_str().unwrap()).unwrap();
        assert!(
            rm_config
                .tables_of("Prod")
                .contains(&"Prod-TransactionHistory-ABC".to_string()),
            "{rm}"
        );
        assert!(own.environments.contains_key("Prod"), "{text}");
        assert!(!text.contains("Prod-Provider-DEF"), "{text}");
        // Its states role invokes its own function and starts its own child only.
        let mut texts = Vec::new();
        strings(&r["TransactionHistoryTableStatesRole"], &mut texts);
        let all = texts.join(" ");
        assert!(
            all.contains("function:dynamo-dr-TransactionHistoryTable"),
            "{all}"
        );
        assert!(!all.contains("ProviderTable"), "{all}");
        assert_eq!(
            r["JournalTable"]["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        assert_eq!(
            r["DRRecoveryModeProdStateMachine"]["Type"],
            "AWS::StepFunctions::StateMachine"
        );
    }

    #[test]
    fn definitions_are_json_with_every_next_defined() {
        for definition in [
            restore_definition("T"),
            sync_definition("T", 16),
            sync_definition("T", 100),
        ] {
            let mut nexts = Vec::new();
            fn walk(v: &Value, states: &mut Vec<(Value, Value)>) {
                if let Some(s) = v.get("States").and_then(Value::as_object) {
                    let names: Value = s.keys().cloned().collect::<Vec<_>>().into();
                    for state in s.values() {
                        states.push((names.clone(), state.clone()));
                        if let Some(p) = state.get("ItemProcessor") {
                            walk(p, states);
                        }
                    }
                }
            }
            walk(&definition, &mut nexts);
            for (names, state) in &nexts {
                let mut targets: Vec<&Value> = state.get("Next").into_iter().collect();
                for c in state["Choices"].as_array().into_iter().flatten() {
                    targets.push(&c["Next"]);
                }
                if let Some(d) = state.get("Default") {
                    targets.push(d);
                }
                for c in state["Catch"].as_array().into_iter().flatten() {
                    targets.push(&c["Next"]);
                }
                for t in targets {
                    assert!(
                        names.as_array().unwrap().contains(t),
                        "{t} is not a state of {names}"
                    );
                }
            }
        }
        assert_eq!(
            sync_definition("T", 100)["States"]["Segments"]["ItemProcessor"]["ProcessorConfig"]["Mode"],
            "DISTRIBUTED"
        );
    }

    #[test]
    fn a_sensitive_tables_function_gets_the_journal_kms_key_and_only_it() {
        let text = CONFIG.replace(
            "name = \"Prod-Provider-DEF\"",
            "name = \"Prod-Provider-DEF\"\nsensitive = true",
        );
        let config = Config::parse(&text).unwrap();
        assert!(config.is_sensitive("Prod-Provider-DEF"));
        let err = template(&config, &request()).unwrap_err();
        assert!(err.to_string().contains("--journal-kms-key"), "{err}");
        let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let req = StackRequest {
            journal_kms_key: Some(key.into()),
            ..request()
        };
        let t = template(&config, &req).unwrap();
        let r = &t["Resources"];
        let vars = &r["ProviderTableFunction"]["Properties"]["Environment"]["Variables"];
        assert_eq!(vars["DYNAMO_DR_JOURNAL_KMS_KEY"], key);
        let mut texts = Vec::new();
        strings(&r["ProviderTableFunctionRole"], &mut texts);
        assert!(texts.iter().any(|s| s == key), "{texts:?}");
        let others =
            &r["TransactionHistoryTableFunction"]["Properties"]["Environment"]["Variables"];
        assert!(others.get("DYNAMO_DR_JOURNAL_KMS_KEY").is_none());
    }

    #[test]
    fn a_logical_name_that_cannot_name_a_machine_is_refused() {
        let config = Config::parse("[tables.\"Bad-Name\"]\nname = \"Prod-Bad\"\n").unwrap();
        assert!(template(&config, &request()).is_err());
        assert!(template(&Config::default(), &request()).is_err());
    }
}
