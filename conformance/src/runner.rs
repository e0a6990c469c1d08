//! Running cases against a target: `can_run`, per-case environments (temp dir, scratch host
//! netns, container netns per attachment), CNI steps, checks and actions, teardown.

use crate::expect::{self, JudgeCtx, Observation};
use crate::model::{Applies, Case, EnvBase, Require, Stdin, Step};
use crate::normalize::{self, Placeholders};
use crate::report::{CaseResult, Outcome, Report, StepRecord, TargetInfo};
use crate::sys::{self, Netns};
use crate::target::{Kind, Target, merge_patch, render_str, render_value};
use crate::thick::ThickRt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

const DEFAULT_TIMEOUT: u64 = 30;

/// One attachment of a case: a container id, an interface name, a netns.
#[derive(Debug)]
pub struct Attachment {
    pub cid: String,
    pub ifname: String,
    pub netns: Option<Netns>,
    pub netns_path: String,
    pub pod: String,
}

/// Everything one case owns; dropping it removes namespaces and files.
pub struct CaseEnv {
    pub id: String,
    pub short: String,
    pub tmp: tempfile::TempDir,
    pub host: Option<Netns>,
    pub bin_dir: Option<PathBuf>,
    pub attachments: BTreeMap<String, Attachment>,
    pub saved: BTreeMap<String, Value>,
    pub added: BTreeSet<String>,
    pub records: Vec<StepRecord>,
    pub ph: Placeholders,
    /// Version of the step being run (for `{{version}}`).
    pub version: Option<String>,
    pub current: String,
}

impl CaseEnv {
    pub fn tmp_path(&self) -> String {
        self.tmp.path().display().to_string()
    }
    /// Create the attachment if needed (with a real netns when root).
    pub fn attachment(&mut self, name: &str) -> Result<&Attachment, String> {
        if !self.attachments.contains_key(name) {
            let cid = format!("{}-{name}", self.id);
            let ns_name = format!("{}{name}", self.id);
            let (netns, path) = if sys::is_root() {
                let ns = Netns::create(&ns_name)?;
                let p = ns.path();
                (Some(ns), p)
            } else {
                (None, format!("/run/netns/{ns_name}"))
            };
            self.ph.add(&cid, &format!("cid:{name}"));
            self.ph.add(&path, &format!("netns:{name}"));
            self.attachments.insert(
                name.to_string(),
                Attachment {
                    cid: cid.clone(),
                    ifname: "eth0".into(),
                    netns,
                    netns_path: path,
                    pod: cid.to_lowercase(),
                },
            );
        }
        Ok(&self.attachments[name])
    }
}

static ATT_REF: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\{\{\s*(?:cid|netns|ifname|pod):([a-z0-9]+)\s*\}\}").unwrap());

/// Attachments a case uses: step attachments plus `{{netns:x}}`-style references.
pub fn attachments_of(case: &Case) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = case.steps.iter().filter(|s| s.cni.is_some()).map(|s| s.attachment.clone()).collect();
    let text = serde_json::to_string(&case.steps).unwrap_or_default();
    for c in ATT_REF.captures_iter(&text) {
        s.insert(c[1].to_string());
    }
    if let Some(pods) = &case.setup.pods {
        for p in pods {
            s.insert(p.attachment.clone());
        }
    }
    s
}

pub struct Runner {
    pub target: Target,
    pub supported: Option<Vec<String>>,
    pub default_version: String,
    pub thick: Option<ThickRt>,
    /// Print progress lines to stderr.
    pub verbose: bool,
}

impl Runner {
    /// Prepare a target: start a thick environment, probe VERSION.
    pub fn new(target: Target) -> anyhow::Result<Runner> {
        let thick = match target.kind {
            Kind::Thick => Some(ThickRt::start(&target)?),
            Kind::Plugin => None,
        };
        let mut target = target;
        if let Some(t) = &thick
            && t.creates_interfaces()
        {
            target.tags.extend([Applies::Interface, Applies::Ipam]);
        }
        let mut r = Runner { target, supported: None, default_version: "1.0.0".into(), thick, verbose: false };
        r.probe();
        Ok(r)
    }

