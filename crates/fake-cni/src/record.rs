//! The call record: one JSON line per invocation in `<recordDir>/calls.jsonl`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The file, inside the record directory, that every invocation appends one line to.
pub const CALLS_FILE: &str = "calls.jsonl";

/// One recorded invocation, exactly as the fake received it (written before it acts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// `CNI_COMMAND` as given (may be empty or unknown).
    pub command: String,
    /// `CNI_CONTAINERID`
    pub container_id: String,
    /// `CNI_NETNS`
    pub netns: String,
    /// `CNI_IFNAME`
    pub ifname: String,
    /// `CNI_ARGS`
    pub args: String,
    /// `CNI_PATH`
    pub path: String,
    /// The file name the binary was invoked as (a symlink's or copy's name, e.g. `macvlan`).
    pub argv0: String,
    /// The config's `type` (empty when stdin is not a JSON object with a string `type`).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The config's `name` (empty when absent).
    pub name: String,
    /// stdin parsed as JSON, or the raw text (lossy UTF-8) when it is not JSON.
    pub stdin: Value,
    /// Every `CNI_*` variable that was set, even to the empty string.
    pub env: BTreeMap<String, String>,
    /// The plugin process's PID.
    pub pid: u32,
    /// Unix time in milliseconds.
    pub time: u64,
}

impl Call {
    /// The request config, when stdin was a JSON object.
    pub fn config(&self) -> Option<&Map<String, Value>> {
        self.stdin.as_object()
    }

    /// A top-level key of the request config.
    pub fn config_value(&self, key: &str) -> Option<&Value> {
        self.config()?.get(key)
    }

    /// The config's `cniVersion`, when it is a string.
    pub fn cni_version(&self) -> Option<&str> {
        self.config_value("cniVersion")?.as_str()
    }

    /// The config's `prevResult`, if any.
    pub fn prev_result(&self) -> Option<&Value> {
        self.config_value("prevResult").filter(|v| !v.is_null())
    }

    /// The config's `runtimeConfig`, if any.
    pub fn runtime_config(&self) -> Option<&Value> {
        self.config_value("runtimeConfig").filter(|v| !v.is_null())
    }

    /// The device ID Multus injected into the config (`deviceID`, top level of a single
    /// config or of each plugin of a list), when it is a string.
    pub fn device_id(&self) -> Option<&str> {
        self.config_value("deviceID")?.as_str()
    }

    /// `runtimeConfig.deviceID` (only for a plugin that declares the `deviceID` capability).
    pub fn runtime_device_id(&self) -> Option<&str> {
        self.runtime_config()?.get("deviceID")?.as_str()
    }

    /// `runtimeConfig.CNIDeviceInfoFile`: where Multus keeps this attachment's device-info.
    pub fn device_info_file(&self) -> Option<&str> {
        self.runtime_config()?.get("CNIDeviceInfoFile")?.as_str()
    }

    /// The attachment this call was about: `(CNI_CONTAINERID, CNI_IFNAME)`.
    pub fn attachment(&self) -> (&str, &str) {
        (&self.container_id, &self.ifname)
    }
}

/// Append one call as one line with a single `write` on an `O_APPEND` file, so concurrent
/// invocations never interleave. Creates the directory if needed.
pub fn append_call(dir: &Path, call: &Call) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut line = serde_json::to_vec(call).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(CALLS_FILE))?;
    // A regular file takes the whole buffer in one write(2); write_all only matters if it does not.
    file.write_all(&line)
}

/// Every call recorded in `dir`, oldest first. A missing file means no calls.
pub fn try_read_calls(dir: impl AsRef<Path>) -> std::io::Result<Vec<Call>> {
    let file = dir.as_ref().join(CALLS_FILE);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: line {}: {e}", file.display(), i + 1))
            })
        })
        .collect()
}

/// Every call recorded in `dir`, oldest first (a test helper: panics on an unreadable or
/// malformed record file; a missing file means no calls).
pub fn read_calls(dir: impl AsRef<Path>) -> Vec<Call> {
    match try_read_calls(dir) {
        Ok(calls) => calls,
        Err(e) => panic!("reading fake-cni calls: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(stdin: Value) -> Call {
        Call {
            command: "ADD".into(),
            container_id: "c1".into(),
            netns: "/var/run/netns/p".into(),
            ifname: "net1".into(),
            args: String::new(),
            path: String::new(),
            argv0: "sriov".into(),
            plugin_type: "sriov".into(),
            name: "sriov-net".into(),
            stdin,
            env: BTreeMap::new(),
            pid: 1,
            time: 0,
        }
    }

    #[test]
    fn device_accessors_read_the_injected_id_and_the_runtime_config() {
        let c = call(serde_json::json!({
            "deviceID": "0000:03:00.1", "pciBusID": "0000:03:00.1",
            "runtimeConfig": {"deviceID": "0000:03:00.1", "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/x"}
        }));
        assert_eq!(c.device_id(), Some("0000:03:00.1"));
        assert_eq!(c.runtime_device_id(), Some("0000:03:00.1"));
        assert_eq!(c.device_info_file(), Some("/var/run/k8s.cni.cncf.io/devinfo/cni/x"));
        let none = call(serde_json::json!({"deviceID": 7, "runtimeConfig": null}));
        assert_eq!((none.device_id(), none.runtime_device_id(), none.device_info_file()), (None, None, None));
        assert_eq!(call(Value::String("not json".into())).device_id(), None);
    }
}
