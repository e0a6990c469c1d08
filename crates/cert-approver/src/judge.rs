//! The rules, as pure functions of a CertificateSigningRequest: approve, deny (with a reason)
//! or leave it alone (not a request of multus-daemon's, or already decided).
//!
//! A request is multus-daemon's when it asks signer `kubernetes.io/kube-apiserver-client` for a
//! subject whose common name starts with `system:multus`. It is approved only when:
//! - the requester (`spec.username`, set by the API server from the credentials) is
//!   `system:node:<n>` (the node's kubelet credentials, first certificate) or
//!   `system:multus:<n>` (the daemon's current certificate, rotation), `<n>` a DNS subdomain;
//! - its groups are within `system:nodes`, `system:multus` and `system:authenticated`;
//! - the usages are exactly digital signature and client auth;
//! - the subject is CN `system:multus:<n>` for that same node and O `system:multus`, with no
//!   subject alternative names: a node cannot obtain another node's identity;
//! - `expirationSeconds` is set and at most [`MAX_EXPIRATION_SECONDS`];
//! - and (checked by the controller, [`require_node`]) the node `<n>` exists.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

use crate::request::parse_request;

/// The signer of API-server client certificates, which multus-daemon asks.
pub const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client";
/// The subject organization, and the prefix of the common name `system:multus:<node>`.
pub const ORGANIZATION: &str = "system:multus";
/// The key usages multus-daemon asks for (in any order).
pub const USAGES: [&str; 2] = ["client auth", "digital signature"];
/// Groups a requester may have.
pub const ALLOWED_GROUPS: [&str; 3] = ["system:nodes", "system:multus", "system:authenticated"];
/// The longest certificate lifetime approved: one year (as Multus' Go cert-approver).
pub const MAX_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;
/// Condition reason of an approval.
pub const APPROVED_REASON: &str = "AutoApproved";

/// What the approver does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Approve: a request of node `node`'s multus-daemon.
    Approve {
        /// The node the certificate is for.
        node: String,
    },
    /// Deny, with why.
    Deny(Denial),
    /// Not ours to decide.
    Ignore(Ignored),
}

/// Why a request is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Approved or denied already.
    Decided,
    /// For another signer.
    OtherSigner,
    /// The subject is not `system:multus…` (or the request cannot be read; the API server
    /// refuses such requests at create).
    NotMultus,
}

/// Why a request of the multus subject is denied. `Display` is the condition's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The requester is neither a node nor a multus-daemon.
    #[error("requested by {0:?}; only system:node:<node> and system:multus:<node> may ask")]
    UnexpectedUser(String),
    /// The node name is no DNS subdomain.
    #[error("node name {0:?} (from the requester) is not a valid DNS subdomain")]
    InvalidNodeName(String),
    /// A group outside [`ALLOWED_GROUPS`].
    #[error("requester groups {0:?} are not within system:nodes, system:multus, system:authenticated")]
    UnexpectedGroups(Vec<String>),
    /// Usages other than digital signature and client auth.
    #[error("usages {0:?}; expected exactly digital signature and client auth")]
    UnexpectedUsages(Vec<String>),
    /// The certificate would name another node than the requester's: a forged node name.
    #[error("common name {found:?} does not match the requesting node {node:?} (expected {expected:?})")]
    ForgedNodeName {
        /// The node of the requester.
        node: String,
        /// `system:multus:<node>`.
        expected: String,
        /// What the request asks for.
        found: String,
    },
    /// The organization is not exactly `system:multus`.
    #[error("organizations {0:?}; expected exactly [\"system:multus\"]")]
    UnexpectedOrganization(Vec<String>),
    /// Subject alternative names were requested.
    #[error("the request asks for subject alternative names, which a client certificate has none of")]
    AltNames,
    /// No `expirationSeconds`.
    #[error("expirationSeconds is not set")]
    NoExpiration,
    /// `expirationSeconds` above the maximum.
    #[error("expirationSeconds {0} is above the maximum of {MAX_EXPIRATION_SECONDS}")]
    ExpirationTooLong(i64),
    /// The node does not exist.
    #[error("node {0:?} does not exist")]
    NodeNotFound(String),
}

