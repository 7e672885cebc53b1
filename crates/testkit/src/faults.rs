//! A fault-injecting HTTP proxy between the tool and an emulator: what real DynamoDB does and the
//! emulators never do. Throttling and server errors with DynamoDB's real JSON error shapes,
//! connection resets, hangs past the client's timeout, partial BatchWriteItem answered with
//! UnprocessedItems, and added latency, each at its own rate, changeable while a run goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::capacity::{Capacity, Counters, Model};

mod modelled;
use modelled::{Modelled, lock, modelled, return_unprocessed};

/// The faults to inject, as probabilities per request (they are tried in this order, and at
/// most one of them hits a request); latency is drawn independently.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// 400 ProvisionedThroughputExceededException, with ThrottlingReasons.
    pub throughput_exceeded: f64,
    /// 400 ThrottlingException.
    pub throttling: f64,
    /// 500 InternalServerError.
    pub internal_error: f64,
    /// 503 ServiceUnavailable.
    pub unavailable: f64,
    /// The connection is closed without an answer; the request is not forwarded.
    pub reset: f64,
    /// The request is forwarded (so a write may well be applied) and the answer held for
    /// `hang_for`, past the client's attempt timeout.
    pub hang: f64,
    pub hang_for: Duration,
    /// BatchWriteItem of two or more items only: a random non-empty strict subset is forwarded
    /// and the rest returned as UnprocessedItems.
    pub partial_batch: f64,
    /// Added before forwarding, uniformly up to `latency_max`.
    pub latency: f64,
    pub latency_max: Duration,
    /// Only DynamoDB operations with these names (e.g. "BatchWriteItem") get faults; empty: all.
    pub operations: Vec<String>,
    /// Only requests naming one of these tables (exactly, as a JSON string) get faults or races; empty:
    /// all.
    pub tables: Vec<String>,
    /// Not a fault but fidelity: DescribeContinuousBackups answers carry a
    /// LatestRestorableDateTime of now, as DynamoDB's window moves forward. moto freezes the
    /// window at the instant PITR was enabled, so no two tables share a restorable instant.
    /// Also: a table restored to a point in time through the proxy says so in DescribeTable's
    /// RestoreSummary.RestoreDateTime, the requested instant, as DynamoDB does
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_RestoreSummary.html>);
    /// moto reports the moment of the restore instead.
    pub live_pitr_window: bool,
    /// Not a fault but fidelity: these tables answer DescribeTable as global tables (version
    /// 2019.11.21) with ACTIVE replicas in these regions, in `Replicas` as DynamoDB lists them
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ReplicaDescription.html>).
    /// moto has no global tables.
    pub replicas: Vec<(String, Vec<String>)>,
    /// Not a fault but the application: before each of the first `race` conditional PutItem or
    /// DeleteItem requests, the proxy writes the same item itself (its key, the request's
    /// attributes and `raced = "by the application"`), as an application write landing between
    /// the tool's read and its write would.
    pub race: u64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults::default()
    }

    /// Every kind, `rate` in all: a request meets one fault or none.
    pub fn mixed(rate: f64, hang_for: Duration) -> Faults {
        let each = rate / 7.0;
        Faults {
            throughput_exceeded: each,
            throttling: each,
            internal_error: each,
            unavailable: each,
            reset: each,
            hang: each,
            hang_for,
            partial_batch: each,
            latency: rate,
            latency_max: Duration::from_millis(20),
            operations: Vec::new(),
            tables: Vec::new(),
            live_pitr_window: false,
            replicas: Vec::new(),
            race: 0,
        }
    }

    pub fn only(mut self, operations: &[&str]) -> Faults {
        self.operations = operations.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// What was injected, by kind.
#[derive(Debug, Default)]
pub struct Injected {
    pub requests: AtomicU64,
    pub throughput_exceeded: AtomicU64,
    pub throttling: AtomicU64,
    pub internal_error: AtomicU64,
    pub unavailable: AtomicU64,
    pub reset: AtomicU64,
    pub hang: AtomicU64,
    pub partial_batch: AtomicU64,
    /// Items a partial batch returned as unprocessed.
    pub unprocessed_items: AtomicU64,
    pub latency: AtomicU64,
    /// Items written: those of BatchWriteItem calls answered 200 less their UnprocessedItems,
    /// and each PutItem, UpdateItem or DeleteItem the backend answered (200, or a failed
    /// condition, which is charged too). For write rates and writes per changed item.
    pub written: AtomicU64,
    /// Application writes made ahead of conditional writes (`race`).
    pub raced: AtomicU64,
    /// Items asked for by GetItem and BatchGetItem, for counting reads per key.
    pub keys_read: AtomicU64,
    /// Requests by DynamoDB operation.
    operations: Mutex<BTreeMap<String, u64>>,
}

impl Injected {
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BTreeMap::from([
            ("requests", get(&self.requests)),
            ("throughput_exceeded", get(&self.throughput_exceeded)),
            ("throttling", get(&self.throttling)),
            ("internal_error", get(&self.internal_error)),
            ("unavailable", get(&self.unavailable)),
            ("reset", get(&self.reset)),
            ("hang", get(&self.hang)),
            ("partial_batch", get(&self.partial_batch)),
            ("unprocessed_items", get(&self.unprocessed_items)),
            ("latency", get(&self.latency)),
        ])
    }

    /// How many requests of `operation` (e.g. "Query") arrived.
    pub fn count(&self, operation: &str) -> u64 {
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Faults injected in all, latency not counted.
    pub fn faults(&self) -> u64 {
        self.snapshot()
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "requests" | "latency" | "unprocessed_items"))
            .map(|(_, v)| v)
            .sum()
    }
}

