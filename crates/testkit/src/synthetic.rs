//! A synthetic DynamoDB endpoint for measuring the copy engine alone: every table holds `items`
//! items of about `item_bytes` bytes, generated from their index on demand; Scan pages are made
//! as DynamoDB pages them (parallel-scan segments, `ExclusiveStartKey`, `Limit`, at most 1 MB:
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html>);
//! BatchWriteItem and BatchGetItem are answered at once and nothing is stored. No limits, no
//! storage: what a run achieves against it is the engine's own ceiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Shared {
    items: u64,
    item_bytes: usize,
    /// One value padding every item to its size.
    padding: String,
    written: AtomicU64,
    scanned: AtomicU64,
}

/// The endpoint, on its own thread; stopped when dropped.
pub struct Synthetic {
    url: String,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Synthetic {
    /// Every table has `items` items of about `item_bytes` bytes; `workers` server threads.
    pub fn start(items: u64, item_bytes: usize, workers: usize) -> Synthetic {
        let shared = Arc::new(Shared {
            items,
            item_bytes,
            padding: "x".repeat(item_bytes.saturating_sub(20)),
            written: AtomicU64::new(0),
            scanned: AtomicU64::new(0),
        });
        let (addr, stop) = crate::serve::on_thread(shared.clone(), workers, handle);
        Synthetic {
            url: format!("http://{addr}"),
            shared,
            _stop: stop,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Write requests answered so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Items returned by Scan so far.
    pub fn scanned(&self) -> u64 {
        self.shared.scanned.load(Ordering::Relaxed)
    }
}

fn key(index: u64) -> Value {
    json!({ "S": format!("item-{index:012}") })
}

fn index_of(key: &Value) -> Option<u64> {
    key.pointer("/id/S")?
        .as_str()?
        .strip_prefix("item-")?
        .parse()
        .ok()
}

impl Shared {
    fn item(&self, index: u64) -> Value {
        json!({ "id": key(index), "v": { "S": self.padding }, "n": { "N": index.to_string() } })
    }

    fn describe(&self, name: &str) -> Value {
        json!({ "Table": {
            "TableName": name,
            "TableStatus": "ACTIVE",
            "TableArn": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}"),
            "KeySchema": [{ "AttributeName": "id", "KeyType": "HASH" }],
            "AttributeDefinitions": [{ "AttributeName": "id", "AttributeType": "S" }],
            "ItemCount": self.items,
            "TableSizeBytes": self.items * self.item_bytes as u64,
            "BillingModeSummary": { "BillingMode": "PAY_PER_REQUEST" }
        }})
    }

    /// One page of a segment: its range of indexes, from after the start key, at most `Limit`
    /// items and 1 MB.
    fn scan(&self, request: &Value) -> Value {
        let total = request["TotalSegments"].as_u64().unwrap_or(1).max(1);
        let segment = request["Segment"].as_u64().unwrap_or(0);
        let (first, end) = (
            segment * self.items / total,
            (segment + 1) * self.items / total,
        );
        let from = request
            .get("ExclusiveStartKey")
            .and_then(index_of)
            .map_or(first, |i| i + 1);
        let per_mb = (1024 * 1024 / self.item_bytes.max(1)) as u64;
        let limit = request["Limit"]
            .as_u64()
            .unwrap_or(per_mb)
            .min(per_mb)
            .max(1);
        let to = (from + limit).min(end);
        let items: Vec<Value> = (from..to).map(|i| self.item(i)).collect();
        self.scanned.fetch_add(to - from, Ordering::Relaxed);
        let mut page = json!({ "Items": items, "Count": to - from, "ScannedCount": to - from });
        if to < end {
            page["LastEvaluatedKey"] = json!({ "id": key(to - 1) });
        }
        page
    }
}

fn count(request: &Value) -> u64 {
    request["RequestItems"].as_object().map_or(0, |t| {
        t.values()
            .filter_map(Value::as_array)
            .map(|l| l.len() as u64)
            .sum()
    })
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("DynamoDB_20120810."))
        .unwrap_or_default()
        .to_string();
    let body = req.into_body().collect().await?.to_bytes();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = match target.as_str() {
        "DescribeTable" => shared.describe(request["TableName"].as_str().unwrap_or_default()),
        "Scan" => shared.scan(&request),
        "BatchWriteItem" => {
            shared.written.fetch_add(count(&request), Ordering::Relaxed);
            json!({ "UnprocessedItems": {} })
        }
        "BatchGetItem" => json!({ "Responses": {}, "UnprocessedKeys": {} }),
        other => {
            let mut reply = Response::new(Full::new(Bytes::from(
                json!({ "__type": "com.amazon.coral.service#UnknownOperationException",
                        "message": format!("the synthetic endpoint does not answer {other}") })
                .to_string(),
            )));
            *reply.status_mut() = hyper::StatusCode::BAD_REQUEST;
            return Ok(reply);
        }
    };
    let mut reply = Response::new(Full::new(Bytes::from(serde_json::to_vec(&answer)?)));
    reply.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_page_through_their_own_indexes_exactly_once() {
        let s = Shared {
            items: 1000,
            item_bytes: 100_000,
            padding: String::new(),
            written: AtomicU64::new(0),
            scanned: AtomicU64::new(0),
        };
        let mut seen = Vec::new();
        for segment in 0..3 {
            let mut request = json!({ "Segment": segment, "TotalSegments": 3 });
            loop {
                let page = s.scan(&request);
                let items = page["Items"].as_array().expect("items");
                // 1 MB of 100 KB items: 10 a page.
                assert!(items.len() <= 10);
                seen.extend(items.iter().filter_map(index_of));
                match page.get("LastEvaluatedKey") {
                    Some(k) => request["ExclusiveStartKey"] = k.clone(),
                    None => break,
                }
            }
        }
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert_eq!(s.scanned.load(Ordering::Relaxed), 1000);
    }
}
