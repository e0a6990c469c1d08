//! The daemon's HTTP API on its unix socket (spec §4.2): `/cni`, `/delegate`, `/healthz`,
//! `/readyz`. HTTP/1.1 without keep-alive, one request per connection, as the Go server.
//! `POST /cni?ready` is refused with `503` while the daemon is not ready ([`READY_GATE_QUERY`]).
//!
//! Where the Go server has no limits (spec §4.1), this one bounds everything a client can hold:
//! - **time**: the request head must arrive within [`Limits::header_read_timeout`], the body
//!   within [`Limits::body_read_timeout`] (`408`), and a client must read its answer within
//!   [`Limits::response_write_timeout`]; an idle or half-sent request cannot keep a connection.
//! - **connections**: at most [`Limits::max_connections`] are open; when all are taken, the
//!   oldest one still waiting for its request head is closed to make room (a real client writes
//!   its request right after connecting), so a flood of idle connections delays the next real
//!   request by an accept or two, not by header timeouts. `connectionLimit` bounds the `/cni` and `/delegate` requests being *handled*, not
//!   connections: requests beyond it queue in memory until a slot frees (no refusals), and idle
//!   or slow clients never take a slot, so they cannot stop real requests (the Go daemon limits
//!   accepted connections, so four idle ones stop every CNI request of a node).
//! - **memory**: one body is at most [`Limits::max_body_bytes`] (`413`), and all bodies being
//!   read or handled at once share [`Limits::body_budget_bytes`]; a request that cannot get its
//!   share within the body timeout gets `503`. Headers are capped by a 16 KiB read buffer.
//! - **probes always get through**: when every connection slot is taken (a storm of CNI
//!   requests), up to [`PROBE_LANE_CONNECTIONS`] more are accepted in a probe lane with a short
//!   head timeout. `/healthz` and `/readyz` are answered there at once; a `/cni` or `/delegate`
//!   request that arrives in the lane waits for a regular slot (queued, never refused). So the
//!   shim's readiness polls and a starting daemon's socket check get answers however busy the
//!   daemon is.
//! - **the accept loop** backs off when accepting fails for lack of resources (`EMFILE`): the
//!   pending client waits in the backlog instead of the loop spinning and logging.
//!
//! A request, once read, is handled on its own task: a client that disconnects does not cancel
//! a DEL or an ADD half-way (there is nobody to answer, but the daemon finishes what it began).
//! The handler is told that its [`Caller`] went away (the connection closed before the answer
//! was ready: a killed shim, a runtime's timeout), so it can undo what nobody will use.
//!
//! Shutdown ([`serve`] after `shutdown` turns true) drains instead of stopping: `/readyz`
//! answers 500, `/cni` keeps being served while requests are in flight or connections open (at
//! most half the grace period), then the socket is unlinked (if it is still ours), the
//! connections already in the kernel's backlog are accepted and served, and `serve` returns
//! when they are done or the grace period is over.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

mod socket;
pub use socket::{BindError, SILENT_SOCKET_PATIENCE, SocketListener, bind_socket, owner_lock_path};

/// Largest request body accepted ([`multus_api::MAX_REQUEST_BYTES`], 1 MiB; why is explained
/// there). Larger bodies get `413 Payload Too Large`.
pub const MAX_BODY_BYTES: usize = multus_api::MAX_REQUEST_BYTES;

/// hyper's read buffer per connection, which also bounds the request head (`431` beyond).
/// Real heads are about 200 bytes.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Connections accepted beyond [`Limits::max_connections`] for probes (module docs).
pub const PROBE_LANE_CONNECTIONS: usize = 16;

/// The most a connection in the probe lane waits for its request head.
const PROBE_LANE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection is closed for being idle (no request head yet) only once it has been open this
/// long: a real client writes its request right after connecting, but its head may not have
/// been parsed in the microseconds since it was accepted.
const IDLE_BEFORE_EVICTION: Duration = Duration::from_millis(300);

