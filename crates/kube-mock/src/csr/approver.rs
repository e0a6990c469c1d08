//! Multus' cert-approver, as kube-mock plays it: which requests it judges and its rules.

use serde_json::Value;

use super::request::{RequestError, request_der, request_subject};
use super::{CERT_APPROVER_MAX_SECONDS, KUBE_APISERVER_CLIENT_SIGNER};

/// Multus' cert-approver only looks at requests for its own subjects.
pub(super) fn cert_approver_applies(csr: &Value) -> bool {
    csr["spec"]["signerName"] == KUBE_APISERVER_CLIENT_SIGNER
        && request_der(csr)
            .ok()
            .and_then(|der| request_subject(&der).ok())
            .is_some_and(|(cn, _)| cn.starts_with("system:multus"))
}

/// A DNS-1123 subdomain, as Kubernetes validates node names.
pub(super) fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Why Multus' cert-approver denies a request (the denial message, worded as it words it).
#[derive(Debug, thiserror::Error)]
pub(super) enum Denial {
    #[error("failed to PEM-parse the CSR block in .spec.request: {0}")]
    NotPem(RequestError),
    #[error("failed to parse the CSR bytes: {0}")]
    Unparsable(RequestError),
    #[error("failed to parse the username: {0}")]
    Username(String),
    #[error("CSR {name:?} was created by an unexpected user: {username:?}")]
    UnexpectedUser { name: String, username: String },
    #[error("extracted node name {0:?} is not a valid DNS subdomain")]
    NodeName(String),
    #[error("CSR {name:?} was created with unexpected usages: {usages:?}")]
    Usages { name: String, usages: Vec<String> },
    #[error("CSR {name:?} was created by a user with unexpected groups: {groups:?}")]
    Groups { name: String, groups: Vec<String> },
    #[error("expected the CSR's commonName to be {expected:?}, but it is {found:?}")]
    CommonName { expected: String, found: String },
    #[error("expected the CSR's organization to be [system:multus], but it is {0:?}")]
    Organization(Vec<String>),
    #[error("CSR {0:?} was created without specifying the expirationSeconds")]
    NoExpiration(String),
    #[error("CSR {name:?} was created with invalid expirationSeconds value: {seconds}")]
    Expiration { name: String, seconds: i64 },
}

/// Multus' cert-approver rules: `Ok` approves, `Err` is the denial.
pub(super) fn cert_approver_verdict(csr: &Value) -> Result<(), Denial> {
    let name = csr["metadata"]["name"].as_str().unwrap_or_default();
    let der = request_der(csr).map_err(Denial::NotPem)?;
    let (cn, orgs) = request_subject(&der).map_err(Denial::Unparsable)?;
    let username = csr["spec"]["username"].as_str().unwrap_or_default();
    let (prefix, node) = username
        .rsplit_once(':')
        .filter(|(_, n)| !n.is_empty())
        .ok_or_else(|| Denial::Username(username.to_string()))?;
    if prefix != "system:node" && prefix != "system:multus" {
        return Err(Denial::UnexpectedUser { name: name.to_string(), username: username.to_string() });
    }
    if !is_dns1123_subdomain(node) {
        return Err(Denial::NodeName(node.to_string()));
    }
    let mut usages: Vec<&str> =
        csr["spec"]["usages"].as_array().map(|u| u.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    usages.sort_unstable();
    usages.dedup();
    if usages != ["client auth", "digital signature"] {
        return Err(Denial::Usages { name: name.to_string(), usages: usages.iter().map(|u| u.to_string()).collect() });
    }
    let groups: Vec<&str> =
        csr["spec"]["groups"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if !groups.iter().all(|g| ["system:nodes", "system:multus", crate::auth::AUTHENTICATED_GROUP].contains(g)) {
        return Err(Denial::Groups { name: name.to_string(), groups: groups.iter().map(|g| g.to_string()).collect() });
    }
    let expected_cn = format!("system:multus:{node}");
    if cn != expected_cn {
        return Err(Denial::CommonName { expected: expected_cn, found: cn });
    }
    if orgs != ["system:multus"] {
        return Err(Denial::Organization(orgs));
    }
    match csr["spec"]["expirationSeconds"].as_i64() {
        None => Err(Denial::NoExpiration(name.to_string())),
        Some(seconds) if seconds > CERT_APPROVER_MAX_SECONDS => {
            Err(Denial::Expiration { name: name.to_string(), seconds })
        }
        Some(_) => Ok(()),
    }
}
