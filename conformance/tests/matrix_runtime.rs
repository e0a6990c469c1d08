//! The harness as a runtime (conflist targets, §5.57–60), the built-in targets, the embedded
//! scenarios, the matrix renderings, and — as root — the matrix against real plugins, the
//! scratch host netns, and the del-netns-empty diagnosis.

mod support;

use multus_conformance::matrix::{self, Implementation, Matrix};
use multus_conformance::report::{CaseResult, Outcome, Report, TargetInfo};
use multus_conformance::target::{self, Target};
use multus_conformance::{Runner, embedded, filter_cases, model};
use std::path::Path;

fn cases(groups: &[&str], ids: &[&str]) -> Vec<model::Case> {
    let all = model::load_dir(&model::default_scenario_dir()).unwrap();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let ids: Vec<String> = ids.iter().map(|g| g.to_string()).collect();
    filter_cases(all, &groups, &ids)
}

fn fails(report: &Report) -> Vec<String> {
    report.cases.iter().filter(|c| c.outcome.is_fail()).map(|c| format!("{}: {}", c.id, c.outcome.reason())).collect()
}

#[test]
fn the_harness_runtime_passes_the_chaining_and_runtime_cases() {
    support::fake_cni();
    let cases = cases(&["chaining", "runtime"], &[]);
    let mut runner = Runner::new(Target::from_spec("runtime").unwrap()).unwrap();
    let report = runner.run(&cases);
    assert!(fails(&report).is_empty(), "{:#?}", fails(&report));
    let passed = report.cases.iter().filter(|c| c.outcome == Outcome::Pass).count();
    assert!(passed >= 25, "only {passed} runtime-side cases passed");
    // The plain-plugin chaining cases do not apply to a runtime, with that reason.
    let passthrough = report.cases.iter().find(|c| c.id == "chained-passthrough").unwrap();
    assert!(matches!(&passthrough.outcome, Outcome::Skipped { reason } if reason.contains("chained")));
}

/// The runtime checks judge: cases expecting what libcni does NOT do fail.
#[test]
fn runtime_checks_fail_on_wrong_expectations() {
    support::fake_cni();
    let yaml = r#"
cases:
  - id: wrong-order
    title: claims ADD runs in reverse
    strength: MUST
    assertions: [57]
    applies: [network]
    setup:
      network:
        config: {cniVersion: "1.0.0", plugins: [{type: fake-cni, x-plugin: a, fake: {recordDir: "{{records}}"}}, {type: fake-cni, x-plugin: b, fake: {recordDir: "{{records}}"}}]}
    steps:
      - cni: ADD
      - check: delegate-calls
        with: {command: ADD, order: [b, a]}
  - id: wrong-threading
    title: claims the second plugin gets no prevResult
    strength: MUST
    assertions: [57]
    applies: [network]
    setup:
      network:
        config: {cniVersion: "1.0.0", plugins: [{type: fake-cni, x-plugin: a, fake: {recordDir: "{{records}}"}}, {type: fake-cni, x-plugin: b, fake: {recordDir: "{{records}}"}}]}
    steps:
      - cni: ADD
      - check: delegate-calls
        with: {command: ADD, match: {/stdin/x-plugin: b}, expect: {/stdin/prevResult: $absent}}
  - id: wrong-cache
    title: claims DEL keeps the cache
    strength: MUST
    assertions: [59]
    applies: [network]
    setup:
      network:
        config: {cniVersion: "1.0.0", plugins: [{type: fake-cni, fake: {recordDir: "{{records}}"}}]}
    steps:
      - cni: ADD
      - cni: DEL
      - check: result-cache
        with: {exists: true}
"#;
    let cases = model::parse_case_file(yaml, Path::new("wrong.yaml"), "runtime").unwrap();
    let mut runner = Runner::new(Target::from_spec("runtime").unwrap()).unwrap();
    for c in runner.run(&cases).cases {
        assert!(c.outcome.is_fail(), "{} should fail: {:?}", c.id, c.outcome);
        assert!(c.failure.as_ref().is_some_and(|f| f.label.starts_with("check")), "{:?}", c.failure);
    }
}

#[test]
fn embedded_scenarios_and_targets_match_the_source_tree() {
    let disk: Vec<String> =
        model::load_dir(&model::default_scenario_dir()).unwrap().into_iter().map(|c| c.id).collect();
    let built: Vec<String> = embedded::load_scenarios().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(disk, built, "rebuild: the embedded scenarios are stale");
    assert!(disk.len() >= 150, "{} cases", disk.len());
    for name in ["fake-cni.yaml", "targets/go-multus-thick.yaml", "bridge.yaml"] {
        assert!(embedded::target_file(name).is_some(), "{name} not embedded");
    }
    // A shipped target file name works from any directory (no such file here).
    let t = Target::from_spec("plugin:/nonexistent/fake-cni,fake-cni.yaml").unwrap();
    assert_eq!(t.name.as_deref(), Some("fake-cni (good)"));
}

