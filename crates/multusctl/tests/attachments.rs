//! `multusctl attachments` on a copy of `fixtures/multusctl/cni-dir`: an attachment alive (its
//! namespace `/proc/self/ns/net` exists), one whose namespace is gone, one with a corrupt
//! delegate cache, and a result cache without a delegate cache.

mod common;

use common::{fixtures, multusctl, redact};
use multusctl::attachments::{NetnsState, PodState, scan};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// When the fixture's delegate caches were "written".
const WRITTEN: Duration = Duration::from_secs(1_700_000_000);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            let file = std::fs::File::options().write(true).open(&target).unwrap();
            file.set_modified(SystemTime::UNIX_EPOCH + WRITTEN).unwrap();
        }
    }
}

/// A private copy of the fixture cache directory (mtimes set to [`WRITTEN`]).
pub fn cni_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("cni-dir"), dir.path());
    dir
}

#[test]
fn the_delegate_cache_as_the_reconciler_sees_it() {
    let dir = cni_dir();
    let now = SystemTime::UNIX_EPOCH + WRITTEN + Duration::from_secs(2 * 86_400 + 3_600);
    let mut report = scan(dir.path(), now).unwrap();
    let states: Vec<(&str, NetnsState, bool)> =
        report.attachments.iter().map(|a| (a.pod.as_ref().unwrap().name.as_str(), a.netns_state, a.orphaned)).collect();
    assert_eq!(
        states,
        [
            ("gone", NetnsState::Absent, true),
            ("recreated", NetnsState::Present, true),
            ("two-nets", NetnsState::Present, false)
        ]
    );
    assert_eq!(report.attachments[2].age_seconds, Some(2 * 86_400 + 3_600));
    assert_eq!(report.results_without_cache.len(), 1);

    // What the API server says about the pods.
    let found: BTreeMap<(String, String), Option<String>> = [
        (("demo".to_string(), "gone".to_string()), None),
        (("demo".to_string(), "recreated".to_string()), Some("cccccccc-1111-1111-1111-111111111111".to_string())),
        (("demo".to_string(), "two-nets".to_string()), Some("11111111-1111-1111-1111-111111111111".to_string())),
    ]
    .into();
    report.apply_pod_lookups(&found);
    let pods: Vec<&PodState> = report.attachments.iter().map(|a| &a.pod_state).collect();
    assert_eq!(
        pods,
        [
            &PodState::Gone,
            &PodState::Replaced { uid: "cccccccc-1111-1111-1111-111111111111".into() },
            &PodState::Exists
        ]
    );

    let text = redact(&multusctl::render::attachments(&report), &[(dir.path(), "<cni-dir>")]);
    insta::assert_snapshot!("attachments_table", text);
    let json = redact(&serde_json::to_string_pretty(&report).unwrap(), &[(dir.path(), "<cni-dir>")]);
    insta::assert_snapshot!("attachments_json", json);
}

#[test]
fn the_command_exits_1_when_something_is_orphaned() {
    let dir = cni_dir();
    let run = multusctl(["-o", "json", "attachments", "--no-api", "--cni-dir", &dir.path().display().to_string()]);
    assert_eq!(run.code, 1, "{run:?}");
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["attachments"].as_array().unwrap().len(), 3);
    assert_eq!(report["notes"][0], "pods not checked (--no-api)");

    // Only the live attachment left: exit 0.
    for cid in [
        "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
        "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
    ] {
        std::fs::remove_file(dir.path().join(cid)).unwrap();
    }
    let run = multusctl(["attachments", "--no-api", "--cni-dir", &dir.path().display().to_string()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 attachment(s), 0 orphaned"), "{}", run.stdout);

    // An empty or missing directory has no attachments.
    let run = multusctl(["attachments", "--no-api", "--cni-dir", "/nonexistent/multusctl-test"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("no attachments"), "{}", run.stdout);
}
