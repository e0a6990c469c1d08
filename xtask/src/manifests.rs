//! `deployments/`: the one manifest (`multus-daemonset-thick-plugin.yml`), reading it (used by
//! e2e), and its validation tests: the Go thick plugin's objects and shape, kube-mock accepting
//! the documented `kubectl apply -f deployments/multus-daemonset-thick-plugin.yml`.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::util::workspace_root;

/// The manifest's file name, as the thick-plugin documentation names it.
pub const MANIFEST: &str = "multus-daemonset-thick-plugin.yml";
/// The optional perNodeCertificate approver (Deployment and RBAC), applied on its own.
#[cfg_attr(not(test), allow(dead_code))]
pub const CERT_APPROVER_MANIFEST: &str = "cert-approver.yml";

pub fn deployments_dir() -> PathBuf {
    workspace_root().join("deployments")
}

/// `deployments/multus-daemonset-thick-plugin.yml`.
pub fn manifest_path() -> PathBuf {
    deployments_dir().join(MANIFEST)
}

/// `deployments/kustomization.yaml`: the manifest with the image and namespace as settings
/// (`kubectl apply -k deployments/`); not an object itself.
pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// Every document of every `deployments/*.yml`, in file order.
#[cfg_attr(not(test), allow(dead_code))]
pub fn load() -> Result<Vec<(String, Value)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deployments_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .filter(|p| p.file_name().is_none_or(|n| n != KUSTOMIZATION))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        out.extend(load_file(&f)?.into_iter().map(|d| (name.clone(), d)));
    }
    Ok(out)
}

