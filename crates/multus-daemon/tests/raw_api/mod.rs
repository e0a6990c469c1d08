//! What the API-server fault tests share (`bounded_responses.rs`, `api_faults.rs`): the daemon
//! started against a given API server, a request reader for the raw servers that send what
//! wiremock cannot (endless or cut bodies), and the daemon's memory read from /proc.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Reads one request head (and its body, up to 1 MiB): (method, target).
pub fn read_head(stream: &TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    let _ = reader.read_exact(&mut body);
    Some((method, target))
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:`, `RssAnon:`); 0 when the process is gone.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The real daemon in a temporary node directory (`net.d` with a bridge primary network,
/// `cni`, `run`, ...) talking to the API server at `server` (an `http://` URL) with a token,
/// its log at `daemon.log`. The directory lives as long as the returned `TempDir`.
pub fn start_daemon(server: &str, log_level: &str) -> (tempfile::TempDir, test_node::DaemonProcess) {
    let dir = tempfile::tempdir().unwrap();
    for d in ["net.d", "multus.d", "cni", "run", "bin"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let p = |rel: &str| dir.path().join(rel).to_string_lossy().into_owned();
    std::fs::write(
        dir.path().join("net.d/10-primary.conf"),
        r#"{"cniVersion":"1.0.0","name":"primary","type":"bridge"}"#,
    )
    .unwrap();
    let config = serde_json::json!({"cniVersion": "1.0.0", "logLevel": log_level, "logToStderr": true,
        "binDir": p("bin"), "cniDir": p("cni"), "confDir": p("multus.d"), "cniConfigDir": p("net.d"),
        "multusAutoconfigDir": p("net.d"), "multusConfigFile": "auto", "socketDir": p("run"), "daemonSocketDir": p("run")});
    std::fs::write(dir.path().join("daemon-config.json"), config.to_string()).unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: api\n  cluster:\n    server: {server}\ncontexts:\n- name: api\n  context:\n    cluster: api\n    user: api\ncurrent-context: api\nusers:\n- name: api\n  user:\n    token: t\n"
    );
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
    let mut command = test_node::DaemonProcess::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_multus-daemon")),
        &dir.path().join("daemon-config.json"),
    );
    command.arg("-kubeconfig").arg(dir.path().join("kubeconfig")).env("MULTUS_NODE_NAME", "node1");
    let process =
        test_node::DaemonProcess::spawn(command, &dir.path().join("daemon.log")).expect("start multus-daemon");
    (dir, process)
}
