//! Shared helpers: the fixtures directory and running the `multusctl` binary.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::Command;

/// `fixtures/multusctl` (absolute, canonical).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/multusctl").canonicalize().expect("fixtures/multusctl")
}

/// What a run printed and its exit code.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Run `multusctl` with `args`, without any cluster credentials from the environment.
pub fn multusctl<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_multusctl"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run multusctl");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// The node arguments of the fixtures: daemon config, shim config, plugin directory.
pub fn node_args() -> Vec<String> {
    let fx = fixtures();
    vec![
        "--daemon-config".into(),
        fx.join("node/daemon-config.json").display().to_string(),
        "--multus-conf".into(),
        fx.join("node/00-multus.conf").display().to_string(),
        "--bin-dir".into(),
        fx.join("bin").display().to_string(),
    ]
}

/// Output with machine-specific paths replaced, so snapshots hold anywhere.
pub fn redact(text: &str, extra: &[(&Path, &str)]) -> String {
    let mut out = text.replace(&fixtures().display().to_string(), "<fixtures>");
    for (path, name) in extra {
        out = out.replace(&path.display().to_string(), name);
    }
    out
}
