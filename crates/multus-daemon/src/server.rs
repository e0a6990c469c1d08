//! The daemon's HTTP API on its unix socket (spec §4.2): `/cni`, `/delegate`, `/healthz`,
//! `/readyz`. HTTP/1.1 without keep-alive, one request per connection, as the Go server.
//!
//! Connections are accepted only while a slot of `connectionLimit` is free, so excess shims
//! wait in the kernel backlog instead of piling up requests in memory.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};

/// Largest request body accepted (a CNI config plus environment is a few kilobytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A reply from a request handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: Vec<u8>) -> Self {
        let content_type = if body.is_empty() { None } else { Some("application/json") };
        Self { status: 200, content_type, body }
    }

    pub fn text(status: u16, msg: &str) -> Self {
        Self { status, content_type: Some("text/plain; charset=utf-8"), body: format!("{msg}\n").into_bytes() }
    }

    pub fn from_error_body(body: &multus_api::ErrorBody) -> Self {
        Self { status: 400, content_type: Some(body.content_type()), body: body.to_bytes() }
    }
}

/// What serves `/cni` and `/delegate`.
pub trait Api: Send + Sync + 'static {
    fn cni(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;
    fn delegate(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;
}

/// Readiness and in-flight accounting shared with the signal handler.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    in_flight: AtomicUsize,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// Re-create `dir` as an empty 0700 directory and bind `<dir>/multus.sock` with mode 0600.
///
/// Unlike the Go daemon this does not `rm -rf` the directory: only a stale socket file is
/// removed, so a mis-set `socketDir` cannot wipe unrelated files.
pub fn bind_socket(dir: &Path) -> std::io::Result<(UnixListener, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(multus_api::SOCKET_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, path))
}

/// Serve until `shutdown` turns true, then wait up to `grace` for requests in flight.
pub async fn serve(
    listener: UnixListener,
    api: Arc<dyn Api>,
    health: Arc<Health>,
    connection_limit: Option<usize>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(connection_limit.unwrap_or(Semaphore::MAX_PERMITS)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown_requested(&mut shutdown) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown_requested(&mut shutdown) => break,
        };
        let api = api.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                let health = health.clone();
                async move { Ok::<_, Infallible>(route(req, api.as_ref(), &health).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("connection error: {e}");
            }
        });
    }
    let deadline = tokio::time::Instant::now() + grace;
    while health.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST));
    if let Some(ct) = reply.content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_default()
}

async fn route(req: Request<Incoming>, api: &dyn Api, health: &Health) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let probe_method = method == Method::GET || method == Method::POST;
    let reply = match path.as_str() {
        multus_api::path::HEALTHZ if probe_method => Reply { status: 200, content_type: None, body: vec![] },
        multus_api::path::READYZ if probe_method => {
            if health.is_ready() {
                Reply { status: 200, content_type: Some("application/json"), body: vec![] }
            } else {
                Reply { status: 500, content_type: None, body: vec![] }
            }
        }
        multus_api::path::CNI | multus_api::path::DELEGATE if method == Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(e) => return response(Reply::text(400, &format!("failed to read request body: {e}"))),
            };
            health.in_flight.fetch_add(1, Ordering::SeqCst);
            let reply = if path == multus_api::path::CNI { api.cni(body).await } else { api.delegate(body).await };
            health.in_flight.fetch_sub(1, Ordering::SeqCst);
            reply
        }
        multus_api::path::HEALTHZ | multus_api::path::READYZ | multus_api::path::CNI | multus_api::path::DELEGATE => {
            Reply::text(405, "Method not allowed")
        }
        _ => {
            tracing::error!("http: unknown path {method} {path}");
            Reply { status: 404, content_type: None, body: vec![] }
        }
    };
    response(reply)
}

/// Resolves once shutdown was requested (the watch guard is dropped before returning, so the
/// future stays `Send`).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
