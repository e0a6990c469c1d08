//! One driver per kind of target: how a case's CNI steps reach it and what it adds to
//! templating, setup, checks and actions. `plugin` execs one binary (after the plugins it is
//! chained behind), `runtime` runs a configuration list through the `cni` crate's runtime
//! in-process, `thick` drives a shim against a node (daemon, API server, fake kubelet);
//! `unavailable` stands in for a target that cannot run here at all.

pub mod chain;
pub mod plugin;
pub mod runtime;
pub mod thick;
pub mod unavailable;

use crate::case_env::{CaseEnv, StepOutcome};
use crate::errors::{CaseSetupError, ChainError, KubeError};
use crate::expect::Observation;
use crate::invocation::{Invocation, Scope, TargetVars};
use crate::model::{Case, Step};
use crate::target::Target;
use crate::versions::Versions;
use serde_json::Value;
use std::time::Duration;

/// What a running target offers to cases that require something (`requires:`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offers {
    /// Capabilities its generated config declares (thick: from `00-multus.conf`).
    pub capabilities: Vec<String>,
    /// An API server the cases can seed.
    pub api_server: bool,
    /// A fake kubelet that hands pods devices.
    pub devices: bool,
    /// Delegates that record their calls (fake-cni).
    pub delegate_records: bool,
    /// Container interfaces and IPAM state (thick: a bridge cluster network).
    pub interfaces: bool,
    /// Networks that follow the pod's selection annotation (thick: `dynamic_networks`).
    pub dynamic_networks: bool,
}

/// The rendered network a case defines (`setup.network`): its config and capability args.
pub type CaseNetwork = (Value, Value);

pub trait TargetDriver: TargetVars + Send {
    /// The driver as a variable source.
    fn vars(&self) -> &dyn TargetVars;
    /// Ask the target which versions it speaks.
    fn probe_versions(&self, target: &Target) -> Versions;
    fn offers(&self) -> Offers {
        Offers::default()
    }
    /// Why this case cannot run against this target (beyond tags and requirements).
    fn can_run(&self, _case: &Case) -> Option<String> {
        None
    }
    /// Whether the case gets a scratch host netns for the plugin's host side (when root).
    fn uses_scratch_host(&self) -> bool {
        true
    }
    /// Per-case preparation after the attachments exist.
    fn prepare_case(
        &mut self,
        _case: &Case,
        _env: &mut CaseEnv,
        _network: Option<&CaseNetwork>,
    ) -> Result<(), CaseSetupError> {
        Ok(())
    }
    /// Before an ADD reaches the target: what it is chained behind runs and fills `prevResult`.
    fn before_add(
        &self,
        _r: &Scope<'_>,
        _step: &Step,
        _inv: &mut Invocation,
        _env: &mut CaseEnv,
    ) -> Result<(), ChainError> {
        Ok(())
    }
    /// Run one invocation against the target.
    fn execute(
        &self,
        r: &Scope<'_>,
        case: &Case,
        step: &Step,
        inv: &Invocation,
        env: &CaseEnv,
        timeout: Duration,
    ) -> Observation;
    /// After a DEL: what the target is chained behind gets its DEL too.
    fn after_del(&self, _r: &Scope<'_>, _step: &Step, _env: &mut CaseEnv) {}
    /// Whether invocations may run concurrently (`parallel`), or one after the other.
    fn runs_concurrently(&self) -> bool {
        true
    }
    /// A check only this kind of target has; `None`: no such check.
    fn check(&self, _r: &Scope<'_>, _name: &str, _step: &Step, _env: &CaseEnv) -> Option<StepOutcome> {
        None
    }
    /// An action only this kind of target has; `None`: no such action.
    fn action(&mut self, _name: &str, _step: &Step, _env: &mut CaseEnv) -> Option<StepOutcome> {
        None
    }
    /// Make sure the attachment's pod exists (thick: concurrent ADDs of `parallel`).
    fn ensure_pod(&self, _env: &CaseEnv, _attachment: &str) -> Result<(), KubeError> {
        Ok(())
    }
    /// After the case's teardown DELs.
    fn finish_case(&mut self, _case: &Case, _env: &mut CaseEnv) {}
    /// The readiness endpoint that answered (thick targets).
    fn ready_endpoint(&self) -> Option<&'static str> {
        None
    }
}
