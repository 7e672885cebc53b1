//! What IAM evaluates for each request the tool makes: the action, the resource ARN and the
//! request-context keys AWS sets for it, as the Service Authorization Reference lists them
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html>,
//! `list_awslambda.html`, `list_awskeymanagementservice.html`), and an independent IAM simulator
//! (`@cloud-copilot/iam-simulate`, installed by `scripts/setup-emulators`) that evaluates them
//! against a policy. No emulator enforces IAM; this is how a test proves the generated policies
//! grant what the tool does, and nothing it does not.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde_json::{Value, json};

/// moto's account, in every ARN it returns.
pub const ACCOUNT: &str = "123456789012";
pub const PINNED_SIMULATOR: &str = "0.1.173";

/// One authorization AWS would make for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    pub action: String,
    pub resource: String,
    /// Request-context keys: `aws:RequestTag/K`, `aws:TagKeys`, `dynamodb:LeadingKeys`, …
    pub context: BTreeMap<String, Value>,
    /// The call it came from, for messages (`DynamoDB_20120810.PutItem`, `GET /2015-03-31/…`).
    pub call: String,
}

impl Authorization {
    pub fn new(action: &str, resource: impl Into<String>, call: &str) -> Authorization {
        Authorization {
            action: action.to_string(),
            resource: resource.into(),
            context: BTreeMap::new(),
            call: call.to_string(),
        }
    }

    pub fn with(mut self, key: &str, value: Value) -> Authorization {
        self.context.insert(key.to_string(), value);
        self
    }
}

pub fn table_arn(name: &str) -> String {
    format!(
        "arn:aws:dynamodb:{}:{ACCOUNT}:table/{name}",
        crate::emulator::REGION
    )
}

pub fn function_arn(name: &str) -> String {
    if name.starts_with("arn:") {
        return name.to_string();
    }
    format!(
        "arn:aws:lambda:{}:{ACCOUNT}:function:{name}",
        crate::emulator::REGION
    )
}

pub fn mapping_arn(uuid: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{ACCOUNT}:event-source-mapping:{uuid}",
        crate::emulator::REGION
    )
}

/// A request as the proxy saw it, with what it learned from the backend to fill the context.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// The signing name of the credential scope: `dynamodb`, `lambda`, `kms`, `sts`, `states`.
    pub service: String,
    pub method: String,
    pub path: String,
    pub target: Option<String>,
    pub body: Bytes,
    pub response: Bytes,
    /// The table's partition key attribute (for `dynamodb:LeadingKeys`), by table name.
    pub hash_keys: BTreeMap<String, String>,
    /// The resource's tags before the request (`aws:ResourceTag/K`), where a policy conditions
    /// on them.
    pub resource_tags: Option<BTreeMap<String, String>>,
    /// The function of the event source mapping a request names (`lambda:FunctionArn`).
    pub mapping_function: Option<String>,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn name(&self) -> String {
        self.target
            .clone()
            .unwrap_or_else(|| format!("{} {}", self.method, self.path))
    }
}

/// The service a signed request is for, from its credential scope
/// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
pub fn service_of(authorization: &str) -> String {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or_default()
        .to_string()
}

/// What the backend must be asked before `call` is forwarded, to fill its context.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// DescribeTable: the partition key of these tables.
    HashKeys(Vec<String>),
    /// ListTagsOfResource of this table ARN.
    TableTags(String),
    /// GetEventSourceMapping of this UUID.
    Mapping(String),
    /// ListTags of this function ARN (`aws:ResourceTag/K` of its concurrency calls).
    FunctionTags(String),
    None,
}

