//! What each e2e case expects (addresses, routes, network-status) and the objects the cases
//! apply, shared by the kind run and the local runs.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::e2e_args::*;
use crate::fixtures::{self, Vars};
use crate::harness::{NetnsView, StatusEntry};

/// Expectations for one pod.
#[derive(Clone, Debug)]
pub struct Expect {
    pub pod: String,
    /// (interface, address prefix) present in the pod.
    pub ifaces: Vec<(String, String)>,
    /// The only default route: (device, gateway if known).
    pub default_route: (String, Option<String>),
    /// network-status entries (name, interface), in order.
    pub status: Vec<(String, String)>,
}

/// The expectations of the case pods; `cluster` is the cluster network's (name, eth0 prefix,
/// gateway) when known (local), `None` on kind (kindnet decides).
pub fn expectations(cluster: Option<(&str, &str, &str)>) -> Vec<Expect> {
    let ns = |n: &str| format!("{NAMESPACE}/{n}");
    let (cname, cprefix, cgw) = match cluster {
        Some((n, p, g)) => (n.to_string(), p.to_string(), Some(g.to_string())),
        None => (String::new(), String::new(), None),
    };
    let eth0 = ("eth0".to_string(), cprefix);
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    let status = |extra: Vec<(String, String)>| {
        let mut v = vec![(cname.clone(), "eth0".to_string())];
        v.extend(extra);
        v
    };
    vec![
        Expect {
            pod: "macvlan".into(),
            ifaces: [vec![eth0.clone()], s(&[("net1", "10.250.0.")])].concat(),
            default_route: ("eth0".into(), cgw.clone()),
            status: status(vec![(ns("macvlan-net"), "net1".into())]),
        },
        Expect {
            pod: "two-nads".into(),
            ifaces: [vec![eth0.clone()], s(&[("net1", "10.250.0."), ("net2", "10.249.0.")])].concat(),
            default_route: ("eth0".into(), cgw.clone()),
            status: status(vec![(ns("macvlan-net"), "net1".into()), (ns("bridge-net"), "net2".into())]),
        },
        Expect {
            pod: "default-route".into(),
            ifaces: [vec![eth0.clone()], s(&[("net1", "10.249.0.")])].concat(),
            default_route: ("net1".into(), Some("10.249.0.1".into())),
            status: status(vec![(ns("bridge-net"), "net1".into())]),
        },
        Expect {
            pod: "static-ip".into(),
            ifaces: [vec![eth0], s(&[("data0", "10.251.0.10/24")])].concat(),
            default_route: ("eth0".into(), cgw),
            status: status(vec![(ns("static-net"), "data0".into())]),
        },
    ]
}

/// Interfaces and addresses against the expectation.
pub fn check_addrs(view: &NetnsView, e: &Expect) -> Vec<String> {
    let mut errs = Vec::new();
    for (iface, prefix) in &e.ifaces {
        match view.iface(iface) {
            None => errs.push(format!("{}: no interface {iface}", e.pod)),
            Some(i) if !i.addrs.iter().any(|a| a.starts_with(prefix.as_str())) => {
                errs.push(format!("{}: {iface} has {:?}, expected an address starting {prefix:?}", e.pod, i.addrs))
            }
            Some(_) => {}
        }
    }
    errs
}

pub fn check_routes(view: &NetnsView, e: &Expect) -> Vec<String> {
    let defaults = view.default_routes();
    let (dev, gw) = &e.default_route;
    let ok = defaults.len() == 1 && &defaults[0].dev == dev && (gw.is_none() || defaults[0].gateway == *gw);
    if ok {
        Vec::new()
    } else {
        let got: Vec<String> = defaults.iter().map(|r| r.to_string()).collect();
        vec![format!("{}: default routes {got:?}, expected exactly one on {dev} via {gw:?}", e.pod)]
    }
}

pub fn check_status(entries: Option<&[StatusEntry]>, e: &Expect) -> Vec<String> {
    let Some(entries) = entries else {
        return vec![format!("{}: no network-status annotation", e.pod)];
    };
    let got: Vec<(String, String)> = entries.iter().map(|s| (s.name.clone(), s.interface.clone())).collect();
    let matches = got.len() == e.status.len()
        && got.iter().zip(&e.status).all(|(g, w)| g.1 == w.1 && (w.0.is_empty() || g.0 == w.0));
    let mut errs = Vec::new();
    if !matches {
        errs.push(format!("{}: network-status {got:?}, expected {:?}", e.pod, e.status));
    }
    if !entries.first().is_some_and(|s| s.default) {
        errs.push(format!("{}: the first network-status entry is not marked default", e.pod));
    }
    if e.pod == "static-ip" && !entries.iter().any(|s| s.ips.iter().any(|ip| ip == "10.251.0.10")) {
        errs.push(format!("{}: 10.251.0.10 not in network-status", e.pod));
    }
    errs
}

// -------------------------------------------------------------------------------------------
// Objects: the fixtures rendered for a run

/// Rendered object files: base (namespace + NADs), the case pods, the many pods, one pod
/// created after the daemon restart.
#[derive(Clone, Debug)]
pub struct ObjectFiles {
    pub base: PathBuf,
    pub cases: PathBuf,
    pub many: PathBuf,
    pub after_restart: PathBuf,
}

impl ObjectFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            base: dir.join("base.yaml"),
            cases: dir.join("cases.yaml"),
            many: dir.join("many.yaml"),
            after_restart: dir.join("after-restart.yaml"),
        }
    }
}

/// A multi-document YAML stream of JSON objects (not a `kind: List`: kubectl's client-side
/// validation asks the server for a schema of `v1/List`, which kube-mock does not serve).
/// A YAML stream of JSON documents, as `kubectl apply -f` takes it.
pub(crate) fn list(items: Vec<Value>) -> String {
    items.iter().map(|i| format!("---\n{i}\n")).collect()
}

/// Render fixtures/e2e/objects into `dir` as JSON lists; `node` pins the pods (e2e --local).
pub fn render_objects(vars: &Vars, many: usize, node: Option<&str>, dir: &Path) -> Result<ObjectFiles> {
    let src = fixtures::fixtures_dir().join("e2e/objects");
    let docs =
        |f: &str| -> Result<Vec<Value>> { fixtures::yaml_documents(&fixtures::render_file(&src.join(f), vars)?) };
    let pin = |mut pod: Value| {
        if let Some(n) = node {
            pod["spec"]["nodeName"] = json!(n);
        }
        pod
    };
    std::fs::create_dir_all(dir)?;
    let files = ObjectFiles::in_dir(dir);
    let base = [docs("00-namespace.yaml")?, docs("10-nads.yaml")?].concat();
    std::fs::write(&files.base, list(base))?;
    let cases: Vec<Value> = docs("20-pods.yaml")?.into_iter().map(pin).collect();
    let macvlan = cases.iter().find(|p| p["metadata"]["name"] == "macvlan").cloned().context("no macvlan pod")?;
    std::fs::write(&files.cases, list(cases))?;
    let template = docs("30-many.yaml")?.into_iter().next().context("30-many.yaml is empty")?;
    let many: Vec<Value> = (0..many)
        .map(|i| {
            let mut p = pin(template.clone());
            p["metadata"]["name"] = json!(format!("many-{i}"));
            p
        })
        .collect();
    std::fs::write(&files.many, list(many))?;
    let mut after = macvlan;
    after["metadata"]["name"] = json!("after-restart");
    after["metadata"]["labels"] = json!({"multus-e2e": "after-restart"});
    std::fs::write(&files.after_restart, list(vec![after]))?;
    Ok(files)
}
