//! The commands' error type and its one rendering on the wire (spec §4.5).
//!
//! Messages keep the reference's formats byte for byte (the runtime shows them to users, and
//! tests of other projects match on them); the structure stays available for logs and metrics.

use crate::request::{CniRequest, RequestError};
use crate::seams::{ClusterError, NetnsError};
use crate::server::Reply;
use cni::CniError;
use cni::runtime::RuntimeError;
use multus::config::ConfigError;
use multus::error::{ErrorKind, MultusError, PodRef};
use multus_api::ErrorBody;

/// One delegate's DEL (or rollback) failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("DelegateDel: error invoking {} - \"{network}\": {cause}", if *.conflist { "ConflistDel" } else { "DelegateDel" })]
pub struct DelFailure {
    pub network: String,
    pub conflist: bool,
    pub cause: String,
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// The daemon config could not be merged over the request's.
    #[error("{0}")]
    ConfigMerge(ConfigError),
    /// The effective config could not be parsed.
    #[error("Multus: error loading netconf: {0}")]
    NetConf(ConfigError),
    /// ADD and `/delegate` need a pod namespace and name.
    #[error("required CNI variable missing. pod name: {name}; pod namespace: {namespace}")]
    MissingPod { namespace: String, name: String },
    /// Planning and per-delegate ADD failures, in the reference's `Multus: [..]` formats.
    #[error(transparent)]
    Multus(#[from] MultusError),
    /// DEL: every delegate was tried; these failed (`errors: a / b`).
    #[error("errors: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" / "))]
    Del(Vec<DelFailure>),
    /// `/delegate` DEL of its one delegate failed (no `errors:` list there).
    #[error(transparent)]
    HotPlugDel(DelFailure),
    /// CHECK of one delegate failed.
    #[error("DelegateCheck: error invoking {} - \"{network}\": {cause}", if *.conflist { "ConflistCheck" } else { "DelegateCheck" })]
    Check { network: String, conflist: bool, cause: String },
    /// CHECK of a container that has no attachment here.
    #[error("CHECK: container {0} has no attachment (never added, or already deleted)")]
    NoAttachment(String),
    /// STATUS: the delegate's CNI error object, whose code must reach the runtime.
    #[error("{0}")]
    Status(CniError),
    #[error("error in GC command: {0}")]
    Gc(GcError),
    #[error("error in gather valid attachments: {0}")]
    GcAttachments(String),
    /// STATUS/GC without a cluster network to ask.
    #[error("no cluster network")]
    NoClusterNetwork,
    /// `/delegate` for a pod the API server does not know.
    #[error("Multus: [{pod}]: pod {}/{} not found", .pod.namespace, .pod.name)]
    PodNotFound { pod: PodRef },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// A bug in the daemon.
    #[error("internal error: {0}")]
    Internal(InternalError),
}

/// Why a GC failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GcError {
    /// The GC of the cluster network (the runtime sent no valid list) failed.
    #[error("{0}")]
    ClusterNetwork(String),
    /// What failed of the stale attachments' DELs and the networks' GCs, one text each.
    #[error("{}", .0.join("; "))]
    Failures(Vec<String>),
    /// The runtime's valid-attachments list does not parse.
    #[error("invalid {}: {reason}", cni::skel::VALID_ATTACHMENTS_KEY)]
    InvalidValidAttachments { reason: String },
}

/// A bug in the daemon: something that cannot happen did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InternalError {
    /// VERSION reached a command (the request's parsing refuses it).
    #[error("unknown cmd type: VERSION")]
    VersionCommand,
    /// The command's task ended without an answer (it panicked).
    #[error("the command task ended without an answer")]
    TaskLost,
}

impl CommandError {
    /// A generic `Multus: [<pod>]: <message>` error.
    pub fn multus(pod: &PodRef, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Multus(MultusError::command(Some(pod), kind, message))
    }

    /// A cluster failure with the pod prefix (`Multus: [<pod>]: error waiting for pod: …`).
    pub fn cluster(pod: &PodRef, e: &ClusterError) -> Self {
        Self::multus(pod, ErrorKind::Pod, e.to_string())
    }

    /// A netns failure of one delegate's ADD (clash check, routes).
    pub fn delegate_netns(pod: &PodRef, network: &str, what: &str, e: &NetnsError) -> Self {
        Self::Multus(MultusError::delegate_add(Some(pod), network, format!("{what}{e}")))
    }

    /// The delegate runtime's error for one delegate's ADD.
    pub fn delegate_add(pod: &PodRef, network: &str, e: &RuntimeError) -> Self {
        Self::Multus(MultusError::delegate_add(Some(pod), network, e))
    }
}

/// An extraction failure: 400 without the request description.
pub fn request_error_reply(e: &RequestError) -> Reply {
    Reply::text(400, &e.to_string())
}

/// A command failure: a CNI error object keeps its code (JSON); everything else is text
/// prefixed with the request description, and ADD errors with the pod, as the reference.
pub fn command_error_reply(request: &CniRequest, e: &CommandError) -> Reply {
    match e {
        CommandError::Status(err) => Reply::from_error_body(&ErrorBody::Cni(err.clone())),
        _ => Reply::text(400, &format!("{} ERRORED: {}", request.describe(), wire_message(request, e))),
    }
}

/// The message of a failed command as the reference words it.
fn wire_message(request: &CniRequest, e: &CommandError) -> String {
    match (request.command, request.endpoint, e) {
        // Missing pod args are reported before the ADD proper starts.
        (_, _, CommandError::MissingPod { .. } | CommandError::NetConf(_) | CommandError::ConfigMerge(_)) => {
            e.to_string()
        }
        (cni::Command::Add, crate::request::Endpoint::Cni, _) => {
            let pod = request.pod.clone().unwrap_or_default();
            format!("error configuring pod [{}/{}] networking: {e}", pod.namespace, pod.name)
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn del_errors_combine_in_the_reference_format() {
        let e = CommandError::Del(vec![
            DelFailure { network: "a".into(), conflist: true, cause: "x".into() },
            DelFailure { network: "b".into(), conflist: false, cause: "y".into() },
        ]);
        assert_eq!(
            e.to_string(),
            r#"errors: DelegateDel: error invoking ConflistDel - "a": x / DelegateDel: error invoking DelegateDel - "b": y"#
        );
    }

    #[test]
    fn check_errors_name_the_kind() {
        let e = CommandError::Check { network: "n".into(), conflist: false, cause: "c".into() };
        assert_eq!(e.to_string(), r#"DelegateCheck: error invoking DelegateCheck - "n": c"#);
    }
}
