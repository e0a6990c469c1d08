//! The kube client as the daemon builds it: from a kubeconfig, or in-cluster from the
//! service-account files; every response bounded by [`crate::limits`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `-kubeconfig` file could not be read or turned into a client config.
    #[error("reading kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The kubeconfig path.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// No `-kubeconfig`, and the in-cluster environment or service-account files are missing.
    #[error("failed to create in-cluster kube client: {0}")]
    InCluster(#[from] InClusterError),
    /// The config was read but the client (TLS, URL) could not be built from it.
    #[error("building the kube client: {0}")]
    Build(String),
}

/// What is missing or wrong for an in-cluster client.
#[derive(Debug, thiserror::Error)]
pub enum InClusterError {
    /// A `KUBERNETES_SERVICE_*` variable the kubelet sets is not set.
    #[error("{0} is not set")]
    NotSet(&'static str),
    /// Host and port do not make a URL.
    #[error("service host/port do not form a URL: {0}")]
    Url(String),
    /// A service-account file could not be read or parsed.
    #[error("{action} {path}: {reason}")]
    File {
        /// `reading` or `parsing`.
        action: &'static str,
        /// The file.
        path: String,
        /// The OS or parser error.
        reason: String,
    },
}

/// Where a pod's service-account token and CA are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Build a client: from `kubeconfig` when given, else in-cluster from
/// `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` and the service-account files
/// (`MULTUS_SERVICEACCOUNT_DIR` overrides their directory, for tests).
pub async fn build_client(kubeconfig: Option<&Path>) -> Result<kube::Client, ClientError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| ClientError::Kubeconfig {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(&e))?
        }
        None => in_cluster_config()?,
    };
    // A plain-http API server (development) needs no trust store: without this, building the
    // client would load the system's root certificates (~20 ms at startup) for nothing.
    if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
        config.root_cert = Some(Vec::new());
    }
    // client-go's defaults in the Go daemon: 1 minute per request.
    config.read_timeout = Some(Duration::from_secs(60));
    config.connect_timeout = Some(Duration::from_secs(10));
    // No hidden retries of 429/503/504 (kube-rs's default: 15 tries, honouring Retry-After):
    // every caller has its own deadline or backoff (the ADD's 2 s pod GET, the 5 s NAD GET, the
    // watches' 0.8–30 s backoff, the network-status write's three short retries). With them, an
    // ADD during a 429 answered "did not answer within 2s" instead of the server's 429, and one
    // list could sit in retries for minutes.
    config.default_retry = false;
    crate::limits::client(config).map_err(|e| ClientError::Build(e.to_string()))
}

fn in_cluster_config() -> Result<kube::Config, InClusterError> {
    let host =
        std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| InClusterError::NotSet("KUBERNETES_SERVICE_HOST"))?;
    let port =
        std::env::var("KUBERNETES_SERVICE_PORT").map_err(|_| InClusterError::NotSet("KUBERNETES_SERVICE_PORT"))?;
    let dir =
        std::env::var("MULTUS_SERVICEACCOUNT_DIR").map(PathBuf::from).unwrap_or_else(|_| SERVICE_ACCOUNT_DIR.into());
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
    let url: http::Uri = format!("https://{host}:{port}").parse().map_err(|e| InClusterError::Url(format!("{e}")))?;
    let ca_path = dir.join("ca.crt");
    let file_error = |action, e: &dyn std::fmt::Display| InClusterError::File {
        action,
        path: ca_path.display().to_string(),
        reason: e.to_string(),
    };
    let ca = std::fs::read(&ca_path).map_err(|e| file_error("reading", &e))?;
    use rustls_pki_types::pem::PemObject as _;
    let certs: Vec<Vec<u8>> = rustls_pki_types::CertificateDer::pem_slice_iter(&ca)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| file_error("parsing", &e))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(certs);
    config.auth_info.token_file = Some(dir.join("token").to_string_lossy().into_owned());
    if let Ok(ns) = std::fs::read_to_string(dir.join("namespace")) {
        config.default_namespace = ns.trim().to_string();
    }
    Ok(config)
}