/// How often a wait for a connection place looks for idle connections again.
const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// How often the drain checks whether the work is done.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The server's bounds. [`Limits::default`] is what the daemon runs with; tests shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `connectionLimit`: `/cni` and `/delegate` requests handled at once (`None`: no limit).
    pub connection_limit: Option<usize>,
    /// Connections open at once; more wait in the kernel's backlog. Raised to
    /// `connection_limit + 64` when that is larger, so probes always get through.
    pub max_connections: usize,
    /// Time from accepting a connection to the end of the request head.
    pub header_read_timeout: Duration,
    /// Time to receive the body once the head is in (including the wait for a budget share).
    pub body_read_timeout: Duration,
    /// Time for the client to take the answer once it is ready.
    pub response_write_timeout: Duration,
    /// Largest body of one request.
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once over all connections.
    pub body_budget_bytes: usize,
}

impl Default for Limits {
    /// The shim writes its whole request right after connecting, over a local socket, so 10 s
    /// for each phase only ever cuts off clients that stalled. 512 connections cover a
    /// 200-pod storm with room for probes, at about 8 KiB each while idle. A 16 MiB body
    /// budget is 16 maximal requests or thousands of real ones (a few KiB each).
    fn default() -> Self {
        Self {
            connection_limit: None,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            response_write_timeout: Duration::from_secs(10),
            max_body_bytes: MAX_BODY_BYTES,
            body_budget_bytes: 16 * 1024 * 1024,
        }
    }
}

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
pub struct Caller(watch::Receiver<bool>);

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
pub struct CallerGuard(Option<watch::Sender<bool>>);

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
    ready: AtomicBool,
    in_flight: AtomicUsize,
    open_connections: AtomicUsize,
    accept_errors: AtomicU64,
    body_bytes: AtomicUsize,
    peak_body_bytes: AtomicUsize,
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
    fn is_idle(&self) -> bool {
        self.in_flight() == 0 && self.open_connections() == 0
    }
}

/// Increments a counter of [`Health`] for as long as it lives.
struct Counted {
    health: Arc<Health>,
    which: fn(&Health) -> &AtomicUsize,
}

