//! Per-node client certificates (`perNodeCertificate`, spec §2.5).
//!
//! With `perNodeCertificate.enabled` the daemon authenticates with a client certificate of its
//! own instead of a service-account token. It files a CertificateSigningRequest (signer
//! `kubernetes.io/kube-apiserver-client`, subject CN `system:multus:<MULTUS_NODE_NAME>`
//! O `system:multus`, usages digital signature + client auth, `expirationSeconds` =
//! `certDuration`) with the credentials of `bootstrapKubeconfig`, waits for the issued
//! certificate, keeps it in `certDir` and renews it before it expires — what the Go daemon gets
//! from client-go's certificate manager.
//!
//! Choices, and why:
//! - **One client for the daemon's life.** Its TLS layer asks a resolver for the client
//!   certificate at every handshake, and installing a new certificate closes every connection
//!   opened with an older one (client-go's transport does the same on rotation). The watch
//!   caches and request paths therefore never hold a stale client — there is nothing to swap —
//!   and no connection goes on authenticating with a certificate after it was replaced. TLS
//!   session resumption is off: a resumed session would present the old certificate.
//! - **Renewal** at a random point between 70 % and 90 % of the lifetime (client-go),
//!   authenticating with the current certificate while it is valid, else with the bootstrap
//!   credentials. A failed attempt is retried after 2, 4, 8, 16, 32 s, then every 32 s
//!   (client-go's backoff); one CSR waits up to 15 min for its certificate.
//! - **Startup** waits up to 2 min for the first certificate (Go), retrying the same way, and
//!   then fails with the last reason (e.g. the denial). A stored certificate that is still valid
//!   and has the expected subject is used without a new CSR.
//! - The bootstrap kubeconfig is **re-read before every CSR made with it and at every reload**,
//!   which covers Go's reload after "x509: certificate signed by unknown authority" (a CA
//!   rotated on disk). Unlike Go, the long-lived client follows the new CA too (its server
//!   verifier is swapped like its certificate); its server URL stays the one read at start.
//! - **The store** has client-go's file-store layout: `multus-client-<YYYY-MM-DD-HH-MM-SS>.pem`
//!   holds the certificate chain, then the private key (PKCS#8 PEM; client-go writes SEC1, and
//!   both load either), and `multus-client-current.pem` is a symlink to it, replaced atomically
//!   (a `multus-client-updated.pem` link renamed over it). Unlike client-go the link target is
//!   relative, so it stays valid when `certDir` is mounted at another path, and only the two
//!   newest pairs are kept instead of every pair ever issued.
//! - The stored pair is **re-read** every 10 s when `certDuration` < 1 h, else every 5 min (Go's
//!   client-certificate reload interval), so a pair written by another process is used too.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::client::ConfigExt;
use kube::runtime::WatchStreamExt;
use multus::config::PerNodeCertificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, watch};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Environment variable naming this node (the pod's `spec.nodeName`).
pub const NODE_NAME_ENV: &str = "MULTUS_NODE_NAME";
/// Prefix of the files in `certDir` (client-go file store).
pub const FILE_PREFIX: &str = "multus-client";
/// The pair in use: a symlink to the newest `multus-client-<timestamp>.pem`.
pub const CURRENT_FILE: &str = "multus-client-current.pem";
const UPDATED_FILE: &str = "multus-client-updated.pem";
/// The signer of API-server client certificates.
pub const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client";
/// Subject organization, and the prefix of the subject common name (`system:multus:<node>`).
pub const ORGANIZATION: &str = "system:multus";
/// Requested key usages, in the order client-go sends them.
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// `certDuration` when unset.
pub const DEFAULT_CERT_DURATION: Duration = Duration::from_secs(600);
/// Pairs kept in `certDir` (the current one and the one before).
const KEPT_PAIRS: usize = 2;

/// Why per-node certificates cannot be used; the daemon stops at startup with it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("perNodeCertificate.bootstrapKubeconfig is required when perNodeCertificate.enabled is true")]
    MissingBootstrapKubeconfig,
    #[error("perNodeCertificate.certDir is required when perNodeCertificate.enabled is true")]
    MissingCertDir,
    #[error(
        "perNodeCertificate needs the node name: set {NODE_NAME_ENV} (from spec.nodeName) in the daemon's environment"
    )]
    MissingNodeName,
    #[error("perNodeCertificate.certDuration {value:?}: {reason}")]
    InvalidCertDuration { value: String, reason: String },
    #[error("failed to load bootstrap kubeconfig {path}: {reason}")]
    Bootstrap { path: PathBuf, reason: String },
    #[error("perNodeCertificate.certDir {path}: {source}")]
    CertDir { path: PathBuf, source: io::Error },
    #[error("building the kube client with the per-node certificate: {0}")]
    Client(String),
    #[error("no client certificate for {common_name} after waiting {waited:?}: {last}")]
    NotIssued { common_name: String, waited: Duration, last: RotationError },
}

