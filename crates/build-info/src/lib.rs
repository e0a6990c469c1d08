//! Version stamping for every multus-rs binary.
//!
//! A binary's package has a two-line build script calling [`stamp`], and prints
//! [`version_line!`] when [`asks_for_version`] says so:
//!
//! ```ignore
//! // build.rs (with `build-info` in [build-dependencies])
//! fn main() { build_info::stamp(); }
//! // main.rs (with `build-info` in [dependencies])
//! if build_info::asks_for_version(std::env::args_os()) {
//!     println!("{}", build_info::version_line!("fake-cni"));
//! }
//! ```
//!
//! [`stamp`] sets two compile-time variables for the package:
//! - `MULTUS_RS_GIT_COMMIT`: `$MULTUS_RS_GIT_COMMIT` when set (the Dockerfile passes it, its
//!   build context has no `.git`), else `git rev-parse HEAD` of the source tree, else `unknown`;
//! - `MULTUS_RS_BUILD_DATE`: `$MULTUS_RS_BUILD_DATE` when set, else `$SOURCE_DATE_EPOCH` (for
//!   reproducible builds), else the time the build script ran; RFC 3339, UTC.
//!
//! It never fails the build. The script runs again when the checked-out commit changes.

#![warn(missing_docs)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The commit recorded when the stamp cannot be learnt.
pub const UNKNOWN: &str = "unknown";

/// The version line: `<name>: version:<crate version>(multus-rs), commit:<sha>, date:<RFC 3339>`
/// (the Go binaries' `-version` shape). Needs the package's build script to call [`stamp`].
#[macro_export]
macro_rules! version_line {
    ($name:literal) => {
        concat!($name, ": ", $crate::version!())
    };
}

/// `version:<crate version>(multus-rs), commit:<sha>, date:<RFC 3339>`.
#[macro_export]
macro_rules! version {
    () => {
        concat!(
            "version:",
            env!("CARGO_PKG_VERSION"),
            "(multus-rs), commit:",
            env!("MULTUS_RS_GIT_COMMIT"),
            ", date:",
            env!("MULTUS_RS_BUILD_DATE")
        )
    };
}

/// Whether the first argument after the program name is `-version`, `--version` or `-V`.
pub fn asks_for_version(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter().nth(1).is_some_and(|a| is_version_flag(&a.to_string_lossy()))
}

/// `-version` (Go's spelling), `--version` or `-V`.
pub fn is_version_flag(arg: &str) -> bool {
    matches!(arg, "-version" | "--version" | "-V")
}

/// For build scripts: print the `cargo:` lines that stamp the package (see the crate docs).
pub fn stamp() {
    for line in stamp_lines(&Inputs::from_build_env()) {
        println!("{line}");
    }
}

/// What a stamp is made of (the environment of one build script run).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The package's directory (`CARGO_MANIFEST_DIR`), where git is asked.
    pub manifest_dir: PathBuf,
    /// `$MULTUS_RS_GIT_COMMIT`: the commit to stamp instead of asking git.
    pub commit_override: Option<String>,
    /// `$MULTUS_RS_BUILD_DATE`: the date to stamp, used as given.
    pub date_override: Option<String>,
    /// `$SOURCE_DATE_EPOCH`: seconds since the epoch, the build date when no override is set.
    pub source_date_epoch: Option<String>,
    /// Seconds since the epoch, now.
    pub now: u64,
}

impl Inputs {
    fn from_build_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            manifest_dir: var("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| ".".into()),
            commit_override: var("MULTUS_RS_GIT_COMMIT"),
            date_override: var("MULTUS_RS_BUILD_DATE"),
            source_date_epoch: var("SOURCE_DATE_EPOCH"),
            now: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        }
    }
}

/// The `cargo:` lines for `inputs`.
pub fn stamp_lines(inputs: &Inputs) -> Vec<String> {
    let mut lines: Vec<String> = ["MULTUS_RS_GIT_COMMIT", "MULTUS_RS_BUILD_DATE", "SOURCE_DATE_EPOCH"]
        .iter()
        .map(|v| format!("cargo:rerun-if-env-changed={v}"))
        .collect();
    let git = GitCheckout::find(&inputs.manifest_dir);
    // Only files that exist: cargo reruns a script on every build when one is missing.
    for file in git.iter().flat_map(GitCheckout::files_naming_the_commit) {
        lines.push(format!("cargo:rerun-if-changed={}", file.display()));
    }
    if git.is_none() {
        // Nothing in the tree decides the stamp: do not rerun on every source change.
        lines.push("cargo:rerun-if-changed=build.rs".into());
    }
    let commit = inputs
        .commit_override
        .clone()
        .or_else(|| git.as_ref().and_then(|g| g.head_commit()))
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-._+".contains(ch)))
        .unwrap_or_else(|| UNKNOWN.to_string());
    let date = inputs
        .date_override
        .clone()
        .filter(|d| !d.contains(['\n', '\r']))
        .or_else(|| inputs.source_date_epoch.as_deref().and_then(|s| s.trim().parse::<u64>().ok()).map(rfc3339))
        .unwrap_or_else(|| rfc3339(inputs.now));
    lines.push(format!("cargo:rustc-env=MULTUS_RS_GIT_COMMIT={commit}"));
    lines.push(format!("cargo:rustc-env=MULTUS_RS_BUILD_DATE={date}"));
    lines
}

