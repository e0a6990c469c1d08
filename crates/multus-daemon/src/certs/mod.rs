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
pub(crate) const NODE_NAME_ENV: &str = "MULTUS_NODE_NAME";
/// Prefix of the files in `certDir` (client-go file store).
pub(crate) const FILE_PREFIX: &str = "multus-client";
/// The pair in use: a symlink to the newest `multus-client-<timestamp>.pem`.
pub const CURRENT_FILE: &str = "multus-client-current.pem";
const UPDATED_FILE: &str = "multus-client-updated.pem";
/// The signer of API-server client certificates.
pub(crate) const SIGNER_NAME: &str = "kubernetes.io/kube-apiserver-client";
/// Subject organization, and the prefix of the subject common name (`system:multus:<node>`).
pub(crate) const ORGANIZATION: &str = "system:multus";
/// Requested key usages, in the order client-go sends them.
pub(crate) const USAGES: [&str; 2] = ["digital signature", "client auth"];
/// `certDuration` when unset.
pub(crate) const DEFAULT_CERT_DURATION: Duration = Duration::from_secs(600);
/// Pairs kept in `certDir` (the current one and the one before).
const KEPT_PAIRS: usize = 2;

/// Why per-node certificates cannot be used; the daemon stops at startup with it.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// `enabled` without `bootstrapKubeconfig`.
    #[error("perNodeCertificate.bootstrapKubeconfig is required when perNodeCertificate.enabled is true")]
    MissingBootstrapKubeconfig,
    /// `enabled` without `certDir`.
    #[error("perNodeCertificate.certDir is required when perNodeCertificate.enabled is true")]
    MissingCertDir,
    #[error(
        "perNodeCertificate needs the node name: set {NODE_NAME_ENV} (from spec.nodeName) in the daemon's environment"
    )]
    /// `MULTUS_NODE_NAME` is not set.
    MissingNodeName,
    /// `certDuration` is not a positive Go duration.
    #[error("perNodeCertificate.certDuration {value:?}: {reason}")]
    InvalidCertDuration {
        /// The configured value.
        value: String,
        /// Why it does not parse.
        reason: DurationError,
    },
    /// The bootstrap kubeconfig cannot be read.
    #[error("failed to load bootstrap kubeconfig {path}: {reason}")]
    Bootstrap {
        /// The bootstrap kubeconfig.
        path: PathBuf,
        /// Why it cannot be used.
        reason: kube::config::KubeconfigError,
    },
    /// `certDir` cannot be created or read.
    #[error("perNodeCertificate.certDir {path}: {source}")]
    CertDir {
        /// The certificate directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The long-lived client cannot be built.
    #[error("building the kube client with the per-node certificate: {0}")]
    Client(#[from] client::CertClientError),
    /// No certificate arrived within the startup wait; `last` is the last attempt's failure.
    #[error("no client certificate for {common_name} after waiting {waited:?}: {last}")]
    NotIssued {
        /// The subject asked for (`system:multus:<node>`).
        common_name: String,
        /// How long startup waited.
        waited: Duration,
        /// Why the last attempt failed.
        last: RotationError,
    },
}

/// Why one attempt to get a certificate failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// No client to file the CSR with.
    #[error("cannot build a client for the CSR: {0}")]
    Client(#[source] kube::Error),
    /// The API server refused the CSR.
    #[error("creating the CertificateSigningRequest: {0}")]
    Create(String),
    /// The CSR was denied.
    #[error("CertificateSigningRequest {name} was denied (reason {reason:?}): {message}")]
    Denied {
        /// The CSR.
        name: String,
        /// The `Denied` condition's reason.
        reason: String,
        /// The `Denied` condition's message.
        message: String,
    },
    /// The CSR failed.
    #[error("CertificateSigningRequest {name} failed (reason {reason:?}): {message}")]
    Failed {
        /// The CSR.
        name: String,
        /// The `Failed` condition's reason.
        reason: String,
        /// The `Failed` condition's message.
        message: String,
    },
    /// The CSR was neither approved and signed nor refused within the CSR wait.
    #[error("CertificateSigningRequest {name} was not approved and signed within {waited:?}")]
    NotSigned {
        /// The CSR.
        name: String,
        /// How long it was waited for.
        waited: Duration,
    },
    /// Watching the CSR failed.
    #[error("waiting for CertificateSigningRequest {name}: {reason}")]
    Watch {
        /// The CSR.
        name: String,
        /// The watch error.
        reason: String,
    },
    /// The issued certificate does not parse or does not match the key or subject.
    #[error("the certificate issued for CertificateSigningRequest {name} is unusable: {reason}")]
    Unusable {
        /// The CSR.
        name: String,
        /// What is wrong with the certificate.
        reason: PairError,
    },
    /// The new pair cannot be written to `certDir`.
    #[error("storing the certificate in {path}: {source}")]
    Store {
        /// The certificate directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The manager was dropped while the attempt ran.
    #[error("the per-node certificate manager was stopped")]
    Stopped,
}

/// Why the stored pair cannot be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The file cannot be read (other than not existing): not retried at startup.
    #[error("reading {path}: {source}")]
    Io {
        /// The pair's file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// It is there but not a usable pair (partial write, garbage, key mismatch).
    #[error("{path} is not a usable certificate/key pair: {reason}")]
    Invalid {
        /// The pair's file.
        path: PathBuf,
        /// What is wrong with it.
        reason: PairError,
    },
}

// ---------------------------------------------------------------------------------------------
// configuration

/// Parses a Go duration string as `time.ParseDuration` does: decimal numbers with an optional
/// fraction, each followed by a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`), e.g. `10m`,
/// `1h30m`, `1.5h`, `90s`; a bare `0` is zero. Negative durations are refused.
pub(crate) fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let mut rest = input.strip_prefix('+').unwrap_or(input);
    if rest.starts_with('-') {
        return Err(DurationError::Negative);
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let invalid = || DurationError::Invalid(input.to_string());
    if rest.is_empty() {
        return Err(DurationError::Invalid(String::new()));
    }
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
            "" => return Err(DurationError::MissingUnit(input.to_string())),
            other => return Err(DurationError::UnknownUnit { unit: other.to_string(), input: input.to_string() }),
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

/// Why a Go duration does not parse (or is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A negative duration.
    #[error("must not be negative")]
    Negative,
    /// Not a duration (or out of range).
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number without its unit.
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole duration.
        input: String,
    },
    /// Shorter than a second or longer than about 68 years.
    #[error("must be between 1s and about 68 years")]
    OutOfRange,
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
    /// How many times the retry delay doubles.
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
    /// The node the certificate is for (`MULTUS_NODE_NAME`; CN `system:multus:<node>`).
    pub node_name: String,
    /// `bootstrapKubeconfig`: the credentials CSRs are filed with when no valid certificate exists.
    pub bootstrap_kubeconfig: PathBuf,
    /// `certDir`: where the pairs are stored.
    pub cert_dir: PathBuf,
    /// Requested lifetime (`expirationSeconds`).
    pub cert_duration: Duration,
    /// Waits, retries and reload interval.
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
            let invalid = |reason: DurationError| CertError::InvalidCertDuration {
                value: settings.cert_duration.clone(),
                reason,
            };
            let duration = parse_go_duration(&settings.cert_duration).map_err(invalid)?;
            if duration < Duration::from_secs(1) || duration.as_secs() > i32::MAX as u64 {
                return Err(invalid(DurationError::OutOfRange));
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

mod client;
mod csr;
mod manager;
mod store;

use client::*;
use csr::*;
pub use manager::*;
pub use store::*;

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
            ClientCertificate::from_pem(&cert.certificate_pem, &other.key_pem)
                .unwrap_err()
                .to_string()
                .contains("do not match")
        );
        assert!(ClientCertificate::from_pair_pem("").unwrap_err().to_string().contains("failed to find any PEM data"));
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
