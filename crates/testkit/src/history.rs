//! DynamoDB's history, which no emulator keeps: every write through the proxy recorded with its
//! time and the item's old and new images, on a clock a test can set; exports to S3 made from it;
//! and point-in-time restores that restore the table **as it was** at the instant asked for.
//!
//! - Exports follow the Developer Guide's "DynamoDB table export output format"
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html>):
//!   under `PREFIX/AWSDynamoDB/ExportId/` an empty `_started`, `manifest-summary.json`,
//!   `manifest-files.json` (one JSON line per data file: `itemCount`, `md5Checksum` (base64),
//!   `etag`, `dataFileS3Key`) and their `.checksum` files (hex MD5); gzipped JSON-lines data files,
//!   in `PREFIX/AWSDynamoDB/data/` shared by incremental exports, in the export's own `data/` for
//!   a full one. An incremental line is `{"Metadata":{"WriteTimestampMicros":{"N":..}},"Keys":..,
//!   "OldImage":..,"NewImage":..}` with an image left out where the item did not exist.
//! - `ExportFromTime` is inclusive and `ExportToTime` exclusive, a window of 15 minutes to 24
//!   hours, PITR on (API_IncrementalExportSpecification, API_ExportTableToPointInTime).
//! - `DescribeExport` answers IN_PROGRESS once, then COMPLETED (or FAILED, when the bucket is
//!   missing), as a real export takes minutes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use md5::{Digest, Md5};
use serde_json::{Value, json};

type Reply = Response<Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Http = Client<HttpConnector, Full<Bytes>>;

/// Data files per export: several, as DynamoDB writes at least one per partition.
const DATA_FILES: usize = 3;

/// One write's effect on one item.
#[derive(Debug, Clone)]
pub struct Change {
    pub table: String,
    /// Seconds since the epoch, on the history's clock.
    pub at: f64,
    pub key: Value,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

struct Export {
    description: Value,
    /// DescribeExport answers left before it says COMPLETED.
    pending: u32,
    token: String,
    request: Value,
}

#[derive(Default)]
struct State {
    clock: Option<f64>,
    changes: Vec<Change>,
    exports: BTreeMap<String, Export>,
    pitr_since: HashMap<String, f64>,
    keys: HashMap<String, (Vec<String>, String)>,
    seq: u64,
    /// The next export's first non-empty data file is damaged after its MD5 is taken.
    corrupt_next: bool,
}

/// The history a [`crate::FaultProxy`] keeps when started with one.
#[derive(Default)]
pub struct History {
    state: Mutex<State>,
    /// Writes one at a time, so an old image, the write and the new image are one step.
    gate: tokio::sync::Mutex<()>,
}

impl History {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The clock writes are stamped with from now on; `None`: the system's.
    pub fn set_clock(&self, at: Option<SystemTime>) {
        self.lock().clock = at.map(secs);
    }

    pub fn now(&self) -> f64 {
        self.lock().clock.unwrap_or_else(|| secs(SystemTime::now()))
    }

    /// The next export's first non-empty data file will not match its MD5 in the manifest, as a
    /// file damaged in S3 would not.
    pub fn corrupt_next_export(&self) {
        self.lock().corrupt_next = true;
    }

