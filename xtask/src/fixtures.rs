//! Fixture templates (`fixtures/`): `{{NAME}}` placeholders filled per run.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::util::workspace_root;

/// Placeholder values for one run.
pub type Vars = BTreeMap<String, String>;

pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("fixtures")
}

/// Replace every `{{KEY}}`; an unknown placeholder is an error (a typo must not reach a daemon).
pub fn render(text: &str, vars: &Vars) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").context("unterminated {{ placeholder")?;
        let key = &after[..end];
        match vars.get(key) {
            Some(v) => out.push_str(v),
            None => bail!("unknown placeholder {{{{{key}}}}}"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Render one template file.
pub fn render_file(path: &Path, vars: &Vars) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    render(&text, vars).with_context(|| format!("rendering {}", path.display()))
}

/// Render every file of `src` (not recursive) into `dst`, keeping names.
pub fn render_dir(src: &Path, dst: &Path, vars: &Vars) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dst)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let target = dst.join(f.file_name().context("file name")?);
        std::fs::write(&target, render_file(&f, vars)?)?;
        out.push(target);
    }
    Ok(out)
}

/// Every YAML document of a (rendered) text, as JSON values.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example objects, `kubectl apply -f fixtures/examples/` as they stand.
    pub fn examples_dir() -> PathBuf {
        fixtures_dir().join("examples")
    }

    /// The e2e object files the examples are made from (the many-pods template is the xtask's).
    pub const EXAMPLE_FILES: [&str; 3] = ["00-namespace.yaml", "10-nads.yaml", "20-pods.yaml"];

    /// The values the examples are rendered with: the kind e2e's (a node's `eth0`, the node's IPAM
    /// directory, a bridge of its own), in a namespace of their own.
    pub fn example_vars() -> Vars {
        [
            ("NAMESPACE", "multus-example"),
            ("IPAM_DIR", "/var/lib/cni/networks"),
            ("NAD_BRIDGE", "br-multus-ex"),
            ("MACVLAN_MASTER", "eth0"),
            ("POD_IMAGE", "docker.io/nicolaka/netshoot:v0.13"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// One example file: the e2e template `name` rendered with [`example_vars`], under a header
    /// saying so.
    pub fn render_example(name: &str) -> Result<String> {
        let body = render_file(&fixtures_dir().join("e2e/objects").join(name), &example_vars())?;
        Ok(format!(
            "# Generated from fixtures/e2e/objects/{name} (do not edit: edit the template, then run\n\
             # `UPDATE_EXAMPLES=1 cargo test -p xtask examples_are`). Apply as it stands:\n\
             # kubectl apply -f fixtures/examples/\n{body}"
        ))
    }

    fn vars() -> Vars {
        [
            ("RUN_DIR", "/tmp/run"),
            ("BIN_DIR", "/usr/lib/cni"),
            ("IPAM_DIR", "/tmp/run/ipam"),
            ("CLUSTER_BRIDGE", "mcb1"),
            ("NAD_BRIDGE", "mnb1"),
            ("MACVLAN_MASTER", "mvm1"),
            ("NAMESPACE", "ns"),
            ("POD_IMAGE", "img:1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The examples are the e2e objects with real values, up to date, without placeholders.
    /// `UPDATE_EXAMPLES=1` rewrites them.
    #[test]
    fn examples_are_the_e2e_objects_rendered() {
        let update = std::env::var_os("UPDATE_EXAMPLES").is_some();
        for name in EXAMPLE_FILES {
            let want = render_example(name).unwrap();
            let path = examples_dir().join(name);
            if update {
                std::fs::create_dir_all(examples_dir()).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                have,
                want,
                "{} is stale: run UPDATE_EXAMPLES=1 cargo test -p xtask examples_are",
                path.display()
            );
            assert!(!have.contains("{{"), "{name}");
            assert!(!yaml_documents(&have).unwrap().is_empty());
        }
        let mut on_disk: Vec<String> = std::fs::read_dir(examples_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, EXAMPLE_FILES);
    }

    /// `kubectl apply -f fixtures/examples/` against kube-mock: every object accepted.
    #[test]
    #[ignore = "needs kubectl"]
    fn kubectl_applies_the_examples_as_they_stand() {
        assert!(crate::util::have("kubectl"), "this test needs kubectl");
        let server = kube_mock::MockApiServer::start_blocking(kube_mock::MockConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kc).unwrap();
        let out = std::process::Command::new("kubectl")
            .current_dir(crate::util::workspace_root())
            .args(["--kubeconfig", &kc.display().to_string(), "apply", "-f", "fixtures/examples/"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.matches(" created").count(), 1 + 3 + 4, "{stdout}");
        for what in
            ["namespace/multus-example", "networkattachmentdefinition.k8s.cni.cncf.io/static-net", "pod/static-ip"]
        {
            assert!(stdout.contains(what), "{what} not in {stdout}");
        }
    }

    #[test]
    fn render_replaces_and_rejects_unknown() {
        assert_eq!(render("a {{NAMESPACE}} b", &vars()).unwrap(), "a ns b");
        assert!(render("{{NOPE}}", &vars()).is_err());
        assert!(render("{{NAMESPACE", &vars()).is_err());
    }

    /// Every fixture renders, parses, and every NAD's spec.config is JSON with the right name.
    #[test]
    fn all_fixtures_render_and_parse() {
        let root = fixtures_dir();
        for dir in ["demo/seed", "e2e/objects"] {
            let mut kinds = Vec::new();
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let text = render_file(&entry.unwrap().path(), &vars()).unwrap();
                for doc in yaml_documents(&text).unwrap() {
                    let kind = doc["kind"].as_str().unwrap().to_string();
                    assert!(doc["metadata"]["name"].is_string(), "{doc}");
                    if kind == "NetworkAttachmentDefinition" {
                        let conf: Value = serde_json::from_str(doc["spec"]["config"].as_str().unwrap()).unwrap();
                        assert_eq!(conf["name"], doc["metadata"]["name"]);
                    }
                    if kind == "Pod"
                        && let Some(sel) = doc["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].as_str()
                        && sel.trim_start().starts_with('[')
                    {
                        serde_json::from_str::<Value>(sel).unwrap();
                    }
                    kinds.push(kind);
                }
            }
            for k in ["Namespace", "NetworkAttachmentDefinition", "Pod"] {
                assert!(kinds.iter().any(|x| x == k), "{dir} lacks a {k}");
            }
        }
        for f in [
            "demo/cluster-net.conflist",
            "demo/daemon-config.json",
            "e2e/cluster-net.conflist",
            "e2e/daemon-config.json",
        ] {
            let v: Value = serde_json::from_str(&render_file(&root.join(f), &vars()).unwrap()).unwrap();
            assert!(v["cniVersion"].is_string(), "{f}");
        }
    }
}
