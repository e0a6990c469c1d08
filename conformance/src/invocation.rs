//! Building one CNI invocation of a step: template variables, the config on stdin (rendered,
//! patched, with `prevResult`), and the exact environment (`CNI_*`). A `Scope` is what every
//! builder and check needs from the run: the target, its versions and the variables only its
//! kind of driver knows (`TargetVars`).

use crate::case_env::CaseEnv;
use crate::model::{Case, EnvBase, Stdin, Step};
use crate::sys;
use crate::target::Target;
use crate::template::{merge_patch, render_str, render_value};
use crate::versions::Versions;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What a kind of target adds to templating and invocations.
pub trait TargetVars: Sync {
    /// A template variable only this kind of target defines (asked after the common ones).
    fn var(&self, key: &str, which: &str, env: &CaseEnv) -> Option<Value>;
    /// `CNI_PATH` of the case's invocations.
    fn cni_path(&self, env: &CaseEnv) -> String;
    /// The config a step sends unless it brings its own stdin (rendered later).
    fn config_template(&self, target: &Target, case: &Case) -> Value;
    /// `CNI_ARGS` of attachment commands when the target file sets none (templated).
    fn default_cni_args(&self) -> &'static str {
        "IgnoreUnknown=1"
    }
}

/// The target's own config template, or a minimal one.
pub fn default_config(target: &Target) -> Value {
    target.config.clone().unwrap_or_else(|| json!({"cniVersion": "{{version}}", "name": "{{net}}", "type": "{{type}}"}))
}

/// The run as invocation building sees it.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub target: &'a Target,
    pub versions: &'a Versions,
    pub vars: &'a dyn TargetVars,
}