impl Denial {
    /// The condition's `reason` (CamelCase, one per rule).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnexpectedUser(_) => "UnexpectedRequester",
            Self::InvalidNodeName(_) => "InvalidNodeName",
            Self::UnexpectedGroups(_) => "UnexpectedGroups",
            Self::UnexpectedUsages(_) => "UnexpectedUsages",
            Self::ForgedNodeName { .. } => "NodeNameMismatch",
            Self::UnexpectedOrganization(_) => "UnexpectedOrganization",
            Self::AltNames => "SubjectAltNamesRequested",
            Self::NoExpiration => "NoExpiration",
            Self::ExpirationTooLong(_) => "ExpirationTooLong",
            Self::NodeNotFound(_) => "NodeNotFound",
        }
    }
}

/// A DNS-1123 subdomain, as Kubernetes validates node names.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether a request carries an Approved or Denied condition.
pub fn is_decided(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Approved" || c.type_ == "Denied"))
}

/// The node a requester speaks for, from `system:node:<n>` or `system:multus:<n>`.
fn requester_node(username: &str) -> Option<&str> {
    username.strip_prefix("system:node:").or_else(|| username.strip_prefix("system:multus:"))
}

/// The approver's verdict on one request (without the node-exists check, [`require_node`]).
pub fn judge(csr: &CertificateSigningRequest) -> Verdict {
    if is_decided(csr) {
        return Verdict::Ignore(Ignored::Decided);
    }
    if csr.spec.signer_name != SIGNER_NAME {
        return Verdict::Ignore(Ignored::OtherSigner);
    }
    let subject = match parse_request(&csr.spec.request.0) {
        Ok(s) if s.common_name.starts_with(ORGANIZATION) => s,
        Ok(_) | Err(_) => return Verdict::Ignore(Ignored::NotMultus),
    };
    match check(csr, subject) {
        Ok(node) => Verdict::Approve { node },
        Err(denial) => Verdict::Deny(denial),
    }
}

fn check(csr: &CertificateSigningRequest, subject: crate::request::RequestSubject) -> Result<String, Denial> {
    let spec = &csr.spec;
    let username = spec.username.as_deref().unwrap_or_default();
    let node = requester_node(username).ok_or_else(|| Denial::UnexpectedUser(username.to_string()))?;
    if !is_dns1123_subdomain(node) {
        return Err(Denial::InvalidNodeName(node.to_string()));
    }
    let groups = spec.groups.clone().unwrap_or_default();
    if !groups.iter().all(|g| ALLOWED_GROUPS.contains(&g.as_str())) {
        return Err(Denial::UnexpectedGroups(groups));
    }
    let mut usages = spec.usages.clone().unwrap_or_default();
    usages.sort_unstable();
    usages.dedup();
    if usages != USAGES {
        return Err(Denial::UnexpectedUsages(spec.usages.clone().unwrap_or_default()));
    }
    let expected = format!("{ORGANIZATION}:{node}");
    if subject.common_name != expected {
        return Err(Denial::ForgedNodeName { node: node.to_string(), expected, found: subject.common_name });
    }
    if subject.organizations != [ORGANIZATION] {
        return Err(Denial::UnexpectedOrganization(subject.organizations));
    }
    if subject.has_alt_names {
        return Err(Denial::AltNames);
    }
    match spec.expiration_seconds.map(i64::from) {
        None => Err(Denial::NoExpiration),
        Some(seconds) if seconds > MAX_EXPIRATION_SECONDS => Err(Denial::ExpirationTooLong(seconds)),
        Some(_) => Ok(node.to_string()),
    }
}

/// An approval stands only for a node that exists.
pub fn require_node(verdict: Verdict, node_exists: bool) -> Verdict {
    match verdict {
        Verdict::Approve { node } if !node_exists => Verdict::Deny(Denial::NodeNotFound(node)),
        other => other,
    }
}

#[cfg(test)]
mod tests;
