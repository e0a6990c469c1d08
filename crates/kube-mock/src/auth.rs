//! Authentication as the real API server does it: a client certificate signed by the mock's CA
//! (the user is its CN, the groups its O entries), else the bearer token, else nobody.
//!
//! Client certificates are requested at the TLS handshake but judged per request: an expired
//! or foreign certificate gets `401 Unauthorized` (like kube-apiserver, whose x509
//! authenticator runs on every request), and a request on a connection opened before the
//! certificate expired is refused once it has.
//!
//! Service-account tokens ([`ServiceAccountTokens`]) are bound to their ServiceAccount's uid,
//! like the real server's bound tokens: once the ServiceAccount is deleted the token gets 401,
//! also after a ServiceAccount of the same name is created again (it has another uid).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;
use crate::resources::Gvr;
use crate::status::ApiError;
use crate::store::Store;
use crate::tls::{CertificateAuthority, crypto_provider};

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Who sent a request, as the API server's authenticators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserInfo {
    /// The user's name (`system:anonymous` when unauthenticated).
    pub username: String,
    /// The groups the user is in.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A request without credentials (the mock without a token accepts it).
    pub fn anonymous() -> Self {
        Self { username: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }

    /// The user of the configured bearer token: a bootstrap token (`abcdef.0123456789abcdef`)
    /// is `system:bootstrap:<id>` in `system:bootstrappers`; any other token stands for the
    /// Multus service account ([`CONFIGURED_TOKEN_SERVICE_ACCOUNT`]).
    pub fn for_token(token: &str) -> Self {
        match bootstrap_token_id(token) {
            Some(id) => Self {
                username: format!("system:bootstrap:{id}"),
                groups: vec!["system:bootstrappers".into(), AUTHENTICATED_GROUP.into()],
            },
            None => {
                let (namespace, name) = CONFIGURED_TOKEN_SERVICE_ACCOUNT;
                Self::service_account(namespace, name)
            }
        }
    }

    /// The user of a service account's token: `system:serviceaccount:<ns>:<name>` in
    /// `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED_GROUP.into(),
            ],
        }
    }

    /// The namespace and name of the service account this user is, if it is one.
    pub fn service_account_name(&self) -> Option<(&str, &str)> {
        let rest = self.username.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
    }

    /// Whether the user is in `system:masters` (full access, whatever RBAC says).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The service account the configured token (`--token`) belongs to.
pub const CONFIGURED_TOKEN_SERVICE_ACCOUNT: (&str, &str) = ("kube-system", "multus");

/// Whether `token` has the form of a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
pub fn is_bootstrap_token(token: &str) -> bool {
    bootstrap_token_id(token).is_some()
}

/// A token bound to one ServiceAccount object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundToken {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's uid when the token was issued.
    pub uid: String,
    /// When the token stops working (None: never, like the configured token).
    pub expires: Option<SystemTime>,
}

/// The service-account tokens the server accepts: the configured token (bound to
/// `kube-system/multus`) and those issued by TokenRequests (`serviceaccounts/<name>/token`,
/// `kubectl create token`) or the admin API.
#[derive(Debug, Default)]
pub struct ServiceAccountTokens {
    tokens: Mutex<HashMap<String, BoundToken>>,
}

fn service_accounts() -> Gvr {
    Gvr::new("", "v1", "serviceaccounts")
}

