//! The bench's command line.

use std::path::PathBuf;

pub struct Args {
    pub bins: PathBuf,
    pub shim: PathBuf,
    /// A second shim measured against the same daemon, interleaved (e.g. an earlier build).
    pub compare_shim: Option<PathBuf>,
    pub daemon: PathBuf,
    pub iterations: usize,
    pub pods: usize,
    pub cycles: usize,
    pub concurrency: usize,
    pub storms: Vec<usize>,
    pub out: Option<PathBuf>,
    /// `--only memory|storms|throughput`: just that section.
    pub only: Option<String>,
}

pub fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut bins = PathBuf::from("target/release");
    let (mut shim, mut daemon, mut out, mut compare_shim, mut only) = (None, None, None, None, None);
    let (mut iterations, mut pods, mut cycles, mut concurrency) = (30, 160, 1000, 8);
    let mut storms = vec![64, 200];
    let num = |v: Option<String>, d: usize| v.and_then(|n| n.parse().ok()).unwrap_or(d);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bins" => bins = args.next().map(PathBuf::from).unwrap_or(bins),
            "--shim" => shim = args.next().map(PathBuf::from),
            "--compare-shim" => compare_shim = args.next().map(PathBuf::from),
            "--daemon" => daemon = args.next().map(PathBuf::from),
            "--iterations" => iterations = num(args.next(), iterations),
            "--pods" => pods = num(args.next(), pods),
            "--cycles" => cycles = num(args.next(), cycles),
            "--concurrency" => concurrency = num(args.next(), concurrency).max(1),
            "--storms" => {
                storms = args.next().unwrap_or_default().split(',').filter_map(|n| n.trim().parse().ok()).collect()
            }
            "--out" => out = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            // cargo bench passes --bench; ignore unknown flags.
            _ => {}
        }
    }
    // Symlinks made to these binaries must not depend on the working directory.
    let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let bins = abs(bins);
    let shim = shim.map(abs).unwrap_or_else(|| bins.join("multus-shim"));
    let daemon = daemon.map(abs).unwrap_or_else(|| bins.join("multus-daemon"));
    let compare_shim = compare_shim.map(abs);
    Args {
        bins,
        shim,
        compare_shim,
        daemon,
        iterations: iterations.max(1),
        pods,
        cycles,
        concurrency,
        storms,
        out,
        only,
    }
}
