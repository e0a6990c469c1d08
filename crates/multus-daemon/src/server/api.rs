//! What the server hands a request handler, and what it knows of its own health.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::watch;

/// A reply from a request handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header; `None` sends none.
    pub content_type: Option<&'static str>,
    /// The response body, sent as is.
    pub body: Vec<u8>,
}

impl Reply {
    /// `200` with a JSON body (a CNI result), or with no body and no content type when empty.
    pub fn ok(body: Vec<u8>) -> Self {
        let content_type = if body.is_empty() { None } else { Some("application/json") };
        Self { status: 200, content_type, body }
    }

    /// A plain-text answer with a trailing newline, as the Go server writes its errors.
    pub fn text(status: u16, msg: &str) -> Self {
        Self { status, content_type: Some("text/plain; charset=utf-8"), body: format!("{msg}\n").into_bytes() }
    }

    /// `400` with an [`multus_api::ErrorBody`]: a CNI error object whose code the shim passes
    /// on to the runtime, or a message.
    pub fn from_error_body(body: &multus_api::ErrorBody) -> Self {
        Self { status: 400, content_type: Some(body.content_type()), body: body.to_bytes() }
    }
}

/// Whether the client that sent a request is still waiting for its answer.
///
/// The server keeps handling a request whose client went away (see the module docs); this
/// tells the handler that it happened, and when.
#[derive(Debug, Clone)]
pub struct Caller(pub(super) watch::Receiver<bool>);

impl Caller {
    /// A caller that never goes away (in-process callers, tests).
    pub fn detached() -> Self {
        Self(watch::channel(false).1)
    }

    /// A caller and the guard that says it went away when dropped before [`CallerGuard::answered`].
    pub fn pair() -> (Self, CallerGuard) {
        let (tx, rx) = watch::channel(false);
        (Self(rx), CallerGuard(Some(tx)))
    }

    /// The client's connection closed before the answer was ready.
    pub fn is_gone(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the client goes away; never, once it has been answered.
    pub async fn gone(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|gone| *gone).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Held by the server while it waits for a handler's answer; dropped unanswered (the
/// connection closed and hyper dropped the request's future), it marks the [`Caller`] gone.
#[derive(Debug)]
pub struct CallerGuard(pub(super) Option<watch::Sender<bool>>);

impl CallerGuard {
    /// The answer is ready and being written: the caller did not go away while it waited.
    pub fn answered(mut self) {
        self.0.take();
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            tx.send_replace(true);
        }
    }
}

/// What serves `/cni` and `/delegate`.
pub trait Api: Send + Sync + 'static {
    /// Answer a `POST /cni` body (the shim's CNI call). `caller` says whether the client is
    /// still there.
    fn cni(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;
    /// Answer a `POST /delegate` body (one delegate for a pod, on a client's behalf).
    fn delegate(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>>;

    /// Every answered request (Go's `multus_server_request_total`): `handler` is the path for
    /// the four known ones, `NotFound` otherwise.
    fn observe(&self, _handler: &str, _status: u16, _method: &str) {}
}

/// Readiness and the server's counters, shared with `main` and the tests.
#[derive(Default)]
pub struct Health {
    pub(super) ready: AtomicBool,
    pub(super) in_flight: AtomicUsize,
    pub(super) open_connections: AtomicUsize,
    pub(super) accept_errors: AtomicU64,
    pub(super) body_bytes: AtomicUsize,
    pub(super) peak_body_bytes: AtomicUsize,
}

impl Health {
    /// Set what `/readyz` answers: `main` sets it once the caches synced (or their wait ran out)
    /// and clears it when the drain starts.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    /// Whether `/readyz` answers 200 (and `/cni?ready` requests are served, not refused with 503).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
    /// `/cni` and `/delegate` requests from the end of their head to their answer (being read,
    /// queued for a `connectionLimit` slot, or handled).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::SeqCst)
    }
    /// Failed `accept` calls since start.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::SeqCst)
    }
    /// Request-body bytes reserved now, and the most ever reserved at once.
    pub fn body_bytes(&self) -> (usize, usize) {
        (self.body_bytes.load(Ordering::SeqCst), self.peak_body_bytes.load(Ordering::SeqCst))
    }
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight() == 0 && self.open_connections() == 0
    }
}

/// Increments a counter of [`Health`] for as long as it lives.
pub(super) struct Counted {
    pub(super) health: Arc<Health>,
    pub(super) which: fn(&Health) -> &AtomicUsize,
}

impl Counted {
    pub(super) fn new(health: &Arc<Health>, which: fn(&Health) -> &AtomicUsize) -> Self {
        which(health).fetch_add(1, Ordering::SeqCst);
        Self { health: health.clone(), which }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.which)(&self.health).fetch_sub(1, Ordering::SeqCst);
    }
}
