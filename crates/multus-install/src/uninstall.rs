//! `multus-install uninstall`: hand a node back to its primary CNI configuration.
//!
//! The deterministic half of an uninstall (the daemon also removes `00-multus.conf` when it is
//! stopped and finds its API rights gone): run on each node (a Job or DaemonSet with the host's
//! `/etc/cni/net.d` and `/opt/cni/bin` mounted, see docs/deploy.md), it removes the Multus
//! configuration the runtime reads — only when it really is Multus's (a file that does not
//! name the shim is never touched) — and then the binaries the installer put there.

use serde_json::Value;
use std::io;
use std::path::{Path, PathBuf};

/// What an uninstall removed or left.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub files: Vec<PathBuf>,
    /// Files left because they are not Multus's (with why).
    pub kept: Vec<(PathBuf, String)>,
}

/// Whether a CNI config file is Multus's: its `type` (or the first plugin's) is `multus-shim`
/// or `multus`.
pub fn is_multus_config(bytes: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else { return false };
    let plugin_type = v.get("type").or_else(|| v.get("plugins")?.get(0)?.get("type")).and_then(Value::as_str);
    matches!(plugin_type, Some("multus-shim" | "multus"))
}

/// Remove `conf_dir/<conf_name>` when it is Multus's config, then `bin_dir/<binary>` for each
/// binary. The config goes first: a runtime must never find a config whose plugin is gone.
pub fn uninstall(conf_dir: &Path, conf_name: &str, bin_dir: &Path, binaries: &[&str]) -> io::Result<Removed> {
    let mut removed = Removed::default();
    let conf = conf_dir.join(conf_name);
    match std::fs::read(&conf) {
        Ok(bytes) if is_multus_config(&bytes) => {
            std::fs::remove_file(&conf)?;
            removed.files.push(conf);
        }
        Ok(_) => removed.kept.push((conf, "not a Multus configuration".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for binary in binaries {
        let path = bin_dir.join(binary);
        match std::fs::remove_file(&path) {
            Ok(()) => removed.files.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_multus_files_config_first() {
        let dir = tempfile::tempdir().unwrap();
        let (net_d, bin) = (dir.path().join("net.d"), dir.path().join("bin"));
        std::fs::create_dir_all(&net_d).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(
            net_d.join("00-multus.conf"),
            br#"{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus-shim"}"#,
        )
        .unwrap();
        std::fs::write(net_d.join("10-primary.conflist"), br#"{"name":"p","plugins":[{"type":"bridge"}]}"#).unwrap();
        std::fs::write(bin.join("multus-shim"), b"").unwrap();
        std::fs::write(bin.join("bridge"), b"").unwrap();
        let r = uninstall(&net_d, "00-multus.conf", &bin, &["multus-shim", "passthru"]).unwrap();
        assert_eq!(r.files, vec![net_d.join("00-multus.conf"), bin.join("multus-shim")]);
        assert!(net_d.join("10-primary.conflist").exists() && bin.join("bridge").exists());
        // A second run has nothing left to do; a foreign file under the name is kept.
        std::fs::write(net_d.join("00-multus.conf"), br#"{"name":"x","type":"bridge"}"#).unwrap();
        let r = uninstall(&net_d, "00-multus.conf", &bin, &["multus-shim"]).unwrap();
        assert!(r.files.is_empty());
        assert_eq!(r.kept.len(), 1);
        assert!(net_d.join("00-multus.conf").exists());
    }

    #[test]
    fn recognises_multus_configs() {
        assert!(is_multus_config(br#"{"type":"multus-shim"}"#));
        assert!(is_multus_config(br#"{"plugins":[{"type":"multus"}]}"#));
        assert!(!is_multus_config(br#"{"type":"bridge"}"#));
        assert!(!is_multus_config(b"not json"));
    }
}
