//! `cargo xtask e2e --local --container`: the e2e cases with the daemon running as a container
//! of the project's image, with the DaemonSet's mounts (privileged, host network and PID), and
//! the shim installed on the "host" by the image's init-container command. The API server is
//! kube-mock over TLS, reached in-cluster style (service-account files and
//! `KUBERNETES_SERVICE_HOST/PORT`), as in a real pod.
//!
//! The "host" directories are under the run directory, so nothing on this machine's
//! /etc/cni or /opt/cni is touched; only /run/netns is the real one.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::Path;

use crate::e2e::{E2eArgs, NAMESPACE, Tally, finish, run_local_cases};
use crate::fixtures;
use crate::harness::{Bins, LocalEnv, PLUGINS, SYSTEM_CNI_DIR, step};
use crate::image::{self, IMAGE_BIN_DIR};
use crate::manifests;
use crate::util::{Cmd, defer};

/// Host directory (under the run dir) → container path, as in deployments/30-daemonset.yml.
pub const MOUNTS: [(&str, &str); 6] = [
    ("etc/cni/net.d", "/host/etc/cni/net.d"),
    ("opt/cni/bin", "/opt/cni/bin"),
    ("run", "/host/run"),
    ("var/lib/cni", "/var/lib/cni"),
    ("etc/cni/multus/net.d", "/etc/cni/multus/net.d"),
    ("multus.d", "/etc/cni/net.d/multus.d"),
];
/// Host libraries, read-only: Debian's delegate plugins are dynamically linked and the image is
/// `FROM scratch` (see the DaemonSet's `host-lib*` volumes).
pub const HOST_LIBS: [&str; 3] = ["/lib", "/lib64", "/usr/lib"];
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

/// The daemon config of deployments/20-configmap.yml, with what a run on this machine needs:
/// cniVersion 1.0.0 (CHECK) and the host-side socket dir for the shim.
pub fn daemon_config(socket_dir_host: &Path) -> Result<Value> {
    let docs = manifests::load()?;
    let cm = docs
        .iter()
        .find(|(_, d)| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "multus-daemon-config")
        .context("no multus-daemon-config ConfigMap in deployments/")?;
    let mut conf: Value =
        serde_json::from_str(cm.1["data"]["daemon-config.json"].as_str().context("no daemon-config.json")?)?;
    conf["cniVersion"] = "1.0.0".into();
    conf["daemonSocketDir"] = format!("{}/", socket_dir_host.display()).into();
    Ok(conf)
}

/// `docker run` of the daemon container.
pub fn daemon_run_cmd(name: &str, host_root: &Path, sa_dir: &Path, api_port: u16, tag: &str, privileged: bool) -> Cmd {
    let mut c = Cmd::new("docker").args(["run", "-d", "--name", name]);
    c = if privileged { c.arg("--privileged") } else { c.args(UNPRIVILEGED_EQUIVALENT) };
    c = c.args(["--network", "host", "--pid", "host"]);
    c = c.args(["-e", "MULTUS_NODE_NAME=node1", "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1"]);
    c = c.arg("-e").arg(format!("KUBERNETES_SERVICE_PORT={api_port}"));
    for (host, container) in MOUNTS {
        let ro = if container.ends_with("multus.d") { ":ro" } else { "" };
        c = c.arg("-v").arg(format!("{}:{container}{ro}", host_root.join(host).display()));
    }
    c = c.args(["--mount", "type=bind,source=/run/netns,target=/run/netns,bind-propagation=rslave"]);
    for lib in HOST_LIBS {
        c = c.arg("-v").arg(format!("{lib}:{lib}:ro"));
    }
    c = c.arg("-v").arg(format!("{}:{SERVICE_ACCOUNT_DIR}:ro", sa_dir.display()));
    c.arg(tag).args(["-config", "/etc/cni/net.d/multus.d/daemon-config.json"])
}

/// The init container's command: install multus-shim into the host's bin dir.
pub fn install_cmd(host_bin: &Path, tag: &str) -> Cmd {
    Cmd::new("docker")
        .args(["run", "--rm", "-v"])
        .arg(format!("{}:/host/opt/cni/bin", host_bin.display()))
        .arg("--entrypoint")
        .arg(format!("{IMAGE_BIN_DIR}/multus-install"))
        .arg(tag)
        .args(["install", "--dest", "/host/opt/cni/bin"])
}

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

