//! Side-by-side comparison of two reports: MUST failures, SHOULD/REF gaps, and divergences
//! (both sides ran the case but behaved differently after normalisation).

use crate::model::Strength;
use crate::report::{CaseResult, Outcome, Report, xml};
use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    pub group: String,
    pub id: String,
    pub strength: Strength,
    pub assertions: String,
    pub a: String,
    pub b: String,
    /// What differs (observed behaviour), empty when only outcomes differ.
    pub detail: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    pub a: String,
    pub b: String,
    pub must_failures: Vec<DiffRow>,
    pub gaps: Vec<DiffRow>,
    pub divergences: Vec<DiffRow>,
    pub same: usize,
    pub only_in_one: Vec<String>,
}

fn cell(c: &CaseResult) -> String {
    match &c.outcome {
        Outcome::Pass => "pass".into(),
        o => format!("{}: {}", o.word(), o.reason()),
    }
}

/// What an invocation did, reduced to behaviour: exit class, error code or normalised output.
fn behaviour(c: &CaseResult) -> Vec<String> {
    c.steps
        .iter()
        .map(|s| {
            let exit = match s.exit {
                Some(0) => "ok".to_string(),
                Some(_) => "fail".to_string(),
                None => "-".to_string(),
            };
            let out = match (&s.normalized, s.exit) {
                (Value::Object(m), Some(x)) if x != 0 => m.get("code").map(|c| format!("code {c}")).unwrap_or_default(),
                (Value::Null, _) => String::new(),
                (v, _) => v.to_string(),
            };
            format!("{}: {exit} {out}", s.label)
        })
        .collect()
}

pub fn diff(a: &Report, b: &Report) -> Diff {
    let mut d = Diff { a: a.target.spec.clone(), b: b.target.spec.clone(), ..Diff::default() };
    for ca in &a.cases {
        let Some(cb) = b.cases.iter().find(|c| c.id == ca.id) else {
            d.only_in_one.push(format!("{} (only in {})", ca.id, d.a));
            continue;
        };
        let row = |detail: String| DiffRow {
            group: ca.group.clone(),
            id: ca.id.clone(),
            strength: ca.strength,
            assertions: ca.assertions.join(","),
            a: cell(ca),
            b: cell(cb),
            detail,
        };
        let fail = ca.outcome.is_fail() || cb.outcome.is_fail();
        if fail && ca.strength == Strength::Must {
            d.must_failures.push(row(String::new()));
            continue;
        }
        if fail {
            d.gaps.push(row(String::new()));
            continue;
        }
        let ran = |c: &CaseResult| matches!(c.outcome, Outcome::Pass);
        if std::mem::discriminant(&ca.outcome) != std::mem::discriminant(&cb.outcome) {
            d.divergences.push(row("outcome differs".into()));
            continue;
        }
        if ran(ca) && ran(cb) {
            let (ba, bb) = (behaviour(ca), behaviour(cb));
            if ba != bb {
                let detail: Vec<String> = ba
                    .iter()
                    .zip(bb.iter())
                    .filter(|(x, y)| x != y)
                    .map(|(x, y)| format!("{x} ⇄ {y}"))
                    .chain((ba.len() != bb.len()).then(|| format!("{} vs {} steps", ba.len(), bb.len())))
                    .collect();
                d.divergences.push(row(detail.join("; ")));
                continue;
            }
        }
        d.same += 1;
    }
    for cb in &b.cases {
        if !a.cases.iter().any(|c| c.id == cb.id) {
            d.only_in_one.push(format!("{} (only in {})", cb.id, d.b));
        }
    }
    d
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Diff {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# CNI conformance diff\n\n- **A**: `{}`\n- **B**: `{}`\n", self.a, self.b);
        let _ = writeln!(
            s,
            "{} MUST failure(s), {} SHOULD/REF gap(s), {} divergence(s), {} case(s) identical.\n",
            self.must_failures.len(),
            self.gaps.len(),
            self.divergences.len(),
            self.same
        );
        for (title, rows, detail) in [
            ("MUST failures", &self.must_failures, false),
            ("SHOULD and REF gaps", &self.gaps, false),
            ("Divergences (both acceptable, behaviour differs)", &self.divergences, true),
        ] {
            let _ = writeln!(s, "## {title}\n");
            if rows.is_empty() {
                let _ = writeln!(s, "None.\n");
                continue;
            }
            if detail {
                let _ = writeln!(
                    s,
                    "| group | case | strength | assertions | A | B | what differs |\n|---|---|---|---|---|---|---|"
                );
            } else {
                let _ = writeln!(s, "| group | case | strength | assertions | A | B |\n|---|---|---|---|---|---|");
            }
            for r in rows {
                let _ = write!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.group,
                    r.id,
                    r.strength.as_str(),
                    r.assertions,
                    md_escape(&r.a),
                    md_escape(&r.b)
                );
                if detail {
                    let _ = write!(s, " {} |", md_escape(&r.detail));
                }
                s.push('\n');
            }
            s.push('\n');
        }
        if !self.only_in_one.is_empty() {
            let _ = writeln!(s, "## Cases run on one side only\n");
            for x in &self.only_in_one {
                let _ = writeln!(s, "- {x}");
            }
        }
        s
    }

    pub fn html(&self) -> String {
        let mut s = String::from(
            "<!doctype html><meta charset=\"utf-8\"><title>CNI conformance diff</title>\n<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}.fail{background:#fdd}.gap{background:#ffd}.div{background:#def}</style>\n",
        );
        let _ = writeln!(
            s,
            "<h1>CNI conformance diff</h1><p>A: <code>{}</code><br>B: <code>{}</code></p>",
            xml(&self.a),
            xml(&self.b)
        );
        for (title, rows, class) in [
            ("MUST failures", &self.must_failures, "fail"),
            ("SHOULD and REF gaps", &self.gaps, "gap"),
            ("Divergences", &self.divergences, "div"),
        ] {
            let _ = writeln!(s, "<h2>{title} ({})</h2>", rows.len());
            if rows.is_empty() {
                continue;
            }
            s.push_str("<table><tr><th>group</th><th>case</th><th>strength</th><th>assertions</th><th>A</th><th>B</th><th>what differs</th></tr>\n");
            for r in rows {
                let _ = writeln!(
                    s,
                    "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    xml(&r.group),
                    xml(&r.id),
                    r.strength.as_str(),
                    xml(&r.assertions),
                    xml(&r.a),
                    xml(&r.b),
                    xml(&r.detail)
                );
            }
            s.push_str("</table>\n");
        }
        let _ = writeln!(s, "<p>{} case(s) identical.</p>", self.same);
        s
    }
}
