//! `fake-cni`: a scriptable fake delegate plugin built on [`cni::skel`], and the helpers other
//! crates' tests use to read what it received.
//!
//! The binary's behaviour comes from a `"fake"` object in its own config (or the
//! `FAKE_CNI_CONFIG` env var); see `README.md` for every key. Every invocation — failing ones
//! and VERSION included — is first appended as one JSON line ([`Call`]) to
//! `<recordDir>/calls.jsonl`; [`read_calls`] reads them back in order.

#![warn(missing_docs)]

pub mod child;
pub mod options;
pub mod plugin;
pub mod record;

pub use options::FakeOptions;
pub use plugin::FakePlugin;
pub use record::{CALLS_FILE, Call, append_call, read_calls, try_read_calls};

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Read, Write};

/// What one process invocation received.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The process environment (lossily decoded).
    pub env: HashMap<String, String>,
    /// `argv[0]` as the binary was called.
    pub argv0: String,
    /// stdin, or the error reading it (shared: an invocation is cloned).
    pub stdin: Result<Vec<u8>, std::sync::Arc<std::io::Error>>,
    /// The process ID.
    pub pid: u32,
    /// When it started, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Invocation {
    /// The current process's invocation. VERSION does not wait on an interactive stdin.
    pub fn from_process() -> Self {
        let env: HashMap<String, String> = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
            .collect();
        let argv0 = std::env::args_os()
            .next()
            .map(|a| {
                let p = std::path::PathBuf::from(a);
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let command = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
        let stdin = if (command == "VERSION" || command.is_empty()) && std::io::stdin().is_terminal() {
            Ok(Vec::new())
        } else {
            let mut buf = Vec::new();
            std::io::stdin().lock().read_to_end(&mut buf).map(|_| buf).map_err(std::sync::Arc::new)
        };
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self { env, argv0, stdin, pid: std::process::id(), time_ms }
    }

    fn var(&self, k: &str) -> String {
        self.env.get(k).cloned().unwrap_or_default()
    }

    /// The record line for this invocation.
    pub fn to_call(&self, config: Option<&Value>) -> Call {
        let stdin = match (&self.stdin, config) {
            (_, Some(v)) => v.clone(),
            (Ok(bytes), None) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            (Err(_), None) => Value::Null,
        };
        let field = |k: &str| config.and_then(|c| c.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
        Call {
            command: self.var("CNI_COMMAND"),
            container_id: self.var("CNI_CONTAINERID"),
            netns: self.var("CNI_NETNS"),
            ifname: self.var("CNI_IFNAME"),
            args: self.var("CNI_ARGS"),
            path: self.var("CNI_PATH"),
            argv0: self.argv0.clone(),
            plugin_type: field("type"),
            name: field("name"),
            stdin,
            env: self
                .env
                .iter()
                .filter(|(k, _)| k.starts_with("CNI_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            pid: self.pid,
            time: self.time_ms,
        }
    }
}

/// A reader that fails the way the real stdin did.
struct FailedRead(std::sync::Arc<std::io::Error>);

impl Read for FailedRead {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other(self.0.to_string()))
    }
}

/// Run the fake for one invocation: record, then stderr noise, background children, sleep,
/// signal, garbage/empty output, or the normal skel dispatch. Returns the exit status (unless a signal kills the
/// process first).
pub fn run(inv: &Invocation, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let config: Option<Value> = inv.stdin.as_ref().ok().and_then(|b| serde_json::from_slice(b).ok());
    let (options, options_error) = FakeOptions::load(config.as_ref(), &inv.env);
    let command = inv.env.get("CNI_COMMAND").cloned().unwrap_or_default();

    if let Some(dir) = &options.record_dir
        && let Err(e) = append_call(dir, &inv.to_call(config.as_ref()))
    {
        let err = cni::CniError::with_details(
            cni::error::code::IO_FAILURE,
            "fake-cni: cannot record the call",
            format!("{}: {e}", dir.display()),
        );
        let _ = stdout.write_all(err.to_json_pretty().as_bytes());
        return 1;
    }
    if let Some(noise) = &options.stderr {
        let _ = writeln!(stderr, "{noise}");
        let _ = stderr.flush();
    }
    let children = [
        options.spawn_for(&command).map(|s| (child::spawn_plan(s, &inv.env, inv.pid), false)),
        options.hold_stdout_for(&command).map(|h| (child::hold_plan(h, &inv.env, inv.pid), true)),
    ];
    for (plan, hold_stdout) in children.into_iter().flatten() {
        if let Err(e) = child::start(&plan, hold_stdout) {
            let err = cni::CniError::with_details(
                cni::error::code::INTERNAL,
                "fake-cni: cannot start the background child",
                e.to_string(),
            );
            let _ = stdout.write_all(err.to_json_pretty().as_bytes());
            return 1;
        }
    }
    if options.sleeps_on(&command) {
        std::thread::sleep(std::time::Duration::from_millis(options.sleep_ms));
    }
    if let Some(sig) = options.signal_for(&command) {
        let _ = stdout.flush();
        let _ = stderr.flush();
        // Twice: Rust's runtime handles the first SIGSEGV/SIGBUS by restoring the default action
        // and returning when the fault is not a stack overflow.
        for _ in 0..2 {
            let _ = nix::sys::signal::raise(sig);
        }
        let _ = writeln!(stderr, "fake-cni: signal {sig} did not kill the process");
        return 1;
    }
    if options::names(&options.garbage_on, &command) {
        let text = options.garbage.clone().unwrap_or_else(|| options::DEFAULT_GARBAGE.to_string());
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
        return i32::from(options.exit_code.unwrap_or(0));
    }
    if options::names(&options.empty_on, &command) {
        return i32::from(options.exit_code.unwrap_or(0));
    }
    let plugin = FakePlugin { options, options_error };
    match &inv.stdin {
        Ok(bytes) => cni::skel::run_with(&plugin, &inv.env, &mut bytes.as_slice(), stdout, stderr),
        Err(e) => cni::skel::run_with(&plugin, &inv.env, &mut FailedRead(e.clone()), stdout, stderr),
    }
}
