//! The `multus-devices` group: a plain plugin skips every case (they are meta cases that need
//! a thick target's fake kubelet), and the cases say what they need.

mod support;

use multus_conformance::{Outcome, Runner, Target, filter_cases, model};

#[test]
fn device_cases_are_meta_cases_that_need_the_fake_kubelet() {
    let cases = model::load_dir(&model::default_scenario_dir()).unwrap();
    let devices: Vec<_> = cases.iter().filter(|c| c.group == "multus-devices").collect();
    assert!(devices.len() >= 6, "only {} device cases", devices.len());
    for c in &devices {
        assert!(c.applies.contains(&model::Applies::Meta), "{} is not a meta case", c.id);
        assert!(c.requires.contains(&model::Require::Devices), "{} does not require devices", c.id);
        assert!(!c.setup.devices.is_empty() || c.setup.kubelet_fail.is_some(), "{} scripts no kubelet", c.id);
    }
}

#[test]
fn a_plain_plugin_skips_the_device_cases() {
    let fake = support::fake_cni();
    let spec = format!("plugin:{},{}/targets/fake-cni.yaml", fake.display(), env!("CARGO_MANIFEST_DIR"));
    let cases = filter_cases(model::load_dir(&model::default_scenario_dir()).unwrap(), &["multus-devices".into()], &[]);
    assert!(!cases.is_empty());
    let mut runner = Runner::new(Target::from_spec(&spec).unwrap()).unwrap();
    for case in runner.run(&cases).cases {
        match &case.outcome {
            Outcome::Skipped { reason } => assert!(reason.contains("meta"), "{}: {reason}", case.id),
            other => panic!("{} should be skipped against a plain plugin, got {other:?}", case.id),
        }
    }
}
