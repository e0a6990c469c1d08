//! The `/metrics` scrape of a real daemon process is accepted by Prometheus's own checker
//! (`promtool check metrics`, Debian package `prometheus`): the format a real consumer reads.
//! #[ignore]d where promtool is missing; CI installs it and runs this with --include-ignored.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use test_node::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

#[test]
#[ignore = "needs promtool (Debian: prometheus) and the workspace binaries"]
fn promtool_accepts_the_scrape() {
    if !require(missing_bins()) {
        return;
    }
    let promtool = Command::new("promtool").arg("--version").output();
    if !require(promtool.is_err().then(|| "needs promtool (apt-get install prometheus)".to_string())) {
        return;
    }
    let port = free_port();
    let thick = NodeBuilder::default()
        .seed([pod("default", "p", "u-1", None)])
        .fake_delegates(&["fake-cni"])
        .primary_with("10-fake.conf", |node| {
            serde_json::json!({"cniVersion": "1.0.0", "name": "fake-net", "type": "fake-cni",
                "fake": {"recordDir": node.path("calls").to_string_lossy()}})
        })
        .config("metricsPort", serde_json::json!(port))
        .started()
        .build();
    let text = (0..100)
        .find_map(|_| {
            scrape(port).or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        })
        .unwrap_or_else(|| panic!("no scrape on :{port}\n{}", thick.daemon_log()));
    assert!(text.contains("multus_watch_cache_objects"), "{text}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool refused the scrape:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