struct Shared {
    backend: String,
    faults: Mutex<Faults>,
    injected: Injected,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The instant each PITR restore was asked for, by target table (see `live_pitr_window`).
    restore_times: Mutex<std::collections::HashMap<String, f64>>,
    /// Tables served by another backend, by the request's `TableName` (see [`FaultProxy::route`]).
    routes: Mutex<Vec<(String, String)>>,
    /// A modelled table's partitions and limits, when the proxy has one.
    capacity: Option<Mutex<Model>>,
    /// Every write's images, exports and point-in-time restores, when the proxy keeps them.
    history: Option<crate::history::History>,
}

/// The proxy, on its own thread and runtime so that a test may block on a CLI run meanwhile.
/// Stopped when dropped.
pub struct FaultProxy {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `backend` (http://host:port).
    pub fn start(backend: &str, faults: Faults) -> FaultProxy {
        FaultProxy::start_with(backend, faults, None, false)
    }

    /// [`FaultProxy::start`], keeping DynamoDB's history ([`crate::history`]): what exports and
    /// point-in-time restores are made from.
    pub fn with_history(backend: &str, faults: Faults) -> FaultProxy {
        FaultProxy::start_with(backend, faults, None, true)
    }

    /// The history, for a proxy started [`FaultProxy::with_history`].
    pub fn history(&self) -> &crate::history::History {
        self.shared
            .history
            .as_ref()
            .expect("a proxy started with_history")
    }

    /// [`FaultProxy::start`], and the table `capacity` describes gets its throughput limits.
    pub fn with_capacity(backend: &str, faults: Faults, capacity: Capacity) -> FaultProxy {
        FaultProxy::start_with(backend, faults, Some(capacity), false)
    }

    /// [`FaultProxy::with_history`] and [`FaultProxy::with_capacity`] at once: a table with its
    /// history and its throughput limits, for benchmarks of a window against a whole-table run.
    pub fn with_history_and_capacity(
        backend: &str,
        faults: Faults,
        capacity: Capacity,
    ) -> FaultProxy {
        FaultProxy::start_with(backend, faults, Some(capacity), true)
    }

    /// Sends the requests naming `table` as their `TableName` (DescribeTable, Scan, ...) to
    /// `backend` instead: a benchmark gives a table its own emulator process.
    pub fn route(&self, table: &str, backend: &str) {
        let mut routes = self.shared.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.push((table.into(), backend.trim_end_matches('/').into()));
    }

    /// What the capacity model counted so far (empty without one).
    pub fn capacity_counters(&self) -> Counters {
        self.shared
            .capacity
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).counters.clone())
            .unwrap_or_default()
    }

    fn start_with(
        backend: &str,
        faults: Faults,
        capacity: Option<Capacity>,
        history: bool,
    ) -> FaultProxy {
        let shared = Arc::new(Shared {
            backend: backend.trim_end_matches('/').to_string(),
            faults: Mutex::new(faults),
            injected: Injected::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            restore_times: Mutex::default(),
            routes: Mutex::default(),
            capacity: capacity.map(|c| Mutex::new(Model::new(c))),
            history: history.then(Default::default),
        });
        let (addr, stop) = crate::serve::on_thread(shared.clone(), 2, handle);
        let url = format!("http://{addr}");
        FaultProxy {
            url,
            shared,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A DynamoDB client whose requests pass through the proxy.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        crate::emulator::client_for(&self.url)
    }

    /// Changes the faults for the requests that arrive from now on.
    pub fn set(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub fn injected(&self) -> &Injected {
        &self.shared.injected
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The fault drawn for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    ThroughputExceeded,
    Throttling,
    InternalError,
    Unavailable,
    Reset,
    Hang,
    PartialBatch,
}

fn draw(f: &Faults, operation: &str) -> Option<Fault> {
    let mut r = fastrand::f64();
    let kinds = [
        (f.throughput_exceeded, Fault::ThroughputExceeded),
        (f.throttling, Fault::Throttling),
        (f.internal_error, Fault::InternalError),
        (f.unavailable, Fault::Unavailable),
        (f.reset, Fault::Reset),
        (f.hang, Fault::Hang),
        (f.partial_batch, Fault::PartialBatch),
    ];
    for (p, kind) in kinds {
        if r < p {
            // Only a batch write can be partly done.
            return (kind != Fault::PartialBatch || operation == "BatchWriteItem").then_some(kind);
        }
        r -= p;
    }
    None
}

type Reply = Response<Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("DynamoDB_20120810."))
        .map(str::to_string);
    let faults = shared
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let inj = &shared.injected;
    inj.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(op) = &operation {
        *inj.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op.clone())
            .or_default() += 1;
    }
    match operation.as_deref() {
        Some("GetItem") => {
            inj.keys_read.fetch_add(1, Ordering::Relaxed);
        }
        Some("BatchGetItem") => {
            inj.keys_read
                .fetch_add(batch_keys(&body), Ordering::Relaxed);
        }
        _ => {}
    }
    let named = faults.tables.is_empty()
        || faults.tables.iter().any(|t| {
            let quoted = format!("\"{t}\"");
            body.windows(quoted.len()).any(|w| w == quoted.as_bytes())
        });
    // A race is an application write to the table itself, not to a journal item naming it.
    let table = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|r| r["TableName"].as_str().map(str::to_string))
        .unwrap_or_default();
    let raced_table = faults.tables.is_empty() || faults.tables.contains(&table);
    if matches!(operation.as_deref(), Some("PutItem" | "DeleteItem"))
        && raced_table
        && inj
            .raced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < faults.race).then_some(n + 1)
            })
            .is_ok()
    {
        race(&shared, &parts, &body).await?;
    }
    let eligible = operation.as_deref().is_some_and(|op| {
        faults.operations.is_empty() || faults.operations.iter().any(|o| o == op)
    }) && named;
    let fault = if eligible {
        draw(&faults, operation.as_deref().unwrap_or_default())
    } else {
        None
    };
    if eligible && fastrand::f64() < faults.latency {
        inj.latency.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(faults.latency_max.mul_f64(fastrand::f64())).await;
    }
    if let Some(f) = fault {
        if let Some((counter, status, body)) = injected_error(inj, f) {
            counter.fetch_add(1, Ordering::Relaxed);
            return Ok(error_reply(status, body));
        }
        if f == Fault::Reset {
            inj.reset.fetch_add(1, Ordering::Relaxed);
            return Err("injected connection reset".into());
        }
    }
    let op = operation.as_deref();
    let reply = match modelled(&shared, &parts, &body, op).await? {
        Modelled::Reply(reply) => reply,
        Modelled::Forward(admitted, unprocessed) => {
            let reply = respond(&shared, &faults, &parts, admitted, op, fault).await?;
            let table = shared
                .capacity
                .as_ref()
                .map(|m| lock(m).capacity.table.clone());
            match table {
                Some(table) if !unprocessed.is_empty() => {
                    return_unprocessed(reply, &table, unprocessed).await?
                }
                _ => reply,
            }
        }
        Modelled::Pass => respond(&shared, &faults, &parts, body.clone(), op, fault).await?,
    };
    let reply = match op {
        Some("DescribeTable") => modelled::described(&shared, reply).await?,
        _ => reply,
    };
    let reply = count_written(inj, op, &body, reply).await?;
    if fault == Some(Fault::Hang) {
        inj.hang.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(faults.hang_for).await;
    }
    Ok(reply)
}

