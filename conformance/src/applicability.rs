//! Whether a case can run against a target here (youki's `can_run`): the target at all (its
//! binary, the kernel's link types), the case's families (`applies`), its requirements, and
//! what only the driver knows. Every "no" carries the reason reports show.

use crate::driver::TargetDriver;
use crate::model::{Applies, Case, ExitExpect, Require};
use crate::sys;
use crate::target::{Kind, Target};
use crate::versions::Versions;
use serde_json::Value;

/// Why no case can run against this target here: the plugin is not installed, or a daemon it
/// needs (`host_daemons`) is not, or they would need root.
pub fn availability(target: &Target) -> Option<String> {
    if target.kind == Kind::Plugin {
        let plugin = target.plugin.clone().unwrap_or_default();
        if !plugin.is_file() {
            return Some(format!("plugin {} is not installed here", plugin.display()));
        }
    }
    if !target.host_daemons.is_empty() && !sys::is_root() {
        return Some("needs root: its daemons run in a scratch network namespace".into());
    }
    target.host_daemons.iter().find_map(crate::daemons::missing_program).map(|why| format!("cannot run here: {why}"))
}

/// A link type the target needs and the kernel lacks (after `modprobe`, where modules exist):
/// the cases that need a working ADD cannot run; the others (protocol errors, VERSION, DEL of
/// nothing) still judge the plugin.
pub fn kernel_gap(target: &Target) -> Option<String> {
    if !sys::is_root() {
        return None;
    }
    target.link_kinds.iter().find_map(|kind| {
        let _ = sys::cmd("modprobe", &["-q", kind]);
        // The kernel's words only: the probe's scratch netns name would differ on every run.
        sys::link_kind_supported(kind).err().map(|e| match e {
            sys::SysError::Failed { stderr, .. } => {
                format!("this kernel lacks link type {kind:?} (ip link add: {stderr})")
            }
            other => format!("this kernel lacks link type {kind:?} ({other})"),
        })
    })
}

/// Whether a case needs an ADD or CHECK of the target to succeed (or runs steps concurrently,
/// which all ADD): such a case cannot be judged where the plugin cannot create its link.
pub fn needs_working_add(case: &Case) -> bool {
    case.steps.iter().any(|s| {
        let add_or_check = matches!(s.cni.as_deref(), Some("ADD" | "CHECK"));
        (add_or_check && s.expect.exit != ExitExpect::Failure) || s.action.as_deref() == Some("parallel")
    })
}

/// Whether a step's output shows the plugin reached a link type the kernel lacks (the netlink
/// answer Go's plugins print): the case judged the kernel, not the plugin.
pub fn hit_kernel_gap(output: &str) -> bool {
    output.contains("operation not supported") || output.contains("Unknown device type")
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

/// `Some(reason)` when a case that can run here judges an extension the target does not
/// declare: recorded as `unsupported` (like a verb a plugin's version does not know, §5.13),
/// never as a failure.
pub fn unsupported(driver: &dyn TargetDriver, case: &Case) -> Option<String> {
    (case.requires.contains(&Require::DynamicNetworks) && !driver.offers().dynamic_networks).then(|| {
        "target does not declare networks that follow the pod (`dynamic_networks: true`, a multus-rs extension)"
            .to_string()
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn case(steps: &str) -> Case {
        let text = format!("cases:\n  - {{id: c, title: t, strength: MUST, assertions: [31], steps: {steps}}}\n");
        crate::model::parse_case_file(&text, Path::new("x.yaml"), "protocol").unwrap().remove(0)
    }

    #[test]
    fn only_cases_whose_add_or_check_must_succeed_need_a_working_add() {
        assert!(needs_working_add(&case("[{cni: ADD}, {cni: DEL}]")));
        assert!(needs_working_add(&case("[{cni: CHECK, expect: {exit: any}}]")));
        assert!(needs_working_add(&case("[{action: parallel, with: {count: 2, command: ADD}}]")));
        assert!(!needs_working_add(&case("[{cni: ADD, expect: {exit: failure}}]")));
        assert!(!needs_working_add(&case("[{cni: VERSION}, {cni: DEL}]")));
    }

    #[test]
    fn only_a_target_without_dynamic_networks_reports_their_cases_unsupported() {
        use crate::driver::unavailable::Unavailable;
        let mut c = case("[{cni: ADD}]");
        let plain = Unavailable { why: "x".into() };
        assert_eq!(unsupported(&plain, &c), None, "a case that does not need them runs");
        c.requires.push(Require::DynamicNetworks);
        assert!(unsupported(&plain, &c).is_some_and(|why| why.contains("dynamic_networks")));
    }

    #[test]
    fn kernel_gaps_are_recognised_in_plugin_output() {
        assert!(hit_kernel_gap(r#"{"code":999,"msg":"failed to create ipvlan: operation not supported"}"#));
        assert!(!hit_kernel_gap(r#"{"code":7,"msg":"invalid CNI_IFNAME"}"#));
    }

    #[test]
    fn a_missing_daemon_program_makes_the_target_unavailable() {
        let mut t = crate::target::Target::from_spec("plugin:/bin/sh,fake-cni.yaml").unwrap();
        assert_eq!(availability(&t), None);
        t.host_daemons = vec![crate::daemons::HostDaemon {
            argv: vec!["no-such-dhcp-server-26c".into()],
            ready_path: None,
            package: Some("no-such-package".into()),
        }];
        let why = availability(&t).unwrap();
        let expected = if sys::is_root() { "Debian package no-such-package" } else { "needs root" };
        assert!(why.contains(expected), "{why}");
    }
}