#[test]
fn every_reference_plugin_has_a_built_in_target() {
    for name in matrix::REFERENCE_PLUGINS {
        let t = target::builtin(name).unwrap_or_else(|| panic!("no built-in target for {name}"));
        assert!(t.config.is_some() && !t.tags.is_empty(), "{name}");
    }
    let tuning = Target::from_spec("plugin:/usr/lib/cni/tuning").unwrap();
    assert_eq!(tuning.prev_plugins.len(), 1, "chained plugins run after ptp");
    let hd = Target::from_spec("plugin:/usr/lib/cni/host-device").unwrap();
    assert!(!hd.attachment_setup.is_empty());
    let impls = matrix::default_implementations(Path::new("/usr/lib/cni"), true);
    assert!(impls.len() >= 20, "{} implementations", impls.len());
    assert!(impls.iter().all(|i: &Implementation| i.target.is_ok()), "every column builds a target");
}

fn result(id: &str, outcome: Outcome) -> CaseResult {
    let case = model::parse_case_file(
        &format!("cases:\n  - {{id: {id}, title: t {id}, strength: MUST, assertions: [31], steps: [{{cni: DEL}}]}}\n"),
        Path::new("x.yaml"),
        "del-idempotency",
    )
    .unwrap()
    .remove(0);
    CaseResult::new(&case, outcome)
}

#[test]
fn matrix_renders_markdown_html_and_json() {
    let case_file = "cases:\n  - {id: c1, title: t c1, strength: MUST, assertions: [31], steps: [{cni: DEL}]}\n  - {id: c2, title: t c2, strength: SHOULD, assertions: [33], steps: [{cni: DEL}]}\n";
    let cases = model::parse_case_file(case_file, Path::new("x.yaml"), "del-idempotency").unwrap();
    let a = Report {
        target: TargetInfo { spec: "plugin:/a".into(), name: "a".into(), ..Default::default() },
        cases: vec![result("c1", Outcome::Pass), result("c2", Outcome::Fail { reason: "veth | left".into() })],
    };
    let mut b = Report {
        target: TargetInfo { spec: "plugin:/b".into(), name: "b".into(), ..Default::default() },
        cases: vec![result("c1", Outcome::Skipped { reason: "needs root".into() }), result("c2", Outcome::Pass)],
    };
    b.target.notes.insert("c2".into(), "never shown: c2 passed".into());
    let mut a_noted = a.clone();
    a_noted.target.notes.insert("c2".into(), "inherent".into());
    let m = Matrix::build(vec![("a".into(), a_noted), ("b".into(), b)], &cases);
    assert_eq!(m.columns[0].fail, 1);
    assert_eq!(m.columns[1].judged(), 1);
    let md = m.markdown();
    assert!(md.contains("| del-idempotency | c1 | MUST | pass | · |"), "{md}");
    assert!(md.contains("| del-idempotency | c2 | SHOULD | **FAIL** | pass |"), "{md}");
    assert!(md.contains("veth \\| left") && md.contains("why: inherent"), "{md}");
    assert!(md.contains("**b**: 1 × needs root"), "{md}");
    let html = m.html();
    assert!(html.contains("<td class=\"FAIL\" title=\"veth | left\nwhy: inherent\">FAIL</td>"), "{html}");
    let back: Matrix = serde_json::from_str(&m.to_json()).unwrap();
    assert_eq!(back, m);
}

