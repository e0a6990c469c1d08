//! `multus-shim`: the CNI plugin a container runtime executes for the Multus thick plugin.
//!
//! It holds no state. Each invocation forwards the CNI environment and stdin as one `POST /cni`
//! over the daemon's unix socket and turns the reply into CNI output. Deliberate differences
//! from the Go shim (see `docs/thick-api.md`):
//! - ADD, CHECK, GC and STATUS cost one round trip when the daemon is ready: instead of probing
//!   `/readyz` first, the request itself is gated (`POST /cni?ready`). multus-daemon refuses a
//!   gated request with `503` while it is not ready (syncing or draining), and only then does
//!   the shim poll readiness as the Go shim does and send again. A Go v4.2.x daemon ignores the
//!   query; it serves only once synced, so its socket answering is the readiness its own shim
//!   checked (`/healthz`); when the socket does not answer, the shim polls as before;
//! - only `CNI_*` and `K8S_POD_INFRA_CONTAINER_ID` are forwarded, not the whole environment
//!   (the Go daemon reads nothing else, so either daemon works with this shim);
//! - a CNI error object from the daemon keeps its code (the Go shim turns everything into 999);
//! - a daemon without `/readyz` (v4.2.x) is detected and `/healthz` is used instead;
//! - STATUS probes readiness once and answers code 50 at once when the daemon is not ready,
//!   instead of blocking the runtime's status poll for a minute;
//! - DEL is not gated on readiness at all (the Go shim probes `/healthz` once and drops the DEL
//!   when that fails): the daemon runs DELs from its delegate cache while it is still syncing
//!   and while it drains on shutdown, and `/readyz` answers 500 exactly then. When the daemon
//!   cannot be reached (restarting, socket not yet there) the DEL is re-sent every 100 ms for
//!   up to the readiness wait, since a DEL that is dropped leaks the pod's IPs and interfaces;
//! - a forwarded variable (`CNI_*`) that is not UTF-8 is a clear error (code 4), not a panic;
//!   except on DEL, which is sent anyway with a log line (`CNI_ARGS` with the invalid bytes
//!   replaced by U+FFFD, as Go's JSON encoder does; another such variable left out rather than
//!   made up): the daemon deletes from its cache by container ID, and a DEL that never reaches
//!   it leaks the pod's interfaces and leases;
//! - the `/cni` call is bounded by [`cni_timeout`].
//!
//! DEL always exits 0, as the Go shim does: runtimes retry failed DELs forever, and a DEL the
//! daemon cannot do is logged instead.

mod log;

