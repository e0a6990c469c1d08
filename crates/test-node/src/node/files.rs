//! The node's files: plugins in its `bin/`, walks of its directories, the daemon's cgroup.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bins::bin;

/// Debian's containernetworking-plugins.
pub const SYSTEM_CNI_DIR: &str = "/usr/lib/cni";

/// Symlink the real plugins `real` and fake-cni as each of `fakes` into `bin_dir`.
pub fn install_plugins(bin_dir: &Path, real: &[&str], fakes: &[&str]) {
    std::fs::create_dir_all(bin_dir).unwrap();
    for p in real {
        let _ = std::os::unix::fs::symlink(Path::new(SYSTEM_CNI_DIR).join(p), bin_dir.join(p));
    }
    if let Some(fake) = bin("fake-cni") {
        for name in fakes {
            let _ = std::os::unix::fs::symlink(&fake, bin_dir.join(name));
        }
    }
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    fn go(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                go(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, &mut out);
    out
}

/// Make `command`'s process join `cgroup` between fork and exec, so it starts inside it (and
/// reads its limits there).
#[allow(unsafe_code)]
pub fn join_cgroup_at_exec(command: &mut Command, cgroup: &Path) {
    use std::os::unix::process::CommandExt;
    let procs = std::fs::OpenOptions::new().write(true).open(cgroup.join("cgroup.procs")).expect("cgroup.procs");
    // SAFETY: only write(2) on a descriptor opened before the fork; no allocation.
    unsafe {
        command.pre_exec(move || nix::unistd::write(&procs, b"0").map(drop).map_err(std::io::Error::from));
    }
}
