//! A proxy that records every request it passes on to an emulator, in the order they arrived,
//! and can refuse chosen ones as the service would on a fault: for tests of the order of calls
//! (a mapping's twin before any function runs again) and of what a failed lookup leads to.
//!
//! Lambda's API is REST: the operation is the method and the path
//! (<https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html>), e.g.
//! `PUT /2017-10-31/functions/NAME/concurrency` for PutFunctionConcurrency. DynamoDB's is JSON
//! with the operation in `X-Amz-Target`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::iam::{self, Authorization, Call, Lookup};

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
    /// What IAM would evaluate for each request, in order.
    authorizations: Mutex<Vec<Authorization>>,
    /// Tables' partition key attributes, as DescribeTable gave them.
    hash_keys: Mutex<BTreeMap<String, String>>,
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
            authorizations: Mutex::default(),
            hash_keys: Mutex::default(),
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

    /// Every authorization AWS would have made for the requests so far (see [`crate::iam`]).
    pub fn authorizations(&self) -> Vec<Authorization> {
        self.shared
            .authorizations
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
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let recorded = Recorded {
        at: Instant::now(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        target: target.clone(),
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
    let mut call = Call {
        service: parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(iam::service_of)
            .unwrap_or_default(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        target,
        body: body.clone(),
        ..Call::default()
    };
    look_up(&shared, &mut call).await;
    let answer = crate::serve::forward(&shared.client, &shared.backend, &parts, body).await?;
    let (head, answer) = answer.into_parts();
    let answer = answer.collect().await?.to_bytes();
    call.response = answer.clone();
    shared
        .authorizations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(iam::authorizations(&call));
    Ok(Response::from_parts(head, Full::new(answer)))
}

/// Asks the backend what the request's context needs: the partition key of its tables, the
/// tags of the resource, the function of a mapping.
async fn look_up(shared: &Shared, call: &mut Call) {
    match iam::lookup(call) {
        Lookup::HashKeys(tables) => {
            for table in tables {
                let known = shared
                    .hash_keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&table)
                    .cloned();
                let hash = match known {
                    Some(h) => Some(h),
                    None => hash_key(shared, &table).await,
                };
                if let Some(h) = hash {
                    shared
                        .hash_keys
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(table.clone(), h.clone());
                    call.hash_keys.insert(table, h);
                }
            }
        }
        Lookup::TableTags(arn) => {
            let body = serde_json::json!({ "ResourceArn": arn }).to_string();
            let tags = ask(
                shared,
                "POST",
                "/",
                "dynamodb",
                Some("ListTagsOfResource"),
                body,
            )
            .await;
            call.resource_tags = Some(
                tags["Tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| Some((t["Key"].as_str()?.into(), t["Value"].as_str()?.into())))
                    .collect(),
            );
        }
        Lookup::Mapping(uuid) => {
            let path = format!("/2015-03-31/event-source-mappings/{uuid}");
            let m = ask(shared, "GET", &path, "lambda", None, String::new()).await;
            call.mapping_function = m["FunctionArn"].as_str().map(str::to_string);
        }
        Lookup::FunctionTags(arn) => {
            let path = format!("/2017-03-31/tags/{}", arn.replace(':', "%3A"));
            let t = ask(shared, "GET", &path, "lambda", None, String::new()).await;
            call.resource_tags = t["Tags"].as_object().map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            });
        }
        Lookup::None => {}
    }
}

async fn hash_key(shared: &Shared, table: &str) -> Option<String> {
    let body = serde_json::json!({ "TableName": table }).to_string();
    let d = ask(shared, "POST", "/", "dynamodb", Some("DescribeTable"), body).await;
    d["Table"]["KeySchema"]
        .as_array()?
        .iter()
        .find(|k| k["KeyType"] == "HASH")
        .and_then(|k| k["AttributeName"].as_str())
        .map(str::to_string)
}

/// One unrecorded request to the backend, signed just enough for routing; its JSON answer.
async fn ask(
    shared: &Shared,
    method: &str,
    path: &str,
    service: &str,
    target: Option<&str>,
    body: String,
) -> serde_json::Value {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", shared.backend))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/{}/{service}/aws4_request, \
                 SignedHeaders=host, Signature=0",
                crate::emulator::REGION
            ),
        );
    if let Some(op) = target {
        req = req
            .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
            .header("content-type", "application/x-amz-json-1.0");
    }
    let Ok(req) = req.body(Full::new(Bytes::from(body))) else {
        return serde_json::Value::Null;
    };
    let Ok(answer) = shared.client.request(req).await else {
        return serde_json::Value::Null;
    };
    match answer.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}
