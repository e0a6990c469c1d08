//! `multus-shim`: the CNI plugin a container runtime executes for the Multus thick plugin.
//!
//! It holds no state. Each invocation waits until the daemon is ready, forwards the CNI
//! environment and stdin as one `POST /cni` over the daemon's unix socket, and turns the reply
//! into CNI output. Deliberate differences from the Go shim (see `docs/thick-api.md`):
//! - only `CNI_*` and `K8S_POD_INFRA_CONTAINER_ID` are forwarded, not the whole environment
//!   (the Go daemon reads nothing else, so either daemon works with this shim);
//! - a CNI error object from the daemon keeps its code (the Go shim turns everything into 999);
//! - a daemon without `/readyz` (v4.2.x) is detected and `/healthz` is used instead;
//! - STATUS probes readiness once and answers code 50 at once when the daemon is not ready,
//!   instead of blocking the runtime's status poll for a minute.
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

struct Shim;

impl Shim {
    /// Send the invocation to the daemon and return the raw reply.
    fn forward(settings: &ShimSettings, req: &Request) -> Result<HttpResponse, String> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let body = multus_api::Request::from_env(env, req.stdin.clone()).to_json();
        client::post(&settings.socket, path::CNI, &body, None)
            .map_err(|e| format!("failed to send CNI request: Post \"http://dummy/cni\": {e}"))
    }

    /// Gate, forward, and map a non-200 reply to a CNI error that keeps the daemon's code.
    fn call(&self, req: &Request, verb: &str, wait: Duration) -> Result<HttpResponse, CniError> {
        let settings = ShimSettings::from_request(req);
        let fail = |code: u32, msg: String| {
            settings.log.error(&format!("{verb} (shim): {msg}"));
            CniError::new(code, format!("{verb} (shim): {msg}"))
        };
        if let Err(why) = wait_ready(&settings, wait) {
            let code = if req.command() == cni::Command::Status { code::PLUGIN_NOT_AVAILABLE } else { code::INTERNAL };
            return Err(fail(code, why));
        }
        let reply = Self::forward(&settings, req).map_err(|e| {
            let code = if req.command() == cni::Command::Status { code::PLUGIN_NOT_AVAILABLE } else { code::INTERNAL };
            fail(code, e)
        })?;
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
        let reply = self.call(req, "CmdAdd", ready_wait())?;
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

    fn del(&self, req: &Request) -> Result<(), CniError> {
        let settings = ShimSettings::from_request(req);
        // DEL probes once: a runtime tearing down a sandbox must not wait for a dead daemon.
        if let Probe::NotReady(why) = probe(&settings, path::HEALTHZ) {
            settings.log.error(&format!("CmdDel (shim): CheckAPIReadyNow: {why}"));
            return Ok(());
        }
        if let Err(e) = self.call(req, "CmdDel", Duration::ZERO) {
            settings.log.error(&e.msg);
        }
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdCheck", ready_wait()).map(|_| ())
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdStatus", Duration::ZERO).map(|_| ())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.call(req, "CmdGC", ready_wait()).map(|_| ())
    }

    fn about(&self) -> String {
        "meta-plugin that delegates to other CNI plugins".to_string()
    }
}

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(flag) = args.next()
        && matches!(flag.as_str(), "-version" | "--version" | "-v")
    {
        println!("multus-shim: version:{} (multus-rs)", env!("CARGO_PKG_VERSION"));
        return std::process::ExitCode::SUCCESS;
    }
    cni::skel::run(&Shim)
}
