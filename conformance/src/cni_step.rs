//! One CNI step: build the invocation, run it through the driver (with what the target is
//! chained behind), judge it, record it, and keep what later steps refer to (saved results,
//! attachments to tear down).

use crate::case_env::{CaseEnv, StepOutcome, trunc};
use crate::expect::{self, JudgeCtx, Observation, Verdict};
use crate::invocation::{Invocation, Scope, convert};
use crate::model::{Case, Step};
use crate::session::Session;
use crate::stdout_json::single_json;
use serde_json::Value;
use std::time::Duration;

/// Seconds a step may take unless it says (`timeout`).
pub const DEFAULT_TIMEOUT: u64 = 30;

/// Run one CNI invocation and judge it; `quiet` for teardown DELs.
pub fn run(s: &Session, case: &Case, step: &Step, env: &mut CaseEnv, quiet: bool) -> StepOutcome {
    let r = s.scope();
    let mut inv = r.invocation(case, step, env);
    let timeout = Duration::from_secs(step.timeout.unwrap_or(DEFAULT_TIMEOUT));
    if let Err(why) = s.driver.before_add(&r, step, &mut inv, env) {
        env.added.insert(step.attachment.clone());
        return StepOutcome::Fail(format!("the chain before the target (prev_plugins) failed: {why}"));
    }
    let obs = s.driver.execute(&r, case, step, &inv, env, timeout);
    let command = inv.command.as_str();
    if command == "ADD" {
        env.added.insert(step.attachment.clone());
    }
    if command == "DEL" && obs.succeeded() && !quiet {
        env.added.remove(&step.attachment);
    }
    if command == "DEL" {
        s.driver.after_del(&r, step, env);
    }
    let verdict = judge(&r, step, &inv, &obs, env);
    let label = if quiet { format!("{command} (teardown)") } else { command.to_string() };
    env.record(label, &obs, &verdict.problems);
    keep_results(step, command, &obs, &verdict, env);
    outcome(verdict, &obs)
}

/// Judge the observation against the step's expectation, with the results it refers to
/// converted to the version sent.
fn judge(r: &Scope<'_>, step: &Step, inv: &Invocation, obs: &Observation, env: &CaseEnv) -> Verdict {
    // A config without cniVersion means 0.1.0 for result purposes (cni.md §2.2).
    let version = if step.stdin.is_none() {
        inv.version.clone().or_else(|| Some("0.1.0".to_string()))
    } else {
        inv.version.clone()
    };
    let sent_prev = serde_json::from_slice::<Value>(&inv.stdin).ok().and_then(|v| v.get("prevResult").cloned());
    let conv = |name: &Option<String>| match name.as_deref() {
        Some("$prev") => sent_prev.clone(),
        Some(n) => env.saved.get(n).map(|v| convert(v, version.as_deref())),
        None => None,
    };
    let (equals, contains) = (conv(&step.expect.equals), conv(&step.expect.contains));
    let interface = step.expect.interface.as_ref().map(|i| r.render(env, i));
    let ctx = JudgeCtx {
        command: &inv.command,
        config_version: version.as_deref(),
        supported: r.versions.supported.as_deref(),
        equals: equals.as_ref(),
        contains: contains.as_ref(),
        interface: interface.as_deref(),
    };
    expect::judge(&step.expect, obs, &ctx)
}

/// Save the result (`save_as`) and remember the attachment's last successful ADD result.
fn keep_results(step: &Step, command: &str, obs: &Observation, verdict: &Verdict, env: &mut CaseEnv) {
    // A setup ADD that does not judge the result's schema (`result: false`) still saves it.
    let parsed = || (command == "ADD" && obs.succeeded()).then(|| single_json(&obs.stdout).ok()).flatten();
    if let Some(name) = &step.save_as
        && let Some(r) = verdict.result.clone().or_else(parsed)
    {
        env.saved.insert(name.clone(), r);
    }
    if command == "ADD"
        && obs.succeeded()
        && let Ok(r) = single_json(&obs.stdout)
    {
        env.final_results.insert(step.attachment.clone(), r);
    }
}

fn outcome(verdict: Verdict, obs: &Observation) -> StepOutcome {
    if let Some(u) = verdict.unsupported {
        return StepOutcome::Unsupported(u);
    }
    if verdict.problems.is_empty() {
        return StepOutcome::Ok;
    }
    let mut why = verdict.problems.join("; ");
    why.push_str(&format!(" [exit {:?}, stdout {:?}, stderr {:?}]", obs.exit, trunc(&obs.stdout), trunc(&obs.stderr)));
    StepOutcome::Fail(why)
}
