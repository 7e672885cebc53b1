//! The capacity model ([`crate::capacity`]) in the proxy: its verdict on each write, read or
//! scan of its table, and the answers DynamoDB gives when something does not fit.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{BoxError, Reply, Shared, error_reply, forward};
use crate::capacity::{Model, ReadVerdict, WriteVerdict, throttle_body};

/// What the capacity model made of a request.
pub(super) enum Modelled {
    /// Not its table or operation, or everything fits: go on as usual.
    Pass,
    /// Answered: a throttle, or a Scan forwarded and charged.
    Reply(Reply),
    /// Forward this part of a batch; the rest goes back to the client as UnprocessedItems.
    Forward(Bytes, Vec<Value>),
}

pub(super) fn lock(model: &Mutex<Model>) -> std::sync::MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|p| p.into_inner())
}

/// The capacity model's verdict on a write or scan of its table.
pub(super) async fn modelled(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    body: &Bytes,
    operation: Option<&str>,
) -> Result<Modelled, BoxError> {
    let Some(model) = &shared.capacity else {
        return Ok(Modelled::Pass);
    };
    let Some(op) = operation.filter(|o| {
        matches!(
            *o,
            "BatchWriteItem"
                | "PutItem"
                | "UpdateItem"
                | "DeleteItem"
                | "Scan"
                | "GetItem"
                | "BatchGetItem"
        )
    }) else {
        return Ok(Modelled::Pass);
    };
    let request: Value = serde_json::from_slice(body)?;
    let table = lock(model).capacity.table.clone();
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}");
    let throttled = |reason, write| {
        let reply = error_reply(StatusCode::BAD_REQUEST, throttle_body(reason, &arn, write));
        Ok(Modelled::Reply(reply))
    };
    match op {
        "Scan" => {
            if let Some(reason) = lock(model).admit_scan(&request) {
                return throttled(reason, false);
            }
            let reply = forward(shared, parts, body.clone()).await?;
            if reply.status() != StatusCode::OK {
                return Ok(Modelled::Reply(reply));
            }
            let (head, answer) = reply.into_parts();
            let answer = answer.collect().await?.to_bytes();
            if let Ok(v) = serde_json::from_slice::<Value>(&answer) {
                lock(model).charge_scan(&request, &v);
            }
            Ok(Modelled::Reply(Response::from_parts(
                head,
                Full::new(answer),
            )))
        }
        "GetItem" | "BatchGetItem" => read_by_key(shared, model, parts, &request, op).await,
        "BatchWriteItem" => match lock(model).write(&request) {
            WriteVerdict::Pass => Ok(Modelled::Pass),
            WriteVerdict::Reject(reason) => throttled(reason, true),
            WriteVerdict::Partial {
                forward,
                unprocessed,
            } => Ok(Modelled::Forward(
                Bytes::from(forward.to_string()),
                unprocessed,
            )),
        },
        _ => match lock(model).write_one(op, &request) {
            Some(reason) => throttled(reason, true),
            None => Ok(Modelled::Pass),
        },
    }
}

/// A GetItem or BatchGetItem through the model: keys it cannot serve are throttled (GetItem, or
/// a batch of which nothing fits) or returned as UnprocessedKeys; the items read are charged.
async fn read_by_key(
    shared: &Shared,
    model: &Mutex<Model>,
    parts: &hyper::http::request::Parts,
    request: &Value,
    op: &str,
) -> Result<Modelled, BoxError> {
    let table = lock(model).capacity.table.clone();
    let batch = op == "BatchGetItem";
    let pointer = format!(
        "/RequestItems/{}",
        table.replace('~', "~0").replace('/', "~1")
    );
    let entry = if batch {
        request.pointer(&pointer)
    } else {
        (request["TableName"].as_str() == Some(table.as_str())).then_some(request)
    };
    let Some(entry) = entry.cloned() else {
        return Ok(Modelled::Pass);
    };
    let consistent = entry["ConsistentRead"].as_bool().unwrap_or(false);
    let keys = if batch {
        entry["Keys"].as_array().cloned().unwrap_or_default()
    } else {
        vec![entry["Key"].clone()]
    };
    let verdict = lock(model).read(&keys, consistent);
    let mut sent = request.clone();
    let unprocessed = match verdict {
        ReadVerdict::Pass => Vec::new(),
        ReadVerdict::Reject(reason) => {
            let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}");
            let body = throttle_body(reason, &arn, false);
            return Ok(Modelled::Reply(error_reply(StatusCode::BAD_REQUEST, body)));
        }
        ReadVerdict::Partial {
            admitted,
            unprocessed,
        } => {
            sent["RequestItems"][&table]["Keys"] = Value::Array(admitted);
            unprocessed
        }
    };
    let reply = forward(shared, parts, Bytes::from(sent.to_string())).await?;
    if reply.status() != StatusCode::OK {
        return Ok(Modelled::Reply(reply));
    }
    let (head, answer) = reply.into_parts();
    let mut answer: Value = serde_json::from_slice(&answer.collect().await?.to_bytes())?;
    let items: Vec<Value> = if batch {
        answer["Responses"][&table]
            .as_array()
            .cloned()
            .unwrap_or_default()
    } else {
        answer.get("Item").cloned().into_iter().collect()
    };
    lock(model).charge_reads(&items, consistent);
    if !unprocessed.is_empty() {
        let mut left = answer["UnprocessedKeys"][&table]["Keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        left.extend(unprocessed);
        let mut rest = entry;
        rest["Keys"] = Value::Array(left);
        answer["UnprocessedKeys"][&table] = rest;
    }
    let bytes = Bytes::from(answer.to_string());
    Ok(Modelled::Reply(Response::from_parts(
        head,
        Full::new(bytes),
    )))
}

/// A DescribeTable answer of the model's table, as the proxy made it (PITR window, replicas,
/// restore summary), with the table's warm throughput and on-demand maximum added.
pub(super) async fn described(shared: &Shared, reply: Reply) -> Result<Reply, BoxError> {
    let Some(model) = &shared.capacity else {
        return Ok(reply);
    };
    if reply.status() != StatusCode::OK {
        return Ok(reply);
    }
    let (head, answer) = reply.into_parts();
    let answer: Value = serde_json::from_slice(&answer.collect().await?.to_bytes())?;
    let answer = lock(model).capacity.describe(answer);
    let bytes = Bytes::from(answer.to_string());
    Ok(Response::from_parts(head, Full::new(bytes)))
}

/// A batch's answer with the items the model held back added to its UnprocessedItems.
pub(super) async fn return_unprocessed(
    reply: Reply,
    table: &str,
    unprocessed: Vec<Value>,
) -> Result<Reply, BoxError> {
    if reply.status() != StatusCode::OK {
        return Ok(reply);
    }
    let bytes = reply.into_body().collect().await?.to_bytes();
    let mut answer: Value = serde_json::from_slice(&bytes)?;
    let mut left = answer
        .pointer(&format!("/UnprocessedItems/{table}"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    left.extend(unprocessed);
    answer["UnprocessedItems"] = json!({ table: left });
    let mut reply = Response::new(Full::new(Bytes::from(answer.to_string())));
    reply.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Ok(reply)
}
