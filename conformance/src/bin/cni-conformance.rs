//! `cni-conformance`: run the CNI conformance cases against a target, or two and diff them.

// The doc comments below are clap's --help text, where `<name>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use anyhow::Context as _;
use clap::Parser;
use multus_conformance::{Report, Runner, Target, diff, embedded, filter_cases, matrix, model};
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "cni-conformance", about = "CNI conformance harness (plugin-agnostic, plus Multus thick cases)")]
struct Cli {
    /// Target: `plugin:<path>[,<file.yaml>]`, `thick`, `thick:<file.yaml>`, or a target file.
    #[arg(long)]
    target: Option<String>,
    /// Run two targets (or read two report.json files) and write a side-by-side diff.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    diff: Option<Vec<String>>,
    /// Only these groups (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Only cases whose id contains this (repeatable).
    #[arg(long = "case")]
    cases: Vec<String>,
    /// Where to write report.json, junit.xml, summary.txt (and diff.md/diff.html).
    #[arg(long, default_value = "target/conformance")]
    report_dir: PathBuf,
    /// Case directory (default: the cases built into this binary).
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Run the cases against every implementation that can run here (each reference plugin
    /// under --plugins-dir, fake-cni, the harness's runtime, multus-rs) and write one table:
    /// <report-dir>/matrix.{md,html,json} plus a report per implementation.
    #[arg(long)]
    matrix: bool,
    /// Also write the matrix's Markdown here (e.g. conformance/MATRIX.md).
    #[arg(long, value_name = "FILE")]
    matrix_md: Option<PathBuf>,
    /// Where the reference plugins are (for --matrix).
    #[arg(long, default_value = "/usr/lib/cni")]
    plugins_dir: PathBuf,
    /// Leave multus-rs's thick pair out of --matrix.
    #[arg(long)]
    no_thick: bool,
    /// List the cases and exit.
    #[arg(long)]
    list: bool,
    /// Exit non-zero only when a MUST case fails (default: any failure).
    #[arg(long)]
    must_only: bool,
    /// Print one line per case while running.
    #[arg(long, short)]
    verbose: bool,
}

fn run_target(spec: &str, cases: &[model::Case], verbose: bool) -> anyhow::Result<Report> {
    if spec.ends_with(".json") && Path::new(spec).is_file() {
        let text = std::fs::read_to_string(spec)?;
        return serde_json::from_str(&text).with_context(|| format!("reading report {spec}"));
    }
    let target = Target::from_spec(spec)?;
    let mut runner = Runner::new(target)?;
    runner.verbose = verbose;
    Ok(runner.run(cases))
}

fn write_report(dir: &Path, report: &Report) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.json"), report.to_json())?;
    std::fs::write(dir.join("junit.xml"), report.junit())?;
    std::fs::write(dir.join("summary.txt"), report.summary())?;
    Ok(())
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let all = match &cli.scenarios {
        Some(dir) => model::load_dir(dir)?,
        None => embedded::load_scenarios()?,
    };
    let cases = filter_cases(all, &cli.groups, &cli.cases);
    if cli.list {
        for c in &cases {
            println!("{:<26} {:<40} {:<6} {}", c.group, c.id, c.strength.as_str(), c.title);
        }
        println!("{} case(s)", cases.len());
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if cli.matrix {
        let impls = matrix::default_implementations(&cli.plugins_dir, !cli.no_thick);
        let m = matrix::run(impls, &cases, &cli.report_dir, cli.verbose);
        std::fs::create_dir_all(&cli.report_dir)?;
        std::fs::write(cli.report_dir.join("matrix.md"), m.markdown())?;
        std::fs::write(cli.report_dir.join("matrix.html"), m.html())?;
        std::fs::write(cli.report_dir.join("matrix.json"), m.to_json())?;
        if let Some(md) = &cli.matrix_md {
            std::fs::write(md, m.markdown())?;
        }
        println!(
            "{:<14} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5}",
            "implementation", "judged", "pass", "fail", "MUST", "unsup", "skip"
        );
        for c in &m.columns {
            println!(
                "{:<14} {:>6} {:>5} {:>5} {:>5} {:>5} {:>5}",
                c.name,
                c.judged(),
                c.pass,
                c.fail,
                c.must_fail,
                c.unsupported,
                c.skip
            );
        }
        println!(
            "{} cases × {} implementations → {}",
            m.rows.len(),
            m.columns.len(),
            cli.report_dir.join("matrix.md").display()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    if let Some(pair) = &cli.diff {
        let a = run_target(&pair[0], &cases, cli.verbose)?;
        write_report(&cli.report_dir.join("a"), &a)?;
        let b = run_target(&pair[1], &cases, cli.verbose)?;
        write_report(&cli.report_dir.join("b"), &b)?;
        let d = diff::diff(&a, &b);
        std::fs::create_dir_all(&cli.report_dir)?;
        std::fs::write(cli.report_dir.join("diff.md"), d.markdown())?;
        std::fs::write(cli.report_dir.join("diff.html"), d.html())?;
        print!("{}", a.summary());
        print!("\n{}", b.summary());
        println!(
            "\ndiff: {} MUST failure(s), {} gap(s), {} divergence(s) → {}",
            d.must_failures.len(),
            d.gaps.len(),
            d.divergences.len(),
            cli.report_dir.join("diff.md").display()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let spec = cli.target.clone().context("give --target or --diff (see --help)")?;
    let report = run_target(&spec, &cases, cli.verbose)?;
    write_report(&cli.report_dir, &report)?;
    print!("{}", report.summary());
    println!("reports: {}", cli.report_dir.display());
    let c = Report::counts(&report.cases);
    let bad = if cli.must_only { c.must_fail } else { c.fail };
    Ok(if bad == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}
