//! `certificates.k8s.io/v1` CertificateSigningRequests.
//!
//! Three parts, as in a real cluster:
//! - admission (the API server): at create the request must be a signed PEM `CERTIFICATE
//!   REQUEST`, `signerName` and known `usages` are required, `expirationSeconds` has a minimum,
//!   and `spec.username`/`spec.groups` are set from the authenticated user; the main resource
//!   keeps spec and status on update, `/approval` changes only the Approved/Denied conditions
//!   (never both, never removed), `/status` cannot change those nor an issued certificate;
//!   with RBAC enforced, deciding through `/approval` also needs `approve` on the signer
//!   (`signers`, CertificateApproval admission);
//! - an approver ([`CsrApproval`]): none (tests approve or deny through the API, the admin API
//!   or [`crate::MockApiServer::approve_csr`]), approve everything, or the rules of Multus'
//!   `cert-approver`;
//! - the signer for `kubernetes.io/kube-apiserver-client` (and `…-client-kubelet`): an approved
//!   request gets a certificate from the mock's CA, valid for `expirationSeconds` (capped by
//!   the signing duration), `notBefore` backdated like kube-controller-manager does.

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use crate::auth::UserInfo;
use crate::resources::ResourceDef;
use crate::status::ApiError;
use crate::store::{EventType, Store, WatchStart};
use crate::tls::CertificateAuthority;
#[cfg(test)]
use approver::is_dns1123_subdomain;
use approver::{cert_approver_applies, cert_approver_verdict};
use request::{request_der, request_subject};

mod approver;
mod request;

/// The API group of CertificateSigningRequests.
pub const GROUP: &str = "certificates.k8s.io";
/// Their resource name.
pub const PLURAL: &str = "certificatesigningrequests";
/// Client certificates for the API server.
pub const KUBE_APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Kubelet client certificates (signed the same way here).
pub const KUBE_APISERVER_CLIENT_KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// What Multus' cert-approver accepts at most as `expirationSeconds`: one year.
const CERT_APPROVER_MAX_SECONDS: i64 = 365 * 24 * 3600;
/// kube-controller-manager's signer does not backdate `notAfter` of certificates shorter than this.
const SHORT_LIVED: Duration = Duration::from_secs(8 * 3600);

/// Key usages the API accepts in `spec.usages`.
const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// Whether a resource definition is the CSR resource.
pub fn is_csr(def: &ResourceDef) -> bool {
    def.group == GROUP && def.plural == PLURAL
}

/// Who approves new CertificateSigningRequests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsrApproval {
    /// Nobody: requests stay pending until approved or denied through the API.
    #[default]
    Manual,
    /// Every request is approved at once.
    ApproveAll,
    /// Multus' `cert-approver`: requests whose CN starts with `system:multus` for signer
    /// `kubernetes.io/kube-apiserver-client` are approved when the requester is
    /// `system:node:<n>` or `system:multus:<n>`, the usages are exactly digital signature and
    /// client auth, the groups are within system:nodes, system:multus and
    /// system:authenticated, the subject is CN `system:multus:<n>` O `system:multus`, and
    /// `expirationSeconds` is set and at most a year; otherwise denied. (The Go controller
    /// writes its denials with a plain update, which a real API server ignores; here they
    /// take effect.) Other requests are left alone.
    MultusCertApprover,
}

impl FromStr for CsrApproval {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "manual" => Ok(Self::Manual),
            "approve-all" => Ok(Self::ApproveAll),
            "multus-cert-approver" => Ok(Self::MultusCertApprover),
            other => Err(crate::error::Error::InvalidCsrApproval(other.to_string())),
        }
    }
}

/// CSR handling settings of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrSettings {
    /// Who approves new requests (changeable at runtime).
    pub approval: CsrApproval,
    /// Smallest `spec.expirationSeconds` accepted at create; the real API server: 600.
    pub min_expiration_seconds: i64,
    /// kube-controller-manager's `--cluster-signing-duration`: the lifetime of certificates
    /// requested without `expirationSeconds`, and the cap for those with it (1 year).
    pub signing_duration: Duration,
    /// How far the signer moves `notBefore` into the past against clock skew (5 min).
    pub backdate: Duration,
}

