//! The node agent (`cluster-node`), run inside every node container: PID 1 (reaps and stops the
//! daemon on SIGTERM), the DaemonSet's two steps (install the shim, run the daemon), and the
//! container runtime's part: a network namespace per sandbox and the shim called with the
//! kubelet's CNI environment and the node's first network config, as libcni does. Every command
//! prints one JSON line, which the driver reads through `docker exec`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::gocache::{self, GoDelegate};
use crate::plan::{self, Generation, PodRef, node_paths::*};

/// What one runtime call did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallOutcome {
    pub ok: bool,
    /// Wall time of the shim call (for ADD: until the shim answered).
    pub millis: u64,
    /// The CNI error message (or stderr) when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failed ADD: whether the runtime's cleanup DEL succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_ok: Option<bool>,
}

// -------------------------------------------------------------------------------------------
// Network namespaces (no iproute2 in the node image)

fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// A new network namespace bound at `/run/netns/<name>`, as `ip netns add` makes it.
pub fn create_netns(name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(NETNS_DIR)?;
    let path = netns_path(name);
    std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let target = path.clone();
    // unshare affects the calling thread only: a thread of its own keeps the agent's namespace.
    let made = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the netns thread panicked"))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        bail!("binding a new network namespace at {}: {e}", path.display());
    }
    Ok(path)
}

pub fn remove_netns(name: &str) {
    let path = netns_path(name);
    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&path);
}

// -------------------------------------------------------------------------------------------
// The runtime's CNI calls

/// The node's network config as libcni picks it: the first `.conf`/`.conflist`/`.json` by name.
pub fn first_network_config() -> Result<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(NET_D)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json")))
        .collect();
    files.sort();
    let first = files.into_iter().next().context("no network config in /etc/cni/net.d")?;
    let bytes = std::fs::read(&first)?;
    Ok((first, bytes))
}

fn run_cni(
    plugin: &Path,
    command: &str,
    pod: &PodRef,
    netns: &Path,
    ifname: &str,
    args: &str,
    stdin: &[u8],
) -> Result<(bool, String, String)> {
    let netns = netns.to_string_lossy();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", pod.container_id.as_str()),
        ("CNI_NETNS", netns.as_ref()),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
    ];
    exec_plugin(plugin, &env, stdin)
}

/// One plugin execution as libcni makes it: only the CNI variables, the config on stdin.
fn exec_plugin(plugin: &Path, env: &[(&str, &str)], stdin: &[u8]) -> Result<(bool, String, String)> {
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().copied())
        .env("CNI_PATH", CNI_BIN)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", plugin.display()))?;
    child.stdin.take().context("stdin")?.write_all(stdin)?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn shim(command: &str, pod: &PodRef, netns: &Path) -> Result<(bool, String, String)> {
    let (_, config) = first_network_config()?;
    let conf: Value = serde_json::from_slice(&config).context("the node's network config is not JSON")?;
    let plugin_type = conf["type"].as_str().context("the node's network config has no type")?;
    run_cni(&Path::new(CNI_BIN).join(plugin_type), command, pod, netns, "eth0", &pod.cni_args(), &config)
}

fn cni_error(stdout: &str, stderr: &str) -> String {
    serde_json::from_str::<Value>(stdout)
        .ok()
        .and_then(|v| {
            let msg = v["msg"].as_str()?.to_string();
            Some(match v["details"].as_str() {
                Some(d) if !d.is_empty() => format!("{msg}: {d}"),
                _ => msg,
            })
        })
        .unwrap_or_else(|| format!("{} {}", stdout.trim(), stderr.trim()).trim().to_string())
}

/// ADD as containerd does it: a new namespace, the network config's plugin; on failure a DEL
/// and the namespace removed, so a failed sandbox leaves nothing.
pub fn add(pod: &PodRef) -> CallOutcome {
    let start = Instant::now();
    let netns = match create_netns(&pod.netns_name()) {
        Ok(p) => p,
        Err(e) => return CallOutcome { ok: false, millis: 0, error: Some(format!("{e:#}")), cleanup_ok: None },
    };
    match shim("ADD", pod, &netns) {
        Ok((true, _, _)) => CallOutcome { ok: true, millis: elapsed(start), error: None, cleanup_ok: None },
        other => {
            let millis = elapsed(start);
            let error = match other {
                Ok((_, out, err)) => cni_error(&out, &err),
                Err(e) => format!("{e:#}"),
            };
            let cleanup_ok = matches!(shim("DEL", pod, &netns), Ok((true, _, _)));
            remove_netns(&pod.netns_name());
            CallOutcome { ok: false, millis, error: Some(error), cleanup_ok: Some(cleanup_ok) }
        }
    }
}

