//! `cargo xtask e2e --local --container [--upstream] [--manifest FILE]`: the e2e cases with the
//! manifest's DaemonSet run by docker, as a kubelet would run it, on a node made on this machine.
//!
//! The node is a directory, `<run>/node`, standing for the node's root filesystem: the CNI
//! directories, Debian's delegate plugins in `/opt/cni/bin` with the libraries they load, and
//! `/var/run -> /run`. Its `/dev`, `/proc`, `/sys` and `/run/netns` are this machine's (the pod
//! network namespaces are real), bound where a `hostPath` volume covers them. Nothing on this
//! machine's /etc/cni, /opt/cni or /var/lib/cni is touched, and no host mount is made.
//!
//! The kubelet part ([`docker_run`]) turns each container of the pod template into a
//! `docker run`: host network and PID, privileged, the command and args, `env` (`fieldRef
//! spec.nodeName`), the memory and CPU limits, every volume (`hostPath` → the node's directory,
//! `configMap` → its items written to a directory, `emptyDir`), `readOnly` and
//! `mountPropagation`, the service account and `KUBERNETES_SERVICE_HOST/PORT` (kube-mock over
//! TLS) — with every container's image replaced by the one under test. Init containers run to
//! completion first, as in a pod. The container runtime is played by a wrapper that runs the
//! installed `multus-shim` chrooted into the node, so the shim finds the node's
//! `/run/multus/multus.sock` as it would on a real node.
//!
//! Without `--upstream` the ConfigMap's `daemon-config.json` gets `cniVersion: 1.0.0` so the
//! cases exercise CHECK; with `--upstream` the manifest runs unchanged but for the image (its
//! `cniVersion 0.3.1` means no CHECK: libcni sends none below 0.4.0). `--manifest` runs another
//! file, e.g. the Go project's own `multus-daemonset-thick.yml`.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::e2e_args::{E2eArgs, NAMESPACE};
use crate::e2e_local::{Tally, finish, run_local_cases};
use crate::fixtures;
use crate::harness::{Bins, LocalEnv, NODE, PLUGINS, SYSTEM_CNI_DIR, step};
use crate::image;
use crate::manifests;
use crate::util::{Cmd, defer};

/// Paths of the node that are this machine's own, bound into the node wherever a `hostPath`
/// volume covers them: kernel filesystems and the real pod network namespaces.
pub const REAL_NODE_PATHS: [&str; 4] = ["/dev", "/proc", "/sys", "/run/netns"];
/// Directories of a node that runs Multus (the DaemonSet's `hostPath`s are created on demand).
pub const NODE_DIRS: [&str; 5] = ["etc/cni/net.d", "opt/cni/bin", "run", "var/lib/cni/networks", "tmp"];
/// `--privileged` minus CAP_SYS_RESOURCE, for machines (nested containers) whose capability
/// bounding set lacks it, where `--privileged` fails with "unable to apply caps".
pub const UNPRIVILEGED_EQUIVALENT: [&str; 10] = [
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
];
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

// -------------------------------------------------------------------------------------------
// The node

/// A node's root filesystem in a directory of this machine.
#[derive(Debug, Clone)]
pub struct Node {
    pub root: PathBuf,
}

impl Node {
    /// Where a node path is on this machine: itself for [`REAL_NODE_PATHS`] (and below them),
    /// else under the node's root.
    pub fn host_path(&self, node_path: &str) -> PathBuf {
        let p = normalize(node_path);
        if REAL_NODE_PATHS.iter().any(|r| is_under(&p, r)) {
            return PathBuf::from(p);
        }
        let rel = p.trim_start_matches('/');
        if rel.is_empty() { self.root.clone() } else { self.root.join(rel) }
    }

