//! `cargo xtask e2e --local --cri`: the kubelet's path. A private containerd (Debian's 1.6, CRI
//! plugin) loads the run's `00-multus.conf` and executes `multus-shim`; the e2e plays the kubelet
//! through CRI (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox) for every
//! case of `--local`, then the cases only a real runtime shows.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

use crate::cri::containerd::ContainerdPaths;
use crate::cri::{CriNode, make_bin_dir, sandbox_image};
use crate::e2e_args::{E2eArgs, NAMESPACE};
use crate::e2e_caller::Caller;
use crate::e2e_local::{Tally, check_clean, del_and_verify, finish, run_local_cases};
use crate::fixtures;
use crate::harness::{self, Bins, LocalEnv, PodRun, step};
use crate::util::{Cmd, have, is_root};

const TOOLS: [&str; 5] = ["containerd", "ctr", "runc", "containerd-shim-runc-v2", "iptables-save"];

/// What this machine lacks for a CRI run (after trying to install containerd as root).
pub fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !is_root() {
        return vec!["not root (containerd's CRI runs sandboxes with runc)".into()];
    }
    if !have("containerd") && have("apt-get") {
        step("installing Debian's containerd");
        Cmd::new("apt-get").args(["install", "-y", "-qq", "--no-install-recommends", "containerd"]).run_quiet();
    }
    for tool in TOOLS.iter().filter(|t| !have(t)) {
        missing.push(format!("{tool} is not installed (Debian: containerd, runc, iptables)"));
    }
    missing
}

pub fn run(args: &E2eArgs) -> Result<()> {
    crate::e2e_local::prerequisites(args)?;
    let missing = missing();
    if !missing.is_empty() {
        println!("e2e --local --cri: SKIPPED: {}", missing.join("; "));
        return Ok(());
    }
    let profile = harness::profile();
    if !args.no_build {
        step(format!("building ({profile} profile) and the static sandbox program"));
        Bins::build_cmd().run()?;
        sandbox_image::build_cmd(&profile).run()?;
    }
    let mut env = LocalEnv::new("e2e-cri", &fixtures::fixtures_dir().join("e2e-cri"), NAMESPACE, true)?;
    step(format!("run directory {}", env.run.display()));
    env.start_mock(&[], &[])?;

    // One bin_dir for containerd and the daemon: the shim, Debian's plugins, fake-cni.
    let bin_dir = env.run.join("cri-bin");
    make_bin_dir(
        &bin_dir,
        &env.bins.shim,
        Path::new(harness::SYSTEM_CNI_DIR),
        &[("fake-cni", env.bins.fake_cni.clone())],
    )?;
    env.vars.insert("BIN_DIR".into(), bin_dir.display().to_string());
    let archive = env.run.join("sandbox-image.tar");
    sandbox_image::write_archive(&sandbox_image::binary(&profile), &archive)?;
    let paths = ContainerdPaths {
        dir: env.run.join("containerd"),
        bin_dir,
        conf_dir: env.conf_dir_host.clone(),
        sandbox_image: sandbox_image::SANDBOX_IMAGE.into(),
    };
    step(format!("starting containerd ({})", paths.config().display()));
    let node = CriNode::start(paths, &archive)?;
    step(format!("the kubelet's runtime: {}", node.version()?));

    let mut tally = Tally { failures: Vec::new() };
    let before = node.network_ready()?;
    tally.case(
        "containerd's NetworkReady is false while the node has no CNI config",
        if before.ready { vec![format!("NetworkReady already true: {before:?}")] } else { vec![] },
    );
    run_local_cases(&mut env, args, &mut tally, Caller::Cri(&node), &mut |env| env.start_daemon(), &mut |env| {
        env.stop_daemon(true);
        Ok(())
    })?;
    runtime_cases(&env, &node, &mut tally)?;
    finish(tally, &env)
}

