//! The null driver of a target that cannot run here (plugin not installed, a link type the
//! kernel lacks): every case is skipped before it would reach it, so it runs nothing.

use super::TargetDriver;
use crate::case_env::CaseEnv;
use crate::expect::Observation;
use crate::invocation::{Invocation, Scope, TargetVars, default_config};
use crate::model::{Case, Step};
use crate::target::Target;
use crate::versions::Versions;
use serde_json::Value;
use std::time::Duration;

pub struct Unavailable {
    pub why: String,
}

impl TargetVars for Unavailable {
    fn var(&self, _key: &str, _which: &str, _env: &CaseEnv) -> Option<Value> {
        None
    }

    fn cni_path(&self, _env: &CaseEnv) -> String {
        String::new()
    }

    fn config_template(&self, target: &Target, _case: &Case) -> Value {
        default_config(target)
    }
}

impl TargetDriver for Unavailable {
    fn vars(&self) -> &dyn TargetVars {
        self
    }

    /// Not probed: nothing answers.
    fn probe_versions(&self, _target: &Target) -> Versions {
        Versions::default()
    }

    fn can_run(&self, _case: &Case) -> Option<String> {
        Some(self.why.clone())
    }

    fn execute(
        &self,
        _r: &Scope<'_>,
        _c: &Case,
        _s: &Step,
        _i: &Invocation,
        _e: &CaseEnv,
        _t: Duration,
    ) -> Observation {
        Observation { exit: Some(127), stderr: format!("cni-conformance: {}", self.why), ..Default::default() }
    }
}
