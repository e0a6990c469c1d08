//! The daemon binary's logs and version: no escape sequences in the log file or in piped
//! stderr, `logFormat: "json"`, a log file that cannot be opened, `-version` with a commit.

use std::path::Path;
use std::process::{Command, Output};

fn daemon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_multus-daemon"));
    c.env_remove("KUBECONFIG").env_remove("KUBERNETES_SERVICE_HOST").env_remove("KUBERNETES_SERVICE_PORT");
    c.env_remove("RUST_LOG").env_remove("NO_COLOR").env("TERM", "xterm-256color");
    c
}

/// Runs the daemon with `config` until it stops at the kube client (no API server: exit 3),
/// after it has logged its start-up.
fn run_until_the_kube_client(dir: &Path, config: serde_json::Value) -> Output {
    let path = dir.join("daemon-config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = daemon()
        .arg("-config")
        .arg(&path)
        // A flag the daemon logs (a warning) before it builds its client.
        .args(["-cni-bin-dir=/host/opt/cni/bin", "-kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn the_log_file_and_piped_stderr_carry_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log/multus.log");
    let out = run_until_the_kube_client(
        dir.path(),
        serde_json::json!({
            "logToStderr": true, "logLevel": "debug", "logFile": log.display().to_string(),
            "socketDir": dir.path().join("run").display().to_string(),
        }),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = std::fs::read_to_string(&log).unwrap();
    for (sink, text) in [("stderr", &*stderr), ("logFile", &*file)] {
        assert!(text.contains("[error] warning: flag -cni-bin-dir has no effect"), "{sink}:\n{text}");
        assert!(!text.contains('\x1b'), "escape sequences in {sink}: {text:?}");
    }
    // Go's line shape with sub-second time stamps.
    let first = file.lines().next().unwrap();
    let (time, _) = first.split_once(" [").unwrap();
    assert!(time.ends_with('Z') && time.contains('.'), "{first}");
}

#[test]
fn json_log_lines_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_until_the_kube_client(
        dir.path(),
        serde_json::json!({
            "logToStderr": true, "logLevel": "verbose", "logFormat": "json",
            "socketDir": dir.path().join("run").display().to_string(),
        }),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        // The daemon's last words also go to stderr unformatted (`multus-daemon: <why>`).
        .filter(|l| !l.starts_with("multus-daemon: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "warning" && l["msg"].as_str().unwrap().contains("-cni-bin-dir")));
    assert!(lines.iter().all(|l| l["time"].is_string() && l["target"].is_string()), "{stderr}");
}

#[test]
fn a_log_file_that_cannot_be_opened_falls_back_to_stderr_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let out = run_until_the_kube_client(
        dir.path(),
        serde_json::json!({
            "logToStderr": false, "logLevel": "verbose",
            "logFile": blocker.join("multus.log").display().to_string(),
            "socketDir": dir.path().join("run").display().to_string(),
        }),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot open the log file {}/multus.log: ", blocker.display())), "{stderr}");
    assert!(stderr.contains("logging to stderr instead"), "{stderr}");
    assert!(stderr.contains("flag -cni-bin-dir has no effect"), "later lines still logged:\n{stderr}");
}

#[test]
fn version_names_the_commit_and_build_date() {
    for flag in ["-version", "--version"] {
        let out = daemon().arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let rest = line.strip_prefix("multus-daemon: version:").unwrap_or_else(|| panic!("{line}"));
        let (_, stamp) = rest.split_once("(multus-rs), commit:").unwrap_or_else(|| panic!("{line}"));
        let (commit, date) = stamp.split_once(", date:").unwrap_or_else(|| panic!("{line}"));
        let in_git = Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
            .output()
            .is_ok_and(|o| o.status.success());
        if in_git {
            assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
        }
        assert!(date.len() == "2026-07-27T21:58:38Z".len() && date.ends_with('Z'), "{line}");
    }
}
