//! kube-mock: a mock Kubernetes API server that real clients (kubectl, kube-rs, client-go)
//! accept, for tests, demos and conformance runs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_mock::Error> {
//! use kube_mock::{MockApiServer, MockConfig};
//! let server = MockApiServer::start(MockConfig::default()).await?;
//! server.store().create(serde_json::json!({
//!     "apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "pod1", "namespace": "default"},
//!     "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}
//! })).expect("stored");
//! println!("{}", server.kubeconfig_yaml());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`resources`] (served resource table) → [`request`] (HTTP request → operation) →
//! [`api`] (operation → [`store`], whose deletion rules — finalizers, graceful pods, the
//! garbage collector, the CRD cleanup, the stand-in kubelet — are in [`store::lifecycle`]) and [`watch`] (event streams); [`server`] does transport,
//! authentication ([`auth`]: client certificates, service-account tokens bound to their
//! ServiceAccount) and authorization (deny rules, opt-in [`rbac`]); [`faults`] (faults, the
//! request journal and counters) and [`admin`] are the test controls. The crate README has
//! the CLI flags, the admin API and what is and is not faithful.

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod csr;
pub mod discovery;
pub mod error;
pub mod faults;
mod listener;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod request;
pub mod resources;
mod response;
pub mod seed;
pub mod selector;
pub mod server;
mod shared;
pub mod status;
pub mod store;
pub mod tls;
pub mod watch;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::Value;

pub use auth::UserInfo;
pub use csr::{CsrApproval, CsrSettings};
pub use error::{Error, SeedParseError};
pub use faults::{FaultRule, Faults, JournalEntry, RequestCounts, RequestMatcher};
pub use resources::{Gvr, ResourceDef};
pub use server::DenyRule;
pub use status::ApiError;
pub use store::{DeleteOptions, Deletion, Propagation, Store};
pub use tls::{CertificateAuthority, IssuedCertificate};

use shared::Shared;

/// How to run a mock API server.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a throwaway CA (see [`MockApiServer::ca_pem`]).
    pub tls: bool,
    /// Require `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// Objects stored at start (namespaces and CRDs first).
    pub seed: Vec<Value>,
    /// Extra subject alternative names (IPs or DNS names) for the serving certificate.
    pub extra_sans: Vec<String>,
    /// Events kept per resource for watches that resume from a resourceVersion; older
    /// resourceVersions get 410 Expired.
    pub watch_history: usize,
    /// Requests answered with 403 Forbidden.
    pub deny: Vec<DenyRule>,
    /// Path prefix of the admin API.
    pub admin_prefix: String,
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Requests kept in the journal.
    pub journal_capacity: usize,
    /// CertificateSigningRequests: who approves them, and the signer's settings.
    pub csr: CsrSettings,
    /// Evaluate the stored RBAC objects for service-account users (403 without a binding that
    /// grants the request); other users keep full access. See [`rbac`].
    pub enforce_rbac: bool,
    /// What the stand-in kubelet does with a terminating pod (one deleted with a grace period):
    /// delete it with grace period 0 after this delay (default zero: right after the MODIFIED
    /// event that set its `deletionTimestamp`), or never (None).
    pub kubelet_delete_after: Option<Duration>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            token: None,
            seed: Vec::new(),
            extra_sans: Vec::new(),
            watch_history: 1000,
            deny: Vec::new(),
            admin_prefix: "/_mock".into(),
            bookmark_interval: Duration::from_secs(10),
            journal_capacity: 10_000,
            csr: CsrSettings::default(),
            enforce_rbac: false,
            kubelet_delete_after: Some(Duration::ZERO),
        }
    }
}

/// A running mock API server. Dropping it (or [`MockApiServer::shutdown`]) stops it.
pub struct MockApiServer {
    shared: Arc<Shared>,
    /// The CA certificate in TLS mode.
    ca_pem: Option<String>,
    /// The approver and signer of CertificateSigningRequests.
    csr_controller: tokio::task::JoinHandle<()>,
    /// Present when the server runs its own runtime ([`MockApiServer::start_blocking`]).
    own_runtime: Option<tokio::runtime::Runtime>,
}

impl MockApiServer {
    /// Starts a server on the current Tokio runtime.
    pub async fn start(cfg: MockConfig) -> Result<Self, Error> {
        Self::start_on(cfg, tokio::runtime::Handle::current(), None).await
    }

