//! The socket API's `/cni` and `/delegate`: decode and validate the request once
//! ([`CniRequest`]), recover a missing pod UID, run the command, shape the reply (§4.4–§4.5).
//!
//! A command runs in a task of its own that holds the sandbox lock, so a caller that goes away
//! (a killed shim, a runtime timeout) cannot cut it in half: it runs to its end, and an ADD that
//! succeeded for a caller who is no longer there is undone at once (the runtime saw a failure
//! and will not use the attachment; a failed ADD has already rolled itself back). "Gone" is
//! either the socket server's [`Caller`] (the shim's connection closed before the answer) or,
//! for in-process callers, the handler's future being dropped.

use crate::commands::{self, Outcome};
use crate::daemon::Daemon;
use crate::error::{CommandError, command_error_reply, request_error_reply};
use crate::request::{CniRequest, Endpoint, RequestError};
use crate::server::{Caller, Reply};
use cni::Command;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tracing::Instrument;

/// Serves `/cni` and `/delegate` for the socket server.
pub struct Handler {
    /// The state every request runs against.
    pub(crate) daemon: Arc<Daemon>,
}

impl Handler {
    /// A handler serving `daemon`; the server shares one across connections.
    pub fn new(daemon: Arc<Daemon>) -> Self {
        Self { daemon }
    }

    async fn handle(&self, body: Vec<u8>, endpoint: Endpoint, caller: Caller) -> Reply {
        let request = match CniRequest::parse(&body, endpoint).and_then(|r| recover_uid(&self.daemon, r)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(endpoint = ?endpoint, "rejected a request: {e}");
                return request_error_reply(&e);
            }
        };
        let pod = request.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)).unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            command = %request.command,
            container = %request.container_id,
            pod = %pod,
        );
        let description = request.describe();
        let metrics = self.daemon.metrics.clone();
        async move {
            tracing::info!("{} starting CNI request {description}", request.command);
            let request = Arc::new(request);
            metrics.requests_in_flight.inc();
            let started = std::time::Instant::now();
            let outcome = execute(self.daemon.clone(), request.clone(), caller).await;
            metrics.requests_in_flight.dec();
            let endpoint = match request.endpoint {
                Endpoint::Cni => "cni",
                Endpoint::Delegate => "delegate",
            };
            metrics
                .command_duration
                .with_label_values(&[
                    request.command.as_str(),
                    endpoint,
                    if outcome.is_ok() { "success" } else { "failure" },
                ])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(outcome) => {
                    let body = outcome.into_body();
                    tracing::info!(
                        "{} finished CNI request {description}, result: {:?}",
                        request.command,
                        String::from_utf8_lossy(&body)
                    );
                    Reply::ok(body)
                }
                Err(e) => {
                    tracing::error!("{} finished CNI request {description}, err: {e}", request.command);
                    command_error_reply(&request, &e)
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// A missing `K8S_POD_UID` is taken from the pod cache, as the Go server does.
fn recover_uid(d: &Daemon, request: CniRequest) -> Result<CniRequest, RequestError> {
    request.with_recovered_uid(|namespace, name| d.cluster().cached_pod(namespace, name).map(|pod| pod.uid))
}

/// Run the command in its own task under the sandbox lock (see the module docs).
async fn execute(daemon: Arc<Daemon>, request: Arc<CniRequest>, caller: Caller) -> Result<Outcome, CommandError> {
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    let task_caller = caller.clone();
    let command = request.command;
    tokio::spawn(
        async move {
            // GC excludes every other command; the others exclude each other per sandbox.
            let (_shared, _exclusive) = match request.command {
                Command::Gc => (None, Some(daemon.exclusive_gc_gate().await)),
                Command::Add | Command::Del | Command::Check => (Some(daemon.share_gc_gate().await), None),
                _ => (None, None),
            };
            let _sandbox = match request.command {
                Command::Add | Command::Del | Command::Check if !request.container_id.is_empty() => {
                    Some(daemon.lock_sandbox(&request.container_id).await)
                }
                _ => None,
            };
            let outcome = commands::run(&daemon, &request).await;
            let succeeded = outcome.is_ok();
            let delivered = tx.send(outcome).is_ok() && !task_caller.is_gone();
            if !delivered && succeeded && request.command == Command::Add && request.endpoint == Endpoint::Cni {
                undo_abandoned_add(&daemon, &request).await;
            }
        }
        .instrument(span),
    );
    let outcome = tokio::select! {
        biased;
        outcome = &mut rx => outcome,
        () = caller.gone() => {
            tracing::warn!(
                "the caller went away before the {} finished (shim killed or timed out); finishing it{}",
                command,
                if command == Command::Add { ", then undoing it" } else { "" }
            );
            rx.await
        }
    };
    outcome.unwrap_or_else(|_| {
        // The task ended without an answer: it panicked (a bug); the runtime must see a failure.
        Err(CommandError::Internal(crate::error::InternalError::TaskLost))
    })
}

/// The caller of a successful ADD went away before the answer: DEL it again from its cache,
/// and remove the network-status the ADD wrote (it lists interfaces that no longer exist; the
/// runtime's retry writes it anew).
async fn undo_abandoned_add(daemon: &Daemon, add: &CniRequest) {
    tracing::warn!("the caller went away before the ADD's answer; deleting the attachment again");
    if let Err(e) = commands::run(daemon, &add.as_del()).await {
        tracing::error!("undoing the abandoned ADD failed (the runtime's DEL will retry): {e}");
        return;
    }
    match clear_status_of_undone_add(daemon, add).await {
        Ok(()) => tracing::info!("the abandoned ADD was undone"),
        Err(e) => tracing::warn!("the abandoned ADD was undone, but its network-status stays: {e}"),
    }
}

/// How long an undone ADD keeps trying to remove its network-status while the API server
/// cannot be reached (it holds the sandbox: a retried ADD of it waits meanwhile).
const STATUS_CLEAR_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Remove the network-status of the undone ADD's pod, retrying while the API server cannot
/// answer (the pod cache may be reconnecting: the pod is looked up live then).
async fn clear_status_of_undone_add(daemon: &Daemon, add: &CniRequest) -> Result<(), crate::seams::ClusterError> {
    use crate::seams::PodLookup;
    let Some(id) = add.pod.as_ref() else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + STATUS_CLEAR_PATIENCE;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        let attempt = match daemon.cluster().lookup_pod(&id.namespace, &id.name).await {
            Ok(PodLookup::NotFound) => return Ok(()),
            Ok(PodLookup::Found(pod)) => {
                if id.uid.as_deref().is_some_and(|uid| !uid.is_empty() && uid != pod.uid) && !pod.is_static() {
                    return Ok(()); // another pod of that name now: its status is not ours to touch
                }
                daemon.cluster().clear_network_status(&pod).await
            }
            Err(e) => Err(e),
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() + pause > deadline => return Err(e),
            Err(e) => {
                tracing::debug!("removing the undone ADD's network-status: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(4));
            }
        }
    }
}

impl crate::server::Api for Handler {
    fn cni(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.handle(body, Endpoint::Cni, caller))
    }
    fn delegate(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.handle(body, Endpoint::Delegate, caller))
    }

    fn observe(&self, handler: &str, status: u16, method: &str) {
        self.daemon.metrics.observe_request(handler, status, method);
    }
}
