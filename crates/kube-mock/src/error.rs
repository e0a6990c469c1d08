//! Library errors.

use std::path::PathBuf;

/// Why the mock could not start or could not apply its settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What `bind` answered.
        source: std::io::Error,
    },
    /// The CA or the serving certificate could not be generated.
    #[error("cannot create the TLS certificates: {0}")]
    Certificate(String),
    /// A seed file could not be read.
    #[error("cannot read seed file {path}: {source}")]
    SeedRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A seed file is not YAML or JSON objects.
    #[error("cannot parse seed file {path}: {source}")]
    SeedParse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: SeedParseError,
    },
    /// A seed object was refused by the store.
    #[error("cannot store seed object {object}: {source}")]
    SeedStore {
        /// `kind namespace/name` of the object.
        object: String,
        /// The API error the store answered.
        source: crate::status::ApiError,
    },
    /// A `--deny` rule that is not `VERB:RESOURCE`.
    #[error("invalid deny rule {0:?}: expected VERB:RESOURCE, e.g. update:pods/status or *:secrets")]
    InvalidDenyRule(String),
    /// A fault rule that cannot be applied (e.g. a bad path regex).
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    /// An unknown `--csr-approval` mode.
    #[error("invalid CSR approval {0:?}: expected manual, approve-all or multus-cert-approver")]
    InvalidCsrApproval(String),
    /// The async runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Why seed text is not YAML or JSON.
pub use kube_objects::ParseError as SeedParseError;
