//! Results and their renderings: terminal summary, JUnit XML, JSON.

use crate::model::{GROUPS, Strength};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail {
        reason: String,
    },
    Skipped {
        reason: String,
    },
    /// The target does not implement the verb the case needs, in the way cni.md allows
    /// (e.g. a pre-1.1 plugin answering GC with code 3).
    Unsupported {
        reason: String,
    },
}

impl Outcome {
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail { .. } => "FAIL",
            Outcome::Skipped { .. } => "skip",
            Outcome::Unsupported { .. } => "unsupported",
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail { reason } | Outcome::Skipped { reason } | Outcome::Unsupported { reason } => reason,
        }
    }
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail { .. })
    }
}

/// One step as observed, normalised for comparison (raw text kept for humans).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// `ADD`, `check interface-matches-result`, `action ip`, …
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Normalised stdout (JSON) used by the diff.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub normalized: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    #[serde(default)]
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub group: String,
    pub id: String,
    pub title: String,
    pub assertions: Vec<String>,
    pub strength: Strength,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub duration_ms: u64,
    /// For a failure: which step broke which expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureDetail>,
}

/// The first step of a case that broke its expectation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureDetail {
    /// 1-based number of the step in the case file.
    pub step: usize,
    /// `ADD main`, `check no-host-veth`, …
    pub label: String,
    /// What the step expected, in words.
    pub expected: String,
    /// What was observed instead.
    pub observed: String,
}

impl CaseResult {
    /// A result that ran no step (skipped, or the target never started).
    pub fn new(case: &crate::model::Case, outcome: Outcome) -> CaseResult {
        CaseResult {
            group: case.group.clone(),
            id: case.id.clone(),
            title: case.title.clone(),
            assertions: crate::model::assertion_labels(case),
            strength: case.strength,
            outcome,
            explain: case.explain.clone(),
            steps: Vec::new(),
            duration_ms: 0,
            failure: None,
        }
    }
}

/// What was tested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// The spec as given (`plugin:/usr/lib/cni/bridge`, `thick`, a file).
    pub spec: String,
    pub kind: String,
    pub name: String,
    /// VERSION's `supportedVersions`, when it answered.
    #[serde(default)]
    pub supported_versions: Vec<String>,
    /// Config version used where a case does not choose.
    #[serde(default)]
    pub default_version: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Target-specific explanations, by case id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub notes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub target: TargetInfo,
    pub cases: Vec<CaseResult>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub unsupported: usize,
    pub must_fail: usize,
}

impl Report {
    pub fn counts<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Counts {
        let mut c = Counts::default();
        for r in cases {
            match r.outcome {
                Outcome::Pass => c.pass += 1,
                Outcome::Fail { .. } => {
                    c.fail += 1;
                    if r.strength == Strength::Must {
                        c.must_fail += 1;
                    }
                }
                Outcome::Skipped { .. } => c.skip += 1,
                Outcome::Unsupported { .. } => c.unsupported += 1,
            }
        }
        c
    }

    pub fn by_group(&self) -> Vec<(String, Vec<&CaseResult>)> {
        let mut m: BTreeMap<(usize, String), Vec<&CaseResult>> = BTreeMap::new();
        for c in &self.cases {
            let pos = GROUPS.iter().position(|g| *g == c.group).unwrap_or(usize::MAX);
            m.entry((pos, c.group.clone())).or_default().push(c);
        }
        m.into_iter().map(|((_, g), v)| (g, v)).collect()
    }

    /// The terminal summary: one line per group, then every failure with its reason.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(s, "CNI conformance: {} ({}, {})", t.spec, t.kind, t.name);
        if !t.supported_versions.is_empty() {
            let _ = writeln!(
                s,
                "supportedVersions: {}; default config version {}",
                t.supported_versions.join(" "),
                t.default_version
            );
        }
        let _ = writeln!(s, "{:<26} {:>5} {:>5} {:>5} {:>5}", "group", "pass", "fail", "skip", "unsup");
        for (g, cases) in self.by_group() {
            let c = Self::counts(cases.iter().copied());
            let _ = writeln!(s, "{:<26} {:>5} {:>5} {:>5} {:>5}", g, c.pass, c.fail, c.skip, c.unsupported);
        }
        let c = Self::counts(&self.cases);
        let _ = writeln!(s, "{:<26} {:>5} {:>5} {:>5} {:>5}", "total", c.pass, c.fail, c.skip, c.unsupported);
        let _ = writeln!(s, "MUST failures: {}", c.must_fail);
        let fails: Vec<_> =
            self.cases.iter().filter(|c| !matches!(c.outcome, Outcome::Pass | Outcome::Skipped { .. })).collect();
        if !fails.is_empty() {
            let _ = writeln!(s, "\nFailures and unsupported verbs:");
            for c in fails {
                let _ = writeln!(
                    s,
                    "- [{}] {}/{} ({} {}): {}",
                    c.outcome.word(),
                    c.group,
                    c.id,
                    c.strength.as_str(),
                    c.assertions.join(","),
                    c.outcome.reason()
                );
                if let Some(e) = t.notes.get(&c.id).or(c.explain.as_ref()) {
                    let _ = writeln!(s, "    why: {e}");
                }
            }
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// JUnit XML: one `testsuite` per group.
    pub fn junit(&self) -> String {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let c = Self::counts(&self.cases);
        let _ = writeln!(
            s,
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            xml(&format!("cni-conformance {}", self.target.spec)),
            self.cases.len(),
            c.fail,
            c.skip + c.unsupported
        );
        for (g, cases) in self.by_group() {
            let gc = Self::counts(cases.iter().copied());
            let time: u64 = cases.iter().map(|c| c.duration_ms).sum();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
                xml(&g),
                cases.len(),
                gc.fail,
                gc.skip + gc.unsupported,
                time as f64 / 1000.0
            );
            for c in cases {
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                    xml(&g),
                    xml(&format!("{} [{} {}]", c.id, c.strength.as_str(), c.assertions.join(","))),
                    c.duration_ms as f64 / 1000.0
                );
                match &c.outcome {
                    Outcome::Pass => {}
                    Outcome::Fail { reason } => {
                        let mut body = String::new();
                        let mut kind = "failure".to_string();
                        if let Some(f) = &c.failure {
                            kind = format!("step {}: {}", f.step, f.label);
                            let _ = writeln!(
                                body,
                                "step {}: {}\nexpected: {}\nobserved: {}\n",
                                f.step, f.label, f.expected, f.observed
                            );
                        }
                        let _ = writeln!(body, "steps:");
                        for st in &c.steps {
                            let _ = writeln!(
                                body,
                                "{} exit={:?}\nstdout: {}\nstderr: {}",
                                st.label, st.exit, st.stdout, st.stderr
                            );
                        }
                        let _ = write!(
                            s,
                            "\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    ",
                            xml(reason),
                            xml(&kind),
                            xml(&body)
                        );
                    }
                    Outcome::Skipped { reason } => {
                        let _ = write!(s, "\n      <skipped message=\"{}\"/>\n    ", xml(reason));
                    }
                    Outcome::Unsupported { reason } => {
                        let _ = write!(
                            s,
                            "\n      <skipped message=\"{}\"/>\n    ",
                            xml(&format!("unsupported: {reason}"))
                        );
                    }
                }
                let _ = writeln!(s, "</testcase>");
            }
            let _ = writeln!(s, "  </testsuite>");
        }
        s.push_str("</testsuites>\n");
        s
    }
}

pub fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {
                let _ = write!(o, "&#x{:x};", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}
