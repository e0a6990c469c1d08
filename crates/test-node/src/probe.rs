//! Readiness as the shim probes it: `/readyz`, or `/healthz` for a daemon that answers 404
//! there because it has none (Go multus v4.2.x). For nodes whose daemon may not be
//! multus-rs (the conformance harness's thick targets); `daemon::wait_ready` is multus-rs's.

use std::path::Path;
use std::time::{Duration, Instant};

/// The daemon's readiness endpoint, and the liveness one v4.2.x daemons answer instead.
pub const READYZ: &str = multus_api::path::READYZ;
pub const HEALTHZ: &str = "/healthz";

/// Why a daemon probed as the shim does did not get ready; `last` says what the last probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeNotReady {
    Exited { last: String },
    TimedOut { socket: String, last: String },
}

impl std::fmt::Display for ProbeNotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { last } => write!(f, "daemon exited during startup (last probe: {last})"),
            Self::TimedOut { socket, last } => write!(f, "daemon not ready at {socket} (last probe: {last})"),
        }
    }
}

impl std::error::Error for ProbeNotReady {}

/// One request over the daemon's unix socket (the shim's own client); the status code.
pub fn http_status(socket: &Path, path: &str) -> Option<u16> {
    multus_api::client::post(socket, path, b"null", Some(Duration::from_secs(2))).ok().map(|r| r.status)
}

/// Wait until `deadline` for the daemon behind `socket` to answer 200 on `/readyz`, or on
/// `/healthz` once `/readyz` answered 404; stop at once when `alive` says it is gone.
/// The endpoint that answered 200.
pub fn wait_ready_as_shim(
    socket: &Path,
    deadline: Instant,
    alive: &mut dyn FnMut() -> bool,
) -> Result<&'static str, ProbeNotReady> {
    let mut endpoint = READYZ;
    let mut last = "no socket yet".to_string();
    loop {
        if !alive() {
            return Err(ProbeNotReady::Exited { last });
        }
        if socket.exists() {
            match http_status(socket, endpoint) {
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
            return Err(ProbeNotReady::TimedOut { socket: socket.display().to_string(), last });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
