//! `multus-install install --dest /host/opt/cni/bin` (init container) and
//! `multus-install probe --socket /host/run/multus/multus.sock --path /readyz` (probes).
//!
//! Invoked as `install_multus` (a symlink, hard link or copy of this binary), it is the Go init
//! container's command line instead: `install_multus -t thick -d /host/opt/cni/bin`
//! ([`multus_install::go_cli`]).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "multus-install", version = build_info::version!(), about = "multus-rs DaemonSet helper")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Atomically copy binaries (default: multus-shim) into the host CNI bin dir.
    Install {
        /// Destination directory (the host's CNI bin dir as mounted in the init container).
        #[arg(short = 'd', long = "dest", alias = "dest-dir", default_value = "/host/opt/cni/bin")]
        dest: PathBuf,
        /// Directory holding the binaries to install (default: this binary's directory).
        #[arg(long)]
        source_dir: Option<PathBuf>,
        /// Binary to install (repeatable).
        #[arg(long = "binary", default_value = "multus-shim")]
        binaries: Vec<String>,
    },
    /// Hand the node back to its primary CNI config: remove Multus's config (only if it is
    /// Multus's), then the installed binaries. Run on each node when uninstalling.
    Uninstall {
        /// The CNI config directory (the host's /etc/cni/net.d as mounted).
        #[arg(long, default_value = "/host/etc/cni/net.d")]
        cni_conf_dir: PathBuf,
        /// The generated config's file name.
        #[arg(long, default_value = "00-multus.conf")]
        conf_name: String,
        /// The CNI bin directory (the host's /opt/cni/bin as mounted).
        #[arg(short = 'd', long = "dest", alias = "dest-dir", default_value = "/host/opt/cni/bin")]
        bin_dir: PathBuf,
        /// Binary to remove (repeatable; default: multus-shim and passthru).
        #[arg(long = "binary", default_values = ["multus-shim", "passthru"])]
        binaries: Vec<String>,
    },
    /// Exit 0 when the daemon answers 200 on PATH over its unix socket, 1 otherwise.
    Probe {
        #[arg(long, default_value = "/run/multus/multus.sock")]
        socket: PathBuf,
        #[arg(long, default_value = "/readyz")]
        path: String,
        /// Per read/write timeout in milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

fn main() -> Result<()> {
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("multus-install"));
        return Ok(());
    }
    if multus_install::go_cli::invoked_as_go_tool(&argv0) {
        let args: Vec<String> = argv.map(|a| a.to_string_lossy().into_owned()).collect();
        let status = multus_install::go_cli::run(
            &argv0.to_string_lossy(),
            &args,
            &this_binarys_directory()?,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        );
        std::process::exit(status);
    }
    match Cli::parse().command {
        Cmd::Install { dest, source_dir, binaries } => {
            let source_dir = match source_dir {
                Some(d) => d,
                None => this_binarys_directory()?,
            };
            if !dest.is_dir() {
                bail!("destination {} is not a directory", dest.display());
            }
            for name in &binaries {
                let target = multus_install::install(&source_dir.join(name), &dest, name).with_context(|| {
                    format!("installing {name} from {} into {}", source_dir.display(), dest.display())
                })?;
                println!("installed {}", target.display());
            }
            Ok(())
        }
        Cmd::Uninstall { cni_conf_dir, conf_name, bin_dir, binaries } => {
            let names: Vec<&str> = binaries.iter().map(String::as_str).collect();
            let removed = multus_install::uninstall::uninstall(&cni_conf_dir, &conf_name, &bin_dir, &names)
                .with_context(|| format!("uninstalling from {} and {}", cni_conf_dir.display(), bin_dir.display()))?;
            for file in &removed.files {
                println!("removed {}", file.display());
            }
            for (file, why) in &removed.kept {
                println!("kept {}: {why}", file.display());
            }
            Ok(())
        }
        Cmd::Probe { socket, path, timeout_ms } => {
            match multus_install::probe(&socket, &path, Duration::from_millis(timeout_ms)) {
                multus_install::ProbeOutcome::Healthy => Ok(()),
                multus_install::ProbeOutcome::Unhealthy(msg) => {
                    eprintln!("multus-install probe: {msg}");
                    std::process::exit(1)
                }
            }
        }
    }
}

/// Where the binaries to install are: next to this one.
fn this_binarys_directory() -> Result<PathBuf> {
    Ok(std::env::current_exe()
        .context("locating this binary")?
        .parent()
        .context("this binary has no parent directory")?
        .to_path_buf())
}
