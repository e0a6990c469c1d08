//! Thick-plugin benchmark against the physical limit: the delegates' own cost, measured side by
//! side in the same run. Run through `cargo xtask bench` (release binaries, static shim and
//! daemon); it measures, it does not assert.
//!
//! Every multus figure has its bare counterpart from the same run: the same Debian
//! bridge/host-local conflist (the cluster network) and macvlan/host-local NADs the daemon
//! runs, executed directly through the cni runtime (as a libcni runtime would) in real network
//! namespaces, sequentially and at the same concurrency as the multus run.
//!
//! - sequential ADD+DEL and ADD alone, cluster network only and +2 NADs (medians, ratios);
//! - throughput at `--concurrency` (8) ways, both shapes (pods/s, ratio) and CPU per pod by
//!   process (daemon, its plugins, shims, the mock API server, the caller);
//! - storms of 64 and 200 pods at once: errors and the daemon's peak RSS;
//! - daemon idle RSS and its growth over `--cycles` sequential ADD/DEL cycles;
//! - shim exec time and peak RSS;
//! - the fixed per-pod cost broken down: shim process, readiness round trip, socket + parse,
//!   daemon work besides the delegates, the delegates, the status write;
//! - `parallelDelegates`: ADD of pods with +2 and +4 NADs, sequential vs parallel daemon;
//! - memory bounded by design (`--only memory` runs just this): daemon RSS and ready time on a
//!   node of 110 pods whose API server also holds 10,000 NADs of 1 KB in 1,000 namespaces, or 40
//!   NADs of 1 MB (a pod using four of them, then all deleted); the API requests of a pod's ADD and
//!   DEL; RSS after a storm once idle. Every API request but watches costs 2 ms.
//!
//! Arguments: `--bins DIR` (fake-cni), `--shim PATH`, `--daemon PATH`, `--iterations N`
//! (sequential rounds), `--pods N` (throughput pods per side), `--cycles N` (RSS growth),
//! `--concurrency N`, `--storms 64,200`, `--compare-shim PATH` (a second shim against the same
//! daemon, interleaved), `--out FILE` (JSON report; its `table` is what `cargo xtask bench`
//! prints), `--only memory|storms|throughput` (one section, e.g. to compare builds).

mod args;
mod host;
mod measure;
mod memory;
mod node;
mod numbers;
mod report;

use serde_json::Value;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use std::time::Instant;

use args::{Args, parse_args};
use host::{Cleanup, bench_shim_exec, ip, is_root};
use measure::{compare_shims, growth, parallel_delegates, profile, sequential, storm, throughput};
use memory::memory_bounded;
use node::start_node;
use numbers::{proc_status_kib, round, rss_kib};
use report::{f, table};

