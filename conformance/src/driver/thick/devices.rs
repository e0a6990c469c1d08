//! Devices of a thick case's pods: the fake kubelet's script for `setup.devices` /
//! `setup.kubelet_fail`, and the device plugin's device-info files the case asks for.

use super::node::ThickNode;
use super::objects::render_case;
use crate::case_env::CaseEnv;
use crate::errors::KubeError;
use crate::model::DeviceSpec;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where device plugins leave device-info files for Multus to copy (multus-thick.md §5.13).
pub const DP_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

fn file_error(path: impl std::fmt::Display, e: std::io::Error) -> KubeError {
    KubeError::File { path: path.to_string(), reason: e.to_string() }
}

/// Write the device plugin's device-info file of one device (never over an existing one).
fn write_device_info(resource: &str, id: &str) -> Result<PathBuf, KubeError> {
    let file =
        Path::new(DP_DEVINFO_DIR).join(format!("{}-{}-device.json", resource.replace('/', "-"), id.replace('/', "-")));
    if file.exists() {
        return Err(KubeError::DeviceInfoExists(file.display().to_string()));
    }
    std::fs::create_dir_all(DP_DEVINFO_DIR).map_err(|e| file_error(DP_DEVINFO_DIR, e))?;
    let info = json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": id}});
    std::fs::write(&file, info.to_string()).map_err(|e| file_error(file.display(), e))?;
    Ok(file)
}

/// The fake kubelet's script for the case's devices (an empty one clears it); device-info
/// files written are added to `dp_files`.
pub fn script_devices(
    node: &ThickNode,
    env: &CaseEnv,
    devices: &[DeviceSpec],
    fail: Option<&str>,
    dp_files: &mut Vec<PathBuf>,
) -> Result<(), KubeError> {
    let Some(script) = node.vars.get("kubelet_script").cloned() else {
        return if devices.is_empty() && fail.is_none() { Ok(()) } else { Err(KubeError::NoKubelet) };
    };
    let mut pods: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in devices {
        let pod =
            env.attachments.get(&d.attachment).map(|a| a.pod.clone()).ok_or(KubeError::UnknownDeviceAttachment)?;
        let resource = render_case(node, env, &d.resource);
        let ids: Vec<String> = d.ids.iter().map(|i| render_case(node, env, i)).collect();
        if d.device_info {
            for id in &ids {
                dp_files.push(write_device_info(&resource, id)?);
            }
        }
        pods.entry(pod).or_default().push(json!({"resourceName": resource, "deviceIds": ids}));
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|(name, devices)| json!({"namespace": env.id, "name": name, "containers": [{"name": "c", "devices": devices}]}))
        .collect();
    let mut body = json!({"pods": pods});
    if let Some(fail) = fail {
        let (code, message) = fail.split_once(':').unwrap_or((fail, "fake-kubelet: configured failure"));
        body["fail"] = json!({"code": code, "message": message});
    }
    std::fs::write(&script, body.to_string()).map_err(|e| file_error(&script, e))
}
