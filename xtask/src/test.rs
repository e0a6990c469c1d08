//! `cargo xtask test`: one command that prepares a fresh machine and runs every test.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

use crate::util::is_root;

/// Debian packages the tests use: real delegate plugins, `ip`, `jq`, `promtool` (prometheus),
/// `dnsmasq` (the DHCP server the dhcp plugin's conformance cases lease from).
pub const DEBIAN_PACKAGES: [&str; 5] = ["containernetworking-plugins", "dnsmasq-base", "iproute2", "jq", "prometheus"];

#[derive(clap::Args)]
pub struct TestArgs {
    /// Do not try to install Debian packages.
    #[arg(long)]
    pub no_install: bool,
    /// Also run `cargo fmt --check` and `cargo clippy -D warnings`.
    #[arg(long)]
    pub lint: bool,
    /// Extra arguments for `cargo test`.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<()> {
    if !args.no_install {
        install_packages()?;
    }
    if args.lint {
        cargo(&["fmt", "--all", "--", "--check"])?;
        cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    }
    // Integration tests run the workspace's binaries (daemon, shim, fake plugins, mock API
    // server); build them all first so every test finds them.
    cargo(&["build", "--workspace", "--bins"])?;
    // Every test binary runs even after one fails: CI shows every failure of a run, not the first.
    let mut test_args = vec!["test", "--workspace", "--no-fail-fast"];
    test_args.extend(args.cargo_args.iter().map(String::as_str));
    // Tests that need root, network namespaces or Debian's plugins are #[ignore = "needs …"]:
    // a machine without them reports them as skipped; where everything is present (CI) they run.
    match privileged_tests_possible() {
        Ok(()) => {
            eprintln!("xtask: root, iproute2 and /usr/lib/cni present: running the #[ignore]d system tests too");
            if !args.cargo_args.iter().any(|a| a == "--") {
                test_args.push("--");
            }
            test_args.push("--include-ignored");
            for name in NOT_RUN_BY_DEFAULT {
                test_args.extend(["--skip", name]);
            }
        }
        Err(why) => eprintln!("xtask: {why}: the #[ignore]d system tests are reported as skipped"),
    }
    // Tests that could not run here record themselves (test_node::require) in this file:
    // cargo counts them as passed, this run counts them as skipped.
    let skips = tempfile::NamedTempFile::new().context("creating the skips file")?;
    let result = cargo_test(&test_args, skips.path());
    let totals = result.totals.with_skips(&read_skips(skips.path()));
    // One closing line for the whole run (cargo prints one per test binary).
    println!("{}", totals.summary());
    if !result.success {
        bail!("cargo {} failed", test_args.join(" "));
    }
    if totals.failed > 0 {
        bail!("{} tests failed", totals.failed);
    }
    Ok(())
}

/// `#[ignore]`d tests that even a fully equipped machine does not run by default (slow or not
/// tests at all): run them by name.
const NOT_RUN_BY_DEFAULT: [&str; 5] = [
    // A static release build and a docker image: minutes (`cargo test -p xtask -- --ignored real_image`).
    "builds_the_real_image",
    // The Dockerfile from source: BuildKit, the Rust image and crates.io (tens of minutes).
    "builds_from_source_with_buildx",
    // The stand-in daemon's process entry point, started by its own test.
    "standin_daemon_entry",
    // Entry points of the helper processes the cni containment and lifetime tests start and kill.
    "helper_executor",
    "helper_parent_process",
];

/// Whether the system tests can run here: root (network namespaces), `ip`, Debian's plugins.
fn privileged_tests_possible() -> Result<(), String> {
    if !is_root() {
        return Err("not root".into());
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        return Err("no /usr/lib/cni/bridge (containernetworking-plugins)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err("no ip (iproute2)".into());
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Tests that ran but could not do their work here (test_node::require), and tests left
    /// out by `--skip`.
    pub skipped: u64,
}

impl Totals {
    /// Move the tests that recorded a skip from passed to skipped.
    pub fn with_skips(mut self, skips: &[Skip]) -> Self {
        let n = skips.len() as u64;
        self.passed = self.passed.saturating_sub(n);
        self.skipped += n;
        self
    }

    pub fn summary(&self) -> String {
        format!("tests: {} passed, {} failed, {} skipped", self.passed, self.failed, self.ignored + self.skipped)
    }
}

/// One line of the skips file: `{"test","reason"}`.
#[derive(Debug, serde::Deserialize, PartialEq, Eq)]
pub struct Skip {
    pub test: String,
    pub reason: String,
}

/// The skips recorded in `path` (a line that does not parse still counts: a test skipped).
pub fn read_skips(path: &Path) -> Vec<Skip> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Skip { test: "?".into(), reason: l.to_string() }))
        .collect()
}

