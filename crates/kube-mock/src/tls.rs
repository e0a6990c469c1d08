//! The mock's certificate authority and its TLS server configuration.
//!
//! One CA per server run signs the serving certificate, the client certificates tests ask for
//! ([`CertificateAuthority::issue_client_certificate`]) and the approved
//! CertificateSigningRequests ([`crate::csr`]). The server asks every client for a certificate
//! but accepts the handshake without one; whether a presented certificate is good is decided
//! per request ([`crate::auth`]), so a bad one gets a 401 like from the real API server rather
//! than a TLS alert.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::ClientCertVerifier;

use crate::error::Error;

fn cert_err(e: impl std::fmt::Display) -> Error {
    Error::Certificate(e.to_string())
}

/// A certificate and its private key (PKCS#8), PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// The CA of one server run.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

/// A random positive 128-bit serial number.
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

impl CertificateAuthority {
    /// A fresh CA (ECDSA P-256) named `kube-mock-ca`.
    pub fn generate() -> Result<Self, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kube-mock-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self { pem: cert.pem(), der: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// A client certificate (new ECDSA P-256 key, extended key usage client auth) with subject
    /// CN `common_name` and O `organization`, valid from `not_before` to `not_after`. The API
    /// server authenticates it as user `common_name` in group `organization`.
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        organization: Option<&str>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, Error> {
        let key = KeyPair::generate().map_err(cert_err)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(organization) = organization {
            params.distinguished_name.push(DnType::OrganizationName, organization);
        }
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(IssuedCertificate { certificate_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Signs a parsed certificate request: its subject and subject alternative names, the given
    /// usages and validity, a random serial. Returns the certificate as PEM.
    pub(crate) fn sign_request(
        &self,
        mut request: CertificateSigningRequestParams,
        key_usages: Vec<KeyUsagePurpose>,
        extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<String, Error> {
        let params = &mut request.params;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = extended_key_usages;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions.clear();
        Ok(request.signed_by(&self.issuer).map_err(cert_err)?.pem())
    }

    /// The serving configuration: a certificate for 127.0.0.1, localhost, ::1, the
    /// `kubernetes.default.svc` names and `extra_sans` (IP addresses or DNS names); client
    /// certificates requested and checked by `client_certificates`.
    pub fn server_config(
        &self,
        extra_sans: &[String],
        client_certificates: Arc<dyn ClientCertVerifier>,
    ) -> Result<Arc<rustls::ServerConfig>, Error> {
        let mut names: Vec<String> =
            ["127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        names.extend(extra_sans.iter().cloned());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
        for name in &names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into().map_err(cert_err)?),
            };
            params.subject_alt_names.push(san);
        }
        let server_key = KeyPair::generate().map_err(cert_err)?;
        let server_cert = params.signed_by(&server_key, &self.issuer).map_err(cert_err)?;

        let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(cert_err)?
            .with_client_cert_verifier(client_certificates)
            .with_single_cert(chain, key)
            .map_err(cert_err)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The rustls crypto provider the mock uses everywhere.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