/// Why one attempt to get a certificate failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("cannot build a client for the CSR: {0}")]
    Client(String),
    #[error("creating the CertificateSigningRequest: {0}")]
    Create(String),
    #[error("CertificateSigningRequest {name} was denied (reason {reason:?}): {message}")]
    Denied { name: String, reason: String, message: String },
    #[error("CertificateSigningRequest {name} failed (reason {reason:?}): {message}")]
    Failed { name: String, reason: String, message: String },
    #[error("CertificateSigningRequest {name} was not approved and signed within {waited:?}")]
    NotSigned { name: String, waited: Duration },
    #[error("waiting for CertificateSigningRequest {name}: {reason}")]
    Watch { name: String, reason: String },
    #[error("the certificate issued for CertificateSigningRequest {name} is unusable: {reason}")]
    Unusable { name: String, reason: String },
    #[error("storing the certificate in {path}: {source}")]
    Store { path: PathBuf, source: io::Error },
    #[error("the per-node certificate manager was stopped")]
    Stopped,
}

/// Why the stored pair cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be read (other than not existing): not retried at startup.
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// It is there but not a usable pair (partial write, garbage, key mismatch).
    #[error("{path} is not a usable certificate/key pair: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

// ---------------------------------------------------------------------------------------------
// configuration

/// Parses a Go duration string as `time.ParseDuration` does: decimal numbers with an optional
/// fraction, each followed by a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), e.g. `10m`,
/// `1h30m`, `1.5h`, `90s`; a bare `0` is zero. Negative durations are refused.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest.starts_with('-') {
        return Err("must not be negative".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("invalid duration \"\"".into());
    }
    let invalid = || format!("invalid duration {input:?}");
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (whole, after) = rest.split_at(digits_end);
        let (fraction, after) = match after.strip_prefix('.') {
            Some(f) => {
                let end = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(end)
            }
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let unit_end = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("missing unit in duration {input:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {input:?}")),
        };
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        let mut part = whole.checked_mul(unit_nanos).ok_or_else(invalid)?;
        // The fraction, exactly to the nanosecond (further digits cannot matter).
        let mut scale = unit_nanos;
        for digit in fraction.bytes().take(20) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total_nanos = total_nanos.checked_add(part).ok_or_else(invalid)?;
        rest = after;
    }
    // Go durations are int64 nanoseconds.
    if total_nanos > i64::MAX as u128 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// The manager's clock: how long to wait and how often to retry. [`Timing::for_duration`] has
/// the Go values; tests shorten them.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// How long startup waits for the first certificate.
    pub startup_wait: Duration,
    /// How long one CSR may wait for approval and signing before a new one is filed.
    pub csr_wait: Duration,
    /// Renewal point as a fraction of the lifetime, chosen uniformly in `[lower, upper]`.
    pub rotation_fraction: (f64, f64),
    /// First retry delay after a failed attempt; doubled for `retry_steps` attempts.
    pub retry_initial: Duration,
    pub retry_steps: u32,
    /// Delay between attempts once the doubling is over.
    pub retry_interval: Duration,
    /// How often the stored pair is re-read.
    pub reload_interval: Duration,
}

impl Timing {
    /// The Go daemon's values for certificates of `cert_duration`.
    pub fn for_duration(cert_duration: Duration) -> Self {
        Self {
            startup_wait: Duration::from_secs(120),
            csr_wait: Duration::from_secs(15 * 60),
            rotation_fraction: (0.7, 0.9),
            retry_initial: Duration::from_secs(2),
            retry_steps: 5,
            retry_interval: Duration::from_secs(32),
            reload_interval: if cert_duration < Duration::from_secs(3600) {
                Duration::from_secs(10)
            } else {
                Duration::from_secs(300)
            },
        }
    }

    /// Delay before retry number `attempt` (0-based), without jitter: 2, 4, 8, 16, 32 s, then
    /// every 32 s with the Go values.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        if attempt < self.retry_steps {
            self.retry_initial.saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
        } else {
            self.retry_interval
        }
    }
}

/// What the manager needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CertManagerConfig {
    pub node_name: String,
    pub bootstrap_kubeconfig: PathBuf,
    pub cert_dir: PathBuf,
    /// Requested lifetime (`expirationSeconds`).
    pub cert_duration: Duration,
    pub timing: Timing,
}

impl CertManagerConfig {
    /// From the daemon config's `perNodeCertificate` and `MULTUS_NODE_NAME`, with the Go
    /// daemon's rules: both paths and the node name are required, `certDuration` defaults to
    /// `10m` and must be a positive whole number of seconds' worth (at least 1 s).
    pub fn from_settings(settings: &PerNodeCertificate, node_name: Option<&str>) -> Result<Self, CertError> {
        if settings.bootstrap_kubeconfig.trim().is_empty() {
            return Err(CertError::MissingBootstrapKubeconfig);
        }
        if settings.cert_dir.trim().is_empty() {
            return Err(CertError::MissingCertDir);
        }
        let node_name = node_name.map(str::trim).filter(|n| !n.is_empty()).ok_or(CertError::MissingNodeName)?;
        let cert_duration = if settings.cert_duration.is_empty() {
            DEFAULT_CERT_DURATION
        } else {
            let invalid =
                |reason: String| CertError::InvalidCertDuration { value: settings.cert_duration.clone(), reason };
            let duration = parse_go_duration(&settings.cert_duration).map_err(invalid)?;
            if duration < Duration::from_secs(1) || duration.as_secs() > i32::MAX as u64 {
                return Err(invalid("must be between 1s and about 68 years".into()));
            }
            duration
        };
        Ok(Self {
            node_name: node_name.to_string(),
            bootstrap_kubeconfig: PathBuf::from(&settings.bootstrap_kubeconfig),
            cert_dir: PathBuf::from(&settings.cert_dir),
            cert_duration,
            timing: Timing::for_duration(cert_duration),
        })
    }