impl Default for CsrSettings {
    fn default() -> Self {
        Self {
            approval: CsrApproval::Manual,
            min_expiration_seconds: 600,
            signing_duration: Duration::from_secs(365 * 24 * 3600),
            backdate: Duration::from_secs(300),
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn csr_gvr() -> crate::resources::Gvr {
    crate::resources::Gvr::new(GROUP, "v1", PLURAL)
}

fn invalid(name: &str, cause: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(&csr_gvr(), "CertificateSigningRequest", name, &cause.to_string())
}

/// The condition of type `kind` with status True, if any.
fn true_condition<'a>(csr: &'a Value, kind: &str) -> Option<&'a Value> {
    csr["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind && c["status"] == "True")
}

fn has_condition(csr: &Value, kind: &str) -> bool {
    csr["status"]["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == kind))
}

/// The API server's checks and defaults for a new request, made by `user`.
pub(crate) fn admit_create(object: &mut Value, user: &UserInfo, min_expiration_seconds: i64) -> Result<(), ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .or(object["metadata"]["generateName"].as_str())
        .unwrap_or_default()
        .to_string();
    let der = request_der(object).map_err(|cause| invalid(&name, format!("spec.request: {cause}")))?;
    request_subject(&der).map_err(|cause| invalid(&name, format!("spec.request: Invalid value: {cause}")))?;
    if object["spec"]["signerName"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(&name, "spec.signerName: Required value"));
    }
    let usages = object["spec"]["usages"].as_array().cloned().unwrap_or_default();
    if usages.is_empty() {
        return Err(invalid(&name, "spec.usages: Required value"));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !usage.as_str().is_some_and(|u| KNOWN_USAGES.contains(&u)) {
            return Err(invalid(
                &name,
                format!("spec.usages[{i}]: Unsupported value: {usage}: supported values: {}", KNOWN_USAGES.join(", ")),
            ));
        }
    }
    match &object["spec"]["expirationSeconds"] {
        Value::Null => {}
        seconds => match seconds.as_i64() {
            Some(s) if s >= min_expiration_seconds => {}
            _ => {
                return Err(invalid(
                    &name,
                    format!(
                        "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than {min_expiration_seconds} seconds"
                    ),
                ));
            }
        },
    }
    let spec = object["spec"].as_object_mut().ok_or_else(|| ApiError::bad_request("spec must be an object"))?;
    spec.insert("username".into(), json!(user.username));
    spec.insert("groups".into(), json!(user.groups));
    spec.remove("uid");
    spec.remove("extra");
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    Ok(())
}

/// The CertificateApproval admission plugin (enforced with RBAC): deciding a request through
/// `approval` needs the `approve` verb on `signers` named after its signer, or after the
/// signer's domain (`kubernetes.io/*`).
pub(crate) fn admit_approval(store: &Store, user: &UserInfo, name: &str) -> Result<(), ApiError> {
    let Some(csr) = store.get(&csr_gvr(), "", name) else { return Ok(()) };
    let signer = csr["spec"]["signerName"].as_str().unwrap_or_default();
    let wildcard = signer.split_once('/').map(|(domain, _)| format!("{domain}/*"));
    let allowed = std::iter::once(signer).chain(wildcard.as_deref()).any(|resource_name| {
        let attributes = crate::rbac::Attributes {
            user,
            verb: "approve",
            group: GROUP,
            resource: "signers",
            subresource: None,
            namespace: None,
            name: Some(resource_name),
        };
        crate::rbac::authorize(store, &attributes).is_ok()
    });
    if allowed {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        "Forbidden",
        format!(
            "certificatesigningrequests.certificates.k8s.io \"{name}\" is forbidden: user not permitted to approve requests with signerName \"{signer}\""
        ),
    ))
}

/// Conditions with the API's defaults: status True, timestamps now.
fn defaulted_conditions(conditions: &Value) -> Vec<Value> {
    let now = now_rfc3339();
    conditions
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut c| {
            if c["status"].as_str().is_none_or(str::is_empty) {
                c["status"] = json!("True");
            }
            for field in ["lastUpdateTime", "lastTransitionTime"] {
                if c[field].as_str().is_none_or(str::is_empty) {
                    c[field] = json!(now);
                }
            }
            c
        })
        .collect()
}

