//! Writing a CNI plugin as a trait implementation (the Go `pkg/skel`, cni.md §1).
//!
//! A plugin implements [`Plugin`]; its `main` calls [`run`]. Everything protocol-level is done
//! here, in the order of the current Go `skel`:
//!
//! 1. `CNI_COMMAND` unset or empty: the "about" banner and `CNI protocol versions supported: …`
//!    on **stderr**, exit 0.
//! 2. Environment presence per command (code 4, every missing variable listed), unknown command
//!    (code 4), container ID (code 3 when empty, 4 when malformed) and interface name (code 4)
//!    for ADD/CHECK/DEL — see [`PluginEnv::from_map`].
//! 3. stdin is read (code 5 on an I/O failure); VERSION never reads it.
//! 4. Except for VERSION: the config must be a JSON object (code 6) with a valid `name`
//!    (code 7) and a string `cniVersion` if any (code 6).
//! 5. Version reconciliation ([`reconcile`]): CHECK needs ≥ 0.4.0, GC and STATUS ≥ 1.1.0
//!    (code 1 "config version does not allow …"); the config version must be one of the
//!    plugin's supported versions, compared as strings like Go (code 1 "incompatible CNI
//!    versions", details `config is "X", plugin supports ["a" "b"]`).
//! 6. The callback. ADD's result is converted to the config's `cniVersion` and printed with
//!    4-space indentation; DEL/CHECK/STATUS/GC print nothing on success; VERSION prints
//!    `{"cniVersion":…,"supportedVersions":[…]}` and a newline.
//!
//! Any failure prints exactly one error object on stdout (4-space indented, no `cniVersion`,
//! as Go's `types.Error.Print`) and exits 1. A panicking callback becomes code 999.
//!
//! Divergences from Go, on purpose: the banner is printed (exit 0) even when [`Plugin::about`]
//! is empty (Go then reports code 4 "required env variables \[CNI_COMMAND\] missing"); an unknown
//! command is reported before stdin is read (Go reads and validates the config first).

use crate::args::CniArgs;
use crate::env::{Command, PluginEnv};
use crate::error::{CniError, code};
use crate::result::CniResult;
use crate::validate;
use crate::version::{self, Version, VersionInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The GC key naming the attachments that are still valid.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
/// The key's name in the spec-v1.1.0 tag; libcni sends both.
pub const LEGACY_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// One entry of `cni.dev/valid-attachments`: an attachment GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidAttachment {
    /// The container the attachment belongs to.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The attachment's interface inside the container.
    #[serde(rename = "ifname")]
    pub ifname: String,
}

/// One invocation, after the protocol checks passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The `CNI_*` variables.
    pub env: PluginEnv,
    /// stdin exactly as received.
    pub stdin: Vec<u8>,
    /// The request config (stdin parsed). Empty for VERSION.
    pub config: Map<String, Value>,
    /// The config's `cniVersion` (absent or empty means 0.1.0).
    pub cni_version: Version,
    /// The network name (empty for VERSION).
    pub name: String,
}

impl Request {
    /// The command being run.
    pub fn command(&self) -> Command {
        self.env.command
    }

