//! One request: which endpoint, the ready gate, the body budget and `connectionLimit` slots.

use super::api::*;
use super::limits::*;
use super::shared::*;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::OwnedSemaphorePermit;

pub(super) fn response(reply: Reply) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST));
    if let Some(ct) = reply.content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    builder.body(Full::new(Bytes::from(reply.body))).unwrap_or_default()
}

/// A regular place for a request that arrived in the probe lane. Idle connections holding
/// regular places are closed to make room, oldest first, as the accept loop does for newcomers.
pub(super) async fn regular_place(shared: &Shared) -> Option<OwnedSemaphorePermit> {
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
pub(super) fn is_probe<B>(req: &Request<B>) -> bool {
    matches!(req.uri().path(), multus_api::path::HEALTHZ | multus_api::path::READYZ)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Cni,
    Delegate,
}

pub(super) async fn route(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
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

pub(super) fn asks_ready_gate<B>(req: &Request<B>) -> bool {
    req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some(READY_GATE_QUERY)))
}

/// A share of the body budget, returned when dropped.
pub(super) struct Reservation {
    pub(super) permit: OwnedSemaphorePermit,
    pub(super) health: Arc<Health>,
}

impl Reservation {
    pub(super) fn new(permit: OwnedSemaphorePermit, health: &Arc<Health>) -> Self {
        let now = health.body_bytes.fetch_add(permit.num_permits(), Ordering::SeqCst) + permit.num_permits();
        health.peak_body_bytes.fetch_max(now, Ordering::SeqCst);
        Self { permit, health: health.clone() }
    }

    /// Give back everything above `bytes`.
    pub(super) fn shrink_to(&mut self, bytes: usize) {
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
pub(super) async fn handle(req: Request<Incoming>, endpoint: Endpoint, shared: &Arc<Shared>) -> Reply {
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
