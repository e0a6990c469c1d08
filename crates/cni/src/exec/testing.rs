//! A recording fake executor: scripted replies per plugin type (and command), every call
//! recorded with its type, environment and stdin. No processes, no files.
//!
//! ```
//! use cni::exec::testing::{RecordingExec, Reply};
//! use cni::env::Command;
//! let exec = RecordingExec::new();
//! exec.on("bridge", Command::Add, Reply::stdout(r#"{"cniVersion":"1.0.0"}"#));
//! exec.on_any("portmap", Reply::error(cni::CniError::new(11, "try later")));
//! // … run a CniRuntime with exec.clone(), then inspect exec.calls()
//! ```
//!
//! Without a matching rule a plugin behaves like a well-mannered no-op: ADD echoes its
//! `prevResult` (or answers an empty result of the config's version), VERSION answers every
//! version, everything else succeeds silently.

use super::*;
use crate::env::Command;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;

/// One recorded plugin run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCall {
    /// The binary's file name: the plugin type.
    pub plugin_type: String,
    /// The path the run was asked for.
    pub path: PathBuf,
    /// The request's environment, in order.
    pub env: Vec<(String, String)>,
    /// The request config as written to stdin.
    pub stdin: Vec<u8>,
}

impl ExecCall {
    /// The last value of an environment variable.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `CNI_COMMAND`.
    pub fn command(&self) -> &str {
        self.env_var("CNI_COMMAND").unwrap_or("")
    }

    /// stdin as JSON (`Null` when it is not JSON).
    pub fn stdin_json(&self) -> Value {
        serde_json::from_slice(&self.stdin).unwrap_or(Value::Null)
    }
}

type Handler = Arc<dyn Fn(&ExecCall) -> Result<Vec<u8>, ExecError> + Send + Sync>;

/// What a faked plugin does.
#[derive(Clone)]
pub enum Reply {
    /// Exit 0 with this stdout.
    Stdout(Vec<u8>),
    /// Fail with this error.
    Fail(ExecError),
    /// Pretend a process ended like this; read with the real rules ([`interpret_output`]).
    Process {
        /// How the pretend process ended.
        exit: ProcessExit,
        /// What it printed.
        stdout: Vec<u8>,
        /// What it wrote to stderr.
        stderr: Vec<u8>,
    },
    /// Compute the outcome from the call.
    With(Handler),
    /// Never finish: a request with a timeout fails with [`ExecError::Timeout`] when it
    /// expires; without one it stays pending until dropped.
    Hang,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout(s) => f.debug_tuple("Stdout").field(&String::from_utf8_lossy(s)).finish(),
            Self::Fail(e) => f.debug_tuple("Fail").field(e).finish(),
            Self::Process { exit, .. } => f.debug_struct("Process").field("exit", exit).finish_non_exhaustive(),
            Self::With(_) => f.write_str("With(..)"),
            Self::Hang => f.write_str("Hang"),
        }
    }
}

impl Reply {
    /// Exit 0 with this stdout (a result for ADD, a VERSION answer, …).
    pub fn stdout(s: impl Into<Vec<u8>>) -> Self {
        Self::Stdout(s.into())
    }
    /// Exit 0 with no output (DEL/CHECK/STATUS/GC success).
    pub fn ok() -> Self {
        Self::Stdout(Vec::new())
    }
    /// A plugin error object on stdout with exit 1.
    pub fn error(e: CniError) -> Self {
        Self::Fail(ExecError::Plugin(e))
    }
    /// Compute the outcome from the call with `f` (e.g. to answer by `CNI_IFNAME`).
    pub fn with(f: impl Fn(&ExecCall) -> Result<Vec<u8>, ExecError> + Send + Sync + 'static) -> Self {
        Self::With(Arc::new(f))
    }
}

#[derive(Debug)]
struct Rule {
    plugin_type: String,
    command: Option<Command>,
    reply: Reply,
    once: bool,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<ExecCall>,
    missing: HashSet<String>,
}

/// The fake. Clones share state: keep one, give a clone to the code under test.
#[derive(Debug, Clone, Default)]
pub struct RecordingExec {
    state: Arc<Mutex<State>>,
}

impl RecordingExec {
    /// A fake without rules: every plugin behaves as the no-op of the module documentation.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, plugin_type: &str, command: Option<Command>, reply: Reply, once: bool) -> &Self {
        self.state().rules.push(Rule { plugin_type: plugin_type.to_string(), command, reply, once });
        self
    }

    /// Every `command` call to `plugin_type` gets `reply` (a later rule overrides an earlier one).
    pub fn on(&self, plugin_type: &str, command: Command, reply: Reply) -> &Self {
        self.push(plugin_type, Some(command), reply, false)
    }

    /// Every call to `plugin_type`, whatever the command.
    pub fn on_any(&self, plugin_type: &str, reply: Reply) -> &Self {
        self.push(plugin_type, None, reply, false)
    }

    /// The next `command` call only (one-shot rules are used first, in order).
    pub fn once(&self, plugin_type: &str, command: Command, reply: Reply) -> &Self {
        self.push(plugin_type, Some(command), reply, true)
    }

    /// [`Exec::find_plugin`] fails with [`ExecError::NotFound`] for this type.
    pub fn not_found(&self, plugin_type: &str) -> &Self {
        self.state().missing.insert(plugin_type.to_string());
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ExecCall> {
        self.state().calls.clone()
    }

    /// `(plugin type, CNI_COMMAND)` of every call, in order.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.state().calls.iter().map(|c| (c.plugin_type.clone(), c.command().to_string())).collect()
    }

    /// Forget the calls recorded so far (the rules stay).
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    fn reply_for(&self, call: &ExecCall) -> Option<Reply> {
        let command: Option<Command> = call.command().parse().ok();
        let matches = |r: &Rule| r.plugin_type == call.plugin_type && (r.command.is_none() || r.command == command);
        let mut state = self.state();
        if let Some(i) = state.rules.iter().position(|r| r.once && matches(r)) {
            return Some(state.rules.remove(i).reply);
        }
        state.rules.iter().rev().find(|r| !r.once && matches(r)).map(|r| r.reply.clone())
    }
}

