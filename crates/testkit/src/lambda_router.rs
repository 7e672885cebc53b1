//! Stands in front of moto as the endpoint its Step Functions engine calls (moto sends a
//! state machine's service calls to `localhost:$MOTO_PORT`): Lambda `Invoke` requests
//! (`POST /2015-03-31/functions/{name}/invocations`) are answered by a handler of the test's,
//! everything else (the child executions of `startExecution.sync:2`, ...) is passed to moto.
//! A function error is answered as Lambda does: status 200, `X-Amz-Function-Error: Unhandled`,
//! and the `{"errorType", "errorMessage"}` document.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The answer to one invocation: the payload, or the function error's document.
pub type Answer = Pin<Box<dyn Future<Output = Result<Value, Value>> + Send>>;
/// Called with the function's name (or ARN) and the payload.
pub type Handler = Arc<dyn Fn(String, Value) -> Answer + Send + Sync>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Shared {
    backend: OnceLock<String>,
    handler: Handler,
    client: Client<HttpConnector, Full<Bytes>>,
    /// Every invocation: the function and its payload's `action`.
    calls: Mutex<Vec<(String, String)>>,
}

pub struct LambdaRouter {
    port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl LambdaRouter {
    /// Listens on a free port; requests that are not invocations wait for [`Self::forward_to`].
    pub fn start(handler: Handler) -> LambdaRouter {
        let shared = Arc::new(Shared {
            backend: OnceLock::new(),
            handler,
            client: Client::builder(TokioExecutor::new()).build_http(),
            calls: Mutex::default(),
        });
        let (addr, stop) = crate::serve::on_thread(shared.clone(), 4, handle);
        let port = addr.port();
        LambdaRouter {
            port,
            shared,
            stop: Some(stop),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where everything but invocations goes: moto's endpoint.
    pub fn forward_to(&self, backend: &str) {
        let _ = self
            .shared
            .backend
            .set(backend.trim_end_matches('/').to_string());
    }

    /// The invocations so far: (function, action).
    pub fn calls(&self) -> Vec<(String, String)> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for LambdaRouter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn json_reply(body: &Value, function_error: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("content-type", "application/json".parse().expect("ct"));
    h.insert(
        "x-amz-executed-version",
        "$LATEST".parse().expect("version"),
    );
    if function_error {
        h.insert("x-amz-function-error", "Unhandled".parse().expect("error"));
    }
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ("POST", ["2015-03-31", "functions", name, "invocations"]) =
        (parts.method.as_str(), segments.as_slice())
    {
        let name = percent_encoding::percent_decode_str(name)
            .decode_utf8_lossy()
            .into_owned();
        let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let action = payload["action"].as_str().unwrap_or("").to_string();
        shared
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.clone(), action));
        return Ok(match (shared.handler)(name, payload).await {
            Ok(v) => json_reply(&v, false),
            Err(e) => json_reply(&e, true),
        });
    }
    let Some(backend) = shared.backend.get() else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"no backend yet")));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(r);
    };
    crate::serve::forward(&shared.client, backend, &parts, body).await
}
