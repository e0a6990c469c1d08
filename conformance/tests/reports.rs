//! Report and diff renderings (snapshots).

use multus_conformance::diff;
use multus_conformance::model::Strength;
use multus_conformance::report::{CaseResult, Outcome, Report, StepRecord, TargetInfo};
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
    let (_, b) = reports();
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
