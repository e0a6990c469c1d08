//! The `parallel` action (cni.md §5.29): `count` concurrent ADDs (or `command: DEL`) on
//! attachments p0..p<count-1>, each judged; one after the other for a target whose driver
//! cannot run invocations concurrently (the in-process runtime).

use crate::case_env::{CaseEnv, StepOutcome};
use crate::case_setup::ensure_attachment;
use crate::cni_step;
use crate::expect::{self, JudgeCtx, Observation};
use crate::invocation::Invocation;
use crate::model::{Case, Step};
use crate::session::Session;
use serde_json::Value;
use std::time::Duration;

fn problems_outcome(problems: Vec<String>) -> StepOutcome {
    if problems.is_empty() { StepOutcome::Ok } else { StepOutcome::fail(format!("§5.29: {}", problems.join(" | "))) }
}

pub fn run(s: &Session, case: &Case, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    let count = step.with.get("count").and_then(Value::as_u64).unwrap_or(4) as usize;
    let command = step.with.get("command").and_then(|v| v.as_str().map(String::from)).unwrap_or_else(|| "ADD".into());
    for i in 0..count {
        if let Err(e) = ensure_attachment(s, env, &format!("p{i}")) {
            return StepOutcome::fail(e.to_string());
        }
    }
    if command == "ADD" {
        for i in 0..count {
            if let Err(e) = s.driver.ensure_pod(env, &format!("p{i}")) {
                return StepOutcome::fail(e.to_string());
            }
        }
    }
    let mut jobs = Vec::new();
    for i in 0..count {
        let mut job: Step = match serde_json::from_value(serde_json::json!({})) {
            Ok(s) => s,
            Err(e) => return StepOutcome::fail(e.to_string()),
        };
        job.cni = Some(command.clone());
        job.attachment = format!("p{i}");
        job.save_as = (command == "ADD").then(|| format!("p{i}"));
        jobs.push(job);
    }
    if !s.driver.runs_concurrently() {
        let mut problems = Vec::new();
        for job in &jobs {
            if let StepOutcome::Fail(why) = cni_step::run(s, case, job, env, false) {
                problems.push(format!("{}: {why}", job.attachment));
            }
        }
        return problems_outcome(problems);
    }
    concurrently(s, case, &command, jobs, env)
}

/// Build every invocation first (rendering needs the env; chained targets run what they are
/// chained behind, one attachment at a time), then run them concurrently and judge each.
fn concurrently(s: &Session, case: &Case, command: &str, jobs: Vec<Step>, env: &mut CaseEnv) -> StepOutcome {
    let r = s.scope();
    let mut prepared: Vec<(Invocation, Step)> = Vec::new();
    for job in jobs {
        let mut inv = r.invocation(case, &job, env);
        if let Err(e) = s.driver.before_add(&r, &job, &mut inv, env) {
            return StepOutcome::fail(format!("the chain before the target (prev_plugins) failed: {e}"));
        }
        prepared.push((inv, job));
    }
    let shared: &CaseEnv = env;
    let outs: Vec<Observation> = std::thread::scope(|sc| {
        let hs: Vec<_> = prepared
            .iter()
            .map(|(inv, job)| {
                let driver = &s.driver;
                sc.spawn(move || driver.execute(&r, case, job, inv, shared, Duration::from_secs(60)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut problems = Vec::new();
    for ((inv, job), obs) in prepared.iter().zip(outs) {
        if command == "ADD" {
            env.added.insert(job.attachment.clone());
        }
        let ctx = JudgeCtx {
            command,
            config_version: inv.version.as_deref(),
            supported: s.versions.supported.as_deref(),
            ..Default::default()
        };
        let v = expect::judge(&job.expect, &obs, &ctx);
        if let (Some(n), Some(res)) = (&job.save_as, &v.result) {
            env.saved.insert(n.clone(), res.clone());
        }
        if command == "DEL" && obs.succeeded() {
            env.added.remove(&job.attachment);
        }
        if command == "ADD"
            && obs.succeeded()
            && let Some(res) = &v.result
        {
            env.final_results.insert(job.attachment.clone(), res.clone());
        }
        if !v.problems.is_empty() {
            problems.push(format!("{}: {}", job.attachment, v.problems.join("; ")));
        }
    }
    if command == "DEL" {
        for (_, job) in &prepared {
            s.driver.after_del(&r, job, env);
        }
    }
    problems_outcome(problems)
}
