//! The actions every kind of target shares (`action: …` in case files): `ip` commands, deleting
//! an attachment's netns, a link in its way, a pause. `parallel` lives with the runner (it
//! runs CNI steps); the thick target's own actions with its driver.

use crate::case_env::{CaseEnv, StepOutcome};
use crate::invocation::Scope;
use crate::model::Step;
use crate::sys;
use serde_json::Value;

/// Run the shared action `name`; `None` when it is not one.
pub fn run(r: &Scope<'_>, name: &str, step: &Step, env: &mut CaseEnv) -> Option<StepOutcome> {
    Some(match name {
        "ip" => ip(r, step, env),
        "delete-netns" => match env.attachments.get_mut(&step.attachment).and_then(|a| a.netns.as_mut()) {
            Some(ns) => ns.delete().map(|_| StepOutcome::Ok).unwrap_or_else(|e| StepOutcome::Fail(e.to_string())),
            None => StepOutcome::Skip("needs a real netns".into()),
        },
        "make-link" => make_link(r, step, env),
        "sleep" => {
            let ms = step.with.get("ms").and_then(Value::as_u64).unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            StepOutcome::Ok
        }
        _ => return None,
    })
}

/// `ip` with templated `args` (e.g. `[-n, "{{netns_name}}", link, del, eth0]`).
fn ip(r: &Scope<'_>, step: &Step, env: &CaseEnv) -> StepOutcome {
    let args: Vec<String> = step
        .with
        .get("args")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str()).map(|x| r.render(env, x)).collect())
        .unwrap_or_default();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    match sys::cmd("ip", &refs) {
        Ok(_) => StepOutcome::Ok,
        Err(e) => StepOutcome::Fail(e.to_string()),
    }
}

/// A veth named `ifname` (default: the attachment's) inside the attachment's netns.
fn make_link(r: &Scope<'_>, step: &Step, env: &CaseEnv) -> StepOutcome {
    let Some(att) = env.attachments.get(&step.attachment) else { return StepOutcome::Fail("no attachment".into()) };
    let Some(ns) = att.netns.as_ref().map(|n| n.name.clone()) else {
        return StepOutcome::Skip("needs a real netns".into());
    };
    let ifname =
        step.with.get("ifname").and_then(Value::as_str).map(|i| r.render(env, i)).unwrap_or_else(|| att.ifname.clone());
    match sys::cmd("ip", &["-n", &ns, "link", "add", &ifname, "type", "veth", "peer", "name", "ccpeer0"]) {
        Ok(_) => {
            let _ = sys::cmd("ip", &["-n", &ns, "link", "set", &ifname, "up"]);
            StepOutcome::Ok
        }
        Err(e) => StepOutcome::Fail(e.to_string()),
    }
}
