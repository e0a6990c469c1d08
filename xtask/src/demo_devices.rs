//! The demo's device network and its closing `multusctl explain`.
//!
//! A fake kubelet (`fake-kubelet`, the real pod-resources v1 gRPC API on a unix socket) says
//! that pod `sriov` holds the SR-IOV VF `0000:03:00.1` of `intel.com/sriov`; the daemon's
//! `kubeletPodResourcesSocket` points at it; the NAD `sriov-net` carries
//! `k8s.v1.cni.cncf.io/resourceName: intel.com/sriov`. No VF exists on this machine, so the
//! delegate is fake-cni installed as `fake-sriov`: it records the config it got (the injected
//! `deviceID`/`pciBusID` and `runtimeConfig.deviceID`/`CNIDeviceInfoFile`) and answers an
//! address without making an interface. As root, the demo also plays the device plugin and
//! writes its device-info file, which the daemon copies per attachment and reports as the
//! pod's network-status `device-info`.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{LocalEnv, NETWORK_STATUS, PodRun, SYSTEM_CNI_DIR};
use crate::util::{Cmd, Proc, defer, is_root};

/// The device plugin resource the fake kubelet reports.
pub const RESOURCE: &str = "intel.com/sriov";
/// The VF it gave the pod (a PCI address, as the SR-IOV device plugin reports them).
pub const DEVICE_ID: &str = "0000:03:00.1";
/// The pod holding the VF.
pub const DEVICE_POD: &str = "sriov";
/// The pod selecting a network that does not exist (explained at the end).
pub const MISSING_POD: &str = "lost";
/// The NAD that does not exist.
pub const MISSING_NAD: &str = "absent-net";
/// fake-cni's name as the device network's delegate.
const DELEGATE: &str = "fake-sriov";
/// The NAD with the resourceName annotation.
const NAD: &str = "sriov-net";
/// Where the device plugin (here: the demo) and Multus keep device-info files.
const DP_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";
const CNI_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";

/// The device part of one demo run.
pub struct DeviceDemo {
    records: PathBuf,
    /// The device plugin's device-info file, when the demo could write it (root).
    dp_file: Option<PathBuf>,
}

/// fake-kubelet and multusctl, built with the same profile as the other binaries.
/// The packages the device demo runs besides the node's (built in the same cargo invocation).
pub const BUILT_PACKAGES: [&str; 2] = ["fake-kubelet", "multusctl"];

