//! The crate's error type, with the reference's message formats (spec §5.4).
//!
//! Two prefixes exist in the Go reference and are reproduced byte for byte:
//!
//! * generic (`cmdErr`): `Multus: [<ns>/<name>/<uid>]: <msg>`, or `Multus: <msg>` when the pod
//!   identity (from `CNI_ARGS`) is unknown;
//! * per delegate (`cmdPluginErr`): `[<ns>/<name>/<uid>:<netName>]: error adding container to
//!   network "<netName>": <err>`, the bracket part omitted when the pod identity is unknown.
//!
//! Errors keep the pod and the network they concern as structured fields, so the daemon can log
//! and count them without parsing the text.

use crate::cache::CacheError;
use crate::config::ConfigError;
use crate::default_route::DefaultRouteError;
use crate::delegate::DelegateError;
use crate::k8s_args::K8sArgsError;
use crate::plan::PlanError;
pub use crate::pod::PodRef;
use crate::selection::SelectionError;
use crate::status::StatusError;
use std::fmt;

/// A Kubernetes event (or log line) the daemon should emit on behalf of the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Event reason, e.g. `NoNetworkFound`.
    pub reason: String,
    /// Event message.
    pub message: String,
    /// `true`: a Warning event on the pod (when the pod is known). `false`: log only.
    pub event: bool,
}

impl Warning {
    /// A selected network has no NAD (the reference's event reason).
    pub const NO_NETWORK_FOUND: &'static str = "NoNetworkFound";
    /// A network with a resource name got no device (none allocated, or all taken).
    pub const NO_DEVICE: &'static str = "NoDeviceForNetwork";

    /// A warning emitted as a Warning event on the pod.
    pub fn event(reason: &str, message: impl Into<String>) -> Self {
        Self { reason: reason.to_string(), message: message.into(), event: true }
    }

    /// A warning that is only logged.
    pub fn log(reason: &str, message: impl Into<String>) -> Self {
        Self { reason: reason.to_string(), message: message.into(), event: false }
    }
}

/// What a generic (`Multus: …`) error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// "error loading netconf: …"
    NetConf,
    /// "error getting k8s args: …"
    K8sArgs,
    /// "error waiting for pod: …", UID mismatch
    Pod,
    /// "failed to get clusterNetwork/defaultNetworks: …"
    DefaultNetworks,
    /// "error loading k8s delegates k8s args: …" (annotations, NADs, isolation, ECMP)
    PodDelegates,
    /// "failed to get delegates: …" (DEL recompute with nothing resolved)
    DelDelegates,
    /// "error saving the delegates: …"
    SaveDelegates,
    /// default-route netns/cache edits
    DefaultGateway,
    /// "error setting the networks status: …"
    NetworkStatus,
    /// auxiliary chain misconfiguration
    AuxiliaryChain,
    /// Anything else.
    Other,
}

/// Every error of the crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MultusError {
    /// `Multus: [<ns>/<name>/<uid>]: <message>`
    #[error("{0}")]
    Command(Box<CommandError>),
    /// `[<ns>/<name>/<uid>:<net>]: error adding container to network "<net>": <cause>`
    #[error("{}", delegate_add_text(.pod.as_ref(), .network, .cause))]
    DelegateAdd {
        /// The pod, when `CNI_ARGS` names it.
        pod: Option<PodRef>,
        /// The delegate's network name.
        network: String,
        /// The delegate's error text.
        cause: String,
    },
    /// A network-selection annotation could not be parsed.
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// The request's configuration was rejected.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `CNI_ARGS` could not be parsed.
    #[error(transparent)]
    K8sArgs(#[from] K8sArgsError),
    /// A delegate config was rejected.
    #[error(transparent)]
    Delegate(#[from] DelegateError),
    /// The delegate cache could not be written or read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A `default-route` request could not be applied.
    #[error(transparent)]
    DefaultRoute(#[from] DefaultRouteError),
    /// Planning a delegate's invocation failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A delegate result could not be turned into a network-status entry.
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// A generic error with its context.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandError {
    /// The pod, when `CNI_ARGS` names it.
    pub pod: Option<PodRef>,
    /// The network (delegate display name or annotation element) concerned, if any.
    pub network: Option<String>,
    /// Which step failed.
    pub kind: ErrorKind,
    /// The text after the `Multus: [...]: ` prefix.
    pub message: String,
    /// Events to emit even though the operation failed (e.g. `NoNetworkFound`).
    pub warnings: Vec<Warning>,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pod {
            Some(p) => write!(f, "Multus: [{p}]: {}", self.message),
            None => write!(f, "Multus: {}", self.message),
        }
    }
}

fn delegate_add_text(pod: Option<&PodRef>, network: &str, cause: &str) -> String {
    match pod {
        Some(p) => format!("[{p}:{network}]: error adding container to network {network:?}: {cause}"),
        None => format!("error adding container to network {network:?}: {cause}"),
    }
}

impl MultusError {
    /// A generic error: `Multus: [<pod>]: <message>`.
    pub fn command(pod: Option<&PodRef>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Command(Box::new(CommandError {
            pod: pod.cloned(),
            network: None,
            kind,
            message: message.into(),
            warnings: Vec::new(),
        }))
    }

    /// A generic error about one network.
    pub fn command_for_network(
        pod: Option<&PodRef>,
        kind: ErrorKind,
        network: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Command(Box::new(CommandError {
            pod: pod.cloned(),
            network: Some(network.into()),
            kind,
            message: message.into(),
            warnings: Vec::new(),
        }))
    }

    /// A delegate's ADD failed; `network` is the delegate's CNI config name (list name for
    /// conflists), as in the reference.
    pub fn delegate_add(pod: Option<&PodRef>, network: impl Into<String>, cause: impl fmt::Display) -> Self {
        Self::DelegateAdd { pod: pod.cloned(), network: network.into(), cause: cause.to_string() }
    }

    /// Events that should be emitted although the operation failed.
    pub fn warnings(&self) -> &[Warning] {
        match self {
            Self::Command(c) => &c.warnings,
            _ => &[],
        }
    }

    /// Attach events to emit although the operation failed.
    pub fn with_warnings(mut self, extra: Vec<Warning>) -> Self {
        if let Self::Command(c) = &mut self {
            c.warnings.extend(extra);
        }
        self
    }

    /// The network concerned, if known.
    pub fn network(&self) -> Option<&str> {
        match self {
            Self::Command(c) => c.network.as_deref(),
            Self::DelegateAdd { network, .. } => Some(network),
            _ => None,
        }
    }

    /// Which step a generic error comes from; [`ErrorKind::Other`] for every other variant.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Command(c) => c.kind,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_the_reference() {
        let pod = PodRef::new("default", "pod-missingnad", "22222222-2222-2222-2222-222222222222");
        let e = MultusError::command(Some(&pod), ErrorKind::PodDelegates, "error loading k8s delegates k8s args: x");
        assert_eq!(
            e.to_string(),
            "Multus: [default/pod-missingnad/22222222-2222-2222-2222-222222222222]: error loading k8s delegates k8s args: x"
        );
        assert_eq!(MultusError::command(None, ErrorKind::K8sArgs, "m").to_string(), "Multus: m");
        let e = MultusError::delegate_add(Some(&PodRef::default()), "other1", "expected plugin failure");
        assert_eq!(
            e.to_string(),
            r#"[//:other1]: error adding container to network "other1": expected plugin failure"#
        );
        assert_eq!(e.network(), Some("other1"));
    }
}
