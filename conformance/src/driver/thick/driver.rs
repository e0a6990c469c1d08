//! Thick targets as a driver: every step runs the shim against the node; cases seed API
//! objects and devices first, and may stop and start the daemon.

use super::checks::ThickCheck;
use super::devices::{DP_DEVINFO_DIR, script_devices};
use super::node::{NodeError, ThickNode};
use super::objects::{Namespaces, case_objects, kubectl, plain_pod, render_case};
use crate::case_env::{CaseEnv, StepOutcome};
use crate::driver::{CaseNetwork, Offers, TargetDriver};
use crate::errors::{CaseSetupError, KubeError};
use crate::expect::Observation;
use crate::invocation::{Invocation, Scope, TargetVars};
use crate::model::{Applies, Case, Step};
use crate::sys;
use crate::target::Target;
use crate::versions::Versions;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_node::ShimCall;

pub struct ThickDriver {
    pub node: ThickNode,
    namespaces: Namespaces,
    /// Device-plugin device-info files written for the current case.
    dp_files: Vec<PathBuf>,
    /// Host-side veths present when the case started (only new ones count as leaks).
    veths_before: Vec<String>,
}

impl ThickDriver {
    pub fn start(target: &Target) -> Result<ThickDriver, NodeError> {
        Ok(ThickDriver {
            node: ThickNode::start(target)?,
            namespaces: Namespaces::default(),
            dp_files: Vec::new(),
            veths_before: Vec::new(),
        })
    }

    fn remove_dp_files(&mut self) {
        for f in self.dp_files.drain(..) {
            let _ = std::fs::remove_file(f);
        }
    }

    /// The shim as a runtime starts it (exactly `env` and `stdin`), watched to its end.
    fn run_shim(&self, env: &[(String, String)], stdin: &[u8], timeout: Duration) -> Observation {
        let call = env.iter().fold(ShimCall::default(), |call, (k, v)| call.env(k, v)).stdin(stdin);
        let start = Instant::now();
        match call.spawn(&self.node.shim) {
            Ok(child) => sys::observe(child, &[], start, timeout),
            Err(e) => sys::not_started(&self.node.shim, &e),
        }
    }

    fn delete_pod(&self, step: &Step, env: &CaseEnv) -> StepOutcome {
        let Some(att) = env.attachments.get(&step.attachment) else {
            return StepOutcome::Fail("no attachment".into());
        };
        match kubectl(&self.node, &["delete", "pod", "-n", &env.id, &att.pod, "--wait=false"], None) {
            Ok(_) => {
                std::thread::sleep(Duration::from_millis(300));
                StepOutcome::Ok
            }
            Err(e) => StepOutcome::Fail(e.to_string()),
        }
    }
}

impl ThickDriver {
    /// Merge the step's `annotations` and `labels` into the attachment's pod: one update
    /// through the API server (a merge patch, as `kubectl annotate`/`kubectl label` send).
    fn update_pod(&self, step: &Step, env: &CaseEnv) -> StepOutcome {
        let Some(att) = env.attachments.get(&step.attachment) else {
            return StepOutcome::Fail("no attachment".into());
        };
        let metadata = pod_metadata_patch(&step.with, &|s| render_case(&self.node, env, s));
        let patch = serde_json::json!({ "metadata": metadata }).to_string();
        match kubectl(&self.node, &["patch", "pod", "-n", &env.id, &att.pod, "--type", "merge", "-p", &patch], None) {
            Ok(_) => StepOutcome::Ok,
            Err(e) => StepOutcome::Fail(e.to_string()),
        }
    }
}

/// The `metadata` of a merge patch from a step's `annotations` and `labels` (string values
/// rendered; `null` kept: it removes the key).
fn pod_metadata_patch(with: &std::collections::BTreeMap<String, Value>, render: &dyn Fn(&str) -> String) -> Value {
    let mut metadata = serde_json::Map::new();
    for key in ["annotations", "labels"] {
        if let Some(Value::Object(m)) = with.get(key) {
            let rendered = m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.clone(), |s| Value::String(render(s)))))
                .collect();
            metadata.insert(key.to_string(), Value::Object(rendered));
        }
    }
    Value::Object(metadata)
}

impl TargetVars for ThickDriver {
    fn var(&self, key: &str, _which: &str, _env: &CaseEnv) -> Option<Value> {
        match key {
            // Multus keeps libcni's result cache under its cniDir; a case network is net1.
            "cache_dir" => Some(Value::String(self.node.vars["cni_dir"].clone())),
            "net_ifname" => Some(Value::String("net1".into())),
            k => self.node.vars.get(k).map(|v| Value::String(v.clone())),
        }
    }

    fn cni_path(&self, _env: &CaseEnv) -> String {
        self.node.vars["bindir"].clone()
    }

    fn config_template(&self, _target: &Target, _case: &Case) -> Value {
        self.node.shim_config.clone()
    }

    fn default_cni_args(&self) -> &'static str {
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={{pod_namespace}};K8S_POD_NAME={{pod}};K8S_POD_INFRA_CONTAINER_ID={{cid}}"
    }
}