    pub fn plugin_path(&self) -> PathBuf {
        match &self.thick {
            Some(t) => t.shim.clone(),
            None => self.target.plugin.clone().unwrap_or_default(),
        }
    }

    fn probe(&mut self) {
        let env = vec![
            ("CNI_COMMAND".to_string(), "VERSION".to_string()),
            ("PATH".to_string(), sys::PLUGIN_PATH.to_string()),
        ];
        let obs = sys::run_process(&self.plugin_path(), &[], &env, b"", Duration::from_secs(20));
        if obs.succeeded()
            && let Ok(v) = expect::single_json(&obs.stdout)
            && let Some(list) = v.get("supportedVersions").and_then(Value::as_array)
        {
            self.supported = Some(list.iter().filter_map(|x| x.as_str().map(String::from)).collect());
        }
        self.default_version = match (&self.target.default_version, &self.supported) {
            (Some(v), _) => v.clone(),
            (None, Some(list)) => cni::version::ALL
                .iter()
                .rev()
                .find(|v| list.iter().any(|x| x == *v))
                .map(|v| v.to_string())
                .unwrap_or_else(|| "1.0.0".into()),
            (None, None) => "1.0.0".into(),
        };
    }

    pub fn info(&self) -> TargetInfo {
        TargetInfo {
            spec: self.target.spec.clone(),
            kind: match self.target.kind {
                Kind::Plugin => "plugin".into(),
                Kind::Thick => "thick".into(),
            },
            name: self.target.name.clone().unwrap_or_default(),
            supported_versions: self.supported.clone().unwrap_or_default(),
            default_version: self.default_version.clone(),
            tags: self.target.tags.iter().map(|t| t.as_str().to_string()).collect(),
            notes: self.target.notes.clone(),
        }
    }

    fn supports(&self, v: &str) -> bool {
        self.supported.as_ref().is_some_and(|s| s.iter().any(|x| x == v))
    }