    /// `system:multus:<node>`.
    pub fn common_name(&self) -> String {
        format!("{ORGANIZATION}:{}", self.node_name)
    }
}

// ---------------------------------------------------------------------------------------------
// certificates and the store

/// A client certificate with its key, as stored and as used.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The chain (leaf first), PEM.
    pub certificate_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub common_name: String,
    pub organizations: Vec<String>,
    /// Hex serial number, to tell certificates apart.
    pub serial: String,
    certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("common_name", &self.common_name)
            .field("organizations", &self.organizations)
            .field("serial", &self.serial)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// From a certificate chain and a private key (PEM); checks that they belong together.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("invalid PEM: {e}"))?;
        let leaf = chain.first().ok_or("failed to find any PEM data in certificate input")?.clone();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("no private key: {e}"))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| format!("certificate and key do not match: {e}"))?;
        let (_, parsed) = X509Certificate::from_der(&leaf).map_err(|e| format!("cannot parse the certificate: {e}"))?;
        let time =
            |t: x509_parser::time::ASN1Time| SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64);
        let subject = parsed.subject();
        Ok(Self {
            certificate_pem: certificate_pem.to_string(),
            key_pem: key_pem.to_string(),
            not_before: time(parsed.validity().not_before),
            not_after: time(parsed.validity().not_after),
            common_name: subject
                .iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok())
                .unwrap_or_default()
                .to_string(),
            organizations: subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect(),
            serial: parsed.raw_serial_as_string(),
            certified: Arc::new(certified),
        })
    }

    /// From a pair file: the certificate blocks and the key block in one PEM file.
    pub fn from_pair_pem(pair: &str) -> Result<Self, String> {
        if !pair.contains("-----BEGIN") {
            return Err("failed to find any PEM data".into());
        }
        Self::from_pem(pair, pair)
    }

    /// The pair file's content: certificate chain, then the key.
    pub fn pair_pem(&self) -> String {
        let mut pair = self.certificate_pem.trim_end().to_string();
        pair.push('\n');
        pair.push_str(self.key_pem.trim_end());
        pair.push('\n');
        pair
    }

    /// Whether `now` is past `notAfter`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// Whether the subject is the one this node requests (CN `system:multus:<node>`, O
    /// `system:multus`); a renamed node or changed template gets a new certificate.
    pub fn has_subject(&self, common_name: &str) -> bool {
        self.common_name == common_name && self.organizations == [ORGANIZATION]
    }
}

/// When to renew a certificate: `fraction` (0–1) of the way from `not_before` to `not_after`.
pub fn rotation_deadline(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or_default();
    not_before + total.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A uniformly distributed number in [0, 1) from the standard library's per-process random
/// hash keys (jitter needs no stronger randomness).
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now()) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

fn random_between(lower: f64, upper: f64) -> f64 {
    lower + (upper - lower).max(0.0) * random_unit()
}

/// client-go's file store layout in `certDir`.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<certDir>/multus-client-current.pem`.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT_FILE)
    }

    /// The current pair; None when there is none yet.
    pub fn load(&self) -> Result<Option<ClientCertificate>, StoreError> {
        let path = self.current_path();
        let pair = match std::fs::read_to_string(&path) {
            Ok(pair) => pair,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        ClientCertificate::from_pair_pem(&pair).map(Some).map_err(|reason| StoreError::Invalid { path, reason })
    }

    /// Writes the pair to a new timestamped file and points `multus-client-current.pem` at it,
    /// both atomically; removes pairs older than the previous one. Returns the new file.
    pub fn save(&self, certificate: &ClientCertificate) -> io::Result<PathBuf> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(&self.dir)?;
        let name = format!("{FILE_PREFIX}-{}.pem", chrono::Local::now().format("%Y-%m-%d-%H-%M-%S"));
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!(".{name}.tmp"));
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
        file.write_all(certificate.pair_pem().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &path)?;
        let updated = self.dir.join(UPDATED_FILE);
        match std::fs::remove_file(&updated) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(&name, &updated)?;
        std::fs::rename(&updated, self.current_path())?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        self.prune();
        Ok(path)
    }

    /// Deletes all but the newest [`KEPT_PAIRS`] timestamped pairs (failures only logged).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut pairs: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| is_timestamped_pair(name))
            .collect();
        pairs.sort_unstable();
        let excess = pairs.len().saturating_sub(KEPT_PAIRS);
        for name in &pairs[..excess] {
            if let Err(e) = std::fs::remove_file(self.dir.join(name)) {
                tracing::warn!("cannot remove the old client certificate {name}: {e}");
            }
        }
    }
}

/// `multus-client-YYYY-MM-DD-HH-MM-SS.pem`.
fn is_timestamped_pair(name: &str) -> bool {
    let Some(stamp) =
        name.strip_prefix(FILE_PREFIX).and_then(|n| n.strip_prefix('-')).and_then(|n| n.strip_suffix(".pem"))
    else {
        return false;
    };
    stamp.len() == 19
        && stamp
            .bytes()
            .enumerate()
            .all(|(i, b)| if [4, 7, 10, 13, 16].contains(&i) { b == b'-' } else { b.is_ascii_digit() })
}

// ---------------------------------------------------------------------------------------------
// the long-lived client

