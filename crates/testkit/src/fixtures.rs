//! Tables and items for tests: every attribute type, every key type, and a way to compare two
//! tables item for item.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::{Blob, DateTime};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, LocalSecondaryIndex, PointInTimeRecoverySpecification, Projection, ProjectionType,
    PutRequest, ScalarAttributeType, TableStatus, WriteRequest,
};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    S,
    N,
    B,
}

impl Scalar {
    fn attr_type(self) -> ScalarAttributeType {
        match self {
            Scalar::S => ScalarAttributeType::S,
            Scalar::N => ScalarAttributeType::N,
            Scalar::B => ScalarAttributeType::B,
        }
    }

    /// A distinct key value for `i`.
    pub fn value(self, i: u64) -> AttributeValue {
        match self {
            Scalar::S => AttributeValue::S(format!("k#{i:08}")),
            Scalar::N => AttributeValue::N(i.to_string()),
            Scalar::B => AttributeValue::B(Blob::new(i.to_be_bytes().to_vec())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub hash: (String, Scalar),
    pub range: Option<(String, Scalar)>,
    /// A sparse GSI on `gsi_pk`.
    pub gsi: bool,
    /// An LSI on `lsi_sk` (needs a range key).
    pub lsi: bool,
}

impl TableSpec {
    /// A composite `pk`/`sk` table of strings with a GSI, like the seed's tables.
    pub fn seed_like(name: &str) -> TableSpec {
        TableSpec {
            name: name.to_string(),
            hash: ("pk".into(), Scalar::S),
            range: Some(("sk".into(), Scalar::S)),
            gsi: true,
            lsi: false,
        }
    }

    pub fn hash_only(name: &str, hash: Scalar) -> TableSpec {
        TableSpec {
            name: name.to_string(),
            hash: ("id".into(), hash),
            range: None,
            gsi: false,
            lsi: false,
        }
    }

    pub fn key_names(&self) -> Vec<&str> {
        std::iter::once(self.hash.0.as_str())
            .chain(self.range.as_ref().map(|r| r.0.as_str()))
            .collect()
    }

    /// The key of item `i`: ten items share each hash value when there is a range key.
    pub fn key(&self, i: u64) -> Item {
        let mut key = HashMap::new();
        match &self.range {
            Some((range, t)) => {
                key.insert(self.hash.0.clone(), self.hash.1.value(i / 10));
                key.insert(range.clone(), t.value(i % 10));
            }
            None => {
                key.insert(self.hash.0.clone(), self.hash.1.value(i));
            }
        }
        key
    }
}

pub async fn create_table(client: &Client, spec: &TableSpec) {
    let mut defs = vec![(spec.hash.0.clone(), spec.hash.1)];
    let mut key = vec![key_element(&spec.hash.0, KeyType::Hash)];
    if let Some((r, t)) = &spec.range {
        defs.push((r.clone(), *t));
        key.push(key_element(r, KeyType::Range));
    }
    let mut req = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest);
    if spec.gsi {
        defs.push(("gsi_pk".into(), Scalar::S));
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("by-gsi-pk")
                .key_schema(key_element("gsi_pk", KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        );
    }
    if spec.lsi {
        defs.push(("lsi_sk".into(), Scalar::S));
        req = req.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name("by-lsi-sk")
                .key_schema(key_element(&spec.hash.0, KeyType::Hash))
                .key_schema(key_element("lsi_sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("lsi"),
        );
    }
    for (name, t) in defs {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(t.attr_type())
                .build()
                .expect("attribute definition"),
        );
    }
    req.set_key_schema(Some(key))
        .send()
        .await
        .expect("CreateTable");
    wait_status(client, &spec.name, TableStatus::Active).await;
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key element")
}

/// Waits (by polling, up to a minute) until the table has `status`.
pub async fn wait_status(client: &Client, table: &str, status: TableStatus) {
    wait_for(
        &format!("{table} to be {status:?}"),
        Duration::from_secs(60),
        || async {
            client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .ok()
                .and_then(|o| o.table().and_then(|t| t.table_status().cloned()))
                == Some(status.clone())
        },
    )
    .await;
}

/// Polls `cond` every 20 ms until it holds; panics after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn enable_pitr(client: &Client, table: &str) {
    client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .expect("pitr"),
        )
        .send()
        .await
        .expect("UpdateContinuousBackups");
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Item `i` with every attribute type, nested maps and lists, and sparse index attributes.
pub fn mixed_item(spec: &TableSpec, i: u64) -> Item {
    let mut item = spec.key(i);
    let nested = AttributeValue::M(HashMap::from([
        ("inner".to_string(), s(format!("inner-{i}"))),
        (
            "deep".to_string(),
            AttributeValue::M(HashMap::from([(
                "list".to_string(),
                AttributeValue::L(vec![
                    n(i),
                    s("x"),
                    AttributeValue::Bool(true),
                    AttributeValue::Null(true),
                ]),
            )])),
        ),
        ("empty_map".to_string(), AttributeValue::M(HashMap::new())),
    ]));
    item.extend([
        ("str".to_string(), s(format!("value-{i} üñí©ødé ✓"))),
        ("num".to_string(), n(format!("{i}.25"))),
        ("neg".to_string(), n(format!("-{i}"))),
        (
            "big".to_string(),
            n("12345678901234567890123456789012345678"),
        ),
        (
            "tiny".to_string(),
            n("0.000000000000000000000000000000000001"),
        ),
        (
            "bin".to_string(),
            AttributeValue::B(Blob::new(vec![(i % 256) as u8, 0, 255, 7])),
        ),
        (
            "flag".to_string(),
            AttributeValue::Bool(i.is_multiple_of(2)),
        ),
        ("nothing".to_string(), AttributeValue::Null(true)),
        ("map".to_string(), nested),
        (
            "list".to_string(),
            AttributeValue::L(vec![
                s("a"),
                n(i),
                AttributeValue::M(HashMap::new()),
                AttributeValue::L(vec![]),
            ]),
        ),
        (
            "strs".to_string(),
            AttributeValue::Ss(vec![format!("b{i}"), format!("a{i}"), "c".into()]),
        ),
        (
            "nums".to_string(),
            AttributeValue::Ns(vec!["-1.5".into(), "0.25".into(), (i + 10).to_string()]),
        ),
        (
            "bins".to_string(),
            AttributeValue::Bs(vec![
                Blob::new(vec![1, 2, (i % 256) as u8]),
                Blob::new(vec![3]),
            ]),
        ),
    ]);
    if !i.is_multiple_of(3) {
        item.insert("gsi_pk".into(), s(format!("g{}", i % 7)));
    }
    if spec.lsi {
        item.insert("lsi_sk".into(), s(format!("l{i}")));
    }
    item
}

/// Item `i` with a string payload making it about `bytes` long.
pub fn sized_item(spec: &TableSpec, i: u64, bytes: usize) -> Item {
    let mut item = spec.key(i);
    let filler: String = (0..bytes.saturating_sub(40))
        .map(|j| char::from(b'a' + ((i as usize + j) % 26) as u8))
        .collect();
    item.insert("payload".into(), s(filler));
    item.insert("n".into(), n(i));
    item
}

/// Writes items with BatchWriteItem, 16 requests in flight, retrying UnprocessedItems.
///
/// A provisioned table keyed by a string `id`: `write_units` write units/s, three times that in
/// read units (a partition's ratio).
pub async fn provisioned_table(client: &Client, name: &str, write_units: i64) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, KeyType, ProvisionedThroughput, ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .provisioned_throughput(
            ProvisionedThroughput::builder()
                .read_capacity_units(write_units * 3)
                .write_capacity_units(write_units)
                .build()
                .expect("throughput"),
        )
        .send()
        .await
        .expect("CreateTable");
}

/// Items are dealt into lanes by partition key and each lane writes its batches in order, so no
/// two requests in flight share a partition key. moto creates a partition's item map without a
/// lock: two concurrent first writes to one partition can each create it, and the loser's items
/// vanish (a CI run once lost 5 of 1,500).
pub async fn put_all(client: &Client, table: &str, items: impl IntoIterator<Item = Item>) {
    const LANES: usize = 16;
    let hash_key = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable")
        .table
        .and_then(|t| {
            t.key_schema()
                .iter()
                .find(|k| k.key_type() == &KeyType::Hash)
                .map(|k| k.attribute_name().to_string())
        })
        .expect("the table's partition key");
    let mut lanes: Vec<Vec<Vec<WriteRequest>>> = vec![Vec::new(); LANES];
    for item in items {
        let lane = &mut lanes[partition_lane(item.get(&hash_key), LANES)];
        if lane.last().is_none_or(|b| b.len() == 25) {
            lane.push(Vec::with_capacity(25));
        }
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .expect("put request");
        if let Some(last) = lane.last_mut() {
            last.push(WriteRequest::builder().put_request(put).build());
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for batches in lanes.into_iter().filter(|l| !l.is_empty()) {
        let (client, table) = (client.clone(), table.to_string());
        tasks.spawn(async move {
            for mut batch in batches {
                while !batch.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, batch.clone())
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    batch = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("writer task");
    }
}

fn partition_lane(value: Option<&AttributeValue>, lanes: usize) -> usize {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    format!("{value:?}").hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Sets inside an item are unordered; sort them so two scans compare equal.
pub fn normalize(v: &mut AttributeValue) {
    match v {
        AttributeValue::Ss(x) | AttributeValue::Ns(x) => x.sort(),
        AttributeValue::Bs(x) => x.sort_by(|a, b| a.as_ref().cmp(b.as_ref())),
        AttributeValue::L(x) => x.iter_mut().for_each(normalize),
        AttributeValue::M(x) => x.values_mut().for_each(normalize),
        _ => {}
    }
}

/// A stable text form of an item's key, for maps and messages.
pub fn key_string(key_names: &[&str], item: &Item) -> String {
    // The form dynamo-dr and the AWS CLI show keys in: DynamoDB JSON, attributes in key order.
    let attrs: Vec<String> = key_names
        .iter()
        .map(|k| {
            let value = match item.get(*k) {
                Some(AttributeValue::S(s)) => serde_json::json!({ "S": s }),
                Some(AttributeValue::N(n)) => serde_json::json!({ "N": n }),
                Some(AttributeValue::B(b)) => {
                    serde_json::json!({ "B": aws_smithy_types::base64::encode(b.as_ref()) })
                }
                Some(_) => serde_json::json!("not a key type"),
                None => serde_json::Value::Null,
            };
            format!("{}:{value}", serde_json::Value::String(k.to_string()))
        })
        .collect();
    format!("{{{}}}", attrs.join(","))
}

/// Every item of a table, normalised, by key. Fine for test-sized tables only.
pub async fn scan_all(client: &Client, table: &str) -> BTreeMap<String, Item> {
    let desc = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable");
    let key_names: Vec<String> = desc
        .table()
        .expect("table")
        .key_schema()
        .iter()
        .map(|k| k.attribute_name().to_string())
        .collect();
    let key_refs: Vec<&str> = key_names.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan");
        for mut item in page.items.unwrap_or_default() {
            item.values_mut().for_each(normalize);
            out.insert(key_string(&key_refs, &item), item);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return out,
        }
    }
}

/// `None` when equal; else counts of missing, extra and different keys with a few examples.
pub fn diff_summary(
    expected: &BTreeMap<String, Item>,
    actual: &BTreeMap<String, Item>,
) -> Option<String> {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let changed: Vec<&String> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() && extra.is_empty() && changed.is_empty() {
        return None;
    }
    let sample = |v: &[&String]| {
        v.iter()
            .take(3)
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    Some(format!(
        "{} missing [{}], {} extra [{}], {} changed [{}] (expected {} items, found {})",
        missing.len(),
        sample(&missing),
        extra.len(),
        sample(&extra),
        changed.len(),
        sample(&changed),
        expected.len(),
        actual.len()
    ))
}

/// Damages a table loaded with items `0..total`: deletes `n`, changes `n`, adds `n` new ones.
pub async fn corrupt(client: &Client, spec: &TableSpec, total: u64, n: u64) {
    for i in 0..n {
        client
            .delete_item()
            .table_name(&spec.name)
            .set_key(Some(spec.key(i * 3 % total)))
            .send()
            .await
            .expect("DeleteItem");
    }
    let changed = (0..n).map(|i| {
        let mut item = mixed_item(spec, (i * 3 + 1) % total);
        item.insert("str".into(), s("CORRUPTED"));
        item.insert("corrupted_by".into(), s("bad-deploy"));
        item
    });
    put_all(client, &spec.name, changed).await;
    put_all(
        client,
        &spec.name,
        (0..n).map(|i| mixed_item(spec, 10_000_000 + i)),
    )
    .await;
}

/// CreateTable of a hash-only `id` table without waiting; returns the status it reports.
pub async fn start_create_table(client: &Client, name: &str) -> Option<TableStatus> {
    let out = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute definition"),
        )
        .key_schema(key_element("id", KeyType::Hash))
        .send()
        .await
        .expect("CreateTable");
    out.table_description()
        .and_then(|t| t.table_status())
        .cloned()
}

/// An on-demand backup; returns its ARN.
pub async fn create_backup(client: &Client, table: &str, name: &str) -> String {
    client
        .create_backup()
        .table_name(table)
        .backup_name(name)
        .send()
        .await
        .expect("CreateBackup")
        .backup_details
        .expect("backup details")
        .backup_arn
}

/// The table's PITR window: (EarliestRestorableDateTime, LatestRestorableDateTime).
pub async fn pitr_window(client: &Client, table: &str) -> (DateTime, DateTime) {
    let out = client
        .describe_continuous_backups()
        .table_name(table)
        .send()
        .await
        .expect("DescribeContinuousBackups");
    let pitr = out
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .expect("PITR description");
    (
        *pitr.earliest_restorable_date_time().expect("earliest"),
        *pitr.latest_restorable_date_time().expect("latest"),
    )
}

/// The moto account every emulated ARN carries.
pub const ACCOUNT: &str = "123456789012";

/// An IAM role for Lambda functions (moto checks that it exists).
pub fn create_role(moto: &crate::Emulator, name: &str) -> String {
    moto.query(
        "iam",
        &format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D"
        ),
    );
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// An SQS queue; returns its ARN.
pub fn create_queue(moto: &crate::Emulator, name: &str) -> String {
    moto.query("sqs", &format!("Action=CreateQueue&QueueName={name}"));
    format!("arn:aws:sqs:{}:{ACCOUNT}:{name}", crate::emulator::REGION)
}

/// A Lambda function (empty package) with the given reserved concurrency and tags.
pub async fn create_function(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    role: &str,
    reserved: Option<i32>,
    tags: &[(&str, &str)],
) {
    // The smallest valid zip archive: an end-of-central-directory record.
    let mut empty_zip = b"PK\x05\x06".to_vec();
    empty_zip.extend([0u8; 18]);
    let mut req = lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role(role)
        .handler("app.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(empty_zip))
                .build(),
        );
    for (k, v) in tags {
        req = req.tags(*k, *v);
    }
    req.send().await.expect("CreateFunction");
    if let Some(r) = reserved {
        lambda
            .put_function_concurrency()
            .function_name(name)
            .reserved_concurrent_executions(r)
            .send()
            .await
            .expect("PutFunctionConcurrency");
    }
}

/// A function's reserved concurrency (`None`: unreserved).
pub async fn reserved_concurrency(lambda: &aws_sdk_lambda::Client, name: &str) -> Option<i32> {
    lambda
        .get_function_concurrency()
        .function_name(name)
        .send()
        .await
        .expect("GetFunctionConcurrency")
        .reserved_concurrent_executions
}

/// Runs a `dynamo-dr` command under `/usr/bin/time`; returns its JSON output and peak RSS in MB.
pub fn run_measured(
    binary: &std::path::Path,
    env: &[(String, String)],
    args: &[&str],
) -> (serde_json::Value, f64) {
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(binary)
        .envs(env.iter().cloned())
        .args(args)
        .output()
        .expect("run dynamo-dr under /usr/bin/time");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dynamo-dr {args:?} failed: {stderr}");
    let json = serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    let rss_kb: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss from /usr/bin/time");
    (json, rss_kb / 1024.0)
}

/// The release `dynamo-dr` beside a bench or example binary (target/release/deps/x -> target/release).
pub fn sibling_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    dir.join("dynamo-dr")
}

/// An instant as RFC 3339 to the second, as the CLI's `--from`/`--to` and payloads take it.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    jiff::Timestamp::from_second(secs.as_secs() as i64)
        .expect("an instant")
        .to_string()
}