    /// The config's `type` (empty if absent or not a string).
    pub fn plugin_type(&self) -> &str {
        self.config.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// `prevResult`, parsed; a versionless one takes the config's version. `None` when absent
    /// or `null`; a malformed one is a decoding error (code 6).
    pub fn prev_result(&self) -> Option<Result<CniResult, CniError>> {
        let raw = self.config.get("prevResult").filter(|v| !v.is_null())?;
        Some(
            CniResult::from_value_with_default(raw, Some(self.cni_version)).map_err(|e| {
                CniError::with_details(code::DECODING_FAILURE, "could not parse prevResult", e.to_string())
            }),
        )
    }

    /// `runtimeConfig`, when present and not `null`.
    pub fn runtime_config(&self) -> Option<&Value> {
        self.config.get("runtimeConfig").filter(|v| !v.is_null())
    }

    /// `CNI_ARGS` parsed leniently: items without `=` are skipped.
    pub fn args(&self) -> CniArgs {
        let mut args = CniArgs::new();
        for item in self.env.args.split(';') {
            if let Some((k, v)) = item.split_once('=') {
                args.push(k, v);
            }
        }
        args
    }

    /// GC's list of attachments to keep: `cni.dev/valid-attachments`, or the legacy
    /// `cni.dev/attachments` when the new key is absent. `Ok(None)` when neither key is present
    /// (`cnitool gc`: nothing is known to be valid); `null` and `[]` both give `Ok(Some([]))`.
    /// A malformed list is an invalid config (code 7).
    pub fn valid_attachments(&self) -> Result<Option<Vec<ValidAttachment>>, CniError> {
        let (key, raw) = match (self.config.get(VALID_ATTACHMENTS_KEY), self.config.get(LEGACY_ATTACHMENTS_KEY)) {
            (Some(v), _) => (VALID_ATTACHMENTS_KEY, v),
            (None, Some(v)) => (LEGACY_ATTACHMENTS_KEY, v),
            (None, None) => return Ok(None),
        };
        if raw.is_null() {
            return Ok(Some(Vec::new()));
        }
        serde_json::from_value(raw.clone())
            .map(Some)
            .map_err(|e| CniError::with_details(code::INVALID_NETWORK_CONFIG, format!("invalid {key}"), e.to_string()))
    }
}

/// A CNI plugin. Each method is one `CNI_COMMAND`; the [`Request`] has passed every protocol
/// check when it is called.
pub trait Plugin {
    /// ADD. The result may be of any version: it is converted to the config's `cniVersion`.
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    /// DEL: release what ADD set up; succeed when it is already gone.
    fn del(&self, req: &Request) -> Result<(), CniError>;
    /// CHECK: fail when the attachment is no longer as ADD left it (default: succeed).
    fn check(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    /// STATUS: fail with code 50 or 51 when ADDs cannot be served now (default: ready).
    fn status(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    /// GC: release everything not in `cni.dev/valid-attachments` (default: nothing to do).
    fn gc(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }
    /// The versions this plugin accepts in configs (default: all of [`version::ALL`]).
    fn supported_versions(&self) -> Vec<String> {
        version::ALL.iter().map(|s| s.to_string()).collect()
    }
    /// What VERSION prints (default: [`version::CURRENT`] and [`Plugin::supported_versions`]).
    fn version_info(&self) -> VersionInfo {
        VersionInfo { cni_version: version::CURRENT.to_string(), supported_versions: self.supported_versions() }
    }
    /// A one-line description printed when the binary is run without `CNI_COMMAND`.
    fn about(&self) -> String {
        String::new()
    }
}

/// Run `plugin` as the current process: reads the process environment and stdin, writes
/// stdout/stderr, and returns the exit status for `main` to return.
pub fn run(plugin: &dyn Plugin) -> std::process::ExitCode {
    let env: HashMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let status = run_with(plugin, &env, &mut stdin, &mut stdout, &mut stderr);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}

/// The testable core of [`run`]: returns the exit status (0 or 1).
pub fn run_with(
    plugin: &dyn Plugin,
    env: &HashMap<String, String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    if env.get("CNI_COMMAND").is_none_or(|c| c.is_empty()) {
        let about = plugin.about();
        if !about.is_empty() {
            let _ = writeln!(stderr, "{about}");
        }
        let _ = writeln!(stderr, "CNI protocol versions supported: {}", plugin.supported_versions().join(", "));
        let _ = stderr.flush();
        return 0;
    }
    match dispatch(plugin, env, stdin, stdout) {
        Ok(()) => {
            let _ = stdout.flush();
            0
        }
        Err(e) => {
            let _ = stdout.write_all(e.to_json_pretty().as_bytes());
            let _ = stdout.flush();
            1
        }
    }
}

fn dispatch(
    plugin: &dyn Plugin,
    env: &HashMap<String, String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<(), CniError> {
    let plugin_env = PluginEnv::from_map(env)?;
    let command = plugin_env.command;
    if command == Command::Version {
        let mut out =
            serde_json::to_vec(&plugin.version_info()).map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))?;
        out.push(b'\n');
        return stdout.write_all(&out).map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()));
    }
    let mut data = Vec::new();
    stdin
        .read_to_end(&mut data)
        .map_err(|e| CniError::new(code::IO_FAILURE, format!("error reading from stdin: {e}")))?;
    let (config, name, config_version) = decode_config(&data)?;
    let cni_version = reconcile(command, &config_version, &plugin.supported_versions())?;
    let req = Request { env: plugin_env, stdin: data, config, cni_version, name };
    match command {
        Command::Add => {
            let result = guarded(|| plugin.add(&req))?;
            let result =
                result.convert_to(req.cni_version).map_err(|e| CniError::new(code::INTERNAL, e.to_string()))?;
            stdout
                .write_all(result.to_json_pretty().as_bytes())
                .map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))
        }
        Command::Del => guarded(|| plugin.del(&req)),
        Command::Check => guarded(|| plugin.check(&req)),
        Command::Status => guarded(|| plugin.status(&req)),
        Command::Gc => guarded(|| plugin.gc(&req)),
        Command::Version => Ok(()),
    }
}

