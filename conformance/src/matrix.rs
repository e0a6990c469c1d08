//! The conformance matrix: the same cases against many implementations (every reference plugin
//! that can run here, fake-cni, the harness's runtime, multus-rs), rendered as one table —
//! Markdown, HTML and JSON — of case × implementation with the outcome and its reason.

use crate::embedded;
use crate::model::{Case, Strength};
use crate::report::{CaseResult, Counts, Outcome, Report, TargetInfo, xml};
use crate::runner::Runner;
use crate::target::{Target, cargo_bin_dir, runtime_target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Reference plugins the matrix tries, in column order (containernetworking-plugins; `tap` and
/// `dummy` are newer than Debian 12's 1.1.1 and show as not installed there).
pub const REFERENCE_PLUGINS: &[&str] = &[
    "bridge",
    "ptp",
    "macvlan",
    "ipvlan",
    "vlan",
    "host-device",
    "tap",
    "dummy",
    "loopback",
    "host-local",
    "static",
    "dhcp",
    "tuning",
    "portmap",
    "bandwidth",
    "firewall",
    "sbr",
    "vrf",
];

/// Why a column has no target.
#[derive(Debug, thiserror::Error)]
pub enum NoTarget {
    #[error("targets/{0} is not embedded")]
    NotEmbedded(&'static str),
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
}

/// One column: a name and how to build its target (or why it cannot run here at all).
pub struct Implementation {
    pub name: String,
    pub target: Result<Target, NoTarget>,
    /// A reason every case is skipped although the target could be built.
    pub skip_all: Option<String>,
}

/// The default columns: every reference plugin under `plugins_dir`, fake-cni, the harness's
/// runtime, and multus-rs's thick pair (`thick: false` leaves it out).
pub fn default_implementations(plugins_dir: &Path, thick: bool) -> Vec<Implementation> {
    let mut out = Vec::new();
    for name in REFERENCE_PLUGINS {
        let spec = format!("plugin:{}", plugins_dir.join(name).display());
        out.push(Implementation {
            name: name.to_string(),
            target: Target::from_spec(&spec).map_err(NoTarget::from),
            skip_all: None,
        });
    }
    let fake = cargo_bin_dir().join("fake-cni");
    let fake_target = embedded::target_file("fake-cni.yaml")
        .ok_or(NoTarget::NotEmbedded("fake-cni.yaml"))
        .and_then(|text| Ok(Target::from_yaml(text)?))
        .and_then(|mut t| {
            t.kind = crate::target::Kind::Plugin;
            t.plugin = Some(fake.clone());
            t.spec = format!("plugin:{},conformance/targets/fake-cni.yaml", repo_relative(&fake));
            t.complete()?;
            Ok(t)
        });
    out.push(Implementation { name: "fake-cni".into(), target: fake_target, skip_all: None });
    let mut runtime = runtime_target();
    runtime.spec = "runtime".into();
    let completed = runtime.complete().map(|()| runtime).map_err(NoTarget::from);
    out.push(Implementation { name: "runtime".into(), target: completed, skip_all: None });
    if thick {
        out.push(Implementation {
            name: "multus-rs".into(),
            target: Target::from_spec("thick").map_err(NoTarget::from),
            skip_all: None,
        });
    }
    out
}

/// The workspace root (the repository) this harness was built in.
fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().map(Path::to_path_buf).unwrap_or(manifest);
    root.canonicalize().unwrap_or(root)
}

/// `path` as the committed matrix may show it: relative to the repository when inside it
/// (`target/debug/fake-cni`), `$CARGO_TARGET_DIR/…` when under a target dir elsewhere, else
/// as it is (a system path such as `/usr/lib/cni/bridge`).
pub fn repo_relative(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Ok(rest) = path.strip_prefix(repo_root()) {
        return rest.display().to_string();
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && let Ok(rest) = path.strip_prefix(dir.canonicalize().unwrap_or(dir))
    {
        return format!("$CARGO_TARGET_DIR/{}", rest.display());
    }
    path.display().to_string()
}

/// Text with the generating machine's own paths hidden: the repository root dropped (paths
/// become repository-relative), the home directory written `~`.
pub fn hide_machine_paths(text: &str) -> String {
    let mut out = text.to_string();
    let root = repo_root().display().to_string();
    let declared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(|p| p.display().to_string());
    for r in [Some(root), declared].into_iter().flatten().filter(|r| r.len() > 1) {
        out = out.replace(&format!("{r}/"), "").replace(&r, ".");
    }
    if let Some(home) = std::env::var_os("HOME").map(|h| h.to_string_lossy().trim_end_matches('/').to_string())
        && home.len() > 1
    {
        out = out.replace(&format!("{home}/"), "~/");
    }
    out
}

/// Run every implementation (two at a time: most of a case is waiting on `ip` and plugin
/// processes), writing each report under `report_dir/<name>/`.
pub fn run(impls: Vec<Implementation>, cases: &[Case], report_dir: &Path, verbose: bool) -> Matrix {
    let names: Vec<String> = impls.iter().map(|i| i.name.clone()).collect();
    // The slowest (the thick pair) first, so that the other worker drains the rest meanwhile.
    let mut queue: Vec<(usize, Implementation)> = impls.into_iter().enumerate().collect();
    queue.sort_by_key(|(_, i)| i.target.as_ref().map(|t| t.kind != crate::target::Kind::Thick).unwrap_or(true));
    let queue = std::sync::Mutex::new(queue);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front_like();
                    let Some((index, imp)) = next else { break };
                    let report = run_one(&imp, cases, verbose);
                    let dir = report_dir.join(&imp.name);
                    if let Err(e) = write_report(&dir, &report) {
                        eprintln!("matrix: writing {}: {e}", dir.display());
                    }
                    if verbose {
                        let c = Report::counts(&report.cases);
                        eprintln!(
                            "matrix: {:<12} pass {:>3}  fail {:>3}  skip {:>3}  unsupported {:>3}",
                            imp.name, c.pass, c.fail, c.skip, c.unsupported
                        );
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner()).insert(index, report);
                }
            });
        }
    });
    let reports = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let columns =
        names.into_iter().enumerate().map(|(i, name)| (name, reports.get(&i).cloned().unwrap_or_default())).collect();
    Matrix::build(columns, cases)
}