pub fn run(args: &E2eArgs) -> Result<()> {
    let tag = image::DEFAULT_TAG;
    if !args.no_build {
        step("building (release) and the image");
        Bins::build_cmd().run()?;
        image::run(image::ImageArgs { tag: tag.into(), profile: "release-small".into(), dry_run: false })?;
    }
    if !Cmd::new("docker").args(["image", "inspect", tag]).run_quiet() {
        bail!("image {tag} does not exist: run `cargo xtask image` first");
    }
    let fixture = fixtures::fixtures_dir().join("e2e");
    let mut env = LocalEnv::new("e2e", &fixture, NAMESPACE, true)?;
    let host = env.run.join("host");
    for (h, _) in MOUNTS {
        std::fs::create_dir_all(host.join(h))?;
    }
    std::fs::create_dir_all("/run/netns")?;
    for p in PLUGINS {
        std::fs::copy(Path::new(SYSTEM_CNI_DIR).join(p), host.join("opt/cni/bin").join(p))?;
    }
    // The daemon's view of the paths the fixtures name.
    env.vars.insert("BIN_DIR".into(), "/opt/cni/bin".into());
    env.vars.insert("IPAM_DIR".into(), "/var/lib/cni/networks".into());
    env.conf_dir_host = host.join("etc/cni/net.d");
    env.socket_path = host.join("run/multus/multus.sock");
    env.cni_dir_host = host.join("var/lib/cni/multus");
    env.ipam_dir_host = host.join("var/lib/cni/networks");
    let conf = daemon_config(&host.join("run/multus"))?;
    std::fs::write(host.join("multus.d/daemon-config.json"), serde_json::to_vec_pretty(&conf)?)?;
    step(format!("run directory {} (host dirs under host/)", env.run.display()));

    step("init container: multus-install install --dest /host/opt/cni/bin");
    let out = install_cmd(&host.join("opt/cni/bin"), tag).output()?;
    print!("    {out}");
    env.bins.shim = host.join("opt/cni/bin/multus-shim");

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
    let base = format!("multus-e2e-{}", std::process::id());
    let log = env.daemon_log();
    let mut starts = 0u32;
    let current: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let mut tally = Tally { failures: Vec::new() };
    let cur_start = current.clone();
    let cur_stop = current.clone();
    let host_start = host.clone();
    let sa_start = sa.clone();
    run_local_cases(
        &mut env,
        args,
        &mut tally,
        &mut |env| {
            starts += 1;
            let name = format!("{base}-{starts}");
            let cmd = daemon_run_cmd(&name, &host_start, &sa_start, port, tag, privileged);
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
            let n2 = name.clone();
            env.wait_daemon(&|| container_running(&name), &|| {
                let state = Cmd::new("docker")
                    .args([
                        "inspect",
                        "-f",
                        "status={{.State.Status}} exit={{.State.ExitCode}} error={{.State.Error}}",
                        &n2,
                    ])
                    .output()
                    .unwrap_or_default();
                let logs = std::process::Command::new("docker")
                    .args(["logs", "--tail", "20", &n2])
                    .output()
                    .map(|o| format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
                    .unwrap_or_default();
                format!("{}{logs}", state)
            })
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
mod tests {
    use super::*;

    #[test]
    fn container_mirrors_the_daemonset() {
        let docs = manifests::load().unwrap();
        let ds = &docs.iter().find(|(_, d)| d["kind"] == "DaemonSet").unwrap().1;
        let mounts: Vec<String> = ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
            .collect();
        let c = daemon_run_cmd("n", Path::new("/r"), Path::new("/sa"), 6443, "multus-rs:dev", true).to_string();
        for (_, container) in MOUNTS {
            assert!(mounts.iter().any(|m| m == container), "{container} is not a DaemonSet mount");
            assert!(c.contains(&format!(":{container}")), "{c}");
        }
        for lib in HOST_LIBS {
            assert!(mounts.iter().any(|m| m == lib), "{lib} is not a DaemonSet mount");
        }
        assert!(c.contains("--privileged --network host --pid host"));
        assert!(c.contains("target=/run/netns,bind-propagation=rslave"));
        assert!(c.ends_with("multus-rs:dev -config /etc/cni/net.d/multus.d/daemon-config.json"));
    }

    #[test]
    fn config_comes_from_the_configmap() {
        let c = daemon_config(Path::new("/r/host/run/multus")).unwrap();
        assert_eq!(c["socketDir"], "/host/run/multus/");
        assert_eq!(c["daemonSocketDir"], "/r/host/run/multus/");
        assert_eq!(
            install_cmd(Path::new("/b"), "t").to_string(),
            "docker run --rm -v /b:/host/opt/cni/bin --entrypoint /usr/src/multus-cni/bin/multus-install t install --dest /host/opt/cni/bin"
        );
    }
}
