//! Client certificates and their file store (client-go's layout in `certDir`).

use super::*;

/// A client certificate with its key, as stored and as used.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The chain (leaf first), PEM.
    pub certificate_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Subject common name.
    pub common_name: String,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// Hex serial number, to tell certificates apart.
    pub serial: String,
    pub(super) certified: Arc<CertifiedKey>,
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

/// Why a certificate and key are not a usable pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    /// The input has no PEM block at all.
    #[error("failed to find any PEM data")]
    NoPem,
    /// A certificate block does not decode.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// There is no certificate block.
    #[error("failed to find any PEM data in certificate input")]
    NoCertificate,
    /// There is no private key block.
    #[error("no private key: {0}")]
    NoKey(String),
    /// The key is not the certificate's.
    #[error("certificate and key do not match: {0}")]
    Mismatch(String),
    /// The certificate is not X.509.
    #[error("cannot parse the certificate: {0}")]
    Parse(String),
}

impl ClientCertificate {
    /// From a certificate chain and a private key (PEM); checks that they belong together.
    pub fn from_pem(certificate_pem: &str, key_pem: &str) -> Result<Self, PairError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| PairError::Pem(e.to_string()))?;
        let leaf = chain.first().ok_or(PairError::NoCertificate)?.clone();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PairError::NoKey(e.to_string()))?;
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            CertifiedKey::from_der(chain, key, &provider).map_err(|e| PairError::Mismatch(e.to_string()))?;
        let (_, parsed) = X509Certificate::from_der(&leaf).map_err(|e| PairError::Parse(e.to_string()))?;
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
    pub fn from_pair_pem(pair: &str) -> Result<Self, PairError> {
        if !pair.contains("-----BEGIN") {
            return Err(PairError::NoPem);
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
pub(crate) fn rotation_deadline(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let total = not_after.duration_since(not_before).unwrap_or_default();
    not_before + total.mul_f64(fraction.clamp(0.0, 1.0))
}

/// A uniformly distributed number in [0, 1) from the standard library's per-process random
/// hash keys (jitter needs no stronger randomness).
pub(super) fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now()) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

pub(super) fn random_between(lower: f64, upper: f64) -> f64 {
    lower + (upper - lower).max(0.0) * random_unit()
}

/// client-go's file store layout in `certDir`.
#[derive(Debug, Clone)]
pub(crate) struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// A store in `dir` (created when the first pair is saved).
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
pub(super) fn is_timestamped_pair(name: &str) -> bool {
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
