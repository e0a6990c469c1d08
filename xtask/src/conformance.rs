//! `cargo xtask conformance …`: build the binaries the harness drives, then run the
//! `cni-conformance` binary of the `multus-conformance` crate with the same arguments.

use std::process::Command;

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// Arguments for cni-conformance (`--target plugin:/usr/lib/cni/bridge`, `--target thick`,
    /// `--diff A B`, `--group …`, `--report-dir …`; see `--help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(args: ConformanceArgs) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(["build", "-q", "-p", "fake-cni", "-p", "kube-mock", "-p", "multus-shim", "-p", "multus-daemon"])
        .status()?;
    anyhow::ensure!(status.success(), "building the binaries the harness drives failed");
    let status = Command::new(&cargo)
        .args(["run", "-q", "-p", "multus-conformance", "--bin", "cni-conformance", "--"])
        .args(&args.args)
        .status()?;
    anyhow::ensure!(status.success(), "cni-conformance reported failures (exit {status})");
    Ok(())
}
