//! The Go thick template's mechanism, shown with multus-rs's own pair (the Go pair is not
//! available here): `targets/multus-rs-in-cluster.yaml` is `targets/go-multus-thick.yaml` with
//! its two paths pointed at the cargo target dir, so the daemon runs in-cluster (no kubeconfig,
//! the service account bind-mounted at the fixed path) in the mount namespace that
//! `unshare -m --propagation slave` gives it.
//!
//! - the two files stay the same but for the paths (no root);
//! - the daemon gets the service account inside its own namespace only, and a network
//!   namespace mounted after it started reaches it; with unshare's default (private)
//!   propagation it does not, which is how the Go template failed every ADD; nothing is left
//!   mounted once the daemon is gone;
//! - every thick case runs through the template with no MUST failure;
//! - the same ADD through the private variant fails (the failure reproduced from outside).
//!
//! The root tests share the host's `/var/run/secrets/kubernetes.io/serviceaccount` (created if
//! missing, removed afterwards), so they run one at a time.

use multus_conformance::model::{self, Strength};
use multus_conformance::sys::{self, Netns};
use multus_conformance::thick::ThickRt;
use multus_conformance::{Outcome, Report, Runner, Target};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const GO_TEMPLATE: &str = "targets/go-multus-thick.yaml";
const RS_TEMPLATE: &str = "targets/multus-rs-in-cluster.yaml";
/// Where client-go (and multus-rs without `MULTUS_SERVICEACCOUNT_DIR`) reads the token and CA.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The same, through no symlink: `/proc/<pid>/root/var/run` would resolve `/var/run -> /run`
/// in this process's root, not the daemon's.
const SA_DIR_NO_SYMLINK: &str = "/run/secrets/kubernetes.io/serviceaccount";

