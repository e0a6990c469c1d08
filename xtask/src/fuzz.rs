//! `cargo xtask fuzz`: coverage-guided fuzzing of every decoder that takes outside bytes, on
//! the stable toolchain.
//!
//! The `fuzz/` crate's `multus-fuzz` binary links libFuzzer (`libfuzzer-sys`, built from source
//! with the system C++ compiler) and is compiled with LLVM's SanitizerCoverage passes through
//! stable `-C passes=sancov-module -C llvm-args=…` flags: no nightly, no `RUSTC_BOOTSTRAP`, no
//! cargo-fuzz. Debug assertions and overflow checks are on, so arithmetic bugs crash too.
//! AddressSanitizer is not used (it needs nightly; the code under test has no `unsafe`).
//!
//! Each target runs for `--runs N` executions or `--seconds S`, with its corpus kept under
//! `target/fuzz/corpus/<target>` between runs and its seeds written fresh each time. An input
//! that crashes (panics, or takes over 10 s) is copied to `fuzz/regressions/<target>/`, which
//! `cargo test -p multus-fuzz` replays; the command then fails.

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::util::{Cmd, cargo_cmd, target_dir, workspace_root};

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Fuzz only this target (repeatable); default: every target. `--list` names them.
    #[arg(long = "target", value_name = "T")]
    pub targets: Vec<String>,
    /// Executions per target.
    #[arg(long, conflicts_with = "seconds")]
    pub runs: Option<u64>,
    /// Seconds per target (the default is 60 when neither this nor --runs is given).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// List the targets and exit.
    #[arg(long)]
    pub list: bool,
    /// Where the JSON report goes (default target/fuzz/report.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// The coverage instrumentation cargo-fuzz uses, minus AddressSanitizer, all stable flags.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers";

/// Inputs up to this size (the largest real inputs, requests and caches, are a few KiB).
const MAX_LEN: usize = 64 * 1024;
/// One input taking longer than this is reported as a crash (a hang or quadratic blow-up).
const INPUT_TIMEOUT_S: u64 = 10;

fn fuzz_dir() -> PathBuf {
    target_dir().join("fuzz")
}

fn host_triple() -> Result<String> {
    let out = Cmd::new("rustc").arg("-vV").output()?;
    out.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string).context("rustc -vV printed no host triple")
}

fn build_cmd(host: &str) -> Cmd {
    cargo_cmd()
        .args(["build", "--release", "-p", "multus-fuzz", "--features", "libfuzzer", "--bin", "multus-fuzz"])
        .args(["--target", host, "--target-dir"])
        .arg(fuzz_dir().join("build").display().to_string())
        .env("RUSTFLAGS", RUSTFLAGS)
        // Faster to build; LTO adds nothing to coverage.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
}

fn binary(host: &str) -> PathBuf {
    fuzz_dir().join("build").join(host).join("release").join("multus-fuzz")
}

/// What one target's run did.
struct Outcome {
    target: String,
    executions: u64,
    seconds: f64,
    corpus: usize,
    crashes: Vec<PathBuf>,
    log: PathBuf,
}

fn run_cmd(bin: &Path, target: &str, args: &FuzzArgs) -> Cmd {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(target);
    let seeds = dir.join("seeds").join(target);
    let artifacts = dir.join("artifacts").join(target);
    let limit = match (args.runs, args.seconds) {
        (Some(runs), _) => format!("-runs={runs}"),
        (None, seconds) => format!("-max_total_time={}", seconds.unwrap_or(60)),
    };
    Cmd::new(bin.display().to_string())
        .arg(corpus.display().to_string())
        .arg(seeds.display().to_string())
        .arg(limit)
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .env("MULTUS_FUZZ_TARGET", target)
        .env("MULTUS_FUZZ_SEED_DIR", seeds.display().to_string())
}

fn list_targets(bin: &Path) -> Result<Vec<(String, String)>> {
    let out = Cmd::new(bin.display().to_string()).env("MULTUS_FUZZ_TARGET", "list").output()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, about)| (name.to_string(), about.to_string()))
        .collect())
}