trait PopFront<T> {
    fn pop_front_like(&mut self) -> Option<T>;
}

impl<T> PopFront<T> for Vec<T> {
    fn pop_front_like(&mut self) -> Option<T> {
        (!self.is_empty()).then(|| self.remove(0))
    }
}

fn run_one(imp: &Implementation, cases: &[Case], verbose: bool) -> Report {
    let all = |outcome: Outcome, target: TargetInfo| Report {
        target,
        cases: cases.iter().map(|c| CaseResult::new(c, outcome.clone())).collect(),
    };
    let target = match &imp.target {
        Ok(t) => t.clone(),
        Err(e) => {
            let info = TargetInfo { name: imp.name.clone(), ..TargetInfo::default() };
            return all(Outcome::Skipped { reason: format!("no target: {e}") }, info);
        }
    };
    let info = TargetInfo {
        spec: target.spec.clone(),
        kind: format!("{:?}", target.kind).to_lowercase(),
        name: imp.name.clone(),
        ..TargetInfo::default()
    };
    if let Some(reason) = &imp.skip_all {
        return all(Outcome::Skipped { reason: reason.clone() }, info);
    }
    match Runner::new(target) {
        Ok(mut runner) => {
            runner.verbose = false;
            let _ = verbose;
            let mut report = runner.run(cases);
            report.target.name = imp.name.clone();
            report
        }
        Err(e) => all(Outcome::Fail { reason: format!("the target did not start: {e:#}") }, info),
    }
}

fn write_report(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    std::fs::write(dir.join("junit.xml"), report.junit())?;
    std::fs::write(dir.join("summary.txt"), report.summary())
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub outcome: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The target's note or the case's explanation of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One row: a case and its outcome per implementation (same order as the columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub group: String,
    pub id: String,
    pub title: String,
    pub strength: Strength,
    pub assertions: Vec<String>,
    pub cells: Vec<Cell>,
}

/// One column: an implementation and its totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub target: TargetInfo,
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    pub unsupported: usize,
    pub must_fail: usize,
}