    /// Every change recorded so far, in order.
    pub fn changes(&self) -> Vec<Change> {
        self.lock().changes.clone()
    }
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// The history's answer to `operation`, or `None` to go on as usual.
pub(crate) async fn handle(
    h: &History,
    http: &Http,
    backend: &str,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    operation: Option<&str>,
) -> Result<Option<Reply>, BoxError> {
    let backend = Backend { http, url: backend };
    let Some(op) = operation else {
        return Ok(None);
    };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match op {
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems" => {
            write(h, &backend, parts, body, op, &request)
                .await
                .map(Some)
        }
        "ExportTableToPointInTime" => start_export(h, &backend, &request).await.map(Some),
        "DescribeExport" => Ok(Some(describe_export(h, &request))),
        "ListExports" => Ok(Some(list_exports(h, &request))),
        "UpdateContinuousBackups" => {
            let reply = crate::serve::forward(http, backend.url, parts, body.clone()).await?;
            let on =
                request.pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled");
            if reply.status() == StatusCode::OK && on == Some(&Value::Bool(true)) {
                let table = request["TableName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let now = h.now();
                h.lock().pitr_since.entry(table).or_insert(now);
            }
            Ok(Some(reply))
        }
        _ => Ok(None),
    }
}

/// The history's changes to an answer the proxy forwarded as usual: a PITR window that opens
/// when PITR was turned on, and a restored table put back to its instant.
pub(crate) async fn after(
    h: &History,
    http: &Http,
    backend: &str,
    operation: Option<&str>,
    body: &Bytes,
    reply: Reply,
) -> Result<Reply, BoxError> {
    if reply.status() != StatusCode::OK {
        return Ok(reply);
    }
    let backend = Backend { http, url: backend };
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match operation {
        Some("DescribeContinuousBackups") => pitr_window(h, reply, &request).await,
        Some("RestoreTableToPointInTime") => {
            restore(h, &backend, &request).await?;
            Ok(reply)
        }
        _ => Ok(reply),
    }
}

struct Backend<'a> {
    http: &'a Http,
    url: &'a str,
}

impl Backend<'_> {
    /// A DynamoDB call of the proxy's own, signed just enough for moto's routing.
    async fn dynamo(&self, target: &str, body: &Value) -> Result<(StatusCode, Value), BoxError> {
        let req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.url))
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{target}"))
            .header("authorization", auth("dynamodb"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let reply = self.http.request(req).await?;
        let status = reply.status();
        let bytes = reply.into_body().collect().await?.to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<bool, BoxError> {
        let req = Request::builder()
            .method("PUT")
            .uri(format!("{}/{bucket}/{key}", self.url))
            .header("authorization", auth("s3"))
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .body(Full::new(Bytes::from(body)))?;
        let reply = self.http.request(req).await?;
        let ok = reply.status().is_success();
        reply.into_body().collect().await?;
        Ok(ok)
    }

    async fn get(&self, table: &str, key: &Value) -> Result<Option<Value>, BoxError> {
        let (_, v) = self
            .dynamo(
                "GetItem",
                &json!({"TableName": table, "Key": key, "ConsistentRead": true}),
            )
            .await?;
        Ok(v.get("Item").cloned())
    }

    /// The table's key attribute names and its ARN, from DescribeTable.
    async fn schema(&self, h: &History, table: &str) -> Result<(Vec<String>, String), BoxError> {
        if let Some(k) = h.lock().keys.get(table) {
            return Ok(k.clone());
        }
        let (_, v) = self
            .dynamo("DescribeTable", &json!({"TableName": table}))
            .await?;
        let names: Vec<String> = v
            .pointer("/Table/KeySchema")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|k| k["AttributeName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let arn = v
            .pointer("/Table/TableArn")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let schema = (names, arn);
        h.lock().keys.insert(table.to_string(), schema.clone());
        Ok(schema)
    }
}

fn auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

/// The items a write request touches, as (table, key or item).
fn touched(op: &str, request: &Value) -> Vec<(String, Value)> {
    let table = |v: &Value| v["TableName"].as_str().unwrap_or_default().to_string();
    match op {
        "PutItem" => vec![(table(request), request["Item"].clone())],
        "UpdateItem" | "DeleteItem" => vec![(table(request), request["Key"].clone())],
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(t, writes)| {
                writes.as_array().into_iter().flatten().filter_map(|w| {
                    let item = w
                        .pointer("/PutRequest/Item")
                        .or_else(|| w.pointer("/DeleteRequest/Key"))?;
                    Some((t.clone(), item.clone()))
                })
            })
            .collect(),
        _ => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let (name, v) = t.as_object()?.iter().next()?;
                let v = match name.as_str() {
                    "Put" => v.get("Item")?,
                    "Update" | "Delete" => v.get("Key")?,
                    _ => return None,
                };
                Some((table(&t[name]), v.clone()))
            })
            .collect(),
    }
}