    /// Make the node: its directories, `/var/run -> /run`, mount points for the real paths, and
    /// `plugins` from `plugin_dir` in `/opt/cni/bin` with the shared libraries each loads.
    pub fn create(root: &Path, plugin_dir: &Path, plugins: &[&str]) -> Result<Self> {
        let node = Self { root: root.to_path_buf() };
        for d in NODE_DIRS.iter().chain(&["var"]) {
            std::fs::create_dir_all(root.join(d))?;
        }
        for r in REAL_NODE_PATHS {
            std::fs::create_dir_all(root.join(r.trim_start_matches('/')))?;
        }
        std::os::unix::fs::symlink("../run", root.join("var/run"))?;
        let mut rootfs = test_node::rootfs::RootFs::new(root);
        for p in plugins {
            rootfs.add(&format!("opt/cni/bin/{p}"), &plugin_dir.join(p))?;
        }
        rootfs.finish()?;
        Ok(node)
    }
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }
}

/// `path` is `dir` or below it (both normalized).
fn is_under(path: &str, dir: &str) -> bool {
    dir == "/" || path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The runtime's view of the shim: `multus-shim` of the node, run with the node as its root.
pub fn shim_wrapper(node: &Node) -> String {
    format!(
        "#!/bin/sh\n# The container runtime runs on the node: the shim sees the node's /run/multus.\n\
         exec chroot '{}' /opt/cni/bin/multus-shim \"$@\"\n",
        node.root.display()
    )
}

// -------------------------------------------------------------------------------------------
// The kubelet part

/// Propagation of the mount a path is on (`/proc/self/mountinfo`): docker refuses `rslave`
/// unless the source is on a shared or slave mount, and `rshared` unless it is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePropagation {
    Private,
    Slave,
    Shared,
}

/// The propagation of the mount `path` is on, from `/proc/self/mountinfo`.
pub fn source_propagation(path: &Path) -> SourcePropagation {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mount_propagation(&info, &path.display().to_string())
}

/// [`source_propagation`] over a mountinfo text: the longest mount point containing `path`.
pub fn mount_propagation(mountinfo: &str, path: &str) -> SourcePropagation {
    let path = normalize(path);
    let mut best: Option<(usize, SourcePropagation)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else { continue };
        if !is_under(&path, &normalize(mount_point)) {
            continue;
        }
        let optional = fields.iter().skip(6).take_while(|f| **f != "-");
        let mut prop = SourcePropagation::Private;
        for f in optional {
            if f.starts_with("shared:") {
                prop = SourcePropagation::Shared;
            } else if f.starts_with("master:") && prop != SourcePropagation::Shared {
                prop = SourcePropagation::Slave;
            }
        }
        // Later lines stack over earlier ones at the same mount point.
        if best.is_none_or(|(len, _)| mount_point.len() >= len) {
            best = Some((mount_point.len(), prop));
        }
    }
    best.map(|(_, p)| p).unwrap_or(SourcePropagation::Private)
}

/// Docker's `bind-propagation` for a manifest `mountPropagation` and the source's mount.
/// Propagation carries mounts made later under the source; where docker cannot honour it (the
/// node's directories live on this machine's private root mount) nothing is mounted there
/// later, so the default loses nothing.
pub fn docker_propagation(manifest: Option<&str>, source: SourcePropagation) -> Option<&'static str> {
    match (manifest, source) {
        (Some("Bidirectional"), SourcePropagation::Shared) => Some("rshared"),
        (Some("Bidirectional" | "HostToContainer"), SourcePropagation::Shared | SourcePropagation::Slave) => {
            Some("rslave")
        }
        _ => None,
    }
}

/// Everything [`docker_run`] needs besides the manifest.
pub struct PodContext<'a> {
    pub node: &'a Node,
    pub node_name: &'a str,
    /// The image every container runs instead of the manifest's.
    pub image: &'a str,
    pub privileged: bool,
    /// `configMap` and `emptyDir` volumes are directories here, one per volume name.
    pub volume_dir: PathBuf,
    pub service_account_dir: PathBuf,
    pub api_port: u16,
    pub propagation_of: &'a dyn Fn(&Path) -> SourcePropagation,
}

