//! Watch streams: initial events, history replay, live events filtered by selectors,
//! bookmarks, expiry and timeouts, written as newline-delimited JSON watch events.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::discovery::table;
use crate::faults::{RequestFacts, WatchControl};
use crate::request::{Output, ResourceRequest};
use crate::status::ApiError;
use crate::store::{EventType, Store, StoreEvent, WatchStart};

/// The real server ends watches after a randomised 30–60 minutes when no timeout is asked for.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Where a watch starts, from its `resourceVersion` and `sendInitialEvents` parameters.
pub fn watch_start(req: &ResourceRequest) -> Result<WatchStart, ApiError> {
    match req.options.resource_version.as_deref() {
        _ if req.options.send_initial_events => Ok(WatchStart::Snapshot),
        None | Some("") | Some("0") => Ok(WatchStart::Snapshot),
        Some(rv) => rv
            .parse::<u64>()
            .map(WatchStart::After)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}"))),
    }
}

fn line(event_type: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": event_type, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

struct WatchWriter {
    req: ResourceRequest,
    tx: mpsc::Sender<Bytes>,
}

impl WatchWriter {
    fn visible(&self, object: &Value) -> bool {
        let namespace_ok =
            self.req.namespace.as_deref().is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
        namespace_ok
            && self.req.options.label_selector.matches(object)
            && self.req.options.field_selector.matches(object)
    }

    /// Sends one object event; false when the client has gone.
    async fn send(&self, event_type: &str, object: &Value) -> bool {
        let payload = match self.req.output {
            Output::Table => {
                let rv = object["metadata"]["resourceVersion"].clone();
                table(&self.req.def, [object], json!({"resourceVersion": rv}), self.req.include_object)
            }
            Output::PartialObjectMetadata(version) | Output::PartialObjectMetadataList(version) => {
                crate::api::partial_object_metadata(object, version)
            }
            Output::Object => object.clone(),
        };
        self.tx.send(line(event_type, &payload)).await.is_ok()
    }

    /// Translates a store event for this watcher: objects that start matching its selectors
    /// appear as ADDED, objects that stop matching as DELETED, as the real server does.
    async fn forward(&self, event: &StoreEvent) -> bool {
        if event.gvr != self.req.def.gvr() {
            return true;
        }
        let now = self.visible(&event.object);
        let before = event.previous.as_ref().map(|p| self.visible(p));
        let event_type = match (event.event_type, before, now) {
            (EventType::Added, _, true) => "ADDED",
            (EventType::Modified, Some(true), true) => "MODIFIED",
            (EventType::Modified, Some(false) | None, true) => "ADDED",
            (EventType::Modified, Some(true), false) => "DELETED",
            (EventType::Deleted, _, true) => "DELETED",
            _ => return true,
        };
        self.send(event_type, &event.object).await
    }

    async fn bookmark(&self, resource_version: u64, initial_events_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": resource_version.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (kind, api_version) = match self.req.output {
            Output::PartialObjectMetadata(version) | Output::PartialObjectMetadataList(version) => {
                ("PartialObjectMetadata".to_string(), version.api_version().to_string())
            }
            _ => (self.req.def.kind.clone(), self.req.def.api_version()),
        };
        let object = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata});
        self.tx.send(line("BOOKMARK", &object)).await.is_ok()
    }

    async fn expired(&self, message: String) {
        let _ = self.tx.send(line("ERROR", &ApiError::expired(message).to_status())).await;
    }
}

/// Starts a watch and returns the receiving end of its byte stream. Errors in the request
/// itself (a malformed resourceVersion) are returned; an expired resourceVersion becomes an
/// ERROR event in the stream, the way the real server reports it.
pub fn start_watch(
    store: Store,
    mut control: broadcast::Receiver<WatchControl>,
    req: ResourceRequest,
    facts: RequestFacts,
    bookmark_interval: Duration,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let start = watch_start(&req)?;
    let (tx, rx) = mpsc::channel(256);
    let subscription = store.subscribe(&req.def.gvr(), req.namespace.as_deref(), start);
    let timeout = req.options.timeout_seconds.map(Duration::from_secs).unwrap_or(DEFAULT_WATCH_TIMEOUT);
    tokio::spawn(async move {
        let writer = WatchWriter { req, tx };
        let mut subscription = match subscription {
            Ok(s) => s,
            Err(err) => {
                writer.expired(err.message).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        for object in &subscription.initial {
            if writer.visible(object) && !writer.send("ADDED", object).await {
                return;
            }
        }
        let options = &writer.req.options;
        if options.send_initial_events && !writer.bookmark(subscription.resource_version, true).await {
            return;
        }
        let mut last_rv = subscription.resource_version;
        for event in &subscription.replay {
            if !writer.forward(event).await {
                return;
            }
            last_rv = event.resource_version;
        }
        let mut bookmarks = tokio::time::interval(bookmark_interval.max(Duration::from_millis(10)));
        bookmarks.tick().await;
        loop {
            tokio::select! {
                received = subscription.receiver.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= last_rv {
                            continue;
                        }
                        last_rv = event.resource_version;
                        if !writer.forward(&event).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        writer.expired(format!("watch fell behind; too old resource version: {last_rv}")).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                gone = subscription.gone.recv() => match gone {
                    Ok(gvr) if gvr == writer.req.def.gvr() => {
                        // The resource is no longer served (its CRD was deleted): forward the
                        // DELETED events sent before this, then end like the real server.
                        while let Ok(event) = subscription.receiver.try_recv() {
                            if event.resource_version > last_rv {
                                last_rv = event.resource_version;
                                if !writer.forward(&event).await {
                                    return;
                                }
                            }
                        }
                        return;
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                command = control.recv() => match command {
                    Ok(command) if command.applies_to(&facts) => match command {
                        WatchControl::Close(_) => return,
                        WatchControl::Expire(_) => {
                            writer.expired(format!("too old resource version: {last_rv}")).await;
                            return;
                        }
                        // Events keep queueing in the subscription meanwhile.
                        WatchControl::Stall(_, pause) => tokio::time::sleep(pause).await,
                    },
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmarks.tick(), if writer.req.options.allow_bookmarks => {
                    if !writer.bookmark(last_rv, false).await {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = writer.tx.closed() => return,
            }
        }
    });
    Ok(rx)
}
