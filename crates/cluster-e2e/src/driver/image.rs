//! The node image, built here `FROM scratch`: the workspace's debug binaries (one build profile
//! for the whole CI run), Debian's delegate plugins, and every shared library they load, found
//! with `ldd`. kube-mock runs from the same image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::plan::node_paths::{AGENT, BIN_DIR, CNI_BIN};

/// The DaemonSet's binaries, at the Go image's directory.
pub const DAEMONSET_BINARIES: [&str; 4] = ["multus-daemon", "multus-shim", "multus-install", "passthru"];
/// Debian's plugins a node has in /opt/cni/bin.
pub const PLUGINS: [&str; 3] = ["bridge", "host-local", "loopback"];
pub const KUBE_MOCK: &str = "/usr/bin/kube-mock";

/// Every file of the image: (path in the image, file on this machine).
pub fn image_files(bin_dir: &Path, plugin_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> =
        DAEMONSET_BINARIES.iter().map(|b| (format!("{BIN_DIR}/{b}"), bin_dir.join(b))).collect();
    files.push((AGENT.into(), bin_dir.join("cluster-node")));
    files.push((KUBE_MOCK.into(), bin_dir.join("kube-mock")));
    files.extend(PLUGINS.iter().map(|p| (format!("{CNI_BIN}/{p}"), plugin_dir.join(p))));
    files
}

/// Lays out the image's root file system under `context/rootfs` and writes its Dockerfile.
pub fn write_context(context: &Path, bin_dir: &Path, plugin_dir: &Path) -> Result<()> {
    let rootfs = context.join("rootfs");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs)?;
    }
    let mut files = test_node::rootfs::RootFs::new(&rootfs);
    for (image_path, source) in image_files(bin_dir, plugin_dir) {
        if !source.exists() {
            bail!("{} is missing (build the workspace's binaries first)", source.display());
        }
        files.add(&image_path, &source)?;
    }
    files.finish()?;
    std::os::unix::fs::symlink("multus-install", rootfs.join(BIN_DIR.trim_start_matches('/')).join("install_multus"))?;
    for dir in ["etc/cni/net.d", "etc/multus-e2e", "var/lib/cni", "var/log", "run", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"{AGENT}\"]\nCMD [\"init\"]\n"),
    )?;
    Ok(())
}

/// `docker build` of the context (the legacy builder: no BuildKit needed).
pub fn build(context: &Path, tag: &str) -> Result<()> {
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .context("running docker build")?;
    if !out.status.success() {
        bail!("docker build failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_has_the_daemonset_binaries_at_the_go_paths() {
        let files = image_files(Path::new("/b"), Path::new("/p"));
        assert!(
            files
                .iter()
                .any(|(p, s)| p == "/usr/src/multus-cni/bin/multus-daemon" && s == Path::new("/b/multus-daemon"))
        );
        assert!(files.iter().any(|(p, _)| p == "/opt/cni/bin/host-local"));
        assert!(files.iter().any(|(p, _)| p == AGENT));
    }
}
