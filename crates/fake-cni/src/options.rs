//! The `"fake"` object of the plugin's config: what the fake does (see README.md).

use cni::CniError;
use cni::error::code;
use cni::result::Dns;
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;

/// Env var: the record directory when the config names none.
pub const ENV_RECORD_DIR: &str = "FAKE_CNI_RECORD_DIR";
/// Env var: a JSON `"fake"` object; keys of the config's own `"fake"` object win.
pub const ENV_CONFIG: &str = "FAKE_CNI_CONFIG";
/// Env var: comma-separated supported versions when the config names none (VERSION probes
/// carry no `"fake"` object).
pub const ENV_SUPPORTED_VERSIONS: &str = "FAKE_CNI_SUPPORTED_VERSIONS";

/// The subnet used when none is configured.
pub const DEFAULT_SUBNET: &str = "10.10.0.0/16";

/// Every key of the `"fake"` object. Unknown keys are refused, so a typo fails loudly.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FakeOptions {
    /// Where `calls.jsonl` is appended; `None` (and no `FAKE_CNI_RECORD_DIR`) records nothing.
    pub record_dir: Option<PathBuf>,
    /// A literal ADD result (any version; a versionless one is read as the config's version).
    pub result: Option<Value>,
    /// The subnet the automatic result's address comes from (default [`DEFAULT_SUBNET`]).
    pub subnet: Option<IpNet>,
    /// Absent: the subnet's first host. `""`: no gateway.
    pub gateway: Option<String>,
    /// Route destinations, all via the gateway (default `["0.0.0.0/0"]` or `["::/0"]`).
    pub routes: Option<Vec<IpNet>>,
    /// The automatic result's `dns`.
    pub dns: Option<Dns>,
    /// The automatic result's `interfaces[0].mtu` (only 1.x results show it).
    pub mtu: Option<u32>,

    /// Commands that fail with the error below, after skel's own protocol checks.
    #[serde(default)]
    pub fail_on: Vec<String>,
    /// The configured failure's `code` (default [`DEFAULT_FAIL_CODE`]).
    pub fail_code: Option<u32>,
    /// The configured failure's `msg` (default [`DEFAULT_FAIL_MSG`]).
    pub fail_msg: Option<String>,
    /// The configured failure's `details` (default empty).
    pub fail_details: Option<String>,

    /// Milliseconds to sleep before acting, to exercise timeouts and concurrency (0: none).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Absent: every command.
    pub sleep_on: Option<Vec<String>>,

    /// Commands that kill the process with `signal`, leaving stdout empty (a crashed plugin).
    #[serde(default)]
    pub signal_on: Vec<String>,
    /// `KILL` (default), `SIGTERM`, `SEGV`, … or a number.
    pub signal: Option<String>,

    /// Commands that print `garbage` instead of answering (skel is bypassed).
    #[serde(default)]
    pub garbage_on: Vec<String>,
    /// What the garbage mode prints (default [`DEFAULT_GARBAGE`]).
    pub garbage: Option<String>,
    /// Commands that print nothing and exit (skel is bypassed).
    #[serde(default)]
    pub empty_on: Vec<String>,
    /// Exit status of the garbage and empty modes (default 0).
    pub exit_code: Option<u8>,

    /// Written (plus a newline) to stderr on every invocation: noise a caller must keep out of
    /// the result.
    pub stderr: Option<String>,
    /// What VERSION reports and what skel accepts as the config's `cniVersion` (default: every
    /// version `cni` knows, or `FAKE_CNI_SUPPORTED_VERSIONS`).
    pub supported_versions: Option<Vec<String>>,
    /// STATUS fails with this code (50 or 51 in the spec); `None`: STATUS succeeds.
    pub status_code: Option<u32>,
    /// The STATUS failure's `msg` (default [`DEFAULT_STATUS_MSG`]).
    pub status_msg: Option<String>,

    /// Start a background child (before the sleep) that outlives the plugin: it sleeps, then
    /// writes a marker file (a stand-in for an IPAM plugin allocating a lease late).
    pub spawn: Option<SpawnOptions>,
    /// Start a background child that keeps the plugin's stdout open for a while after the
    /// plugin answered and exited (a plugin whose helper inherited its stdout).
    pub hold_stdout: Option<HoldStdoutOptions>,
}