/// Hands rustls the current certificate at every handshake.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesClientCert for CurrentCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies the API server's certificate with the CA of the bootstrap kubeconfig as last read.
#[derive(Debug)]
struct ServerTrust(RwLock<Arc<dyn ServerCertVerifier>>);

impl ServerTrust {
    /// For configs that name their CA; None otherwise (system roots, or verification off).
    fn for_config(config: &kube::Config) -> Result<Option<Self>, String> {
        Ok(verifier_for(config)?.map(|v| Self(RwLock::new(v))))
    }

    fn get(&self) -> Arc<dyn ServerCertVerifier> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, config: &kube::Config) {
        match verifier_for(config) {
            Ok(Some(verifier)) => *self.0.write().unwrap_or_else(|p| p.into_inner()) = verifier,
            Ok(None) => {}
            Err(e) => tracing::warn!("the bootstrap kubeconfig's CA is unusable ({e}); keeping the previous one"),
        }
    }
}

/// A verifier for the CA certificates a config names.
fn verifier_for(config: &kube::Config) -> Result<Option<Arc<dyn ServerCertVerifier>>, String> {
    let Some(roots) = config.root_cert.as_ref().filter(|_| !config.accept_invalid_certs) else { return Ok(None) };
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(CertificateDer::from(der.clone())).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider).build().map_err(|e| e.to_string())?;
    Ok(Some(verifier))
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get().verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// Connections belong to the certificate generation they were opened in; moving to a new
/// generation closes them.
#[derive(Debug, Default)]
struct Generations(Mutex<Arc<Notify>>);

impl Generations {
    /// Completes when the current generation ends. Registered on creation, so an end that
    /// comes before the first poll is not missed.
    fn end_of_current(&self) -> OwnedNotified {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone().notified_owned()
    }

    fn advance(&self) {
        let old = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        old.notify_waiters();
    }
}

/// A connector whose connections end when the certificate generation they began in is over.
#[derive(Clone)]
struct GenerationConnector<C> {
    inner: C,
    generations: Arc<Generations>,
}

impl<C> tower::Service<Uri> for GenerationConnector<C>
where
    C: tower::Service<Uri> + Send,
    C::Future: Send + 'static,
{
    type Response = GenerationStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // Taken before the handshake: a rotation during it closes this connection at once
        // (one retried request) rather than letting an old certificate through.
        let ended = Box::pin(self.generations.end_of_current());
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(GenerationStream { io, ended, over: false })
        })
    }
}

struct GenerationStream<T> {
    io: T,
    ended: Pin<Box<OwnedNotified>>,
    /// The generation has ended (the future is not polled again once complete).
    over: bool,
}

impl<T> GenerationStream<T> {
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.over && self.ended.as_mut().poll(cx).is_ready() {
            self.over = true;
        }
        self.over
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for GenerationStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ended(cx) {
            // End of stream: hyper drops the connection (and an idle one leaves the pool).
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for GenerationStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.ended(cx) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client certificate replaced")));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ended(cx) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client certificate replaced")));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for GenerationStream<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// The client-go timeouts the daemon's other client uses.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// A client for `server` (URL, CA and TLS settings of the bootstrap kubeconfig, none of its
/// credentials) that authenticates with whatever certificate `certificate` holds.
fn certificate_client(
    server: &kube::Config,
    certificate: Arc<CurrentCertificate>,
    trust: Option<Arc<ServerTrust>>,
    generations: Arc<Generations>,
) -> Result<kube::Client, String> {
    let mut config = server.clone();
    config.auth_info = Default::default();
    if config.cluster_url.scheme_str() != Some("https") {
        return Err(format!("the API server {} is not https: client certificates need TLS", config.cluster_url));
    }
    let mut tls = config.rustls_client_config().map_err(|e| e.to_string())?;
    tls.client_auth_cert_resolver = certificate;
    tls.resumption = rustls::client::Resumption::disabled();
    if let Some(trust) = trust {
        tls.dangerous().set_certificate_verifier(trust);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    if let Some(name) = &config.tls_server_name {
        let name =
            rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| format!("tls-server-name: {e}"))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http1().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(GenerationConnector { inner: https, generations });
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_read_timeout(Some(READ_TIMEOUT));
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(config.extra_headers_layer().map_err(|e| e.to_string())?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The bootstrap kubeconfig as a client config.
async fn load_bootstrap(path: &Path) -> Result<kube::Config, String> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// one CSR

/// A PEM CSR for `common_name`/O `system:multus` and its new ECDSA P-256 key (client-go's
/// key type).
fn certificate_request(common_name: &str) -> Result<(String, rcgen::KeyPair), String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let request = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Ok((request.pem().map_err(|e| e.to_string())?, key))
}

/// What the API said about a CSR we wait on.
enum CsrState {
    Pending,
    Issued(String),
    Denied(String, String),
    Failed(String, String),
}

fn csr_state(csr: &CertificateSigningRequest) -> CsrState {
    let Some(status) = &csr.status else { return CsrState::Pending };
    for condition in status.conditions.iter().flatten() {
        let detail = || (condition.reason.clone().unwrap_or_default(), condition.message.clone().unwrap_or_default());
        match condition.type_.as_str() {
            "Denied" => return CsrState::Denied(detail().0, detail().1),
            "Failed" => return CsrState::Failed(detail().0, detail().1),
            _ => {}
        }
    }
    let approved = status.conditions.iter().flatten().any(|c| c.type_ == "Approved");
    match &status.certificate {
        Some(certificate) if approved && !certificate.0.is_empty() => {
            CsrState::Issued(String::from_utf8_lossy(&certificate.0).into_owned())
        }
        _ => CsrState::Pending,
    }
}

/// Files one CSR with `client` and waits up to `wait` for its certificate.
async fn request_certificate(
    client: kube::Client,
    config: &CertManagerConfig,
    wait: Duration,
) -> Result<ClientCertificate, RotationError> {
    let common_name = config.common_name();
    let (request_pem, key) = certificate_request(&common_name).map_err(RotationError::Create)?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.into_bytes()),
            signer_name: SIGNER_NAME.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            expiration_seconds: Some(i32::try_from(config.cert_duration.as_secs()).unwrap_or(i32::MAX)),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let created = api.create(&PostParams::default(), &csr).await.map_err(|e| RotationError::Create(e.to_string()))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let uid = created.metadata.uid.clone();
    tracing::info!("filed CertificateSigningRequest {name} for {common_name}; waiting for its certificate");
    let ours = |csr: &CertificateSigningRequest| uid.is_none() || csr.metadata.uid == uid;
    let decided = |csr: &CertificateSigningRequest| ours(csr) && !matches!(csr_state(csr), CsrState::Pending);
    let watch_config = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut states = std::pin::pin!(kube::runtime::watcher(api, watch_config).default_backoff());
    let waited = tokio::time::timeout(wait, async {
        let mut last_error = None;
        while let Some(event) = states.next().await {
            match event {
                Ok(kube::runtime::watcher::Event::Apply(csr) | kube::runtime::watcher::Event::InitApply(csr))
                    if decided(&csr) =>
                {
                    return Ok(csr);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("watching CertificateSigningRequest {name}: {e}");
                    last_error = Some(e.to_string());
                }
            }
        }
        Err(last_error.unwrap_or_else(|| "the watch ended".into()))
    })
    .await;
    let csr = match waited {
        Err(_) => return Err(RotationError::NotSigned { name, waited: wait }),
        Ok(Err(reason)) => return Err(RotationError::Watch { name, reason }),
        Ok(Ok(csr)) => csr,
    };
    match csr_state(&csr) {
        CsrState::Issued(certificate_pem) => ClientCertificate::from_pem(&certificate_pem, &key.serialize_pem())
            .map_err(|reason| RotationError::Unusable { name, reason }),
        CsrState::Denied(reason, message) => Err(RotationError::Denied { name, reason, message }),
        CsrState::Failed(reason, message) => Err(RotationError::Failed { name, reason, message }),
        CsrState::Pending => Err(RotationError::NotSigned { name, waited: wait }),
    }
}

// ---------------------------------------------------------------------------------------------
// the manager

/// What is known about the certificate in use (for logs, tests and status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub serial: String,
    pub common_name: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// How many certificates this manager has installed (1 after startup).
    pub generation: u64,
}

