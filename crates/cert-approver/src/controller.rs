//! The controller: watches CertificateSigningRequests, judges each undecided one
//! ([`crate::judge`]), looks the node up, and writes the decision to the `approval`
//! subresource (the only place a real API server takes it from).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;

use crate::judge::{APPROVED_REASON, Verdict, judge, require_node};

/// How long a failed step waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why one request could not be decided now (it is tried again after [`RETRY_AFTER`]).
#[derive(Debug, thiserror::Error)]
pub enum ApproverError {
    /// Looking the node up failed (other than "not found").
    #[error("looking up node {node}: {source}")]
    NodeLookup {
        /// The node.
        node: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Writing the decision failed (other than a conflict with a newer version).
    #[error("writing the decision on {name}: {source}")]
    Write {
        /// The request's name.
        name: String,
        /// The API's answer.
        source: kube::Error,
    },
}

/// What one decision wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The request's name.
    pub name: String,
    /// Approved (true) or denied.
    pub approved: bool,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub message: String,
}

struct Context {
    client: kube::Client,
}

/// The request with one more condition, as written to `approval` (its resourceVersion kept:
/// a request changed meanwhile is a conflict, decided again from its new version).
pub fn with_decision(csr: &CertificateSigningRequest, decision: &Decision) -> CertificateSigningRequest {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut next = csr.clone();
    let status = next.status.get_or_insert_with(CertificateSigningRequestStatus::default);
    status.conditions.get_or_insert_with(Vec::new).push(CertificateSigningRequestCondition {
        type_: if decision.approved { "Approved" } else { "Denied" }.into(),
        status: "True".into(),
        reason: Some(decision.reason.clone()),
        message: Some(decision.message.clone()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    });
    next
}

/// The decision on one request, or None when it is not ours; looks the node up.
pub async fn decide(client: &kube::Client, csr: &CertificateSigningRequest) -> Result<Option<Decision>, ApproverError> {
    let name = csr.metadata.name.clone().unwrap_or_default();
    let verdict = match judge(csr) {
        Verdict::Approve { node } => {
            let exists = Api::<Node>::all(client.clone())
                .get_opt(&node)
                .await
                .map_err(|source| ApproverError::NodeLookup { node: node.clone(), source })?
                .is_some();
            require_node(Verdict::Approve { node }, exists)
        }
        other => other,
    };
    Ok(match verdict {
        Verdict::Approve { node } => Some(Decision {
            name,
            approved: true,
            reason: APPROVED_REASON.into(),
            message: format!("multus cert-approver: the multus-daemon of node {node} asked for its own certificate"),
        }),
        Verdict::Deny(denial) => {
            Some(Decision { name, approved: false, reason: denial.reason().into(), message: denial.to_string() })
        }
        Verdict::Ignore(why) => {
            tracing::debug!(csr = name, ?why, "not ours to decide");
            None
        }
    })
}

/// Writes a decision to the `approval` subresource. A conflict (the request changed, or
/// someone decided first) is no error: the watch brings the new version.
pub async fn write(
    client: &kube::Client,
    csr: &CertificateSigningRequest,
    decision: &Decision,
) -> Result<bool, ApproverError> {
    let name = decision.name.clone();
    let body = with_decision(csr, decision);
    let api = Api::<CertificateSigningRequest>::all(client.clone());
    match api.replace_subresource("approval", &name, &PostParams::default(), &body).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            tracing::debug!(csr = name, "changed meanwhile; deciding on its new version");
            Ok(false)
        }
        Err(source) => Err(ApproverError::Write { name, source }),
    }
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Context>) -> Result<Action, ApproverError> {
    let Some(decision) = decide(&ctx.client, &csr).await? else { return Ok(Action::await_change()) };
    if write(&ctx.client, &csr, &decision).await? {
        if decision.approved {
            tracing::info!(csr = decision.name, message = decision.message, "approved");
        } else {
            tracing::warn!(csr = decision.name, reason = decision.reason, message = decision.message, "denied");
        }
    }
    Ok(Action::await_change())
}

fn error_policy(_csr: Arc<CertificateSigningRequest>, error: &ApproverError, _ctx: Arc<Context>) -> Action {
    tracing::warn!("{error}; trying again in {}s", RETRY_AFTER.as_secs());
    Action::requeue(RETRY_AFTER)
}

/// Runs until `shutdown` completes: every CertificateSigningRequest, present and future.
pub async fn run(client: kube::Client, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let csrs = Api::<CertificateSigningRequest>::all(client.clone());
    Controller::new(csrs, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|outcome| async move {
            use kube::runtime::controller::Error;
            match outcome {
                // Deleted before its turn; a failed decision (logged by `error_policy`).
                Ok(_) | Err(Error::ObjectNotFound(_) | Error::ReconcilerFailed(..)) => {}
                // The watch itself (e.g. no permission to list): retried with backoff.
                Err(error) => tracing::warn!("watching CertificateSigningRequests: {error}"),
            }
        })
        .await;
}
