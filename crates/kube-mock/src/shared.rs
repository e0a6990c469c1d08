//! The state every connection shares, and the deny rules in it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::auth::{ClientCertificates, ServiceAccountTokens};
use crate::faults::{Faults, Journal, RequestCounter};
use crate::store::Store;

/// Serves one accepted connection until it ends.
pub(crate) type ServeConnection = fn(tokio::net::TcpStream, Arc<Shared>) -> BoxFuture<'static, ()>;

/// A `VERB:RESOURCE` rule answered with 403 Forbidden; `*` matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// Verb to deny (`get`, `patch`, …), or `*`.
    pub verb: String,
    /// Resource to deny it on (`pods`, `pods/status`, …), or `*`.
    pub resource: String,
}

impl std::str::FromStr for DenyRule {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((verb, resource)) if !verb.is_empty() && !resource.is_empty() => {
                Ok(Self { verb: verb.to_lowercase(), resource: resource.to_string() })
            }
            _ => Err(crate::error::Error::InvalidDenyRule(s.to_string())),
        }
    }
}

impl DenyRule {
    pub(crate) fn denies(&self, verb: &str, resource: &str) -> bool {
        (self.verb == "*" || self.verb == verb) && (self.resource == "*" || self.resource == resource)
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub store: Store,
    pub faults: Arc<Faults>,
    pub journal: Journal,
    /// Requests counted per verb, resource, user and status since the last reset.
    pub counters: RequestCounter,
    /// Service-account tokens (the configured one and those issued by TokenRequests).
    pub sa_tokens: Arc<ServiceAccountTokens>,
    /// Evaluate the stored RBAC objects for service-account users.
    pub enforce_rbac: std::sync::atomic::AtomicBool,
    pub token: Option<String>,
    pub deny: std::sync::RwLock<Vec<DenyRule>>,
    pub admin_prefix: String,
    pub bookmark_interval: Duration,
    pub addr: SocketAddr,
    pub tls: Option<TlsAcceptor>,
    /// Checks client certificates (TLS mode).
    pub client_certificates: Option<Arc<ClientCertificates>>,
    /// Smallest `expirationSeconds` of a new CertificateSigningRequest.
    pub csr_min_expiration_seconds: i64,
    /// Signs the serving certificate, client certificates and approved CSRs.
    pub ca: Arc<crate::tls::CertificateAuthority>,
    /// Who approves CSRs (changeable at runtime), and the poke that makes the controller look
    /// at pending ones again.
    pub csr_approval: Arc<std::sync::RwLock<crate::csr::CsrApproval>>,
    pub csr_resync: Arc<tokio::sync::Notify>,
    pub runtime: tokio::runtime::Handle,
    /// Serves one accepted connection (the server's; a hook so that the listener, which the
    /// admin API restarts, needs nothing of the server that routes to the admin API).
    pub serve_connection: ServeConnection,
    /// Stops the current accept loop and its connections; None while not listening.
    pub listening: std::sync::Mutex<Option<watch::Sender<bool>>>,
}
