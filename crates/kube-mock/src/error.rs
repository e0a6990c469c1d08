//! Library errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot create the TLS certificates: {0}")]
    Certificate(String),
    #[error("cannot read seed file {path}: {source}")]
    SeedRead { path: PathBuf, source: std::io::Error },
    #[error("cannot parse seed file {path}: {message}")]
    SeedParse { path: PathBuf, message: String },
    #[error("cannot store seed object {object}: {source}")]
    SeedStore { object: String, source: crate::status::ApiError },
    #[error("invalid deny rule {0:?}: expected VERB:RESOURCE, e.g. update:pods/status or *:secrets")]
    InvalidDenyRule(String),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("invalid CSR approval {0:?}: expected manual, approve-all or multus-cert-approver")]
    InvalidCsrApproval(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
