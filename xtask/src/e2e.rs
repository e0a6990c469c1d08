//! `cargo xtask e2e`: the end-to-end cases, on a kind cluster (default) or on this machine
//! (`--local`: kube-mock + multus-daemon + multus-shim + network namespaces + Debian's plugins).
//!
//! The kind run is a *plan* — a list of steps, each a command and optionally a check of its
//! output — built by [`kind_plan`] and executed by [`execute`]; `--dry-run` prints it and the
//! unit tests assert it (kind cannot pull node images here).

use anyhow::{Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::e2e_args::*;
use crate::e2e_cases::*;
use crate::fixtures::Vars;
use crate::harness::{self, NetnsView, step};
use crate::image;
use crate::manifests::deployments_dir;
use crate::util::{Cmd, defer, have, with_cleanup, workspace_root};

pub use crate::e2e_args::E2eArgs;

pub fn run(args: E2eArgs) -> Result<()> {
    if args.local {
        if args.dry_run {
            if let Some(nodes) = args.nodes {
                for line in crate::e2e_cluster::outline(usize::from(nodes)) {
                    println!("{line}");
                }
                return Ok(());
            }
            for line in crate::e2e_local::local_outline(&args) {
                println!("{line}");
            }
            return Ok(());
        }
        if args.container {
            // The same prerequisites as a local run, then the manifest's DaemonSet in docker.
            return with_cleanup(|| {
                crate::e2e_local::prerequisites(&args)?;
                crate::e2e_container::run(&args)
            });
        }
        if args.cri {
            return with_cleanup(|| crate::e2e_cri::run(&args));
        }
        if let Some(nodes) = args.nodes {
            // testcontainers removes the containers, also on SIGINT/SIGTERM (its watchdog).
            return crate::e2e_cluster::run(&args, usize::from(nodes));
        }
        return with_cleanup(|| crate::e2e_local::local(&args));
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

#[cfg(test)]
mod tests;
