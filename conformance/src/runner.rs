//! Running cases against a target: `can_run`, per-case environments (temp dir, scratch host
//! netns, container netns per attachment), CNI steps, checks and actions, teardown.

use crate::expect::{self, JudgeCtx, Observation};
use crate::model::{Applies, Case, EnvBase, Require, Stdin, Step};
use crate::normalize::{self, Placeholders};
use crate::report::{CaseResult, FailureDetail, Outcome, Report, StepRecord, TargetInfo};
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
    /// The attachment's number in its case (0, 1, …), `{{slot}}` in templates.
    pub slot: usize,
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
    /// `CNI_IFNAME` of new attachments.
    pub ifname: String,
    /// Attachments whose chain prelude (`prev_plugins`) ran ADD: they get its DEL too.
    pub prelude_added: BTreeSet<String>,
    /// The last successful ADD result per attachment (the prelude's DEL gets it).
    pub final_results: BTreeMap<String, Value>,
    /// veths in the scratch host netns after the case's own setup (master links, devices):
    /// only others count as leftovers.
    pub host_baseline: Vec<String>,
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
            let slot = self.attachments.len();
            self.attachments.insert(
                name.to_string(),
                Attachment {
                    cid: cid.clone(),
                    ifname: self.ifname.clone(),
                    netns,
                    netns_path: path,
                    pod: cid.to_lowercase(),
                    slot,
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
    /// Why no case can run against this target here (plugin not installed, kernel lacks a
    /// link type): every case is skipped with this reason.
    pub unavailable: Option<String>,
    /// Drives the `cni` crate's runtime for conflist targets.
    tokio: Option<tokio::runtime::Runtime>,
}

impl Runner {
    /// Prepare a target: start a thick environment, probe VERSION.
    pub fn new(target: Target) -> anyhow::Result<Runner> {
        let unavailable = Self::availability(&target);
        let thick = match (target.kind, &unavailable) {
            (Kind::Thick, None) => Some(ThickRt::start(&target)?),
            _ => None,
        };
        let tokio = match target.kind {
            Kind::Conflist => Some(tokio::runtime::Builder::new_current_thread().enable_all().build()?),
            _ => None,
        };
        let mut target = target;
        if let Some(t) = &thick
            && t.creates_interfaces()
        {
            target.tags.extend([Applies::Interface, Applies::Ipam]);
        }
        let mut r = Runner {
            target,
            supported: None,
            default_version: "1.0.0".into(),
            thick,
            verbose: false,
            unavailable,
            tokio,
        };
        if r.unavailable.is_none() {
            r.probe();
        }
        Ok(r)
    }

    /// Whether the target can run here at all: its binary exists, the kernel has its link types.
    fn availability(target: &Target) -> Option<String> {
        if target.kind == Kind::Plugin {
            let plugin = target.plugin.clone().unwrap_or_default();
            if !plugin.is_file() {
                return Some(format!("plugin {} is not installed here", plugin.display()));
            }
        }
        if sys::is_root() {
            for kind in &target.link_kinds {
                if let Err(e) = sys::link_kind_supported(kind) {
                    return Some(format!("this kernel lacks link type {kind:?} ({e})"));
                }
            }
        }
        None
    }

    /// The binary VERSION is probed with (never wrapped).
    pub fn plugin_path(&self) -> PathBuf {
        match &self.thick {
            Some(t) => t.shim.clone(),
            None => self.target.plugin.clone().unwrap_or_default(),
        }
    }

    /// The binary a case's CNI steps execute: the wrapper that enters the case's scratch host
    /// netns when there is one, so that host-side links land there and not on the real host.
    pub fn exec_path(&self, env: &CaseEnv) -> PathBuf {
        match &env.bin_dir {
            Some(bin) if self.thick.is_none() => bin.join(self.target.type_name()),
            _ => self.plugin_path(),
        }
    }

    fn probe(&mut self) {
        if self.target.kind == Kind::Conflist {
            // The runtime itself: every version the cni crate knows.
            self.supported = Some(cni::version::ALL.iter().map(|v| v.to_string()).collect());
            self.default_version = self.target.default_version.clone().unwrap_or_else(|| "1.1.0".into());
            return;
        }
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
                Kind::Conflist => "conflist".into(),
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
        if let Some(why) = &self.unavailable {
            return Some(why.clone());
        }
        for a in &case.applies {
            if !self.target.has(*a) {
                return Some(self.not_applicable(*a));
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
                Require::Chain if self.target.prev_plugins.is_empty() => {
                    Some("target declares no plugins to chain after (`prev_plugins`)".into())
                }
                Require::Devices if !self.thick.as_ref().is_some_and(ThickRt::serves_devices) => {
                    Some("needs a thick target whose daemon reads device IDs from a fake kubelet (fake-kubelet)".into())
                }
                Require::DelegateRecords => {
                    let ok = self.thick.as_ref().is_some_and(|t| t.records_delegates())
                        || self.target.type_name() == "fake-cni"
                        || (self.target.kind == Kind::Conflist
                            && self.target.cni_path.iter().any(|d| d.join("fake-cni").is_file()));
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

    /// Why cases of family `a` do not apply to this target.
    fn not_applicable(&self, a: Applies) -> String {
        let kind = match self.target.kind {
            Kind::Plugin => "a plain plugin",
            Kind::Conflist => "the harness's runtime running a conflist",
            Kind::Thick => "a thick plugin",
        };
        match a {
            Applies::Thick | Applies::Meta => format!("needs a {} target (this is {kind})", a.as_str()),
            Applies::Interface => "target does not create container interfaces (tag `interface`)".into(),
            Applies::Ipam => "target owns no IPAM state the harness can inspect (tag `ipam`)".into(),
            Applies::Chained if self.target.kind == Kind::Thick => "multus-shim is not a link of a chain: a runtime runs it as the only plugin of its config, and it answers its cluster network's result whatever prevResult it is given (as the Go shim does); chaining inside Multus happens among the plugins of a delegate's conflist, judged by the chained-delegates-* cases".into(),
            Applies::Chained => "target is not a chained plugin (tag `chained`)".into(),
            Applies::Network => format!("needs a target that runs a network the case defines: a runtime or a meta plugin (this is {kind})"),
            Applies::Runtime => format!("runtime-side case: judges the harness's libcni runtime (`--target runtime`), not {kind}"),
            Applies::Any => format!("a plugin-protocol case; {kind} target takes only the cases its tags name"),
        }
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
            failure: None,
        };
        if let Some(reason) = self.can_run(case) {
            result.outcome = Outcome::Skipped { reason };
            return result;
        }
        let outcome = match self.setup_env(case) {
            Err(e) => Outcome::Fail { reason: format!("setup failed: {e}") },
            Ok(mut env) => {
                let (o, failure) = self.run_steps(case, &mut env);
                self.teardown(case, &mut env);
                result.steps = std::mem::take(&mut env.records);
                result.failure = failure;
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
            ifname: self.target.ifname.clone().unwrap_or_else(|| "eth0".into()),
            prelude_added: BTreeSet::new(),
            final_results: BTreeMap::new(),
            host_baseline: Vec::new(),
        };
        env.ph.add(env.tmp_path(), "tmp");
        env.ph.add(&id, "id");
        env.ph.add(env.short.clone(), "short");
        if self.thick.is_none() && self.target.host_netns.unwrap_or(sys::is_root()) && sys::is_root() {
            let host = Netns::create(&format!("{id}h"))?;
            let bin = env.tmp.path().join("bin");
            std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
            if self.target.kind == Kind::Plugin {
                write_wrapper(&bin, &self.target.type_name(), &self.plugin_path(), &host.name)?;
            }
            // Chained targets: the plugins before it run in the same scratch host netns.
            for p in &self.target.prev_plugins {
                if let Some(t) = p.get("type").and_then(Value::as_str)
                    && let Some(real) = self.target.cni_path.iter().map(|d| d.join(t)).find(|p| p.is_file())
                {
                    write_wrapper(&bin, t, &real, &host.name)?;
                }
            }
            env.host = Some(host);
            env.bin_dir = Some(bin);
            for args in &self.target.host_setup {
                self.host_ip(&env, args)?;
            }
        }
        if self.target.kind == Kind::Conflist {
            self.prepare_conflist_dirs(&env)?;
        }
        for a in attachments_of(case) {
            self.ensure_attachment(&mut env, &a)?;
        }
        if let Some(h) = &env.host {
            env.host_baseline = sys::veths(&h.name);
        }
        let network = case.setup.network.as_ref().map(|n| {
            let mut config = self.render_json(&env, &n.config);
            if let Some(m) = config.as_object_mut() {
                m.entry("name").or_insert_with(|| Value::String(format!("net-{}", env.id)));
            }
            let caps = self.render_json(&env, &Value::Object(n.capability_args.clone()));
            (config, caps)
        });
        if let Some(t) = &mut self.thick {
            t.prepare_case(case, &mut env, network.as_ref())?;
        }
        Ok(env)
    }

    /// Create an attachment (and, the first time, run the target's `attachment_setup` in the
    /// scratch host netns with `{{slot}}` and friends pointing at it).
    pub fn ensure_attachment(&self, env: &mut CaseEnv, name: &str) -> Result<(), String> {
        if env.attachments.contains_key(name) {
            return Ok(());
        }
        env.attachment(name)?;
        if env.host.is_some() && !self.target.attachment_setup.is_empty() {
            let current = std::mem::replace(&mut env.current, name.to_string());
            let r = self.target.attachment_setup.iter().try_for_each(|args| self.host_ip(env, args));
            env.current = current;
            r?;
            if let Some(h) = &env.host {
                env.host_baseline = sys::veths(&h.name);
            }
        }
        Ok(())
    }

    /// `ip -n <scratch host netns> <args…>` with templated arguments.
    fn host_ip(&self, env: &CaseEnv, args: &[String]) -> Result<(), String> {
        let Some(host) = &env.host else { return Ok(()) };
        let mut argv = vec!["-n".to_string(), host.name.clone()];
        argv.extend(args.iter().map(|a| self.render(env, a)));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        sys::cmd("ip", &refs).map(|_| ())
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
        // Some plugins (sbr 1.1.1) create an empty file when they lock a netns path that does
        // not exist, e.g. the case's `/run/netns/<id>-does-not-exist`: names of this case, ours.
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                let ours = e.file_name().to_string_lossy().starts_with(&format!("{}-", env.id));
                if ours && e.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn run_steps(&mut self, case: &Case, env: &mut CaseEnv) -> (Outcome, Option<FailureDetail>) {
        let mut failure: Option<String> = None;
        let mut detail: Option<FailureDetail> = None;
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
                StepOutcome::Unsupported(why) => return (Outcome::Unsupported { reason: why }, None),
                // A check that cannot apply here (no IPAM dir, no netns) is noted, not fatal.
                StepOutcome::Skip(why) if step.check.is_some() => {
                    if let Some(last) = env.records.last_mut() {
                        last.label.push_str(&format!(" (not applicable: {why})"));
                    }
                }
                StepOutcome::Skip(why) => return (Outcome::Skipped { reason: why }, None),
                StepOutcome::Fail(why) if !step.cleanup => {
                    detail = Some(FailureDetail {
                        step: i + 1,
                        label: step_label(step),
                        expected: describe_expectation(step),
                        observed: why.clone(),
                    });
                    failure = Some(format!("step {} ({}): {why}", i + 1, step_label(step)));
                }
                StepOutcome::Fail(_) => {}
            }
        }
        match failure {
            Some(reason) => (Outcome::Fail { reason }, detail),
            None => (Outcome::Pass, None),
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
            "slot" => att(&which).map(|a| Value::String(a.slot.to_string())),
            "records" if self.thick.is_none() => s(&format!("{}/calls", env.tmp_path())),
            "cache_dir" if self.target.kind == Kind::Conflist => s(&format!("{}/cache", env.tmp_path())),
            "net_ifname" if self.thick.is_none() => att(&which).map(|a| Value::String(a.ifname.clone())),
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
        let dirs: Vec<String> = self.plugin_dirs(env).iter().map(|p| p.display().to_string()).collect();
        dirs.join(":")
    }

    /// `CNI_PATH` as directories: the wrappers first, then the target's directories
    /// (conflist targets: also two directories that both hold a `fake-path` plugin, so that
    /// lookup order can be observed).
    pub fn plugin_dirs(&self, env: &CaseEnv) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(b) = &env.bin_dir {
            dirs.push(b.clone());
        }
        if self.target.kind == Kind::Conflist {
            dirs.push(env.tmp.path().join("cni-first"));
            dirs.push(env.tmp.path().join("cni-second"));
        }
        dirs.extend(self.target.cni_path.iter().cloned());
        dirs
    }

    /// Conflist targets: the two lookup-order directories, each with a `fake-path` plugin: in
    /// the first it is fake-cni, in the second a script that fails, so using the wrong one shows.
    fn prepare_conflist_dirs(&self, env: &CaseEnv) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        let (first, second) = (env.tmp.path().join("cni-first"), env.tmp.path().join("cni-second"));
        std::fs::create_dir_all(&first).map_err(io)?;
        std::fs::create_dir_all(&second).map_err(io)?;
        if let Some(fake) = self.target.cni_path.iter().map(|d| d.join("fake-cni")).find(|p| p.is_file()) {
            std::os::unix::fs::symlink(fake, first.join("fake-path")).map_err(io)?;
        }
        let wrong = second.join("fake-path");
        std::fs::write(
            &wrong,
            "#!/bin/sh\necho '{\"code\":999,\"msg\":\"the second CNI_PATH directory was used\"}'\nexit 1\n",
        )
        .map_err(io)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o755)).map_err(io)
    }

    fn config_template(&self, case: &Case) -> Value {
        if self.target.kind == Kind::Conflist
            && let Some(n) = &case.setup.network
        {
            let mut config = n.config.clone();
            if let Some(m) = config.as_object_mut() {
                m.entry("name").or_insert_with(|| json!("{{net}}"));
            }
            return config;
        }
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
        let mut conf = self.render_json(env, &self.config_template(case));
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
        let chained_add = command == "ADD" && self.runs_prelude(step);
        let (mut stdin, version, vars) = self.prepare_invocation(case, step, env);
        let timeout = Duration::from_secs(step.timeout.unwrap_or(DEFAULT_TIMEOUT));
        if chained_add {
            match self.prelude_add(case, step, env, version.as_deref()) {
                Ok(prev) => stdin = with_prev_result(&stdin, prev),
                Err(why) => {
                    env.added.insert(step.attachment.clone());
                    return StepOutcome::Fail(format!("the chain before the target (prev_plugins) failed: {why}"));
                }
            }
        }
        let obs = match self.target.kind {
            Kind::Conflist => self.runtime_invocation(case, step, env, &command, &stdin, &vars, timeout),
            _ => sys::run_process(&self.exec_path(env), &[], &vars, &stdin, timeout),
        };
        if command == "ADD" {
            env.added.insert(step.attachment.clone());
        }
        if command == "DEL" && obs.succeeded() && !quiet {
            env.added.remove(&step.attachment);
        }
        if command == "DEL" && env.prelude_added.contains(&step.attachment) {
            self.prelude_del(case, step, env);
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
        // A setup ADD that does not judge the result's schema (`result: false`) still saves it.
        let parsed = || (command == "ADD" && obs.succeeded()).then(|| expect::single_json(&obs.stdout).ok()).flatten();
        if let Some(name) = &step.save_as
            && let Some(r) = verdict.result.clone().or_else(parsed)
        {
            env.saved.insert(name.clone(), r);
        }
        if command == "ADD"
            && obs.succeeded()
            && let Ok(r) = expect::single_json(&obs.stdout)
        {
            env.final_results.insert(step.attachment.clone(), r);
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

impl Runner {
    /// Whether an ADD step of a chained target runs the plugins before it first: when the
    /// target has some and the step brings no `prevResult` of its own.
    pub(crate) fn runs_prelude(&self, step: &Step) -> bool {
        !self.target.prev_plugins.is_empty()
            && self.target.kind == Kind::Plugin
            && step.stdin.is_none()
            && step.prev_result.is_none()
            && !step.set.contains_key("prevResult")
            && step.patch.as_ref().and_then(|p| p.get("prevResult")).is_none()
    }

    /// The attachment's own environment (no step overrides), for the plugins around the target.
    fn natural_env(&self, step: &Step, env: &CaseEnv, command: &str) -> Vec<(String, String)> {
        let mut plain: Step = serde_json::from_value(json!({})).unwrap_or_else(|_| step.clone());
        plain.attachment = step.attachment.clone();
        self.env_for(&plain, env, command)
    }

    /// The version the chain before the target runs at: the step's when the target supports
    /// it, else the target's default (the result is then converted, as scaffolding).
    fn prelude_version(&self, version: Option<&str>) -> String {
        match version {
            Some(v) if self.supports(v) => v.to_string(),
            _ => self.default_version.clone(),
        }
    }

    /// ADD of `prev_plugins` in order, each getting the previous one's result (libcni's
    /// `buildOneConfig`); the last result converted to the step's version.
    pub(crate) fn prelude_add(
        &self,
        case: &Case,
        step: &Step,
        env: &mut CaseEnv,
        version: Option<&str>,
    ) -> Result<Value, String> {
        let run_version = self.prelude_version(version);
        let vars = self.natural_env(step, env, "ADD");
        env.prelude_added.insert(step.attachment.clone());
        let mut prev: Option<Value> = None;
        for plugin in self.target.prev_plugins.clone() {
            let (path, conf) = self.prelude_request(case, env, &plugin, &run_version, prev.as_ref())?;
            let stdin = serde_json::to_vec(&conf).unwrap_or_default();
            let obs = sys::run_process(&path, &[], &vars, &stdin, Duration::from_secs(DEFAULT_TIMEOUT));
            record(env, format!("prelude {} ADD", conf["type"].as_str().unwrap_or("?")), &obs, &[]);
            if !obs.succeeded() {
                return Err(format!("{} ADD: exit {:?}, stdout {:?}", conf["type"], obs.exit, trunc(&obs.stdout)));
            }
            prev = Some(expect::single_json(&obs.stdout)?);
        }
        let prev = prev.ok_or("no prev_plugins")?;
        Ok(convert(&prev, Some(version.unwrap_or("0.1.0"))))
    }

    /// DEL of `prev_plugins` in reverse order with the attachment's final result.
    pub(crate) fn prelude_del(&self, case: &Case, step: &Step, env: &mut CaseEnv) {
        let run_version = self.prelude_version(Some(&self.default_version));
        let vars = self.natural_env(step, env, "DEL");
        let prev = env.final_results.get(&step.attachment).map(|r| convert(r, Some(&run_version)));
        for plugin in self.target.prev_plugins.clone().iter().rev() {
            let Ok((path, conf)) = self.prelude_request(case, env, plugin, &run_version, prev.as_ref()) else {
                continue;
            };
            let stdin = serde_json::to_vec(&conf).unwrap_or_default();
            let obs = sys::run_process(&path, &[], &vars, &stdin, Duration::from_secs(DEFAULT_TIMEOUT));
            record(env, format!("prelude {} DEL", conf["type"].as_str().unwrap_or("?")), &obs, &[]);
        }
    }

    /// The binary and request config of one plugin before the target.
    fn prelude_request(
        &self,
        _case: &Case,
        env: &CaseEnv,
        plugin: &Value,
        version: &str,
        prev: Option<&Value>,
    ) -> Result<(PathBuf, Value), String> {
        let rendered = self.render_json(env, plugin);
        let conf = cni::conf::PluginConf::from_value(rendered).map_err(|e| e.to_string())?;
        let ty = conf.plugin_type().to_string();
        let path = cni::exec::find_in_path(&ty, &self.plugin_dirs(env)).map_err(|e| e.to_string())?;
        let rt = cni::runtime::RuntimeConf::default();
        let net = format!("net-{}", env.id);
        Ok((path, cni::runtime::build_plugin_config(&net, version, &conf, prev, &rt)))
    }

    /// Conflist targets: run the step through the `cni` crate's runtime (libcni semantics) and
    /// describe the outcome as a plugin would: exit 0 with the result, or exit 1 with the
    /// error object.
    #[allow(clippy::too_many_arguments)]
    fn runtime_invocation(
        &self,
        case: &Case,
        step: &Step,
        env: &CaseEnv,
        command: &str,
        stdin: &[u8],
        vars: &[(String, String)],
        timeout: Duration,
    ) -> Observation {
        let start = Instant::now();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        let list = match serde_json::from_slice::<Value>(stdin)
            .map_err(|e| cni::CniError::new(cni::error::code::DECODING_FAILURE, format!("decoding the network: {e}")))
            .and_then(|v| {
                cni::conf::NetConfList::from_value(v)
                    .map_err(|e| cni::CniError::new(cni::error::code::INVALID_NETWORK_CONFIG, e.to_string()))
            }) {
            Ok(l) => l,
            Err(e) => return runtime_observation(Err(e), start),
        };
        let mut rt = cni::runtime::RuntimeConf::new(get("CNI_CONTAINERID"), get("CNI_NETNS"), get("CNI_IFNAME"));
        rt.args = get("CNI_ARGS")
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').map_or((p.to_string(), String::new()), |(k, v)| (k.to_string(), v.to_string())))
            .collect();
        if let Some(n) = &case.setup.network
            && let Value::Object(caps) = self.render_json(env, &Value::Object(n.capability_args.clone()))
        {
            rt.capability_args = caps;
        }
        let exec = cni::exec::RawExec::with_timeout(timeout);
        let runtime = cni::runtime::CniRuntime::new(self.plugin_dirs(env), env.tmp.path().join("cache"), exec);
        let Some(tokio) = &self.tokio else {
            return runtime_observation(Err(cni::CniError::new(cni::error::code::INTERNAL, "no async runtime")), start);
        };
        let valid: Option<Vec<cni::runtime::ValidAttachment>> = step
            .patch
            .as_ref()
            .and_then(|p| p.get("cni.dev/valid-attachments"))
            .map(|v| serde_json::from_value(self.render_json(env, v)).unwrap_or_default());
        let outcome: Result<Option<Value>, cni::runtime::RuntimeError> = tokio.block_on(async {
            match command {
                "ADD" => runtime.add_network_list(&list, &rt).await.map(|r| Some(r.to_value())),
                "DEL" => runtime.del_network_list(&list, &rt).await.map(|()| None),
                "CHECK" => runtime.check_network_list(&list, &rt).await.map(|()| None),
                "STATUS" => runtime.status_network_list(&list).await.map(|()| None),
                "GC" => runtime.gc_network_list(&list, valid.as_deref()).await.map(|()| None),
                other => Err(cni::runtime::RuntimeError::Config(format!("the runtime has no verb {other}"))),
            }
        });
        runtime_observation(outcome.map_err(|e| e.to_cni_error()), start)
    }
}

fn runtime_observation(outcome: Result<Option<Value>, cni::CniError>, start: Instant) -> Observation {
    let (exit, stdout) = match outcome {
        Ok(Some(result)) => (0, serde_json::to_string(&result).unwrap_or_default()),
        Ok(None) => (0, String::new()),
        Err(e) => (1, e.to_json()),
    };
    Observation { exit: Some(exit), stdout, duration_ms: start.elapsed().as_millis() as u64, ..Default::default() }
}

/// stdin with `prevResult` set (left as it is when it is not a JSON object).
pub(crate) fn with_prev_result(stdin: &[u8], prev: Value) -> Vec<u8> {
    match serde_json::from_slice::<Value>(stdin) {
        Ok(Value::Object(mut m)) => {
            m.insert("prevResult".into(), prev);
            serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
        }
        _ => stdin.to_vec(),
    }
}

/// A script named `name` in `bin` that runs `real` inside the netns `host`.
fn write_wrapper(bin: &std::path::Path, name: &str, real: &std::path::Path, host: &str) -> Result<(), String> {
    let wrapper = bin.join(name);
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec ip netns exec {host} {} \"$@\"\n", real.display()))
        .map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// A step's expectation in words (JUnit failures, reports).
pub fn describe_expectation(s: &Step) -> String {
    if let Some(check) = &s.check {
        let with = serde_json::to_string(&s.with).unwrap_or_default();
        return if s.with.is_empty() {
            format!("check {check} holds")
        } else {
            format!("check {check} holds for {with}")
        };
    }
    if let Some(action) = &s.action {
        return format!("action {action} succeeds");
    }
    let e = &s.expect;
    let mut parts = vec![match e.exit {
        crate::model::ExitExpect::Success => "exit 0".to_string(),
        crate::model::ExitExpect::Failure => "a non-zero exit with one error object".to_string(),
        crate::model::ExitExpect::Any => "any exit".to_string(),
    }];
    if !e.code.is_empty() {
        parts.push(format!("error code {}", e.code.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")));
    }
    if !e.msg_contains.is_empty() {
        parts.push(format!("a message mentioning {}", e.msg_contains.join(", ")));
    }
    if e.exit != crate::model::ExitExpect::Failure && s.cni.as_deref() == Some("ADD") && e.result != Some(false) {
        parts.push("a result valid for the request's cniVersion".into());
    }
    if matches!(s.cni.as_deref(), Some("DEL" | "CHECK" | "GC" | "STATUS")) {
        parts.push("nothing on stdout on success".into());
    }
    if e.version_info {
        parts.push("a valid version object".into());
    }
    if let Some(i) = &e.interface {
        parts.push(format!("an interface {i} in the result"));
    }
    if let Some(r) = &e.equals {
        parts.push(format!("a result equivalent to {r}"));
    }
    if let Some(r) = &e.contains {
        parts.push(format!("a result keeping everything of {r}"));
    }
    if let Some(w) = e.within {
        parts.push(format!("within {w} s"));
    }
    parts.join(", ")
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
