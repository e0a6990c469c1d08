//! The workspace's binaries a node runs, found beside the running program.

use std::path::{Path, PathBuf};

/// The cargo output directory of the running program (`target/<profile>`): a test binary lives
/// in its `deps/`, an example in its `examples/`, a binary in it.
pub fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().map(Path::to_path_buf),
        _ => Some(dir.to_path_buf()),
    }
}

/// Path of a workspace binary built beside the running program, if it is there.
pub fn bin(name: &str) -> Option<PathBuf> {
    let p = profile_dir()?.join(name);
    p.exists().then_some(p)
}

/// Why the shim and fake delegates cannot be run, if they cannot.
pub fn missing_bins() -> Option<String> {
    ["multus-daemon", "multus-shim", "fake-cni"]
        .into_iter()
        .find(|b| bin(b).is_none())
        .map(|b| format!("needs the {b} binary (cargo build --workspace --bins)"))
}