struct Shared {
    config: CertManagerConfig,
    store: FileStore,
    /// The bootstrap kubeconfig as last read successfully.
    bootstrap: Mutex<kube::Config>,
    current: RwLock<ClientCertificate>,
    resolver: Arc<CurrentCertificate>,
    /// The long-lived client's view of the API server's CA.
    trust: Option<Arc<ServerTrust>>,
    generations: Arc<Generations>,
    info: watch::Sender<CertificateInfo>,
    /// The long-lived client (also used for CSRs while the certificate is valid).
    client: kube::Client,
    /// Serialises installs (rotation and reload).
    install: Mutex<()>,
}

/// The client-certificate manager: the long-lived client, and the tasks that renew and reload
/// its certificate. Dropping it stops the tasks; [`CertManager::detach`] keeps them for the
/// process's life.
pub struct CertManager {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CertManager {
    /// Gets a certificate (the stored one when still good, else a new one within
    /// `timing.startup_wait`), builds the client and starts renewing.
    pub async fn start(config: CertManagerConfig) -> Result<Self, CertError> {
        let bootstrap = load_bootstrap(&config.bootstrap_kubeconfig)
            .await
            .map_err(|reason| CertError::Bootstrap { path: config.bootstrap_kubeconfig.clone(), reason })?;
        std::fs::create_dir_all(&config.cert_dir)
            .map_err(|source| CertError::CertDir { path: config.cert_dir.clone(), source })?;
        let store = FileStore::new(&config.cert_dir);
        let common_name = config.common_name();
        let stored = match store.load() {
            Ok(Some(stored)) if stored.is_expired_at(SystemTime::now()) => {
                tracing::info!(
                    "the stored client certificate expired at {}; requesting a new one",
                    rfc3339(stored.not_after)
                );
                None
            }
            Ok(Some(stored)) if !stored.has_subject(&common_name) => {
                tracing::info!(
                    "the stored client certificate is for {} {:?}, not {common_name}; requesting a new one",
                    stored.common_name,
                    stored.organizations
                );
                None
            }
            Ok(Some(stored)) => Some(stored),
            Ok(None) => None,
            Err(StoreError::Invalid { path, reason }) => {
                tracing::warn!("{} is not usable ({reason}); requesting a new certificate", path.display());
                None
            }
            Err(StoreError::Io { path, source }) => return Err(CertError::CertDir { path, source }),
        };
        let (certificate, bootstrap) = match stored {
            Some(stored) => {
                tracing::info!(
                    "using the stored client certificate {} for {common_name}, valid until {}",
                    store.current_path().display(),
                    rfc3339(stored.not_after)
                );
                (stored, bootstrap)
            }
            None => first_certificate(&config, &store, bootstrap).await?,
        };
        let resolver = Arc::new(CurrentCertificate(RwLock::new(certificate.certified.clone())));
        let trust = ServerTrust::for_config(&bootstrap).map_err(CertError::Client)?.map(Arc::new);
        let generations = Arc::new(Generations::default());
        let client = certificate_client(&bootstrap, resolver.clone(), trust.clone(), generations.clone())
            .map_err(CertError::Client)?;
        let info = watch::Sender::new(info_of(&certificate, 1));
        let shared = Arc::new(Shared {
            config,
            store,
            bootstrap: Mutex::new(bootstrap),
            current: RwLock::new(certificate),
            resolver,
            trust,
            generations,
            info,
            client,
            install: Mutex::new(()),
        });
        let tasks = vec![tokio::spawn(renew(shared.clone())), tokio::spawn(reload(shared.clone()))];
        Ok(Self { shared, tasks })
    }

