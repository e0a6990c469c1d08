//! Restart or uninstall (issue: safe to install, upgrade and remove): a stopped daemon keeps
//! `00-multus.conf` when it is expected back, and removes it when Multus is being removed from
//! the cluster (its API rights are gone), after which the node's runtime uses the primary
//! configuration directly. No root needed: fake-cni is the primary and records its calls.

mod support;

use serde_json::json;
use support::*;

/// What a CRI runtime does: the first config of the directory (libcni's order: by name,
/// extensions .conf, .conflist, .json).
fn runtime_config(thick: &Thick) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(thick.path("net.d"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json")))
        .collect();
    files.sort();
    files.into_iter().next().expect("a CNI config")
}

fn start() -> Thick {
    require(missing_bins());
    let mut thick = Thick::new(vec![]);
    thick.install_plugins(&[], &["fake-cni"]);
    let primary = json!({"cniVersion": "1.0.0", "name": "primary-net", "type": "fake-cni",
        "fake": {"recordDir": thick.path("calls").to_string_lossy()}});
    thick.write_primary("10-primary.conf", &primary);
    thick.start_daemon();
    thick
}

#[test]
fn a_restart_keeps_the_config_and_an_uninstall_removes_it() {
    let mut thick = start();
    assert!(thick.multus_conf().exists());

    // Restart (rolling update, crash): the API server still knows the daemon.
    thick.stop_daemon();
    assert!(thick.multus_conf().exists(), "a restart keeps 00-multus.conf:\n{}", thick.daemon_log());
    assert!(thick.daemon_log().contains("keeping 00-multus.conf"), "{}", thick.daemon_log());

    // Uninstall: the ServiceAccount's rights are gone (kubectl delete -f removes RBAC first).
    thick.start_daemon();
    thick.mock.set_deny_rules(vec!["*:*".parse().unwrap()]);
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "an uninstall removes 00-multus.conf:\n{}", thick.daemon_log());
    assert!(thick.path("net.d/10-primary.conf").exists(), "the primary stays");

    // The runtime's next ADD goes to the primary directly.
    let chosen = runtime_config(&thick);
    assert_eq!(chosen, thick.path("net.d/10-primary.conf"));
    let stdin = std::fs::read(&chosen).unwrap();
    let out = std::process::Command::new(bin("fake-cni").unwrap())
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "after-uninstall")
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", thick.path("bin"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&stdin)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let calls = fake_cni::read_calls(thick.path("calls"));
    assert_eq!(calls.last().map(|c| (c.command.as_str(), c.name.as_str())), Some(("ADD", "primary-net")));
}

#[test]
fn cleanup_config_on_exit_always_removes_it() {
    let mut thick = start();
    thick.stop_daemon();
    thick.daemon_config["cleanupConfigOnExit"] = json!(true);
    thick.start_daemon();
    thick.stop_daemon();
    assert!(!thick.multus_conf().exists(), "{}", thick.daemon_log());
}
