//! One way for a test to say that it did not run.
//!
//! A test that cannot run here (no root, a missing binary, a kernel without a feature) must not
//! pass silently. Where the condition is known before the test starts, mark the test
//! `#[ignore = "needs root"]` instead (CI runs ignored tests as root). Where only the test
//! itself can tell, it calls [`require`] with what is missing (`None`: nothing) and returns
//! when that says no:
//!
//! ```
//! let missing = (!std::path::Path::new("/bin/sh").exists()).then_some("/bin/sh is missing");
//! if !test_skip::require(missing) {
//!     return;
//! }
//! ```
//!
//! A skip is printed to stderr as `SKIPPED: <test>: <reason>` and, when the environment
//! variable [`SKIPS_ENV`] names a file, appended to it as one JSON line
//! `{"test": "<test>", "reason": "<reason>"}`, so that a test runner counts it as skipped.

use std::fmt::Display;
use std::io::Write as _;
use std::path::Path;

/// The environment variable naming the file that skips are appended to (JSON lines).
pub const SKIPS_ENV: &str = "MULTUS_TEST_SKIPS";

/// `true` when nothing is `missing`. Otherwise the calling test is recorded as skipped because
/// of what is missing (see the [crate documentation](crate)) and `false` is returned: the test
/// returns at once.
pub fn require<R: Display>(missing: Option<R>) -> bool {
    let Some(why) = missing else { return true };
    record(&current_test(), &why.to_string());
    false
}

/// Print and record one skipped test.
pub fn record(test: &str, reason: &str) {
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIPS_ENV).filter(|p| !p.is_empty())
        && let Err(e) = append(Path::new(&path), test, reason)
    {
        eprintln!("SKIPPED: cannot record the skip in {}: {e}", path.to_string_lossy());
    }
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

/// Append the skip of `test` to the JSON-lines file `path`.
fn append(path: &Path, test: &str, reason: &str) -> std::io::Result<()> {
    let line = format!("{{\"test\":{},\"reason\":{}}}\n", json_string(test), json_string(reason));
    // One write of one line, appended: parallel tests do not interleave their lines.
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(line.as_bytes())
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json() {
        assert_eq!(json_string("plain"), "\"plain\"");
        assert_eq!(json_string("a \"b\"\\\n\u{1}"), "\"a \\\"b\\\"\\\\\\n\\u0001\"");
        assert_eq!(json_string("é"), "\"é\"");
    }

    #[test]
    fn nothing_missing_runs() {
        assert!(require(None::<String>));
    }

    #[test]
    fn the_test_is_named_after_its_thread() {
        assert_eq!(current_test(), "tests::the_test_is_named_after_its_thread");
    }

    /// A skip through the environment, in a child test process (this one's environment stays
    /// untouched): the line names the test and the reason.
    #[test]
    fn a_skip_reaches_the_file_named_by_the_environment() {
        let path = std::env::temp_dir().join(format!("test-skip-child-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tests::child_skips_when_asked", "--nocapture", "--test-threads=1"])
            .env(SKIPS_ENV, &path)
            .env("TEST_SKIP_CHILD", "1")
            .output()
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("SKIPPED: tests::child_skips_when_asked: asked to"));
        assert_eq!(text, "{\"test\":\"tests::child_skips_when_asked\",\"reason\":\"asked to\"}\n");
    }

    /// Skips only in the child above; anywhere else it runs (and does nothing).
    #[test]
    fn child_skips_when_asked() {
        let asked = std::env::var_os("TEST_SKIP_CHILD").is_some();
        let _ran = require(asked.then_some("asked to"));
    }

    #[test]
    fn a_skip_is_appended_as_one_json_line() {
        let path = std::env::temp_dir().join(format!("test-skip-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        append(&path, "a::test", "no \"thing\" here").unwrap();
        append(&path, "b::test", "none").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            text,
            "{\"test\":\"a::test\",\"reason\":\"no \\\"thing\\\" here\"}\n{\"test\":\"b::test\",\"reason\":\"none\"}\n"
        );
    }
}
