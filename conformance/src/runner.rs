//! Running cases against a target: the driver for its kind, the versions it speaks, and per
//! case: whether it can run, its environment, its steps, its teardown, its result.

use crate::applicability;
use crate::case_setup;
use crate::driver::TargetDriver;
use crate::driver::plugin::PluginDriver;
use crate::driver::runtime::RuntimeDriver;
use crate::driver::thick::driver::ThickDriver;
use crate::driver::thick::node::NodeError;
use crate::driver::unavailable::Unavailable;
use crate::model::{Applies, Case, assertion_labels};
use crate::report::{CaseResult, Outcome, Report, TargetInfo};
use crate::session::Session;
use crate::steps;
use crate::target::{Kind, Target};
use crate::versions::Versions;
use std::time::Instant;

/// Why a target's driver did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Runtime(#[from] std::io::Error),
}

pub struct Runner {
    session: Session,
    /// Print progress lines to stderr.
    pub verbose: bool,
    /// Why no case can run against this target here (plugin not installed, kernel lacks a
    /// link type): every case is skipped with this reason.
    pub unavailable: Option<String>,
    /// A link type the target needs and the kernel lacks: cases that need a working ADD are
    /// skipped with this reason, the others run.
    pub kernel_gap: Option<String>,
}

/// The driver of the target's kind (the null one when it cannot run here).
fn driver_for(target: &Target, unavailable: &Option<String>) -> Result<Box<dyn TargetDriver>, StartError> {
    Ok(match (unavailable, target.kind) {
        (Some(why), _) => Box::new(Unavailable { why: why.clone() }),
        (None, Kind::Plugin) => Box::new(PluginDriver::new(target)),
        (None, Kind::Conflist) => Box::new(RuntimeDriver::new(target)?),
        (None, Kind::Thick) => Box::new(ThickDriver::start(target)?),
    })
}

impl Runner {
    /// Prepare a target: start its driver (a thick node), probe VERSION.
    pub fn new(target: Target) -> Result<Runner, StartError> {
        let unavailable = applicability::availability(&target);
        let driver = driver_for(&target, &unavailable)?;
        let mut target = target;
        if driver.offers().interfaces {
            target.tags.extend([Applies::Interface, Applies::Ipam]);
        }
        let versions = driver.probe_versions(&target);
        let kernel_gap = if unavailable.is_none() { applicability::kernel_gap(&target) } else { None };
        Ok(Runner { session: Session { target, versions, driver }, verbose: false, unavailable, kernel_gap })
    }

    pub fn target(&self) -> &Target {
        &self.session.target
    }

    pub fn versions(&self) -> &Versions {
        &self.session.versions
    }

    /// The daemon endpoint that answered ready (thick targets).
    pub fn ready_endpoint(&self) -> Option<&'static str> {
        self.session.driver.ready_endpoint()
    }

    pub fn info(&self) -> TargetInfo {
        let target = &self.session.target;
        TargetInfo {
            spec: target.spec.clone(),
            kind: match target.kind {
                Kind::Plugin => "plugin".into(),
                Kind::Conflist => "conflist".into(),
                Kind::Thick => "thick".into(),
            },
            name: target.name.clone().unwrap_or_default(),
            supported_versions: self.session.versions.supported.clone().unwrap_or_default(),
            default_version: self.session.versions.default.clone(),
            tags: target.tags.iter().map(|t| t.as_str().to_string()).collect(),
            notes: target.notes.clone(),
        }
    }

    /// youki's `can_run`: `Some(reason)` when the case cannot run against this target here.
    pub fn can_run(&self, case: &Case) -> Option<String> {
        if let Some(why) = &self.unavailable {
            return Some(why.clone());
        }
        let s = &self.session;
        applicability::can_run(&s.target, &s.versions, s.driver.as_ref(), case).or_else(|| {
            let gap = self.kernel_gap.as_ref()?;
            applicability::needs_working_add(case)
                .then(|| format!("cannot run here: {gap}; the case needs a successful ADD"))
        })
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

    /// A case run despite a kernel gap whose steps ran into it: it judged the kernel, not the
    /// plugin, so it is skipped with the step that shows it.
    fn judged_the_kernel(&self, result: &CaseResult) -> Option<Outcome> {
        let gap = self.kernel_gap.as_ref()?;
        let (i, step) =
            result.steps.iter().enumerate().find(|(_, st)| {
                applicability::hit_kernel_gap(&st.stdout) || applicability::hit_kernel_gap(&st.stderr)
            })?;
        Some(Outcome::Skipped { reason: format!("cannot run here: {gap}; step {} ({}) reached it", i + 1, step.label) })
    }

    pub fn run_case(&mut self, case: &Case) -> CaseResult {
        let start = Instant::now();
        let mut result = CaseResult {
            group: case.group.clone(),
            id: case.id.clone(),
            title: case.title.clone(),
            assertions: assertion_labels(case),
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
        if let Some(reason) = applicability::unsupported(self.session.driver.as_ref(), case) {
            result.outcome = Outcome::Unsupported { reason };
            return result;
        }
        let outcome = match case_setup::setup(&mut self.session, case) {
            Err(e) => Outcome::Fail { reason: format!("setup failed: {e}") },
            Ok(mut env) => {
                let (o, failure) = steps::run_steps(&mut self.session, case, &mut env);
                case_setup::teardown(&mut self.session, case, &mut env);
                result.steps = std::mem::take(&mut env.records);
                result.failure = failure;
                self.judged_the_kernel(&result).unwrap_or(o)
            }
        };
        result.outcome = outcome;
        result.duration_ms = start.elapsed().as_millis() as u64;
        result
    }
}
