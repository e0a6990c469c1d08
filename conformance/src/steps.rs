//! A case's steps in order: CNI steps, checks and actions; after a failure only `cleanup`
//! steps run. The outcome of the case and, for a failure, which step and why.

use crate::actions;
use crate::case_env::{CaseEnv, StepOutcome};
use crate::checks::{self, Checked};
use crate::cni_step;
use crate::describe::{describe_expectation, step_label};
use crate::model::{Case, Step};
use crate::parallel;
use crate::report::{FailureDetail, Outcome, StepRecord};
use crate::session::Session;
use std::time::{Duration, Instant};

pub fn run_steps(s: &mut Session, case: &Case, env: &mut CaseEnv) -> (Outcome, Option<FailureDetail>) {
    let mut failure: Option<String> = None;
    let mut detail: Option<FailureDetail> = None;
    for (i, step) in case.steps.iter().enumerate() {
        if failure.is_some() && !step.cleanup {
            continue;
        }
        let r = if step.cni.is_some() {
            cni_step::run(s, case, step, env, step.cleanup)
        } else if let Some(check) = &step.check {
            check_step(s, check, step, env)
        } else if let Some(action) = &step.action {
            action_step(s, case, action, step, env)
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

/// A record of a check or action: its label, and its failure as the one problem.
fn push_record(env: &mut CaseEnv, label: String, r: &StepOutcome, start: Instant) {
    let problems: Vec<String> = match r {
        StepOutcome::Fail(w) => vec![w.clone()],
        _ => vec![],
    };
    env.records.push(StepRecord {
        label,
        problems,
        duration_ms: start.elapsed().as_millis() as u64,
        ..Default::default()
    });
}

/// A shared check, else the driver's, else skipped with the shared check's reason.
fn check_step(s: &Session, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    env.current = step.attachment.clone();
    let start = Instant::now();
    let scope = s.scope();
    let once = |env: &CaseEnv| match checks::run(&scope, name, step, env) {
        Checked::Done(o) => o,
        Checked::ForDriver { otherwise } => {
            s.driver.check(&scope, name, step, env).unwrap_or(StepOutcome::Skip(otherwise))
        }
    };
    let r = poll(step.poll.map(Duration::from_secs), || once(env));
    let label = match step.poll {
        Some(secs) => format!("check {name} (within {secs} s)"),
        None => format!("check {name}"),
    };
    push_record(env, label, &r, start);
    r
}

/// Run `check` once, or with `within` again every 200 ms until it no longer fails or the time
/// is up: the last verdict counts.
fn poll(within: Option<Duration>, mut check: impl FnMut() -> StepOutcome) -> StepOutcome {
    let deadline = within.map(|w| Instant::now() + w);
    loop {
        let r = check();
        match (&r, deadline) {
            (StepOutcome::Fail(_), Some(d)) if Instant::now() < d => std::thread::sleep(Duration::from_millis(200)),
            _ => return r,
        }
    }
}

/// A shared action, `parallel`, else the driver's, else skipped.
fn action_step(s: &mut Session, case: &Case, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    env.current = step.attachment.clone();
    let start = Instant::now();
    let shared = match name {
        "parallel" => Some(parallel::run(s, case, step, env)),
        _ => actions::run(&s.scope(), name, step, env),
    };
    let r = shared
        .or_else(|| s.driver.action(name, step, env))
        .unwrap_or_else(|| StepOutcome::Skip(format!("action {name} needs a thick target")));
    push_record(env, format!("action {name}"), &r, start);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polled_check_is_retried_until_it_holds_or_the_time_is_up() {
        let mut n = 0;
        let r = poll(Some(Duration::from_secs(5)), || {
            n += 1;
            if n < 3 { StepOutcome::Fail("not yet".into()) } else { StepOutcome::Ok }
        });
        assert_eq!((r, n), (StepOutcome::Ok, 3));
        let start = Instant::now();
        let r = poll(Some(Duration::from_millis(300)), || StepOutcome::Fail("never".into()));
        assert_eq!(r, StepOutcome::Fail("never".into()));
        assert!(start.elapsed() >= Duration::from_millis(300));
        let mut once = 0;
        let _ = poll(None, || {
            once += 1;
            StepOutcome::Fail("x".into())
        });
        assert_eq!(once, 1, "without poll a check runs once");
    }
}
