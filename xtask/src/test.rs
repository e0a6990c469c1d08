//! `cargo xtask test`: one command that prepares a fresh machine and runs every test.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// Debian packages the tests use: real delegate plugins, `ip`, `jq`.
pub const DEBIAN_PACKAGES: [&str; 3] = ["containernetworking-plugins", "iproute2", "jq"];

#[derive(clap::Args)]
pub struct TestArgs {
    /// Do not try to install Debian packages.
    #[arg(long)]
    pub no_install: bool,
    /// Also run `cargo fmt --check` and `cargo clippy -D warnings`.
    #[arg(long)]
    pub lint: bool,
    /// Extra arguments for `cargo test`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    if !args.no_install {
        install_packages()?;
    }
    if args.lint {
        cargo(&["fmt", "--all", "--", "--check"])?;
        cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    }
    // Integration tests run the workspace's binaries (daemon, shim, fake plugins, mock API
    // server); build them all first so every test finds them.
    cargo(&["build", "--workspace", "--bins"])?;
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.cargo_args.iter().map(String::as_str));
    cargo(&test_args)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false)
}

/// Install missing packages when we can (root on a Debian-like system); otherwise say why the
/// tests that need them will skip.
fn install_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: not installing {missing:?} (needs root and apt-get); tests that need them will skip with a reason"
        );
        return Ok(());
    }
    eprintln!("xtask: installing {missing:?}");
    let status = Command::new("apt-get").arg("update").arg("-qq").status().context("apt-get update")?;
    if !status.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get install")?;
    if !status.success() {
        bail!("apt-get install {missing:?} failed");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}