/// `"spawn"`: a background child started on the listed commands, before the sleep.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpawnOptions {
    /// The commands that start the child.
    pub on: Vec<String>,
    /// The child calls `setsid()` first: a session and process group of its own, out of reach
    /// of a `killpg` of the plugin's group.
    #[serde(default)]
    pub setsid: bool,
    /// How long the child sleeps before it writes the marker and exits.
    #[serde(default)]
    pub sleep_ms: u64,
    /// The marker file the child writes after its sleep (parent directories are created).
    /// `{containerId}`, `{ifname}`, `{command}` and `{pid}` (the plugin's pid) are replaced.
    pub touch: Option<String>,
}

/// `"holdStdout"`: a child that inherits the plugin's stdout and keeps it open for `ms`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldStdoutOptions {
    /// The commands that start the child.
    pub on: Vec<String>,
    /// How long the child keeps stdout open (then it exits).
    pub ms: u64,
    /// The child calls `setsid()` first (see [`SpawnOptions::setsid`]).
    #[serde(default)]
    pub setsid: bool,
}

/// `failCode` when unset: 100, the first code the spec leaves to plugins.
pub const DEFAULT_FAIL_CODE: u32 = 100;
/// `failMsg` when unset.
pub const DEFAULT_FAIL_MSG: &str = "fake-cni: configured failure";
/// `garbage` when unset: text that is not JSON, so callers hit their parse-error path.
pub const DEFAULT_GARBAGE: &str = "fake-cni: this is not JSON {";
/// `statusMsg` when unset.
pub const DEFAULT_STATUS_MSG: &str = "fake-cni: plugin not available";

/// Does a command list name `command`? `"*"` names every command.
pub fn names(list: &[String], command: &str) -> bool {
    list.iter().any(|c| c == "*" || c == command)
}

impl FakeOptions {
    /// Build the options from the parsed stdin (if it was JSON) and the environment.
    /// Never fails: an invalid `"fake"` object yields defaults plus the error to report
    /// (the record directory is still honoured when it can be found).
    pub fn load(config: Option<&Value>, env: &HashMap<String, String>) -> (Self, Option<CniError>) {
        let mut merged = Map::new();
        let mut error = None;
        if let Some(raw) = env.get(ENV_CONFIG).filter(|s| !s.trim().is_empty()) {
            match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(m)) => merged.extend(m),
                Ok(_) => error = Some(invalid(format!("{ENV_CONFIG} is not a JSON object"))),
                Err(e) => error = Some(invalid(format!("{ENV_CONFIG}: {e}"))),
            }
        }
        match config.and_then(|c| c.get("fake")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => merged.extend(m.clone()),
            Some(_) => error = Some(invalid("\"fake\" is not an object".into())),
        }
        let record_dir_hint = merged.get("recordDir").and_then(Value::as_str).map(PathBuf::from);
        let mut opts = match serde_json::from_value::<FakeOptions>(Value::Object(merged)) {
            Ok(o) => o,
            Err(e) => {
                error = error.or(Some(invalid(e.to_string())));
                FakeOptions { record_dir: record_dir_hint, ..Default::default() }
            }
        };
        if opts.record_dir.is_none() {
            opts.record_dir = env.get(ENV_RECORD_DIR).filter(|s| !s.is_empty()).map(PathBuf::from);
        }
        if opts.supported_versions.is_none() {
            opts.supported_versions = env
                .get(ENV_SUPPORTED_VERSIONS)
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect());
        }
        if let Some(sig) = opts.signal.as_deref().filter(|s| parse_signal(s).is_none()) {
            error = error.or(Some(invalid(format!("unknown signal {sig:?}"))));
        }
        (opts, error)
    }

    /// The error a command configured to fail returns.
    pub fn failure(&self) -> CniError {
        CniError::with_details(
            self.fail_code.unwrap_or(DEFAULT_FAIL_CODE),
            self.fail_msg.clone().unwrap_or_else(|| DEFAULT_FAIL_MSG.to_string()),
            self.fail_details.clone().unwrap_or_default(),
        )
    }

    /// Does `command` fail with [`FakeOptions::failure`]?
    pub fn fails_on(&self, command: &str) -> bool {
        names(&self.fail_on, command)
    }

    /// Does `command` sleep `sleep_ms` first? (`sleepOn` absent: every command.)
    pub fn sleeps_on(&self, command: &str) -> bool {
        self.sleep_ms > 0 && self.sleep_on.as_deref().is_none_or(|l| names(l, command))
    }

    /// The background child to start on `command`, if any.
    pub fn spawn_for(&self, command: &str) -> Option<&SpawnOptions> {
        self.spawn.as_ref().filter(|s| names(&s.on, command))
    }

    /// The stdout-holding child to start on `command`, if any.
    pub fn hold_stdout_for(&self, command: &str) -> Option<&HoldStdoutOptions> {
        self.hold_stdout.as_ref().filter(|h| names(&h.on, command))
    }

    /// The signal to die by on `command`, if any.
    pub fn signal_for(&self, command: &str) -> Option<nix::sys::signal::Signal> {
        if !names(&self.signal_on, command) {
            return None;
        }
        parse_signal(self.signal.as_deref().unwrap_or("KILL"))
    }
}

