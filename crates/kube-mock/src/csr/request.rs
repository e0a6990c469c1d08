//! The certificate request in `spec.request`: decoded, parsed and its signature checked.

use base64::Engine as _;
use rustls::pki_types::CertificateSigningRequestDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use x509_parser::prelude::FromDer;

/// Why `spec.request` holds no usable certificate request (worded as the API server's
/// validation and Go's x509 package word it).
#[derive(Debug, thiserror::Error)]
pub(super) enum RequestError {
    #[error("Required value")]
    Missing,
    #[error("Invalid value: not base64: {0}")]
    NotBase64(base64::DecodeError),
    #[error("Invalid value: \"<{0} bytes>\": PEM block type must be CERTIFICATE REQUEST")]
    NotPem(usize),
    #[error("x509: malformed certificate request: {0}")]
    Malformed(x509_parser::nom::Err<x509_parser::error::X509Error>),
    #[error("x509: invalid certificate request signature: {0}")]
    BadSignature(x509_parser::error::X509Error),
}

/// The DER of `spec.request` (base64 of a PEM `CERTIFICATE REQUEST`), or why not.
pub(super) fn request_der(csr: &Value) -> Result<CertificateSigningRequestDer<'static>, RequestError> {
    let encoded = csr["spec"]["request"].as_str().filter(|r| !r.is_empty()).ok_or(RequestError::Missing)?;
    let pem = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(RequestError::NotBase64)?;
    CertificateSigningRequestDer::from_pem_slice(&pem).map_err(|_| RequestError::NotPem(pem.len()))
}

/// Subject CN and O entries of a certificate request, after checking its signature.
pub(super) fn request_subject(der: &CertificateSigningRequestDer<'_>) -> Result<(String, Vec<String>), RequestError> {
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der).map_err(RequestError::Malformed)?;
    request.verify_signature().map_err(RequestError::BadSignature)?;
    let subject = &request.certification_request_info.subject;
    let cn = subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string();
    let orgs = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    Ok((cn, orgs))
}