impl ServiceAccountTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BoundToken>> {
        self.tokens.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Binds `token` to the ServiceAccount `namespace/name` as it is now (404 when absent).
    pub fn bind(
        &self,
        store: &Store,
        token: &str,
        namespace: &str,
        name: &str,
        expires: Option<SystemTime>,
    ) -> Result<BoundToken, ApiError> {
        let account = store
            .get(&service_accounts(), namespace, name)
            .ok_or_else(|| ApiError::not_found(&service_accounts(), name))?;
        let bound = BoundToken {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: account["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            expires,
        };
        self.lock().insert(token.to_string(), bound.clone());
        Ok(bound)
    }

    /// Issues a new token for the ServiceAccount `namespace/name` (404 when absent), valid for
    /// `lifetime` (None: without expiry).
    pub fn issue(
        &self,
        store: &Store,
        namespace: &str,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<(String, BoundToken), ApiError> {
        let token = opaque_token(namespace, name);
        let bound = self.bind(store, &token, namespace, name, lifetime.map(|l| SystemTime::now() + l))?;
        Ok((token, bound))
    }

    /// The user of `token`: None when it is not a service-account token issued here;
    /// `Some(Err(reason))` when it was but is no longer valid (expired, ServiceAccount deleted
    /// or replaced), which is a 401.
    pub fn authenticate(&self, store: &Store, token: &str) -> Option<Result<UserInfo, CredentialError>> {
        let bound = self.lock().get(token).cloned()?;
        if bound.expires.is_some_and(|e| e <= SystemTime::now()) {
            return Some(Err(CredentialError::TokenExpired));
        }
        let Some(account) = store.get(&service_accounts(), &bound.namespace, &bound.name) else {
            return Some(Err(CredentialError::ServiceAccountDeleted { namespace: bound.namespace, name: bound.name }));
        };
        let uid = account["metadata"]["uid"].as_str().unwrap_or_default();
        if uid != bound.uid {
            return Some(Err(CredentialError::UidMismatch { uid: uid.to_string(), claim: bound.uid }));
        }
        Some(Ok(UserInfo::service_account(&bound.namespace, &bound.name)))
    }
}

/// A token that looks like a service-account JWT (header.claims.signature); clients never
/// look inside, the server finds it in its table.
fn opaque_token(namespace: &str, name: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = b64(br#"{"alg":"none","kid":"kube-mock"}"#);
    let claims = b64(serde_json::json!({"iss": "https://kubernetes.default.svc.cluster.local",
                           "sub": format!("system:serviceaccount:{namespace}:{name}"),
                           "jti": uuid::Uuid::new_v4().to_string()})
    .to_string()
    .as_bytes());
    let signature = b64(uuid::Uuid::new_v4().as_bytes());
    format!("{header}.{claims}.{signature}")
}

/// The token ID of a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
fn bootstrap_token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (valid(id, 6) && valid(secret, 16)).then_some(id)
}

/// Why a presented credential is refused (a 401), worded as the real server (and Go's x509
/// package) words it.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The service-account token's lifetime is over.
    #[error("service account token has expired")]
    TokenExpired,
    /// The token's ServiceAccount is gone.
    #[error("service account {namespace}/{name} has been deleted")]
    ServiceAccountDeleted {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The token's ServiceAccount was replaced by another of the same name.
    #[error("service account UID ({uid}) does not match claim ({claim})")]
    UidMismatch {
        /// The uid of the ServiceAccount now stored.
        uid: String,
        /// The uid the token was bound to.
        claim: String,
    },
    /// An empty certificate chain.
    #[error("no client certificate")]
    NoCertificate,
    /// The certificate is outside its validity period.
    #[error("x509: certificate has expired or is not yet valid")]
    CertificateExpired,
    /// The certificate was not issued by the mock's CA.
    #[error("x509: certificate signed by unknown authority")]
    UnknownAuthority,
    /// Issued by a CA with our CA's name, but not ours.
    #[error("x509: certificate signed by unknown authority (the signature does not verify)")]
    BadSignature,
    /// Refused by the verifier for another reason.
    #[error("x509: {0}")]
    Rejected(rustls::Error),
    /// The certificate does not parse.
    #[error("x509: cannot parse the certificate: {0}")]
    Unparsable(x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// The certificate's subject has no common name (the user name).
    #[error("x509: the certificate has no common name")]
    NoCommonName,
}

/// Requests client certificates at the handshake (optional, so clients without one still
/// connect) and checks them against the mock's CA when a request arrives.
#[derive(Debug)]
pub struct ClientCertificates {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertificates {
    /// Trusts client certificates signed by `ca`.
    pub fn new(ca: &CertificateAuthority) -> Result<Self, Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| Error::Certificate(e.to_string()))?;
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| Error::Certificate(e.to_string()))?;
        Ok(Self { webpki })
    }

    /// The user a presented chain (end entity first) stands for, checked now: signed by the
    /// CA, within its validity, usable for client auth. The error is the reason, worded as
    /// Go's x509 package words it.
    pub fn authenticate(&self, chain: &[CertificateDer<'_>]) -> Result<UserInfo, CredentialError> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(CredentialError::NoCertificate);
        };
        self.webpki.verify_client_cert(end_entity, intermediates, UnixTime::now()).map_err(|err| match err {
            rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => CredentialError::CertificateExpired,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => CredentialError::UnknownAuthority,
            // Another CA with the same name as ours.
            rustls::Error::InvalidCertificate(CertificateError::BadSignature) => CredentialError::BadSignature,
            other => CredentialError::Rejected(other),
        })?;
        user_of_certificate(end_entity)
    }
}

/// User CN, groups O (plus `system:authenticated`).
fn user_of_certificate(der: &CertificateDer<'_>) -> Result<UserInfo, CredentialError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(CredentialError::Unparsable)?;
    let subject = cert.subject();
    let username = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or(CredentialError::NoCommonName)?
        .to_string();
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    groups.push(AUTHENTICATED_GROUP.into());
    Ok(UserInfo { username, groups })
}

impl ClientCertVerifier for ClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    /// Accepted here; [`ClientCertificates::authenticate`] judges it per request.
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    /// The client must still prove it holds the certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn der(pem: &str) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn tokens_map_to_users() {
        let bootstrap = UserInfo::for_token("abcdef.0123456789abcdef");
        assert_eq!(bootstrap.username, "system:bootstrap:abcdef");
        assert!(bootstrap.groups.contains(&"system:bootstrappers".to_string()));
        assert_eq!(UserInfo::for_token("t0k3n").username, "system:serviceaccount:kube-system:multus");
        assert_eq!(UserInfo::for_token("ABCDEF.0123456789abcdef").username, "system:serviceaccount:kube-system:multus");
        let sa = UserInfo::service_account("ns", "sa");
        assert_eq!(sa.service_account_name(), Some(("ns", "sa")));
        assert!(sa.groups.contains(&"system:serviceaccounts:ns".to_string()));
        assert_eq!(bootstrap.service_account_name(), None);
    }

    #[test]
    fn tokens_die_with_their_service_account() {
        let store = Store::new(crate::resources::Registry::with_builtins(), 10);
        let tokens = ServiceAccountTokens::default();
        let sa = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "ns"}});
        assert_eq!(tokens.issue(&store, "ns", "sa", None).unwrap_err().code, 404);
        store.create(sa.clone()).unwrap();
        let (token, _) = tokens.issue(&store, "ns", "sa", None).unwrap();
        assert_eq!(tokens.authenticate(&store, &token).unwrap().unwrap().username, "system:serviceaccount:ns:sa");
        assert!(tokens.authenticate(&store, "unknown").is_none());
        store.delete_kind("v1", "ServiceAccount", "ns", "sa").unwrap();
        assert!(tokens.authenticate(&store, &token).unwrap().is_err());
        // The same name again is another ServiceAccount: the old token stays invalid.
        store.create(sa).unwrap();
        assert!(tokens.authenticate(&store, &token).unwrap().unwrap_err().to_string().contains("does not match"));
        let (expired, _) = tokens.issue(&store, "ns", "sa", Some(Duration::ZERO)).unwrap();
        assert!(tokens.authenticate(&store, &expired).unwrap().is_err());
    }

    #[test]
    fn certificates_are_judged_at_request_time() {
        let ca = CertificateAuthority::generate().unwrap();
        let check = ClientCertificates::new(&ca).unwrap();
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);

        let good =
            ca.issue_client_certificate("system:node:node1", Some("system:nodes"), now - hour, now + hour).unwrap();
        let user = check.authenticate(&[der(&good.certificate_pem)]).unwrap();
        assert_eq!(user.username, "system:node:node1");
        assert_eq!(user.groups, vec!["system:nodes", AUTHENTICATED_GROUP]);

        let expired = ca.issue_client_certificate("system:multus:n", None, now - 2 * hour, now - hour).unwrap();
        assert_eq!(
            check.authenticate(&[der(&expired.certificate_pem)]).unwrap_err().to_string(),
            "x509: certificate has expired or is not yet valid"
        );

        let other = CertificateAuthority::generate().unwrap();
        let foreign = other.issue_client_certificate("system:multus:n", None, now - hour, now + hour).unwrap();
        assert!(
            check
                .authenticate(&[der(&foreign.certificate_pem)])
                .unwrap_err()
                .to_string()
                .starts_with("x509: certificate signed by unknown authority")
        );
        assert!(check.authenticate(&[]).is_err());
    }
}
