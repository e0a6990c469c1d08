//! Background children (`"spawn"`, `"holdStdout"`): the plugin re-executes its own binary with
//! [`ENV_CHILD`] set to a [`ChildPlan`], and does not wait for it. The child optionally calls
//! `setsid()`, sleeps, optionally writes a marker file, and exits 0. Its command line is
//! `<fake-cni binary> spawned-child`, and it inherits the plugin's environment (so a caller's
//! marker variables and `CNI_CONTAINERID` tell whose it is).

use crate::options::{HoldStdoutOptions, SpawnOptions};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;

/// Env var: the plan of a background child (JSON [`ChildPlan`]); set, the binary is that child.
pub const ENV_CHILD: &str = "FAKE_CNI_CHILD";
/// The child's `argv[1]`, so that it stands out in `ps`.
pub const CHILD_ARG: &str = "spawned-child";

/// What a background child does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildPlan {
    /// Call `setsid()` first.
    #[serde(default)]
    pub setsid: bool,
    /// Sleep this long.
    #[serde(default)]
    pub sleep_ms: u64,
    /// Then write this file (parent directories created), if set.
    #[serde(default)]
    pub touch: Option<PathBuf>,
    /// Written into the marker as `"by"` (which invocation started the child).
    #[serde(default)]
    pub by: serde_json::Value,
}

/// `{containerId}`, `{ifname}`, `{command}` and `{pid}` in `template`, from the invocation.
pub fn expand(template: &str, env: &HashMap<String, String>, pid: u32) -> String {
    let var = |k: &str| env.get(k).cloned().unwrap_or_default();
    template
        .replace("{containerId}", &var("CNI_CONTAINERID"))
        .replace("{ifname}", &var("CNI_IFNAME"))
        .replace("{command}", &var("CNI_COMMAND"))
        .replace("{pid}", &pid.to_string())
}

fn who(env: &HashMap<String, String>, pid: u32) -> serde_json::Value {
    let var = |k: &str| env.get(k).cloned().unwrap_or_default();
    serde_json::json!({"command": var("CNI_COMMAND"), "containerId": var("CNI_CONTAINERID"),
                       "ifname": var("CNI_IFNAME"), "pluginPid": pid})
}

/// The plan for `"spawn"` in the invocation described by `env` (plugin `pid`).
pub fn spawn_plan(opts: &SpawnOptions, env: &HashMap<String, String>, pid: u32) -> ChildPlan {
    ChildPlan {
        setsid: opts.setsid,
        sleep_ms: opts.sleep_ms,
        touch: opts.touch.as_deref().map(|t| PathBuf::from(expand(t, env, pid))),
        by: who(env, pid),
    }
}

/// The plan for `"holdStdout"`.
pub fn hold_plan(opts: &HoldStdoutOptions, env: &HashMap<String, String>, pid: u32) -> ChildPlan {
    ChildPlan { setsid: opts.setsid, sleep_ms: opts.ms, touch: None, by: who(env, pid) }
}

/// Start the child (this binary again) and leave it running. With `hold_stdout` it inherits
/// the plugin's stdout; otherwise its stdio is `/dev/null`. Returns its pid.
pub fn start(plan: &ChildPlan, hold_stdout: bool) -> std::io::Result<u32> {
    let exe = std::env::current_exe()?;
    let json = serde_json::to_string(plan).map_err(std::io::Error::other)?;
    let child = std::process::Command::new(exe)
        .arg(CHILD_ARG)
        .env(ENV_CHILD, json)
        .stdin(Stdio::null())
        .stdout(if hold_stdout { Stdio::inherit() } else { Stdio::null() })
        .stderr(Stdio::null())
        .spawn()?;
    // Not waited for: it outlives the plugin (and is reparented when the plugin exits).
    Ok(child.id())
}

/// The child's side: `setsid()`, sleep, marker. The exit status.
pub fn run(plan_json: &str) -> i32 {
    let Ok(plan) = serde_json::from_str::<ChildPlan>(plan_json) else { return 2 };
    if plan.setsid {
        let _ = nix::unistd::setsid();
    }
    std::thread::sleep(std::time::Duration::from_millis(plan.sleep_ms));
    let Some(path) = &plan.touch else { return 0 };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let me = nix::unistd::getpid();
    let id = |r: nix::Result<nix::unistd::Pid>| r.map(|p| p.as_raw()).unwrap_or(-1);
    let marker = serde_json::json!({
        "pid": me.as_raw(),
        "pgid": id(nix::unistd::getpgid(None)),
        "sid": id(nix::unistd::getsid(None)),
        "time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        "by": plan.by,
    });
    match std::fs::write(path, format!("{marker}\n")) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_expanded() {
        let env: HashMap<String, String> = [("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "net1"), ("CNI_COMMAND", "ADD")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(expand("/m/{containerId}-{ifname}-{command}-{pid}", &env, 42), "/m/c1-net1-ADD-42");
        let plan = spawn_plan(
            &SpawnOptions { on: vec!["ADD".into()], setsid: true, sleep_ms: 5, touch: Some("/m/{containerId}".into()) },
            &env,
            7,
        );
        assert_eq!(plan.touch, Some(PathBuf::from("/m/c1")));
        assert_eq!(plan.by["pluginPid"], 7);
        let back: ChildPlan = serde_json::from_str(&serde_json::to_string(&plan).unwrap()).unwrap();
        assert_eq!(back, plan);
    }
}
