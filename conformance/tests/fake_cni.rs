//! The harness judges: cases fail against a deliberately broken fake-cni and pass against a
//! good one; the protocol group runs against Debian's bridge when root.

mod support;

use multus_conformance::{Outcome, Runner, Target, filter_cases, model};
use std::path::PathBuf;

fn target_file(name: &str) -> String {
    format!("{}/targets/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(spec: &str, ids: &[&str]) -> Vec<(String, Outcome)> {
    let cases = model::load_dir(&model::default_scenario_dir()).unwrap();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let cases: Vec<_> = filter_cases(cases, &[], &[]).into_iter().filter(|c| ids.contains(&c.id)).collect();
    assert_eq!(cases.len(), ids.len(), "every named case exists");
    let mut r = Runner::new(Target::from_spec(spec).unwrap()).unwrap();
    r.run(&cases).cases.into_iter().map(|c| (c.id, c.outcome)).collect()
}

const CASES: &[&str] = &[
    "versions-add-1.0.0",
    "add-basic",
    "stdin-not-json",
    "config-bad-name",
    "unknown-command",
    "del-never-added",
    "del-twice",
    "add-missing-netns",
    "versions-add-del-1.0.0",
    "check-twice",
    "add-two-attachments",
    "del-after-failed-add",
    "config-name-space",
    "config-name-empty",
];

#[test]
fn broken_fake_cni_fails_the_cases_it_breaks() {
    let fake = support::fake_cni();
    for (id, outcome) in run(&format!("plugin:{},{}", fake.display(), target_file("fake-cni-broken.yaml")), CASES) {
        assert!(outcome.is_fail(), "{id} should fail against the broken fake, got {outcome:?}");
    }
    let wrong = run(
        &format!("plugin:{},{}", fake.display(), target_file("fake-cni-wrong-codes.yaml")),
        &["stdin-not-json", "add-missing-netns", "config-bad-name", "add-basic"],
    );
    for (id, outcome) in wrong {
        assert!(outcome.is_fail(), "{id} should fail when the error code is wrong, got {outcome:?}");
    }
}

#[test]
fn good_fake_cni_passes_the_same_cases() {
    let fake = support::fake_cni();
    for (id, outcome) in run(&format!("plugin:{},{}", fake.display(), target_file("fake-cni.yaml")), CASES) {
        assert_eq!(outcome, Outcome::Pass, "{id}");
    }
}

#[test]
#[ignore = "needs root and /usr/lib/cni/bridge (containernetworking-plugins)"]
fn protocol_group_against_debian_bridge() {
    let bridge = PathBuf::from("/usr/lib/cni/bridge");
    assert!(multus_conformance::sys::is_root(), "needs root");
    assert!(bridge.exists(), "needs /usr/lib/cni/bridge: apt-get install containernetworking-plugins");
    let cases = filter_cases(model::load_dir(&model::default_scenario_dir()).unwrap(), &["protocol".into()], &[]);
    let mut r = Runner::new(Target::from_spec("plugin:/usr/lib/cni/bridge").unwrap()).unwrap();
    let report = r.run(&cases);
    let fails: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.outcome.is_fail())
        .map(|c| format!("{}: {}", c.id, c.outcome.reason()))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    assert!(report.cases.len() >= 20);
}