fn invalid(details: String) -> CniError {
    CniError::with_details(code::INVALID_NETWORK_CONFIG, "fake-cni: invalid \"fake\" config", details)
}

/// `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    use nix::sys::signal::Signal;
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn config_keys_win_over_the_env_object() {
        let config = json!({"fake": {"failOn": ["ADD"], "recordDir": "/a"}});
        let (o, err) = FakeOptions::load(
            Some(&config),
            &env(&[(ENV_CONFIG, r#"{"failOn":["DEL"],"sleepMs":5}"#), (ENV_RECORD_DIR, "/b")]),
        );
        assert!(err.is_none());
        assert_eq!(o.fail_on, ["ADD"]);
        assert_eq!(o.sleep_ms, 5);
        assert_eq!(o.record_dir, Some(PathBuf::from("/a")));
        let (o, _) = FakeOptions::load(None, &env(&[(ENV_RECORD_DIR, "/b"), (ENV_SUPPORTED_VERSIONS, "0.3.1, 1.0.0")]));
        assert_eq!(o.record_dir, Some(PathBuf::from("/b")));
        assert_eq!(o.supported_versions, Some(vec!["0.3.1".to_string(), "1.0.0".to_string()]));
    }

    #[test]
    fn typos_are_reported_but_the_record_dir_survives() {
        let config = json!({"fake": {"failOnn": ["ADD"], "recordDir": "/a"}});
        let (o, err) = FakeOptions::load(Some(&config), &env(&[]));
        let err = err.unwrap();
        assert_eq!(err.code, 7);
        assert!(err.details.contains("failOnn"), "{err:?}");
        assert_eq!(o.record_dir, Some(PathBuf::from("/a")));
        assert!(FakeOptions::load(Some(&json!({"fake": 5})), &env(&[])).1.is_some());
        assert!(FakeOptions::load(Some(&json!({"fake": {"signal": "NOPE"}})), &env(&[])).1.is_some());
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        use nix::sys::signal::Signal;
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s), Some(Signal::SIGKILL), "{s}");
        }
        assert_eq!(parse_signal("SEGV"), Some(Signal::SIGSEGV));
        assert_eq!(parse_signal("bogus"), None);
    }

    #[test]
    fn background_children_parse() {
        let config = json!({"fake": {"spawn": {"on": ["ADD"], "setsid": true, "sleepMs": 30, "touch": "/m/{containerId}"},
                                     "holdStdout": {"on": ["*"], "ms": 50}}});
        let (o, err) = FakeOptions::load(Some(&config), &env(&[]));
        assert!(err.is_none(), "{err:?}");
        let s = o.spawn_for("ADD").unwrap();
        assert!(s.setsid && s.sleep_ms == 30 && s.touch.as_deref() == Some("/m/{containerId}"));
        assert!(o.spawn_for("DEL").is_none());
        assert_eq!(o.hold_stdout_for("CHECK").map(|h| (h.ms, h.setsid)), Some((50, false)));
        let (_, err) = FakeOptions::load(Some(&json!({"fake": {"spawn": {"on": ["ADD"], "sleep": 1}}})), &env(&[]));
        assert!(err.is_some_and(|e| e.details.contains("sleep")), "unknown keys inside spawn are refused");
        let (_, err) = FakeOptions::load(Some(&json!({"fake": {"holdStdout": {"on": ["ADD"]}}})), &env(&[]));
        assert!(err.is_some(), "holdStdout needs ms");
    }

    #[test]
    fn command_lists() {
        let (o, _) = FakeOptions::load(Some(&json!({"fake": {"sleepMs": 1, "failOn": ["*"]}})), &env(&[]));
        assert!(o.sleeps_on("ADD") && o.sleeps_on("VERSION"));
        assert!(o.fails_on("GC"));
        let (o, _) = FakeOptions::load(Some(&json!({"fake": {"sleepMs": 1, "sleepOn": ["DEL"]}})), &env(&[]));
        assert!(!o.sleeps_on("ADD") && o.sleeps_on("DEL"));
    }
}