/// How many tests `--skip NAME` left out: `NAME` matches as a substring of the test paths
/// listed by `cargo test -- --list` lines (`path: test`).
pub fn count_listed(list: &str, names: &[&str]) -> u64 {
    list.lines().filter_map(|l| l.strip_suffix(": test")).filter(|t| names.iter().any(|n| t.contains(n))).count() as u64
}

/// Add up a `test result: ok. 3 passed; 0 failed; 1 ignored; …` line.
pub fn add_result_line(totals: &mut Totals, line: &str) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(what), Some(n)) = (words.next(), words.next()) else { continue };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => totals.passed += n,
            "failed" => totals.failed += n,
            "ignored" => totals.ignored += n,
            _ => {}
        }
    }
}

/// What one `cargo test` run reported.
struct TestRun {
    totals: Totals,
    success: bool,
}

/// Run `cargo test …` with `MULTUS_TEST_SKIPS` set to `skips`, passing its output through
/// while adding up the results; the `--skip`ped tests (listed first) count as skipped.
fn cargo_test(args: &[&str], skips: &Path) -> TestRun {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut totals = Totals { skipped: skipped_by_name(&cargo, args), ..Totals::default() };
    eprintln!("xtask: cargo {}", args.join(" "));
    let child = Command::new(&cargo)
        .args(args)
        .env(test_node::skip::SKIPS_ENV, skips)
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask: running cargo test: {e}");
            return TestRun { totals, success: false };
        }
    };
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            add_result_line(&mut totals, &line);
        }
    }
    let success = child.wait().is_ok_and(|s| s.success());
    if !success {
        totals.failed = totals.failed.max(1);
    }
    TestRun { totals, success }
}

/// How many tests the `--skip NAME`s of `args` leave out (from `cargo test … -- --list`).
fn skipped_by_name(cargo: &str, args: &[&str]) -> u64 {
    let names: Vec<&str> = args.windows(2).filter(|w| w[0] == "--skip").map(|w| w[1]).collect();
    if names.is_empty() {
        return 0;
    }
    let mut list_args: Vec<&str> = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
        } else if *a == "--skip" {
            skip_next = true;
        } else {
            list_args.push(a);
        }
    }
    list_args.push("--list");
    let out = Command::new(cargo).args(&list_args).stderr(std::process::Stdio::inherit()).output();
    out.map(|o| count_listed(&String::from_utf8_lossy(&o.stdout), &names)).unwrap_or(0)
}

/// Install missing packages when we can (root on a Debian-like system); otherwise say why the
/// tests that need them will skip.
pub fn install_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || !Path::new("/usr/bin/apt-get").exists() {
        eprintln!(
            "xtask: not installing {missing:?} (needs root and apt-get); tests that need them will skip with a reason"
        );
        return Ok(());
    }
    eprintln!("xtask: installing {missing:?}");
    let status = Command::new("apt-get").arg("update").arg("-qq").status().context("apt-get update")?;
    if !status.success() {
        bail!("apt-get update failed");
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("apt-get install")?;
    if !status.success() {
        bail!("apt-get install {missing:?} failed");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo).args(args).status().context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_up_result_lines() {
        let mut t = Totals::default();
        add_result_line(
            &mut t,
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        );
        add_result_line(&mut t, "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 5 filtered out");
        add_result_line(&mut t, "running 3 tests");
        assert_eq!(t, Totals { passed: 5, failed: 1, ignored: 1, skipped: 0 });
    }

    #[test]
    fn recorded_skips_move_from_passed_to_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skips");
        std::fs::write(&file, "{\"test\":\"a\",\"reason\":\"needs root\"}\n{\"test\":\"b\",\"reason\":\"needs ip\"}\n")
            .unwrap();
        let skips = read_skips(&file);
        assert_eq!(skips[1], Skip { test: "b".into(), reason: "needs ip".into() });
        let t = Totals { passed: 5, failed: 0, ignored: 1, skipped: 1 }.with_skips(&skips);
        assert_eq!(t.summary(), "tests: 3 passed, 0 failed, 4 skipped");
        assert!(read_skips(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn skip_names_count_the_listed_tests_they_match() {
        let list = "tests::builds_the_real_image: test\nother: test\nbuilds_from_source_with_buildx: test\n\n2 tests, 0 benchmarks\n";
        assert_eq!(count_listed(list, &NOT_RUN_BY_DEFAULT), 2);
    }
}
