//! Every case file parses, names known checks/actions/groups, and there are enough cases.

use multus_conformance::model::{self, GROUPS};

#[test]
fn every_scenario_parses_and_references_known_checks() {
    let cases = model::load_dir(&model::default_scenario_dir()).expect("scenarios load");
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    for g in GROUPS {
        assert!(cases.iter().any(|c| c.group == *g), "group {g} has no case");
    }
    for c in &cases {
        assert!(!c.assertions.is_empty(), "{} has no assertion tag", c.id);
    }
}

#[test]
fn loader_rejects_unknown_checks_and_dangling_results() {
    let p = std::path::Path::new("x.yaml");
    let bad_check = "cases:\n  - {id: a, title: t, strength: MUST, assertions: [1], steps: [{check: nope}]}\n";
    assert!(model::parse_case_file(bad_check, p, "protocol").is_err());
    let dangling =
        "cases:\n  - {id: a, title: t, strength: MUST, assertions: [1], steps: [{cni: DEL, prev_result: r}]}\n";
    assert!(model::parse_case_file(dangling, p, "protocol").is_err());
    let unknown_key = "cases:\n  - {id: a, title: t, strength: MUST, assertions: [1], steps: [{cni: DEL, bogus: 1}]}\n";
    assert!(model::parse_case_file(unknown_key, p, "protocol").is_err());
    let bad_group = "cases:\n  - {id: a, title: t, strength: MUST, assertions: [1], steps: [{cni: DEL}]}\n";
    assert!(model::parse_case_file(bad_group, p, "nope").is_err());
    let ok = "cases:\n  - {id: a, title: t, strength: MUST, assertions: [1], steps: [{cni: ADD, save_as: r}, {cni: DEL, prev_result: r}]}\n";
    assert_eq!(model::parse_case_file(ok, p, "protocol").unwrap().len(), 1);
}
