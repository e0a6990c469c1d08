//! What watches see: the change events the store records, the bounded history per resource
//! they resume from, and subscriptions (a snapshot or a replay, then live events).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{Store, StoreState};
use crate::resources::{Gvr, ResourceDef};
use crate::status::ApiError;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The watch event `type` string (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the history and fanned out to watches.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    /// Resource of the changed object.
    pub gvr: Gvr,
    /// What happened to it.
    pub event_type: EventType,
    /// The store's resourceVersion after the change.
    pub resource_version: u64,
    /// The object after the change (the last state for a deletion).
    pub object: Arc<Value>,
    /// The object before a modification, so watches with selectors can tell when an object
    /// starts or stops matching.
    pub previous: Option<Arc<Value>>,
}

/// The result of subscribing to changes: a consistent snapshot (when asked for) plus a receiver
/// that yields every change after `resource_version`.
pub struct Subscription {
    /// ResourceVersion the subscription starts after.
    pub resource_version: u64,
    /// Objects in the snapshot, when one was asked for.
    pub initial: Vec<Arc<Value>>,
    /// History events newer than the requested resourceVersion, to replay first.
    pub replay: Vec<Arc<StoreEvent>>,
    /// Live events after the snapshot or replay.
    pub receiver: broadcast::Receiver<Arc<StoreEvent>>,
    /// Resources that stopped being served (their CRD was deleted); sent after the DELETED
    /// events of their objects, so a watch of one ends once it has forwarded those.
    pub gone: broadcast::Receiver<Gvr>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Send the current state as ADDED events first ("" or "0").
    Snapshot,
    /// Send changes after this resourceVersion.
    After(u64),
}

impl Store {
    /// Keeps `object`'s change in the resource's history (dropping the oldest beyond
    /// `watch_history`) and sends it to every watch.
    pub(super) fn record(
        &self,
        state: &mut StoreState,
        gvr: &Gvr,
        event_type: EventType,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let event = Arc::new(StoreEvent {
            gvr: gvr.clone(),
            event_type,
            resource_version: state.resource_version,
            object,
            previous,
        });
        let history = state.history.entry(gvr.clone()).or_default();
        history.push_back(event.clone());
        if history.len() > self.inner.watch_history
            && let Some(dropped) = history.pop_front()
        {
            state.compacted.insert(gvr.clone(), dropped.resource_version);
        }
        // Sent under the lock so receivers see events in resourceVersion order; no receivers
        // is not an error.
        let _ = self.inner.events.send(event);
    }

    /// Subscribes to the changes of one resource. `Err` means the requested resourceVersion is
    /// older than the kept history (410 Expired).
    pub fn subscribe(&self, gvr: &Gvr, namespace: Option<&str>, start: WatchStart) -> Result<Subscription, ApiError> {
        let state = self.lock();
        let receiver = self.inner.events.subscribe();
        let gone = self.inner.gone.subscribe();
        match start {
            WatchStart::Snapshot => {
                let initial = match state.objects.get(gvr) {
                    None => Vec::new(),
                    Some(objects) => objects
                        .iter()
                        .filter(|((ns, _), _)| namespace.is_none_or(|wanted| wanted == ns))
                        .map(|(_, o)| o.clone())
                        .collect(),
                };
                Ok(Subscription {
                    resource_version: state.resource_version,
                    initial,
                    replay: Vec::new(),
                    receiver,
                    gone,
                })
            }
            WatchStart::After(rv) => {
                let compacted = state.compacted.get(gvr).copied().unwrap_or(0);
                if rv < compacted {
                    return Err(ApiError::expired(format!("too old resource version: {rv} ({compacted})")));
                }
                // A version this server never issued (a client resuming against a restarted
                // mock): 410 makes the client relist instead of waiting for events that never
                // come, or missing every change below `rv` that the new history will hold.
                if rv > state.resource_version {
                    return Err(ApiError::expired(format!(
                        "too new resource version: {rv} (current {})",
                        state.resource_version
                    )));
                }
                let replay = state
                    .history
                    .get(gvr)
                    .map(|h| h.iter().filter(|e| e.resource_version > rv).cloned().collect())
                    .unwrap_or_default();
                Ok(Subscription { resource_version: rv.max(compacted), initial: Vec::new(), replay, receiver, gone })
            }
        }
    }

    /// Forgets the watch history of a resource (all resources when None), so that watches
    /// resuming from an older resourceVersion get 410 Expired.
    pub fn compact(&self, gvr: Option<&Gvr>) {
        let mut state = self.lock();
        let rv = state.resource_version;
        let gvrs: Vec<Gvr> = match gvr {
            Some(g) => vec![g.clone()],
            None => self.inner.registry.all().iter().map(ResourceDef::gvr).collect(),
        };
        for gvr in gvrs {
            state.history.remove(&gvr);
            state.compacted.insert(gvr, rv);
        }
    }
}
