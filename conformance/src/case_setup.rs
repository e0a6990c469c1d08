//! A case's environment before its steps and after them: the scratch host netns with the
//! wrappers that run plugins inside it, the target's `ip` scaffolding, the attachments, the
//! driver's per-case preparation; and the teardown DELs.

use crate::case_env::{CaseEnv, attachments_of};
use crate::cni_step;
use crate::errors::CaseSetupError;
use crate::model::{Case, ExitExpect, Step};
use crate::session::Session;
use crate::sys::{self, Netns};
use crate::target::Kind;
use serde_json::{Value, json};

/// Everything a case needs before its first step.
pub fn setup(s: &mut Session, case: &Case) -> Result<CaseEnv, CaseSetupError> {
    let mut env = CaseEnv::create(s.target.ifname.clone().unwrap_or_else(|| "eth0".into()))?;
    if s.driver.uses_scratch_host() && s.target.host_netns.unwrap_or(sys::is_root()) && sys::is_root() {
        scratch_host(s, &mut env)?;
    }
    for a in attachments_of(case) {
        ensure_attachment(s, &mut env, &a)?;
    }
    if let Some(h) = &env.host {
        env.host_baseline = sys::veths(&h.name);
    }
    let network = case.setup.network.as_ref().map(|n| {
        let r = s.scope();
        let mut config = r.render_json(&env, &n.config);
        if let Some(m) = config.as_object_mut() {
            m.entry("name").or_insert_with(|| Value::String(format!("net-{}", env.id)));
        }
        let caps = r.render_json(&env, &Value::Object(n.capability_args.clone()));
        (config, caps)
    });
    s.driver.prepare_case(case, &mut env, network.as_ref())?;
    Ok(env)
}

/// The case's scratch host netns: wrappers that run the target (and the plugins it is chained
/// behind) inside it, so that host-side links land there and not on the real host; then the
/// target's `host_setup`.
fn scratch_host(s: &Session, env: &mut CaseEnv) -> Result<(), CaseSetupError> {
    let host = Netns::create(&format!("{}h", env.id))?;
    let bin = env.tmp.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    if s.target.kind == Kind::Plugin {
        sys::write_netns_wrapper(
            &bin,
            &s.target.type_name(),
            &s.target.plugin.clone().unwrap_or_default(),
            &host.name,
        )?;
    }
    // Chained targets: the plugins before it run in the same scratch host netns.
    for p in &s.target.prev_plugins {
        if let Some(t) = p.get("type").and_then(Value::as_str)
            && let Some(real) = s.target.cni_path.iter().map(|d| d.join(t)).find(|p| p.is_file())
        {
            sys::write_netns_wrapper(&bin, t, &real, &host.name)?;
        }
    }
    env.host = Some(host);
    env.bin_dir = Some(bin);
    for args in &s.target.host_setup {
        host_ip(s, env, args)?;
    }
    start_daemons(s, env)
}

/// The target's `host_daemons`, in order, inside the scratch host netns.
fn start_daemons(s: &Session, env: &mut CaseEnv) -> Result<(), CaseSetupError> {
    let Some(host) = env.host.as_ref().map(|h| h.name.clone()) else { return Ok(()) };
    let r = s.scope();
    for (i, d) in s.target.host_daemons.iter().enumerate() {
        let argv: Vec<String> = d.argv.iter().map(|a| r.render(env, a)).collect();
        let ready = d.ready_path.as_ref().map(|p| std::path::PathBuf::from(r.render(env, p)));
        let log = env.tmp.path().join(format!("daemon-{i}.log"));
        let running = crate::daemons::Running::start(&host, &argv, ready.as_deref(), log)?;
        env.daemons.push(running);
    }
    Ok(())
}

/// Create an attachment (and, the first time, run the target's `attachment_setup` in the
/// scratch host netns with `{{slot}}` and friends pointing at it).
pub fn ensure_attachment(s: &Session, env: &mut CaseEnv, name: &str) -> Result<(), CaseSetupError> {
    if env.attachments.contains_key(name) {
        return Ok(());
    }
    env.attachment(name)?;
    if env.host.is_some() && !s.target.attachment_setup.is_empty() {
        let current = std::mem::replace(&mut env.current, name.to_string());
        let r = s.target.attachment_setup.iter().try_for_each(|args| host_ip(s, env, args));
        env.current = current;
        r?;
        if let Some(h) = &env.host {
            env.host_baseline = sys::veths(&h.name);
        }
    }
    Ok(())
}

/// `ip -n <scratch host netns> <args…>` with templated arguments.
fn host_ip(s: &Session, env: &CaseEnv, args: &[String]) -> Result<(), CaseSetupError> {
    let Some(host) = &env.host else { return Ok(()) };
    let r = s.scope();
    let mut argv = vec!["-n".to_string(), host.name.clone()];
    argv.extend(args.iter().map(|a| r.render(env, a)));
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    sys::cmd("ip", &refs)?;
    Ok(())
}

/// DEL of every attachment still added, the driver's end of the case, and stray files.
pub fn teardown(s: &mut Session, case: &Case, env: &mut CaseEnv) {
    let added: Vec<String> = env.added.iter().cloned().collect();
    for a in added {
        let Ok(mut step) = serde_json::from_value::<Step>(json!({})) else { continue };
        step.cni = Some("DEL".into());
        step.attachment = a;
        step.cleanup = true;
        step.expect.exit = ExitExpect::Any;
        let _ = cni_step::run(s, case, &step, env, true);
    }
    s.driver.finish_case(case, env);
    // Stopped by PID (drop) before the namespaces they serve go.
    env.daemons.clear();
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
