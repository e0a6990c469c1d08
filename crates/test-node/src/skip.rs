//! Honest skips: a test that cannot run here says so, and the runner counts it as skipped
//! rather than passed.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;

/// The file (one JSON line per skipped test) that `cargo xtask test` reads back.
pub const SKIPS_ENV: &str = "MULTUS_TEST_SKIPS";

/// `true` when nothing is `missing`; otherwise prints `SKIPPED: <test>: <why>`, appends
/// `{"test","reason"}` to the file named by `MULTUS_TEST_SKIPS` (when set) and returns `false`,
/// so the caller returns at once:
///
/// ```no_run
/// fn a_test() {
///     if !test_node::require(test_node::root_skip_reason()) {
///         return;
///     }
///     // … what needs root
/// }
/// ```
pub fn require<R: Display>(missing: Option<R>) -> bool {
    let Some(why) = missing else { return true };
    record(&current_test(), &why.to_string());
    false
}

/// Print and record one skipped test.
pub fn record(test: &str, reason: &str) {
    eprintln!("SKIPPED: {test}: {reason}");
    let Some(path) = std::env::var_os(SKIPS_ENV).filter(|p| !p.is_empty()) else { return };
    if let Err(e) = append(Path::new(&path), test, reason) {
        eprintln!("SKIPPED: cannot record the skip in {}: {e}", path.to_string_lossy());
    }
}

/// One write of a whole line with O_APPEND: test threads and processes do not interleave.
fn append(path: &Path, test: &str, reason: &str) -> std::io::Result<()> {
    let line = serde_json::json!({"test": test, "reason": reason}).to_string();
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(format!("{line}\n").as_bytes())
}

/// The running test's name: libtest names each test's thread after it; outside a test, the
/// program's name.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "unknown".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_missing_runs() {
        assert!(require(None::<String>));
    }

    #[test]
    fn skips_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skips");
        append(&file, "t1", "needs root").unwrap();
        append(&file, "t2", "needs ip").unwrap();
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0]["test"].as_str(), lines[1]["reason"].as_str()), (Some("t1"), Some("needs ip")));
    }

    #[test]
    fn the_test_is_named_after_its_thread() {
        assert_eq!(current_test(), "skip::tests::the_test_is_named_after_its_thread");
    }

    /// A skip through the environment, in a child test process (this one's environment stays
    /// untouched): the line names the test and the reason.
    #[test]
    fn a_skip_reaches_the_file_named_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skips");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "skip::tests::child_skips_when_asked", "--nocapture", "--test-threads=1"])
            .env(SKIPS_ENV, &file)
            .env("TEST_NODE_CHILD_SKIP", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("SKIPPED: skip::tests::child_skips_when_asked: asked to")
        );
        let line: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
        assert_eq!(line, serde_json::json!({"test": "skip::tests::child_skips_when_asked", "reason": "asked to"}));
    }

    /// Skips only in the child above; anywhere else it runs (and does nothing).
    #[test]
    fn child_skips_when_asked() {
        let asked = std::env::var_os("TEST_NODE_CHILD_SKIP").is_some();
        // The test's whole work: nothing beyond the check.
        let _ran = require(asked.then_some("asked to"));
    }
}