/// Every document of one manifest file.
pub fn load_file(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    crate::fixtures::yaml_documents(&text).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{Cmd, have};
    use serde_json::json;
    use std::collections::BTreeSet;

    fn docs() -> Vec<Value> {
        load_file(&manifest_path()).unwrap()
    }

    fn get<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn strs(v: &Value) -> BTreeSet<String> {
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    /// One source: the documented files are the only manifests (no hand-kept split copies).
    #[test]
    fn deployments_is_the_documented_files() {
        let names: BTreeSet<String> = load().unwrap().into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, BTreeSet::from([CERT_APPROVER_MANIFEST.to_string(), MANIFEST.to_string()]));
    }

    /// The cert-approver manifest parses, runs a binary the image contains, from the
    /// DaemonSet's image, on the host network (nodes wait for it before their CNI works), and
    /// grants what the approver does and no more.
    #[test]
    fn the_cert_approver_manifest_runs_the_images_approver() {
        let docs = load_file(&deployments_dir().join(CERT_APPROVER_MANIFEST)).unwrap();
        let kinds: BTreeSet<(String, String)> = docs
            .iter()
            .map(|d| (d["kind"].as_str().unwrap().to_string(), d["metadata"]["name"].as_str().unwrap().to_string()))
            .collect();
        let expected = [
            ("ServiceAccount", "multus-cert-approver"),
            ("ClusterRole", "multus-cert-approver"),
            ("ClusterRoleBinding", "multus-cert-approver"),
            ("Deployment", "multus-cert-approver"),
            ("ClusterRoleBinding", "multus-per-node-certificate"),
            ("ClusterRole", "multus-certificate-renewal"),
            ("ClusterRoleBinding", "multus-certificate-renewal"),
        ]
        .map(|(k, n)| (k.to_string(), n.to_string()));
        assert_eq!(kinds, BTreeSet::from(expected));
        // The daemon's certificate identity (group system:multus) gets the DaemonSet's role and
        // what its renewals need.
        let group = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:multus"}]);
        let per_node = get(&docs, "ClusterRoleBinding", "multus-per-node-certificate");
        assert_eq!((&per_node["roleRef"]["name"], &per_node["subjects"]), (&json!("multus"), &group));
        get(&self::docs(), "ClusterRole", "multus");
        let renewal = get(&docs, "ClusterRoleBinding", "multus-certificate-renewal");
        assert_eq!((&renewal["roleRef"]["name"], &renewal["subjects"]), (&json!("multus-certificate-renewal"), &group));
        let renewal_rules = &get(&docs, "ClusterRole", "multus-certificate-renewal")["rules"];
        assert_eq!(strs(&renewal_rules[0]["verbs"]), strs(&json!(["create", "get", "list", "watch"])));
        assert_eq!(renewal_rules[0]["resources"], json!(["certificatesigningrequests"]));
        let deployment = get(&docs, "Deployment", "multus-cert-approver");
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], "multus-cert-approver");
        assert_eq!(spec["hostNetwork"], true);
        let container = &spec["containers"][0];
        let command = container["command"][0].as_str().unwrap();
        let in_image: BTreeSet<String> = crate::image::image_paths(false).into_iter().map(|(path, _)| path).collect();
        assert!(in_image.contains(command), "{command} is not in the image");
        assert_eq!(command, format!("{}/cert-approver", crate::image::IMAGE_BIN_DIR));
        assert!(crate::image::BINARIES.contains(&"cert-approver"));
        let daemonset = get(&self::docs(), "DaemonSet", "kube-multus-ds").clone();
        assert_eq!(container["image"], daemonset["spec"]["template"]["spec"]["containers"][0]["image"]);
        let binding = get(&docs, "ClusterRoleBinding", "multus-cert-approver");
        assert_eq!(binding["roleRef"]["name"], "multus-cert-approver");
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": "multus-cert-approver", "namespace": "kube-system"}])
        );
        let rules = get(&docs, "ClusterRole", "multus-cert-approver")["rules"].as_array().unwrap().clone();
        let granted: BTreeSet<String> = rules
            .iter()
            .flat_map(|r| {
                let names = r["resourceNames"].as_array().cloned().unwrap_or_default();
                strs(&r["resources"]).into_iter().flat_map(move |res| {
                    let names = names.clone();
                    strs(&r["verbs"]).into_iter().map(move |v| {
                        let n: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
                        format!("{v} {res} {}", n.join(","))
                    })
                })
            })
            .collect();
        let expected = [
            "get certificatesigningrequests ",
            "list certificatesigningrequests ",
            "watch certificatesigningrequests ",
            "update certificatesigningrequests/approval ",
            "approve signers kubernetes.io/kube-apiserver-client",
            "get nodes ",
        ]
        .map(str::to_string);
        assert_eq!(granted, BTreeSet::from(expected));
    }

    /// The Go manifest's objects, by kind, name and namespace.
    #[test]
    fn the_go_manifests_objects() {
        let got: BTreeSet<(String, String, String)> = docs()
            .iter()
            .map(|d| {
                assert!(d["apiVersion"].is_string(), "apiVersion of {d}");
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (s(&d["kind"]), s(&d["metadata"]["namespace"]), s(&d["metadata"]["name"]))
            })
            .collect();
        let want: BTreeSet<(String, String, String)> = [
            ("CustomResourceDefinition", "", "network-attachment-definitions.k8s.cni.cncf.io"),
            ("ServiceAccount", "kube-system", "multus"),
            ("ClusterRole", "", "multus"),
            ("ClusterRoleBinding", "", "multus"),
            ("ConfigMap", "kube-system", "multus-daemon-config"),
            ("DaemonSet", "kube-system", "kube-multus-ds"),
        ]
        .into_iter()
        .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn crd() {
        let docs = docs();
        let crd = get(&docs, "CustomResourceDefinition", "network-attachment-definitions.k8s.cni.cncf.io");
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

    /// What the daemon calls (plus `update` on pods/status, the Go daemon's write, and the Go
    /// ClusterRole's DRA reads; its own DaemonSet, read to tell an uninstall from a restart);
    /// no write access to NADs.
    #[test]
    fn rbac() {
        let docs = docs();
        let role = get(&docs, "ClusterRole", "multus");
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
            "resource.k8s.io/resourceclaims:get",
            "resource.k8s.io/resourceclaims:list",
            "resource.k8s.io/resourceclaims/status:get",
            "resource.k8s.io/resourceclaims/status:list",
            "resource.k8s.io/resourceslices:get",
            "resource.k8s.io/resourceslices:list",
            "/events:create",
            "/events:patch",
            "/events:update",
            "events.k8s.io/events:create",
            "events.k8s.io/events:patch",
            "events.k8s.io/events:update",
            "apps/daemonsets:get",
            "apps/daemonsets:list",
            "apps/daemonsets:watch",
        ]
        .map(String::from)
        .into();
        assert_eq!(got, want);
        let binding = get(&docs, "ClusterRoleBinding", "multus");
        assert_eq!(binding["roleRef"]["name"], "multus");
        assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
        assert_eq!(binding["subjects"][0]["name"], "multus");
        assert_eq!(binding["subjects"][0]["namespace"], "kube-system");
    }

    /// The Go manifest's daemon-config.json, key for key, plus a `connectionLimit` sized for
    /// the memory limit (the arithmetic is in the manifest's comment).
    #[test]
    fn daemon_config_is_the_go_one() {
        let docs = docs();
        let cm = get(&docs, "ConfigMap", "multus-daemon-config");
        assert_eq!(cm["metadata"]["labels"], json!({"tier": "node", "app": "multus"}));
        let conf: Value = serde_json::from_str(cm["data"]["daemon-config.json"].as_str().unwrap()).unwrap();
        assert_eq!(
            conf,
            json!({
                "chrootDir": "/hostroot",
                "cniVersion": "0.3.1",
                "logLevel": "verbose",
                "logToStderr": true,
                "cniConfigDir": "/host/etc/cni/net.d",
                "multusAutoconfigDir": "/host/etc/cni/net.d",
                "multusConfigFile": "auto",
                "socketDir": "/host/run/multus/",
                "connectionLimit": 64
            })
        );
    }

    /// `overlays/cni-1.1.0` (the CNI 1.1.0 opt-in) rendered by `kubectl kustomize`: the shipped
    /// kustomization's objects, the same but for `cniVersion` in daemon-config.json. That a
    /// runtime's STATUS and GC then reach the delegates is `conformance/tests/cni_1_1_0_opt_in.rs`.
    #[test]
    fn the_cni_1_1_0_overlay_changes_only_the_cni_version() {
        if !test_node::require((!have("kubectl")).then_some("needs kubectl")) {
            return;
        }
        let render = |dir: &str| {
            let out = Cmd::new("kubectl").args(["kustomize", &workspace_root().join(dir).display().to_string()]);
            crate::fixtures::yaml_documents(&out.output().unwrap()).unwrap()
        };
        let (base, opt_in) = (render("deployments"), render("overlays/cni-1.1.0"));
        assert_eq!(base.len(), opt_in.len());
        let config = |docs: &[Value]| -> Value {
            let cm = get(docs, "ConfigMap", "multus-daemon-config");
            serde_json::from_str(cm["data"]["daemon-config.json"].as_str().unwrap()).unwrap()
        };
        let mut expected = config(&base);
        assert_eq!(expected["cniVersion"], "0.3.1");
        expected["cniVersion"] = json!("1.1.0");
        assert_eq!(config(&opt_in), expected);
        for (b, o) in base.iter().zip(&opt_in) {
            if b["kind"] != "ConfigMap" {
                assert_eq!(b, o, "only the ConfigMap differs");
            }
        }
    }

    fn mounts(container: &Value, volumes: &Value) -> BTreeSet<(String, String, String, bool)> {
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let name = m["name"].as_str().unwrap();
                let vol = volumes
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == name)
                    .unwrap_or_else(|| panic!("mount of an undeclared volume {m}"));
                let source = match vol["hostPath"]["path"].as_str() {
                    Some(p) => p.to_string(),
                    None => format!("configMap:{}", vol["configMap"]["name"].as_str().unwrap()),
                };
                (
                    source,
                    m["mountPath"].as_str().unwrap().to_string(),
                    m["mountPropagation"].as_str().unwrap_or("None").to_string(),
                    m["readOnly"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    /// The Go DaemonSet's shape (multus-thick.md §11): names, labels, commands, limits and
    /// exactly its mounts: host `/` at `/hostroot`, none of the node's /lib trees.
    #[test]
    fn daemonset_has_the_go_shape() {
        let docs = docs();
        let ds = get(&docs, "DaemonSet", "kube-multus-ds");
        assert_eq!(ds["metadata"]["labels"], json!({"tier": "node", "app": "multus", "name": "multus"}));
        assert_eq!(ds["spec"]["selector"]["matchLabels"], json!({"name": "multus"}));
        assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
        let pod = &ds["spec"]["template"];
        assert_eq!(pod["metadata"]["labels"], ds["metadata"]["labels"]);
        let spec = &pod["spec"];
        assert_eq!((spec["hostNetwork"].as_bool(), spec["hostPID"].as_bool()), (Some(true), Some(true)));
        assert_eq!(spec["serviceAccountName"], "multus");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(
            spec["tolerations"],
            json!([{"operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists", "effect": "NoExecute"}])
        );

        let init = &spec["initContainers"][0];
        assert_eq!(spec["initContainers"].as_array().unwrap().len(), 1);
        assert_eq!(init["name"], "install-multus-binary");
        assert_eq!(
            init["command"],
            json!(["/usr/src/multus-cni/bin/install_multus", "-d", "/host/opt/cni/bin", "-t", "thick"])
        );
        assert_eq!(init["resources"], json!({"requests": {"cpu": "10m", "memory": "15Mi"}}));
        assert_eq!(init["securityContext"]["privileged"], true);
        assert_eq!(
            mounts(init, &spec["volumes"]),
            BTreeSet::from([("/opt/cni/bin".into(), "/host/opt/cni/bin".into(), "Bidirectional".into(), false)])
        );

        let c = &spec["containers"][0];
        assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
        assert_eq!(c["name"], "kube-multus");
        assert_eq!(c["command"], json!(["/usr/src/multus-cni/bin/multus-daemon"]));
        assert!(c.get("args").is_none());
        assert_eq!(c["image"], init["image"]);
        let limits = json!({"cpu": "100m", "memory": "50Mi"});
        assert_eq!(c["resources"], json!({"requests": limits, "limits": limits}));
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(
            c["env"],
            json!([
                {"name": "MULTUS_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "MULTUS_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MULTUS_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ])
        );
        let want: BTreeSet<(String, String, String, bool)> = [
            ("/etc/cni/net.d", "/host/etc/cni/net.d", "None", false),
            ("/opt/cni/bin", "/opt/cni/bin", "None", false),
            ("/run", "/host/run", "None", false),
            ("/var/lib/cni/multus", "/var/lib/cni/multus", "None", false),
            ("/var/lib/kubelet", "/var/lib/kubelet", "HostToContainer", false),
            ("/run/k8s.cni.cncf.io", "/run/k8s.cni.cncf.io", "None", false),
            ("/run/netns/", "/run/netns", "HostToContainer", false),
            ("configMap:multus-daemon-config", "/etc/cni/net.d/multus.d", "None", true),
            ("/", "/hostroot", "HostToContainer", false),
            ("/etc/cni/multus/net.d", "/etc/cni/multus/net.d", "None", false),
        ]
        .into_iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d))
        .collect();
        assert_eq!(mounts(c, &spec["volumes"]), want);
        // The probes are multus-rs's addition; they run the image's own client.
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let cmd = &c[probe]["exec"]["command"];
            assert_eq!(cmd[0], "/usr/src/multus-cni/bin/multus-install", "{probe}");
            assert_eq!(cmd[1], "probe", "{probe}");
            assert_eq!(cmd[3], "/host/run/multus/multus.sock", "{probe}");
            assert_eq!(cmd[5], path, "{probe}");
        }
    }

    /// The image the manifest runs answers at every path the manifest executes.
    #[test]
    fn every_executed_path_is_in_the_image() {
        let docs = docs();
        let ds = get(&docs, "DaemonSet", "kube-multus-ds");
        let spec = &ds["spec"]["template"]["spec"];
        let containers =
            spec["initContainers"].as_array().unwrap().iter().chain(spec["containers"].as_array().unwrap());
        let mut executed = BTreeSet::new();
        for c in containers {
            executed.insert(c["command"][0].as_str().unwrap().to_string());
            for probe in ["livenessProbe", "readinessProbe"] {
                if let Some(p) = c[probe]["exec"]["command"][0].as_str() {
                    executed.insert(p.to_string());
                }
            }
        }
        let in_image: BTreeSet<String> = crate::image::image_paths(true).into_iter().map(|(path, _)| path).collect();
        for p in &executed {
            assert!(in_image.contains(p), "{p} is executed by the manifest but not in the image");
        }
    }

    /// The kustomization is the manifest: its one resource, the manifest's image name and
    /// namespace as the defaults.
    #[test]
    fn the_kustomization_is_the_manifest_with_settings() {
        let k = load_file(&deployments_dir().join(KUSTOMIZATION)).unwrap().remove(0);
        assert_eq!(k["kind"], "Kustomization");
        assert_eq!(k["resources"], json!([MANIFEST]));
        assert_eq!(k["namespace"], "kube-system");
        assert_eq!(k["images"], json!([{"name": "multus-rs", "newName": "multus-rs", "newTag": "dev"}]));
        let images: BTreeSet<String> = docs()
            .iter()
            .filter(|d| d["kind"] == "DaemonSet")
            .flat_map(|d| {
                let spec = &d["spec"]["template"]["spec"];
                [&spec["initContainers"], &spec["containers"]]
                    .into_iter()
                    .flat_map(|c| c.as_array().cloned().unwrap_or_default())
                    .map(|c| c["image"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(images, BTreeSet::from(["multus-rs:dev".to_string()]));
    }

    /// `kubectl kustomize` of a kustomization that sets another image and namespace: both
    /// containers' image, every namespaced object and the ClusterRoleBinding's subject follow.
    #[test]
    #[ignore = "needs kubectl"]
    fn kustomize_sets_the_image_and_namespace() {
        assert!(have("kubectl"), "this test needs kubectl");
        let dir = tempfile::tempdir().unwrap();
        for f in [MANIFEST, KUSTOMIZATION] {
            std::fs::copy(deployments_dir().join(f), dir.path().join(f)).unwrap();
        }
        let k = std::fs::read_to_string(dir.path().join(KUSTOMIZATION)).unwrap();
        let k = k
            .replace("namespace: kube-system", "namespace: multus")
            .replace("newName: multus-rs", "newName: registry.example/multus-rs")
            .replace("newTag: dev", "newTag: v0.1.0");
        std::fs::write(dir.path().join(KUSTOMIZATION), k).unwrap();
        let out = Cmd::new("kubectl").args(["kustomize", &dir.path().display().to_string()]).output().unwrap();
        let built = crate::fixtures::yaml_documents(&out).unwrap();
        assert_eq!(built.len(), docs().len());
        for d in &built {
            let ns = &d["metadata"]["namespace"];
            assert!(ns.is_null() || ns == "multus", "{d}");
        }
        let ds = get(&built, "DaemonSet", "kube-multus-ds");
        let spec = &ds["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["image"], "registry.example/multus-rs:v0.1.0");
        assert_eq!(spec["containers"][0]["image"], "registry.example/multus-rs:v0.1.0");
        let crb = get(&built, "ClusterRoleBinding", "multus");
        assert_eq!(crb["subjects"][0]["namespace"], "multus");
    }

    /// A kube-mock and `kubectl apply <args>` run against it from the repository root, as the
    /// docs say to; the apply must succeed. The server and its kubeconfig live as long as this.
    struct Applied {
        _server: kube_mock::MockApiServer,
        _dir: tempfile::TempDir,
        kubeconfig: std::path::PathBuf,
        stdout: String,
    }

    fn kubectl_apply_to_kube_mock(args: &[&str]) -> Applied {
        let server = kube_mock::MockApiServer::start_blocking(kube_mock::MockConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let out = std::process::Command::new("kubectl")
            .current_dir(workspace_root())
            .args(["--kubeconfig", &kubeconfig.display().to_string(), "apply"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl apply failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        Applied { _server: server, _dir: dir, kubeconfig, stdout }
    }

    /// `kubectl apply -k deployments/` (what the kind e2e runs) against kube-mock.
    #[test]
    #[ignore = "needs kubectl"]
    fn kubectl_applies_the_kustomization_to_kube_mock() {
        assert!(have("kubectl"), "this test needs kubectl");
        let applied = kubectl_apply_to_kube_mock(&["-k", "deployments/"]);
        let stdout = &applied.stdout;
        assert!(stdout.contains("daemonset.apps/kube-multus-ds created"), "{stdout}");
    }

    /// `kubectl apply -f deployments/cert-approver.yml` (docs/deploy.md) against kube-mock:
    /// every object accepted.
    #[test]
    fn kubectl_applies_the_cert_approver_manifest_to_kube_mock() {
        if !test_node::require((!have("kubectl")).then_some("needs kubectl")) {
            return;
        }
        let applied = kubectl_apply_to_kube_mock(&["-f", &format!("deployments/{CERT_APPROVER_MANIFEST}")]);
        let stdout = &applied.stdout;
        for what in [
            "serviceaccount/multus-cert-approver created",
            "clusterrole.rbac.authorization.k8s.io/multus-cert-approver created",
            "clusterrolebinding.rbac.authorization.k8s.io/multus-cert-approver created",
            "deployment.apps/multus-cert-approver created",
            "clusterrolebinding.rbac.authorization.k8s.io/multus-per-node-certificate created",
            "clusterrole.rbac.authorization.k8s.io/multus-certificate-renewal created",
            "clusterrolebinding.rbac.authorization.k8s.io/multus-certificate-renewal created",
        ] {
            assert!(stdout.contains(what), "{what} not in:\n{stdout}");
        }
    }

    /// The documented command against kube-mock: every object accepted and stored under the Go
    /// manifest's names.
    #[test]
    fn kubectl_applies_the_manifest_to_kube_mock() {
        if !test_node::require((!have("kubectl")).then_some("needs kubectl")) {
            return;
        }
        // From the repository root, exactly as documented.
        let applied = kubectl_apply_to_kube_mock(&["-f", &format!("deployments/{MANIFEST}")]);
        let stdout = &applied.stdout;
        let kubectl = |args: &[&str]| {
            Cmd::new("kubectl")
                .arg("--kubeconfig")
                .arg(applied.kubeconfig.display().to_string())
                .args(args.iter().copied())
                .output()
        };
        // kube-mock serves the NAD CRD from the start, so applying it "configures" it.
        for what in [
            "customresourcedefinition.apiextensions.k8s.io/network-attachment-definitions.k8s.cni.cncf.io configured",
            "serviceaccount/multus created",
            "clusterrole.rbac.authorization.k8s.io/multus created",
            "clusterrolebinding.rbac.authorization.k8s.io/multus created",
            "configmap/multus-daemon-config created",
            "daemonset.apps/kube-multus-ds created",
        ] {
            let created = what.replace(" configured", " created");
            assert!(stdout.contains(what) || stdout.contains(&created), "{what} not in:\n{stdout}");
        }
        for (args, name) in [
            (
                &["get", "crd", "network-attachment-definitions.k8s.cni.cncf.io", "-o", "json"][..],
                "network-attachment-definitions.k8s.cni.cncf.io",
            ),
            (&["-n", "kube-system", "get", "serviceaccount", "multus", "-o", "json"], "multus"),
            (&["get", "clusterrole", "multus", "-o", "json"], "multus"),
            (&["get", "clusterrolebinding", "multus", "-o", "json"], "multus"),
            (&["-n", "kube-system", "get", "configmap", "multus-daemon-config", "-o", "json"], "multus-daemon-config"),
            (&["-n", "kube-system", "get", "daemonset", "kube-multus-ds", "-o", "json"], "kube-multus-ds"),
        ] {
            let obj: Value = serde_json::from_str(&kubectl(args).unwrap()).unwrap();
            assert_eq!(obj["metadata"]["name"], name, "{args:?}");
        }
        let ds: Value = serde_json::from_str(
            &kubectl(&["-n", "kube-system", "get", "ds", "kube-multus-ds", "-o", "json"]).unwrap(),
        )
        .unwrap();
        assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
        // Applying again is a no-op, as on a real API server.
        let again = kubectl(&["apply", "-f", &manifest_path().display().to_string()]).unwrap();
        assert_eq!(again.matches("unchanged").count(), 6, "{again}");
    }
}