fn bin(env: &LocalEnv, name: &str) -> PathBuf {
    env.bins.daemon.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

impl DeviceDemo {
    /// Before kube-mock starts: the device NAD and the two pods go into the seed directory,
    /// fake-cni is installed as `fake-sriov`.
    pub fn prepare(env: &LocalEnv, seed: &Path) -> Result<Self> {
        let namespace = env.var("NAMESPACE");
        let records = env.run.join("records");
        std::fs::create_dir_all(&records)?;
        let config = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": NAD,
            "type": DELEGATE,
            // The capabilities the SR-IOV CNI would use from runtimeConfig.
            "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true},
            "fake": {"recordDir": records, "subnet": "10.252.0.0/24", "gateway": ""}
        });
        let seed_text = format!(
            r#"apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {NAD}
  namespace: {namespace}
  annotations:
    k8s.v1.cni.cncf.io/resourceName: {RESOURCE}
spec:
  config: '{config}'
---
apiVersion: v1
kind: Pod
metadata:
  name: {DEVICE_POD}
  namespace: {namespace}
  annotations:
    k8s.v1.cni.cncf.io/networks: {NAD}
spec:
  nodeName: {node}
  containers:
    - name: app
      image: registry.invalid/pause:3.10
      resources:
        limits: {{"{RESOURCE}": "1"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {MISSING_POD}
  namespace: {namespace}
  annotations:
    # Its second network (net1) names a NAD nobody created.
    k8s.v1.cni.cncf.io/networks: {MISSING_NAD}
spec:
  nodeName: {node}
  containers:
    - name: app
      image: registry.invalid/pause:3.10
"#,
            node = crate::harness::NODE,
        );
        std::fs::write(seed.join("30-devices.yaml"), seed_text)?;

        let bin_dir = env.run.join("bin");
        std::fs::copy(&env.bins.fake_cni, bin_dir.join(DELEGATE)).context("installing fake-cni as fake-sriov")?;
        if env.real {
            // binDir moves to <run>/bin: Debian's plugins linked there beside fake-sriov.
            for entry in std::fs::read_dir(SYSTEM_CNI_DIR)?.flatten() {
                let target = bin_dir.join(entry.file_name());
                if !target.exists() {
                    std::os::unix::fs::symlink(entry.path(), target)?;
                }
            }
        }
        Ok(Self { records, dp_file: None })
    }

    /// After `write_configs`: start fake-kubelet, point the daemon config at it, and (root)
    /// write the device plugin's device-info file.
    pub fn start(&mut self, env: &LocalEnv) -> Result<()> {
        let namespace = env.var("NAMESPACE");
        let socket = env.run.join("kubelet/pod-resources/kubelet.sock");
        let device = format!("{namespace}/{DEVICE_POD}/app:{RESOURCE}={DEVICE_ID}");
        let cmd = Cmd::new(bin(env, "fake-kubelet").display().to_string())
            .arg("--socket")
            .arg(socket.display().to_string())
            .arg("--device")
            .arg(&device);
        let (proc, stdout, _guard) = Proc::spawn("fake-kubelet", &cmd, &env.run.join("logs/fake-kubelet.log"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .context("fake-kubelet did not print its socket within 20 s")?
            .context("fake-kubelet exited before printing its socket")??;
        println!("    {first} (pid {}): pod {namespace}/{DEVICE_POD} holds {RESOURCE} {DEVICE_ID}", proc.pid);

        let path = env.run.join("daemon-config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path)?).context("daemon-config.json")?;
        let map = config.as_object_mut().context("daemon-config.json is not an object")?;
        map.insert("kubeletPodResourcesSocket".into(), Value::String(socket.display().to_string()));
        if env.real {
            map.insert("binDir".into(), Value::String(env.run.join("bin").display().to_string()));
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        println!("    daemon config: \"kubeletPodResourcesSocket\": \"{}\"", socket.display());
        if env.real {
            println!(
                "    daemon config: \"binDir\": \"{}\" ({SYSTEM_CNI_DIR} linked, plus {DELEGATE})",
                env.run.join("bin").display()
            );
        }

        if is_root() {
            let file =
                Path::new(DP_DEVINFO_DIR).join(format!("{}-{DEVICE_ID}-device.json", RESOURCE.replace('/', "-")));
            if file.exists() {
                println!("    {} exists already (left as it is)", file.display());
            } else {
                std::fs::create_dir_all(DP_DEVINFO_DIR)?;
                let info = serde_json::json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": DEVICE_ID}});
                std::fs::write(&file, info.to_string())?;
                let f = file.clone();
                let _ = defer(format!("remove {}", file.display()), move || {
                    let _ = std::fs::remove_file(&f);
                });
                println!("    device plugin's device-info: {} = {info}", file.display());
                self.dp_file = Some(file);
            }
        } else {
            println!("    not root: no device plugin device-info file under {DP_DEVINFO_DIR}, so no device-info");
        }
        Ok(())
    }

    /// The device-info file Multus keeps for this attachment (removed on DEL).
    pub fn cni_devinfo_file(env: &LocalEnv, pod: &PodRun) -> PathBuf {
        let name = format!("{}/{NAD}-{}_net1", env.var("NAMESPACE"), pod.container_id).replace('/', "-");
        Path::new(CNI_DEVINFO_DIR).join(name)
    }

    /// What the device network's delegate received, and the pod's network-status with its
    /// `device-info`. Returns the problems seen.
    pub fn show(&self, env: &LocalEnv, pod: &PodRun) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let calls = read_calls(&self.records)?;
        let add = calls.iter().find(|c| {
            c["command"] == "ADD" && c["containerId"].as_str() == Some(&pod.container_id) && c["argv0"] == DELEGATE
        });
        match add {
            None => problems.push(format!("{DELEGATE} recorded no ADD for {}", pod.name)),
            Some(call) => {
                let stdin = &call["stdin"];
                println!("    {DELEGATE} (fake-cni standing in for the SR-IOV CNI; no VF here) received on stdin:");
                println!("      deviceID {}   pciBusID {}", stdin["deviceID"], stdin["pciBusID"]);
                println!("      runtimeConfig {}", stdin["runtimeConfig"]);
                if stdin["deviceID"] != DEVICE_ID || stdin["runtimeConfig"]["deviceID"] != DEVICE_ID {
                    problems.push(format!("{DELEGATE} did not get deviceID {DEVICE_ID}: {stdin}"));
                }
            }
        }
        let api_pod = env.get_pod(&pod.namespace, &pod.name)?;
        let status: Vec<Value> = api_pod["metadata"]["annotations"][NETWORK_STATUS]
            .as_str()
            .map(serde_json::from_str)
            .transpose()
            .context("network-status is not JSON")?
            .unwrap_or_default();
        println!("    network-status (from the API server):");
        for e in &status {
            let ips: Vec<&str> = e["ips"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            println!(
                "      {:<28} {:<6} {:<16} mac {}{}",
                e["name"].as_str().unwrap_or_default(),
                e["interface"].as_str().unwrap_or_default(),
                ips.join(","),
                e["mac"].as_str().unwrap_or_default(),
                if e["default"] == true { " default" } else { "" }
            );
            if let Some(info) = e.get("device-info") {
                println!("        device-info {info}");
            }
        }
        let device_entry = status.iter().find(|e| e["interface"] == "net1");
        match (device_entry, &self.dp_file) {
            (None, _) => problems.push(format!("network-status of {} has no net1 entry", pod.name)),
            (Some(e), Some(_)) if e["device-info"]["pci"]["pci-address"] != DEVICE_ID => {
                problems.push(format!("net1's device-info is not PCI {DEVICE_ID}: {e}"))
            }
            _ => {}
        }
        Ok(problems)
    }

    /// After DEL: the per-attachment device-info file is gone.
    pub fn check_deleted(&self, env: &LocalEnv, pod: &PodRun) -> Option<String> {
        let file = Self::cni_devinfo_file(env, pod);
        file.exists().then(|| file.display().to_string())
    }
}

/// The daemon's reason inside the shim's error (`… ERRORED: <reason>': StdinData: …`).
fn error_reason(stdout: &str) -> Option<String> {
    let v: Value = serde_json::from_str(stdout).ok()?;
    let msg = v["msg"].as_str()?;
    let reason = msg.split_once("ERRORED: ")?.1;
    let reason = reason.split_once("': StdinData").map_or(reason, |(r, _)| r);
    Some(format!("(code {}) {reason}", v["code"]))
}

fn read_calls(dir: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(dir.join("calls.jsonl")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context("reading fake-cni's calls.jsonl"),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).context("a calls.jsonl line"))
        .collect()
}

/// The pod whose net1 names a missing NAD: the daemon refuses its ADD, and `multusctl explain`
/// says why before anything runs. Returns the problems seen.
pub fn explain_missing(env: &LocalEnv) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let namespace = env.var("NAMESPACE").to_string();
    let pod = env.sandbox(&namespace, MISSING_POD)?;
    crate::harness::step(format!("ADD {namespace}/{MISSING_POD} (selects {MISSING_NAD}, which does not exist)"));
    let out = env.shim("ADD", &pod)?;
    if out.success {
        problems.push(format!("ADD {MISSING_POD} succeeded although {MISSING_NAD} does not exist"));
    } else {
        println!("    ADD failed, as it must: {}", error_reason(&out.stdout).unwrap_or_else(|| out.describe()));
    }

    let daemon_config = env.run.join("daemon-config.json");
    let cmd = Cmd::new(bin(env, "multusctl").display().to_string())
        .arg("--kubeconfig")
        .arg(env.kubeconfig.display().to_string())
        .args(["explain", MISSING_POD, "-n", &namespace, "--daemon-config"])
        .arg(daemon_config.display().to_string());
    crate::harness::step(format!("multusctl explain: why {MISSING_POD} has no net1"));
    println!("    $ {}", cmd.to_string().replace(&env.run.display().to_string(), "<run>"));
    let out = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        println!("    {line}");
    }
    // Exit 1: the ADD this pod gets fails (0 plan fine, 2 usage or I/O error).
    match out.status.code() {
        Some(1) if stdout.contains(MISSING_NAD) => {}
        code => problems.push(format!(
            "multusctl explain exited {code:?} (expected 1, naming {MISSING_NAD}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
    if stdout.trim().is_empty() {
        bail!("multusctl explain printed nothing: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_reason_is_cut_out_of_the_shim_error() {
        let out = r#"{"code": 999, "msg": "CmdAdd (shim): CNI request failed with status 400: 'ContainerID:\"c\" ERRORED: error configuring pod [ns/lost] networking: no NAD': StdinData: {}"}"#;
        assert_eq!(error_reason(out).as_deref(), Some("(code 999) error configuring pod [ns/lost] networking: no NAD"));
        assert_eq!(error_reason("not json"), None);
    }
}
