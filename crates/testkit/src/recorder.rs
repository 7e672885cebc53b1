//! A proxy that records every request it passes on to an emulator, in the order they arrived,
//! and can refuse chosen ones as the service would on a fault: for tests of the order of calls
//! (a mapping's twin before any function runs again) and of what a failed lookup leads to.
//!
//! Lambda's API is REST: the operation is the method and the path
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html>), e.g.
//! `PUT /2017-10-31/functions/NAME/concurrency` for PutFunctionConcurrency. DynamoDB's is JSON
//! with the operation in `X-Amz-Target`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// `X-Amz-Target`, for JSON protocols.
    pub target: Option<String>,
    /// The body as text (its first 4 KB): which item a PutItem writes, say.
    pub body: String,
}

impl Recorded {
    /// `METHOD path` or the target: what a test matches on.
    pub fn call(&self) -> String {
        match &self.target {
            Some(t) => t.clone(),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

struct Shared {
    backend: String,
    client: Client<HttpConnector, Full<Bytes>>,
    log: Mutex<Vec<Recorded>>,
    /// Calls (as [`Recorded::call`] starts) answered with a 500 ServiceException.
    refuse: Mutex<Vec<String>>,
}

pub struct RecordingProxy {
    url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RecordingProxy {
    /// Passes everything on to `backend` (e.g. moto's endpoint).
    pub fn start(backend: &str) -> RecordingProxy {
        let shared = Arc::new(Shared {
            backend: backend.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            log: Mutex::default(),
            refuse: Mutex::default(),
        });
        let (addr, stop) = crate::serve::on_thread(shared.clone(), 2, handle);
        RecordingProxy {
            url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, in the order they arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// From now on, calls starting with `call` (e.g. `GET /2015-03-31/event-source-mappings`)
    /// get a 500 ServiceException, as Lambda answers an internal failure.
    pub fn refuse(&self, call: &str) {
        self.shared
            .refuse
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call.to_string());
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let recorded = Recorded {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        target: parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
    };
    let call = recorded.call();
    shared
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(recorded);
    let refused = shared
        .refuse
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|r| call.starts_with(r.as_str()));
    if refused {
        let mut r = Response::new(Full::new(Bytes::from(
            r#"{"Type":"Service","message":"injected by the test"}"#,
        )));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        r.headers_mut()
            .insert("x-amzn-errortype", "ServiceException".parse()?);
        r.headers_mut()
            .insert("content-type", "application/json".parse()?);
        return Ok(r);
    }
    crate::serve::forward(&shared.client, &shared.backend, &parts, body).await
}
