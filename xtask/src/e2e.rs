//! `cargo xtask e2e`: the end-to-end cases, on a kind cluster (default) or on this machine
//! (`--local`: kube-mock + multus-daemon + multus-shim + network namespaces + Debian's plugins).
//!
//! The kind run is a *plan* — a list of steps, each a command and optionally a check of its
//! output — built by [`kind_plan`] and executed by [`execute`]; `--dry-run` prints it and the
//! unit tests assert it (kind cannot pull node images here).

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::fixtures::{self, Vars};
use crate::harness::{self, Bins, LocalEnv, NetnsView, PodRun, StatusEntry, step};
use crate::image;
use crate::manifests::deployments_dir;
use crate::util::{Cmd, defer, have, with_cleanup, workspace_root};

pub const NAMESPACE: &str = "multus-e2e";
pub const DEFAULT_CLUSTER: &str = "multus-rs-e2e";
/// Any image with iproute2 (`ip -j`) and `sleep`.
pub const DEFAULT_POD_IMAGE: &str = "docker.io/nicolaka/netshoot:v0.13";
/// Plugins kind nodes lack (kindnet ships bridge, host-local, ptp, portmap, loopback).
pub const EXTRA_PLUGINS: [&str; 3] = ["macvlan", "static", "tuning"];
/// The case pods of fixtures/e2e/objects/20-pods.yaml.
#[cfg_attr(not(test), allow(dead_code))]
pub const CASE_PODS: [&str; 4] = ["macvlan", "two-nads", "default-route", "static-ip"];

#[derive(clap::Args, Clone, Debug)]
pub struct E2eArgs {
    /// Run on this machine instead of kind.
    #[arg(long)]
    pub local: bool,
    /// With --local: run the manifest's DaemonSet with docker, from the project's image, on a
    /// node made in the run directory (cniVersion 1.0.0 in its daemon config, for CHECK).
    #[arg(long, requires = "local")]
    pub container: bool,
    /// With --container: run the manifest unchanged but for the image (as a cluster switching
    /// from the Go image would).
    #[arg(long, requires = "container")]
    pub upstream: bool,
    /// With --container: the manifest to run and apply (default
    /// deployments/multus-daemonset-thick-plugin.yml), e.g. the Go project's own; every image in
    /// it is replaced by multus-rs's.
    #[arg(long, requires = "container")]
    pub manifest: Option<PathBuf>,
    /// Keep the kind cluster afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Print every command instead of running it.
    #[arg(long)]
    pub dry_run: bool,
    /// kind cluster name.
    #[arg(long, default_value = DEFAULT_CLUSTER)]
    pub cluster: String,
    /// Image of the test pods (kind): needs iproute2 and sleep.
    #[arg(long, default_value = DEFAULT_POD_IMAGE)]
    pub pod_image: String,
    /// How many pods the "many pods at once" case creates.
    #[arg(long, default_value_t = 8)]
    pub many: usize,
    /// Skip `cargo build` (use what target/ holds).
    #[arg(long)]
    pub no_build: bool,
}

pub fn run(args: E2eArgs) -> Result<()> {
    if args.local {
        if args.dry_run {
            for line in local_outline(&args) {
                println!("{line}");
            }
            return Ok(());
        }
        return with_cleanup(|| local(&args));
    }
    let workdir = std::env::temp_dir().join(format!("multus-e2e-kind-{}", std::process::id()));
    let plan = kind_plan(&KindConfig::from_args(&args, &workdir));
    if args.dry_run {
        print_plan(&plan);
        return Ok(());
    }
    let missing = missing_kind_tools();
    if !missing.is_empty() {
        bail!("cannot run the kind e2e:\n  {}\n(or run `cargo xtask e2e --local`)", missing.join("\n  "));
    }
    with_cleanup(|| {
        let dir = workdir.clone();
        let _ = defer(format!("remove {}", dir.display()), move || {
            let _ = std::fs::remove_dir_all(&dir);
        });
        execute(&plan)
    })
}

/// Tools the kind run needs, each with how to get it.
pub fn missing_kind_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !have("docker") {
        missing.push("docker: install Docker Engine (apt-get install docker.io)".to_string());
    } else if !Cmd::new("docker").arg("info").run_quiet() {
        missing.push(
            "docker: the daemon is not reachable (is dockerd running? are you root or in the docker group?)".into(),
        );
    }
    if !have("kind") {
        missing.push(
            "kind: go install sigs.k8s.io/kind@v0.27.0, or download https://kind.sigs.k8s.io/dl/v0.27.0/kind-linux-amd64 into PATH"
                .into(),
        );
    }
    if !have("kubectl") {
        missing.push("kubectl: https://kubernetes.io/docs/tasks/tools/ (or apt-get install kubectl)".into());
    }
    missing
}

