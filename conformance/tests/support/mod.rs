//! What several conformance test files share.

use std::path::PathBuf;

/// The fake-cni binary, built when missing. A test that cannot get it fails (it does not pass
/// without having run).
pub fn fake_cni() -> PathBuf {
    let p = multus_conformance::target::cargo_bin_dir().join("fake-cni");
    if !p.exists() {
        let _ = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "fake-cni", "--bin", "fake-cni"])
            .status();
    }
    assert!(p.exists(), "fake-cni binary missing at {} and could not be built: cargo build -p fake-cni", p.display());
    p
}