/// `50Mi` → bytes (binary and decimal suffixes, plain numbers).
pub fn memory_bytes(q: &str) -> Result<u64> {
    let units: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (num, mult) = units.iter().find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m))).unwrap_or((q, 1));
    let n: f64 = num.parse().with_context(|| format!("memory quantity {q:?}"))?;
    Ok((n * mult as f64).round() as u64)
}

/// `100m` → `0.1` (CPUs, as docker's `--cpus` takes them).
pub fn cpus(q: &str) -> Result<String> {
    let cores = match q.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().with_context(|| format!("cpu quantity {q:?}"))? / 1000.0,
        None => q.parse::<f64>().with_context(|| format!("cpu quantity {q:?}"))?,
    };
    Ok(format!("{cores}"))
}

fn str_of<'v>(v: &'v Value, what: &str) -> Result<&'v str> {
    v.as_str().with_context(|| format!("{what} is not a string"))
}

/// The `docker run` of one container of the pod template `pod_spec` (init: `--rm`, run to
/// completion; else detached).
pub fn docker_run(ctx: &PodContext<'_>, pod_spec: &Value, container: &Value, name: &str, init: bool) -> Result<Cmd> {
    let mut c = Cmd::new("docker").arg("run");
    c = if init { c.arg("--rm") } else { c.arg("-d") };
    c = c.args(["--name", name]);
    if container["securityContext"]["privileged"] == true {
        c = if ctx.privileged { c.arg("--privileged") } else { c.args(UNPRIVILEGED_EQUIVALENT) };
    }
    if pod_spec["hostNetwork"] == true {
        c = c.args(["--network", "host"]);
    }
    if pod_spec["hostPID"] == true {
        c = c.args(["--pid", "host"]);
    }
    let limits = &container["resources"]["limits"];
    if let Some(m) = limits["memory"].as_str() {
        c = c.arg("--memory").arg(memory_bytes(m)?.to_string());
    }
    if let Some(q) = limits["cpu"].as_str() {
        c = c.arg("--cpus").arg(cpus(q)?);
    }
    // What a kubelet gives every container: the API server's address and (by default) the
    // service account.
    c = c
        .args(["-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e"])
        .arg(format!("KUBERNETES_SERVICE_PORT={}", ctx.api_port));
    for e in container["env"].as_array().into_iter().flatten() {
        let key = str_of(&e["name"], "env name")?;
        let value = match (&e["value"], e["valueFrom"]["fieldRef"]["fieldPath"].as_str()) {
            (Value::String(v), _) => v.clone(),
            (_, Some("spec.nodeName")) => ctx.node_name.to_string(),
            (_, Some("metadata.namespace")) => "kube-system".into(),
            // The name a DaemonSet controller would give this node's pod.
            (_, Some("metadata.name")) => format!("kube-multus-ds-{}", ctx.node_name),
            (_, Some(other)) => bail!("env {key}: fieldRef {other} is not supported here"),
            _ => bail!("env {key}: only value and fieldRef are supported here"),
        };
        c = c.arg("-e").arg(format!("{key}={value}"));
    }
    if pod_spec["automountServiceAccountToken"] != false {
        c = c.arg("--mount").arg(bind(&ctx.service_account_dir, SERVICE_ACCOUNT_DIR, true, None));
    }
    let volumes = pod_spec["volumes"].as_array().map(Vec::as_slice).unwrap_or_default();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let vname = str_of(&m["name"], "volumeMount name")?;
        let target = normalize(str_of(&m["mountPath"], "mountPath")?);
        if m.get("subPath").is_some() {
            bail!("volumeMount {vname}: subPath is not supported here");
        }
        let read_only = m["readOnly"] == true;
        let manifest_prop = m["mountPropagation"].as_str();
        let vol = volumes.iter().find(|v| v["name"] == vname).with_context(|| format!("no volume {vname}"))?;
        if let Some(host) = vol["hostPath"]["path"].as_str() {
            let host = normalize(host);
            let source = ctx.node.host_path(&host);
            let prop = docker_propagation(manifest_prop, (ctx.propagation_of)(&source));
            c = c.arg("--mount").arg(bind(&source, &target, read_only, prop));
            // The node's real paths below this one are bound at the same place inside it.
            if !REAL_NODE_PATHS.iter().any(|r| is_under(&host, r)) {
                for real in REAL_NODE_PATHS.iter().filter(|r| is_under(r, &host) && **r != host) {
                    let rel = real.strip_prefix(host.as_str()).unwrap_or(real).trim_start_matches('/');
                    let inner = if target == "/" { format!("/{rel}") } else { format!("{target}/{rel}") };
                    let prop = docker_propagation(manifest_prop, (ctx.propagation_of)(Path::new(real)));
                    c = c.arg("--mount").arg(bind(Path::new(real), &inner, read_only, prop));
                }
            }
        } else if vol.get("configMap").is_some() || vol.get("emptyDir").is_some() {
            c = c.arg("--mount").arg(bind(&ctx.volume_dir.join(vname), &target, read_only, None));
        } else {
            bail!("volume {vname}: only hostPath, configMap and emptyDir are supported here");
        }
    }
    let command: Vec<&str> = container["command"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let args: Vec<&str> = container["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if let Some(entry) = command.first() {
        c = c.args(["--entrypoint", entry]);
    }
    c = c.arg(ctx.image);
    c = c.args(command.iter().skip(1).copied());
    Ok(c.args(args))
}

