//! `cargo xtask e2e --local --nodes N`: a cluster of N nodes in Docker containers on this
//! machine (crates/cluster-e2e): a rolling upgrade from the "old" daemon and Go's cache files
//! under load, a node killed and brought back, a node cut off the API server. xtask builds the
//! binaries the node image holds and runs `cluster-e2e`, which builds the image (nothing is
//! pulled), starts the containers with testcontainers and prints the figures.

use anyhow::{Result, bail};

use crate::e2e_args::E2eArgs;
use crate::harness::{self, step};
use crate::util::{Cmd, cargo_cmd, have, is_root, target_dir};

/// The packages whose binaries go into the node image.
pub const PACKAGES: [&str; 6] =
    ["multus-daemon", "multus-shim", "multus-install", "passthru", "kube-mock", "cluster-e2e"];

pub fn build_cmd(profile: &str) -> Cmd {
    let mut c = cargo_cmd().args(["build", "--profile", profile]);
    for p in PACKAGES {
        c = c.args(["-p", p]);
    }
    c
}

/// Why the cluster cannot run here, if it cannot.
pub fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("not root (the nodes make network namespaces and mount them)".into());
    }
    if !have("docker") {
        missing.push("docker is not installed".into());
    } else if !Cmd::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).run_quiet() {
        missing.push("the Docker Engine does not answer".into());
    }
    if !std::path::Path::new(harness::SYSTEM_CNI_DIR).join("bridge").exists() {
        missing.push(format!("no {}/bridge (apt-get install containernetworking-plugins)", harness::SYSTEM_CNI_DIR));
    }
    missing
}

/// What a run does, for `--dry-run`.
pub fn outline(nodes: usize) -> Vec<String> {
    let profile = harness::profile();
    vec![
        build_cmd(&profile).to_string(),
        format!(
            "target/<profile>/cluster-e2e --nodes {nodes} --bin-dir target/<profile> --plugin-dir {} --out target/cluster-e2e",
            harness::SYSTEM_CNI_DIR
        ),
        "  image multus-rs-cluster:e2e FROM scratch (the binaries above, the plugins, their libraries)".into(),
        format!(
            "  kube-mock + {nodes} node containers on a private network; rolling upgrade, node loss, API partition"
        ),
    ]
}

pub fn run(args: &E2eArgs, nodes: usize) -> Result<()> {
    let missing = missing();
    if !missing.is_empty() {
        println!("e2e --local --nodes {nodes}: SKIPPED: {}", missing.join("; "));
        return Ok(());
    }
    let profile = harness::profile();
    let bin_dir = target_dir().join(if profile == "dev" { "debug".to_string() } else { profile.clone() });
    if !args.no_build {
        step(format!("building the node image's binaries ({profile} profile)"));
        build_cmd(&profile).run()?;
    }
    let out = target_dir().join("cluster-e2e");
    step(format!("{nodes} nodes in containers; report in {}", out.display()));
    let status = std::process::Command::new(bin_dir.join("cluster-e2e"))
        .arg("--nodes")
        .arg(nodes.to_string())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--plugin-dir")
        .arg(harness::SYSTEM_CNI_DIR)
        .arg("--out")
        .arg(&out)
        .status()?;
    if !status.success() {
        bail!("the {nodes}-node e2e failed (report and daemon logs in {})", out.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_covers_every_binary_of_the_node_image() {
        let line = build_cmd("dev").to_string();
        for p in PACKAGES {
            assert!(line.contains(&format!("-p {p}")), "{line}");
        }
        assert!(line.contains("--profile dev"));
    }

    #[test]
    fn the_command_line_takes_a_node_count_only_with_local() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            e2e: E2eArgs,
        }
        let cli = Cli::try_parse_from(["e2e", "--local", "--nodes", "3"]).unwrap();
        assert_eq!(cli.e2e.nodes, Some(3));
        assert!(Cli::try_parse_from(["e2e", "--nodes", "3"]).is_err());
        assert!(Cli::try_parse_from(["e2e", "--local", "--nodes", "3", "--cri"]).is_err());
        assert!(Cli::try_parse_from(["e2e", "--local", "--nodes", "0"]).is_err());
        assert!(outline(3).iter().any(|l| l.contains("--nodes 3")));
    }
}
