//! The `multus-dynamic` group (networks that follow the pod, multus-rs's `dynamicNetworks`):
//! the cases are extension cases (never MUST), a plain plugin skips them, a thick target that
//! does not declare `dynamic_networks` (the Go template) reports them `unsupported` without
//! running a step, multus-rs passes them, and a daemon that claims the extension but does not
//! act (its config overlaid with `"dynamicNetworks": false`) fails them: the checks see it.

mod support;

use multus_conformance::model::{self, Applies, Require, Strength};
use multus_conformance::thick_spec::ThickSpec;
use multus_conformance::{Outcome, Runner, Target, filter_cases};
use serde_json::json;

const GROUP: &str = "multus-dynamic";

fn cases(ids: &[&str]) -> Vec<model::Case> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    filter_cases(model::load_dir(&model::default_scenario_dir()).unwrap(), &[GROUP.into()], &ids)
}

/// A thick target file shipped in `targets/`.
fn shipped(rel: &str) -> Target {
    Target::from_spec(&format!("thick:{}/targets/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn dynamic_cases_judge_an_extension_and_say_what_they_need() {
    let all = cases(&[]);
    assert!(all.len() >= 6, "only {} cases", all.len());
    for c in &all {
        assert_ne!(c.strength, Strength::Must, "{}: an extension is not a spec MUST", c.id);
        assert!(c.applies.contains(&Applies::Meta), "{} is not a meta case", c.id);
        for r in [Require::DynamicNetworks, Require::Netns, Require::DelegateRecords] {
            assert!(c.requires.contains(&r), "{} does not require {r:?}", c.id);
        }
        assert!(c.steps.iter().any(|s| s.action.as_deref() == Some("update-pod")), "{} changes no pod", c.id);
    }
    assert!(ThickSpec::multus_rs().dynamic_networks, "multus-rs declares the extension");
    for rel in ["go-multus-thick.yaml", "multus-rs-in-cluster.yaml"] {
        assert!(!shipped(rel).thick.unwrap().dynamic_networks, "{rel} declares no dynamic networks");
    }
}

#[test]
fn a_plain_plugin_skips_the_dynamic_cases() {
    let fake = support::fake_cni();
    let spec = format!("plugin:{},{}/targets/fake-cni.yaml", fake.display(), env!("CARGO_MANIFEST_DIR"));
    let mut runner = Runner::new(Target::from_spec(&spec).unwrap()).unwrap();
    for case in runner.run(&cases(&[])).cases {
        match &case.outcome {
            Outcome::Skipped { reason } => assert!(reason.contains("meta"), "{}: {reason}", case.id),
            other => panic!("{} should be skipped against a plain plugin, got {other:?}", case.id),
        }
    }
}

/// multus-rs's thick target with `edit` applied to its spec.
fn thick(edit: impl FnOnce(&mut ThickSpec)) -> Runner {
    let mut target = Target::from_spec("thick").unwrap();
    edit(target.thick.as_mut().unwrap());
    Runner::new(target).unwrap_or_else(|e| panic!("thick target did not start: {e}"))
}

fn need_binaries() {
    assert!(multus_conformance::sys::is_root(), "needs root: run as root with --include-ignored");
    let bin = multus_conformance::target::cargo_bin_dir();
    for b in ["multus-daemon", "multus-shim", "kube-mock", "fake-cni"] {
        assert!(bin.join(b).is_file(), "{} missing: build the multus-rs binaries first", bin.join(b).display());
    }
}

#[test]
#[ignore = "needs root (network namespaces) and the multus-rs binaries (cargo build -p multus-daemon -p multus-shim -p fake-cni -p kube-mock)"]
fn multus_rs_passes_the_dynamic_cases_and_a_target_without_them_reports_unsupported() {
    need_binaries();
    let all = cases(&[]);
    let report = thick(|_| {}).run(&all);
    for c in &report.cases {
        assert_eq!(c.outcome, Outcome::Pass, "{}: {:?}", c.id, c.failure);
    }
    let report = thick(|s| s.dynamic_networks = false).run(&all);
    for c in &report.cases {
        match &c.outcome {
            Outcome::Unsupported { reason } => assert!(reason.contains("dynamic_networks"), "{}: {reason}", c.id),
            other => panic!("{}: expected unsupported, got {other:?}", c.id),
        }
        assert!(c.steps.is_empty(), "{}: an unsupported case runs no step", c.id);
    }
}

#[test]
#[ignore = "needs root (network namespaces) and the multus-rs binaries (cargo build -p multus-daemon -p multus-shim -p fake-cni -p kube-mock)"]
fn a_daemon_that_claims_the_extension_but_does_not_follow_fails_the_cases() {
    need_binaries();
    let ids = ["dynamic-network-added", "dynamic-network-removed"];
    let report = thick(|s| s.daemon_config = json!({"dynamicNetworks": false})).run(&cases(&ids));
    assert_eq!(report.cases.len(), 2);
    for c in &report.cases {
        assert!(matches!(c.outcome, Outcome::Fail { .. }), "{}: {:?}", c.id, c.outcome);
        let f = c.failure.as_ref().unwrap();
        assert_eq!(f.label, "check delegate-calls", "{}: the first polled check fails: {f:?}", c.id);
        assert!(f.observed.contains("expected 1 matching call(s), saw 0"), "{}: {}", c.id, f.observed);
    }
}