fn bind(source: &Path, target: &str, read_only: bool, propagation: Option<&str>) -> String {
    let mut s = format!("type=bind,source={},target={target}", source.display());
    if read_only {
        s.push_str(",readonly");
    }
    if let Some(p) = propagation {
        s.push_str(&format!(",bind-propagation={p}"));
    }
    s
}

/// Write the pod's `configMap` volumes (their items, from `configmaps`) and make its `emptyDir`
/// volumes under `dir`; `edit` may change an item (ConfigMap name, key, content).
pub fn materialise_volumes(
    pod_spec: &Value,
    configmaps: &[&Value],
    dir: &Path,
    edit: &dyn Fn(&str, &str, String) -> Result<String>,
) -> Result<()> {
    for v in pod_spec["volumes"].as_array().into_iter().flatten() {
        let name = str_of(&v["name"], "volume name")?;
        let vdir = dir.join(name);
        if let Some(cm_name) = v["configMap"]["name"].as_str() {
            let cm = configmaps
                .iter()
                .find(|c| c["metadata"]["name"] == cm_name)
                .with_context(|| format!("volume {name}: no ConfigMap {cm_name} in the manifest"))?;
            std::fs::create_dir_all(&vdir)?;
            let data = cm["data"].as_object().with_context(|| format!("ConfigMap {cm_name} has no data"))?;
            let items: Vec<(String, String)> = match v["configMap"]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .map(|i| {
                        Ok((str_of(&i["key"], "item key")?.to_string(), str_of(&i["path"], "item path")?.to_string()))
                    })
                    .collect::<Result<_>>()?,
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in items {
                let content = str_of(&data[&key], "ConfigMap data")?.to_string();
                std::fs::write(vdir.join(path), edit(cm_name, &key, content)?)?;
            }
        } else if v.get("emptyDir").is_some() {
            std::fs::create_dir_all(&vdir)?;
        }
    }
    Ok(())
}

/// Create the node directories the pod's `hostPath` volumes name (the node's real paths exist).
pub fn prepare_host_paths(node: &Node, pod_spec: &Value) -> Result<()> {
    for v in pod_spec["volumes"].as_array().into_iter().flatten() {
        if let Some(p) = v["hostPath"]["path"].as_str() {
            let host = node.host_path(p);
            if host.starts_with(&node.root) {
                std::fs::create_dir_all(&host).with_context(|| format!("creating {}", host.display()))?;
            }
        }
    }
    Ok(())
}