/// The git checkout a package is built from.
#[derive(Debug, Clone)]
struct GitCheckout {
    dir: PathBuf,
    git_dir: PathBuf,
    common_dir: PathBuf,
}

impl GitCheckout {
    fn find(dir: &Path) -> Option<Self> {
        let out = git(dir, &["rev-parse", "--git-dir", "--git-common-dir"])?;
        let mut lines = out.lines();
        let resolve = |p: &str| if Path::new(p).is_absolute() { PathBuf::from(p) } else { dir.join(p) };
        let git_dir = resolve(lines.next()?);
        let common_dir = lines.next().map(resolve).unwrap_or_else(|| git_dir.clone());
        Some(Self { dir: dir.to_path_buf(), git_dir, common_dir })
    }

    fn head_commit(&self) -> Option<String> {
        git(&self.dir, &["rev-parse", "HEAD"]).map(|s| s.trim().to_string())
    }

    /// `HEAD`, the branch it names and `packed-refs`: what changes when the commit does.
    fn files_naming_the_commit(&self) -> Vec<PathBuf> {
        let head = self.git_dir.join("HEAD");
        let mut files = vec![head.clone()];
        if let Some(reference) = std::fs::read_to_string(&head)
            .ok()
            .and_then(|h| h.trim().strip_prefix("ref:").map(|r| r.trim().to_string()))
        {
            files.push(self.common_dir.join(reference));
        }
        files.push(self.common_dir.join("packed-refs"));
        files.into_iter().filter(|f| f.exists()).collect()
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Seconds since the epoch as RFC 3339 in UTC (`2026-07-27T21:58:38Z`).
pub fn rfc3339(epoch_seconds: u64) -> String {
    let days = epoch_seconds / 86_400;
    let secs = epoch_seconds % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(lines: &[String], name: &str) -> String {
        let prefix = format!("cargo:rustc-env={name}=");
        lines.iter().find_map(|l| l.strip_prefix(&prefix)).unwrap().to_string()
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_785_189_518), "2026-07-27T21:58:38Z");
    }

    #[test]
    fn flags() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        for f in ["-version", "--version", "-V"] {
            assert!(asks_for_version(args(&["prog", f])), "{f}");
        }
        assert!(!asks_for_version(args(&["prog"])));
        assert!(!asks_for_version(args(&["prog", "-v"])));
        assert!(!asks_for_version(args(&["prog", "run", "--version"])));
    }

    /// This crate is built from the repository's checkout: the stamp names its HEAD.
    #[test]
    fn from_a_git_checkout() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let lines = stamp_lines(&Inputs { manifest_dir: dir.clone(), now: 0, ..Inputs::default() });
        let commit = env_of(&lines, "MULTUS_RS_GIT_COMMIT");
        match git(&dir, &["rev-parse", "HEAD"]) {
            Some(head) => {
                assert_eq!(commit, head.trim());
                assert!(lines.iter().any(|l| l.starts_with("cargo:rerun-if-changed=") && l.ends_with("HEAD")));
            }
            // A source tree without git (an exported archive).
            None => assert_eq!(commit, UNKNOWN),
        }
        assert_eq!(env_of(&lines, "MULTUS_RS_BUILD_DATE"), "1970-01-01T00:00:00Z");
    }

    /// Outside any checkout, without git metadata: `unknown`, and the build does not fail.
    #[test]
    fn without_git_and_with_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let base = Inputs { manifest_dir: dir.path().to_path_buf(), now: 86_400, ..Inputs::default() };
        let lines = stamp_lines(&base);
        assert_eq!(env_of(&lines, "MULTUS_RS_GIT_COMMIT"), UNKNOWN);
        assert_eq!(env_of(&lines, "MULTUS_RS_BUILD_DATE"), "1970-01-02T00:00:00Z");
        assert!(lines.contains(&"cargo:rerun-if-changed=build.rs".to_string()));
        let lines = stamp_lines(&Inputs {
            commit_override: Some("0123abc".into()),
            source_date_epoch: Some("951782400".into()),
            ..base.clone()
        });
        assert_eq!(env_of(&lines, "MULTUS_RS_GIT_COMMIT"), "0123abc");
        assert_eq!(env_of(&lines, "MULTUS_RS_BUILD_DATE"), "2000-02-29T00:00:00Z");
        let lines = stamp_lines(&Inputs {
            commit_override: Some("bad\nvalue".into()),
            date_override: Some("2026-01-01T00:00:00Z".into()),
            ..base
        });
        assert_eq!(env_of(&lines, "MULTUS_RS_GIT_COMMIT"), UNKNOWN);
        assert_eq!(env_of(&lines, "MULTUS_RS_BUILD_DATE"), "2026-01-01T00:00:00Z");
    }
}