impl Column {
    /// Cases the implementation was judged on (not skipped).
    pub fn judged(&self) -> usize {
        self.pass + self.fail + self.unsupported
    }
}

/// The whole matrix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    /// Where it was produced (kernel, plugin package), for the reader.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

fn cell_of(c: Option<&CaseResult>, notes: &BTreeMap<String, String>) -> Cell {
    let Some(c) = c else { return Cell { outcome: "n/a".into(), reason: "case not run".into(), why: None } };
    let why = match c.outcome {
        Outcome::Fail { .. } | Outcome::Unsupported { .. } => notes.get(&c.id).or(c.explain.as_ref()).cloned(),
        _ => None,
    };
    let reason = crate::normalize::text(c.outcome.reason(), &crate::normalize::Placeholders::new());
    Cell { outcome: c.outcome.word().to_string(), reason, why }
}

impl Matrix {
    /// Build from one report per implementation (rows follow `cases`).
    pub fn build(columns: Vec<(String, Report)>, cases: &[Case]) -> Matrix {
        let rows = cases
            .iter()
            .map(|case| Row {
                group: case.group.clone(),
                id: case.id.clone(),
                title: case.title.clone(),
                strength: case.strength,
                assertions: crate::model::assertion_labels(case),
                cells: columns
                    .iter()
                    .map(|(_, r)| cell_of(r.cases.iter().find(|c| c.id == case.id), &r.target.notes))
                    .collect(),
            })
            .collect();
        let columns = columns
            .into_iter()
            .map(|(name, r)| {
                let Counts { pass, fail, skip, unsupported, must_fail } = Report::counts(&r.cases);
                Column { name, target: r.target, pass, fail, skip, unsupported, must_fail }
            })
            .collect();
        Matrix { environment: environment(), columns, rows }
    }

    pub fn to_json(&self) -> String {
        hide_machine_paths(&serde_json::to_string_pretty(self).unwrap_or_default())
    }