/// The stored object for an update of the main resource (metadata only) or of the `approval`
/// or `status` subresource.
pub(crate) fn merge_update(subresource: Option<&str>, current: &Value, incoming: Value) -> Result<Value, ApiError> {
    let name = current["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut next = match subresource {
        None => {
            let mut next = incoming.clone();
            next["spec"] = current["spec"].clone();
            match current.get("status") {
                Some(status) => next["status"] = status.clone(),
                None => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            return Ok(next);
        }
        Some(_) => current.clone(),
    };
    let decisions = ["Approved", "Denied"];
    let incoming_conditions = defaulted_conditions(&incoming["status"]["conditions"]);
    let current_conditions = current["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let conditions: Vec<Value> = match subresource {
        Some("approval") => {
            for kind in decisions {
                if has_condition(current, kind) && !incoming_conditions.iter().any(|c| c["type"] == kind) {
                    return Err(invalid(
                        &name,
                        format!("status.conditions: Forbidden: updates may not remove a condition of type \"{kind}\""),
                    ));
                }
            }
            incoming_conditions
        }
        _ => {
            // `status` keeps the approval decision as it is.
            let mut kept: Vec<Value> = current_conditions
                .iter()
                .filter(|c| decisions.contains(&c["type"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            kept.extend(
                incoming_conditions.into_iter().filter(|c| !decisions.contains(&c["type"].as_str().unwrap_or(""))),
            );
            kept
        }
    };
    let decided = |kind: &str| conditions.iter().any(|c| c["type"] == kind && c["status"] == "True");
    if decided("Approved") && decided("Denied") {
        return Err(invalid(
            &name,
            "status.conditions: Invalid value: Approved and Denied conditions are mutually exclusive",
        ));
    }
    if subresource == Some("status") {
        let old = current["status"]["certificate"].as_str().unwrap_or_default();
        let new = incoming["status"]["certificate"].as_str().unwrap_or_default();
        if !old.is_empty() && old != new {
            return Err(invalid(
                &name,
                "status.certificate: Forbidden: updates may not modify existing certificate content",
            ));
        }
        if !new.is_empty() && !decided("Approved") {
            return Err(invalid(
                &name,
                "status.certificate: Forbidden: certificate issuance requires an Approved condition",
            ));
        }
        if new.is_empty() {
            if let Some(s) = next["status"].as_object_mut() {
                s.remove("certificate");
            }
        } else {
            next["status"]["certificate"] = json!(new);
        }
    }
    next["status"]["conditions"] = json!(conditions);
    next["metadata"]["resourceVersion"] = incoming["metadata"]["resourceVersion"].clone();
    if next["metadata"]["resourceVersion"].is_null()
        && let Some(m) = next["metadata"].as_object_mut()
    {
        m.remove("resourceVersion");
    }
    Ok(next)
}

fn csr_def(store: &Store) -> Result<ResourceDef, ApiError> {
    store.registry().find(GROUP, "v1", PLURAL).ok_or_else(|| ApiError::internal("the CSR resource is not served"))
}

/// Approves (or denies) a pending request, as `kubectl certificate approve|deny` does.
/// Deciding a request twice is a 409.
pub fn decide(store: &Store, name: &str, approve: bool, reason: &str, message: &str) -> Result<Value, ApiError> {
    let def = csr_def(store)?;
    store.modify(&def, "", name, |current| {
        if has_condition(current, "Approved") || has_condition(current, "Denied") {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!("certificatesigningrequests.certificates.k8s.io \"{name}\" is already approved or denied"),
            ));
        }
        let now = now_rfc3339();
        let mut next = current.clone();
        let mut conditions = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
        conditions.push(json!({
            "type": if approve { "Approved" } else { "Denied" },
            "status": "True",
            "reason": reason,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }));
        next["status"]["conditions"] = json!(conditions);
        Ok(next)
    })
}

/// Why the signer will not sign: (condition reason, message).
type SignFailure = (&'static str, String);

/// The certificate (PEM) the client signer issues for an approved request.
fn sign(ca: &CertificateAuthority, settings: &CsrSettings, csr: &Value) -> Result<String, SignFailure> {
    let validation = |m: String| ("SignerValidationFailure", m);
    let usages: Vec<&str> =
        csr["spec"]["usages"].as_array().map(|u| u.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut key_usages = Vec::new();
    let mut extended = Vec::new();
    for usage in &usages {
        match *usage {
            "digital signature" => key_usages.push(KeyUsagePurpose::DigitalSignature),
            "key encipherment" => key_usages.push(KeyUsagePurpose::KeyEncipherment),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            other => return Err(validation(format!("invalid usage for client certificate: {other}"))),
        }
    }
    if extended.is_empty() {
        return Err(validation("missing required usage for client certificate: client auth".into()));
    }
    let der = request_der(csr).map_err(|e| validation(e.to_string()))?;
    let request =
        CertificateSigningRequestParams::from_der(&der).map_err(|e| validation(format!("unable to parse csr: {e}")))?;
    let ttl = match csr["spec"]["expirationSeconds"].as_u64() {
        Some(seconds) => Duration::from_secs(seconds).min(settings.signing_duration),
        None => settings.signing_duration,
    };
    let now = SystemTime::now();
    let not_before = now.checked_sub(settings.backdate).unwrap_or(now);
    let not_after = if ttl < SHORT_LIVED { now + ttl } else { now + ttl.saturating_sub(settings.backdate) };
    ca.sign_request(request, key_usages, extended, not_before, not_after).map_err(|e| ("SigningError", e.to_string()))
}

/// The approver and the signer, reacting to every change of a CertificateSigningRequest.
pub(crate) struct CsrController {
    pub store: Store,
    pub ca: Arc<CertificateAuthority>,
    pub settings: CsrSettings,
    pub approval: Arc<RwLock<CsrApproval>>,
    /// Poked when the approval policy changes, to look at pending requests again.
    pub resync: Arc<Notify>,
}

impl CsrController {
    fn approval(&self) -> CsrApproval {
        self.approval.read().map(|a| *a).unwrap_or_default()
    }

    /// Brings one request forward: decide it (if the policy does), then sign it.
    pub(crate) fn reconcile(&self, name: &str) {
        let Some(mut csr) = self.store.get(&csr_gvr(), "", name) else { return };
        if !has_condition(&csr, "Approved") && !has_condition(&csr, "Denied") {
            let decision = match self.approval() {
                CsrApproval::Manual => None,
                CsrApproval::ApproveAll => {
                    Some((true, "AutoApproved", "approved by kube-mock (approve-all)".to_string()))
                }
                CsrApproval::MultusCertApprover if cert_approver_applies(&csr) => {
                    Some(match cert_approver_verdict(&csr) {
                        Ok(()) => (true, "AutoApproved", format!("Auto-approved CSR {name:?}")),
                        Err(denial) => (false, "CSRDenied", denial.to_string()),
                    })
                }
                CsrApproval::MultusCertApprover => None,
            };
            if let Some((approve, reason, message)) = decision {
                tracing::info!(csr = name, approve, %message, "CSR decided");
                match decide(&self.store, name, approve, reason, &message) {
                    Ok(updated) => csr = updated,
                    Err(err) => {
                        tracing::debug!(csr = name, %err, "CSR decision not stored");
                        return;
                    }
                }
            }
        }
        let signer = csr["spec"]["signerName"].as_str().unwrap_or_default();
        let ours = signer == KUBE_APISERVER_CLIENT_SIGNER || signer == KUBE_APISERVER_CLIENT_KUBELET_SIGNER;
        let issued = csr["status"]["certificate"].as_str().is_some_and(|c| !c.is_empty());
        if !ours || issued || true_condition(&csr, "Approved").is_none() || has_condition(&csr, "Failed") {
            return;
        }
        let outcome = sign(&self.ca, &self.settings, &csr);
        let Ok(def) = csr_def(&self.store) else { return };
        let stored = self.store.modify(&def, "", name, |current| {
            let mut next = current.clone();
            match &outcome {
                Ok(pem) => next["status"]["certificate"] = json!(base64::engine::general_purpose::STANDARD.encode(pem)),
                Err((reason, message)) => {
                    let now = now_rfc3339();
                    let mut conditions = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
                    conditions.push(json!({"type": "Failed", "status": "True", "reason": reason, "message": message,
                                           "lastUpdateTime": now, "lastTransitionTime": now}));
                    next["status"]["conditions"] = json!(conditions);
                }
            }
            Ok(next)
        });
        match (&outcome, stored) {
            (_, Err(err)) => tracing::debug!(csr = name, %err, "CSR signing result not stored"),
            (Ok(_), Ok(_)) => tracing::info!(csr = name, "CSR signed"),
            (Err((_, message)), Ok(_)) => tracing::info!(csr = name, %message, "CSR failed"),
        }
    }

    fn reconcile_all(&self) {
        let names: Vec<String> = self
            .store
            .list(&csr_gvr(), None)
            .0
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        for name in names {
            self.reconcile(&name);
        }
    }

    /// Runs until the store goes away.
    pub(crate) async fn run(self) {
        let subscription = match self.store.subscribe(&csr_gvr(), None, WatchStart::Snapshot) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(%err, "the CSR controller cannot watch the store");
                return;
            }
        };
        let mut events = subscription.receiver;
        self.reconcile_all();
        let gvr = csr_gvr();
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) if event.gvr == gvr && event.event_type != EventType::Deleted => {
                        if let Some(name) = event.object["metadata"]["name"].as_str() {
                            self.reconcile(name);
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.reconcile_all(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = self.resync.notified() => self.reconcile_all(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