async fn write(
    h: &History,
    backend: &Backend<'_>,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    op: &str,
    request: &Value,
) -> Result<Reply, BoxError> {
    let _one = h.gate.lock().await;
    let mut before = Vec::new();
    for (table, item) in touched(op, request) {
        let (names, _) = backend.schema(h, &table).await?;
        let key: serde_json::Map<String, Value> = names
            .iter()
            .filter_map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
            .collect();
        let key = Value::Object(key);
        let old = backend.get(&table, &key).await?;
        before.push((table, key, old));
    }
    let reply = crate::serve::forward(backend.http, backend.url, parts, body.clone()).await?;
    if reply.status() != StatusCode::OK {
        return Ok(reply);
    }
    let at = h.now();
    for (table, key, old) in before {
        let new = backend.get(&table, &key).await?;
        if old != new {
            h.lock().changes.push(Change {
                table,
                at,
                key,
                old,
                new,
            });
        }
    }
    Ok(reply)
}

/// Each key changed in `[from, to)` of `table`: its image at `from` and just before `to`, and
/// its last write's time.
fn window(
    h: &History,
    table: &str,
    from: f64,
    to: f64,
) -> Vec<(Value, Option<Value>, Option<Value>, f64)> {
    let state = h.lock();
    let mut keys: BTreeMap<String, (Value, Option<Value>, Option<Value>, f64)> = BTreeMap::new();
    for c in state
        .changes
        .iter()
        .filter(|c| c.table == table && c.at >= from && c.at < to)
    {
        let entry = keys
            .entry(c.key.to_string())
            .or_insert_with(|| (c.key.clone(), c.old.clone(), None, c.at));
        entry.2 = c.new.clone();
        entry.3 = c.at;
    }
    keys.into_values().collect()
}

/// The items whose history after `at` must be undone to see `table` as it was at `at`: each
/// key's image before its first change after `at`.
fn undo_after(h: &History, table: &str, at: f64) -> Vec<(Value, Option<Value>)> {
    let state = h.lock();
    let mut seen = BTreeMap::new();
    for c in state
        .changes
        .iter()
        .filter(|c| c.table == table && c.at > at)
    {
        seen.entry(c.key.to_string())
            .or_insert_with(|| (c.key.clone(), c.old.clone()));
    }
    seen.into_values().collect()
}

fn error(kind: &str, message: &str) -> Reply {
    let body =
        json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": message});
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    *reply.status_mut() = StatusCode::BAD_REQUEST;
    reply
}

fn ok(body: Value) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body.to_string())));
    reply.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    reply
}

fn table_of_arn(arn: &str) -> &str {
    arn.rsplit_once("table/").map_or(arn, |(_, t)| t)
}

/// Refuses what DynamoDB refuses: PITR off, an incremental window outside 15 minutes to 24 hours
/// or reaching the future, a client token reused for another request.
async fn refused(
    h: &History,
    backend: &Backend<'_>,
    request: &Value,
    table: &str,
) -> Result<Option<Reply>, BoxError> {
    let (_, pitr) = backend
        .dynamo("DescribeContinuousBackups", &json!({"TableName": table}))
        .await?;
    let status = pitr
        .pointer("/ContinuousBackupsDescription/PointInTimeRecoveryDescription/PointInTimeRecoveryStatus")
        .and_then(Value::as_str);
    if status != Some("ENABLED") {
        return Ok(Some(error(
            "PointInTimeRecoveryUnavailableException",
            "Point in time recovery is not enabled for table",
        )));
    }
    if request["ExportType"] == "INCREMENTAL_EXPORT" {
        let spec = &request["IncrementalExportSpecification"];
        let (Some(from), Some(to)) = (
            spec["ExportFromTime"].as_f64(),
            spec["ExportToTime"].as_f64(),
        ) else {
            return Ok(Some(error(
                "ValidationException",
                "ExportFromTime and ExportToTime are required",
            )));
        };
        let span = to - from;
        if !(900.0..=86_400.0).contains(&span) || to > secs(SystemTime::now()) {
            return Ok(Some(error(
                "ValidationException",
                "Incremental export period must be between 15 minutes and 24 hours, in the past",
            )));
        }
    }
    let token = request["ClientToken"].as_str().unwrap_or_default();
    let state = h.lock();
    if let Some(e) = state
        .exports
        .values()
        .find(|e| !token.is_empty() && e.token == token)
        && e.request != *request
    {
        return Ok(Some(error(
            "IdempotentParameterMismatchException",
            "ClientToken was used with different parameters",
        )));
    }
    Ok(None)
}

