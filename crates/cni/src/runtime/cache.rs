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
    pub container_id: String,
    /// The network configuration bytes (list or single config) as given to ADD.
    pub config: Vec<u8>,
    pub ifname: String,
    pub network_name: String,
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
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

/// `<cache_dir>/results/<network>-<containerID>-<ifName>`. Like libcni, all three must be
/// non-empty; we also refuse components that would leave the results directory.
pub fn cache_file_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf, String> {
    if network.is_empty() || container_id.is_empty() || ifname.is_empty() {
        return Err(format!(
            "cache file path requires network name ({network:?}), container ID ({container_id:?}), and interface name ({ifname:?})"
        ));
    }
    let name = format!("{network}-{container_id}-{ifname}");
    if name.contains('/') || name.contains('\0') {
        return Err(format!("invalid cache file name {name:?}"));
    }
    Ok(cache_dir.join("results").join(name))
}

/// Write `bytes` to `path` atomically: a 0600 temporary file in the same directory (created
/// 0700 if missing), then renamed over the target. Temporary names start with `.`, which
/// [`is_entry_name`] skips.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let write = || -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // No fsync: cache files are rewritten per attachment on the hot path; the rename keeps
        // them whole (libcni and the Go daemon do not even write atomically).
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
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
}
