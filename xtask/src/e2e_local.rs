//! `cargo xtask e2e --local`: the cases on this machine (kube-mock + multus-daemon +
//! multus-shim + network namespaces + Debian's plugins), the daemon started by the callbacks of
//! [`run_local_cases`] (a process here, a container in `e2e_container`).

use anyhow::{Result, bail};
use serde_json::Value;
use std::path::Path;

use crate::e2e_args::*;
use crate::e2e_caller::Caller;
use crate::e2e_cases::*;
use crate::fixtures;
use crate::harness::{self, Bins, LocalEnv, PodRun, step};
use crate::image;
use crate::util::{Cmd, have};

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
    } else if args.cri {
        v.push(
            "containerd --config <run>/containerd/config.toml   # CRI: conf_dir <run>/net.d, bin_dir <run>/cri-bin"
                .into(),
        );
        v.push("ctr --address <run>/containerd/containerd.sock -n k8s.io images import --snapshotter native <run>/sandbox-image.tar".into());
        v.push(
            "MULTUS_NODE_NAME=node1 multus-daemon -config <run>/daemon-config.json --kubeconfig <run>/kubeconfig"
                .into(),
        );
        v.push(
            "CRI RunPodSandbox / PodSandboxStatus / StopPodSandbox / RemovePodSandbox   # per pod, as the kubelet"
                .into(),
        );
        v.push("ip -n cni-<uuid> -j addr show; ip -n cni-<uuid> -j route show; GET pod (network-status)".into());
        return v;
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

fn add_and_verify(env: &LocalEnv, caller: Caller<'_>, pod: &mut PodRun, e: Option<&Expect>) -> Result<Vec<String>> {
    let out = caller.add(env, pod)?;
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
    // A runtime reports the pod IP from the result's eth0 (the cluster network's address).
    if let Caller::Cri(_) = caller {
        let status: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let ip = status["ip"].as_str().unwrap_or_default();
        if !ip.starts_with(CLUSTER_PREFIX) {
            errs.push(format!("{}: the runtime reports pod IP {ip:?}, not one of {CLUSTER_PREFIX}0/24", pod.name));
        }
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

/// The cluster network's addresses (fixtures/e2e*/cluster-net.conflist).
const CLUSTER_PREFIX: &str = "10.248.0.";

fn many_expect(pod: &str) -> Expect {
    Expect {
        pod: pod.into(),
        ifaces: vec![("eth0".into(), "10.248.0.".into()), ("net1".into(), "10.250.0.".into())],
        default_route: ("eth0".into(), Some("10.248.0.1".into())),
        status: vec![],
    }
}

pub(crate) fn check_clean(env: &LocalEnv, caller: Caller<'_>, pod: &PodRun) -> Result<Vec<String>> {
    // A runtime removes the namespace it made: nothing can be left inside it.
    let mut errs: Vec<String> = if Path::new(&pod.netns_path).exists() {
        env.inspect(pod)?
            .ifaces
            .iter()
            .filter(|i| i.name != "lo")
            .map(|i| format!("{}: interface {} left after DEL", pod.name, i.name))
            .collect()
    } else {
        vec![]
    };
    errs.extend(env.leftovers(pod).into_iter().map(|f| format!("{}: file left after DEL: {f}", pod.name)));
    errs.extend(
        caller.runtime_leftovers(pod).into_iter().map(|f| format!("{}: runtime file left after DEL: {f}", pod.name)),
    );
    Ok(errs)
}

pub(crate) fn del_and_verify(env: &LocalEnv, caller: Caller<'_>, pod: &PodRun) -> Result<Vec<String>> {
    let out = caller.del(env, pod)?;
    let mut errs = Vec::new();
    if !out.success {
        errs.push(format!("{}: DEL failed: {}", pod.name, out.describe()));
    }
    errs.extend(check_clean(env, caller, pod)?);
    Ok(errs)
}

/// What a local run needs and this machine lacks, as an error.
pub fn prerequisites(args: &E2eArgs) -> Result<()> {
    let missing = local_prereqs(args);
    if !missing.is_empty() {
        bail!("cannot run e2e --local:\n  {}", missing.join("\n  "));
    }
    Ok(())
}

pub fn local(args: &E2eArgs) -> Result<()> {
    prerequisites(args)?;
    if !args.no_build {
        step(format!("building ({} profile)", crate::harness::profile()));
        Bins::build_cmd().run()?;
    }
    let fixture = fixtures::fixtures_dir().join("e2e");
    let mut env = LocalEnv::new("e2e", &fixture, NAMESPACE, true)?;
    step(format!("run directory {}", env.run.display()));
    env.start_mock(&[], &[])?;
    let mut tally = Tally { failures: Vec::new() };
    run_local_cases(&mut env, args, &mut tally, Caller::Shim, &mut |env| env.start_daemon(), &mut |env| {
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
    caller: Caller<'_>,
    start: &mut dyn FnMut(&mut LocalEnv) -> Result<()>,
    stop: &mut dyn FnMut(&mut LocalEnv) -> Result<()>,
) -> Result<()> {
    let kubeconfig = env.kubeconfig.clone();
    let kubectl = |a: &[&str]| harness::kubectl(&kubeconfig, a);
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
    if let Caller::Cri(node) = caller {
        tally.case(
            "containerd loads 00-multus.conf and reports NetworkReady",
            crate::e2e_cri::network_from_multus(node),
        );
    }

    let cluster = fixtures::render_file(&env.fixture.join("cluster-net.conflist"), &env.vars)?;
    let cluster_name = serde_json::from_str::<Value>(&cluster)?["name"].as_str().unwrap_or_default().to_string();
    let expects = expectations(Some((&cluster_name, "10.248.0.", "10.248.0.1")));
    // A runtime (libcni) sends CHECK only for configs of cniVersion 0.4.0 and later.
    let conf_version =
        serde_json::from_str::<Value>(&env.multus_conf()?)?["cniVersion"].as_str().unwrap_or_default().to_string();
    let check_sent = caller.sends_check(&conf_version);
    if let Caller::Cri(_) = caller {
        println!("    containerd's CRI sends no CHECK: ADD and DEL only");
    } else if !check_sent {
        println!("    00-multus.conf has cniVersion {conf_version}: no CHECK (a runtime sends none below 0.4.0)");
    }
    let mut pods = Vec::new();
    for e in &expects {
        let mut pod = caller.sandbox(env, NAMESPACE, &e.pod)?;
        let mut errs = add_and_verify(env, caller, &mut pod, Some(e))?;
        if check_sent {
            let check = caller.check(env, &pod)?;
            if !check.success {
                errs.push(format!("CHECK failed: {}", check.describe()));
            }
        }
        tally.case(&format!("ADD{} {}", if check_sent { "+CHECK" } else { "" }, e.pod), errs);
        pods.push(pod);
    }

    step(format!("many pods at once: {}", args.many));
    kubectl(&["apply", "-f", &files.many.display().to_string()]).output()?;
    let mut many: Vec<PodRun> =
        (0..args.many).map(|i| caller.sandbox(env, NAMESPACE, &format!("many-{i}"))).collect::<Result<_>>()?;
    let envr: &LocalEnv = env;
    let results: Vec<Result<Vec<String>>> = std::thread::scope(|s| {
        let handles: Vec<_> = many.iter_mut().map(|p| s.spawn(move || add_and_verify(envr, caller, p, None))).collect();
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
        let handles: Vec<_> = many.iter().map(|p| s.spawn(move || del_and_verify(envr, caller, p))).collect();
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
        let check = caller.check(env, p)?;
        if !check.success {
            errs.push(format!("{}: CHECK after restart failed: {}", p.name, check.describe()));
        }
    }
    kubectl(&["apply", "-f", &files.after_restart.display().to_string()]).output()?;
    let mut after = caller.sandbox(env, NAMESPACE, "after-restart")?;
    errs.extend(add_and_verify(env, caller, &mut after, None)?);
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
        tally.case(&format!("DEL {} leaves no link, lease or cache file", p.name), del_and_verify(env, caller, p)?);
        let _ = kubectl(&["-n", NAMESPACE, "delete", "pod", &p.name, "--wait=false"]).output();
    }
    Ok(())
}