async fn start_export(
    h: &History,
    backend: &Backend<'_>,
    request: &Value,
) -> Result<Reply, BoxError> {
    let arn = request["TableArn"].as_str().unwrap_or_default();
    let table = table_of_arn(arn).to_string();
    if let Some(refusal) = refused(h, backend, request, &table).await? {
        return Ok(refusal);
    }
    let token = request["ClientToken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(e) = h
        .lock()
        .exports
        .values()
        .find(|e| !token.is_empty() && e.token == token)
    {
        return Ok(ok(json!({"ExportDescription": e.description})));
    }
    let now = secs(SystemTime::now());
    let id = {
        let mut s = h.lock();
        s.seq += 1;
        format!("{:014}-{:08x}", (now * 1000.0) as u64, s.seq)
    };
    let incremental = request["ExportType"] == "INCREMENTAL_EXPORT";
    let (lines, export_time) = if incremental {
        let spec = &request["IncrementalExportSpecification"];
        let (from, to) = (
            spec["ExportFromTime"].as_f64().unwrap_or(0.0),
            spec["ExportToTime"].as_f64().unwrap_or(0.0),
        );
        (incremental_lines(h, &table, from, to), to)
    } else {
        let at = request["ExportTime"].as_f64().unwrap_or(now);
        (full_lines(h, backend, &table, at).await?, at)
    };
    let bucket = request["S3Bucket"].as_str().unwrap_or_default();
    let prefix = request["S3Prefix"]
        .as_str()
        .map(|p| format!("{}/", p.trim_end_matches('/')))
        .unwrap_or_default();
    let corrupt = std::mem::take(&mut h.lock().corrupt_next);
    let target = (bucket, prefix.as_str(), id.as_str());
    let written = write_files(
        backend,
        target,
        incremental,
        &lines,
        (request, arn),
        corrupt,
    )
    .await?;
    let mut description = json!({
        "ExportArn": format!("{arn}/export/{id}"),
        "ExportStatus": "IN_PROGRESS",
        "StartTime": now,
        "TableArn": arn,
        "TableId": "00000000-0000-0000-0000-000000000000",
        "ExportTime": export_time,
        "ClientToken": token,
        "S3Bucket": bucket,
        "S3Prefix": request["S3Prefix"],
        "S3SseAlgorithm": "AES256",
        "ExportFormat": request["ExportFormat"].as_str().unwrap_or("DYNAMODB_JSON"),
        "ExportType": request["ExportType"].as_str().unwrap_or("FULL_EXPORT"),
    });
    if incremental {
        description["IncrementalExportSpecification"] =
            request["IncrementalExportSpecification"].clone();
    }
    match written {
        Some((bytes, items)) => {
            description["ExportManifest"] =
                json!(format!("{prefix}AWSDynamoDB/{id}/manifest-summary.json"));
            description["BilledSizeBytes"] = json!(bytes);
            description["ItemCount"] = json!(items);
        }
        None => {
            description["FailureCode"] = json!("S3NoSuchBucket");
            description["FailureMessage"] = json!("The specified bucket does not exist");
        }
    }
    let answer = json!({"ExportDescription": description.clone()});
    h.lock().exports.insert(
        format!("{arn}/export/{id}"),
        Export {
            description,
            pending: 1,
            token,
            request: request.clone(),
        },
    );
    Ok(ok(answer))
}

fn incremental_lines(h: &History, table: &str, from: f64, to: f64) -> Vec<(Value, Value)> {
    window(h, table, from, to)
        .into_iter()
        .map(|(key, old, new, at)| {
            let mut line = json!({
                "Metadata": {"WriteTimestampMicros": {"N": format!("{}", (at * 1e6) as u64)}},
                "Keys": key,
            });
            if let Some(o) = old {
                line["OldImage"] = o;
            }
            if let Some(n) = new {
                line["NewImage"] = n;
            }
            (line["Keys"].clone(), line)
        })
        .collect()
}

/// Every item of `table` as it was at `at`: a Scan of now, with the history after `at` undone.
async fn full_lines(
    h: &History,
    backend: &Backend<'_>,
    table: &str,
    at: f64,
) -> Result<Vec<(Value, Value)>, BoxError> {
    let (names, _) = backend.schema(h, table).await?;
    let mut items: BTreeMap<String, Value> = BTreeMap::new();
    let mut start = Value::Null;
    loop {
        let mut req = json!({"TableName": table, "ConsistentRead": true});
        if !start.is_null() {
            req["ExclusiveStartKey"] = start;
        }
        let (_, page) = backend.dynamo("Scan", &req).await?;
        for item in page["Items"].as_array().into_iter().flatten() {
            let key: serde_json::Map<String, Value> = names
                .iter()
                .filter_map(|n| item.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            items.insert(Value::Object(key).to_string(), item.clone());
        }
        start = page.get("LastEvaluatedKey").cloned().unwrap_or(Value::Null);
        if start.is_null() {
            break;
        }
    }
    for (key, image) in undo_after(h, table, at) {
        match image {
            Some(i) => items.insert(key.to_string(), i),
            None => items.remove(&key.to_string()),
        };
    }
    Ok(items
        .into_iter()
        .map(|(k, item)| {
            (
                serde_json::from_str(&k).unwrap_or(Value::Null),
                json!({"Item": item}),
            )
        })
        .collect())
}

/// Writes the export's files; `None` when the bucket refused them (the export fails). Returns
/// the data's bytes and items.
async fn write_files(
    backend: &Backend<'_>,
    (bucket, prefix, id): (&str, &str, &str),
    incremental: bool,
    lines: &[(Value, Value)],
    (request, table_arn): (&Value, &str),
    mut corrupt: bool,
) -> Result<Option<(u64, u64)>, BoxError> {
    let home = format!("{prefix}AWSDynamoDB/{id}");
    if !backend
        .put_object(bucket, &format!("{home}/_started"), Vec::new())
        .await?
    {
        return Ok(None);
    }
    let data = if incremental {
        format!("{prefix}AWSDynamoDB/data")
    } else {
        format!("{home}/data")
    };
    let mut files: Vec<Vec<&Value>> = vec![Vec::new(); DATA_FILES];
    for (key, line) in lines {
        let digest = Md5::digest(key.to_string().as_bytes());
        files[digest[0] as usize % DATA_FILES].push(line);
    }
    let (mut manifest, mut bytes) = (String::new(), 0u64);
    for (i, file) in files.iter().enumerate() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for line in file {
            writeln!(gz, "{line}")?;
        }
        let gz = gz.finish()?;
        bytes += gz.len() as u64;
        let digest = Md5::digest(&gz);
        let key = format!("{data}/{id}-{i:03}.json.gz");
        let entry = json!({
            "itemCount": file.len(),
            "md5Checksum": aws_smithy_types::base64::encode(digest),
            "etag": hex(&digest),
            "dataFileS3Key": key,
        });
        manifest.push_str(&format!("{entry}\n"));
        let mut gz = gz;
        if corrupt && !file.is_empty() {
            let last = gz.len() - 1;
            gz[last] ^= 0xff;
            corrupt = false;
        }
        backend.put_object(bucket, &key, gz).await?;
    }
    let spec = &request["IncrementalExportSpecification"];
    let mut summary = json!({
        "version": "2020-06-30",
        "exportArn": format!("{table_arn}/export/{id}"),
        "tableArn": table_arn,
        "s3Bucket": bucket,
        "s3Prefix": request["S3Prefix"],
        "manifestFilesS3Key": format!("{home}/manifest-files.json"),
        "billedSizeBytes": bytes,
        "itemCount": lines.len(),
        "outputFormat": "DYNAMODB_JSON",
        "exportType": if incremental { "INCREMENTAL_EXPORT" } else { "FULL_EXPORT" },
    });
    if incremental {
        summary["exportFromTime"] = spec["ExportFromTime"].clone();
        summary["exportToTime"] = spec["ExportToTime"].clone();
        summary["outputView"] = json!("NEW_AND_OLD_IMAGES");
    }
    for (name, text) in [
        ("manifest-files", manifest),
        ("manifest-summary", summary.to_string()),
    ] {
        let digest = Md5::digest(text.as_bytes());
        backend
            .put_object(bucket, &format!("{home}/{name}.json"), text.into_bytes())
            .await?;
        backend
            .put_object(
                bucket,
                &format!("{home}/{name}.checksum"),
                hex(&digest).into_bytes(),
            )
            .await?;
    }
    Ok(Some((bytes, lines.len() as u64)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_export(h: &History, request: &Value) -> Reply {
    let arn = request["ExportArn"].as_str().unwrap_or_default();
    let mut state = h.lock();
    let Some(e) = state.exports.get_mut(arn) else {
        return error(
            "ExportNotFoundException",
            &format!("Export not found: {arn}"),
        );
    };
    if e.pending > 0 {
        e.pending -= 1;
    } else if e.description["ExportStatus"] == "IN_PROGRESS" {
        let done = if e.description.get("FailureCode").is_some() {
            "FAILED"
        } else {
            "COMPLETED"
        };
        e.description["ExportStatus"] = json!(done);
        e.description["EndTime"] = json!(secs(SystemTime::now()));
    }
    ok(json!({"ExportDescription": e.description}))
}

fn list_exports(h: &History, request: &Value) -> Reply {
    let table = request["TableArn"].as_str();
    let state = h.lock();
    let list: Vec<Value> = state
        .exports
        .iter()
        .filter(|(_, e)| table.is_none() || e.description["TableArn"].as_str() == table)
        .map(|(arn, e)| json!({"ExportArn": arn, "ExportStatus": e.description["ExportStatus"], "ExportType": e.description["ExportType"]}))
        .collect();
    ok(json!({"ExportSummaries": list}))
}

/// The PITR window: from the instant PITR was turned on, on the history's clock, to now.
async fn pitr_window(h: &History, reply: Reply, request: &Value) -> Result<Reply, BoxError> {
    let table = request["TableName"].as_str().unwrap_or_default();
    let Some(since) = h.lock().pitr_since.get(table).copied() else {
        return Ok(reply);
    };
    let bytes = reply.into_body().collect().await?.to_bytes();
    let mut value: Value = serde_json::from_slice(&bytes)?;
    if let Some(pitr) = value
        .pointer_mut("/ContinuousBackupsDescription/PointInTimeRecoveryDescription")
        .and_then(Value::as_object_mut)
        && pitr.contains_key("LatestRestorableDateTime")
    {
        pitr.insert(
            "LatestRestorableDateTime".into(),
            secs(SystemTime::now()).into(),
        );
        pitr.insert("EarliestRestorableDateTime".into(), since.into());
    }
    Ok(ok(value))
}

/// moto restores a table as it is now; the history then puts back, in the new table, every item
/// changed since the instant asked for as it was then.
async fn restore(h: &History, backend: &Backend<'_>, request: &Value) -> Result<(), BoxError> {
    let _one = h.gate.lock().await;
    if request["UseLatestRestorableTime"] == true {
        return Ok(());
    }
    let (Some(source), Some(target), Some(at)) = (
        request["SourceTableName"].as_str(),
        request["TargetTableName"].as_str(),
        request["RestoreDateTime"].as_f64(),
    ) else {
        return Ok(());
    };
    for (key, image) in undo_after(h, source, at) {
        let (status, answer) = match image {
            Some(item) => {
                backend
                    .dynamo("PutItem", &json!({"TableName": target, "Item": item}))
                    .await?
            }
            None => {
                backend
                    .dynamo("DeleteItem", &json!({"TableName": target, "Key": key}))
                    .await?
            }
        };
        if status != StatusCode::OK {
            return Err(format!("putting {target} back to its point in time: {answer}").into());
        }
    }
    Ok(())
}