    /// The client that authenticates with the current certificate.
    pub fn client(&self) -> kube::Client {
        self.shared.client.clone()
    }

    /// The certificate in use.
    pub fn current(&self) -> CertificateInfo {
        self.shared.info.borrow().clone()
    }

    /// Changes of the certificate in use.
    pub fn subscribe(&self) -> watch::Receiver<CertificateInfo> {
        self.shared.info.subscribe()
    }

    /// The client, with renewal running for as long as the process does.
    pub fn detach(mut self) -> kube::Client {
        self.tasks.clear();
        self.client()
    }
}

impl Drop for CertManager {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn info_of(certificate: &ClientCertificate, generation: u64) -> CertificateInfo {
    CertificateInfo {
        serial: certificate.serial.clone(),
        common_name: certificate.common_name.clone(),
        not_before: certificate.not_before,
        not_after: certificate.not_after,
        generation,
    }
}

/// "x509: certificate signed by unknown authority", as rustls says it.
fn is_unknown_authority(error: &RotationError) -> bool {
    let text = error.to_string();
    text.contains("UnknownIssuer") || text.contains("unknown authority")
}

/// The bootstrap kubeconfig, re-read; on failure the last good one.
async fn fresh_bootstrap(path: &Path, last: &Mutex<kube::Config>) -> kube::Config {
    match load_bootstrap(path).await {
        Ok(config) => {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = config.clone();
            config
        }
        Err(reason) => {
            tracing::warn!(
                "cannot re-read the bootstrap kubeconfig {} ({reason}); using the one read before",
                path.display()
            );
            last.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }
}

/// One attempt with the bootstrap credentials, then the pair is stored.
async fn bootstrap_attempt(
    config: &CertManagerConfig,
    store: &FileStore,
    bootstrap: kube::Config,
    wait: Duration,
) -> Result<ClientCertificate, RotationError> {
    let client = kube::Client::try_from(bootstrap).map_err(|e| RotationError::Client(e.to_string()))?;
    let certificate = request_certificate(client, config, wait).await?;
    store.save(&certificate).map_err(|source| RotationError::Store { path: store.current_path(), source })?;
    Ok(certificate)
}

/// Startup without a usable stored certificate: attempts with retries until one succeeds or
/// `startup_wait` is over. Returns the certificate and the bootstrap kubeconfig that worked.
async fn first_certificate(
    config: &CertManagerConfig,
    store: &FileStore,
    bootstrap: kube::Config,
) -> Result<(ClientCertificate, kube::Config), CertError> {
    let timing = &config.timing;
    let started = tokio::time::Instant::now();
    let deadline = started + timing.startup_wait;
    let last_good = Mutex::new(bootstrap.clone());
    let mut attempt = 0;
    tracing::info!("waiting for a client certificate for {}", config.common_name());
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bootstrap = if attempt == 0 {
            bootstrap.clone()
        } else {
            fresh_bootstrap(&config.bootstrap_kubeconfig, &last_good).await
        };
        let outcome = bootstrap_attempt(config, store, bootstrap.clone(), timing.csr_wait.min(remaining)).await;
        let error = match outcome {
            Ok(certificate) => {
                tracing::info!(
                    "client certificate for {} issued, valid until {}",
                    certificate.common_name,
                    rfc3339(certificate.not_after)
                );
                return Ok((certificate, bootstrap));
            }
            Err(error) => error,
        };
        if is_unknown_authority(&error) {
            tracing::warn!(
                "the API server's certificate is not signed by the bootstrap kubeconfig's CA; {} is re-read for the next attempt",
                config.bootstrap_kubeconfig.display()
            );
        }
        let delay = jittered(timing.retry_delay(attempt));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining <= delay {
            tokio::time::sleep(remaining).await;
            return Err(CertError::NotIssued {
                common_name: config.common_name(),
                waited: started.elapsed(),
                last: error,
            });
        }
        tracing::warn!("no client certificate yet ({error}); retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// client-go's 10 % jitter on retry delays.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(1.0 + 0.1 * random_unit())
}

impl Shared {
    fn current(&self) -> ClientCertificate {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The bootstrap kubeconfig read again; the long-lived client trusts its CA from now on.
    async fn refresh_bootstrap(&self) -> kube::Config {
        let bootstrap = fresh_bootstrap(&self.config.bootstrap_kubeconfig, &self.bootstrap).await;
        if let Some(trust) = &self.trust {
            trust.update(&bootstrap);
        }
        bootstrap
    }

    /// Makes `certificate` the one in use: new handshakes present it, older connections close.
    fn install(&self, certificate: ClientCertificate) {
        let _installing = self.install.lock().unwrap_or_else(|p| p.into_inner());
        if self.current().serial == certificate.serial {
            return;
        }
        self.resolver.set(certificate.certified.clone());
        let generation = self.info.borrow().generation + 1;
        let info = info_of(&certificate, generation);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certificate;
        self.generations.advance();
        self.info.send_replace(info);
    }

    /// One renewal attempt: with the current certificate while it is valid (Go: `current()`
    /// is nil once expired), else with the bootstrap credentials.
    async fn renew_once(&self) -> Result<ClientCertificate, RotationError> {
        let wait = self.config.timing.csr_wait;
        if self.current().is_expired_at(SystemTime::now()) {
            let bootstrap = self.refresh_bootstrap().await;
            return bootstrap_attempt(&self.config, &self.store, bootstrap, wait).await;
        }
        let certificate = request_certificate(self.client.clone(), &self.config, wait).await?;
        self.store
            .save(&certificate)
            .map_err(|source| RotationError::Store { path: self.store.current_path(), source })?;
        Ok(certificate)
    }
}

/// Sleeps until `deadline` (wall clock), in steps so that clock changes are noticed, or until
/// the certificate in use changes (returns false then).
async fn sleep_until(deadline: SystemTime, changes: &mut watch::Receiver<CertificateInfo>) -> bool {
    loop {
        let Ok(left) = deadline.duration_since(SystemTime::now()) else { return true };
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The manager is gone; nothing to renew.
                    std::future::pending::<()>().await;
                }
                return false;
            }
        }
    }
}

/// Renews the certificate at 70–90 % of its lifetime, retrying failures for as long as it takes.
async fn renew(shared: Arc<Shared>) {
    let mut changes = shared.info.subscribe();
    loop {
        let certificate = shared.current();
        let (lower, upper) = shared.config.timing.rotation_fraction;
        let deadline = rotation_deadline(certificate.not_before, certificate.not_after, random_between(lower, upper));
        tracing::info!("the client certificate will be renewed at {}", rfc3339(deadline));
        changes.mark_unchanged();
        if !sleep_until(deadline, &mut changes).await {
            continue;
        }
        let mut attempt = 0;
        loop {
            tracing::info!("renewing the client certificate for {}", shared.config.common_name());
            match shared.renew_once().await {
                Ok(renewed) => {
                    tracing::info!(
                        "client certificate renewed: serial {}, valid until {}",
                        renewed.serial,
                        rfc3339(renewed.not_after)
                    );
                    shared.install(renewed);
                    break;
                }
                Err(error) => {
                    let delay = jittered(shared.config.timing.retry_delay(attempt));
                    tracing::warn!("renewing the client certificate failed ({error}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// Re-reads the stored pair, installing one written by someone else, and the bootstrap
/// kubeconfig, following a rotated CA.
async fn reload(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(shared.config.timing.reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        shared.refresh_bootstrap().await;
        match shared.store.load() {
            Ok(Some(stored)) if stored.serial != shared.current().serial => {
                if stored.is_expired_at(SystemTime::now()) {
                    tracing::debug!("the stored client certificate changed but is expired; not using it");
                } else {
                    tracing::info!("the stored client certificate changed (serial {}); using it", stored.serial);
                    shared.install(stored);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("re-reading the stored client certificate: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_durations() {
        let secs = Duration::from_secs;
        assert_eq!(parse_go_duration("10m"), Ok(secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Ok(secs(5400)));
        assert_eq!(parse_go_duration("+90s"), Ok(secs(90)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("1h0.5s"), Ok(Duration::from_millis(3_600_500)));
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        for bad in ["", "10", "m", "10x", "-10m", "1..5s", ".s", "1h ", "9999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    proptest! {
        #[test]
        fn go_durations_add_up(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let expected = Duration::from_secs(h * 3600 + m * 60 + s) + Duration::from_millis(ms);
            prop_assert_eq!(parse_go_duration(&text), Ok(expected));
        }

        #[test]
        fn go_duration_parsing_never_panics(input in "\\PC{0,24}") {
            let _ = parse_go_duration(&input);
        }

        #[test]
        fn rotation_deadline_is_within_the_lifetime(start in 0u64..4_000_000_000, life in 1u64..40_000_000, fraction in 0.0f64..1.0) {
            let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(start);
            let not_after = not_before + Duration::from_secs(life);
            let deadline = rotation_deadline(not_before, not_after, fraction);
            prop_assert!(deadline >= not_before && deadline <= not_after);
            let at_70 = rotation_deadline(not_before, not_after, 0.7);
            let at_90 = rotation_deadline(not_before, not_after, 0.9);
            let chosen = rotation_deadline(not_before, not_after, random_between(0.7, 0.9));
            prop_assert!(at_70 <= chosen && chosen <= at_90);
        }
    }

    #[test]
    fn retry_delays_follow_client_go() {
        let timing = Timing::for_duration(DEFAULT_CERT_DURATION);
        let delays: Vec<u64> = (0..7).map(|a| timing.retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 32, 32]);
        assert_eq!(timing.reload_interval, Duration::from_secs(10));
        assert_eq!(Timing::for_duration(Duration::from_secs(7200)).reload_interval, Duration::from_secs(300));
        let jittered = jittered(Duration::from_secs(10));
        assert!(jittered >= Duration::from_secs(10) && jittered <= Duration::from_secs(11));
    }

    fn settings(bootstrap: &str, dir: &str, duration: &str) -> PerNodeCertificate {
        PerNodeCertificate {
            enabled: true,
            bootstrap_kubeconfig: bootstrap.into(),
            cert_dir: dir.into(),
            cert_duration: duration.into(),
        }
    }

    #[test]
    fn config_errors_are_clear() {
        let ok = CertManagerConfig::from_settings(&settings("/b", "/c", ""), Some("node1")).unwrap();
        assert_eq!(ok.cert_duration, DEFAULT_CERT_DURATION);
        assert_eq!(ok.common_name(), "system:multus:node1");
        assert_eq!(ok.timing, Timing::for_duration(DEFAULT_CERT_DURATION));
        let two_hours = CertManagerConfig::from_settings(&settings("/b", "/c", "2h"), Some("node1")).unwrap();
        assert_eq!(two_hours.cert_duration, Duration::from_secs(7200));

        let err = |s: PerNodeCertificate, node: Option<&str>| {
            CertManagerConfig::from_settings(&s, node).unwrap_err().to_string()
        };
        assert_eq!(
            err(settings("", "/c", ""), Some("n")),
            "perNodeCertificate.bootstrapKubeconfig is required when perNodeCertificate.enabled is true"
        );
        assert_eq!(
            err(settings("/b", " ", ""), Some("n")),
            "perNodeCertificate.certDir is required when perNodeCertificate.enabled is true"
        );
        for node in [None, Some(""), Some("  ")] {
            assert!(err(settings("/b", "/c", ""), node).contains("MULTUS_NODE_NAME"));
        }
        assert!(
            err(settings("/b", "/c", "ten minutes"), Some("n"))
                .starts_with("perNodeCertificate.certDuration \"ten minutes\": ")
        );
        assert!(err(settings("/b", "/c", "500ms"), Some("n")).contains("between 1s"));
    }

    fn issued(cn: &str, org: &str, not_before: SystemTime, not_after: SystemTime) -> ClientCertificate {
        let ca = kube_mock::CertificateAuthority::generate().unwrap();
        let issued = ca.issue_client_certificate(cn, Some(org), not_before, not_after).unwrap();
        ClientCertificate::from_pem(&issued.certificate_pem, &issued.key_pem).unwrap()
    }

    #[test]
    fn pairs_parse_and_check_their_key() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let cert = issued("system:multus:node1", ORGANIZATION, now - hour, now + hour);
        assert!(cert.has_subject("system:multus:node1"));
        assert!(!cert.has_subject("system:multus:node2"));
        assert!(!cert.is_expired_at(now) && cert.is_expired_at(now + 2 * hour));
        let again = ClientCertificate::from_pair_pem(&cert.pair_pem()).unwrap();
        assert_eq!((again.serial.as_str(), again.not_after), (cert.serial.as_str(), cert.not_after));

        let other = issued("system:multus:node1", ORGANIZATION, now - hour, now + hour);
        assert!(
            ClientCertificate::from_pem(&cert.certificate_pem, &other.key_pem).unwrap_err().contains("do not match")
        );
        assert!(ClientCertificate::from_pair_pem("").unwrap_err().contains("failed to find any PEM data"));
        assert!(ClientCertificate::from_pair_pem(&cert.certificate_pem).is_err());
        let truncated = &cert.pair_pem()[..cert.pair_pem().len() / 2];
        assert!(ClientCertificate::from_pair_pem(truncated).is_err());
    }

    #[test]
    fn the_store_keeps_client_go_layout_and_two_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("certs"));
        assert!(store.load().unwrap().is_none());
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        // Older pairs from earlier runs, and a file that is not ours.
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        for old in ["multus-client-2001-01-01-00-00-00.pem", "multus-client-2002-01-01-00-00-00.pem", "notes.pem"] {
            std::fs::write(dir.path().join("certs").join(old), "old").unwrap();
        }
        let cert = issued("system:multus:node1", ORGANIZATION, now - hour, now + hour);
        let path = store.save(&cert).unwrap();
        let current = store.current_path();
        assert!(std::fs::symlink_metadata(&current).unwrap().file_type().is_symlink());
        let target = std::fs::read_link(&current).unwrap();
        assert!(target.is_relative(), "{target:?}");
        assert_eq!(dir.path().join("certs").join(&target), path);
        assert!(is_timestamped_pair(target.to_str().unwrap()));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let content = std::fs::read_to_string(&path).unwrap();
        assert!(content.starts_with("-----BEGIN CERTIFICATE-----") && content.contains("PRIVATE KEY-----"));
        assert_eq!(store.load().unwrap().unwrap().serial, cert.serial);

        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("certs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.contains(&"multus-client-2002-01-01-00-00-00.pem".to_string()));
        assert!(names.contains(&"notes.pem".to_string()) && names.contains(&CURRENT_FILE.to_string()));

        std::fs::write(path, "garbage").unwrap();
        assert!(matches!(store.load(), Err(StoreError::Invalid { .. })));
        assert!(!is_timestamped_pair("multus-client-current.pem"));
        assert!(!is_timestamped_pair("multus-client-2001-01-01-00-00.pem"));
    }
}