/// An application's write of the item a conditional PutItem or DeleteItem names, sent first.
async fn race(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Result<(), BoxError> {
    let request: Value = serde_json::from_slice(body)?;
    if request.get("ConditionExpression").is_none() {
        return Ok(());
    }
    let mut item = request
        .get("Item")
        .or_else(|| request.get("Key"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    item["raced"] = json!({ "S": "by the application" });
    let put = json!({ "TableName": request["TableName"], "Item": item });
    let mut parts = parts.clone();
    parts.headers.insert(
        "x-amz-target",
        hyper::header::HeaderValue::from_static("DynamoDB_20120810.PutItem"),
    );
    let reply = forward(shared, &parts, Bytes::from(serde_json::to_vec(&put)?)).await?;
    if reply.status() != StatusCode::OK {
        return Err(format!("the racing application write failed: {}", reply.status()).into());
    }
    Ok(())
}

fn now_secs() -> Result<f64, BoxError> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64())
}

fn remember_restore_time(shared: &Shared, request: &Value) -> Result<(), BoxError> {
    let Some(target) = request.get("TargetTableName").and_then(Value::as_str) else {
        return Ok(());
    };
    let at = match request.get("RestoreDateTime").and_then(Value::as_f64) {
        Some(t) => t,
        None => now_secs()?,
    };
    shared
        .restore_times
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(target.to_string(), at);
    Ok(())
}

/// DescribeTable's answer with the requested instant in its RestoreSummary.
async fn restore_summary(
    shared: &Shared,
    request: &Value,
    reply: Reply,
) -> Result<Reply, BoxError> {
    let at = request
        .get("TableName")
        .and_then(Value::as_str)
        .and_then(|t| {
            shared
                .restore_times
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(t)
                .copied()
        });
    let Some(at) = at else {
        return Ok(reply);
    };
    let (parts, body) = reply.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut value: Value = serde_json::from_slice(&body)?;
    if let Some(summary) = value
        .pointer_mut("/Table/RestoreSummary")
        .and_then(Value::as_object_mut)
    {
        summary.insert("RestoreDateTime".into(), at.into());
    }
    Ok(Response::from_parts(
        parts,
        Full::new(Bytes::from(serde_json::to_vec(&value)?)),
    ))
}

/// DescribeTable's answer for a table configured as global, with its replicas.
async fn with_replicas(
    replicas: &[(String, Vec<String>)],
    request: &Value,
    reply: Reply,
) -> Result<Reply, BoxError> {
    let table = request.get("TableName").and_then(Value::as_str);
    let Some((_, regions)) = replicas.iter().find(|(t, _)| Some(t.as_str()) == table) else {
        return Ok(reply);
    };
    let (parts, body) = reply.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut value: Value = serde_json::from_slice(&body)?;
    if let Some(t) = value.pointer_mut("/Table").and_then(Value::as_object_mut) {
        let list: Vec<Value> = regions
            .iter()
            .map(|r| serde_json::json!({ "RegionName": r, "ReplicaStatus": "ACTIVE" }))
            .collect();
        t.insert("Replicas".into(), list.into());
        t.insert("GlobalTableVersion".into(), "2019.11.21".into());
    }
    Ok(Response::from_parts(
        parts,
        Full::new(Bytes::from(serde_json::to_vec(&value)?)),
    ))
}

/// The answer with its PITR window's latest restorable time moved to now.
async fn live_window(reply: Reply) -> Result<Reply, BoxError> {
    let (parts, body) = reply.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut value: Value = serde_json::from_slice(&body)?;
    let now = now_secs()?;
    if let Some(pitr) = value
        .pointer_mut("/ContinuousBackupsDescription/PointInTimeRecoveryDescription")
        .and_then(Value::as_object_mut)
        && pitr.contains_key("LatestRestorableDateTime")
    {
        pitr.insert("LatestRestorableDateTime".into(), now.into());
    }
    Ok(Response::from_parts(
        parts,
        Full::new(Bytes::from(serde_json::to_vec(&value)?)),
    ))
}

/// The answer to a request the model let through (`body`, perhaps part of the client's): the
/// history's, a partial batch's, or the backend's with the PITR window and replicas it lacks.
async fn respond(
    shared: &Shared,
    faults: &Faults,
    parts: &hyper::http::request::Parts,
    body: Bytes,
    operation: Option<&str>,
    fault: Option<Fault>,
) -> Result<Reply, BoxError> {
    let (http, backend) = (&shared.client, &shared.backend);
    if let Some(h) = &shared.history
        && let Some(reply) =
            crate::history::handle(h, http, backend, parts, &body, operation).await?
    {
        return Ok(reply);
    }
    if fault == Some(Fault::PartialBatch)
        && let Some(reply) = partial_batch(shared, parts, &body).await?
    {
        return Ok(reply);
    }
    let request: Option<Value> = (faults.live_pitr_window || !faults.replicas.is_empty())
        .then(|| serde_json::from_slice(&body).ok())
        .flatten();
    let mut reply = forward(shared, parts, body.clone()).await?;
    if let Some(h) = &shared.history {
        reply = crate::history::after(h, http, backend, operation, &body, reply).await?;
    }
    let Some(request) = request.filter(|_| reply.status() == StatusCode::OK) else {
        return Ok(reply);
    };
    let pitr = faults.live_pitr_window;
    match operation {
        Some("DescribeContinuousBackups") if pitr => reply = live_window(reply).await?,
        Some("RestoreTableToPointInTime") if pitr => remember_restore_time(shared, &request)?,
        Some("DescribeTable") => {
            if pitr {
                reply = restore_summary(shared, &request, reply).await?;
            }
            reply = with_replicas(&faults.replicas, &request, reply).await?;
        }
        _ => {}
    }
    Ok(reply)
}

/// Counts what a write answered by the backend wrote ([`Injected::written`]): a batch's items
/// less those it returned unprocessed; a single write answered 200 or with a failed condition,
/// which DynamoDB charges as a write
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html>).
async fn count_written(
    inj: &Injected,
    operation: Option<&str>,
    request: &Bytes,
    reply: Reply,
) -> Result<Reply, BoxError> {
    let batch = operation == Some("BatchWriteItem");
    let single = matches!(operation, Some("PutItem" | "UpdateItem" | "DeleteItem"));
    if !batch && !single {
        return Ok(reply);
    }
    let (head, answer) = reply.into_parts();
    let answer = answer.collect().await?.to_bytes();
    let ok = head.status == StatusCode::OK;
    let written = if batch && ok {
        let unprocessed = serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|a| {
                a.get("UnprocessedItems")
                    .and_then(Value::as_object)
                    .map(|t| t.values().filter_map(Value::as_array).map(Vec::len).sum())
            })
            .unwrap_or(0usize);
        batch_writes(request).saturating_sub(unprocessed as u64)
    } else {
        let failed_condition = answer
            .windows(b"ConditionalCheckFailed".len())
            .any(|w| w == b"ConditionalCheckFailed");
        u64::from(single && (ok || failed_condition))
    };
    inj.written.fetch_add(written, Ordering::Relaxed);
    Ok(Response::from_parts(head, Full::new(answer)))
}