// -------------------------------------------------------------------------------------------
// What each case expects

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
fn list(items: Vec<Value>) -> String {
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

// -------------------------------------------------------------------------------------------
// The kind plan

/// How to judge a step's output.
#[derive(Clone, Debug)]
pub enum Check {
    /// `ip -j addr` output of the pod.
    Addrs(Expect),
    /// `ip -j route` output of the pod.
    Routes(Expect),
    /// `kubectl get pod -o json` output.
    Status(Expect),
    /// `ip -j addr` output of one of the many pods: it has net1 on macvlan-net.
    ManyPod(String),
    /// `ls` of host-local data dirs: nothing but `lock` and `last_reserved_ip.*`.
    NoLeases,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// Run; fail the run on a non-zero exit.
    Run { what: String, cmd: Cmd },
    /// Render the e2e fixtures into this directory (no external command).
    Render { what: String, dir: PathBuf, vars: Vars, many: usize },
    /// Run and check the output.
    Check { what: String, cmd: Cmd, check: Check },
    /// Register a cleanup command (runs at the end, also on failure and Ctrl-C).
    Finally { what: String, cmd: Cmd },
}

impl Step {
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn cmd(&self) -> Option<&Cmd> {
        match self {
            Step::Run { cmd, .. } | Step::Check { cmd, .. } | Step::Finally { cmd, .. } => Some(cmd),
            Step::Render { .. } => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct KindConfig {
    pub cluster: String,
    pub keep: bool,
    pub pod_image: String,
    pub many: usize,
    pub workdir: PathBuf,
    pub build_image: bool,
}

impl KindConfig {
    pub fn from_args(args: &E2eArgs, workdir: &Path) -> Self {
        Self {
            cluster: args.cluster.clone(),
            keep: args.keep,
            pod_image: args.pod_image.clone(),
            many: args.many,
            workdir: workdir.to_path_buf(),
            build_image: !args.no_build,
        }
    }
    pub fn nodes(&self) -> [String; 2] {
        [format!("{}-control-plane", self.cluster), format!("{}-worker", self.cluster)]
    }
}

pub fn kind_plan(cfg: &KindConfig) -> Vec<Step> {
    let root = workspace_root();
    let ctx = format!("kind-{}", cfg.cluster);
    let kubectl = |args: &[&str]| Cmd::new("kubectl").args(["--context", ctx.as_str()]).args(args.iter().copied());
    let nsk = |args: &[&str]| kubectl(&[&["-n", NAMESPACE], args].concat());
    let run = |what: &str, cmd: Cmd| Step::Run { what: what.to_string(), cmd };
    let objects = cfg.workdir.join("objects");
    let files = ObjectFiles::in_dir(&objects);
    let p = |f: &Path| f.display().to_string();
    let mut plan = Vec::new();

    plan.push(run(
        "create the kind cluster (1 control plane, 1 worker, kindnet)",
        Cmd::new("kind")
            .args(["create", "cluster", "--name", &cfg.cluster, "--config"])
            .arg(p(&root.join("kind/cluster.yml")))
            .args(["--wait", "180s"]),
    ));
    if !cfg.keep {
        plan.push(Step::Finally {
            what: "delete the kind cluster".into(),
            cmd: Cmd::new("kind").args(["delete", "cluster", "--name", &cfg.cluster]),
        });
    }
    if cfg.build_image {
        plan.push(run("build the image", Cmd::new("cargo").args(["xtask", "image", "--tag", image::DEFAULT_TAG])));
    }
    plan.push(run(
        "load the image into the nodes",
        Cmd::new("kind").args(["load", "docker-image", image::DEFAULT_TAG, "--name", &cfg.cluster]),
    ));
    plan.push(run("pull the test pod image", Cmd::new("docker").args(["pull", &cfg.pod_image])));
    plan.push(run(
        "load the test pod image into the nodes",
        Cmd::new("kind").args(["load", "docker-image", &cfg.pod_image, "--name", &cfg.cluster]),
    ));
    for node in cfg.nodes() {
        for plugin in EXTRA_PLUGINS {
            plan.push(run(
                &format!("install the {plugin} plugin on {node}"),
                Cmd::new("docker")
                    .arg("cp")
                    .arg(format!("{}/{plugin}", harness::SYSTEM_CNI_DIR))
                    .arg(format!("{node}:/opt/cni/bin/{plugin}")),
            ));
        }
    }
    // The kustomization: the manifest with image multus-rs:dev (what was just loaded).
    plan.push(run("apply deployments/", kubectl(&["apply", "-k", &p(&deployments_dir())])));
    plan.push(run(
        "wait for the DaemonSet",
        kubectl(&["-n", "kube-system", "rollout", "status", "daemonset/kube-multus-ds", "--timeout=180s"]),
    ));

    let mut vars = Vars::new();
    for (k, v) in [
        ("NAMESPACE", NAMESPACE),
        ("IPAM_DIR", "/var/lib/cni/networks"),
        ("NAD_BRIDGE", "br-multus-e2e"),
        ("MACVLAN_MASTER", "eth0"),
        ("POD_IMAGE", cfg.pod_image.as_str()),
    ] {
        vars.insert(k.into(), v.into());
    }
    plan.push(Step::Render { what: "render fixtures/e2e/objects".into(), dir: objects.clone(), vars, many: cfg.many });
    plan.push(run("create the namespace and the NADs", kubectl(&["apply", "-f", &p(&files.base)])));
    plan.push(run("create the case pods", kubectl(&["apply", "-f", &p(&files.cases)])));
    plan.push(run(
        "wait for the case pods",
        nsk(&["wait", "--for=condition=Ready", "pod", "-l", "multus-e2e=case", "--timeout=180s"]),
    ));
    let pod_checks = |plan: &mut Vec<Step>, when: &str| {
        for e in expectations(None) {
            let pod = e.pod.clone();
            plan.push(Step::Check {
                what: format!("{pod}: interfaces and addresses ({when})"),
                cmd: nsk(&["exec", &pod, "--", "ip", "-j", "addr", "show"]),
                check: Check::Addrs(e.clone()),
            });
            plan.push(Step::Check {
                what: format!("{pod}: default route ({when})"),
                cmd: nsk(&["exec", &pod, "--", "ip", "-j", "route", "show"]),
                check: Check::Routes(e.clone()),
            });
            plan.push(Step::Check {
                what: format!("{pod}: network-status annotation ({when})"),
                cmd: nsk(&["get", "pod", &pod, "-o", "json"]),
                check: Check::Status(e),
            });
        }
    };
    pod_checks(&mut plan, "after ADD");

    plan.push(run(&format!("many pods at once: create {}", cfg.many), kubectl(&["apply", "-f", &p(&files.many)])));
    plan.push(run(
        "many pods at once: wait",
        nsk(&["wait", "--for=condition=Ready", "pod", "-l", "multus-e2e=many", "--timeout=300s"]),
    ));
    for i in 0..cfg.many {
        let pod = format!("many-{i}");
        plan.push(Step::Check {
            what: format!("{pod}: net1 on macvlan-net"),
            cmd: nsk(&["exec", &pod, "--", "ip", "-j", "addr", "show"]),
            check: Check::ManyPod(pod.clone()),
        });
    }
    plan.push(run(
        "many pods at once: delete (DEL)",
        nsk(&["delete", "pod", "-l", "multus-e2e=many", "--wait", "--timeout=180s"]),
    ));

    plan.push(run(
        "daemon restart while pods exist",
        kubectl(&["-n", "kube-system", "delete", "pod", "-l", "name=multus", "--wait", "--timeout=120s"]),
    ));
    plan.push(run(
        "wait for the restarted DaemonSet",
        kubectl(&["-n", "kube-system", "rollout", "status", "daemonset/kube-multus-ds", "--timeout=180s"]),
    ));
    pod_checks(&mut plan, "after the daemon restart");
    plan.push(run("a pod added after the restart", kubectl(&["apply", "-f", &p(&files.after_restart)])));
    plan.push(run("wait for it", nsk(&["wait", "--for=condition=Ready", "pod", "after-restart", "--timeout=180s"])));
    plan.push(Step::Check {
        what: "after-restart: net1 on macvlan-net".into(),
        cmd: nsk(&["exec", "after-restart", "--", "ip", "-j", "addr", "show"]),
        check: Check::ManyPod("after-restart".into()),
    });

    plan.push(run(
        "pod deletion (DEL) of every test pod",
        nsk(&["delete", "pod", "--all", "--wait", "--timeout=180s"]),
    ));
    for node in cfg.nodes() {
        plan.push(Step::Check {
            what: format!("{node}: no IPAM lease left"),
            cmd: Cmd::new("docker").args([
                "exec",
                &node,
                "sh",
                "-c",
                "ls /var/lib/cni/networks/macvlan-net /var/lib/cni/networks/bridge-net 2>/dev/null || true",
            ]),
            check: Check::NoLeases,
        });
    }
    plan.push(run("delete the namespace", kubectl(&["delete", "namespace", NAMESPACE, "--wait", "--timeout=180s"])));
    plan
}

pub fn print_plan(plan: &[Step]) {
    for s in plan {
        match s {
            Step::Run { what, cmd } => println!("# {what}\n{cmd}"),
            Step::Check { what, cmd, .. } => println!("# check: {what}\n{cmd}"),
            Step::Finally { what, cmd } => println!("# at the end (also on failure/Ctrl-C): {what}\n# {cmd}"),
            Step::Render { what, dir, .. } => println!("# {what} into {}", dir.display()),
        }
    }
}

/// Judge one check's output; `Err` lists what is wrong.
pub fn judge(check: &Check, output: &str) -> Result<(), String> {
    let fail = |errs: Vec<String>| if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) };
    match check {
        Check::Addrs(e) => {
            let ifaces = harness::parse_ip_addr(output).map_err(|e| e.to_string())?;
            fail(check_addrs(&NetnsView { ifaces, routes: vec![] }, e))
        }
        Check::Routes(e) => {
            let routes = harness::parse_ip_route(output).map_err(|e| e.to_string())?;
            fail(check_routes(&NetnsView { ifaces: vec![], routes }, e))
        }
        Check::Status(e) => {
            let pod: Value = serde_json::from_str(output).map_err(|e| e.to_string())?;
            let st = harness::network_status(&pod).map_err(|e| e.to_string())?;
            fail(check_status(st.as_deref(), e))
        }
        Check::ManyPod(pod) => {
            let ifaces = harness::parse_ip_addr(output).map_err(|e| e.to_string())?;
            let e = Expect {
                pod: pod.clone(),
                ifaces: vec![("net1".into(), "10.250.0.".into())],
                default_route: ("eth0".into(), None),
                status: vec![],
            };
            fail(check_addrs(&NetnsView { ifaces, routes: vec![] }, &e))
        }
        Check::NoLeases => {
            let leases: Vec<&str> = output
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.ends_with(':') && *l != "lock" && !l.starts_with("last_reserved_ip"))
                .collect();
            fail(leases.iter().map(|l| format!("lease left: {l}")).collect())
        }
    }
}

/// Run a plan: stop at the first failed Run, collect failed Checks.
pub fn execute(plan: &[Step]) -> Result<()> {
    let mut failures = Vec::new();
    for s in plan {
        match s {
            Step::Run { what, cmd } => {
                step(what);
                cmd.run()?;
            }
            Step::Render { what, dir, vars, many } => {
                step(what);
                render_objects(vars, *many, None, dir)?;
            }
            Step::Finally { what, cmd } => {
                let cmd = cmd.clone();
                let _ = defer(what.clone(), move || {
                    let _ = cmd.run();
                });
            }
            Step::Check { what, cmd, check } => {
                let out = cmd.output();
                let verdict = out.map_err(|e| format!("{e:#}")).and_then(|o| judge(check, &o));
                match verdict {
                    Ok(()) => println!("ok   {what}"),
                    Err(e) => {
                        println!("FAIL {what}: {e}");
                        failures.push(format!("{what}: {e}"));
                    }
                }
            }
        }
    }
    if failures.is_empty() {
        println!("e2e: all checks passed");
        Ok(())
    } else {
        bail!("e2e: {} check(s) failed:\n  {}", failures.len(), failures.join("\n  "))
    }
}

// -------------------------------------------------------------------------------------------
// --local

/// What `--local --dry-run` prints: the local run is driven in-process, so this is an outline.
pub fn local_outline(args: &E2eArgs) -> Vec<String> {
    let mut v = vec![];
    if !args.no_build {
        v.push(Bins::build_cmd().to_string());
        if args.container {
            v.push(Cmd::new("cargo").args(["xtask", "image"]).to_string());
        }
    }
    v.push("kube-mock --listen 127.0.0.1:0 --kubeconfig-out <run>/kubeconfig".into());
    let manifest = args.manifest.clone().unwrap_or_else(crate::manifests::manifest_path);
    v.push(format!("kubectl --kubeconfig <run>/kubeconfig apply -f {}", manifest.display()));
    v.push("kubectl --kubeconfig <run>/kubeconfig apply -f <run>/objects/base.yaml   # namespace + NADs".into());
    v.push("kubectl --kubeconfig <run>/kubeconfig apply -f <run>/objects/cases.yaml  # pods on node1".into());
    if args.container {
        let manifest = args.manifest.clone().unwrap_or_else(crate::manifests::manifest_path);
        v.push(format!(
            "# the DaemonSet of {} on a node made in <run>/node, every image -> {}{}",
            manifest.display(),
            image::DEFAULT_TAG,
            if args.upstream { " (nothing else changed)" } else { " (daemon-config.json: cniVersion 1.0.0)" }
        ));
        v.push(format!("docker run --rm --name multus-e2e-<pid>-init-0 <init container: privileged, host network/PID, volumes> --entrypoint /usr/src/multus-cni/bin/install_multus {} -d /host/opt/cni/bin -t thick", image::DEFAULT_TAG));
        v.push(format!("docker run -d --name multus-e2e-<pid>-<n> <container: privileged, host network/PID, limits, env, volumes (/hostroot = <run>/node)> --entrypoint /usr/src/multus-cni/bin/multus-daemon {}", image::DEFAULT_TAG));
        v.push("chroot <run>/node /opt/cni/bin/multus-shim   # the runtime, on the node".into());
    } else {
        v.push(
            "MULTUS_NODE_NAME=node1 multus-daemon -config <run>/daemon-config.json --kubeconfig <run>/kubeconfig"
                .into(),
        );
    }
    v.push("ip netns add multus-<id>-<n>-<pod>   # per pod".into());
    v.push(
        "CNI_COMMAND=ADD|CHECK|DEL CNI_NETNS=/var/run/netns/... CNI_ARGS=... multus-shim < <run>/net.d/00-multus.conf"
            .into(),
    );
    v.push("ip -n <netns> -j addr show; ip -n <netns> -j route show; GET pod (network-status)".into());
    v
}

fn local_prereqs(args: &E2eArgs) -> Vec<String> {
    let mut missing = Vec::new();
    if let Err(r) = harness::real_delegates_available() {
        missing.push(r);
    }
    if !have("kubectl") {
        missing.push("kubectl is not installed".into());
    }
    if args.container && (!have("docker") || !Cmd::new("docker").arg("info").run_quiet()) {
        missing.push("docker is not available (--container)".into());
    }
    for tool in ["ldd", "chroot"].iter().filter(|t| args.container && !have(t)) {
        missing.push(format!("{tool} is not installed (--container makes a node root with it)"));
    }
    missing
}

/// Does a runtime send CHECK for a config of this `cniVersion` (0.4.0 and later)?
pub fn sends_check(cni_version: &str) -> bool {
    let mut parts = cni_version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major >= 1 || minor >= 4
}

pub(crate) struct Tally {
    pub(crate) failures: Vec<String>,
}

impl Tally {
    pub(crate) fn case(&mut self, what: &str, errs: Vec<String>) {
        if errs.is_empty() {
            println!("ok   {what}");
        } else {
            println!("FAIL {what}");
            for e in &errs {
                println!("       {e}");
            }
            self.failures.extend(errs.into_iter().map(|e| format!("{what}: {e}")));
        }
    }
}

fn add_and_verify(env: &LocalEnv, pod: &PodRun, e: Option<&Expect>) -> Result<Vec<String>> {
    let out = env.shim("ADD", pod)?;
    if !out.success {
        return Ok(vec![format!("{}: ADD failed: {}", pod.name, out.describe())]);
    }
    let view = env.inspect(pod)?;
    let mut errs = Vec::new();
    // host-local's lease is on the node's disk (with chrootDir: inside the node's root), where it
    // survives a daemon restart.
    if env.real && !env.leftovers(pod).iter().any(|f| Path::new(f).starts_with(&env.ipam_dir_host)) {
        errs.push(format!("{}: no host-local lease in {}", pod.name, env.ipam_dir_host.display()));
    }
    match e {
        Some(e) => {
            errs.extend(check_addrs(&view, e));
            errs.extend(check_routes(&view, e));
            let api = env.get_pod(&pod.namespace, &pod.name)?;
            errs.extend(check_status(harness::network_status(&api)?.as_deref(), e));
        }
        None => {
            let e = many_expect(&pod.name);
            errs.extend(check_addrs(&view, &e));
            errs.extend(check_routes(&view, &e));
        }
    }
    Ok(errs)
}

fn many_expect(pod: &str) -> Expect {
    Expect {
        pod: pod.into(),
        ifaces: vec![("eth0".into(), "10.248.0.".into()), ("net1".into(), "10.250.0.".into())],
        default_route: ("eth0".into(), Some("10.248.0.1".into())),
        status: vec![],
    }
}

fn check_clean(env: &LocalEnv, pod: &PodRun) -> Result<Vec<String>> {
    let view = env.inspect(pod)?;
    let mut errs: Vec<String> = view
        .ifaces
        .iter()
        .filter(|i| i.name != "lo")
        .map(|i| format!("{}: interface {} left after DEL", pod.name, i.name))
        .collect();
    errs.extend(env.leftovers(pod).into_iter().map(|f| format!("{}: file left after DEL: {f}", pod.name)));
    Ok(errs)
}

fn del_and_verify(env: &LocalEnv, pod: &PodRun) -> Result<Vec<String>> {
    let out = env.shim("DEL", pod)?;
    let mut errs = Vec::new();
    if !out.success {
        errs.push(format!("{}: DEL failed: {}", pod.name, out.describe()));
    }
    errs.extend(check_clean(env, pod)?);
    Ok(errs)
}

fn local(args: &E2eArgs) -> Result<()> {
    let missing = local_prereqs(args);
    if !missing.is_empty() {
        bail!("cannot run e2e --local:\n  {}", missing.join("\n  "));
    }
    if args.container {
        return crate::e2e_container::run(args);
    }
    if !args.no_build {
        step(format!("building ({} profile)", crate::harness::profile()));
        Bins::build_cmd().run()?;
    }
    let fixture = fixtures::fixtures_dir().join("e2e");
    let mut env = LocalEnv::new("e2e", &fixture, NAMESPACE, true)?;
    step(format!("run directory {}", env.run.display()));
    env.start_mock(&[], &[])?;
    let mut tally = Tally { failures: Vec::new() };
    run_local_cases(&mut env, args, &mut tally, &mut |env| env.start_daemon(), &mut |env| {
        env.stop_daemon(true);
        Ok(())
    })?;
    finish(tally, &env)
}

pub(crate) fn finish(tally_failures: impl Into<Vec<String>>, env: &LocalEnv) -> Result<()> {
    let failures = tally_failures.into();
    if failures.is_empty() {
        println!("e2e --local: all cases passed");
        Ok(())
    } else {
        println!("daemon log: {}", env.daemon_log().display());
        bail!("e2e --local: {} failure(s):\n  {}", failures.len(), failures.join("\n  "))
    }
}

impl From<Tally> for Vec<String> {
    fn from(t: Tally) -> Self {
        t.failures
    }
}

/// The cases, with the daemon started and stopped by the callbacks (process or container).
pub(crate) fn run_local_cases(
    env: &mut LocalEnv,
    args: &E2eArgs,
    tally: &mut Tally,
    start: &mut dyn FnMut(&mut LocalEnv) -> Result<()>,
    stop: &mut dyn FnMut(&mut LocalEnv) -> Result<()>,
) -> Result<()> {
    let kc = env.kubeconfig.display().to_string();
    let kubectl = |a: &[&str]| Cmd::new("kubectl").arg("--kubeconfig").arg(kc.clone()).args(a.iter().copied());
    let manifest = args.manifest.clone().unwrap_or_else(crate::manifests::manifest_path);
    step(format!("kubectl apply -f {} (the manifest's objects are valid)", manifest.display()));
    let out = kubectl(&["apply", "-f", &manifest.display().to_string()]).output()?;
    tally.case("the manifest is accepted by the API server", {
        let want = crate::manifests::load_file(&manifest)?.len();
        if out.lines().count() == want { vec![] } else { vec![format!("expected {want} objects, kubectl said: {out}")] }
    });
    let files = render_objects(&env.vars, args.many, Some(harness::NODE), &env.run.join("objects"))?;
    step("kubectl apply: namespace, NADs, case pods");
    kubectl(&["apply", "-f", &files.base.display().to_string()]).output()?;
    kubectl(&["apply", "-f", &files.cases.display().to_string()]).output()?;

    env.write_configs()?;
    step("starting the daemon");
    start(env)?;

    let cluster = fixtures::render_file(&env.fixture.join("cluster-net.conflist"), &env.vars)?;
    let cluster_name = serde_json::from_str::<Value>(&cluster)?["name"].as_str().unwrap_or_default().to_string();
    let expects = expectations(Some((&cluster_name, "10.248.0.", "10.248.0.1")));
    // A runtime (libcni) sends CHECK only for configs of cniVersion 0.4.0 and later.
    let conf_version =
        serde_json::from_str::<Value>(&env.multus_conf()?)?["cniVersion"].as_str().unwrap_or_default().to_string();
    let check_sent = sends_check(&conf_version);
    if !check_sent {
        println!("    00-multus.conf has cniVersion {conf_version}: no CHECK (a runtime sends none below 0.4.0)");
    }
    let mut pods = Vec::new();
    for e in &expects {
        let pod = env.sandbox(NAMESPACE, &e.pod)?;
        let mut errs = add_and_verify(env, &pod, Some(e))?;
        if check_sent {
            let check = env.shim("CHECK", &pod)?;
            if !check.success {
                errs.push(format!("CHECK failed: {}", check.describe()));
            }
        }
        tally.case(&format!("ADD{} {}", if check_sent { "+CHECK" } else { "" }, e.pod), errs);
        pods.push(pod);
    }

    step(format!("many pods at once: {}", args.many));
    kubectl(&["apply", "-f", &files.many.display().to_string()]).output()?;
    let many: Vec<PodRun> =
        (0..args.many).map(|i| env.sandbox(NAMESPACE, &format!("many-{i}"))).collect::<Result<_>>()?;
    let envr: &LocalEnv = env;
    let results: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = many.iter().map(|p| s.spawn(move || add_and_verify(envr, p, None))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Ok(vec!["thread panicked".into()]))).collect()
    });
    let mut errs: Vec<String> =
        results.into_iter().flat_map(|r| r.unwrap_or_else(|e| vec![format!("{e:#}")])).collect();
    let mut addrs = Vec::new();
    for p in &many {
        if let Some(i) = env.inspect(p)?.iface("net1") {
            addrs.extend(i.addrs.clone());
        }
    }
    let unique: std::collections::BTreeSet<&String> = addrs.iter().collect();
    if unique.len() != addrs.len() {
        errs.push(format!("duplicate addresses among the many pods: {addrs:?}"));
    }
    tally.case(&format!("ADD {} pods concurrently", args.many), errs);
    let results: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = many.iter().map(|p| s.spawn(move || del_and_verify(envr, p))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Ok(vec!["thread panicked".into()]))).collect()
    });
    tally.case(
        &format!("DEL {} pods concurrently leaves no link, lease or cache file", args.many),
        results.into_iter().flat_map(|r| r.unwrap_or_else(|e| vec![format!("{e:#}")])).collect(),
    );
    kubectl(&["-n", NAMESPACE, "delete", "pod", "-l", "multus-e2e=many", "--wait=false"]).output()?;

    step("daemon restart while pods exist");
    stop(env)?;
    start(env)?;
    let mut errs = Vec::new();
    for p in pods.iter().filter(|_| check_sent) {
        let check = env.shim("CHECK", p)?;
        if !check.success {
            errs.push(format!("{}: CHECK after restart failed: {}", p.name, check.describe()));
        }
    }
    kubectl(&["apply", "-f", &files.after_restart.display().to_string()]).output()?;
    let after = env.sandbox(NAMESPACE, "after-restart")?;
    errs.extend(add_and_verify(env, &after, None)?);
    tally.case(
        if check_sent {
            "daemon restart: existing pods CHECK, a new pod ADDs"
        } else {
            "daemon restart: a new pod ADDs"
        },
        errs,
    );
    pods.push(after);

    step("pod deletion (DEL) after the restart");
    for p in &pods {
        tally.case(&format!("DEL {} leaves no link, lease or cache file", p.name), del_and_verify(env, p)?);
        let _ = kubectl(&["-n", NAMESPACE, "delete", "pod", &p.name, "--wait=false"]).output();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(keep: bool) -> KindConfig {
        KindConfig {
            cluster: "c1".into(),
            keep,
            pod_image: "img:1".into(),
            many: 3,
            workdir: PathBuf::from("/tmp/w"),
            build_image: true,
        }
    }

    fn lines(plan: &[Step]) -> Vec<String> {
        plan.iter().filter_map(|s| s.cmd().map(|c| c.to_string())).collect()
    }

    fn position(lines: &[String], needle: &str) -> usize {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in plan:\n{}", lines.join("\n")))
    }

    #[test]
    fn kind_plan_order() {
        let plan = kind_plan(&cfg(false));
        let l = lines(&plan);
        let create = position(&l, "kind create cluster --name c1 --config");
        let image = position(&l, "cargo xtask image");
        let load = position(&l, "kind load docker-image multus-rs:dev --name c1");
        let plugins = position(&l, "docker cp /usr/lib/cni/macvlan c1-worker:/opt/cni/bin/macvlan");
        let apply = position(&l, "kubectl --context kind-c1 apply -k");
        let rollout = position(&l, "rollout status daemonset/kube-multus-ds");
        let nads = position(&l, "apply -f /tmp/w/objects/base.yaml");
        let pods = position(&l, "apply -f /tmp/w/objects/cases.yaml");
        let exec = position(&l, "-n multus-e2e exec macvlan -- ip -j addr show");
        let many = position(&l, "apply -f /tmp/w/objects/many.yaml");
        let restart = position(&l, "-n kube-system delete pod -l name=multus");
        let del = position(&l, "-n multus-e2e delete pod --all");
        assert!(create < image && image < load && load < plugins && plugins < apply && apply < rollout);
        assert!(rollout < nads && nads < pods && pods < exec && exec < many && many < restart && restart < del);
        assert!(l[apply].ends_with("/deployments"), "{}", l[apply]);
        assert!(matches!(&plan[1], Step::Finally { cmd, .. } if cmd.to_string() == "kind delete cluster --name c1"));
        for n in ["c1-control-plane", "c1-worker"] {
            for p in EXTRA_PLUGINS {
                position(&l, &format!("docker cp /usr/lib/cni/{p} {n}:/opt/cni/bin/{p}"));
            }
            position(&l, &format!("docker exec {n} sh -c"));
        }
        for i in 0..3 {
            position(&l, &format!("exec many-{i} -- ip -j addr show"));
        }
    }

    #[test]
    fn kind_plan_covers_every_case_twice() {
        let plan = kind_plan(&cfg(false));
        for pod in CASE_PODS {
            let n = plan
                .iter()
                .filter(|s| matches!(s, Step::Check { check: Check::Addrs(e) | Check::Routes(e) | Check::Status(e), .. } if e.pod == pod))
                .count();
            assert_eq!(n, 6, "{pod}: addrs, routes, status before and after the restart");
        }
        assert!(plan.iter().any(|s| matches!(s, Step::Check { check: Check::NoLeases, .. })));
        assert!(plan.iter().any(|s| matches!(s, Step::Render { many: 3, .. })));
    }

    #[test]
    fn check_is_sent_from_0_4_0() {
        for (v, want) in
            [("0.3.1", false), ("0.3.0", false), ("0.4.0", true), ("1.0.0", true), ("1.1.0", true), ("", false)]
        {
            assert_eq!(sends_check(v), want, "{v}");
        }
    }

    #[test]
    fn keep_leaves_the_cluster() {
        let l = lines(&kind_plan(&cfg(true)));
        assert!(!l.iter().any(|c| c.contains("kind delete cluster")));
    }

    #[test]
    fn judges_outputs() {
        let e = expectations(None).into_iter().find(|e| e.pod == "default-route").unwrap();
        let routes = r#"[{"dst":"default","gateway":"10.249.0.1","dev":"net1"},{"dst":"10.244.1.0/24","dev":"eth0"}]"#;
        assert!(judge(&Check::Routes(e.clone()), routes).is_ok());
        let both = r#"[{"dst":"default","gateway":"10.244.1.1","dev":"eth0"},{"dst":"default","gateway":"10.249.0.1","dev":"net1"}]"#;
        assert!(judge(&Check::Routes(e.clone()), both).is_err());
        let addrs = r#"[{"ifname":"eth0","address":"a","addr_info":[{"local":"10.244.1.5","prefixlen":24,"scope":"global"}]},{"ifname":"net1","address":"b","addr_info":[{"local":"10.249.0.3","prefixlen":24,"scope":"global"}]}]"#;
        assert!(judge(&Check::Addrs(e.clone()), addrs).is_ok());
        assert!(judge(&Check::ManyPod("p".into()), addrs).is_err());
        let status = json!({"metadata":{"annotations":{harness::NETWORK_STATUS:
            r#"[{"name":"kindnet","interface":"eth0","ips":["10.244.1.5"],"default":true},{"name":"multus-e2e/bridge-net","interface":"net1","ips":["10.249.0.3"]}]"#}}});
        assert!(judge(&Check::Status(e.clone()), &status.to_string()).is_ok());
        assert!(judge(&Check::Status(e), r#"{"metadata":{}}"#).is_err());
        assert!(judge(&Check::NoLeases, "/var/lib/cni/networks/macvlan-net:\nlast_reserved_ip.0\nlock\n").is_ok());
        assert!(judge(&Check::NoLeases, "/x:\n10.250.0.10\nlock\n").is_err());
    }

    #[test]
    fn objects_render_for_kind_and_local() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = Vars::new();
        for (k, v) in [
            ("NAMESPACE", NAMESPACE),
            ("IPAM_DIR", "/x"),
            ("NAD_BRIDGE", "b"),
            ("MACVLAN_MASTER", "m"),
            ("POD_IMAGE", "i"),
        ] {
            vars.insert(k.into(), v.into());
        }
        let f = render_objects(&vars, 2, Some("node1"), dir.path()).unwrap();
        let read = |p: &Path| fixtures::yaml_documents(&std::fs::read_to_string(p).unwrap()).unwrap();
        let cases = read(&f.cases);
        let names: Vec<&str> = cases.iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, CASE_PODS);
        assert!(cases.iter().all(|p| p["spec"]["nodeName"] == "node1"));
        assert_eq!(read(&f.many).len(), 2);
        let f = render_objects(&vars, 1, None, dir.path()).unwrap();
        let after = read(&f.after_restart);
        assert!(after[0]["spec"].get("nodeName").is_none());
        assert_eq!(after[0]["metadata"]["name"], "after-restart");
    }

    #[test]
    fn local_outline_mentions_the_real_parts() {
        let args = E2eArgs {
            local: true,
            container: false,
            upstream: false,
            manifest: None,
            keep: false,
            dry_run: true,
            cluster: DEFAULT_CLUSTER.into(),
            pod_image: DEFAULT_POD_IMAGE.into(),
            many: 2,
            no_build: false,
        };
        let o = local_outline(&args).join("\n");
        assert!(o.contains("kubectl --kubeconfig <run>/kubeconfig apply -f") && o.contains("multus-shim"));
    }
}