pub fn lookup(call: &Call) -> Lookup {
    let body = call.json();
    match call.target.as_deref().and_then(dynamodb_op) {
        Some("TagResource") => Lookup::TableTags(str_of(&body, "ResourceArn")),
        Some("DeleteTable") => Lookup::TableTags(table_arn(&str_of(&body, "TableName"))),
        Some("GetItem" | "PutItem" | "DeleteItem" | "UpdateItem" | "Query") => {
            Lookup::HashKeys(vec![str_of(&body, "TableName")])
        }
        Some("BatchGetItem" | "BatchWriteItem") => Lookup::HashKeys(
            body["RequestItems"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        ),
        Some(_) => Lookup::None,
        None if call.service == "lambda" => match mapping_uuid(&call.path) {
            Some(uuid) if call.method != "POST" => Lookup::Mapping(uuid),
            _ => match concurrency_function(&call.path) {
                Some(arn) => Lookup::FunctionTags(arn),
                None => Lookup::None,
            },
        },
        None => Lookup::None,
    }
}

fn dynamodb_op(target: &str) -> Option<&str> {
    target.strip_prefix("DynamoDB_20120810.")
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The function of a `/2019-09-30/functions/F/concurrency` call, as an ARN.
fn concurrency_function(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [_, "functions", f, "concurrency"] => Some(function_arn(&crate::iam_lambda::decoded(f))),
        _ => None,
    }
}

fn mapping_uuid(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/2015-03-31/event-source-mappings/")?;
    let uuid = rest.trim_end_matches('/');
    (!uuid.is_empty()).then(|| uuid.to_string())
}

/// Every authorization `call` needs. STS GetCallerIdentity needs none
/// (<https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html>).
pub fn authorizations(call: &Call) -> Vec<Authorization> {
    match call.service.as_str() {
        "dynamodb" => dynamodb(call),
        "lambda" => crate::iam_lambda::lambda(call),
        "kms" => kms(call),
        "states" => crate::iam_lambda::states(call),
        "s3" => s3(call),
        "sts" => Vec::new(),
        other => vec![Authorization::new(
            &format!("{other}:Unknown"),
            "*",
            &call.name(),
        )],
    }
}

/// A keys file read from S3, path-style (`GET /BUCKET/KEY`): s3:GetObject on the object
/// (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html>).
/// The tool makes no other S3 call; any other is reported as unknown, which no policy allows.
fn s3(call: &Call) -> Vec<Authorization> {
    let object = call.path.trim_start_matches('/');
    match (call.method.as_str(), object.split_once('/')) {
        ("GET", Some((bucket, key))) if !key.is_empty() => vec![Authorization::new(
            "s3:GetObject",
            format!("arn:aws:s3:::{bucket}/{}", crate::iam_lambda::decoded(key)),
            &call.name(),
        )],
        _ => vec![Authorization::new("s3:Unknown", "*", &call.name())],
    }
}

/// The value of an item's attribute as `dynamodb:LeadingKeys` holds it: the key's string form.
fn key_value(v: &Value) -> Option<String> {
    let (_, inner) = v.as_object()?.iter().next()?;
    inner.as_str().map(str::to_string)
}

fn leading_keys(call: &Call, table: &str, items: &[&Value]) -> Option<Value> {
    let hash = call.hash_keys.get(table)?;
    let mut keys: Vec<String> = items.iter().filter_map(|i| key_value(&i[hash])).collect();
    keys.sort();
    keys.dedup();
    Some(json!(keys))
}

fn dynamodb(call: &Call) -> Vec<Authorization> {
    let body = call.json();
    let name = call.name();
    let op = call.target.as_deref().and_then(dynamodb_op).unwrap_or("?");
    let action = format!("dynamodb:{op}");
    let table = str_of(&body, "TableName");
    let one = |resource: String| Authorization::new(&action, resource, &name);
    match op {
        "ListTables" | "ListBackups" => vec![one("*".into())],
        "BatchWriteItem" | "BatchGetItem" => batch(call, &body, &action),
        "DescribeBackup" | "DeleteBackup" => vec![one(str_of(&body, "BackupArn"))],
        // The table, and an export of it (`table/T/export/ID`), as the Service Authorization
        // Reference lists them.
        "ExportTableToPointInTime" => vec![one(str_of(&body, "TableArn"))],
        "DescribeExport" => vec![one(str_of(&body, "ExportArn"))],
        // The Service Authorization Reference lists the backup and the table for it.
        "RestoreTableFromBackup" => {
            let target = one(table_arn(&str_of(&body, "TargetTableName")));
            let mut out = restore(one(str_of(&body, "BackupArn")), &body, &name);
            out.push(target);
            out
        }
        "RestoreTableToPointInTime" => {
            let source = body["SourceTableArn"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| table_arn(&str_of(&body, "SourceTableName")));
            restore(one(source), &body, &name)
        }
        "TagResource" | "UntagResource" | "ListTagsOfResource" => {
            vec![tagged(call, one(str_of(&body, "ResourceArn")), &body)]
        }
        "DeleteTable" => vec![tagged(call, one(table_arn(&table)), &body)],
        "Query" | "Scan" => {
            let resource = match body["IndexName"].as_str() {
                Some(index) => format!("{}/index/{index}", table_arn(&table)),
                None => table_arn(&table),
            };
            let mut a = one(resource);
            if op == "Query"
                && let Some(keys) = query_leading_key(call, &body, &table)
            {
                a = a.with("dynamodb:LeadingKeys", keys);
            }
            vec![a]
        }
        "GetItem" | "DeleteItem" | "UpdateItem" | "PutItem" => {
            let item = if op == "PutItem" {
                &body["Item"]
            } else {
                &body["Key"]
            };
            let mut a = one(table_arn(&table));
            if let Some(keys) = leading_keys(call, &table, &[item]) {
                a = a.with("dynamodb:LeadingKeys", keys);
            }
            vec![a]
        }
        _ => vec![one(table_arn(&table))],
    }
}

/// One authorization per table a batch names, with the partition keys of its items.
fn batch(call: &Call, body: &Value, action: &str) -> Vec<Authorization> {
    let Some(tables) = body["RequestItems"].as_object() else {
        return Vec::new();
    };
    tables
        .iter()
        .map(|(table, request)| {
            let items: Vec<&Value> = match request {
                // BatchWriteItem: [{PutRequest: {Item}} | {DeleteRequest: {Key}}]
                Value::Array(writes) => writes
                    .iter()
                    .map(|w| {
                        if w["PutRequest"].is_object() {
                            &w["PutRequest"]["Item"]
                        } else {
                            &w["DeleteRequest"]["Key"]
                        }
                    })
                    .collect(),
                // BatchGetItem: {Keys: [...]}
                other => other["Keys"]
                    .as_array()
                    .map(|k| k.iter().collect())
                    .unwrap_or_default(),
            };
            let a = Authorization::new(action, table_arn(table), &call.name());
            match leading_keys(call, table, &items) {
                Some(keys) => a.with("dynamodb:LeadingKeys", keys),
                None => a,
            }
        })
        .collect()
}

/// A restore needs its action on the source and read and write permissions on the target
/// table: <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/backuprestore_IAM.html>.
fn restore(source: Authorization, body: &Value, call: &str) -> Vec<Authorization> {
    let target = table_arn(&str_of(body, "TargetTableName"));
    let mut out = vec![source];
    for action in [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "GetItem",
        "Query",
        "Scan",
        "BatchWriteItem",
    ] {
        out.push(Authorization::new(
            &format!("dynamodb:{action}"),
            target.clone(),
            call,
        ));
    }
    out
}

/// `aws:RequestTag/K` and `aws:TagKeys` of a TagResource, and `aws:ResourceTag/K` of the
/// resource's tags before it: <https://docs.aws.amazon.com/IAM/latest/UserGuide/access_tags.html>.
fn tagged(call: &Call, mut a: Authorization, body: &Value) -> Authorization {
    if let Some(tags) = body["Tags"].as_array() {
        let mut keys = Vec::new();
        for t in tags {
            let key = str_of(t, "Key");
            a.context
                .insert(format!("aws:RequestTag/{key}"), json!(str_of(t, "Value")));
            keys.push(key);
        }
        a.context.insert("aws:TagKeys".into(), json!(keys));
    }
    for (k, v) in call.resource_tags.iter().flatten() {
        a.context.insert(format!("aws:ResourceTag/{k}"), json!(v));
    }
    a
}

/// The partition key value of a Query's `KeyConditionExpression` (`#pk = :v` or `pk = :v`).
fn query_leading_key(call: &Call, body: &Value, table: &str) -> Option<Value> {
    let hash = call.hash_keys.get(table)?;
    let expr = body["KeyConditionExpression"].as_str()?;
    for clause in expr.split(" AND ").chain(expr.split(" and ")) {
        let Some((left, right)) = clause.split_once('=') else {
            continue;
        };
        let left = left.trim().trim_start_matches('(');
        let name = if left.starts_with('#') {
            str_of(&body["ExpressionAttributeNames"], left)
        } else {
            left.to_string()
        };
        if &name == hash {
            let value = &body["ExpressionAttributeValues"][right.trim().trim_end_matches(')')];
            return key_value(value).map(|v| json!([v]));
        }
    }
    None
}

/// KMS's JSON API names the key in `KeyId`; the encryption context sets
/// `kms:EncryptionContext:K` and `kms:EncryptionContextKeys`
/// (<https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html>).
fn kms(call: &Call) -> Vec<Authorization> {
    let body = call.json();
    let op = call
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("TrentService."))
        .unwrap_or("?");
    // Decrypt of a symmetric key may omit KeyId: the key is the one the answer names.
    let key = body["KeyId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            serde_json::from_slice::<Value>(&call.response)
                .map(|r| str_of(&r, "KeyId"))
                .unwrap_or_default()
        });
    let mut a = Authorization::new(&format!("kms:{op}"), key, &call.name());
    if let Some(context) = body["EncryptionContext"].as_object() {
        for (k, v) in context {
            a.context
                .insert(format!("kms:EncryptionContext:{k}"), v.clone());
        }
        let keys: Vec<&String> = context.keys().collect();
        a.context
            .insert("kms:EncryptionContextKeys".into(), json!(keys));
    }
    vec![a]
}

