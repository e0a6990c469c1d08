//! Device-info files (spec §5.13, §5.17; the NPWG device-info specification).
//!
//! A device plugin describes each device it hands out in
//! `<dp dir>/<resourceName "/"→"-">-<deviceID "/"→"-">-device.json`. For a delegate that got a
//! resource device ID, Multus copies that description to the attachment's `CNIDeviceInfoFile`
//! (`<cni dir>/<"<delegate name>-<containerID>_<ifname>" with "/"→"-">`, passed to the delegate
//! as a capability), reads it back for the network-status `device-info`, and removes it on DEL.
//!
//! The path rules live in [`multus::plan`]; these helpers take the directories as parameters
//! (tests use temporary directories; [`DeviceInfoDirs::default`] are the production ones).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Mode of the per-attachment file (read-only for everyone, as the reference writes it).
pub const CNI_DEVICE_INFO_MODE: u32 = 0o444;

/// The two device-info directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfoDirs {
    /// Written by device plugins (`/var/run/k8s.cni.cncf.io/devinfo/dp`).
    pub device_plugin: PathBuf,
    /// Written by Multus for delegates (`/var/run/k8s.cni.cncf.io/devinfo/cni`).
    pub cni: PathBuf,
}

impl Default for DeviceInfoDirs {
    fn default() -> Self {
        Self { device_plugin: multus::plan::DP_DEVICE_INFO_DIR.into(), cni: multus::plan::CNI_DEVICE_INFO_DIR.into() }
    }
}

