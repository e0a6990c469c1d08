//! Accepting connections: the connection and probe lanes, eviction of idle ones, backoff.

use super::api::*;
use super::limits::*;
use super::routing::*;
use super::shared::*;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Accept every connection already waiting in the kernel's backlog (the socket path is gone,
/// so no more can arrive) and serve each. Returns how many there were.
pub(super) fn drain_backlog(listener: UnixListener, shared: &Arc<Shared>) -> usize {
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

/// Something connections are accepted from: the socket, or a test's scripted failures.
pub(super) trait Acceptor {
    fn accept_stream(&self) -> impl Future<Output = io::Result<UnixStream>> + Send + '_;
}

impl Acceptor for UnixListener {
    async fn accept_stream(&self) -> io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Accept connections (each holding one of `connections`) until `stop` resolves.
pub(super) async fn accept_loop<A: Acceptor>(
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
pub(super) struct AcceptBackoff {
    pub(super) failures: u64,
    pub(super) pause: Duration,
}

impl AcceptBackoff {
    pub(super) const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub(super) fn failed(&mut self, e: &io::Error) -> Duration {
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

    pub(super) fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!("accepting connections again after {} failed attempt(s)", self.failures);
        }
        *self = Self::default();
    }
}

/// Serve one connection on its own task. `permit` is its place among the open connections
/// in `lane` (`None` for connections taken from the backlog during shutdown).
pub(super) fn spawn_connection(
    stream: UnixStream,
    permit: Option<OwnedSemaphorePermit>,
    lane: Lane,
    shared: Arc<Shared>,
) {
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
