//! libcni's result cache file (cni.md §4.4): `<cacheDir>/results/<network>-<containerID>-<ifName>`.
//!
//! The bytes are those of libcni's `cachedInfo` marshalled by Go: fields in struct order,
//! `netns`, `cniArgs`, `capabilityArgs` and `result` omitted when empty, `config` base64, and the
//! `capabilityArgs`/`result` maps with sorted keys.

use super::gojson;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The `kind` of a current cache entry.
pub const CACHE_KIND_V1: &str = "cniCacheV1";

/// One cached attachment (libcni's `cachedInfo` / `NetworkAttachment`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheEntry {
    /// `CNI_CONTAINERID` of the attachment.
    pub container_id: String,
    /// The network configuration bytes (list or single config) as given to ADD.
    pub config: Vec<u8>,
    /// `CNI_IFNAME` of the attachment.
    pub ifname: String,
    /// The network's name (the list's `name`).
    pub network_name: String,
    /// `CNI_NETNS` at ADD time; GC's DEL of a stale attachment uses it again.
    pub netns: String,
    /// `CNI_ARGS` pairs given to ADD.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments given to ADD.
    pub capability_args: Map<String, Value>,
    /// The final ADD result, in the version the last plugin answered in.
    pub result: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Wire {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "containerId")]
    container_id: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(default, rename = "ifName")]
    ifname: String,
    #[serde(default, rename = "networkName")]
    network_name: String,
    #[serde(default)]
    netns: String,
    #[serde(default, rename = "cniArgs")]
    cni_args: Option<Vec<(String, String)>>,
    #[serde(default, rename = "capabilityArgs")]
    capability_args: Option<Map<String, Value>>,
    #[serde(default)]
    result: Option<Value>,
}

/// How a cache file reads.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheFile {
    /// A `cniCacheV1` entry.
    V1(Box<CacheEntry>),
    /// Not a `cniCacheV1` object: an old cache holding just the raw result (or garbage).
    Legacy(Vec<u8>),
}

impl CacheEntry {
    /// The file's bytes, as libcni writes them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut m = Map::new();
        m.insert("kind".into(), CACHE_KIND_V1.into());
        m.insert("containerId".into(), self.container_id.clone().into());
        m.insert("config".into(), base64::engine::general_purpose::STANDARD.encode(&self.config).into());
        m.insert("ifName".into(), self.ifname.clone().into());
        m.insert("networkName".into(), self.network_name.clone().into());
        if !self.netns.is_empty() {
            m.insert("netns".into(), self.netns.clone().into());
        }
        if !self.cni_args.is_empty() {
            let pairs = self.cni_args.iter().map(|(k, v)| Value::Array(vec![k.clone().into(), v.clone().into()]));
            m.insert("cniArgs".into(), Value::Array(pairs.collect()));
        }
        if !self.capability_args.is_empty() {
            m.insert("capabilityArgs".into(), gojson::sorted(&Value::Object(self.capability_args.clone())));
        }
        match &self.result {
            Some(Value::Null) | None => {}
            Some(Value::Object(r)) if r.is_empty() => {}
            Some(r) => {
                m.insert("result".into(), gojson::sorted(r));
            }
        }
        gojson::to_vec(&Value::Object(m))
    }

    /// Read a cache file's bytes: a `cniCacheV1` entry, or legacy content.
    pub fn parse(bytes: &[u8]) -> CacheFile {
        let wire: Wire = match serde_json::from_slice(bytes) {
            Ok(w) => w,
            Err(_) => return CacheFile::Legacy(bytes.to_vec()),
        };
        if wire.kind != CACHE_KIND_V1 {
            return CacheFile::Legacy(bytes.to_vec());
        }
        let config = match wire.config {
            Some(s) => match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                Ok(c) => c,
                Err(_) => return CacheFile::Legacy(bytes.to_vec()),
            },
            None => Vec::new(),
        };
        CacheFile::V1(Box::new(CacheEntry {
            container_id: wire.container_id,
            config,
            ifname: wire.ifname,
            network_name: wire.network_name,
            netns: wire.netns,
            cni_args: wire.cni_args.unwrap_or_default(),
            capability_args: wire.capability_args.unwrap_or_default(),
            result: wire.result.filter(|r| !r.is_null()),
        }))
    }

    /// The runtime configuration this attachment was made with.
    pub fn runtime_conf(&self) -> super::RuntimeConf {
        super::RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            args: self.cni_args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }
}

/// Why an attachment has no cache file path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CachePathError {
    /// The network name, container ID or interface name is empty (libcni refuses these too).
    #[error(
        "cache file path requires network name ({network:?}), container ID ({container_id:?}), and interface name ({ifname:?})"
    )]
    Incomplete {
        /// The network's name.
        network: String,
        /// The container ID.
        container_id: String,
        /// The interface name.
        ifname: String,
    },
    /// The name would leave the results directory (or holds a NUL).
    #[error("invalid cache file name {0:?}")]
    InvalidName(String),
}