fn run_target(bin: &Path, target: &str, args: &FuzzArgs) -> Result<Outcome> {
    let dir = fuzz_dir();
    for sub in ["corpus", "artifacts", "logs"] {
        std::fs::create_dir_all(dir.join(sub).join(target))?;
    }
    let seeds = dir.join("seeds").join(target);
    let _ = std::fs::remove_dir_all(&seeds);
    let artifacts = dir.join("artifacts").join(target);
    let before = files(&artifacts);
    let log = dir.join("logs").join(target).join("last.log");
    let cmd = run_cmd(bin, target, args);
    eprintln!("==> {target}: {cmd}");
    let started = Instant::now();
    let log_file = std::fs::File::create(&log)?;
    let mut command = std::process::Command::new(&cmd.program);
    command.args(&cmd.args).stdin(std::process::Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    let status = command.status().with_context(|| format!("running {cmd}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let executions = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let crashes: Vec<PathBuf> = files(&artifacts).into_iter().filter(|f| !before.contains(f)).collect();
    if !status.success() && crashes.is_empty() {
        bail!("{target}: the fuzzer failed ({status}) without a crash input; see {}", log.display());
    }
    Ok(Outcome {
        target: target.to_string(),
        executions,
        seconds,
        corpus: files(&dir.join("corpus").join(target)).len(),
        crashes,
        log,
    })
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Keep a crash input as a regression input of its target.
fn keep(target: &str, crash: &Path) -> Result<PathBuf> {
    let dir = workspace_root().join("fuzz").join("regressions").join(target);
    std::fs::create_dir_all(&dir)?;
    let dest = dir.join(crash.file_name().context("crash file without a name")?);
    std::fs::copy(crash, &dest)?;
    Ok(dest)
}

pub fn run(args: FuzzArgs) -> Result<()> {
    let host = host_triple()?;
    let build = build_cmd(&host);
    let bin = binary(&host);
    if args.dry_run {
        println!("{build}");
        let targets = if args.targets.is_empty() { vec!["<each target>".to_string()] } else { args.targets.clone() };
        for t in targets {
            println!("{}", run_cmd(&bin, &t, &args));
        }
        return Ok(());
    }
    build.run().context("building the fuzz binary (needs a C++ compiler for libFuzzer)")?;
    let known = list_targets(&bin)?;
    if args.list {
        for (name, about) in &known {
            println!("{name:<16} {about}");
        }
        return Ok(());
    }
    let selected: Vec<String> =
        if args.targets.is_empty() { known.iter().map(|(n, _)| n.clone()).collect() } else { args.targets.clone() };
    for t in &selected {
        if !known.iter().any(|(n, _)| n == t) {
            bail!(
                "unknown fuzz target {t:?}; known: {}",
                known.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let mut outcomes = Vec::new();
    for t in &selected {
        outcomes.push(run_target(&bin, t, &args)?);
    }

    println!(
        "\n{:<16} {:>14} {:>8} {:>10} {:>8} {:>8}",
        "target", "executions", "seconds", "exec/s", "corpus", "crashes"
    );
    let mut kept = Vec::new();
    for o in &outcomes {
        let rate = if o.seconds > 0.0 { o.executions as f64 / o.seconds } else { 0.0 };
        println!(
            "{:<16} {:>14} {:>8.0} {:>10.0} {:>8} {:>8}",
            o.target,
            o.executions,
            o.seconds,
            rate,
            o.corpus,
            o.crashes.len()
        );
        for crash in &o.crashes {
            kept.push((o.target.clone(), keep(&o.target, crash)?, o.log.clone()));
        }
    }
    let report = json!({
        "targets": outcomes.iter().map(|o| json!({
            "target": o.target, "executions": o.executions, "seconds": o.seconds,
            "corpus": o.corpus, "crashes": o.crashes.len(),
        })).collect::<Vec<_>>(),
    });
    let out = args.out.clone().unwrap_or_else(|| fuzz_dir().join("report.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?)?;
    println!("report: {}", out.display());
    if !kept.is_empty() {
        for (target, input, log) in &kept {
            eprintln!("CRASH in {target}: input kept as {} (fuzzer log: {})", input.display(), log.display());
        }
        bail!("{} crash input(s) found; each is now replayed by `cargo test -p multus-fuzz`", kept.len());
    }
    Ok(())
}
