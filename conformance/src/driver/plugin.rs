//! Plugin targets: one CNI plugin binary executed for every step — through a wrapper that
//! enters the case's scratch host netns when there is one — after the plugins it is chained
//! behind (`prev_plugins`).

use super::TargetDriver;
use super::chain;
use crate::case_env::CaseEnv;
use crate::errors::ChainError;
use crate::expect::Observation;
use crate::invocation::{Invocation, Scope, TargetVars, default_config, with_prev_result};
use crate::model::{Case, Step};
use crate::sys;
use crate::target::Target;
use crate::versions::Versions;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub struct PluginDriver {
    plugin: PathBuf,
    type_name: String,
    cni_path: Vec<PathBuf>,
}

impl PluginDriver {
    pub fn new(target: &Target) -> PluginDriver {
        PluginDriver {
            plugin: target.plugin.clone().unwrap_or_default(),
            type_name: target.type_name(),
            cni_path: target.cni_path.clone(),
        }
    }

    /// The binary a case's steps execute: the wrapper in the scratch host netns when there is one.
    fn exec_path(&self, env: &CaseEnv) -> PathBuf {
        match &env.bin_dir {
            Some(bin) => bin.join(&self.type_name),
            None => self.plugin.clone(),
        }
    }
}

impl TargetVars for PluginDriver {
    fn var(&self, key: &str, which: &str, env: &CaseEnv) -> Option<Value> {
        match key {
            "records" => Some(Value::String(format!("{}/calls", env.tmp_path()))),
            "net_ifname" => env.attachments.get(which).map(|a| Value::String(a.ifname.clone())),
            _ => None,
        }
    }

    fn cni_path(&self, env: &CaseEnv) -> String {
        let dirs: Vec<String> =
            env.plugin_dirs(&self.cni_path, false).iter().map(|p| p.display().to_string()).collect();
        dirs.join(":")
    }

    fn config_template(&self, target: &Target, _case: &Case) -> Value {
        default_config(target)
    }
}

impl TargetDriver for PluginDriver {
    fn vars(&self) -> &dyn TargetVars {
        self
    }

    fn probe_versions(&self, target: &Target) -> Versions {
        Versions::probe(&self.plugin, target.default_version.as_ref())
    }

    fn before_add(
        &self,
        r: &Scope<'_>,
        step: &Step,
        inv: &mut Invocation,
        env: &mut CaseEnv,
    ) -> Result<(), ChainError> {
        if inv.command == "ADD" && chain::runs_before(r.target, step) {
            let prev = chain::add(r, step, env, inv.version.as_deref())?;
            inv.stdin = with_prev_result(&inv.stdin, prev);
        }
        Ok(())
    }

    fn execute(
        &self,
        _r: &Scope<'_>,
        _case: &Case,
        _step: &Step,
        inv: &Invocation,
        env: &CaseEnv,
        timeout: Duration,
    ) -> Observation {
        sys::run_process(&self.exec_path(env), &[], &inv.env, &inv.stdin, timeout)
    }

    fn after_del(&self, r: &Scope<'_>, step: &Step, env: &mut CaseEnv) {
        if env.prelude_added.contains(&step.attachment) {
            chain::del(r, step, env);
        }
    }
}