    /// Starts a server on a runtime of its own, for callers without one (xtask, sync tests).
    /// Do not call it from inside an async context.
    pub fn start_blocking(cfg: MockConfig) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kube-mock")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let handle = runtime.handle().clone();
        let mut server = runtime.block_on(Self::start_on(cfg, handle, None))?;
        server.own_runtime = Some(runtime);
        Ok(server)
    }

    async fn start_on(
        cfg: MockConfig,
        runtime: tokio::runtime::Handle,
        own_runtime: Option<tokio::runtime::Runtime>,
    ) -> Result<Self, Error> {
        let registry = resources::Registry::with_builtins();
        let store = Store::new(registry, cfg.watch_history);
        store.set_runtime(runtime.clone());
        store.set_kubelet_delay(cfg.kubelet_delete_after);
        let mut seed = cfg.seed.clone();
        seed::order_for_seeding(&mut seed);
        for object in seed {
            let label = format!(
                "{}/{} {}",
                object["apiVersion"].as_str().unwrap_or("?"),
                object["kind"].as_str().unwrap_or("?"),
                object["metadata"]["name"].as_str().unwrap_or("?")
            );
            store.upsert(object).map_err(|source| Error::SeedStore { object: label, source })?;
        }
        // The configured token is the Multus ServiceAccount's: that account exists (as in a
        // cluster that issued the token), and the token dies with it.
        let sa_tokens = Arc::new(auth::ServiceAccountTokens::default());
        if let Some(token) = cfg.token.as_deref().filter(|t| !auth::is_bootstrap_token(t)) {
            let (namespace, name) = auth::CONFIGURED_TOKEN_SERVICE_ACCOUNT;
            if store.get_kind("v1", "ServiceAccount", namespace, name).is_none() {
                let account = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                                 "metadata": {"name": name, "namespace": namespace}});
                store.create(account).map_err(|source| Error::SeedStore {
                    object: format!("v1/ServiceAccount {namespace}/{name}"),
                    source,
                })?;
            }
            sa_tokens.bind(&store, token, namespace, name, None).map_err(|source| Error::SeedStore {
                object: format!("v1/ServiceAccount {namespace}/{name}"),
                source,
            })?;
        }
        // Also without TLS: approved CSRs are signed by it.
        let ca = Arc::new(CertificateAuthority::generate()?);
        let (tls, client_certificates, ca_pem) = if cfg.tls {
            let client_certificates = Arc::new(auth::ClientCertificates::new(&ca)?);
            let server_config = ca.server_config(&cfg.extra_sans, client_certificates.clone())?;
            (
                Some(tokio_rustls::TlsAcceptor::from(server_config)),
                Some(client_certificates),
                Some(ca.pem().to_string()),
            )
        } else {
            (None, None, None)
        };
        // The port chosen here is kept across stop/resume.
        let listen_err = |source| Error::Listen { addr: cfg.listen, source };
        let listener = std::net::TcpListener::bind(cfg.listen).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let shared = Arc::new(Shared {
            store,
            faults: Arc::new(Faults::default()),
            journal: faults::Journal::new(cfg.journal_capacity),
            counters: faults::RequestCounter::default(),
            sa_tokens,
            enforce_rbac: std::sync::atomic::AtomicBool::new(cfg.enforce_rbac),
            token: cfg.token.clone(),
            deny: std::sync::RwLock::new(cfg.deny.clone()),
            admin_prefix: cfg.admin_prefix.trim_end_matches('/').to_string(),
            bookmark_interval: cfg.bookmark_interval,
            addr,
            tls,
            client_certificates,
            csr_min_expiration_seconds: cfg.csr.min_expiration_seconds,
            ca: ca.clone(),
            csr_approval: Arc::new(RwLock::new(cfg.csr.approval)),
            csr_resync: Arc::new(tokio::sync::Notify::new()),
            runtime,
            serve_connection: server::connection,
            listening: std::sync::Mutex::new(None),
        });
        let controller = csr::CsrController {
            store: shared.store.clone(),
            ca,
            settings: cfg.csr.clone(),
            approval: shared.csr_approval.clone(),
            resync: shared.csr_resync.clone(),
        };
        let csr_controller = shared.runtime.spawn(controller.run());
        listener::start_listening(&shared, Some(listener)).map_err(|source| Error::Listen { addr, source })?;
        tracing::info!(%addr, tls = cfg.tls, "kube-mock listening");
        Ok(Self { shared, ca_pem, csr_controller, own_runtime })
    }

    /// The address the server listens on (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.shared.addr)
    }

    /// The CA certificate (PEM) that signed the serving certificate, in TLS mode.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The bearer token clients must send, when one was configured.
    pub fn token(&self) -> Option<String> {
        self.shared.token.clone()
    }

    /// A kubeconfig for this server (CA data in TLS mode, the token when one is set).
    pub fn kubeconfig_yaml(&self) -> String {
        let user = match &self.shared.token {
            Some(token) => format!("    token: {token}\n"),
            None => "    username: kube-mock\n".to_string(),
        };
        self.kubeconfig_with_user(&user)
    }

    /// A kubeconfig that authenticates with a client certificate (e.g. from
    /// [`MockApiServer::issue_client_certificate`]) instead of the token, like a kubelet's.
    pub fn kubeconfig_yaml_with_client_certificate(&self, certificate: &IssuedCertificate) -> String {
        self.kubeconfig_with_user(&client_certificate_user(certificate))
    }

    fn kubeconfig_with_user(&self, user: &str) -> String {
        kubeconfig_document(&self.url(), self.ca_pem.as_deref(), user)
    }

    /// Write [`MockApiServer::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Writes `token`, `ca.crt` (TLS mode only) and `namespace` the way a pod's service
    /// account mount has them. Without a configured token the file holds a placeholder,
    /// which the server accepts because it does not check tokens then.
    pub fn write_in_cluster_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let token = self.shared.token.clone().unwrap_or_else(|| "kube-mock-unchecked-token".into());
        std::fs::write(dir.join("token"), token)?;
        if let Some(ca) = &self.ca_pem {
            std::fs::write(dir.join("ca.crt"), ca)?;
        }
        std::fs::write(dir.join("namespace"), "default")
    }

    /// The CA that signs the serving certificate, client certificates and approved CSRs.
    pub fn certificate_authority(&self) -> &CertificateAuthority {
        &self.shared.ca
    }

    /// A client certificate the server accepts (TLS mode): user `common_name`, group
    /// `organization`, valid from a minute ago for `valid_for`.
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        organization: Option<&str>,
        valid_for: Duration,
    ) -> Result<IssuedCertificate, Error> {
        let now = SystemTime::now();
        let not_before = now.checked_sub(Duration::from_secs(60)).unwrap_or(now);
        self.shared.ca.issue_client_certificate(common_name, organization, not_before, now + valid_for)
    }

    /// Who approves new CertificateSigningRequests now.
    pub fn csr_approval(&self) -> CsrApproval {
        self.shared.csr_approval.read().map(|a| *a).unwrap_or_default()
    }

    /// Changes who approves CertificateSigningRequests; pending ones are looked at again.
    pub fn set_csr_approval(&self, approval: CsrApproval) {
        if let Ok(mut current) = self.shared.csr_approval.write() {
            *current = approval;
        }
        self.shared.csr_resync.notify_one();
    }

    /// Approves a pending CertificateSigningRequest (the signer then issues its certificate).
    pub fn approve_csr(&self, name: &str, message: &str) -> Result<Value, ApiError> {
        csr::decide(&self.shared.store, name, true, "KubeMockApprove", message)
    }

    /// Denies a pending CertificateSigningRequest.
    pub fn deny_csr(&self, name: &str, message: &str) -> Result<Value, ApiError> {
        csr::decide(&self.shared.store, name, false, "KubeMockDeny", message)
    }

    /// The stored CertificateSigningRequests.
    pub fn csrs(&self) -> Vec<Value> {
        self.shared.store.list_kind("certificates.k8s.io/v1", "CertificateSigningRequest", None)
    }

    /// Direct access to stored objects.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Injected faults: latency, failures, conflicts and watch interruptions.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Requests received so far (admin API requests excluded), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.entries()
    }

    /// Forget the requests received so far.
    pub fn clear_journal(&self) {
        self.shared.journal.clear();
    }

    /// Requests counted since the start or the last [`MockApiServer::take_request_counts`]
    /// (per verb and resource, user and status; not bounded by the journal's capacity).
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.counters.snapshot()
    }

    /// The request counts so far; counting starts again from zero.
    pub fn take_request_counts(&self) -> RequestCounts {
        self.shared.counters.take()
    }

    /// Turns RBAC enforcement for service-account users on or off (see [`rbac`]).
    pub fn set_rbac_enforcement(&self, enforce: bool) {
        self.shared.enforce_rbac.store(enforce, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether RBAC is enforced for service-account users.
    pub fn rbac_enforced(&self) -> bool {
        self.shared.enforce_rbac.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the stand-in kubelet does with terminating pods: delete them with grace period 0
    /// after `delay`, or never (None). See [`Store::set_kubelet_delay`].
    pub fn set_kubelet_delete_after(&self, delay: Option<Duration>) {
        self.shared.store.set_kubelet_delay(delay);
    }

    /// The stand-in kubelet's delay.
    pub fn kubelet_delete_after(&self) -> Option<Duration> {
        self.shared.store.kubelet_delay()
    }

    /// A token of the ServiceAccount `namespace/name` (which must exist), as a TokenRequest
    /// returns it: valid for `lifetime` (None: without expiry) and until the ServiceAccount
    /// is deleted.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
        lifetime: Option<Duration>,
    ) -> Result<String, ApiError> {
        self.shared.sa_tokens.issue(&self.shared.store, namespace, name, lifetime).map(|(token, _)| token)
    }

    /// A kubeconfig for this server that authenticates with `token`.
    pub fn kubeconfig_yaml_with_token(&self, token: &str) -> String {
        self.kubeconfig_with_user(&format!("    token: {token}\n"))
    }

    /// Replaces the deny rules (403 Forbidden for matching requests).
    pub fn set_deny_rules(&self, rules: Vec<DenyRule>) {
        if let Ok(mut deny) = self.shared.deny.write() {
            *deny = rules;
        }
    }

    /// Forgets the watch history and sends 410 Expired to every open watch, as after an
    /// etcd compaction: clients must relist.
    pub fn expire_watches(&self) {
        self.shared.store.compact(None);
        self.shared.faults.expire_watches(None);
    }

    /// The API server goes down: the port is closed and open connections are dropped.
    pub async fn stop_listening(&self) {
        if listener::stop_listening(&self.shared) {
            tokio::time::sleep(listener::STOP_SETTLE).await;
        }
    }

    /// The API server comes back on the same port (errors are logged; see
    /// [`MockApiServer::try_resume_listening`]).
    pub async fn resume_listening(&self) {
        if let Err(err) = self.try_resume_listening().await {
            tracing::error!(%err, addr = %self.shared.addr, "cannot listen again");
        }
    }

    /// The API server comes back on the same port.
    pub async fn try_resume_listening(&self) -> io::Result<()> {
        listener::start_listening(&self.shared, None)
    }

    /// Stop serving: the port is closed and open connections are dropped.
    pub async fn shutdown(self) {
        self.stop_listening().await;
    }

    /// The runtime the server runs on (its own one after `start_blocking`).
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.shared.runtime.clone()
    }
}

/// The `user:` lines of a kubeconfig that authenticates with `certificate`.
pub(crate) fn client_certificate_user(certificate: &IssuedCertificate) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&certificate.certificate_pem),
        b64(&certificate.key_pem)
    )
}

/// A one-cluster kubeconfig for `url` (trusting `ca_pem`) with the given `user:` lines.
pub(crate) fn kubeconfig_document(url: &str, ca_pem: Option<&str>, user: &str) -> String {
    let ca = ca_pem
        .map(|pem| {
            format!("    certificate-authority-data: {}\n", base64::engine::general_purpose::STANDARD.encode(pem))
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-mock\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: kube-mock\n  context:\n    cluster: kube-mock\n    user: kube-mock\n    namespace: default\ncurrent-context: kube-mock\nusers:\n- name: kube-mock\n  user:\n{user}preferences: {{}}\n"
    )
}

impl Drop for MockApiServer {
    fn drop(&mut self) {
        listener::stop_listening(&self.shared);
        self.csr_controller.abort();
        if let Some(runtime) = self.own_runtime.take() {
            // Never blocks, so dropping inside an async context is fine too.
            runtime.shutdown_background();
        }
    }
}
