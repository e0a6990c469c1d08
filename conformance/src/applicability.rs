//! Whether a case can run against a target here (youki's `can_run`): the target at all (its
//! binary, the kernel's link types), the case's families (`applies`), its requirements, and
//! what only the driver knows. Every "no" carries the reason reports show.

use crate::driver::TargetDriver;
use crate::model::{Applies, Case, Require};
use crate::sys;
use crate::target::{Kind, Target};
use crate::versions::Versions;
use serde_json::Value;

/// Why no case can run against this target here (plugin not installed, kernel lacks a link type).
pub fn availability(target: &Target) -> Option<String> {
    if target.kind == Kind::Plugin {
        let plugin = target.plugin.clone().unwrap_or_default();
        if !plugin.is_file() {
            return Some(format!("plugin {} is not installed here", plugin.display()));
        }
    }
    if sys::is_root() {
        for kind in &target.link_kinds {
            if let Err(e) = sys::link_kind_supported(kind) {
                return Some(format!("this kernel lacks link type {kind:?} ({e})"));
            }
        }
    }
    None
}

/// `Some(reason)` when the case cannot run against this (available) target.
pub fn can_run(target: &Target, versions: &Versions, driver: &dyn TargetDriver, case: &Case) -> Option<String> {
    for a in &case.applies {
        if !target.has(*a) {
            return Some(not_applicable(target, *a));
        }
    }
    for r in &case.requires {
        if let Some(why) = unmet(target, versions, driver, r) {
            return Some(why);
        }
    }
    driver.can_run(case)
}

/// Why requirement `r` is not met here.
fn unmet(target: &Target, versions: &Versions, driver: &dyn TargetDriver, r: &Require) -> Option<String> {
    let supported = &versions.supported;
    match r {
        Require::Root if !sys::is_root() => Some("needs root".to_string()),
        Require::Netns if !sys::is_root() => Some("needs root to create network namespaces".to_string()),
        Require::Version(v) if supported.is_none() => {
            Some(format!("needs CNI {v}, and the target's VERSION did not answer"))
        }
        Require::Version(v) if !versions.supports(v) => Some(format!(
            "target does not support CNI {v} (supportedVersions {})",
            supported.clone().unwrap_or_default().join(" ")
        )),
        Require::UnsupportedVersion if supported.is_none() => Some("target's VERSION did not answer".into()),
        Require::Capability(c) => {
            let has = target
                .config
                .as_ref()
                .and_then(|v| v.get("capabilities"))
                .and_then(|m| m.get(c))
                .and_then(Value::as_bool)
                == Some(true)
                || driver.offers().capabilities.iter().any(|x| x == c);
            (!has).then(|| format!("target config declares no capability {c:?}"))
        }
        Require::ApiServer if !driver.offers().api_server => Some("needs the API server of a thick target".into()),
        Require::Chain if target.prev_plugins.is_empty() => {
            Some("target declares no plugins to chain after (`prev_plugins`)".into())
        }
        Require::Devices if !driver.offers().devices => {
            Some("needs a thick target whose daemon reads device IDs from a fake kubelet (fake-kubelet)".into())
        }
        Require::DelegateRecords => {
            let ok = driver.offers().delegate_records
                || target.type_name() == "fake-cni"
                || (target.kind == Kind::Conflist && target.cni_path.iter().any(|d| d.join("fake-cni").is_file()));
            (!ok).then(|| "needs delegates that record their calls (fake-cni)".to_string())
        }
        _ => None,
    }
}

/// Why cases of family `a` do not apply to this target.
fn not_applicable(target: &Target, a: Applies) -> String {
    let kind = match target.kind {
        Kind::Plugin => "a plain plugin",
        Kind::Conflist => "the harness's runtime running a conflist",
        Kind::Thick => "a thick plugin",
    };
    match a {
            Applies::Thick | Applies::Meta => format!("needs a {} target (this is {kind})", a.as_str()),
            Applies::Interface => "target does not create container interfaces (tag `interface`)".into(),
            Applies::Ipam => "target owns no IPAM state the harness can inspect (tag `ipam`)".into(),
            Applies::Chained if target.kind == Kind::Thick => "multus-shim is not a link of a chain: a runtime runs it as the only plugin of its config, and it answers its cluster network's result whatever prevResult it is given (as the Go shim does); chaining inside Multus happens among the plugins of a delegate's conflist, judged by the chained-delegates-* cases".into(),
            Applies::Chained => "target is not a chained plugin (tag `chained`)".into(),
            Applies::Network => format!("needs a target that runs a network the case defines: a runtime or a meta plugin (this is {kind})"),
            Applies::Runtime => format!("runtime-side case: judges the harness's libcni runtime (`--target runtime`), not {kind}"),
            Applies::Any => format!("a plugin-protocol case; {kind} target takes only the cases its tags name"),
        }
}