/// The DaemonSet's pod spec and the manifest's ConfigMaps.
pub fn daemonset_pod(docs: &[Value]) -> Result<(Value, Vec<&Value>)> {
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").context("no DaemonSet in the manifest")?;
    let configmaps = docs.iter().filter(|d| d["kind"] == "ConfigMap").collect();
    Ok((ds["spec"]["template"]["spec"].clone(), configmaps))
}

/// The test's change to `daemon-config.json` outside `--upstream`: cniVersion 1.0.0, so the
/// runtime's CHECK is exercised.
pub fn test_daemon_config(content: &str) -> Result<String> {
    let mut conf: Value = serde_json::from_str(content).context("daemon-config.json is not JSON")?;
    conf["cniVersion"] = "1.0.0".into();
    Ok(serde_json::to_string_pretty(&conf)?)
}

// -------------------------------------------------------------------------------------------
// The run

fn container_running(name: &str) -> bool {
    Cmd::new("docker")
        .args(["inspect", "-f", "{{.State.Running}}", name])
        .output()
        .map(|o| o.trim() == "true")
        .unwrap_or(false)
}

fn save_logs(name: &str, log: &Path) {
    if let Ok(out) = std::process::Command::new("docker").args(["logs", name]).output() {
        let mut text = out.stdout;
        text.extend_from_slice(&out.stderr);
        let _ = std::fs::write(log, text);
    }
}

fn describe_container(name: &str) -> String {
    let state = Cmd::new("docker")
        .args(["inspect", "-f", "status={{.State.Status}} exit={{.State.ExitCode}} error={{.State.Error}}", name])
        .output()
        .unwrap_or_default();
    let logs = std::process::Command::new("docker")
        .args(["logs", "--tail", "20", name])
        .output()
        .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        .unwrap_or_default();
    format!("{state}{logs}")
}