impl Counted {
    fn new(health: &Arc<Health>, which: fn(&Health) -> &AtomicUsize) -> Self {
        which(health).fetch_add(1, Ordering::SeqCst);
        Self { health: health.clone(), which }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.which)(&self.health).fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve with the default [`Limits`] and `connectionLimit`; see [`serve_with`].
pub async fn serve(
    listener: SocketListener,
    api: Arc<dyn Api>,
    health: Arc<Health>,
    connection_limit: Option<usize>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    serve_with(listener, api, health, Limits { connection_limit, ..Limits::default() }, shutdown, grace).await
}

/// Serve until `shutdown` turns true, then drain (module docs) for at most `grace`, remove the
/// socket if it is still ours, and return.
pub async fn serve_with(
    mut socket: SocketListener,
    api: Arc<dyn Api>,
    health: Arc<Health>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let Some(listener) = socket.listener.take() else { return };
    // Semaphore::new panics above MAX_PERMITS; a configured limit that large means "none".
    let permits = |n: usize| n.clamp(1, Semaphore::MAX_PERMITS);
    let max_connections = limits.max_connections.max(limits.connection_limit.map_or(0, |l| l.saturating_add(64)));
    let connections = Arc::new(Semaphore::new(permits(max_connections)));
    let shared = Arc::new(Shared {
        api,
        health: health.clone(),
        slots: limits.connection_limit.map(|l| Arc::new(Semaphore::new(permits(l)))),
        budget: Arc::new(Semaphore::new(limits.body_budget_bytes.min(Semaphore::MAX_PERMITS))),
        pending: PendingHeads::default(),
        limits,
        connections: connections.clone(),
        probe_lane: Arc::new(Semaphore::new(PROBE_LANE_CONNECTIONS)),
    });

    accept_loop(&listener, &shared, &connections, shutdown_requested(&mut shutdown)).await;

    health.set_ready(false);
    let started = tokio::time::Instant::now();
    let deadline = started + grace;
    // Keep serving new connections while there is work, for at most half the grace period.
    let idle = async {
        while !health.is_idle() {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    let _ = tokio::time::timeout_at(started + grace / 2, async {
        tokio::select! {
            _ = accept_loop(&listener, &shared, &connections, std::future::pending()) => {}
            _ = idle => {}
        }
    })
    .await;
    // No new clients from here: unlink the path, then take what is already queued.
    let removed = socket.remove_if_ours();
    let queued = drain_backlog(listener, &shared);
    tracing::info!(
        "shutting down: socket {}, {queued} queued connection(s) taken, {} request(s) in flight",
        if removed { "removed" } else { "left (not ours any more)" },
        health.in_flight()
    );
    while !health.is_idle() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    if !health.is_idle() {
        tracing::warn!(
            "shutdown grace of {grace:?} over with {} request(s) in flight and {} connection(s) open",
            health.in_flight(),
            health.open_connections()
        );
    }
}

/// Accept every connection already waiting in the kernel's backlog (the socket path is gone,
/// so no more can arrive) and serve each. Returns how many there were.
fn drain_backlog(listener: UnixListener, shared: &Arc<Shared>) -> usize {
    let Ok(listener) = listener.into_std() else { return 0 };
    if listener.set_nonblocking(true).is_err() {
        return 0;
    }
    let mut taken = 0;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let stream = stream.set_nonblocking(true).and_then(|()| UnixStream::from_std(stream));
                if let Ok(stream) = stream {
                    taken += 1;
                    spawn_connection(stream, None, Lane::Regular, shared.clone());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return taken,
        }
    }
}

/// What every connection task shares.
struct Shared {
    api: Arc<dyn Api>,
    health: Arc<Health>,
    limits: Limits,
    /// `connectionLimit` slots.
    slots: Option<Arc<Semaphore>>,
    /// Request-body bytes, one permit per byte.
    budget: Arc<Semaphore>,
    /// Connections still waiting for their request head, oldest first.
    pending: PendingHeads,
    /// Places among the open connections ([`Limits::max_connections`]).
    connections: Arc<Semaphore>,
    /// Places in the probe lane ([`PROBE_LANE_CONNECTIONS`]).
    probe_lane: Arc<Semaphore>,
}

/// Where an accepted connection holds its place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lane {
    /// One of [`Limits::max_connections`] (or none, for the backlog drained at shutdown).
    Regular,
    /// The probe lane: probes are served here, anything else first waits for a regular place.
    Probe,
}

/// One connection as the eviction sees it.
struct ConnState {
    /// The request head has been read (the connection is serving a request, not idle).
    head_read: AtomicBool,
    /// Close the connection if its head has not been read yet.
    evict: Notify,
    /// Its place among the open connections, held until it closes.
    place: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    /// Whether that place is in the probe lane.
    in_probe_lane: AtomicBool,
    /// When it was accepted.
    accepted: std::time::Instant,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            head_read: AtomicBool::default(),
            evict: Notify::default(),
            place: std::sync::Mutex::default(),
            in_probe_lane: AtomicBool::default(),
            accepted: std::time::Instant::now(),
        }
    }
}

/// Connections that have not sent their request head yet, oldest first. When every connection
/// slot is taken, the oldest of them is closed to make room: a real client writes its request
/// right after connecting, so a connection still silent after hundreds of newer ones were
/// accepted is idle or stalled, and the client behind it in the backlog must not wait for its
/// header timeout (2,000 idle connections would otherwise delay a DEL by 4 × 10 s).
#[derive(Default)]
struct PendingHeads(std::sync::Mutex<std::collections::VecDeque<std::sync::Weak<ConnState>>>);

impl PendingHeads {
    fn push(&self, conn: &Arc<ConnState>, cap: usize) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= cap.saturating_mul(2).max(64) {
            queue.retain(|w| w.upgrade().is_some_and(|c| !c.head_read.load(Ordering::SeqCst)));
        }
        queue.push_back(Arc::downgrade(conn));
    }

    /// Close the oldest connection still waiting for its head; false if there is none.
    fn evict_oldest(&self) -> bool {
        self.evict_oldest_where(|_| true)
    }

    /// Close the oldest connection still waiting for its head that holds a regular place.
    fn evict_oldest_regular(&self) -> bool {
        self.evict_oldest_where(|c| !c.in_probe_lane.load(Ordering::SeqCst))
    }

    fn evict_oldest_where(&self, which: impl Fn(&ConnState) -> bool) -> bool {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = std::collections::VecDeque::new();
        let mut evicted = false;
        while let Some(weak) = queue.pop_front() {
            let Some(conn) = weak.upgrade() else { continue };
            if conn.head_read.load(Ordering::SeqCst) {
                continue;
            }
            if which(&conn) && conn.accepted.elapsed() >= IDLE_BEFORE_EVICTION {
                conn.evict.notify_one();
                evicted = true;
                break;
            }
            kept.push_back(weak);
        }
        // Those skipped stay first in line, in their order.
        kept.append(&mut queue);
        *queue = kept;
        evicted
    }
}