/// After the daemon wrote `00-multus.conf`: containerd loads it (its first config file) and
/// reports NetworkReady.
pub fn network_from_multus(node: &CriNode) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let loaded = node.loaded_cni_config().unwrap_or_default();
        let ready = node.network_ready().map(|c| c.ready).unwrap_or(false);
        if ready && loaded.contains("multus-shim") {
            return vec![];
        }
        if std::time::Instant::now() >= deadline {
            return vec![format!("after 30 s: NetworkReady {ready}, loaded CNI config: {loaded}")];
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// NADs and pods only the runtime cases use.
fn runtime_objects(env: &LocalEnv, record_dir: &Path, host_port: u16) -> Vec<Value> {
    let nad = |name: &str, fake: Value| {
        let config = json!({
            "cniVersion": "1.0.0", "name": name, "type": "fake-cni",
            "capabilities": { "portMappings": true, "io.kubernetes.cri.pod-annotations": true },
            "fake": fake,
        });
        json!({ "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": { "name": name, "namespace": NAMESPACE }, "spec": { "config": config.to_string() } })
    };
    let record = record_dir.display().to_string();
    let pod = |name: &str, networks: &str, ports: Value| {
        json!({ "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "namespace": NAMESPACE,
                              "annotations": { "k8s.v1.cni.cncf.io/networks": networks, "e2e.multus-rs.io/marker": name } },
                "spec": { "nodeName": harness::NODE, "containers": [ { "name": "c", "image": env.var("POD_IMAGE"), "ports": ports } ] } })
    };
    vec![
        nad("cri-recorder", json!({ "recordDir": record, "subnet": "10.251.0.0/24", "gateway": "" })),
        nad(
            "cri-broken",
            json!({ "recordDir": record, "failOn": ["ADD"], "failMsg": "cri-broken: refused by design" }),
        ),
        pod("cri-caps", "cri-recorder", json!([ { "containerPort": 80, "hostPort": host_port, "protocol": "TCP" } ])),
        pod("cri-broken", "cri-broken", json!([])),
        pod("cri-restart", "bridge-net", json!([])),
    ]
}

/// The recorded fake-cni calls of network `name`.
fn recorded(record_dir: &Path, name: &str) -> Vec<Value> {
    std::fs::read_to_string(record_dir.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|c| c["name"] == name)
        .collect()
}

fn nat_rules() -> String {
    Cmd::new("iptables-save").args(["-t", "nat"]).output().unwrap_or_default()
}

fn runtime_cases(env: &LocalEnv, node: &CriNode, tally: &mut Tally) -> Result<()> {
    let caller = Caller::Cri(node);
    let record_dir = env.run.join("recorder");
    let host_port = 20000 + (env.id % 10000) as u16;
    let objects = env.run.join("objects/cri.yaml");
    std::fs::write(&objects, crate::e2e_cases::list(runtime_objects(env, &record_dir, host_port)))?;
    env.kubectl(&["apply", "-f", &objects.display().to_string()]).output()?;

    step("capability args: containerd's portMappings and pod annotations reach the delegates");
    let mut caps = caller.sandbox(env, NAMESPACE, "cri-caps")?;
    tally.case(
        "portMappings and io.kubernetes.cri.pod-annotations reach the delegates",
        capability_case(env, caller, &mut caps, &record_dir, host_port)?,
    );

    step("a sandbox whose ADD fails");
    tally.case("a failed RunPodSandbox: the plugin's error reaches the kubelet, the failing network gets its DEL, nothing is left", failed_add_case(env, caller, &record_dir)?);

    step("containerd restarted while a sandbox runs");
    tally.case(
        "containerd restarted with a sandbox running: status kept, stop + remove leave nothing",
        restart_case(env, node)?,
    );
    Ok(())
}

