//! `cargo xtask bench`: the speed and memory targets, measured (never asserted in tests),
//! against the physical limit in the same run.
//!
//! Builds the shipped binaries exactly as the image does (static, `release-small`), then runs
//! `crates/multus-daemon/examples/bench.rs` against them: every multus figure next to the bare
//! delegates (the same Debian bridge/host-local/macvlan configs executed directly in real
//! namespaces, sequentially and at the same concurrency), storms, daemon and shim memory, the
//! fixed per-pod cost broken down, and `parallelDelegates`. It prints the table the bench puts
//! in its JSON report, memory bounded by design included (RSS with 10,000 NADs or 40 NADs of
//! 1 MB in the cluster, ready time, API requests per ADD and DEL; `--only memory` runs just
//! that). With `--kube-mock` it also runs the mock API server's criterion benchmark (10k pods,
//! 1k NADs).

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

use crate::image;
use crate::util::{Cmd, cargo_cmd, target_dir};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Sequential ADD+DEL rounds per side (bare and multus) for each pod shape.
    #[arg(long, default_value_t = 30)]
    pub iterations: usize,
    /// Pods per side in each concurrent throughput measurement.
    #[arg(long, default_value_t = 160)]
    pub pods: usize,
    /// Sequential ADD/DEL cycles for the daemon's RSS growth (about 50 ms each).
    #[arg(long, default_value_t = 1000)]
    pub cycles: usize,
    /// Ways of the throughput measurement (bare and multus alike).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Storm sizes: pods ADDed at once, then DELeted at once.
    #[arg(long, default_value = "64,200")]
    pub storms: String,
    /// A second shim measured against the same daemon, interleaved with the built one.
    #[arg(long)]
    pub compare_shim: Option<PathBuf>,
    /// Also run `cargo bench -p kube-mock`.
    #[arg(long)]
    pub kube_mock: bool,
    /// Run one section only: `memory` (memory bounded by design), `storms` or `throughput`.
    #[arg(long)]
    pub only: Option<String>,
    /// Where the JSON report goes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn commands(args: &BenchArgs, out: &std::path::Path) -> Vec<Cmd> {
    let bins = image::binary_dir(image::DEFAULT_PROFILE);
    let release = target_dir().join("release");
    let mut bench = Cmd::new(release.join("examples/bench").display().to_string())
        .args(["--bins", &release.display().to_string()])
        .args(["--daemon", &bins.join("multus-daemon").display().to_string()])
        .args(["--shim", &bins.join("multus-shim").display().to_string()])
        .args(["--iterations", &args.iterations.to_string()])
        .args(["--pods", &args.pods.to_string()])
        .args(["--cycles", &args.cycles.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--storms", &args.storms])
        .args(["--out", &out.display().to_string()]);
    if let Some(other) = &args.compare_shim {
        bench = bench.args(["--compare-shim", &other.display().to_string()]);
    }
    if let Some(only) = &args.only {
        bench = bench.args(["--only", only]);
    }
    let mut cmds = vec![
        image::build_cmd(image::DEFAULT_PROFILE),
        cargo_cmd().args(["build", "--release", "-p", "fake-cni", "-p", "multus-daemon", "--bins", "--examples"]),
        bench,
    ];
    if args.kube_mock {
        cmds.push(cargo_cmd().args(["bench", "-p", "kube-mock"]));
    }
    cmds
}

pub fn run(args: BenchArgs) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| target_dir().join("bench/thick.json"));
    let cmds = commands(&args, &out);
    if args.dry_run {
        for c in &cmds {
            println!("{c}");
        }
        return Ok(());
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for c in &cmds {
        eprintln!("xtask: {c}");
        c.run()?;
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&out).with_context(|| format!("{}", out.display()))?)?;
    println!("\n{}", render_table(&report));
    println!("full report: {}", out.display());
    Ok(())
}

/// The bench's `table` as Markdown: each measure, bare delegates, multus-rs, ratio, target.
fn render_table(report: &Value) -> String {
    let mut text =
        String::from("| measure | bare delegates (limit) | multus-rs | ratio | target |\n|---|---|---|---|---|\n");
    let cell = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).unwrap_or("—").to_string();
    for r in report.get("table").and_then(Value::as_array).into_iter().flatten() {
        let cells: Vec<String> = ["measure", "bare", "multus", "ratio", "target"].iter().map(|k| cell(r, k)).collect();
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if let Some(why) = report.get("skipped").and_then(Value::as_str) {
        text.push_str(&format!("\nskipped: {why}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_the_static_binaries_the_image_ships() {
        let args = BenchArgs {
            iterations: 5,
            pods: 16,
            cycles: 10,
            concurrency: 8,
            storms: "64,200".into(),
            compare_shim: None,
            kube_mock: true,
            only: Some("memory".into()),
            out: None,
            dry_run: true,
        };
        let cmds = commands(&args, std::path::Path::new("/tmp/x.json"));
        assert!(cmds[0].env.iter().any(|(k, v)| k == "RUSTFLAGS" && v.contains("+crt-static")));
        let bench = &cmds[2];
        let daemon = bench.args.iter().position(|a| a == "--daemon").map(|i| &bench.args[i + 1]).unwrap();
        assert!(daemon.contains(image::TARGET), "{daemon}");
        assert!(cmds.last().unwrap().args.contains(&"kube-mock".to_string()));
        let at = |flag: &str| bench.args.iter().position(|a| a == flag).map(|i| bench.args[i + 1].as_str());
        assert_eq!((at("--cycles"), at("--storms"), at("--concurrency")), (Some("10"), Some("64,200"), Some("8")));
        assert_eq!(at("--only"), Some("memory"));
    }

    #[test]
    fn prints_the_bench_table_as_markdown() {
        let report = serde_json::json!({"table": [{"measure": "ADD+DEL", "bare": "41 ms", "multus": "45 ms", "ratio": "1.10×", "target": "≤ 1.10×"}]});
        let text = render_table(&report);
        assert!(text.contains("| ADD+DEL | 41 ms | 45 ms | 1.10× | ≤ 1.10× |"), "{text}");
    }
}
