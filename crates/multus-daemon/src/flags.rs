//! The daemon's command line. The Go daemon uses Go's `flag` package, so `-config x`,
//! `-config=x`, `--config x` and `--config=x` all work; so do they here.

use clap::Parser;
use std::path::PathBuf;

/// Where the DaemonSet mounts the daemon config.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cni/net.d/multus.d/daemon-config.json";

#[derive(Debug, Parser, PartialEq, Eq)]
#[command(name = "multus-daemon", disable_version_flag = true, about = "Multus thick-plugin daemon (multus-rs)")]
pub struct Flags {
    /// Path of daemon-config.json.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
    /// Use this kubeconfig instead of the in-cluster service account (development and tests).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Rewrite Go-style single-dash long flags (`-config`) into clap's `--config`.
pub fn normalize<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let is_go_long = i > 0 && a.starts_with('-') && !a.starts_with("--") && a.len() > 2;
            if is_go_long { format!("-{a}") } else { a }
        })
        .collect()
}

impl Flags {
    pub fn parse_from_env() -> Self {
        Self::parse_from(normalize(std::env::args()))
    }
}

/// The version line printed by `-version`.
pub fn version_line() -> String {
    format!("multus-daemon: version:{}(multus-rs), commit:unknown, date:unknown", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::parse_from(normalize(args.iter().map(|s| s.to_string())))
    }

    #[test]
    fn accepts_go_and_gnu_spellings() {
        for args in [
            &["d", "-config", "/x.json"][..],
            &["d", "-config=/x.json"],
            &["d", "--config", "/x.json"],
            &["d", "--config=/x.json"],
        ] {
            assert_eq!(parse(args).config, PathBuf::from("/x.json"), "{args:?}");
        }
        assert!(parse(&["d", "-version"]).version);
        assert_eq!(parse(&["d"]).config, PathBuf::from(DEFAULT_CONFIG_PATH));
    }
}
