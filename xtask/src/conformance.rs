//! `cargo xtask conformance …`: build the binaries the harness drives, then run the
//! `cni-conformance` binary of the `multus-conformance` crate with the same arguments
//! (`--matrix` also rewrites `conformance/MATRIX.md`).

use std::process::Command;

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// Arguments for cni-conformance (`--target plugin:/usr/lib/cni/bridge`, `--target thick`,
    /// `--diff A B`, `--group …`, `--report-dir …`; see `--help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `--matrix` also regenerates the committed `conformance/MATRIX.md` unless `--matrix-md`
/// names another file.
fn with_matrix_file(mut args: Vec<String>) -> Vec<String> {
    if args.iter().any(|a| a == "--matrix") && !args.iter().any(|a| a.starts_with("--matrix-md")) {
        let md = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/MATRIX.md");
        args.push("--matrix-md".into());
        args.push(md.display().to_string());
    }
    args
}

pub fn run(args: ConformanceArgs) -> anyhow::Result<()> {
    let args = ConformanceArgs { args: with_matrix_file(args.args) };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args([
            "build",
            "-q",
            "-p",
            "fake-cni",
            "-p",
            "kube-mock",
            "-p",
            "multus-shim",
            "-p",
            "multus-daemon",
            "-p",
            "fake-kubelet",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "building the binaries the harness drives failed");
    let status = Command::new(&cargo)
        .args(["run", "-q", "-p", "multus-conformance", "--bin", "cni-conformance", "--"])
        .args(&args.args)
        .status()?;
    anyhow::ensure!(status.success(), "cni-conformance reported failures (exit {status})");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_matrix_file;

    #[test]
    fn matrix_writes_the_committed_markdown_unless_told_otherwise() {
        let args = with_matrix_file(vec!["--matrix".into()]);
        assert_eq!(args[1], "--matrix-md");
        assert!(args[2].ends_with("conformance/MATRIX.md"));
        let own = with_matrix_file(vec!["--matrix".into(), "--matrix-md".into(), "x.md".into()]);
        assert_eq!(own.len(), 3);
        assert_eq!(with_matrix_file(vec!["--target".into(), "thick".into()]).len(), 2);
    }
}