fn capability_case(
    env: &LocalEnv,
    caller: Caller<'_>,
    pod: &mut PodRun,
    record_dir: &Path,
    host_port: u16,
) -> Result<Vec<String>> {
    let out = caller.add(env, pod)?;
    if !out.success {
        return Ok(vec![format!("ADD failed: {}", out.describe())]);
    }
    let mut errs = Vec::new();
    let add = recorded(record_dir, "cri-recorder")
        .into_iter()
        .find(|c| c["command"] == "ADD" && c["containerId"] == pod.container_id.as_str());
    match add {
        None => errs.push("the recorder network was not called with ADD for this sandbox".into()),
        Some(call) => {
            let rc = &call["stdin"]["runtimeConfig"];
            // containerd sends Go field names (HostPort, ...); delegates get the CNI spelling.
            let want = json!([{ "hostPort": host_port, "containerPort": 80, "protocol": "tcp" }]);
            if rc["portMappings"] != want {
                errs.push(format!("runtimeConfig.portMappings = {}, want {want}", rc["portMappings"]));
            }
            if rc["io.kubernetes.cri.pod-annotations"]["e2e.multus-rs.io/marker"] != "cri-caps" {
                errs.push(format!("runtimeConfig has no pod annotations: {rc}"));
            }
        }
    }
    let dport = format!("--dport {host_port} ");
    if !nat_rules().lines().any(|l| l.contains(&dport) && l.contains("DNAT")) {
        errs.push(format!("portmap made no DNAT rule for host port {host_port}"));
    }
    errs.extend(del_and_verify(env, caller, pod)?);
    if nat_rules().lines().any(|l| l.contains(&dport) || l.contains(&format!("--dports {host_port} "))) {
        errs.push(format!("a NAT rule for host port {host_port} is left after DEL"));
    }
    Ok(errs)
}

fn failed_add_case(env: &LocalEnv, caller: Caller<'_>, record_dir: &Path) -> Result<Vec<String>> {
    let mut pod = caller.sandbox(env, NAMESPACE, "cri-broken")?;
    let out = caller.add(env, &mut pod)?;
    let mut errs = Vec::new();
    if out.success {
        errs.push("RunPodSandbox succeeded with a failing network".into());
        errs.extend(del_and_verify(env, caller, &pod)?);
        return Ok(errs);
    }
    if !out.stderr.contains("refused by design") {
        errs.push(format!("the runtime's error does not carry the plugin's: {}", out.stderr));
    }
    // The sandbox ID is the one the failing plugin saw.
    let calls = recorded(record_dir, "cri-broken");
    let Some(id) = calls.iter().find(|c| c["command"] == "ADD").and_then(|c| c["containerId"].as_str()) else {
        errs.push("the failing network was never called".into());
        return Ok(errs);
    };
    pod.container_id = id.to_string();
    pod.netns_path = calls.iter().find_map(|c| c["netns"].as_str()).unwrap_or_default().to_string();
    // The plugin whose ADD failed still gets its DEL (CNI: a failed ADD is followed by DEL).
    if !calls.iter().any(|c| c["command"] == "DEL" && c["containerId"] == id) {
        errs.push(format!("the failing network got no DEL for sandbox {id}"));
    }
    let Caller::Cri(node) = caller else { return Ok(errs) };
    // containerd removes a sandbox whose network setup failed; the kubelet would retry.
    let left = node.sandboxes_of(NAMESPACE, "cri-broken")?;
    if !left.is_empty() {
        errs.push(format!("containerd still lists the failed sandbox: {left:?}"));
        for id in left {
            let _ = node.stop_and_remove(&id);
        }
    }
    errs.extend(check_clean(env, caller, &pod)?);
    Ok(errs)
}

fn restart_case(env: &LocalEnv, node: &CriNode) -> Result<Vec<String>> {
    let caller = Caller::Cri(node);
    let mut pod = caller.sandbox(env, NAMESPACE, "cri-restart")?;
    let out = caller.add(env, &mut pod)?;
    if !out.success {
        return Ok(vec![format!("ADD failed: {}", out.describe())]);
    }
    let before = node.status(&pod.container_id)?;
    node.restart().context("restarting containerd")?;
    let mut errs = Vec::new();
    match node.status(&pod.container_id) {
        Ok(after) if after.ready && after.ip == before.ip => {}
        Ok(after) => errs.push(format!("after the restart the sandbox is {after:?}, was {before:?}")),
        Err(e) => errs.push(format!("PodSandboxStatus after the restart: {e}")),
    }
    let view = env.inspect(&pod)?;
    if view.iface("net1").is_none() {
        errs.push("net1 is gone from the sandbox after containerd's restart".into());
    }
    errs.extend(del_and_verify(env, caller, &pod)?);
    Ok(errs)
}
