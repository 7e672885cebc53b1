//! A local Lambda Runtime API, for running the real function binary's runtime loop in tests:
//! the four routes a custom runtime uses, as documented in
//! https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html:
//! - `GET /2018-06-01/runtime/invocation/next` blocks until an invocation is queued, then
//!   answers its payload with `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`
//!   (milliseconds since the epoch), `Lambda-Runtime-Invoked-Function-Arn` and
//!   `Lambda-Runtime-Trace-Id`;
//! - `POST …/invocation/{id}/response` takes the function's result;
//! - `POST …/invocation/{id}/error` takes its error (`{"errorType", "errorMessage"}`);
//! - `POST …/init/error` takes an initialisation error.
//!
//! Point the function at it with `AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(serde_json::Value),
    /// The error document, and the `Lambda-Runtime-Function-Error-Type` header if sent.
    Error(serde_json::Value),
}

struct Queued {
    id: String,
    payload: serde_json::Value,
    deadline_ms: u64,
}

#[derive(Default)]
struct State {
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_error: Option<serde_json::Value>,
}

struct Shared {
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    state: Mutex<State>,
}

pub struct RuntimeApi {
    addr: String,
    queue: mpsc::UnboundedSender<Queued>,
    shared: Arc<Shared>,
    counter: std::sync::atomic::AtomicU64,
    stop: Option<oneshot::Sender<()>>,
}

impl RuntimeApi {
    /// Serves on a free loopback port, on a thread of its own.
    pub fn start() -> RuntimeApi {
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next: tokio::sync::Mutex::new(rx),
            state: Mutex::default(),
        });
        let (addr, stop) = crate::serve::on_thread(shared.clone(), 1, handle);
        let addr = addr.to_string();
        RuntimeApi {
            addr,
            queue,
            shared,
            counter: Default::default(),
            stop: Some(stop),
        }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Queues one invocation with `timeout` to run, and waits for the function's answer.
    pub async fn invoke(&self, payload: serde_json::Value, timeout: Duration) -> Outcome {
        self.try_invoke(payload, timeout)
            .await
            .expect("the function answered before its timeout")
    }

    /// [`Self::invoke`], `None` when no answer came by the timeout (the function's process was
    /// killed, as Lambda kills one at its timeout).
    pub async fn try_invoke(
        &self,
        payload: serde_json::Value,
        timeout: Duration,
    ) -> Option<Outcome> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("req-{n:04}");
        let deadline = SystemTime::now() + timeout;
        let deadline_ms = deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("time")
            .as_millis() as u64;
        let (tx, rx) = oneshot::channel();
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .insert(id.clone(), tx);
        self.queue
            .send(Queued {
                id,
                payload,
                deadline_ms,
            })
            .expect("queue");
        // Lambda stops a function at its timeout; a little slack for the answer to arrive.
        tokio::time::timeout(timeout + Duration::from_secs(5), rx)
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// An initialisation error the function reported, if any.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .init_error
            .clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let error_type = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await?.to_bytes();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["2018-06-01", "runtime", "invocation", "next"]) => {
            let next = shared.next.lock().await.recv().await;
            let Some(q) = next else {
                return Ok(reply(StatusCode::GONE, Bytes::new()));
            };
            let mut r = reply(
                StatusCode::OK,
                Bytes::from(serde_json::to_vec(&q.payload).expect("payload")),
            );
            let h = r.headers_mut();
            h.insert("lambda-runtime-aws-request-id", q.id.parse().expect("id"));
            h.insert(
                "lambda-runtime-deadline-ms",
                q.deadline_ms.to_string().parse().expect("deadline"),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:dynamo-dr-local"
                    .parse()
                    .expect("arn"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0"
                    .parse()
                    .expect("trace"),
            );
            h.insert("content-type", "application/json".parse().expect("ct"));
            Ok(r)
        }
        (
            "POST",
            [
                "2018-06-01",
                "runtime",
                "invocation",
                id,
                kind @ ("response" | "error"),
            ],
        ) => {
            let value: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let outcome = if *kind == "response" {
                Outcome::Response(value)
            } else {
                let mut v = value;
                if let (Some(t), Some(o)) = (error_type, v.as_object_mut()) {
                    o.insert("header".into(), serde_json::Value::String(t));
                }
                Outcome::Error(v)
            };
            let waiter = shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .waiting
                .remove(*id);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(outcome);
                    Ok(reply(
                        StatusCode::ACCEPTED,
                        Bytes::from_static(b"{\"status\":\"OK\"}"),
                    ))
                }
                None => Ok(reply(
                    StatusCode::BAD_REQUEST,
                    Bytes::from_static(b"{\"errorType\":\"InvalidRequestID\"}"),
                )),
            }
        }
        ("POST", ["2018-06-01", "runtime", "init", "error"]) => {
            shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .init_error = serde_json::from_slice(&body).ok();
            Ok(reply(StatusCode::ACCEPTED, Bytes::new()))
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, Bytes::new())),
    }
}
