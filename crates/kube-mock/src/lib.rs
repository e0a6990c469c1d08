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
//! [`api`] (operation → [`store`]) and [`watch`] (event streams); [`server`] does transport,
//! auth and faults; [`faults`] and [`admin`] are the test controls.

pub mod admin;
pub mod api;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod patch;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod seed;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod tls;
pub mod watch;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

pub use error::Error;
pub use faults::{FaultRule, Faults, JournalEntry, RequestMatcher};
pub use resources::{Gvr, ResourceDef};
pub use server::DenyRule;
pub use status::ApiError;
pub use store::Store;

use server::Shared;

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
        }
    }
}

/// A running mock API server. Dropping it (or [`MockApiServer::shutdown`]) stops it.
pub struct MockApiServer {
    shared: Arc<Shared>,
    ca_pem: Option<String>,
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
        let (tls, ca_pem) = if cfg.tls {
            let material = tls::generate(&cfg.extra_sans)?;
            (Some(tokio_rustls::TlsAcceptor::from(material.server_config)), Some(material.ca_pem))
        } else {
            (None, None)
        };
        // The port chosen here is kept across stop/resume.
        let listen_err = |source| Error::Listen { addr: cfg.listen, source };
        let listener = std::net::TcpListener::bind(cfg.listen).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let shared = Arc::new(Shared {
            store,
            faults: Arc::new(Faults::default()),
            journal: faults::Journal::new(cfg.journal_capacity),
            token: cfg.token.clone(),
            deny: std::sync::RwLock::new(cfg.deny.clone()),
            admin_prefix: cfg.admin_prefix.trim_end_matches('/').to_string(),
            bookmark_interval: cfg.bookmark_interval,
            addr,
            tls,
            runtime,
            listening: std::sync::Mutex::new(None),
        });
        server::start_listening(&shared, Some(listener)).map_err(|source| Error::Listen { addr, source })?;
        tracing::info!(%addr, tls = cfg.tls, "kube-mock listening");
        Ok(Self { shared, ca_pem, own_runtime })
    }

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

    pub fn token(&self) -> Option<String> {
        self.shared.token.clone()
    }

    /// A kubeconfig for this server (CA data in TLS mode, the token when one is set).
    pub fn kubeconfig_yaml(&self) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ca = self
            .ca_pem
            .as_deref()
            .map(|pem| format!("    certificate-authority-data: {}\n", b64(pem)))
            .unwrap_or_default();
        let user = match &self.shared.token {
            Some(token) => format!("    token: {token}\n"),
            None => "    username: kube-mock\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-mock\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: kube-mock\n  context:\n    cluster: kube-mock\n    user: kube-mock\n    namespace: default\ncurrent-context: kube-mock\nusers:\n- name: kube-mock\n  user:\n{user}preferences: {{}}\n",
            url = self.url()
        )
    }

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

    /// Direct access to stored objects.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Requests received so far (admin API requests excluded), oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.shared.journal.clear();
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
        if server::stop_listening(&self.shared) {
            tokio::time::sleep(server::STOP_SETTLE).await;
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
        server::start_listening(&self.shared, None)
    }

    pub async fn shutdown(self) {
        self.stop_listening().await;
    }

    /// The runtime the server runs on (its own one after `start_blocking`).
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.shared.runtime.clone()
    }
}

impl Drop for MockApiServer {
    fn drop(&mut self) {
        server::stop_listening(&self.shared);
        if let Some(runtime) = self.own_runtime.take() {
            // Never blocks, so dropping inside an async context is fine too.
            runtime.shutdown_background();
        }
    }
}
