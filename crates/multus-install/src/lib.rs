//! `multus-install`: the two small jobs of the DaemonSet that are not the daemon's.
//!
//! - [`install`]: the init container copies `multus-shim` into the host's CNI bin dir
//!   *atomically*: write a temporary file in the destination directory, fsync, set the source's
//!   mode, then `rename(2)` it over the target. A runtime executing the old shim keeps its inode;
//!   nobody ever sees a half-written file and there is no "text file busy" (ETXTBSY), which an
//!   in-place `open(O_TRUNC)` of a running binary would cause.
//! - [`probe`]: liveness/readiness probes. The daemon's API is HTTP on a unix socket, which
//!   kubelet's `httpGet` probe cannot reach, so the probe is an `exec` of this binary.
//! - [`go_cli`]: run under the name `install_multus` (`argv[0]`), the binary is the Go init
//!   container's `install_multus -t thick -d DIR`, which installs `multus-shim` and `passthru`.

pub mod go_cli;

pub mod uninstall;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Copy `source` to `dest_dir/<name>` atomically; returns the final path.
pub fn install(source: &Path, dest_dir: &Path, name: &str) -> io::Result<PathBuf> {
    let target = dest_dir.join(name);
    let mode = fs::metadata(source)?.permissions().mode() & 0o7777;
    let tmp = dest_dir.join(format!(".{name}.temp-{}", std::process::id()));
    let result = (|| {
        let mut input = fs::File::open(source)?;
        let mut output = fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            output.write_all(&buf[..n])?;
        }
        output.set_permissions(fs::Permissions::from_mode(mode))?;
        output.sync_all()?;
        drop(output);
        fs::rename(&tmp, &target)?;
        // Make the rename itself durable.
        fs::File::open(dest_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

/// Outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Healthy,
    Unhealthy(String),
}

/// POST `path` (body `null`, as the shim does) on the daemon socket; healthy on HTTP 200.
pub fn probe(socket: &Path, path: &str, timeout: Duration) -> ProbeOutcome {
    match multus_api::client::post(socket, path, b"null", Some(timeout)) {
        Ok(r) if r.status == 200 => ProbeOutcome::Healthy,
        Ok(r) => {
            ProbeOutcome::Unhealthy(format!("{path}: HTTP {}: {}", r.status, String::from_utf8_lossy(&r.body).trim()))
        }
        Err(e) => ProbeOutcome::Unhealthy(format!("{path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    #[test]
    fn install_is_atomic_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src-shim");
        fs::write(&src, b"#!/bin/sh\necho new\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
        let dest = dir.path().join("bin");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("multus-shim"), b"old").unwrap();
        // Keep the old file open, as a running process would: it must keep its content.
        let mut old = fs::File::open(dest.join("multus-shim")).unwrap();
        let target = install(&src, &dest, "multus-shim").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"#!/bin/sh\necho new\n");
        assert_eq!(fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o755);
        let mut old_content = String::new();
        old.read_to_string(&mut old_content).unwrap();
        assert_eq!(old_content, "old");
        let leftovers: Vec<_> =
            fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(leftovers, vec!["multus-shim".to_string()]);
    }

    #[test]
    fn install_fails_cleanly_on_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        assert!(install(&dir.path().join("nope"), dir.path(), "x").is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    fn serve_once(listener: UnixListener, status: &'static str) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut body = [0u8; 4];
            reader.read_exact(&mut body).unwrap();
            let mut s = stream;
            write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").unwrap();
            format!("{}{}", first.trim_end(), String::from_utf8_lossy(&body))
        })
    }

    #[test]
    fn probe_reports_200_as_healthy_and_others_not() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("multus.sock");
        let t = serve_once(UnixListener::bind(&sock).unwrap(), "200 OK");
        assert_eq!(probe(&sock, "/readyz", Duration::from_secs(5)), ProbeOutcome::Healthy);
        assert_eq!(t.join().unwrap(), "POST /readyz HTTP/1.1null");
        fs::remove_file(&sock).unwrap();
        let t = serve_once(UnixListener::bind(&sock).unwrap(), "500 Internal Server Error");
        assert!(
            matches!(probe(&sock, "/readyz", Duration::from_secs(5)), ProbeOutcome::Unhealthy(m) if m.contains("500"))
        );
        t.join().unwrap();
        fs::remove_file(&sock).unwrap();
        assert!(matches!(probe(&sock, "/healthz", Duration::from_secs(1)), ProbeOutcome::Unhealthy(_)));
    }
}