/// Where `scripts/setup-emulators` installed the simulator.
fn simulator_dir() -> PathBuf {
    std::env::var_os("DYNAMO_DR_IAM_SIMULATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cache_dir().join(format!("iam-simulate-{PINNED_SIMULATOR}")))
}

/// The simulator's verdict on one authorization.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub authorization: Authorization,
    /// `Allowed`, `ImplicitlyDenied` or `ExplicitlyDenied`.
    pub result: String,
    /// The statements (Sid) that allowed it.
    pub allowed_by: Vec<String>,
    /// Validation errors (an unknown action, a resource of the wrong type, …).
    pub errors: Option<Value>,
    /// Context keys the action does not have in AWS, which the simulator dropped.
    pub ignored: Vec<String>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.result == "Allowed"
    }
}

/// Evaluates every authorization against the identity `policies` of one role.
pub fn evaluate(policies: &[Value], requests: &[Authorization]) -> Vec<Verdict> {
    let dir = simulator_dir();
    assert!(
        dir.join("node_modules/@cloud-copilot/iam-simulate")
            .exists(),
        "the IAM simulator is not installed in {}: run scripts/setup-emulators",
        dir.display()
    );
    let input = json!({
        "account": ACCOUNT,
        "policies": policies,
        "requests": requests.iter().map(|r| json!({
            "action": r.action, "resource": r.resource, "context": r.context,
        })).collect::<Vec<_>>(),
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("iam/simulate.mjs");
    let script = std::fs::read_to_string(&script).expect("simulate.mjs");
    // Evaluated from the simulator's directory: an ES module resolves its imports from there
    // (NODE_PATH does not apply to `import`).
    let mut child = std::process::Command::new("node")
        .args(["--input-type=module", "--eval", &script])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.to_string().as_bytes())
            .expect("write to the simulator");
    }
    let out = child.wait_with_output().expect("simulator output");
    assert!(out.status.success(), "the IAM simulator failed");
    let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout).expect("simulator JSON");
    requests
        .iter()
        .zip(verdicts)
        .map(|(r, v)| Verdict {
            authorization: r.clone(),
            result: str_of(&v, "result"),
            allowed_by: strings(&v["allowedBy"]),
            errors: v.get("errors").filter(|e| !e.is_null()).cloned(),
            ignored: strings(&v["ignored"]),
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