impl TargetDriver for ThickDriver {
    fn vars(&self) -> &dyn TargetVars {
        self
    }

    fn probe_versions(&self, target: &Target) -> Versions {
        let obs = self.run_shim(&Versions::probe_env(), &[], Versions::PROBE_TIMEOUT);
        Versions::from_answer(&obs, target.default_version.as_ref())
    }

    fn offers(&self) -> Offers {
        Offers {
            capabilities: self.node.capabilities.clone(),
            api_server: true,
            devices: self.node.serves_devices(),
            delegate_records: self.node.fake.is_some(),
            interfaces: self.node.bridge,
            dynamic_networks: self.node.spec.dynamic_networks,
        }
    }

    fn can_run(&self, case: &Case) -> Option<String> {
        if case.applies.contains(&Applies::Interface) && !self.node.bridge {
            return Some(
                "the cluster network is fake-cni (creates no interfaces); run as root with /usr/lib/cni/bridge".into(),
            );
        }
        if case.applies.contains(&Applies::Ipam) && !self.node.bridge {
            return Some("the cluster network owns no IPAM state (fake-cni)".into());
        }
        if case.setup.devices.iter().any(|d| d.device_info) && !sys::is_root() {
            return Some(format!("writes the device plugin's device-info under {DP_DEVINFO_DIR} (needs root)"));
        }
        None
    }

    /// The cluster network has its own scratch host netns (the node's).
    fn uses_scratch_host(&self) -> bool {
        false
    }

    /// Seed the case's devices and objects.
    fn prepare_case(
        &mut self,
        case: &Case,
        env: &mut CaseEnv,
        network: Option<&CaseNetwork>,
    ) -> Result<(), CaseSetupError> {
        self.veths_before = self.node.host_veths();
        script_devices(&self.node, env, &case.setup.devices, case.setup.kubelet_fail.as_deref(), &mut self.dp_files)?;
        let (items, wait) = case_objects(&self.node, case, env, network);
        self.namespaces.apply(&self.node, items)?;
        if wait {
            // Let the daemon's informers see the objects (ADD also retries NotFound for 2.5 s).
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(())
    }

    fn execute(
        &self,
        _r: &Scope<'_>,
        _case: &Case,
        _step: &Step,
        inv: &Invocation,
        _env: &CaseEnv,
        timeout: Duration,
    ) -> Observation {
        self.run_shim(&inv.env, &inv.stdin, timeout)
    }

    fn check(&self, r: &Scope<'_>, name: &str, step: &Step, env: &CaseEnv) -> Option<StepOutcome> {
        let check = ThickCheck { node: &self.node, veths_before: &self.veths_before, r, step, env };
        Some(check.run(name))
    }

    fn action(&mut self, name: &str, step: &Step, env: &mut CaseEnv) -> Option<StepOutcome> {
        Some(match name {
            "stop-daemon" => {
                self.node.stop_daemon();
                StepOutcome::Ok
            }
            "start-daemon" => match self.node.start_daemon() {
                Ok(()) => StepOutcome::Ok,
                Err(e) => StepOutcome::Fail(e.to_string()),
            },
            "delete-pod" => self.delete_pod(step, env),
            "update-pod" => self.update_pod(step, env),
            "clear-records" => {
                let _ = std::fs::remove_file(Path::new(&self.node.vars["records"]).join("calls.jsonl"));
                StepOutcome::Ok
            }
            _ => StepOutcome::Skip(format!("unknown action {name}")),
        })
    }

    fn ensure_pod(&self, env: &CaseEnv, attachment: &str) -> Result<(), KubeError> {
        self.namespaces.apply(&self.node, vec![plain_pod(&self.node, env, attachment)?])
    }

    /// Clear the case's devices, and start the daemon again if the case stopped it.
    fn finish_case(&mut self, case: &Case, env: &mut CaseEnv) {
        if !case.setup.devices.is_empty() || case.setup.kubelet_fail.is_some() {
            let _ = script_devices(&self.node, env, &[], None, &mut Vec::new());
        }
        self.remove_dp_files();
        if !self.node.daemon_running() {
            let _ = self.node.start_daemon();
        }
    }

    fn ready_endpoint(&self) -> Option<&'static str> {
        self.node.ready_endpoint
    }
}

impl Drop for ThickDriver {
    fn drop(&mut self) {
        self.remove_dp_files();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_update_patches_only_the_given_annotations_and_labels() {
        let with: std::collections::BTreeMap<String, Value> = serde_json::from_value(json!({
            "annotations": {"k8s.v1.cni.cncf.io/networks": "{{x}}", "gone": null},
            "labels": {"app": "a"},
            "other": 1
        }))
        .unwrap();
        let got = pod_metadata_patch(&with, &|s| s.replace("{{x}}", "net-a,net-b"));
        assert_eq!(
            got,
            json!({"annotations": {"k8s.v1.cni.cncf.io/networks": "net-a,net-b", "gone": null}, "labels": {"app": "a"}})
        );
        assert_eq!(pod_metadata_patch(&Default::default(), &|s| s.into()), json!({}));
    }
}
