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

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

mod accept;
mod api;
mod limits;
mod routing;
mod shared;
mod socket;

use accept::{accept_loop, drain_backlog};
pub use api::{Api, Caller, CallerGuard, Health, Reply};
use limits::DRAIN_POLL;
pub use limits::{Limits, MAX_BODY_BYTES, PROBE_LANE_CONNECTIONS};
pub use routing::READY_GATE_QUERY;
use shared::{PendingHeads, Shared};
pub use socket::{BindError, SILENT_SOCKET_PATIENCE, SocketListener, bind_socket, owner_lock_path};

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

/// Resolves once shutdown was requested (the watch guard is dropped before returning, so the
/// future stays `Send`).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests;
