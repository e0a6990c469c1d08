//! Per-invocation cost of running a plugin through `RawExec`: how much the containment of each
//! invocation (a cgroup created, joined, checked and removed) adds to a bare plugin run.
//!
//! `cargo run --release -p cni --example exec_overhead -- [ITERATIONS] [MECHANISM]`
//! (`v2`, `v1`, `pg`; default: the best available). It measures, it does not assert:
//! - the cgroup file-system operations alone (mkdir, open `cgroup.procs`, read
//!   `cgroup.events`, rmdir), without a process;
//! - `/bin/true` run as a plugin (the smallest possible plugin: the overhead at its largest);
//! - Debian's host-local ADD+DEL, and bridge (which execs host-local) ADD+DEL in a network
//!   namespace, when installed and run as root: what a real delegate costs.
//!
//! The blocks between `new-api` begin/end markers are the only code that needs this version
//! of the crate: with them deleted (a `sed` range), the same program builds against an earlier
//! version, for the baseline.

use cni::exec::{PluginRequest, RawExec};
use std::path::Path;
use std::time::{Duration, Instant};

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let n = d.len().max(1);
    let mean = d.iter().sum::<Duration>() / n as u32;
    let pct = |p: usize| d.get((d.len() * p / 100).min(d.len().saturating_sub(1))).copied().unwrap_or_default();
    format!("median {:>9.1?}  mean {:>9.1?}  p90 {:>9.1?}  (n={})", pct(50), mean, pct(90), d.len())
}

fn env(cmd: &str, id: &str, netns: &str) -> Vec<(String, String)> {
    vec![
        ("CNI_COMMAND".into(), cmd.into()),
        ("CNI_CONTAINERID".into(), id.into()),
        ("CNI_NETNS".into(), netns.into()),
        ("CNI_IFNAME".into(), "eth0".into()),
        ("CNI_PATH".into(), "/usr/lib/cni".into()),
    ]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mechanism = args.next();
    let _ = &mechanism;
    let exec = RawExec::with_timeout(Duration::from_secs(60));
    // new-api begin
    let exec = exec.with_scope(&format!("bench-{}", std::process::id()));
    let exec = match mechanism.as_deref() {
        Some("v1") => exec.with_containment(cni::exec::Containment::CgroupV1Freezer),
        Some("pg") => exec.with_containment(cni::exec::Containment::ProcessGroup),
        _ => exec,
    };
    println!("containment: {}", exec.containment());
    // new-api end
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // new-api begin
    if let Some(dir) = exec.scope_dir() {
        let mut ops = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let t = Instant::now();
            let d = dir.join(format!("bench-op-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let procs = std::fs::OpenOptions::new().write(true).open(d.join("cgroup.procs")).unwrap();
            let _ = std::fs::read_to_string(d.join("cgroup.events"));
            drop(procs);
            std::fs::remove_dir(&d).unwrap();
            ops.push(t.elapsed());
        }
        println!("cgroup ops alone (mkdir+open+events+rmdir): {}", stats(ops));
    }
    // new-api end
    // `EXEC_OVERHEAD_ONLY=true|host-local|bridge`: one measurement only.
    let only = std::env::var("EXEC_OVERHEAD_ONLY").ok();
    let want = |what: &str| only.as_deref().is_none_or(|o| o == what);
    let t = Path::new("/bin/true");
    for _ in 0..20 {
        rt.block_on(exec.run(PluginRequest::new(t, env("ADD", "warm", ""), b"{}"))).unwrap();
    }
    if want("true") {
        let mut runs = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let s = Instant::now();
            rt.block_on(exec.run(PluginRequest::new(t, env("ADD", "x", ""), b"{}"))).unwrap();
            runs.push(s.elapsed());
        }
        println!("/bin/true as a plugin:                       {}", stats(runs));
    }

    let host_local = Path::new("/usr/lib/cni/host-local");
    if host_local.exists() && want("host-local") {
        let data = tempfile::tempdir().unwrap();
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": format!("bench-hl-{}", std::process::id()),
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.213.0.0/16"}]], "dataDir": data.path()}
        })
        .to_string();
        let n = iterations.min(300);
        let mut runs = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("c{i}");
            let s = Instant::now();
            rt.block_on(exec.run(PluginRequest::new(host_local, env("ADD", &id, "/x"), conf.as_bytes()))).unwrap();
            rt.block_on(exec.run(PluginRequest::new(host_local, env("DEL", &id, "/x"), conf.as_bytes()))).unwrap();
            runs.push(s.elapsed());
        }
        println!("host-local ADD+DEL:                          {}", stats(runs));
    }

    let bridge = Path::new("/usr/lib/cni/bridge");
    let root = nix::unistd::geteuid().is_root();
    if bridge.exists() && host_local.exists() && root && want("bridge") {
        let ns = format!("bench-{}", std::process::id());
        let ok = std::process::Command::new("ip").args(["netns", "add", &ns]).status().is_ok_and(|s| s.success());
        if ok {
            let data = tempfile::tempdir().unwrap();
            let br = format!("bb{}", std::process::id() % 100000);
            let conf = serde_json::json!({
                "cniVersion": "1.0.0", "name": format!("bench-br-{}", std::process::id()), "type": "bridge",
                "bridge": br, "isGateway": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.214.0.0/16"}]], "dataDir": data.path()}
            })
            .to_string();
            let netns = format!("/var/run/netns/{ns}");
            let n = iterations.min(200);
            let mut runs = Vec::with_capacity(n);
            for i in 0..n {
                let id = format!("b{i}");
                let s = Instant::now();
                rt.block_on(exec.run(PluginRequest::new(bridge, env("ADD", &id, &netns), conf.as_bytes()))).unwrap();
                rt.block_on(exec.run(PluginRequest::new(bridge, env("DEL", &id, &netns), conf.as_bytes()))).unwrap();
                runs.push(s.elapsed());
            }
            println!("bridge(+host-local) ADD+DEL in a netns:      {}", stats(runs));
            let _ = std::process::Command::new("ip").args(["netns", "del", &ns]).status();
            let _ = std::process::Command::new("ip").args(["link", "del", &br]).status();
        }
    }
    // new-api begin
    exec.reap_leftovers();
    // new-api end
}