pub fn run(args: &E2eArgs) -> Result<()> {
    let tag = image::DEFAULT_TAG;
    if !args.no_build {
        step("building and the image");
        Bins::build_cmd().run()?;
        image::run(image::ImageArgs { tag: tag.into(), profile: image::DEFAULT_PROFILE.into(), dry_run: false })?;
    }
    if !Cmd::new("docker").args(["image", "inspect", tag]).run_quiet() {
        bail!("image {tag} does not exist: run `cargo xtask image` first");
    }
    let manifest = args.manifest.clone().unwrap_or_else(manifests::manifest_path);
    let docs = manifests::load_file(&manifest)?;
    let (pod_spec, configmaps) = daemonset_pod(&docs)?;
    let daemon = pod_spec["containers"][0].clone();
    for c in pod_spec["initContainers"].as_array().into_iter().flatten().chain([&daemon]) {
        println!("    {}: image {} -> {tag}", c["name"].as_str().unwrap_or("?"), c["image"].as_str().unwrap_or("?"));
    }

    let fixture = fixtures::fixtures_dir().join("e2e");
    let mut env = LocalEnv::new("e2e", &fixture, NAMESPACE, true)?;
    let node = Node::create(&env.run.join("node"), Path::new(SYSTEM_CNI_DIR), &PLUGINS)?;
    std::fs::create_dir_all("/run/netns")?;
    // The paths the fixtures name, as delegates see them (chrooted into the node).
    env.vars.insert("BIN_DIR".into(), "/opt/cni/bin".into());
    env.vars.insert("IPAM_DIR".into(), "/var/lib/cni/networks".into());
    env.conf_dir_host = node.host_path("/etc/cni/net.d");
    env.socket_path = node.host_path("/run/multus/multus.sock");
    env.cni_dir_host = node.host_path("/var/lib/cni/multus");
    env.ipam_dir_host = node.host_path("/var/lib/cni/networks");
    step(format!("node root {} (run directory {})", node.root.display(), env.run.display()));

    prepare_host_paths(&node, &pod_spec)?;
    let volume_dir = env.run.join("volumes");
    let upstream = args.upstream;
    materialise_volumes(&pod_spec, &configmaps, &volume_dir, &|_, key, content| {
        if upstream || key != "daemon-config.json" { Ok(content) } else { test_daemon_config(&content) }
    })?;
    if !upstream {
        println!(
            "    daemon-config.json: cniVersion 1.0.0 (the runtime's CHECK is exercised); --upstream keeps it as is"
        );
    }

    let sa = env.run.join("serviceaccount");
    env.start_mock(&[], &["--tls".into(), "--in-cluster-dir".into(), sa.display().to_string()])?;
    let port: u16 =
        env.api.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).context("API port")?;
    println!("    API server {} (TLS, service-account files in {})", env.api, sa.display());

    let privileged = Cmd::new("docker").args(["run", "--rm", "--privileged", tag, "-version"]).run_quiet();
    if !privileged {
        println!(
            "    note: `docker run --privileged` fails here (the capability bounding set lacks CAP_SYS_RESOURCE); using {}",
            UNPRIVILEGED_EQUIVALENT.join(" ")
        );
    }
    let ctx = PodContext {
        node: &node,
        node_name: NODE,
        image: tag,
        privileged,
        volume_dir,
        service_account_dir: sa.clone(),
        api_port: port,
        propagation_of: &source_propagation,
    };
    let base = format!("multus-e2e-{}", std::process::id());
    for (i, init) in pod_spec["initContainers"].as_array().into_iter().flatten().enumerate() {
        let name = format!("{base}-init-{i}");
        let cmd = docker_run(&ctx, &pod_spec, init, &name, true)?;
        step(format!("init container {}", init["name"].as_str().unwrap_or("?")));
        println!("    {cmd}");
        let out = cmd.output().with_context(|| format!("init container {}", init["name"]))?;
        for line in out.lines() {
            println!("    | {line}");
        }
    }
    let shim = env.run.join("runtime/multus-shim");
    std::fs::create_dir_all(shim.parent().context("shim dir")?)?;
    std::fs::write(&shim, shim_wrapper(&node))?;
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    if !node.host_path("/opt/cni/bin/multus-shim").exists() {
        bail!("the init containers did not install multus-shim into the node's /opt/cni/bin");
    }
    env.bins.shim = shim;

    let log = env.daemon_log();
    let mut starts = 0u32;
    let current: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let mut tally = Tally { failures: Vec::new() };
    let cur_start = current.clone();
    let cur_stop = current.clone();
    run_local_cases(
        &mut env,
        args,
        &mut tally,
        crate::e2e_caller::Caller::Shim,
        &mut |env| {
            starts += 1;
            let name = format!("{base}-{starts}");
            let cmd = docker_run(&ctx, &pod_spec, &daemon, &name, false)?;
            println!("    {cmd}");
            {
                let (n, l) = (name.clone(), log.clone());
                let _ = defer(format!("remove container {name}"), move || {
                    save_logs(&n, &l);
                    Cmd::new("docker").args(["rm", "-f", &n]).run_quiet();
                });
            }
            cmd.output()?;
            *cur_start.lock().unwrap_or_else(|e| e.into_inner()) = Some(name.clone());
            env.wait_daemon(&|| container_running(&name), &|| describe_container(&name))
        },
        &mut |_env| {
            if let Some(name) = cur_stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Cmd::new("docker").args(["kill", &name]).output()?;
                save_logs(&name, &log);
            }
            Ok(())
        },
    )?;
    if let Some(name) = current.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        save_logs(name, &env.daemon_log());
    }
    finish(tally, &env)
}

#[cfg(test)]
mod tests;
