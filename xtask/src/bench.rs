//! `cargo xtask bench`: the speed and memory targets, measured (never asserted in tests).
//!
//! Builds the shipped binaries exactly as the image does (static, `release-small`), then runs
//! `crates/multus-daemon/examples/bench.rs` against them: shim exec time and peak RSS, daemon
//! readiness and RSS, ADD+DEL overhead over the bare delegates, and 8-way throughput. With
//! `--kube-mock` it also runs the mock API server's criterion benchmark (10k pods, 1k NADs).

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

use crate::image;
use crate::util::{Cmd, cargo_cmd, target_dir};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// ADD+DEL rounds for the overhead measurement (throughput uses 4×).
    #[arg(long, default_value_t = 30)]
    pub iterations: usize,
    /// Also run `cargo bench -p kube-mock`.
    #[arg(long)]
    pub kube_mock: bool,
    /// Where the JSON report goes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Targets from the issues, and what the Go v4.2.4 pair measured on this kind of machine.
const TARGETS: [(&str, &str, &str, &str); 7] = [
    ("shim exec (mean)", "/shim/exec/mean_ms", "≤ 2 ms", "17 ms"),
    ("shim peak RSS", "/shim/peak_rss_kib", "≤ 3 MB", "27 MB"),
    ("daemon ready", "/daemon/ready_ms", "≤ 20 ms", "—"),
    ("daemon idle RSS", "/daemon/idle_rss_kib", "≤ 10 MB", "42–50 MB"),
    ("ADD+DEL overhead over bare bridge (mean, %)", "/overhead/overhead_pct", "≤ 10 %", "+100 ms (≈ 167 %)"),
    ("ADD+DEL overhead over bare bridge (median, ms)", "/overhead/overhead_p50_ms", "—", "+100 ms"),
    ("8-way throughput (pods/s, 3 networks)", "/daemon/throughput/pods_per_s", "≥ 3× Go", "12–20"),
];

pub fn commands(args: &BenchArgs, out: &std::path::Path) -> Vec<Cmd> {
    let bins = image::binary_dir(image::DEFAULT_PROFILE);
    let release = target_dir().join("release");
    let mut cmds = vec![
        image::build_cmd(image::DEFAULT_PROFILE),
        cargo_cmd().args(["build", "--release", "-p", "fake-cni", "-p", "multus-daemon", "--bins", "--examples"]),
        Cmd::new(release.join("examples/bench").display().to_string())
            .args(["--bins", &release.display().to_string()])
            .args(["--daemon", &bins.join("multus-daemon").display().to_string()])
            .args(["--shim", &bins.join("multus-shim").display().to_string()])
            .args(["--iterations", &args.iterations.to_string()])
            .args(["--out", &out.display().to_string()]),
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
    println!("\n| measure | multus-rs | target | Go v4.2.4 |\n|---|---|---|---|");
    for (name, pointer, target, go) in TARGETS {
        let v = report.pointer(pointer).cloned().unwrap_or(Value::Null);
        let shown = match (pointer.ends_with("_kib"), v.as_f64()) {
            (true, Some(k)) => format!("{:.1} MB", k / 1024.0),
            (false, Some(x)) => format!("{x}"),
            _ => v.to_string(),
        };
        println!("| {name} | {shown} | {target} | {go} |");
    }
    println!("\nfull report: {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmarks_the_static_binaries_the_image_ships() {
        let args = BenchArgs { iterations: 5, kube_mock: true, out: None, dry_run: true };
        let cmds = commands(&args, std::path::Path::new("/tmp/x.json"));
        assert!(cmds[0].env.iter().any(|(k, v)| k == "RUSTFLAGS" && v.contains("+crt-static")));
        let bench = &cmds[2];
        let daemon = bench.args.iter().position(|a| a == "--daemon").map(|i| &bench.args[i + 1]).unwrap();
        assert!(daemon.contains(image::TARGET), "{daemon}");
        assert!(cmds.last().unwrap().args.contains(&"kube-mock".to_string()));
    }
}