/// DEL, then the namespace removed (the runtime removes it even when DEL fails, and retries DEL).
pub fn del(pod: &PodRef) -> CallOutcome {
    let start = Instant::now();
    let netns = netns_path(&pod.netns_name());
    let outcome = match shim("DEL", pod, &netns) {
        Ok((true, _, _)) => CallOutcome { ok: true, millis: elapsed(start), error: None, cleanup_ok: None },
        Ok((_, out, err)) => {
            CallOutcome { ok: false, millis: elapsed(start), error: Some(cni_error(&out, &err)), cleanup_ok: None }
        }
        Err(e) => CallOutcome { ok: false, millis: elapsed(start), error: Some(format!("{e:#}")), cleanup_ok: None },
    };
    remove_netns(&pod.netns_name());
    outcome
}

fn elapsed(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The runtime's GC (CNI 1.1.0, as containerd 2 sends it when it starts): every attachment not
/// in `valid` (container IDs, interface eth0) is to be removed.
pub fn gc(valid: &[String]) -> CallOutcome {
    let start = Instant::now();
    let run = || -> Result<(bool, String, String)> {
        let (_, config) = first_network_config()?;
        let mut conf: Value = serde_json::from_slice(&config)?;
        let plugin = Path::new(CNI_BIN).join(conf["type"].as_str().context("no type")?);
        conf["cni.dev/valid-attachments"] =
            valid.iter().map(|id| json!({"containerID": id, "ifname": "eth0"})).collect::<Vec<_>>().into();
        exec_plugin(&plugin, &[("CNI_COMMAND", "GC")], &serde_json::to_vec(&conf)?)
    };
    match run() {
        Ok((true, _, _)) => CallOutcome { ok: true, millis: elapsed(start), error: None, cleanup_ok: None },
        Ok((_, out, err)) => {
            CallOutcome { ok: false, millis: elapsed(start), error: Some(cni_error(&out, &err)), cleanup_ok: None }
        }
        Err(e) => CallOutcome { ok: false, millis: elapsed(start), error: Some(format!("{e:#}")), cleanup_ok: None },
    }
}

/// The daemon's log lines since it last started that say it removed an attachment: the orphan
/// reconciler's passes and GC's deletions.
pub fn reclaim_log() -> Value {
    let log = std::fs::read_to_string(LOG).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let since = lines.iter().rposition(|l| l.contains("listening on")).unwrap_or(0);
    let pick = |needle: &str| -> Vec<&str> { lines[since..].iter().copied().filter(|l| l.contains(needle)).collect() };
    json!({"reconciler": pick("orphan reconcile pass"), "gc": pick("GC: deleted")})
}

/// The `00-multus.conf` the Go daemon leaves (the old daemon finds it at its first start).
pub fn seed_go_config() -> Result<()> {
    std::fs::write(plan::multus_conf_path(), plan::go_multus_conf())?;
    Ok(())
}

/// What the Go thick plugin leaves for a pod it attached: the delegates run (cluster network on
/// eth0, the NAD on net1), libcni's result caches, and Go's delegate cache.
pub fn seed_go(pod: &PodRef) -> Result<()> {
    let netns = create_netns(&pod.netns_name())?;
    let cluster = std::fs::read(plan::cluster_network_path())?;
    let delegates = [
        GoDelegate { conf_bytes: cluster, entry_name: plan::CLUSTER_NETWORK.into(), ifname: "eth0".into() },
        GoDelegate {
            conf_bytes: plan::nad_config().to_string().into_bytes(),
            entry_name: format!("{}/{}", plan::NAMESPACE, plan::NAD),
            ifname: "net1".into(),
        },
    ];
    let results_dir = Path::new(CNI_DIR).join("results");
    std::fs::create_dir_all(&results_dir)?;
    for d in &delegates {
        let conf: Value = serde_json::from_slice(&d.conf_bytes)?;
        let plugin = Path::new(CNI_BIN).join(conf["type"].as_str().unwrap_or_default());
        let (ok, out, err) =
            run_cni(&plugin, "ADD", pod, &netns, &d.ifname, &gocache::go_cni_args_env(pod), &d.conf_bytes)?;
        if !ok {
            bail!("seeding {}: {} ADD failed: {}", pod.name, plugin.display(), cni_error(&out, &err));
        }
        let result: Value = serde_json::from_str(&out).context("the plugin's result")?;
        std::fs::write(
            results_dir.join(gocache::result_cache_name(d, pod)),
            gocache::result_cache(d, pod, &netns.to_string_lossy(), &result),
        )?;
    }
    std::fs::write(Path::new(CNI_DIR).join(&pod.container_id), gocache::delegate_cache(&delegates))?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// The DaemonSet's containers

fn pid_file() -> PathBuf {
    Path::new(STATE_DIR).join("daemon.pid")
}

fn generation_file() -> PathBuf {
    Path::new(STATE_DIR).join("generation")
}

/// The init container: `install_multus -d /opt/cni/bin -t thick`, as the Go manifest runs it.
pub fn install() -> Result<String> {
    let out = Command::new(Path::new(BIN_DIR).join("install_multus"))
        .args(["-d", CNI_BIN, "-t", "thick"])
        .output()
        .context("running install_multus")?;
    if !out.status.success() {
        bail!("install_multus failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn daemon_pid() -> Option<i32> {
    std::fs::read_to_string(pid_file()).ok()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie is dead: PID 1 reaps it soon.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn ready() -> bool {
    multus_api::client::post(
        &Path::new(SOCKET_DIR).join("multus.sock"),
        "/readyz",
        b"null",
        Some(Duration::from_secs(2)),
    )
    .map(|r| r.status == 200)
    .unwrap_or(false)
}

/// The daemon container: `multus-daemon -config …`, detached (PID 1 becomes its parent when this
/// command exits); returns once it answers `/readyz`.
pub fn daemon_start(generation: Generation, node: &str) -> Result<Value> {
    if let Some(pid) = daemon_pid().filter(|p| alive(*p)) {
        bail!("the daemon already runs (pid {pid})");
    }
    std::fs::create_dir_all(STATE_DIR)?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(STDERR_LOG)?;
    let start = Instant::now();
    let child = Command::new(Path::new(BIN_DIR).join("multus-daemon"))
        .args(["-config", &plan::daemon_config_path(generation), "-kubeconfig", KUBECONFIG])
        .env("MULTUS_NODE_NAME", node)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting multus-daemon")?;
    let pid = child.id();
    std::fs::write(pid_file(), pid.to_string())?;
    std::fs::write(generation_file(), generation.as_str())?;
    let deadline = start + Duration::from_secs(90);
    while !ready() {
        if !alive(pid as i32) {
            bail!("multus-daemon exited before it was ready (see {LOG} and {STDERR_LOG})");
        }
        if Instant::now() > deadline {
            bail!("multus-daemon not ready after 90 s (see {LOG})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(json!({"pid": pid, "generation": generation.as_str(), "readyMillis": elapsed(start)}))
}

/// SIGTERM the daemon and wait for it to end (the manifest's grace period is 30 s; then SIGKILL,
/// as the kubelet does).
pub fn daemon_stop() -> Result<Value> {
    let Some(pid) = daemon_pid().filter(|p| alive(*p)) else {
        return Ok(json!({"stopped": false}));
    };
    let start = Instant::now();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    let mut killed = false;
    while alive(pid) {
        if start.elapsed() > Duration::from_secs(30) && !killed {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(pid_file());
    Ok(json!({"stopped": true, "pid": pid, "millis": elapsed(start), "killed": killed}))
}

/// PID 1 of a node: reap every orphan (the daemon's parent exits right after starting it) and,
/// on SIGTERM, stop the daemon before leaving.
pub fn init() -> ! {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(s);
    }
    let _ = set.thread_block();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if matches!(status, nix::sys::wait::WaitStatus::StillAlive) {
                        break;
                    }
                }
            }
            Ok(_) => {
                let _ = daemon_stop();
                std::process::exit(0);
            }
        }
    }
}

/// What the node holds: leases, caches, namespaces, the daemon.
pub fn state() -> Value {
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let mut leases = Vec::new();
    if let Ok(nets) = std::fs::read_dir(LEASES) {
        for net in nets.flatten() {
            for f in names(&net.path()) {
                if f != "lock" && !f.starts_with("last_reserved_ip") {
                    let holder = std::fs::read_to_string(net.path().join(&f)).unwrap_or_default();
                    let holder = holder.lines().next().unwrap_or_default().to_string();
                    leases.push(json!({"network": net.file_name().to_string_lossy(), "ip": f, "containerId": holder}));
                }
            }
        }
    }
    let caches: Vec<String> = names(Path::new(CNI_DIR)).into_iter().filter(|n| !n.starts_with('.')).collect();
    json!({
        "leases": leases,
        "caches": caches,
        "results": names(&Path::new(CNI_DIR).join("results")),
        "netns": names(Path::new(NETNS_DIR)),
        "daemon": {
            "pid": daemon_pid().filter(|p| alive(*p)),
            "generation": std::fs::read_to_string(generation_file()).ok(),
            "ready": ready(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cni_error_is_read_from_the_result_or_the_streams() {
        assert_eq!(cni_error(r#"{"code":7,"msg":"boom","details":"why"}"#, ""), "boom: why");
        assert_eq!(cni_error(r#"{"code":7,"msg":"boom"}"#, "x"), "boom");
        assert_eq!(cni_error("garbage", "stderr text"), "garbage stderr text");
    }

    #[test]
    fn a_missing_process_is_not_alive() {
        assert!(!alive(i32::MAX));
        assert!(alive(std::process::id() as i32));
    }
}