/// `<cache_dir>/results/<network>-<containerID>-<ifName>`. Like libcni, all three must be
/// non-empty; we also refuse components that would leave the results directory.
pub fn cache_file_path(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<PathBuf, CachePathError> {
    if network.is_empty() || container_id.is_empty() || ifname.is_empty() {
        return Err(CachePathError::Incomplete {
            network: network.to_string(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
        });
    }
    let name = format!("{network}-{container_id}-{ifname}");
    if name.contains('/') || name.contains('\0') {
        return Err(CachePathError::InvalidName(name));
    }
    Ok(cache_dir.join("results").join(name))
}

/// How [`write_atomic_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtomicWrite {
    /// Mode of the file.
    pub file_mode: u32,
    /// Mode of the parent directory when it has to be created.
    pub dir_mode: u32,
    /// `fsync` the file before the rename (config files that must survive a power cut);
    /// without it the rename still keeps readers from ever seeing a partial file.
    pub sync: bool,
}

impl AtomicWrite {
    /// Cache files: 0600 in a 0700 directory, no fsync (they are rewritten per attachment on
    /// the hot path; libcni and the Go daemon do not even write them atomically).
    pub const CACHE: Self = Self { file_mode: 0o600, dir_mode: 0o700, sync: false };
    /// Configuration files read by other programs (e.g. `00-multus.conf`): fsync'ed.
    pub const CONFIG: Self = Self { file_mode: 0o600, dir_mode: 0o755, sync: true };
}

/// Write `bytes` to `path` atomically as a cache file ([`AtomicWrite::CACHE`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, AtomicWrite::CACHE)
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory (rename is
/// atomic only within a filesystem), then renamed over the target. Temporary names start with
/// `.` and contain [`TEMP_MARKER`], so neither the cache listing nor a runtime's config
/// discovery (by extension) ever reads one, and [`remove_stale_temp_files`] can find them.
pub fn write_atomic_with(path: &Path, bytes: &[u8], how: AtomicWrite) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(how.dir_mode).create(dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}{TEMP_MARKER}{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(how.file_mode).open(&tmp)?;
        f.write_all(bytes)?;
        if how.sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    };
    let r = write();
    if r.is_err() {
        // Best effort: the write already failed and that error is what the caller needs.
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The part of a temporary file's name that marks it as one of [`write_atomic_with`]'s.
pub const TEMP_MARKER: &str = ".tmp.";

/// Remove temporary files [`write_atomic_with`] left in `dir` when a process died between
/// create and rename. Call only where no other writer is active (at start-up). Returns how
/// many were removed; a missing directory has none.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TEMP_MARKER) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether a file in the results directory is a cache entry (not one of our temporary files).
pub fn is_entry_name(name: &str) -> bool {
    !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &[u8] = include_bytes!("testdata/mock-cluster-net-cid-pod1-eth0");

    #[test]
    fn captured_go_cache_file_round_trips_byte_for_byte() {
        let CacheFile::V1(entry) = CacheEntry::parse(CAPTURE) else { panic!("not a v1 entry") };
        assert_eq!(entry.network_name, "mock-cluster-net");
        assert_eq!(entry.cni_args[1], ("K8S_POD_NAMESPACE".to_string(), "default".to_string()));
        assert!(entry.config.starts_with(br#"{"cniVersion": "1.0.0", "name": "mock-cluster-net""#));
        assert_eq!(entry.to_bytes(), CAPTURE);
    }

    #[test]
    fn legacy_and_garbage_files() {
        assert!(matches!(CacheEntry::parse(br#"{"cniVersion":"0.3.1","ips":[]}"#), CacheFile::Legacy(_)));
        assert!(matches!(CacheEntry::parse(b"garbage"), CacheFile::Legacy(_)));
    }

    #[test]
    fn paths_and_atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(cache_file_path(dir.path(), "n", "", "eth0").is_err());
        assert!(cache_file_path(dir.path(), "../n", "c", "eth0").is_err());
        let p = cache_file_path(dir.path(), "n", "c", "eth0").unwrap();
        assert_eq!(p, dir.path().join("results/n-c-eth0"));
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn durable_writes_and_stale_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d/00-multus.conf");
        write_atomic_with(&conf, b"{}", AtomicWrite::CONFIG).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(conf.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o755);
        // A writer that died between create and rename leaves a temporary file behind.
        let stale = conf.parent().unwrap().join(format!(".00-multus.conf{TEMP_MARKER}4242.0"));
        std::fs::write(&stale, b"half").unwrap();
        std::fs::write(conf.parent().unwrap().join("10-other.conf"), b"{}").unwrap();
        std::fs::write(conf.parent().unwrap().join(".hidden"), b"x").unwrap();
        assert_eq!(remove_stale_temp_files(conf.parent().unwrap()).unwrap(), 1);
        assert!(!stale.exists());
        assert_eq!(std::fs::read_dir(conf.parent().unwrap()).unwrap().count(), 3);
        assert_eq!(remove_stale_temp_files(&dir.path().join("missing")).unwrap(), 0);
    }
}