/// The last component of a path built by the `multus::plan` rules (they replace every `/` in
/// the name, so the file name is the whole name part).
fn file_name_of(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

impl DeviceInfoDirs {
    /// Both directories under `root` (`<root>/dp`, `<root>/cni`), for tests and demos.
    pub fn under(root: &Path) -> Self {
        Self { device_plugin: root.join("dp"), cni: root.join("cni") }
    }

    /// The device plugin's file for `resource_name` and `device_id`.
    pub fn device_plugin_file(&self, resource_name: &str, device_id: &str) -> PathBuf {
        self.device_plugin.join(file_name_of(&multus::plan::dp_device_info_path(resource_name, device_id)))
    }

    /// The attachment's `CNIDeviceInfoFile`.
    pub fn cni_file(&self, delegate_name: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.cni.join(file_name_of(&multus::plan::device_info_path(delegate_name, container_id, ifname)))
    }

    /// Copies the device plugin's description of `device_id` of `resource_name` to
    /// `destination` (normally [`Self::cni_file`]): see [`copy_device_info`].
    pub fn copy_from_device_plugin(
        &self,
        resource_name: &str,
        device_id: &str,
        destination: &Path,
    ) -> Result<(), DeviceInfoError> {
        copy_device_info(&self.device_plugin_file(resource_name, device_id), destination)
    }
}

/// A failed device-info copy. The reference ignores these (logs them) and so may the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DeviceInfoError {
    /// The device plugin's file cannot be read.
    #[error("cannot read device info {}: {source}", path.display())]
    Read {
        /// The source file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The device plugin's file is not a JSON object.
    #[error("device info {} is not a JSON object: {reason}", path.display())]
    Parse {
        /// The source file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The per-attachment file exists already (a stale attachment or a name clash).
    #[error("device info file already exists: {}", path.display())]
    Exists {
        /// The destination file.
        path: PathBuf,
    },
    /// The per-attachment file cannot be written.
    #[error("cannot write device info {}: {source}", path.display())]
    Write {
        /// The destination file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Copies a device-info file: `source` must hold a JSON object; `destination` gets it as compact
/// JSON (keys in their order), mode 0444, and must not exist yet (fails otherwise, leaving it
/// alone). The parent directory is created when missing. The file appears complete or not at
/// all (written aside, then hard-linked into place).
pub fn copy_device_info(source: &Path, destination: &Path) -> Result<(), DeviceInfoError> {
    let bytes = std::fs::read(source).map_err(|e| DeviceInfoError::Read { path: source.to_path_buf(), source: e })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| DeviceInfoError::Parse { path: source.to_path_buf(), reason: e.to_string() })?;
    if !value.is_object() {
        return Err(DeviceInfoError::Parse { path: source.to_path_buf(), reason: "not an object".into() });
    }
    let write_error = |e| DeviceInfoError::Write { path: destination.to_path_buf(), source: e };
    if destination.symlink_metadata().is_ok() {
        return Err(DeviceInfoError::Exists { path: destination.to_path_buf() });
    }
    let dir = destination.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_error)?;
    let staging = dir.join(format!(
        ".{}.{}.tmp",
        destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let result =
        write_staged(&staging, value.to_string().as_bytes()).and_then(|()| std::fs::hard_link(&staging, destination));
    let _ = std::fs::remove_file(&staging);
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(DeviceInfoError::Exists { path: destination.to_path_buf() })
        }
        Err(e) => Err(write_error(e)),
    }
}

fn write_staged(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    // Set explicitly: the mode given at creation is reduced by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(CNI_DEVICE_INFO_MODE))
}

/// The JSON of a device-info file for the network-status `device-info`, if readable and valid.
pub fn read_device_info(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok().filter(Value::is_object)
}

/// Removes an attachment's device-info file (DEL); an absent file is not an error.
pub fn remove_device_info(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::MetadataExt;

    const PCI_INFO: &str = r#"{
    "type": "pci",
    "version": "1.1.0",
    "pci": {"pci-address": "0000:af:06.0", "pf-pci-address": "0000:af:00.0"},
    "x-vendor": 1
}"#;

    #[test]
    fn production_directories_and_path_rules_come_from_multus() {
        let dirs = DeviceInfoDirs::default();
        assert_eq!(dirs.device_plugin, Path::new("/var/run/k8s.cni.cncf.io/devinfo/dp"));
        assert_eq!(dirs.cni, Path::new("/var/run/k8s.cni.cncf.io/devinfo/cni"));
        assert_eq!(
            dirs.device_plugin_file("intel.com/sriov", "0000:af:06.0"),
            Path::new("/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov-0000:af:06.0-device.json")
        );
        assert_eq!(
            dirs.cni_file("ns/sriov-net", "abc123", "net1"),
            Path::new(&multus::plan::device_info_path("ns/sriov-net", "abc123", "net1"))
        );
        let temp = DeviceInfoDirs::under(Path::new("/tmp/x"));
        assert_eq!(temp.cni_file("ns/n", "c", "net1"), Path::new("/tmp/x/cni/ns-n-c_net1"));
        assert_eq!(temp.device_plugin_file("a/b", "d/e"), Path::new("/tmp/x/dp/a-b-d-e-device.json"));
    }

    #[test]
    fn copy_writes_compact_json_read_only_and_refuses_to_overwrite() {
        let root = tempfile::tempdir().unwrap();
        let dirs = DeviceInfoDirs::under(root.path());
        std::fs::create_dir_all(&dirs.device_plugin).unwrap();
        std::fs::write(dirs.device_plugin_file("intel.com/sriov", "0000:af:06.0"), PCI_INFO).unwrap();
        let destination = dirs.cni_file("default/sriov-net", "cid", "net1");
        dirs.copy_from_device_plugin("intel.com/sriov", "0000:af:06.0", &destination).unwrap();
        let written = std::fs::read_to_string(&destination).unwrap();
        assert_eq!(
            written,
            r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:af:06.0","pf-pci-address":"0000:af:00.0"},"x-vendor":1}"#
        );
        assert_eq!(std::fs::metadata(&destination).unwrap().mode() & 0o777, 0o444);
        assert_eq!(read_device_info(&destination).unwrap()["pci"]["pci-address"], "0000:af:06.0");
        // No staging file is left behind.
        assert_eq!(std::fs::read_dir(&dirs.cni).unwrap().count(), 1);

        let again = dirs.copy_from_device_plugin("intel.com/sriov", "0000:af:06.0", &destination).unwrap_err();
        assert!(matches!(again, DeviceInfoError::Exists { .. }), "{again}");
        assert_eq!(std::fs::read_to_string(&destination).unwrap(), written);

        remove_device_info(&destination).unwrap();
        assert!(!destination.exists());
        remove_device_info(&destination).unwrap();
        assert_eq!(read_device_info(&destination), None);
    }

    #[test]
    fn missing_or_invalid_sources_are_errors_and_write_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dirs = DeviceInfoDirs::under(root.path());
        let destination = dirs.cni_file("n", "c", "net1");
        let missing = dirs.copy_from_device_plugin("r", "d", &destination).unwrap_err();
        assert!(matches!(missing, DeviceInfoError::Read { .. }), "{missing}");
        std::fs::create_dir_all(&dirs.device_plugin).unwrap();
        for bad in ["{", "[1]", "\"pci\""] {
            std::fs::write(dirs.device_plugin_file("r", "d"), bad).unwrap();
            let err = dirs.copy_from_device_plugin("r", "d", &destination).unwrap_err();
            assert!(matches!(err, DeviceInfoError::Parse { .. }), "{bad}: {err}");
        }
        assert!(!destination.exists());
        std::fs::write(root.path().join("array"), "[]").unwrap();
        assert_eq!(read_device_info(&root.path().join("array")), None);
    }

    proptest! {
        /// Whatever the names, the files stay inside their directories.
        #[test]
        fn files_stay_in_their_directories(
            resource in "[a-z./-]{1,20}",
            device in "[a-f0-9:./-]{1,20}",
            delegate in "[a-z0-9./-]{1,20}",
            container in "[a-f0-9]{1,12}",
            ifname in "[a-z0-9.]{1,15}",
        ) {
            let dirs = DeviceInfoDirs::under(Path::new("/base"));
            let dp = dirs.device_plugin_file(&resource, &device);
            prop_assert_eq!(dp.parent(), Some(Path::new("/base/dp")));
            prop_assert!(dp.file_name().unwrap().to_string_lossy().ends_with("-device.json"));
            let cni = dirs.cni_file(&delegate, &container, &ifname);
            prop_assert_eq!(cni.parent(), Some(Path::new("/base/cni")));
        }
    }
}