use cni::error::code;
use cni::skel::{Plugin, Request};
use cni::{CniError, CniResult};
use multus_api::client::{self, HttpResponse};
use multus_api::{ErrorBody, path};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long ADD, CHECK and GC wait for the daemon to become ready (the Go shim's value).
/// `MULTUS_SHIM_READY_WAIT_MS` shortens it (tests, impatient runtimes).
fn ready_wait() -> Duration {
    std::env::var("MULTUS_SHIM_READY_WAIT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(60))
}
const READY_POLL: Duration = Duration::from_millis(100);
/// Bound on each probe so a wedged daemon cannot stall the wait loop.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on one `/cni` call (the Go shim has none, spec §4.7, so a daemon stuck on one request
/// kept the shim, and the runtime's sandbox operation, waiting forever).
///
/// Four minutes is the longest any CRI caller waits for a CNI operation: the kubelet gives
/// `RunPodSandbox` twice its 2-minute `--runtime-request-timeout` and `StopPodSandbox` the 2
/// minutes. Past it nobody reads the answer, so ending there cuts no request that a caller
/// could still use, while leaving the daemon room for a couple of delegates at its 120 s
/// per-delegate timeout. `MULTUS_SHIM_CNI_TIMEOUT_MS` overrides it (tests).
fn cni_timeout() -> Duration {
    std::env::var("MULTUS_SHIM_CNI_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(240))
}

/// The settings the shim reads from its own config (`00-multus.conf` as the runtime passes it).
struct ShimSettings {
    socket: PathBuf,
    log: log::Logger,
}

impl ShimSettings {
    fn from_request(req: &Request) -> Self {
        let get_str = |k: &str| req.config.get(k).and_then(Value::as_str).unwrap_or("");
        let socket = multus_api::socket_path(get_str("daemonSocketDir"));
        let log = log::Logger::new(
            get_str("logFile"),
            get_str("logLevel"),
            req.config.get("logToStderr").and_then(Value::as_bool).unwrap_or(false),
        );
        Self { socket, log }
    }
}

/// Outcome of probing the daemon once.
enum Probe {
    Ready,
    NotReady(String),
    /// The daemon answered 404 for `/readyz`: a v4.2.x daemon that only has `/healthz`.
    NoReadyz,
}

fn probe(settings: &ShimSettings, endpoint: &str) -> Probe {
    match client::post(&settings.socket, endpoint, b"null", Some(PROBE_TIMEOUT)) {
        Ok(r) if r.status == 200 => Probe::Ready,
        Ok(r) if r.status == 404 && endpoint == path::READYZ => Probe::NoReadyz,
        Ok(r) => Probe::NotReady(format!("{endpoint} answered {}", r.status)),
        Err(e) => Probe::NotReady(format!("Daemon not reachable over socketfile: {e}")),
    }
}

/// Poll until the daemon is ready or `wait` has passed.
fn wait_ready(settings: &ShimSettings, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    let mut endpoint = path::READYZ;
    loop {
        match probe(settings, endpoint) {
            Probe::Ready => return Ok(()),
            Probe::NoReadyz => endpoint = path::HEALTHZ,
            Probe::NotReady(why) => {
                if Instant::now() >= deadline {
                    return Err(format!("timed out waiting for the daemon to be ready: {why}"));
                }
                std::thread::sleep(READY_POLL);
            }
        }
    }
}

/// The query that asks the daemon to refuse the request (`503`) unless it is ready. Daemons that
/// do not know it ignore it (Go's `ServeMux` and hyper route by path alone).
const READY_GATE: &str = "?ready";

/// How the `/cni` request waits for the daemon.
#[derive(Clone, Copy)]
enum Gate {
    /// Send gated (`/cni?ready`); when the daemon is not ready (`503`) or not reachable, poll
    /// readiness (`/readyz`, or `/healthz` on a v4.2.x daemon) and send again, for up to this long.
    Ready(Duration),
    /// No readiness check; re-send while the daemon cannot be reached, for up to this long.
    /// Only for DEL, which is idempotent and must not be lost.
    Deliver(Duration),
}

struct Shim;

impl Shim {
    /// The request body: the forwarded environment (raw bytes, checked for UTF-8; replaced
    /// with a log line for DEL, see the crate docs) and stdin.
    fn request_body(req: &Request, settings: &ShimSettings) -> Result<Vec<u8>, CniError> {
        if req.command() == cni::Command::Del {
            let (request, not_utf8) = multus_api::Request::from_os_env_for_del(std::env::vars_os(), req.stdin.clone());
            if !not_utf8.is_empty() {
                settings.log.error(&format!(
                    "CmdDel (shim): {} not valid UTF-8; sending the DEL anyway (CNI_ARGS with the invalid bytes \
                     replaced, other such variables left out): the daemon deletes from its cache by container ID",
                    not_utf8.join(", ")
                ));
            }
            return Ok(request.to_json());
        }
        multus_api::Request::from_os_env(std::env::vars_os(), req.stdin.clone())
            .map(|r| r.to_json())
            .map_err(|e| CniError::new(code::INVALID_ENVIRONMENT_VARIABLES, e.to_string()))
    }

    /// Send the invocation to the daemon and return the raw reply.
    fn forward(settings: &ShimSettings, body: &[u8]) -> Result<HttpResponse, client::ClientError> {
        client::post(&settings.socket, path::CNI, body, Some(cni_timeout()))
    }

    /// Send gated: one round trip when the daemon is ready. A `503` (not ready, or too busy to
    /// take the body: either way the request was not run) or a socket that cannot be reached
    /// means wait for readiness as the Go shim does, then send again, until `wait` has passed.
    fn forward_when_ready(
        settings: &ShimSettings,
        body: &[u8],
        wait: Duration,
    ) -> Result<Result<HttpResponse, client::ClientError>, String> {
        let deadline = Instant::now() + wait;
        let gated = format!("{}{READY_GATE}", path::CNI);
        let send = || client::post(&settings.socket, &gated, body, Some(cni_timeout()));
        let not_ready = |sent: &Result<HttpResponse, client::ClientError>| match sent {
            Ok(reply) => reply.status == 503,
            Err(e) => matches!(e, client::ClientError::Connect { .. }),
        };
        let mut sent = send();
        while not_ready(&sent) {
            wait_ready(settings, deadline.saturating_duration_since(Instant::now()))?;
            sent = send();
            if not_ready(&sent) {
                if Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(READY_POLL);
            }
        }
        Ok(sent)
    }

    /// Send a DEL, re-sending while the daemon cannot be reached, the connection breaks before
    /// an answer (a daemon restarting), or the daemon answers `503` (too busy to take the
    /// body). A timed-out request is not re-sent: the daemon has it and is still working on it.
    fn deliver(settings: &ShimSettings, body: &[u8], wait: Duration) -> Result<HttpResponse, client::ClientError> {
        let deadline = Instant::now() + wait;
        loop {
            let sent = Self::forward(settings, body);
            let retry = match &sent {
                Ok(reply) => reply.status == 503,
                Err(e) => !matches!(e, client::ClientError::TimedOut { .. }),
            };
            if !retry || Instant::now() >= deadline {
                return sent;
            }
            let why = match &sent {
                Ok(reply) => format!("daemon answered {}", reply.status),
                Err(e) => format!("daemon not reachable: {e}"),
            };
            settings.log.verbose(&format!("CmdDel (shim): {why}; retrying"));
            std::thread::sleep(READY_POLL);
        }
    }

    /// Gate, forward, and map a non-200 reply to a CNI error that keeps the daemon's code.
    fn call(&self, req: &Request, verb: &str, gate: Gate) -> Result<HttpResponse, CniError> {
        let settings = ShimSettings::from_request(req);
        let fail = |code: u32, msg: String| {
            settings.log.error(&format!("{verb} (shim): {msg}"));
            CniError::new(code, format!("{verb} (shim): {msg}"))
        };
        let unavailable =
            if req.command() == cni::Command::Status { code::PLUGIN_NOT_AVAILABLE } else { code::INTERNAL };
        let body = Self::request_body(req, &settings).map_err(|e| fail(e.code, e.msg))?;
        let sent = match gate {
            Gate::Ready(wait) => {
                Self::forward_when_ready(&settings, &body, wait).map_err(|why| fail(unavailable, why))?
            }
            Gate::Deliver(wait) => Self::deliver(&settings, &body, wait),
        };
        let reply =
            sent.map_err(|e| fail(unavailable, format!("failed to send CNI request: Post \"http://dummy/cni\": {e}")))?;
        if reply.status == 200 {
            settings.log.verbose(&format!("{verb} (shim): daemon answered 200"));
            return Ok(reply);
        }
        Err(match ErrorBody::parse(&reply.body) {
            ErrorBody::Cni(e) => {
                settings.log.error(&format!("{verb} (shim): {}", e));
                CniError { msg: format!("{verb} (shim): {}", e.msg), ..e }
            }
            ErrorBody::Text(body) => fail(
                code::INTERNAL,
                format!(
                    "CNI request failed with status {}: '{}': StdinData: {}",
                    reply.status,
                    body,
                    String::from_utf8_lossy(&req.stdin)
                ),
            ),
        })
    }
}

impl Plugin for Shim {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        let reply = self.call(req, "CmdAdd", Gate::Ready(ready_wait()))?;
        // An empty 200 would crash the Go shim (quirk 16); here it is a clear error.
        let parsed: Value = serde_json::from_slice(&reply.body).map_err(|e| {
            CniError::with_details(code::DECODING_FAILURE, "CmdAdd (shim): daemon reply is not JSON", e.to_string())
        })?;
        let result = parsed
            .get("Result")
            .filter(|v| !v.is_null())
            .ok_or_else(|| CniError::new(code::DECODING_FAILURE, "CmdAdd (shim): daemon reply has no Result"))?;
        CniResult::from_value_with_default(result, Some(req.cni_version)).map_err(|e| {
            CniError::with_details(
                code::DECODING_FAILURE,
                "CmdAdd (shim): cannot parse the daemon's result",
                e.to_string(),
            )
        })
    }

    /// Every failure is logged (by `call`) and the DEL exits 0.
    fn del(&self, req: &Request) -> Result<(), CniError> {
        let _ = self.call(req, "CmdDel", Gate::Deliver(ready_wait()));
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdCheck", Gate::Ready(ready_wait())).map(|_| ())
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdStatus", Gate::Ready(Duration::ZERO)).map(|_| ())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdGC", Gate::Ready(ready_wait())).map(|_| ())
    }

    fn about(&self) -> String {
        "meta-plugin that delegates to other CNI plugins".to_string()
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(flag) = args.next()
        && (flag == "-v" || build_info::is_version_flag(&flag))
    {
        println!("{}", build_info::version_line!("multus-shim"));
        return std::process::ExitCode::SUCCESS;
    }
    cni::skel::run(&Shim)
}