fn main() {
    let args = parse_args();
    for b in [&args.daemon, &args.shim] {
        if !b.exists() {
            eprintln!("bench: {} not found; build with `cargo xtask bench`", b.display());
            std::process::exit(2);
        }
    }
    let started = Instant::now();
    let mut report = serde_json::Map::new();
    report.insert("binaries".into(), json!({"shim": args.shim, "daemon": args.daemon}));
    eprintln!("bench: shim exec ({})", args.shim.display());
    let shim = bench_shim_exec(&args.shim, 300);
    let shim_exec = f(&shim, "/exec/mean_ms");
    report.insert("shim".into(), shim);
    if !is_root() || !Path::new("/usr/lib/cni/macvlan").exists() {
        report.insert("skipped".into(), json!("needs root and /usr/lib/cni (containernetworking-plugins)"));
        return finish(&args, report, started);
    }
    let cleanup = Cleanup::default();
    let master = format!("mbm{}", std::process::id() % 100_000);
    // The macvlan NADs' master: a veth end (the dummy module may be missing in a container).
    let peer = format!("{master}p");
    assert!(ip(&["link", "add", &master, "type", "veth", "peer", "name", &peer]), "ip link add {master} type veth");
    cleanup.record_link(&master);
    assert!(ip(&["link", "set", &master, "up"]) && ip(&["link", "set", &peer, "up"]));
    let pods_per_shape = args.storms.iter().copied().max().unwrap_or(0).max(args.concurrency).max(1);
    if args.only.as_deref() == Some("memory") {
        report.insert("memory_bounded".into(), memory_bounded(&args, &cleanup, &master));
        return finish(&args, report, started);
    }
    if args.only.as_deref() == Some("storms") {
        let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
        let storms: Vec<Value> = args.storms.iter().map(|&n| storm(&args, &node, &cleanup, n)).collect();
        report.insert("storms".into(), Value::Array(storms));
        return finish(&args, report, started);
    }
    if args.only.as_deref() == Some("throughput") {
        let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
        let mut throughput_report = serde_json::Map::new();
        for (shape, nads) in [("plain", 0), ("nad2", 2)] {
            eprintln!("bench: {}-way throughput, {shape} ({} pods each side)", args.concurrency, args.pods);
            throughput_report.insert(shape.into(), throughput(&args, &node, &cleanup, shape, nads));
        }
        report.insert("throughput".into(), Value::Object(throughput_report));
        return finish(&args, report, started);
    }

    let node = start_node(&args, &cleanup, 0, &master, pods_per_shape, json!({}));
    std::thread::sleep(Duration::from_secs(1));
    report.insert(
        "daemon".into(),
        json!({"ready_ms": round(node.ready_ms), "idle_rss_kib": rss_kib(node.pid), "hwm_after_start_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );

    let mut sequential_report = serde_json::Map::new();
    for (shape, nads) in [("plain", 0), ("nad2", 2)] {
        eprintln!("bench: sequential ADD+DEL, {shape} ({} rounds each side)", args.iterations);
        sequential_report.insert(shape.into(), sequential(&args, &node, &cleanup, shape, nads));
    }
    report.insert("sequential".into(), Value::Object(sequential_report));

    eprintln!("bench: profile of the fixed per-pod cost");
    report.insert("profile".into(), profile(&args, &node, &cleanup, shim_exec));

    if let Some(other) = &args.compare_shim {
        eprintln!("bench: this shim vs {}", other.display());
        report.insert("shim_comparison".into(), compare_shims(&args, other, &node, &cleanup));
    }

    eprintln!("bench: RSS growth over {} ADD/DEL cycles", args.cycles);
    report.insert("growth".into(), growth(&args, &node, &cleanup));

    let mut throughput_report = serde_json::Map::new();
    for (shape, nads) in [("plain", 0), ("nad2", 2)] {
        eprintln!("bench: {}-way throughput, {shape} ({} pods each side)", args.concurrency, args.pods);
        throughput_report.insert(shape.into(), throughput(&args, &node, &cleanup, shape, nads));
    }
    report.insert("throughput".into(), Value::Object(throughput_report));

    let mut storms = Vec::new();
    for &n in &args.storms {
        eprintln!("bench: {n}-way storm");
        storms.push(storm(&args, &node, &cleanup, n));
    }
    report.insert("storms".into(), Value::Array(storms));
    report.insert(
        "daemon_after".into(),
        json!({"rss_kib": rss_kib(node.pid), "hwm_kib": proc_status_kib(node.pid, "VmHWM:")}),
    );

    drop(node);

    // Two fresh daemons, alike but for the key, so that neither carries the load above.
    eprintln!("bench: parallelDelegates");
    let seq = start_node(&args, &cleanup, 1, &master, 1, json!({"parallelDelegates": false}));
    let par = start_node(&args, &cleanup, 2, &master, 1, json!({"parallelDelegates": true}));
    report.insert("parallel_delegates".into(), parallel_delegates(&args, &seq, &par, &cleanup));
    drop((seq, par));

    report.insert("memory_bounded".into(), memory_bounded(&args, &cleanup, &master));
    finish(&args, report, started);
}

fn finish(args: &Args, mut report: serde_json::Map<String, Value>, started: Instant) {
    report.insert("elapsed_s".into(), json!(round(started.elapsed().as_secs_f64())));
    let mut value = Value::Object(report);
    let rows = table(&value);
    value["table"] = Value::Array(rows);
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    if let Some(out) = &args.out {
        let _ = std::fs::write(out, serde_json::to_vec_pretty(&value).unwrap_or_default());
    }
}
