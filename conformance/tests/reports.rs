//! Report and diff renderings (snapshots).

use multus_conformance::diff;
use multus_conformance::model::Strength;
use multus_conformance::report::{CaseResult, FailureDetail, Outcome, Report, StepRecord, TargetInfo};
use serde_json::json;

fn case(id: &str, group: &str, strength: Strength, outcome: Outcome, stdout: serde_json::Value) -> CaseResult {
    CaseResult {
        group: group.into(),
        id: id.into(),
        title: format!("title of {id}"),
        assertions: vec!["§5.7".into()],
        strength,
        outcome,
        explain: None,
        steps: vec![StepRecord {
            label: "ADD".into(),
            exit: Some(if stdout.get("code").is_some() { 1 } else { 0 }),
            normalized: stdout,
            ..Default::default()
        }],
        duration_ms: 5,
        failure: None,
    }
}

fn reports() -> (Report, Report) {
    let t = |spec: &str| TargetInfo {
        spec: spec.into(),
        kind: "plugin".into(),
        name: spec.into(),
        supported_versions: vec!["1.0.0".into()],
        default_version: "1.0.0".into(),
        ..Default::default()
    };
    let a = Report {
        target: t("plugin:a"),
        cases: vec![
            case("unknown-command", "protocol", Strength::Ref, Outcome::Pass, json!({"code": 4})),
            case(
                "add-basic",
                "add",
                Strength::Must,
                Outcome::Pass,
                json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}),
            ),
            case(
                "gc-null-list",
                "status-gc",
                Strength::Must,
                Outcome::Skipped { reason: "needs 1.1.0".into() },
                json!(null),
            ),
            case("check-link-removed", "check", Strength::Should, Outcome::Pass, json!(null)),
            case(
                "versions-gc-1.0.0",
                "versions",
                Strength::Ref,
                Outcome::Unsupported { reason: "verb GC unsupported".into() },
                json!({"code": 3}),
            ),
        ],
    };
    let b = Report {
        target: t("plugin:b"),
        cases: vec![
            case("unknown-command", "protocol", Strength::Ref, Outcome::Pass, json!({"code": 4})),
            case(
                "add-basic",
                "add",
                Strength::Must,
                Outcome::Pass,
                json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24"}]}),
            ),
            case(
                "gc-null-list",
                "status-gc",
                Strength::Must,
                Outcome::Fail { reason: "expected success, got exit Some(1)".into() },
                json!({"code": 7}),
            ),
            case(
                "check-link-removed",
                "check",
                Strength::Should,
                Outcome::Fail { reason: "expected a failure".into() },
                json!(null),
            ),
            case("versions-gc-1.0.0", "versions", Strength::Ref, Outcome::Pass, json!({"code": 1})),
        ],
    };
    (a, b)
}

#[test]
fn summary_and_junit() {
    let (_, mut b) = reports();
    b.cases[2].failure = Some(FailureDetail {
        step: 1,
        label: "GC main".into(),
        expected: "exit 0, nothing on stdout on success".into(),
        observed: "expected success, got exit Some(1)".into(),
    });
    insta::assert_snapshot!("summary", b.summary());
    insta::assert_snapshot!("junit", b.junit());
}

#[test]
fn diff_markdown_separates_must_should_and_divergences() {
    let (a, b) = reports();
    let d = diff::diff(&a, &b);
    assert_eq!(d.must_failures.len(), 1);
    assert_eq!(d.gaps.len(), 1);
    assert_eq!(d.divergences.len(), 2);
    insta::assert_snapshot!("diff_md", d.markdown());
    assert!(d.html().contains("<table>"));
}

/// The JUnit XML is well-formed and shaped as CI systems read it: one `<testsuite>` per group
/// with consistent counts, skipped and unsupported cases as `<skipped>`, failures with the
/// failing step (`type`) and the expectation in the text.
#[test]
fn junit_xml_shape() {
    let (_, mut b) = reports();
    b.cases[2].failure = Some(FailureDetail {
        step: 1,
        label: "GC main".into(),
        expected: "exit 0".into(),
        observed: "exit 1 <code 7>".into(),
    });
    b.cases.push(case(
        "status-healthy",
        "status-gc",
        Strength::Must,
        Outcome::Skipped { reason: "needs CNI 1.1.0 & more".into() },
        json!(null),
    ));
    let text = b.junit();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert!(suites.iter().all(|s| s.tag_name().name() == "testsuite"));
    let names: Vec<&str> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(names, ["protocol", "versions", "add", "check", "status-gc"], "one suite per group, in group order");
    let mut total = 0;
    for s in &suites {
        let cases: Vec<_> = s.children().filter(|n| n.has_tag_name("testcase")).collect();
        let count = |tag: &str| cases.iter().filter(|c| c.children().any(|x| x.has_tag_name(tag))).count();
        assert_eq!(s.attribute("tests"), Some(cases.len().to_string().as_str()));
        assert_eq!(s.attribute("failures"), Some(count("failure").to_string().as_str()));
        assert_eq!(s.attribute("skipped"), Some(count("skipped").to_string().as_str()));
        total += cases.len();
    }
    assert_eq!(root.attribute("tests"), Some(total.to_string().as_str()));
    let gc = doc.descendants().find(|n| n.attribute("name").is_some_and(|a| a.starts_with("gc-null-list"))).unwrap();
    let failure = gc.children().find(|n| n.has_tag_name("failure")).unwrap();
    assert_eq!(failure.attribute("type"), Some("step 1: GC main"));
    assert!(failure.attribute("message").is_some_and(|m| m.contains("expected success")));
    let body = failure.text().unwrap_or_default();
    assert!(body.contains("expected: exit 0") && body.contains("observed: exit 1 <code 7>"), "{body}");
    let skipped =
        doc.descendants().find(|n| n.attribute("name").is_some_and(|a| a.starts_with("status-healthy"))).unwrap();
    let s = skipped.children().find(|n| n.has_tag_name("skipped")).unwrap();
    assert_eq!(s.attribute("message"), Some("needs CNI 1.1.0 & more"));
    let unsup = doc.descendants().find(|n| n.attribute("name").is_some_and(|a| a.starts_with("versions-gc"))).unwrap();
    // In report b the GC case passed; in a it was unsupported: check a's rendering too.
    assert!(unsup.children().all(|n| !n.has_tag_name("failure")));
    let (a, _) = reports();
    let doc_a =
        roxmltree::Document::parse(&a.junit()).unwrap().descendants().filter(|n| n.has_tag_name("skipped")).count();
    assert_eq!(doc_a, 2, "a skipped and an unsupported case are both <skipped>");
}