/// Run a plugin callback; a panic becomes a code-999 error instead of killing the process
/// without an error object.
fn guarded<T>(f: impl FnOnce() -> Result<T, CniError>) -> Result<T, CniError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(CniError::with_details(code::INTERNAL, "plugin panicked", what))
    })
}

/// Decode a request config as `skel` does: a JSON object (code 6) whose `name` is valid
/// (code 7) and whose `cniVersion`, if present, is a string (code 6; empty or absent means
/// "0.1.0"). Returns the object, the name and the version string.
pub fn decode_config(data: &[u8]) -> Result<(Map<String, Value>, String, String), CniError> {
    let decoding = |msg: String| CniError::new(code::DECODING_FAILURE, msg);
    let config = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => m,
        // Go unmarshals `null` into an empty struct: the name is then missing.
        Ok(Value::Null) => Map::new(),
        Ok(other) => {
            return Err(decoding(format!(
                "error unmarshall network config: cannot unmarshal {} into a network config object",
                json_kind(&other)
            )));
        }
        Err(e) => return Err(decoding(format!("error unmarshall network config: {e}"))),
    };
    let name = match config.get("name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(decoding(format!(
                "error unmarshall network config: cannot unmarshal {} into field name of type string",
                json_kind(other)
            )));
        }
    };
    validate::validate_network_name(&name)?;
    let config_version = match config.get("cniVersion") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(decoding(format!(
                "decoding version from network config: cannot unmarshal {} into field cniVersion of type string",
                json_kind(other)
            )));
        }
    };
    let config_version = if config_version.is_empty() { "0.1.0".to_string() } else { config_version };
    Ok((config, name, config_version))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Version reconciliation for one command, as `skel` does it: the CHECK (≥ 0.4.0) and
/// GC/STATUS (≥ 1.1.0) gates, then string membership of `config_version` in `supported`.
/// Returns the parsed config version.
pub fn reconcile(command: Command, config_version: &str, supported: &[String]) -> Result<Version, CniError> {
    let decoding = |e: version::ParseVersionError| CniError::new(code::DECODING_FAILURE, e.to_string());
    let gate = match command {
        Command::Check => Some(Version::V0_4_0),
        Command::Gc | Command::Status => Some(Version::V1_1_0),
        _ => None,
    };
    if let Some(min) = gate {
        let v = Version::parse(config_version).map_err(decoding)?;
        if v < min {
            return Err(CniError::new(
                code::INCOMPATIBLE_CNI_VERSION,
                format!("config version does not allow {}", command.as_str()),
            ));
        }
        let mut plugin_allows = false;
        for p in supported {
            if Version::parse(p).map_err(decoding)? >= v {
                plugin_allows = true;
                break;
            }
        }
        if !plugin_allows {
            return Err(CniError::new(
                code::INCOMPATIBLE_CNI_VERSION,
                format!("plugin version does not allow {}", command.as_str()),
            ));
        }
    }
    if !supported.iter().any(|s| s == config_version) {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        return Err(CniError::with_details(
            code::INCOMPATIBLE_CNI_VERSION,
            "incompatible CNI versions",
            format!("config is {}, plugin supports [{}]", go_quote(config_version), quoted.join(" ")),
        ));
    }
    Version::parse(config_version).map_err(decoding)
}

/// Go's `%q` for the strings that occur here (JSON string escaping is close enough).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}
