//! The kube-mock binary's own output: `-version`, and logs without escape sequences when stderr
//! is not a terminal.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn version_flags() {
    for flag in ["-version", "--version", "-V"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kube-mock")).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("version:") && text.contains("commit:") && text.contains("date:"), "{flag}: {text}");
    }
}

/// Kills the child (by its PID) when the test ends, also on failure.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn piped_logs_are_not_coloured() {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_kube-mock"))
            .args(["--listen", "127.0.0.1:0"])
            .env("TERM", "xterm-256color")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on "), "{line}");
    // SIGTERM: the server logs that it stops, then exits.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut stderr = String::new();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("SIGTERM received, stopping"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}
