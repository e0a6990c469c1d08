//! One way for a test to say that it did not run.
//!
//! A test that cannot run here (no root, a missing binary, a kernel without a feature) must not
//! pass silently. Where the condition is known before the test starts, mark the test
//! `#[ignore = "needs root"]` instead (CI runs ignored tests as root). Where only the test
//! itself can tell, it calls [`require`] and returns when that says no:
//!
//! ```
//! if !test_skip::require(std::path::Path::new("/bin/sh").exists(), "/bin/sh is missing") {
//!     return;
//! }
//! ```
//!
//! A skip is printed to stderr as `SKIPPED: <test>: <reason>` and, when the environment
//! variable [`SKIPS_ENV`] names a file, appended to it as one JSON line
//! `{"test": "<test>", "reason": "<reason>"}`, so that a test runner counts it as skipped.

use std::io::Write as _;
use std::path::Path;

/// The environment variable naming the file that skips are appended to (JSON lines).
pub const SKIPS_ENV: &str = "MULTUS_TEST_SKIPS";

/// `true` when `condition` holds. Otherwise the calling test is recorded as skipped because
/// `what` (see the [crate documentation](crate)) and `false` is returned: the test returns.
pub fn require(condition: bool, what: &str) -> bool {
    if !condition {
        skip(what);
    }
    condition
}

/// Record the calling test as skipped because of `reason` (the test then returns).
pub fn skip(reason: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("<unnamed test>");
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os(SKIPS_ENV).filter(|p| !p.is_empty()) {
        if let Err(e) = append(Path::new(&path), test, reason) {
            eprintln!("SKIPPED: cannot record the skip in {}: {e}", path.to_string_lossy());
        }
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
    fn a_met_condition_records_nothing() {
        assert!(require(true, "never printed"));
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