fn template_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(template_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A target file without its comment lines.
fn body(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_multus_rs_template_is_the_go_template_with_its_two_paths() {
    let go = body(&read(GO_TEMPLATE))
        .replace("/opt/multus-go/bin/multus-shim", "\"{{bin}}/multus-shim\"")
        .replace("/opt/multus-go/bin/multus-daemon", "\"{{bin}}/multus-daemon\"")
        .replace("name: multus-go", "name: multus-rs-in-cluster");
    assert_eq!(body(&read(RS_TEMPLATE)), go, "{RS_TEMPLATE} drifted from {GO_TEMPLATE}");
    let target = Target::from_spec(&format!("thick:{}", template_path(RS_TEMPLATE).display())).unwrap();
    let spec = target.thick.expect("a thick target");
    assert!(spec.in_cluster);
    assert_eq!(
        spec.daemon[..4],
        ["unshare", "-m", "--propagation", "slave"],
        "mounts made later must reach the daemon"
    );
}

/// What a root test holds: the lock over the host's service-account path, and the directories
/// of that path it created (removed on drop, once the daemons are gone).
struct HostPaths {
    created: Vec<PathBuf>,
    _lock: MutexGuard<'static, ()>,
}

static HOST_PATHS: Mutex<()> = Mutex::new(());

impl HostPaths {
    /// `None` (the test recorded as skipped) without root, iproute2, the plugins or the binaries.
    fn take() -> Option<HostPaths> {
        let bin = multus_conformance::target::cargo_bin_dir();
        let missing = test_node::root_skip_reason()
            .or_else(|| (!bin.join("kube-mock").is_file()).then(|| format!("needs {}/kube-mock", bin.display())))
            .or_else(|| (!Path::new("/usr/bin/unshare").exists()).then(|| "needs unshare (util-linux)".to_string()));
        if !test_node::require(missing) {
            return None;
        }
        let lock = HOST_PATHS.lock().unwrap_or_else(|e| e.into_inner());
        let created =
            ["/var/run/secrets/kubernetes.io/serviceaccount", "/var/run/secrets/kubernetes.io", "/var/run/secrets"]
                .iter()
                .map(PathBuf::from)
                .filter(|p| !p.exists())
                .collect();
        Some(HostPaths { created, _lock: lock })
    }
}

impl Drop for HostPaths {
    fn drop(&mut self) {
        for d in &self.created {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The multus-rs template with another mount propagation for the daemon's namespace.
fn template_with(dir: &Path, propagation: &str) -> Target {
    let text = read(RS_TEMPLATE);
    let slave = "    - --propagation\n    - slave\n";
    assert!(text.contains(slave));
    let file = dir.join(format!("in-cluster-{propagation}.yaml"));
    std::fs::write(&file, text.replace(slave, &format!("    - --propagation\n    - {propagation}\n"))).unwrap();
    Target::from_spec(&format!("thick:{}", file.display())).unwrap()
}

/// Mounts on the service-account path in a process's mount table (`self`, or a pid).
fn sa_mounts(pid: &str) -> Vec<String> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    table
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.ends_with(SA_DIR_NO_SYMLINK)))
        .map(String::from)
        .collect()
}

/// Whether `path` is a mounted network namespace (nsfs), seen through the daemon's root.
fn is_netns(path: &str) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

#[test]
#[ignore = "needs root (unshare, mount, network namespaces), iproute2 and the workspace's binaries"]
fn the_service_account_stays_inside_and_later_network_namespaces_get_in() {
    let Some(host) = HostPaths::take() else { return };
    let host_token = Path::new(SA_DIR).join("token").exists();
    let dir = tempfile::tempdir().unwrap();
    for (propagation, later_netns_visible) in [("slave", true), ("private", false)] {
        let node = ThickRt::start(&template_with(dir.path(), propagation))
            .unwrap_or_else(|e| panic!("{propagation}: the daemon did not start in-cluster: {e}"));
        let pid = node.daemon_pid().expect("a daemon").to_string();
        let own_ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).unwrap();
        assert_ne!(own_ns(&pid), own_ns("self"), "the daemon has its own mount namespace");
        assert_eq!(sa_mounts(&pid).len(), 1, "the service account is mounted in the daemon's namespace");
        assert!(sa_mounts("self").is_empty(), "and not on the host");
        assert_eq!(
            Path::new(SA_DIR).join("token").exists(),
            host_token,
            "the host's service-account path is untouched"
        );
        let token = std::fs::read_to_string(format!("/proc/{pid}/root{SA_DIR_NO_SYMLINK}/token")).unwrap();
        assert_eq!(token, "conformance-token", "the daemon sees the API server's token at the fixed path");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> = environ.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        assert!(vars.iter().any(|v| v.starts_with("KUBERNETES_SERVICE_HOST=")));
        assert!(
            !vars.iter().any(|v| v.starts_with("KUBECONFIG=") || v.starts_with("MULTUS_SERVICEACCOUNT_DIR=")),
            "in-cluster as in a pod: {vars:?}"
        );
        // A pod's network namespace, made after the daemon started (as every case's is).
        let pod = Netns::create(&sys::unique("icn")).unwrap();
        assert!(is_netns(&pod.path()), "the host sees its own netns");
        let seen = is_netns(&format!("/proc/{pid}/root{}", pod.path()));
        assert_eq!(seen, later_netns_visible, "{propagation} propagation: daemon sees the later netns: {seen}");
        drop(pod);
        drop(node);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the daemon (and its mount namespace) is gone");
        assert!(sa_mounts("self").is_empty(), "nothing mounted on the host");
    }
    drop(host);
}

#[test]
#[ignore = "needs root (unshare, mount, network namespaces), iproute2 and the workspace's binaries"]
fn every_thick_case_meets_its_musts_through_the_in_cluster_template() {
    let Some(host) = HostPaths::take() else { return };
    let target = Target::from_spec(&format!("thick:{}", template_path(RS_TEMPLATE).display())).unwrap();
    let mut runner = Runner::new(target).expect("multus-rs starts through the in-cluster template");
    let cases = model::load_dir(&model::default_scenario_dir()).unwrap();
    let report = runner.run(&cases);
    drop(runner);
    eprintln!("{}", report.summary());
    let must: Vec<String> = report
        .cases
        .iter()
        .filter(|c| c.strength == Strength::Must && c.outcome.is_fail())
        .map(|c| format!("{}/{}: {}", c.group, c.id, c.outcome.reason()))
        .collect();
    assert!(must.is_empty(), "MUST failures through the in-cluster template:\n{}", must.join("\n"));
    // Not a run that skipped everything: the cases needing a pod netns made after the start ran.
    for id in ["thick-add-check-del", "thick-interface-in-netns"] {
        let case = report.cases.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no case {id}"));
        assert_eq!(case.outcome, Outcome::Pass, "{id}");
    }
    let counts = Report::counts(&report.cases);
    assert!(counts.pass >= 150, "only {} cases passed", counts.pass);
    assert!(sa_mounts("self").is_empty(), "nothing mounted on the host after the run");
    drop(host);
}

/// The Go template's failure before the fix, from outside: the daemon in a private mount
/// namespace never sees the pod's netns, so an ADD fails.
#[test]
#[ignore = "needs root (unshare, mount, network namespaces), iproute2 and the workspace's binaries"]
fn with_private_propagation_the_add_fails() {
    let Some(host) = HostPaths::take() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner::new(template_with(dir.path(), "private")).expect("the daemon starts");
    let cases: Vec<_> = model::load_dir(&model::default_scenario_dir())
        .unwrap()
        .into_iter()
        .filter(|c| c.id == "thick-add-check-del")
        .collect();
    assert_eq!(cases.len(), 1);
    let report = runner.run(&cases);
    drop(runner);
    let case = &report.cases[0];
    assert!(case.outcome.is_fail(), "the ADD should fail without the pod's netns: {case:#?}");
    assert!(case.outcome.reason().contains("is not a network namespace"), "{}", case.outcome.reason());
    eprintln!("private propagation: {}", case.outcome.reason());
    drop(host);
}
