//! Authentication as the real API server does it: a client certificate signed by the mock's CA
//! (the user is its CN, the groups its O entries), else the bearer token, else nobody.
//!
//! Client certificates are requested at the TLS handshake but judged per request: an expired
//! or foreign certificate gets `401 Unauthorized` (like kube-apiserver, whose x509
//! authenticator runs on every request), and a request on a connection opened before the
//! certificate expired is refused once it has.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;
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
    /// Multus service account.
    pub fn for_token(token: &str) -> Self {
        match bootstrap_token_id(token) {
            Some(id) => Self {
                username: format!("system:bootstrap:{id}"),
                groups: vec!["system:bootstrappers".into(), AUTHENTICATED_GROUP.into()],
            },
            None => Self {
                username: "system:serviceaccount:kube-system:multus".into(),
                groups: vec![
                    "system:serviceaccounts".into(),
                    "system:serviceaccounts:kube-system".into(),
                    AUTHENTICATED_GROUP.into(),
                ],
            },
        }
    }
}

/// The token ID of a bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`).
fn bootstrap_token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (valid(id, 6) && valid(secret, 16)).then_some(id)
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
    pub fn authenticate(&self, chain: &[CertificateDer<'_>]) -> Result<UserInfo, String> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.webpki.verify_client_cert(end_entity, intermediates, UnixTime::now()).map_err(|err| match err {
            rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            ) => "x509: certificate has expired or is not yet valid".to_string(),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                "x509: certificate signed by unknown authority".to_string()
            }
            // Another CA with the same name as ours.
            rustls::Error::InvalidCertificate(CertificateError::BadSignature) => {
                "x509: certificate signed by unknown authority (the signature does not verify)".to_string()
            }
            other => format!("x509: {other}"),
        })?;
        user_of_certificate(end_entity)
    }
}

/// User CN, groups O (plus `system:authenticated`).
fn user_of_certificate(der: &CertificateDer<'_>) -> Result<UserInfo, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("x509: cannot parse the certificate: {e}"))?;
    let subject = cert.subject();
    let username = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("x509: the certificate has no common name")?
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
            check.authenticate(&[der(&expired.certificate_pem)]).unwrap_err(),
            "x509: certificate has expired or is not yet valid"
        );

        let other = CertificateAuthority::generate().unwrap();
        let foreign = other.issue_client_certificate("system:multus:n", None, now - hour, now + hour).unwrap();
        assert!(
            check
                .authenticate(&[der(&foreign.certificate_pem)])
                .unwrap_err()
                .starts_with("x509: certificate signed by unknown authority")
        );
        assert!(check.authenticate(&[]).is_err());
    }
}