/// DynamoDB's answer for an error fault, with its counter: the real status and JSON shape.
fn injected_error(inj: &Injected, fault: Fault) -> Option<(&AtomicU64, StatusCode, Value)> {
    let dynamodb = |t: &str| format!("com.amazonaws.dynamodb.v20120810#{t}");
    Some(match fault {
        Fault::ThroughputExceeded => (
            &inj.throughput_exceeded,
            StatusCode::BAD_REQUEST,
            json!({
                "__type": dynamodb("ProvisionedThroughputExceededException"),
                "message": "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
                "ThrottlingReasons": [{
                    "reason": "TableWriteProvisionedThroughputExceeded",
                    "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/injected"
                }]
            }),
        ),
        Fault::Throttling => (
            &inj.throttling,
            StatusCode::BAD_REQUEST,
            json!({
                "__type": "com.amazon.coral.availability#ThrottlingException",
                "message": "Rate of requests exceeds the allowed throughput."
            }),
        ),
        Fault::InternalError => (
            &inj.internal_error,
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "__type": dynamodb("InternalServerError"), "message": "Internal server error" }),
        ),
        Fault::Unavailable => (
            &inj.unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "__type": dynamodb("ServiceUnavailableException"), "message": "Service Unavailable" }),
        ),
        Fault::Reset | Fault::Hang | Fault::PartialBatch => return None,
    })
}

