//! `enablePprof` on a real daemon process: `/debug/pprof/profile?seconds=1` while the daemon is
//! kept busy (scrapes of `/metrics` from two threads) is a gzipped `perftools.profiles.Profile`
//! (what `go tool pprof` reads) with CPU samples; heap profiles are a 501 that names what
//! exists; without `enablePprof` none of it is served.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pprof::protos::Message as _;
use test_node::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Status line and headers (as text), and the body (bytes).
fn get(port: u16, path: &str) -> Option<(String, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((String::from_utf8_lossy(&out[..split]).into_owned(), out[split + 4..].to_vec()))
}

fn node(port: u16, pprof: bool) -> Node {
    NodeBuilder::default()
        .fake_delegates(&["fake-cni"])
        .primary_with("10-fake.conf", |node| {
            serde_json::json!({"cniVersion": "1.0.0", "name": "fake-net", "type": "fake-cni",
                "fake": {"recordDir": node.path("calls").to_string_lossy()}})
        })
        .config("metricsPort", serde_json::json!(port))
        .config("enablePprof", serde_json::json!(pprof))
        .started()
        .build()
}

fn wait_for_metrics(port: u16, node: &Node) {
    for _ in 0..200 {
        if get(port, "/metrics").is_some_and(|(head, _)| head.starts_with("HTTP/1.1 200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no metrics on :{port}\n{}", node.daemon_log());
}

#[test]
fn the_daemon_serves_a_cpu_profile_that_pprof_reads() {
    if !require(missing_bins()) {
        return;
    }
    let port = free_port();
    let thick = node(port, true);
    wait_for_metrics(port, &thick);

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = get(port, "/metrics");
                }
            })
        })
        .collect();
    let profiled = get(port, "/debug/pprof/profile?seconds=1");
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let (head, body) = profiled.unwrap_or_else(|| panic!("no answer\n{}", thick.daemon_log()));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{}", String::from_utf8_lossy(&body));
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/octet-stream"), "{head}");
    assert!(lower.contains("content-disposition: attachment; filename=\"profile\""), "{head}");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut raw).expect("the body is gzipped");
    let profile = pprof::protos::Profile::parse_from_bytes(&raw).expect("a perftools.profiles.Profile");
    let string = |i: i64| profile.string_table[usize::try_from(i).unwrap()].clone();
    let types: Vec<String> = profile.sample_type.iter().map(|t| string(t.ty)).collect();
    assert_eq!(types, ["samples", "cpu"]);
    let samples: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(samples > 0, "no CPU samples of a daemon answering scrapes for a second");

    let (head, body) = get(port, "/debug/pprof/heap").unwrap();
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("/debug/state"));
}

#[test]
fn without_enable_pprof_nothing_is_profiled() {
    if !require(missing_bins()) {
        return;
    }
    let port = free_port();
    let thick = node(port, false);
    wait_for_metrics(port, &thick);
    for path in ["/debug/pprof/profile?seconds=1", "/debug/pprof/", "/debug/state"] {
        let (head, _) = get(port, path).unwrap();
        assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head}");
    }
}
