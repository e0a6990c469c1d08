//! `deployments/`: reading the manifests (used by e2e) and their validation tests.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

use crate::util::workspace_root;

pub fn deployments_dir() -> PathBuf {
    workspace_root().join("deployments")
}

/// Every document of every `deployments/*.yml`, in file order.
pub fn load() -> Result<Vec<(String, Value)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deployments_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f)?;
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for doc in crate::fixtures::yaml_documents(&text).with_context(|| format!("parsing {name}"))? {
            out.push((name.clone(), doc));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{Cmd, have};
    use std::collections::BTreeSet;

    fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
        &docs
            .iter()
            .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
            .1
    }

    fn strs(v: &Value) -> BTreeSet<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn every_document_is_a_named_object() {
        let docs = load().unwrap();
        let kinds: BTreeSet<&str> = docs.iter().map(|(_, d)| d["kind"].as_str().unwrap()).collect();
        let expected: BTreeSet<&str> = [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
        ]
        .into();
        assert_eq!(kinds, expected);
        for (file, d) in &docs {
            assert!(d["apiVersion"].is_string(), "{file}: apiVersion");
            assert!(d["metadata"]["name"].is_string(), "{file}: metadata.name");
        }
    }

    #[test]
    fn crd() {
        let docs = load().unwrap();
        let crd = find(&docs, "CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io");
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "k8s.cni.cncf.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], "NetworkAttachmentDefinition");
        assert_eq!(strs(&spec["names"]["shortNames"]), ["nad", "net-attach-def"].map(String::from).into());
        let v1 = &spec["versions"][0];
        assert_eq!(
            (v1["name"].as_str(), v1["served"].as_bool(), v1["storage"].as_bool()),
            (Some("v1"), Some(true), Some(true))
        );
        assert_eq!(v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["config"]["type"], "string");
    }

    #[test]
    fn rbac_is_exactly_what_the_daemon_calls() {
        let docs = load().unwrap();
        let sa = find(&docs, "ServiceAccount", "multus");
        assert_eq!(sa["metadata"]["namespace"], "kube-system");
        let role = find(&docs, "ClusterRole", "multus");
        let mut got = BTreeSet::new();
        for rule in role["rules"].as_array().unwrap() {
            for g in strs(&rule["apiGroups"]) {
                for r in strs(&rule["resources"]) {
                    for v in strs(&rule["verbs"]) {
                        got.insert(format!("{g}/{r}:{v}"));
                    }
                }
            }
        }
        let want: BTreeSet<String> = [
            "/pods:get",
            "/pods:list",
            "/pods:watch",
            "/pods/status:patch",
            "/pods/status:update",
            "k8s.cni.cncf.io/network-attachment-definitions:get",
            "k8s.cni.cncf.io/network-attachment-definitions:list",
            "k8s.cni.cncf.io/network-attachment-definitions:watch",
            "/events:create",
            "/events:patch",
            "/events:update",
            "events.k8s.io/events:create",
            "events.k8s.io/events:patch",
            "events.k8s.io/events:update",
        ]
        .map(String::from)
        .into();
        assert_eq!(got, want);
        let binding = find(&docs, "ClusterRoleBinding", "multus");
        assert_eq!(binding["roleRef"]["name"], "multus");
        assert_eq!(binding["subjects"][0]["name"], "multus");
        assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
    }

    #[test]
    fn daemon_config() {
        let docs = load().unwrap();
        let cm = find(&docs, "ConfigMap", "multus-daemon-config");
        assert_eq!(cm["metadata"]["namespace"], "kube-system");
        let conf: Value = serde_json::from_str(cm["data"]["daemon-config.json"].as_str().unwrap()).unwrap();
        assert_eq!(conf["multusConfigFile"], "auto");
        assert!(["0.3.1", "1.0.0"].contains(&conf["cniVersion"].as_str().unwrap()));
        assert_eq!(conf["socketDir"], "/host/run/multus/");
        assert_eq!(conf["cniConfigDir"], "/host/etc/cni/net.d");
        assert_eq!(conf["multusAutoconfigDir"], "/host/etc/cni/net.d");
        assert_eq!(conf["binDir"], "/opt/cni/bin");
    }

    #[test]
    fn daemonset() {
        let docs = load().unwrap();
        let ds = find(&docs, "DaemonSet", "kube-multus-ds");
        assert_eq!(ds["metadata"]["namespace"], "kube-system");
        let sel = &ds["spec"]["selector"]["matchLabels"];
        let pod = &ds["spec"]["template"];
        for (k, v) in sel.as_object().unwrap() {
            assert_eq!(&pod["metadata"]["labels"][k], v, "selector label {k}");
        }
        let spec = &pod["spec"];
        assert_eq!(spec["hostNetwork"], true);
        assert_eq!(spec["hostPID"], true);
        assert_eq!(spec["serviceAccountName"], "multus");
        let volumes: BTreeSet<String> =
            spec["volumes"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();

        let init = &spec["initContainers"][0];
        let cmd: Vec<&str> = init["command"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(cmd, ["/usr/src/multus-cni/bin/multus-install", "install", "--dest", "/host/opt/cni/bin"]);

        let c = &spec["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(c["command"][0], "/usr/src/multus-cni/bin/multus-daemon");
        let env = &c["env"][0];
        assert_eq!(
            (env["name"].as_str(), env["valueFrom"]["fieldRef"]["fieldPath"].as_str()),
            (Some("MULTUS_NODE_NAME"), Some("spec.nodeName"))
        );
        for probe in ["livenessProbe", "readinessProbe"] {
            let cmd = &c[probe]["exec"]["command"];
            assert_eq!(cmd[0], "/usr/src/multus-cni/bin/multus-install", "{probe}");
            assert_eq!(cmd[1], "probe", "{probe}");
        }
        assert_eq!(c["livenessProbe"]["exec"]["command"][5], "/healthz");
        assert_eq!(c["readinessProbe"]["exec"]["command"][5], "/readyz");
        for r in ["requests", "limits"] {
            assert!(c["resources"][r]["cpu"].is_string() && c["resources"][r]["memory"].is_string(), "{r}");
        }
        let mounts: BTreeSet<String> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .chain(init["volumeMounts"].as_array().unwrap())
            .map(|m| {
                assert!(volumes.contains(m["name"].as_str().unwrap()), "mount of an undeclared volume {m}");
                m["mountPath"].as_str().unwrap().to_string()
            })
            .collect();
        for p in [
            "/host/etc/cni/net.d",
            "/opt/cni/bin",
            "/host/opt/cni/bin",
            "/host/run",
            "/var/lib/cni",
            "/run/netns",
            "/etc/cni/multus/net.d",
            "/etc/cni/net.d/multus.d",
        ] {
            assert!(mounts.contains(p), "no mount at {p}");
        }
    }

    /// `kubectl apply -f deployments/` against kube-mock: the manifests are objects an API
    /// server accepts (CRD included), not just YAML.
    #[test]
    fn kubectl_applies_the_manifests_to_kube_mock() {
        if !have("kubectl") {
            eprintln!("skipped: kubectl is not installed");
            return;
        }
        let server = kube_mock::MockApiServer::start_blocking(kube_mock::MockConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kc).unwrap();
        let kubectl = |args: &[&str]| {
            Cmd::new("kubectl").arg("--kubeconfig").arg(kc.display().to_string()).args(args.iter().copied()).output()
        };
        let out = kubectl(&["apply", "-f", &deployments_dir().display().to_string()]).unwrap();
        for what in [
            "customresourcedefinition.apiextensions.k8s.io/network-attachment-definitions.k8s.cni.cncf.io",
            "serviceaccount/multus",
            "clusterrole.rbac.authorization.k8s.io/multus",
            "clusterrolebinding.rbac.authorization.k8s.io/multus",
            "configmap/multus-daemon-config",
            "daemonset.apps/kube-multus-ds",
        ] {
            assert!(out.contains(what), "{what} not in:\n{out}");
        }
        let ds = kubectl(&["-n", "kube-system", "get", "ds", "kube-multus-ds", "-o", "json"]).unwrap();
        let ds: Value = serde_json::from_str(&ds).unwrap();
        assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    }
}
