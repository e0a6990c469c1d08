//! The PKCS#10 request in `spec.request`: what the approver reads from it.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

/// The parts of a certificate request the rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSubject {
    /// The subject's first common name (empty when there is none).
    pub common_name: String,
    /// The subject's organizations, in order.
    pub organizations: Vec<String>,
    /// The request asks for subject alternative names (a client certificate needs none).
    pub has_alt_names: bool,
}

/// Why `spec.request` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not a PEM block.
    #[error("not PEM: {0}")]
    NotPem(String),
    /// A PEM block of another type.
    #[error("PEM block type {0:?}, expected CERTIFICATE REQUEST")]
    WrongBlock(String),
    /// Not a DER PKCS#10 request.
    #[error("malformed certificate request: {0}")]
    Malformed(String),
    /// Not signed by the key it carries.
    #[error("invalid certificate request signature: {0}")]
    BadSignature(String),
}

/// Reads a PEM `CERTIFICATE REQUEST` and checks its self-signature.
pub fn parse_request(pem: &[u8]) -> Result<RequestSubject, RequestError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| RequestError::NotPem(e.to_string()))?;
    if block.label != "CERTIFICATE REQUEST" && block.label != "NEW CERTIFICATE REQUEST" {
        return Err(RequestError::WrongBlock(block.label));
    }
    let (_, request) =
        X509CertificationRequest::from_der(&block.contents).map_err(|e| RequestError::Malformed(e.to_string()))?;
    request.verify_signature().map_err(|e| RequestError::BadSignature(e.to_string()))?;
    let info = &request.certification_request_info;
    let common_name =
        info.subject.iter_common_name().next().and_then(|c| c.as_str().ok()).unwrap_or_default().to_string();
    let organizations = info.subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
    let has_alt_names = request
        .requested_extensions()
        .is_some_and(|mut exts| exts.any(|e| matches!(e, ParsedExtension::SubjectAlternativeName(_))));
    Ok(RequestSubject { common_name, organizations, has_alt_names })
}