/// One CNI invocation ready to run.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: String,
    pub stdin: Vec<u8>,
    /// The config version sent (`None`: stdin carried none).
    pub version: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Scope<'_> {
    /// Variable lookup for templates.
    pub fn var(&self, env: &CaseEnv, name: &str) -> Option<Value> {
        let att = |n: &str| env.attachments.get(n);
        let (key, which) = match name.split_once(':') {
            Some((k, w)) => (k, w.to_string()),
            None => (name, env.current.clone()),
        };
        let s = |x: &str| Some(Value::String(x.to_string()));
        match key {
            "version" => s(env.version.as_deref().unwrap_or(&self.versions.default)),
            "default_version" => s(&self.versions.default),
            "unsupported_version" => s(&self.versions.unsupported()),
            "net" => s(&format!("net-{}", env.id)),
            "type" => s(&self.target.type_name()),
            "plugin" => self.target.plugin.as_ref().map(|p| Value::String(p.display().to_string())),
            "tmp" => s(&env.tmp_path()),
            "short" => s(&env.short),
            "id" => s(&env.id),
            "cid" => att(&which).map(|a| Value::String(a.cid.clone())),
            "netns" => att(&which).map(|a| Value::String(a.netns_path.clone())),
            "netns_name" => att(&which).and_then(|a| a.netns.as_ref()).map(|n| Value::String(n.name.clone())),
            "ifname" => att(&which).map(|a| Value::String(a.ifname.clone())),
            "pod" => att(&which).map(|a| Value::String(a.pod.clone())),
            "pod_namespace" => s(&env.id),
            "host_netns" => env.host.as_ref().map(|h| Value::String(h.name.clone())),
            "cni_path" => s(&self.vars.cni_path(env)),
            "ipam_dir" => self.target.ipam_dir.as_ref().map(|d| Value::String(self.render(env, d))),
            "result" => env.saved.get(&which).cloned(),
            "slot" => att(&which).map(|a| Value::String(a.slot.to_string())),
            _ => self.vars.var(key, &which, env),
        }
    }

    pub fn render(&self, env: &CaseEnv, s: &str) -> String {
        render_str(s, &|k| self.var(env, k))
    }

    pub fn render_json(&self, env: &CaseEnv, v: &Value) -> Value {
        render_value(v, &|k| self.var(env, k))
    }

    /// stdin, config version and environment of one CNI step.
    pub fn invocation(&self, case: &Case, step: &Step, env: &mut CaseEnv) -> Invocation {
        let command = step.cni.clone().unwrap_or_default();
        env.current = step.attachment.clone();
        let (stdin, version) = self.stdin_for(case, step, env);
        let vars = self.env_for(step, env, &command);
        Invocation { command, stdin, version, env: vars }
    }

    /// Build stdin for a step: the target's config (rendered, patched, with prevResult) or
    /// the step's literal stdin. Returns the bytes and the config version sent.
    fn stdin_for(&self, case: &Case, step: &Step, env: &mut CaseEnv) -> (Vec<u8>, Option<String>) {
        let word = step.version.clone().or_else(|| case.version.clone()).unwrap_or_else(|| "default".into());
        let version = self.versions.resolve(&word);
        env.version = version.clone();
        match &step.stdin {
            Some(Stdin::Raw(s)) => return (self.render(env, s).into_bytes(), version),
            Some(Stdin::Empty(_)) => return (Vec::new(), version),
            Some(Stdin::Json(v)) => {
                let v = self.render_json(env, v);
                let ver = v.get("cniVersion").and_then(Value::as_str).map(String::from);
                return (serde_json::to_vec(&v).unwrap_or_default(), ver);
            }
            None => {}
        }
        let mut conf = self.render_json(env, &self.vars.config_template(self.target, case));
        if version.is_none()
            && let Some(m) = conf.as_object_mut()
        {
            m.remove("cniVersion");
        }
        if let Some(p) = &step.patch {
            let p = self.render_json(env, p);
            merge_patch(&mut conf, &p);
        }
        if let Some(m) = conf.as_object_mut() {
            for (k, v) in &step.set {
                m.insert(k.clone(), render_value(v, &|x| self.var(env, x)));
            }
        }
        if let Some(name) = &step.prev_result
            && let Some(prev) = env.saved.get(name)
        {
            let converted = convert(prev, version.as_deref());
            if let Some(m) = conf.as_object_mut() {
                m.insert("prevResult".into(), converted);
            }
        }
        let ver = conf.get("cniVersion").and_then(Value::as_str).map(String::from);
        (serde_json::to_vec(&conf).unwrap_or_default(), ver)
    }

    /// The exact environment of a step's `command`.
    pub fn env_for(&self, step: &Step, env: &CaseEnv, command: &str) -> Vec<(String, String)> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("PATH".into(), sys::PLUGIN_PATH.into());
        for (k, v) in &self.target.env {
            vars.insert(k.clone(), self.render(env, v));
        }
        let att = env.attachments.get(&step.attachment);
        let attach = matches!(command, "ADD" | "DEL" | "CHECK") || !matches!(command, "GC" | "STATUS" | "VERSION");
        match step.env_base {
            EnvBase::None => {}
            EnvBase::Probe => {
                for (k, v) in [
                    ("CNI_CONTAINERID", ""),
                    ("CNI_NETNS", "dummy"),
                    ("CNI_IFNAME", "dummy"),
                    ("CNI_PATH", "dummy"),
                    ("CNI_ARGS", ""),
                ] {
                    vars.insert(k.into(), v.into());
                }
            }
            EnvBase::Full => {
                let (cid, ns, ifn) = match (attach, att) {
                    (true, Some(a)) => (a.cid.clone(), a.netns_path.clone(), a.ifname.clone()),
                    _ => (String::new(), String::new(), String::new()),
                };
                let args = if attach { self.render(env, self.cni_args()) } else { String::new() };
                for (k, v) in [
                    ("CNI_CONTAINERID", cid),
                    ("CNI_NETNS", ns),
                    ("CNI_IFNAME", ifn),
                    ("CNI_ARGS", args),
                    ("CNI_PATH", self.vars.cni_path(env)),
                ] {
                    vars.insert(k.into(), v);
                }
            }
        }
        vars.insert("CNI_COMMAND".into(), command.to_string());
        for (k, v) in &step.env {
            match v {
                Some(v) => vars.insert(k.clone(), self.render(env, v)),
                None => vars.remove(k),
            };
        }
        vars.into_iter().collect()
    }

    /// The attachment's own environment (no step overrides), for the plugins around the target.
    pub fn natural_env(&self, step: &Step, env: &CaseEnv, command: &str) -> Vec<(String, String)> {
        let mut plain: Step = serde_json::from_value(json!({})).unwrap_or_else(|_| step.clone());
        plain.attachment = step.attachment.clone();
        self.env_for(&plain, env, command)
    }

    fn cni_args(&self) -> &str {
        self.target.cni_args.as_deref().unwrap_or_else(|| self.vars.default_cni_args())
    }
}

/// stdin with `prevResult` set (left as it is when it is not a JSON object).
pub fn with_prev_result(stdin: &[u8], prev: Value) -> Vec<u8> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(mut m)) => {
            m.insert("prevResult".into(), prev);
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        }
        _ => stdin.to_vec(),
    }
}

/// Convert a saved result to `version` with libcni's rules (unchanged when not possible).
pub fn convert(v: &Value, version: Option<&str>) -> Value {
    let Some(version) = version else { return v.clone() };
    match cni::CniResult::from_value(v).and_then(|r| r.convert_to_str(version)) {
        Ok(r) => r.to_value(),
        Err(_) => v.clone(),
    }
}

#[cfg(test)]
mod tests;