    /// The Markdown page (`conformance/MATRIX.md`).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# CNI conformance matrix\n");
        let _ = writeln!(
            s,
            "Generated by `cargo xtask conformance --matrix` (the harness in `conformance/`, {} cases) on {}. \
             Every reference plugin this machine can run, fake-cni, the harness's own libcni runtime and \
             multus-rs's thick pair, judged by the same cases. Do not edit: regenerate.\n",
            self.rows.len(),
            self.environment.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        );
        let _ = writeln!(
            s,
            "Outcomes: `pass`; `FAIL` (reason below); `skip` (the case does not apply to this implementation, or \
             cannot run here — reasons below); `unsup` (the implementation does not implement the verb in a way \
             cni.md allows, §5.13, or an extension a case judges: multus-rs's `dynamicNetworks`). Strength: MUST \
             (spec requirement), SHOULD (recommendation), REF (what the Go reference does and runtimes rely on).\n"
        );
        let _ = writeln!(s, "## Summary\n");
        let _ = writeln!(s, "| implementation | target | judged | pass | FAIL | MUST FAIL | unsup | skip |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|");
        for c in &self.columns {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                c.name,
                md(&c.target.spec),
                c.judged(),
                c.pass,
                c.fail,
                c.must_fail,
                c.unsupported,
                c.skip
            );
        }
        let _ = writeln!(s, "\n## Cases × implementations\n");
        let _ = write!(s, "| group | case | strength |");
        for c in &self.columns {
            let _ = write!(s, " {} |", c.name);
        }
        let _ = write!(s, "\n|---|---|---|");
        for _ in &self.columns {
            let _ = write!(s, ":-:|");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "| {} | {} | {} |", r.group, r.id, r.strength.as_str());
            for cell in &r.cells {
                let word = match cell.outcome.as_str() {
                    "FAIL" => "**FAIL**",
                    "unsupported" => "unsup",
                    "skip" => "·",
                    other => other,
                };
                let _ = write!(s, " {word} |");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n`·` = skipped.\n\n## Failures and unsupported verbs\n");
        for (i, c) in self.columns.iter().enumerate() {
            let rows: Vec<&Row> =
                self.rows.iter().filter(|r| matches!(r.cells[i].outcome.as_str(), "FAIL" | "unsupported")).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "### {}\n", c.name);
            for r in rows {
                let cell = &r.cells[i];
                let _ = writeln!(
                    s,
                    "- `{}` {} ({} {}): {}",
                    r.id,
                    cell.outcome,
                    r.strength.as_str(),
                    r.assertions.join(","),
                    md(&shorten(&cell.reason, 400))
                );
                if let Some(why) = &cell.why {
                    let _ = writeln!(s, "  - why: {}", md(why));
                }
            }
            s.push('\n');
        }
        let _ = writeln!(s, "## Why cases were skipped\n");
        for (i, c) in self.columns.iter().enumerate() {
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            for r in &self.rows {
                if r.cells[i].outcome == "skip" {
                    *reasons.entry(r.cells[i].reason.clone()).or_default() += 1;
                }
            }
            if reasons.is_empty() {
                continue;
            }
            let _ = writeln!(s, "- **{}**: {}", c.name, skip_summary(&reasons));
        }
        hide_machine_paths(&s)
    }

    /// A self-contained HTML page: the same table, reasons as tooltips and below.
    pub fn html(&self) -> String {
        let mut s = String::from(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>CNI conformance matrix</title><style>\
             body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 5px}\
             th{position:sticky;top:0;background:#eee}.pass{background:#d9f2d9}.FAIL{background:#f7c6c6;font-weight:bold}\
             .skip{color:#999}.unsupported{background:#fff0c0}</style></head><body>\n<h1>CNI conformance matrix</h1>\n",
        );
        let _ = writeln!(
            s,
            "<p>{}</p>",
            xml(&self.environment.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
        );
        s.push_str("<table>\n<tr><th>implementation</th><th>judged</th><th>pass</th><th>FAIL</th><th>MUST FAIL</th><th>unsupported</th><th>skip</th></tr>\n");
        for c in &self.columns {
            let _ = writeln!(
                s,
                "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                xml(&c.target.spec),
                xml(&c.name),
                c.judged(),
                c.pass,
                c.fail,
                c.must_fail,
                c.unsupported,
                c.skip
            );
        }
        s.push_str(
            "</table>\n<h2>Cases × implementations</h2>\n<table>\n<tr><th>group</th><th>case</th><th>strength</th>",
        );
        for c in &self.columns {
            let _ = write!(s, "<th>{}</th>", xml(&c.name));
        }
        s.push_str("</tr>\n");
        for r in &self.rows {
            let _ = write!(
                s,
                "<tr><td>{}</td><td title=\"{}\">{}</td><td>{} {}</td>",
                xml(&r.group),
                xml(&r.title),
                xml(&r.id),
                r.strength.as_str(),
                xml(&r.assertions.join(","))
            );
            for cell in &r.cells {
                let tip = match &cell.why {
                    Some(w) => format!("{}\nwhy: {w}", cell.reason),
                    None => cell.reason.clone(),
                };
                let _ = write!(
                    s,
                    "<td class=\"{}\" title=\"{}\">{}</td>",
                    xml(&cell.outcome),
                    xml(&tip),
                    xml(&cell.outcome)
                );
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n</body></html>\n");
        hide_machine_paths(&s)
    }
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn skip_summary(reasons: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<(&String, &usize)> = reasons.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(r, n)| format!("{n} × {}", md(&shorten(r, 160)))).collect::<Vec<_>>().join("; ")
}

/// Kernel release and the reference plugins' package version, when they can be read.
fn environment() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Ok(k) = crate::sys::cmd("uname", &["-r"]) {
        m.insert("kernel".into(), k.trim().to_string());
    }
    if let Ok(v) = crate::sys::cmd("dpkg-query", &["-W", "-f", "${Version}", "containernetworking-plugins"]) {
        m.insert("containernetworking-plugins".into(), v.trim().to_string());
    }
    m
}

/// Where `cargo xtask conformance --matrix` writes the Markdown by default.
pub fn default_markdown_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("MATRIX.md")
}