/// Something connections are accepted from: the socket, or a test's scripted failures.
trait Acceptor {
    fn accept_stream(&self) -> impl Future<Output = io::Result<UnixStream>> + Send + '_;
}

impl Acceptor for UnixListener {
    async fn accept_stream(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Accept connections (each holding one of `connections`) until `stop` resolves.
async fn accept_loop<A: Acceptor>(
    acceptor: &A,
    shared: &Arc<Shared>,
    connections: &Arc<Semaphore>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut backoff = AcceptBackoff::default();
    loop {
        let free = connections.clone().try_acquire_owned().map(|p| (p, Lane::Regular)).or_else(|_| {
            // Every regular place is taken: keep probes answerable (module docs).
            shared.probe_lane.clone().try_acquire_owned().map(|p| (p, Lane::Probe))
        });
        let (permit, lane) = match free {
            Ok(place) => place,
            Err(_) => loop {
                if shared.pending.evict_oldest() {
                    tracing::debug!("all connections taken: closed the oldest one still waiting for its request");
                }
                tokio::select! {
                    biased;
                    _ = &mut stop => return,
                    p = connections.clone().acquire_owned() => match p {
                        Ok(p) => break (p, Lane::Regular),
                        Err(_) => return,
                    },
                    p = shared.probe_lane.clone().acquire_owned() => match p {
                        Ok(p) => break (p, Lane::Probe),
                        Err(_) => return,
                    },
                    // Idle connections too young to close may be old enough now.
                    () = tokio::time::sleep(EVICTION_RETRY) => {}
                }
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => return,
            a = acceptor.accept_stream() => a,
        };
        match accepted {
            Ok(stream) => {
                backoff.succeeded();
                spawn_connection(stream, Some(permit), lane, shared.clone());
            }
            Err(e) => {
                drop(permit);
                shared.health.accept_errors.fetch_add(1, Ordering::SeqCst);
                let pause = backoff.failed(&e);
                if !pause.is_zero() {
                    tokio::select! {
                        biased;
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

/// The pause after a failed `accept`. Running out of descriptors or memory leaves the client
/// in the backlog and the listener readable, so retrying at once would spin: pause 10 ms,
/// doubling up to 1 s, and log the first failure of a run and the recovery, not each one.
#[derive(Default)]
struct AcceptBackoff {
    failures: u64,
    pause: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    fn failed(&mut self, e: &io::Error) -> Duration {
        // A client that gave up before being accepted: nothing is wrong with the listener.
        if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) {
            tracing::debug!("accept: {e}");
            return Duration::ZERO;
        }
        if self.failures == 0 {
            tracing::warn!("accepting connections failed: {e}; retrying with backoff (up to {:?})", Self::MAX);
        }
        self.failures += 1;
        self.pause = if self.pause.is_zero() { Self::FIRST } else { (self.pause * 2).min(Self::MAX) };
        self.pause
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!("accepting connections again after {} failed attempt(s)", self.failures);
        }
        *self = Self::default();
    }
}

/// Serve one connection on its own task. `permit` is its place among the open connections
/// in `lane` (`None` for connections taken from the backlog during shutdown).
fn spawn_connection(stream: UnixStream, permit: Option<OwnedSemaphorePermit>, lane: Lane, shared: Arc<Shared>) {
    let open = Counted::new(&shared.health, |h| &h.open_connections);
    let state = Arc::new(ConnState {
        place: std::sync::Mutex::new(permit),
        in_probe_lane: AtomicBool::new(lane == Lane::Probe),
        ..ConnState::default()
    });
    shared.pending.push(&state, shared.limits.max_connections);
    tokio::spawn(async move {
        let _open = open;
        let answered = Arc::new(Notify::new());
        let service = {
            let (shared, answered, state) = (shared.clone(), answered.clone(), state.clone());
            hyper::service::service_fn(move |req| {
                state.head_read.store(true, Ordering::SeqCst);
                let (shared, answered, state) = (shared.clone(), answered.clone(), state.clone());
                async move {
                    if lane == Lane::Probe && !is_probe(&req) {
                        // Out of the probe lane before the body is read: wait for a regular place.
                        let regular = regular_place(&shared).await;
                        *state.place.lock().unwrap_or_else(|p| p.into_inner()) = regular;
                        state.in_probe_lane.store(false, Ordering::SeqCst);
                    }
                    let response = route(req, &shared).await;
                    answered.notify_one();
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let head_timeout = match lane {
            Lane::Regular => shared.limits.header_read_timeout,
            Lane::Probe => shared.limits.header_read_timeout.min(PROBE_LANE_HEAD_TIMEOUT),
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .timer(TokioTimer::new())
            .header_read_timeout(head_timeout)
            .max_buf_size(READ_BUFFER_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let write_timeout = shared.limits.response_write_timeout;
        let answer_not_taken = async {
            answered.notified().await;
            tokio::time::sleep(write_timeout).await
        };
        tokio::pin!(answer_not_taken);
        loop {
            tokio::select! {
                done = &mut conn => {
                    if let Err(e) = done {
                        tracing::debug!("connection error: {e}");
                    }
                    return;
                }
                _ = &mut answer_not_taken => {
                    tracing::debug!("closing a connection whose client did not take its answer within {write_timeout:?}");
                    return;
                }
                _ = state.evict.notified() => {
                    if !state.head_read.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    });
}

fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST));
    if let Some(ct) = reply.content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_default()
}

/// A regular place for a request that arrived in the probe lane. Idle connections holding
/// regular places are closed to make room, oldest first, as the accept loop does for newcomers.
async fn regular_place(shared: &Shared) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(place) = shared.connections.clone().try_acquire_owned() {
            return Some(place);
        }
        shared.pending.evict_oldest_regular();
        // An evicted connection gives its place back as its task ends; young idle ones may be
        // evicted on a later round.
        match tokio::time::timeout(EVICTION_RETRY, shared.connections.clone().acquire_owned()).await {
            Ok(place) => return place.ok(),
            Err(_) => continue,
        }
    }
}

/// `/healthz` or `/readyz`: answered without a body, on any connection.
fn is_probe<B>(req: &Request<B>) -> bool {
    matches!(req.uri().path(), multus_api::path::HEALTHZ | multus_api::path::READYZ)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Cni,
    Delegate,
}

async fn route(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let probe_method = method == Method::GET || method == Method::POST;
    let reply = match path.as_str() {
        multus_api::path::HEALTHZ if probe_method => Reply { status: 200, content_type: None, body: vec![] },
        multus_api::path::READYZ if probe_method => {
            if shared.health.is_ready() {
                Reply { status: 200, content_type: Some("application/json"), body: vec![] }
            } else {
                Reply { status: 500, content_type: None, body: vec![] }
            }
        }
        multus_api::path::CNI if method == Method::POST && !shared.health.is_ready() && asks_ready_gate(&req) => {
            Reply::text(503, "the daemon is not ready (starting or shutting down); wait for /readyz and send again")
        }
        multus_api::path::CNI if method == Method::POST => handle(req, Endpoint::Cni, shared).await,
        multus_api::path::DELEGATE if method == Method::POST => handle(req, Endpoint::Delegate, shared).await,
        multus_api::path::HEALTHZ | multus_api::path::READYZ | multus_api::path::CNI | multus_api::path::DELEGATE => {
            Reply::text(405, "Method not allowed")
        }
        _ => {
            tracing::error!("http: unknown path {method} {path}");
            Reply { status: 404, content_type: None, body: vec![] }
        }
    };
    let handler = match path.as_str() {
        p @ (multus_api::path::HEALTHZ
        | multus_api::path::READYZ
        | multus_api::path::CNI
        | multus_api::path::DELEGATE) => p,
        _ => "NotFound",
    };
    shared.api.observe(handler, reply.status, method.as_str());
    response(reply)
}

/// The query of a gated request (`POST /cni?ready`, sent by multus-shim): run it only when
/// ready, else answer `503` at once without reading the body. It saves the shim a `/readyz`
/// round trip per command; a request without it (the Go shim) is served as before.
pub const READY_GATE_QUERY: &str = "ready";

fn asks_ready_gate<B>(req: &Request<B>) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(READY_GATE_QUERY)))
}

/// A share of the body budget, returned when dropped.
struct Reservation {
    permit: OwnedSemaphorePermit,
    health: Arc<Health>,
}

impl Reservation {
    fn new(permit: OwnedSemaphorePermit, health: &Arc<Health>) -> Self {
        let now = health.body_bytes.fetch_add(permit.num_permits(), Ordering::SeqCst) + permit.num_permits();
        health.peak_body_bytes.fetch_max(now, Ordering::SeqCst);
        Self { permit, health: health.clone() }
    }

    /// Give back everything above `bytes`.
    fn shrink_to(&mut self, bytes: usize) {
        let excess = self.permit.num_permits().saturating_sub(bytes);
        if let Some(returned) = self.permit.split(excess) {
            self.health.body_bytes.fetch_sub(returned.num_permits(), Ordering::SeqCst);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.health.body_bytes.fetch_sub(self.permit.num_permits(), Ordering::SeqCst);
    }
}

/// Read a `/cni` or `/delegate` body within the limits and hand it to the [`Api`] on a task of
/// its own.
async fn handle(req: Request<Incoming>, endpoint: Endpoint, shared: &Arc<Shared>) -> Reply {
    let in_flight = Counted::new(&shared.health, |h| &h.in_flight);
    let limits = &shared.limits;
    let max = limits.max_body_bytes;
    let too_large =
        |size: String| Reply::text(413, &format!("request body too large: {size}, the limit is {max} bytes"));
    let declared = req.body().size_hint().exact();
    if let Some(len) = declared
        && len > max as u64
    {
        return too_large(format!("{len} bytes"));
    }
    // A body of unknown length (chunked) reserves the maximum, then gives back the rest.
    let wanted = declared.map_or(max, |len| len as usize).min(limits.body_budget_bytes).min(u32::MAX as usize);
    let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
    let permit = match tokio::time::timeout_at(deadline, shared.budget.clone().acquire_many_owned(wanted as u32)).await
    {
        Ok(Ok(permit)) => permit,
        _ => {
            return Reply::text(
                503,
                &format!(
                    "the daemon is holding too many request bodies ({} bytes) to take {wanted} more within {:?}; try again",
                    shared.health.body_bytes().0,
                    limits.body_read_timeout
                ),
            );
        }
    };
    let mut reservation = Reservation::new(permit, &shared.health);
    let body = match tokio::time::timeout_at(deadline, Limited::new(req.into_body(), max).collect()).await {
        Ok(Ok(collected)) => Vec::from(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(format!("more than {max} bytes"));
        }
        Ok(Err(e)) => return Reply::text(400, &format!("failed to read request body: {e}")),
        Err(_) => {
            return Reply::text(408, &format!("request body not received within {:?}", limits.body_read_timeout));
        }
    };
    reservation.shrink_to(body.len());
    // Dropped with this future when the client's connection closes before the answer.
    let (caller, guard) = Caller::pair();
    let task = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let _reservation = reservation;
            let _slot = match &shared.slots {
                Some(slots) => slots.clone().acquire_owned().await.ok(),
                None => None,
            };
            match endpoint {
                Endpoint::Cni => shared.api.cni(body, caller).await,
                Endpoint::Delegate => shared.api.delegate(body, caller).await,
            }
        })
    };
    let handled = task.await;
    guard.answered();
    match handled {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!("the request handler failed: {e}");
            Reply::text(500, "internal error: the request handler failed")
        }
    }
}

/// Resolves once shutdown was requested (the watch guard is dropped before returning, so the
/// future stays `Send`).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests;