/// Links in the real host netns (names).
fn host_links() -> Vec<String> {
    let out = std::process::Command::new("ip").args(["-j", "link", "show"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array().into_iter().flatten().filter_map(|l| l["ifname"].as_str().map(String::from)).collect()
}

fn need_root_and_plugins() {
    assert!(multus_conformance::sys::is_root(), "needs root: run as root with --include-ignored");
    assert!(
        Path::new("/usr/lib/cni/bridge").is_file(),
        "needs /usr/lib/cni: apt-get install containernetworking-plugins"
    );
}

/// The plugin under test runs inside the case's scratch host netns: a bridge ADD creates
/// nothing in the real host netns.
#[test]
#[ignore = "needs root and /usr/lib/cni"]
fn plugins_run_inside_the_scratch_host_netns() {
    need_root_and_plugins();
    let before = host_links();
    let mut runner = Runner::new(Target::from_spec("plugin:/usr/lib/cni/bridge").unwrap()).unwrap();
    let report = runner.run(&cases(&[], &["add-creates-interface", "del-netns-empty-host-veth"]));
    assert_eq!(report.cases[0].outcome, Outcome::Pass, "{:?}", report.cases[0]);
    let after = host_links();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(new.is_empty(), "links leaked into the real host netns: {new:?}");
}

/// The matrix over a few real plugins: a plain one, a chained one (after ptp), one this
/// kernel cannot run, fake-cni and the runtime.
#[test]
#[ignore = "needs root and /usr/lib/cni"]
fn matrix_against_real_plugins() {
    need_root_and_plugins();
    support::fake_cni();
    let keep = ["bridge", "tuning", "dummy", "fake-cni", "runtime"];
    let impls: Vec<Implementation> = matrix::default_implementations(Path::new("/usr/lib/cni"), false)
        .into_iter()
        .filter(|i| keep.contains(&i.name.as_str()))
        .collect();
    let cases = cases(&["protocol", "chaining", "del-idempotency"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let m = matrix::run(impls, &cases, dir.path(), false);
    let col = |name: &str| m.columns.iter().position(|c| c.name == name).unwrap();
    let cell = |case: &str, name: &str| m.rows.iter().find(|r| r.id == case).unwrap().cells[col(name)].clone();
    assert_eq!(cell("unknown-command", "bridge").outcome, "pass");
    assert_eq!(cell("chained-passthrough", "tuning").outcome, "pass", "{:?}", cell("chained-passthrough", "tuning"));
    assert_eq!(cell("chained-keeps-prevresult", "tuning").outcome, "pass");
    assert_eq!(cell("chained-delegates-del-reverse-order", "runtime").outcome, "pass");
    assert_eq!(cell("chained-passthrough", "bridge").outcome, "skip");
    let dummy = &m.columns[col("dummy")];
    assert_eq!(dummy.skip, cases.len(), "dummy cannot run here");
    let why = cell("unknown-command", "dummy").reason;
    assert!(why.contains("not installed") || why.contains("lacks link type"), "{why}");
    assert_eq!(
        m.columns[col("fake-cni")].fail,
        0,
        "{:#?}",
        m.rows.iter().map(|r| &r.cells[col("fake-cni")]).filter(|c| c.outcome == "FAIL").collect::<Vec<_>>()
    );
    assert!(dir.path().join("bridge/report.json").is_file() && dir.path().join("runtime/junit.xml").is_file());
}

/// cni.md §5.33 against multus-rs: the host veth stays after a DEL with an empty CNI_NETNS
/// because the bridge plugin itself keeps it — the bare plugin ends the same way — while IPAM
/// is released, and deleting the netns (the runtime's part) removes the veth.
#[test]
#[ignore = "needs root, /usr/lib/cni and the multus-rs binaries (cargo build -p multus-daemon -p multus-shim -p fake-cni -p kube-mock)"]
fn del_netns_empty_ends_the_same_through_multus_and_bare_bridge() {
    need_root_and_plugins();
    let bin = target::cargo_bin_dir();
    for b in ["multus-daemon", "multus-shim", "kube-mock", "fake-cni"] {
        assert!(bin.join(b).is_file(), "{} missing: build the multus-rs binaries first", bin.join(b).display());
    }
    let ids = ["del-netns-empty", "del-netns-empty-host-veth", "del-netns-empty-then-netns-deleted"];
    let cases: Vec<_> =
        cases(&["del-idempotency"], &ids).into_iter().filter(|c| ids.contains(&c.id.as_str())).collect();
    assert_eq!(cases.len(), 3);
    for spec in ["plugin:/usr/lib/cni/bridge", "thick"] {
        let mut runner = Runner::new(Target::from_spec(spec).unwrap()).unwrap();
        let report = runner.run(&cases);
        let by_id = |id: &str| report.cases.iter().find(|c| c.id == id).unwrap().clone();
        assert_eq!(by_id("del-netns-empty").outcome, Outcome::Pass, "{spec}: IPAM released");
        assert_eq!(
            by_id("del-netns-empty-then-netns-deleted").outcome,
            Outcome::Pass,
            "{spec}: veth gone with the netns"
        );
        let veth = by_id("del-netns-empty-host-veth");
        let f = veth.failure.as_ref().unwrap_or_else(|| panic!("{spec}: expected the host veth to stay: {veth:?}"));
        assert_eq!(f.label, "check no-host-veth", "{spec}");
        assert!(f.observed.contains("host-side veth(s) left behind"), "{spec}: {}", f.observed);
        assert!(report.target.notes.contains_key("del-netns-empty-host-veth"), "{spec}: explained in the target notes");
    }
}