fn batch_keys(body: &Bytes) -> u64 {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("RequestItems").and_then(Value::as_object).map(|t| {
                t.values()
                    .filter_map(|r| r.get("Keys").and_then(Value::as_array))
                    .map(|l| l.len() as u64)
                    .sum()
            })
        })
        .unwrap_or(0)
}

fn batch_writes(body: &Bytes) -> u64 {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("RequestItems").and_then(Value::as_object).map(|t| {
                t.values()
                    .filter_map(Value::as_array)
                    .map(|l| l.len() as u64)
                    .sum()
            })
        })
        .unwrap_or(0)
}

fn error_reply(status: StatusCode, body: Value) -> Reply {
    let text = body.to_string();
    let mut reply = Response::new(Full::new(Bytes::from(text)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    reply
}

async fn forward(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Reply, BoxError> {
    let routed = {
        let routes = shared.routes.lock().unwrap_or_else(|p| p.into_inner());
        let table = (!routes.is_empty())
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|v| v["TableName"].as_str().map(str::to_string));
        routes
            .iter()
            .find(|(t, _)| Some(t) == table.as_ref())
            .map(|(_, b)| b.clone())
    };
    let backend = routed.as_deref().unwrap_or(&shared.backend);
    crate::serve::forward(&shared.client, backend, parts, body).await
}

/// Forwards a random strict subset of a BatchWriteItem and answers the rest as UnprocessedItems,
/// as DynamoDB does under load. `None` when the body is not a batch to split.
async fn partial_batch(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
) -> Result<Option<Reply>, BoxError> {
    let mut request: Value = serde_json::from_slice(body)?;
    let Some(tables) = request
        .get_mut("RequestItems")
        .and_then(Value::as_object_mut)
    else {
        return Ok(None);
    };
    let mut unprocessed = serde_json::Map::new();
    let mut kept = 0;
    let mut held = 0u64;
    for (table, writes) in tables.iter_mut() {
        let Some(list) = writes.as_array_mut() else {
            continue;
        };
        // DynamoDB answers UnprocessedItems only when it wrote at least one item (none written
        // is a ProvisionedThroughputExceededException), so a batch of one is never partial.
        if list.len() < 2 {
            kept += list.len();
            continue;
        }
        fastrand::shuffle(list);
        let keep = fastrand::usize(1..list.len());
        let rest = list.split_off(keep);
        kept += list.len();
        held += rest.len() as u64;
        if !rest.is_empty() {
            unprocessed.insert(table.clone(), Value::Array(rest));
        }
    }
    if held == 0 {
        return Ok(None);
    }
    tables.retain(|_, w| w.as_array().is_some_and(|l| !l.is_empty()));
    shared
        .injected
        .partial_batch
        .fetch_add(1, Ordering::Relaxed);
    shared
        .injected
        .unprocessed_items
        .fetch_add(held, Ordering::Relaxed);
    let mut answer = if kept > 0 {
        let reply = forward(shared, parts, Bytes::from(request.to_string())).await?;
        if reply.status() != StatusCode::OK {
            return Ok(Some(reply));
        }
        let bytes = reply.into_body().collect().await?.to_bytes();
        serde_json::from_slice::<Value>(&bytes)?
    } else {
        json!({})
    };
    answer["UnprocessedItems"] = Value::Object(unprocessed);
    let mut reply = Response::new(Full::new(Bytes::from(answer.to_string())));
    reply.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Ok(Some(reply))
}
