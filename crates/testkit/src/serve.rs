//! The HTTP servers of the testkit (the fault proxy, the Lambda router, the Runtime API): each on
//! a free loopback port, on a thread with its own runtime, so a test's runtime never starves it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;

/// Serves `handle` until the returned sender fires or is dropped.
pub(crate) fn on_thread<S, F, Fut, E>(
    shared: Arc<S>,
    workers: usize,
    handle: F,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>)
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    let listener = crate::emulator::loopback_listener();
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let serve = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let svc =
                            hyper::service::service_fn(move |req| handle(shared.clone(), req));
                        // An error here is a reset the proxy injected, or a client giving up.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            };
            tokio::select! {
                _ = stopped => {}
                () = serve => {}
            }
        });
    });
    (addr, stop)
}

/// Sends a request on to `backend` as it came, and its answer back whole.
pub(crate) async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    backend: &str,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Box<dyn std::error::Error + Send + Sync>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{backend}{path}"));
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST && k != hyper::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let answer = client.request(out.body(Full::new(body))?).await?;
    let (mut parts, body) = answer.into_parts();
    let body = body.collect().await?.to_bytes();
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    Ok(Response::from_parts(parts, Full::new(body)))
}