/// The no-rule behaviour described in the module docs.
pub fn default_reply(call: &ExecCall) -> Result<Vec<u8>, ExecError> {
    match call.command() {
        "ADD" => {
            let conf = call.stdin_json();
            let out = match conf.get("prevResult") {
                Some(prev) if !prev.is_null() => prev.clone(),
                _ => {
                    serde_json::json!({ "cniVersion": conf.get("cniVersion").cloned().unwrap_or(Value::from("")) })
                }
            };
            Ok(out.to_string().into_bytes())
        }
        "VERSION" => Ok(serde_json::to_vec(&crate::version::VersionInfo::all()).unwrap_or_default()),
        _ => Ok(Vec::new()),
    }
}

impl Exec for RecordingExec {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        let call = ExecCall {
            plugin_type: req.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            path: req.path.to_path_buf(),
            env: req.env.clone(),
            stdin: req.stdin.to_vec(),
        };
        self.state().calls.push(call.clone());
        let reply = self.reply_for(&call);
        Box::pin(async move {
            match reply {
                None => default_reply(&call),
                Some(Reply::Stdout(s)) => Ok(s),
                Some(Reply::Fail(e)) => Err(e),
                Some(Reply::Process { exit, stdout, stderr }) => interpret_output(&call.path, exit, stdout, &stderr),
                Some(Reply::With(f)) => f(&call),
                Some(Reply::Hang) => match req.timeout {
                    Some(t) => {
                        tokio::time::sleep(t).await;
                        Err(ExecError::Timeout { plugin: call.path.clone(), after: t })
                    }
                    None => std::future::pending().await,
                },
            }
        })
    }

    /// Same name rules as [`find_in_path`], but nothing is looked up on disk: the plugin
    /// "lives" in the first directory.
    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        check_plugin_name(plugin_type)?;
        let first = dirs.first().ok_or(ExecError::NoPaths)?;
        if self.state().missing.contains(plugin_type) {
            return Err(ExecError::NotFound { plugin: plugin_type.to_string(), dirs: dirs.to_vec() });
        }
        Ok(first.join(plugin_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("CNI_COMMAND".into(), "ADD".into()), ("CNI_IFNAME".into(), "eth0".into())]
    }

    #[tokio::test]
    async fn recording_fake_scripts_and_records() {
        use crate::env::Command;
        use testing::{RecordingExec, Reply};
        let fake = RecordingExec::new();
        fake.on("bridge", Command::Add, Reply::stdout("A"));
        fake.once("bridge", Command::Add, Reply::stdout("first"));
        fake.on_any("bad", Reply::error(CniError::new(50, "down")));
        fake.not_found("gone");
        let dirs = [PathBuf::from("/opt/cni/bin")];
        let path = fake.find_plugin("bridge", &dirs).unwrap();
        assert_eq!(path, Path::new("/opt/cni/bin/bridge"));
        assert!(matches!(fake.find_plugin("gone", &dirs), Err(ExecError::NotFound { .. })));
        assert!(matches!(fake.find_plugin("../x", &dirs), Err(ExecError::InvalidName { .. })));
        assert_eq!(fake.exec(PluginRequest::new(&path, env(), b"{}")).await.unwrap(), b"first");
        assert_eq!(fake.exec(PluginRequest::new(&path, env(), b"{}")).await.unwrap(), b"A");
        let bad = PathBuf::from("/opt/cni/bin/bad");
        assert_eq!(fake.exec(PluginRequest::new(&bad, env(), b"{}")).await.unwrap_err().to_cni_error().code, 50);
        // No rule: ADD echoes prevResult.
        let other = PathBuf::from("/opt/cni/bin/other");
        let out = fake
            .exec(PluginRequest::new(
                &other,
                env(),
                br#"{"cniVersion":"1.0.0","prevResult":{"cniVersion":"1.0.0","ips":[]}}"#,
            ))
            .await
            .unwrap();
        assert_eq!(out, br#"{"cniVersion":"1.0.0","ips":[]}"#);
        let calls = fake.calls();
        assert_eq!(calls.len(), 4);
        assert_eq!(calls[0].plugin_type, "bridge");
        assert_eq!(calls[0].command(), "ADD");
        assert_eq!(calls[0].env_var("CNI_IFNAME"), Some("eth0"));
    }
}
