//! The daemon's readiness wait, as the shim does it: `/readyz`, or `/healthz` for a daemon
//! that answers 404 there because it has none (Go multus v4.2.x).

use std::path::Path;
use std::time::{Duration, Instant};

/// The daemon's readiness endpoint, and the liveness one v4.2.x daemons answer instead.
pub const READYZ: &str = "/readyz";
pub const HEALTHZ: &str = "/healthz";

/// Why the daemon did not get ready.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotReady {
    #[error("daemon exited during startup (last probe: {last})")]
    Exited { last: String },
    #[error("daemon not ready at {socket} (last probe: {last})")]
    TimedOut { socket: String, last: String },
}

/// Wait until the daemon behind `sock` is ready: `/readyz` answers 200, or — for a daemon
/// that answers 404 there because it has no `/readyz` (Go multus v4.2.x) — `/healthz`
/// answers 200, as the shim does. `alive` reports whether the daemon process still runs.
/// Returns the endpoint that answered 200.
pub fn wait_ready(sock: &Path, deadline: Instant, alive: &mut dyn FnMut() -> bool) -> Result<&'static str, NotReady> {
    let mut endpoint = READYZ;
    let mut last = "no socket yet".to_string();
    loop {
        if !alive() {
            return Err(NotReady::Exited { last });
        }
        if sock.exists() {
            match http_status(sock, endpoint) {
                Some(200) => return Ok(endpoint),
                Some(404) if endpoint == READYZ => {
                    endpoint = HEALTHZ;
                    last = format!("{READYZ} answered 404, using {HEALTHZ}");
                    continue;
                }
                Some(code) => last = format!("{endpoint} answered {code}"),
                None => last = format!("{endpoint}: no HTTP answer"),
            }
        }
        if Instant::now() > deadline {
            return Err(NotReady::TimedOut { socket: sock.display().to_string(), last });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP request over the daemon's unix socket (the shim's own client); the status code.
pub fn http_status(sock: &Path, path: &str) -> Option<u16> {
    multus_api::client::post(sock, path, b"null", Some(Duration::from_secs(2))).ok().map(|r| r.status)
}