    /// A version the target does not support (for cni.md §5.11, 37).
    pub fn unsupported_version(&self) -> String {
        cni::version::ALL
            .iter()
            .rev()
            .find(|v| !self.supports(v))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "0.9.9".into())
    }

    /// youki's `can_run`: `Some(reason)` when the case cannot run against this target here.
    pub fn can_run(&self, case: &Case) -> Option<String> {
        for a in &case.applies {
            if !self.target.has(*a) {
                return Some(match a {
                    Applies::Thick | Applies::Meta => format!("needs a {} target (this is a plain plugin)", a.as_str()),
                    Applies::Interface => "target does not create container interfaces (tag `interface`)".into(),
                    Applies::Ipam => "target owns no IPAM state the harness can inspect (tag `ipam`)".into(),
                    Applies::Chained => "target is not a chained plugin (tag `chained`)".into(),
                    Applies::Any => unreachable!(),
                });
            }
        }
        for r in &case.requires {
            let why = match r {
                Require::Root if !sys::is_root() => Some("needs root".to_string()),
                Require::Netns if !sys::is_root() => Some("needs root to create network namespaces".to_string()),
                Require::Version(v) if self.supported.is_none() => {
                    Some(format!("needs CNI {v}, and the target's VERSION did not answer"))
                }
                Require::Version(v) if !self.supports(v) => Some(format!(
                    "target does not support CNI {v} (supportedVersions {})",
                    self.supported.clone().unwrap_or_default().join(" ")
                )),
                Require::UnsupportedVersion if self.supported.is_none() => {
                    Some("target's VERSION did not answer".into())
                }
                Require::Capability(c) => {
                    let has = self
                        .target
                        .config
                        .as_ref()
                        .and_then(|v| v.get("capabilities"))
                        .and_then(|m| m.get(c))
                        .and_then(Value::as_bool)
                        == Some(true)
                        || self.thick.as_ref().is_some_and(|t| t.capabilities.iter().any(|x| x == c));
                    (!has).then(|| format!("target config declares no capability {c:?}"))
                }
                Require::ApiServer if self.thick.is_none() => Some("needs the API server of a thick target".into()),
                Require::DelegateRecords => {
                    let ok = self.thick.as_ref().is_some_and(|t| t.records_delegates())
                        || self.target.type_name() == "fake-cni";
                    (!ok).then(|| "needs delegates that record their calls (fake-cni)".to_string())
                }
                _ => None,
            };
            if why.is_some() {
                return why;
            }
        }
        if let Some(t) = &self.thick
            && let Some(why) = t.can_run(case)
        {
            return Some(why);
        }
        None
    }

    /// Run the cases (already filtered), in order.
    pub fn run(&mut self, cases: &[Case]) -> Report {
        let mut out = Vec::new();
        for c in cases {
            let r = self.run_case(c);
            if self.verbose {
                eprintln!("{:<11} {}/{} {}", r.outcome.word(), r.group, r.id, r.outcome.reason());
            }
            out.push(r);
        }
        Report { target: self.info(), cases: out }
    }

    pub fn run_case(&mut self, case: &Case) -> CaseResult {
        let start = Instant::now();
        let mut result = CaseResult {
            group: case.group.clone(),
            id: case.id.clone(),
            title: case.title.clone(),
            assertions: crate::model::assertion_labels(case),
            strength: case.strength,
            outcome: Outcome::Pass,
            explain: case.explain.clone(),
            steps: Vec::new(),
            duration_ms: 0,
        };
        if let Some(reason) = self.can_run(case) {
            result.outcome = Outcome::Skipped { reason };
            return result;
        }
        let outcome = match self.setup_env(case) {
            Err(e) => Outcome::Fail { reason: format!("setup failed: {e}") },
            Ok(mut env) => {
                let o = self.run_steps(case, &mut env);
                self.teardown(case, &mut env);
                result.steps = std::mem::take(&mut env.records);
                o
            }
        };
        result.outcome = outcome;
        result.duration_ms = start.elapsed().as_millis() as u64;
        result
    }

    fn setup_env(&mut self, case: &Case) -> Result<CaseEnv, String> {
        let id = sys::unique("cc");
        let short = id.trim_start_matches("cc").to_string();
        let short = short[short.len().saturating_sub(10)..].to_string();
        let tmp = tempfile::Builder::new().prefix(&format!("cniconf-{id}-")).tempdir().map_err(|e| e.to_string())?;
        let mut env = CaseEnv {
            id: id.clone(),
            short,
            tmp,
            host: None,
            bin_dir: None,
            attachments: BTreeMap::new(),
            saved: BTreeMap::new(),
            added: BTreeSet::new(),
            records: Vec::new(),
            ph: Placeholders::new(),
            version: None,
            current: "main".into(),
        };
        env.ph.add(env.tmp_path(), "tmp");
        env.ph.add(&id, "id");
        env.ph.add(env.short.clone(), "short");
        if self.thick.is_none() && self.target.host_netns.unwrap_or(sys::is_root()) && sys::is_root() {
            let host = Netns::create(&format!("{id}h"))?;
            let bin = env.tmp.path().join("bin");
            std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
            let plugin = self.plugin_path();
            let wrapper = bin.join(self.target.type_name());
            std::fs::write(
                &wrapper,
                format!("#!/bin/sh\nexec ip netns exec {} {} \"$@\"\n", host.name, plugin.display()),
            )
            .map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
            env.host = Some(host);
            env.bin_dir = Some(bin);
        }
        for a in attachments_of(case) {
            env.attachment(&a)?;
        }
        if let Some(t) = &mut self.thick {
            t.prepare_case(case, &mut env)?;
        }
        Ok(env)
    }

    fn teardown(&mut self, case: &Case, env: &mut CaseEnv) {
        let added: Vec<String> = env.added.iter().cloned().collect();
        for a in added {
            let Ok(mut step) = serde_json::from_value::<Step>(json!({})) else { continue };
            step.cni = Some("DEL".into());
            step.attachment = a;
            step.cleanup = true;
            step.expect.exit = crate::model::ExitExpect::Any;
            let _ = self.cni_step(case, &step, env, true);
        }
        if let Some(t) = &mut self.thick {
            t.finish_case(case, env);
        }
    }

    fn run_steps(&mut self, case: &Case, env: &mut CaseEnv) -> Outcome {
        let mut failure: Option<String> = None;
        for (i, step) in case.steps.iter().enumerate() {
            if failure.is_some() && !step.cleanup {
                continue;
            }
            let r = if step.cni.is_some() {
                self.cni_step(case, step, env, step.cleanup)
            } else if let Some(check) = &step.check {
                self.check_step(check, step, env)
            } else if let Some(action) = &step.action {
                self.action_step(case, action, step, env)
            } else {
                StepOutcome::Ok
            };
            match r {
                StepOutcome::Ok => {}
                StepOutcome::Unsupported(why) => return Outcome::Unsupported { reason: why },
                // A check that cannot apply here (no IPAM dir, no netns) is noted, not fatal.
                StepOutcome::Skip(why) if step.check.is_some() => {
                    if let Some(last) = env.records.last_mut() {
                        last.label.push_str(&format!(" (not applicable: {why})"));
                    }
                }
                StepOutcome::Skip(why) => return Outcome::Skipped { reason: why },
                StepOutcome::Fail(why) if !step.cleanup => {
                    failure = Some(format!("step {} ({}): {why}", i + 1, step_label(step)))
                }
                StepOutcome::Fail(_) => {}
            }
        }
        match failure {
            Some(reason) => Outcome::Fail { reason },
            None => Outcome::Pass,
        }
    }

    /// Variable lookup for templates.
    pub fn var(&self, env: &CaseEnv, name: &str) -> Option<Value> {
        let att = |n: &str| env.attachments.get(n);
        let (key, which) = match name.split_once(':') {
            Some((k, w)) => (k, w.to_string()),
            None => (name, env.current.clone()),
        };
        let s = |x: &str| Some(Value::String(x.to_string()));
        match key {
            "version" => s(env.version.as_deref().unwrap_or(&self.default_version)),
            "default_version" => s(&self.default_version),
            "unsupported_version" => s(&self.unsupported_version()),
            "net" => s(&format!("net-{}", env.id)),
            "type" => s(&self.target.type_name()),
            "tmp" => s(&env.tmp_path()),
            "short" => s(&env.short),
            "id" => s(&env.id),
            "cid" => att(&which).map(|a| Value::String(a.cid.clone())),
            "netns" => att(&which).map(|a| Value::String(a.netns_path.clone())),
            "netns_name" => att(&which).and_then(|a| a.netns.as_ref()).map(|n| Value::String(n.name.clone())),
            "ifname" => att(&which).map(|a| Value::String(a.ifname.clone())),
            "pod" => att(&which).map(|a| Value::String(a.pod.clone())),
            "pod_namespace" if self.thick.is_none() => s(&env.id),
            "host_netns" => env.host.as_ref().map(|h| Value::String(h.name.clone())),
            "cni_path" => s(&self.cni_path(env)),
            "ipam_dir" => self.target.ipam_dir.as_ref().map(|d| Value::String(self.render(env, d))),
            "result" => env.saved.get(&which).cloned(),
            _ => self.thick.as_ref().and_then(|t| t.var(key, &which, env)),
        }
    }

    pub fn render(&self, env: &CaseEnv, s: &str) -> String {
        render_str(s, &|k| self.var(env, k))
    }

    pub fn render_json(&self, env: &CaseEnv, v: &Value) -> Value {
        render_value(v, &|k| self.var(env, k))
    }

    fn cni_path(&self, env: &CaseEnv) -> String {
        if let Some(t) = &self.thick {
            return t.cni_path();
        }
        let mut dirs: Vec<String> = Vec::new();
        if let Some(b) = &env.bin_dir {
            dirs.push(b.display().to_string());
        }
        dirs.extend(self.target.cni_path.iter().map(|p| p.display().to_string()));
        dirs.join(":")
    }

    fn config_template(&self) -> Value {
        match &self.thick {
            Some(t) => t.shim_config.clone(),
            None => self
                .target
                .config
                .clone()
                .unwrap_or_else(|| json!({"cniVersion": "{{version}}", "name": "{{net}}", "type": "{{type}}"})),
        }
    }

    fn resolve_version(&self, word: &str) -> Option<String> {
        match word {
            "default" => Some(self.default_version.clone()),
            "unsupported" => Some(self.unsupported_version()),
            "none" => None,
            v => Some(v.to_string()),
        }
    }

    /// Build stdin for a step: the target's config (rendered, patched, with prevResult) or
    /// the step's literal stdin. Returns the bytes and the config version sent.
    fn stdin_for(&self, case: &Case, step: &Step, env: &mut CaseEnv) -> (Vec<u8>, Option<String>) {
        let word = step.version.clone().or_else(|| case.version.clone()).unwrap_or_else(|| "default".into());
        let version = self.resolve_version(&word);
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
        let mut conf = self.render_json(env, &self.config_template());
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

    fn env_for(&self, step: &Step, env: &CaseEnv, command: &str) -> Vec<(String, String)> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("PATH".into(), sys::PLUGIN_PATH.into());
        for (k, v) in &self.target.env {
            vars.insert(k.clone(), self.render(env, v));
        }
        if let Some(t) = &self.thick {
            for (k, v) in t.extra_env() {
                vars.insert(k, v);
            }
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
                let args = if attach { self.render(env, &self.default_cni_args()) } else { String::new() };
                for (k, v) in [
                    ("CNI_CONTAINERID", cid),
                    ("CNI_NETNS", ns),
                    ("CNI_IFNAME", ifn),
                    ("CNI_ARGS", args),
                    ("CNI_PATH", self.cni_path(env)),
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

    fn default_cni_args(&self) -> String {
        if let Some(a) = &self.target.cni_args {
            return a.clone();
        }
        match &self.thick {
            Some(_) => "IgnoreUnknown=1;K8S_POD_NAMESPACE={{pod_namespace}};K8S_POD_NAME={{pod}};K8S_POD_INFRA_CONTAINER_ID={{cid}}".into(),
            None => "IgnoreUnknown=1".into(),
        }
    }

    /// stdin, config version and environment of one CNI step.
    pub fn prepare_invocation(
        &self,
        case: &Case,
        step: &Step,
        env: &mut CaseEnv,
    ) -> (Vec<u8>, Option<String>, Vec<(String, String)>) {
        let command = step.cni.clone().unwrap_or_default();
        env.current = step.attachment.clone();
        let (stdin, version) = self.stdin_for(case, step, env);
        let vars = self.env_for(step, env, &command);
        (stdin, version, vars)
    }

    /// Run one CNI invocation and judge it.
    pub fn cni_step(&mut self, case: &Case, step: &Step, env: &mut CaseEnv, quiet: bool) -> StepOutcome {
        let command = step.cni.clone().unwrap_or_default();
        let (stdin, version, vars) = self.prepare_invocation(case, step, env);
        let timeout = Duration::from_secs(step.timeout.unwrap_or(DEFAULT_TIMEOUT));
        let obs = sys::run_process(&self.plugin_path(), &[], &vars, &stdin, timeout);
        if command == "ADD" {
            env.added.insert(step.attachment.clone());
        }
        if command == "DEL" && obs.succeeded() && !quiet {
            env.added.remove(&step.attachment);
        }
        // A config without cniVersion means 0.1.0 for result purposes (cni.md §2.2).
        let version = if step.stdin.is_none() { version.or_else(|| Some("0.1.0".to_string())) } else { version };
        let sent_prev = serde_json::from_slice::<Value>(&stdin).ok().and_then(|v| v.get("prevResult").cloned());
        let conv = |name: &Option<String>| match name.as_deref() {
            Some("$prev") => sent_prev.clone(),
            Some(n) => env.saved.get(n).map(|v| convert(v, version.as_deref())),
            None => None,
        };

        let (equals, contains) = (conv(&step.expect.equals), conv(&step.expect.contains));
        let interface = step.expect.interface.as_ref().map(|i| self.render(env, i));
        let ctx = JudgeCtx {
            command: &command,
            config_version: version.as_deref(),
            supported: self.supported.as_deref(),
            equals: equals.as_ref(),
            contains: contains.as_ref(),
            interface: interface.as_deref(),
        };
        let verdict = expect::judge(&step.expect, &obs, &ctx);
        let label = if quiet { format!("{command} (teardown)") } else { command.clone() };
        record(env, label, &obs, &verdict.problems);
        if let (Some(name), Some(r)) = (&step.save_as, &verdict.result) {
            env.saved.insert(name.clone(), r.clone());
        }
        if let Some(u) = verdict.unsupported {
            return StepOutcome::Unsupported(u);
        }
        if verdict.problems.is_empty() {
            StepOutcome::Ok
        } else {
            let mut why = verdict.problems.join("; ");
            why.push_str(&format!(
                " [exit {:?}, stdout {:?}, stderr {:?}]",
                obs.exit,
                trunc(&obs.stdout),
                trunc(&obs.stderr)
            ));
            StepOutcome::Fail(why)
        }
    }

    fn check_step(&mut self, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
        env.current = step.attachment.clone();
        let start = Instant::now();
        let r = crate::checks::run_check(self, name, step, env);
        let problems: Vec<String> = match &r {
            StepOutcome::Fail(w) => vec![w.clone()],
            _ => vec![],
        };
        env.records.push(StepRecord {
            label: format!("check {name}"),
            problems,
            duration_ms: start.elapsed().as_millis() as u64,
            ..Default::default()
        });
        r
    }

    fn action_step(&mut self, case: &Case, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
        env.current = step.attachment.clone();
        let start = Instant::now();
        let r = crate::checks::run_action(self, case, name, step, env);
        let problems: Vec<String> = match &r {
            StepOutcome::Fail(w) => vec![w.clone()],
            _ => vec![],
        };
        env.records.push(StepRecord {
            label: format!("action {name}"),
            problems,
            duration_ms: start.elapsed().as_millis() as u64,
            ..Default::default()
        });
        r
    }
}

pub fn step_label(s: &Step) -> String {
    if let Some(c) = &s.cni {
        format!("{c} {}", s.attachment)
    } else if let Some(c) = &s.check {
        format!("check {c}")
    } else if let Some(a) = &s.action {
        format!("action {a}")
    } else {
        "step".into()
    }
}

fn trunc(s: &str) -> String {
    let s = s.trim();
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

fn record(env: &mut CaseEnv, label: String, obs: &Observation, problems: &[String]) {
    let normalized = normalize::stdout(&obs.stdout, &env.ph);
    env.records.push(StepRecord {
        label,
        exit: obs.exit.or(obs.signal.map(|s| 128 + s)),
        stdout: normalize::text(&trunc(&obs.stdout), &env.ph),
        stderr: normalize::text(&trunc(&obs.stderr), &env.ph),
        normalized,
        problems: problems.to_vec(),
        duration_ms: obs.duration_ms,
    });
}

/// Convert a saved result to `version` with libcni's rules (unchanged when not possible).
pub fn convert(v: &Value, version: Option<&str>) -> Value {
    let Some(version) = version else { return v.clone() };
    match cni::CniResult::from_value(v).and_then(|r| r.convert_to_str(version)) {
        Ok(r) => r.to_value(),
        Err(_) => v.clone(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Ok,
    Fail(String),
    Skip(String),
    Unsupported(String),
}
