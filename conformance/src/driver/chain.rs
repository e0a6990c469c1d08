//! Plugins a target is chained behind (`prev_plugins`): an ADD without a `prevResult` of its
//! own first runs them in order, each getting the previous one's result (libcni's
//! `buildOneConfig`); their DEL follows the target's, in reverse.

use crate::case_env::CaseEnv;
use crate::errors::ChainError;
use crate::invocation::{Scope, convert};
use crate::model::Step;
use crate::stdout_json::single_json;
use crate::sys;
use crate::target::{Kind, Target};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether an ADD step of a chained target runs the plugins before it first: when the
/// target has some and the step brings no `prevResult` of its own.
pub fn runs_before(target: &Target, step: &Step) -> bool {
    !target.prev_plugins.is_empty()
        && target.kind == Kind::Plugin
        && step.stdin.is_none()
        && step.prev_result.is_none()
        && !step.set.contains_key("prevResult")
        && step.patch.as_ref().and_then(|p| p.get("prevResult")).is_none()
}

/// The version the chain runs at: the step's when the target supports it, else the target's
/// default (the result is then converted, as scaffolding).
fn run_version(r: &Scope<'_>, version: Option<&str>) -> String {
    match version {
        Some(v) if r.versions.supports(v) => v.to_string(),
        _ => r.versions.default.clone(),
    }
}

/// ADD of the chain in order; the last result converted to the step's version.
pub fn add(r: &Scope<'_>, step: &Step, env: &mut CaseEnv, version: Option<&str>) -> Result<Value, ChainError> {
    let run_version = run_version(r, version);
    let vars = r.natural_env(step, env, "ADD");
    env.prelude_added.insert(step.attachment.clone());
    let mut prev: Option<Value> = None;
    for plugin in &r.target.prev_plugins {
        let (path, conf) = request(r, env, plugin, &run_version, prev.as_ref())?;
        let stdin = serde_json::to_vec(&conf).unwrap_or_default();
        let obs = sys::run_process(&path, &[], &vars, &stdin, TIMEOUT);
        env.record(format!("prelude {} ADD", conf["type"].as_str().unwrap_or("?")), &obs, &[]);
        if !obs.succeeded() {
            return Err(ChainError::Failed {
                plugin: conf["type"].clone(),
                exit: obs.exit,
                stdout: crate::case_env::trunc(&obs.stdout),
            });
        }
        prev = Some(single_json(&obs.stdout)?);
    }
    let prev = prev.ok_or(ChainError::Empty)?;
    Ok(convert(&prev, Some(version.unwrap_or("0.1.0"))))
}

/// DEL of the chain in reverse order with the attachment's final result.
pub fn del(r: &Scope<'_>, step: &Step, env: &mut CaseEnv) {
    let run_version = run_version(r, Some(&r.versions.default));
    let vars = r.natural_env(step, env, "DEL");
    let prev = env.final_results.get(&step.attachment).map(|res| convert(res, Some(&run_version)));
    for plugin in r.target.prev_plugins.iter().rev() {
        let Ok((path, conf)) = request(r, env, plugin, &run_version, prev.as_ref()) else {
            continue;
        };
        let stdin = serde_json::to_vec(&conf).unwrap_or_default();
        let obs = sys::run_process(&path, &[], &vars, &stdin, TIMEOUT);
        env.record(format!("prelude {} DEL", conf["type"].as_str().unwrap_or("?")), &obs, &[]);
    }
}

/// The binary and request config of one plugin of the chain.
fn request(
    r: &Scope<'_>,
    env: &CaseEnv,
    plugin: &Value,
    version: &str,
    prev: Option<&Value>,
) -> Result<(PathBuf, Value), ChainError> {
    let rendered = r.render_json(env, plugin);
    let conf = cni::conf::PluginConf::from_value(rendered).map_err(|e| ChainError::Config(e.to_string()))?;
    let ty = conf.plugin_type().to_string();
    let dirs = env.plugin_dirs(&r.target.cni_path, false);
    let path = cni::exec::find_in_path(&ty, &dirs).map_err(|e| ChainError::Lookup(e.to_string()))?;
    let rt = cni::runtime::RuntimeConf::default();
    let net = format!("net-{}", env.id);
    Ok((path, cni::runtime::build_plugin_config(&net, version, &conf, prev, &rt)))
}
