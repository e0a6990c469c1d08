//! `chrootDir` end to end (issue: drop-in on the upstream DaemonSet): the daemon runs every
//! delegate with its root changed to a tree this test builds, as the Go DaemonSet does with the
//! node's `/` at `/hostroot`. The tree holds copies of Debian's plugins and fake-cni with their
//! libraries, the pod's netns file, `/proc` and `/sys` (bind mounts, removed again), so:
//! - a delegate's files land inside the tree (fake-cni's call record, host-local's leases),
//!   never in the daemon's view;
//! - a real bridge + host-local ADD/DEL through the chroot leaves the lease in the tree's IPAM
//!   directory and removes it on DEL;
//! - a binary missing inside the tree gives libcni's "failed to find plugin" text.
//!
//! Needs root: #[ignore]d, run by CI with --include-ignored.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use test_node::*;

const UID: &str = "c4c4c4c4-0000-0000-0000-000000000001";

/// `path` inside `root` (`root` + the absolute path).
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Copy `binary` to `dest` inside `root`, with the shared libraries `ldd` lists at their paths.
fn install_with_libraries(root: &Path, binary: &Path, dest: &Path) {
    let out = Command::new("ldd").arg(binary).output().expect("ldd (Debian: libc-bin)");
    let listing = String::from_utf8_lossy(&out.stdout);
    let libraries: Vec<PathBuf> = listing
        .lines()
        .filter_map(|line| line.split("=>").last()?.split_whitespace().next().map(PathBuf::from))
        .filter(|p| p.is_absolute())
        .collect();
    for lib in libraries {
        let target = inside(root, &lib);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&lib, &target).unwrap_or_else(|e| panic!("copying {}: {e}", lib.display()));
    }
    let target = inside(root, dest);
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(binary, &target).unwrap_or_else(|e| panic!("copying {}: {e}", binary.display()));
}

/// Bind mounts made by the test, undone (lazily, so a busy one cannot stay) on drop.
#[derive(Default)]
struct Binds(Vec<PathBuf>);

impl Binds {
    fn bind(&mut self, source: &Path, target: &Path) {
        if source.is_dir() {
            std::fs::create_dir_all(target).unwrap();
        } else {
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, b"").unwrap();
        }
        let out = Command::new("mount").arg("--bind").arg(source).arg(target).output().expect("mount");
        assert!(out.status.success(), "mount --bind {}: {}", source.display(), String::from_utf8_lossy(&out.stderr));
        self.0.push(target.to_path_buf());
    }
}

impl Drop for Binds {
    fn drop(&mut self) {
        for target in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(target).output();
        }
    }
}

fn skip() -> Option<String> {
    root_skip_reason().or_else(|| {
        ["mount", "umount", "ldd"]
            .into_iter()
            .find(|tool| {
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("command -v {tool}"))
                    .output()
                    .map_or(true, |o| !o.status.success())
            })
            .map(|tool| format!("needs {tool}"))
    })
}

struct ChrootNode {
    thick: Node,
    root: PathBuf,
    binds: Binds,
}

impl ChrootNode {
    /// A daemon with `chrootDir` = `<tmp>/root`, plugins in `<tmp>/bin` in both views.
    fn start(primary: Value, seed: Vec<Value>, plugins: &[&str]) -> Self {
        let mut thick = Node::new(seed);
        let root = thick.path("root");
        let mut binds = Binds::default();
        binds.bind(Path::new("/proc"), &root.join("proc"));
        binds.bind(Path::new("/sys"), &root.join("sys"));
        std::fs::create_dir_all(root.join("var/run/netns")).unwrap();
        // The daemon looks plugins up in its own view; the chrooted child runs the same path
        // inside the root.
        thick.install_plugins(plugins, &["fake-cni"]);
        for plugin in plugins {
            install_with_libraries(&root, &Path::new("/usr/lib/cni").join(plugin), &thick.path("bin").join(plugin));
        }
        let fake = bin("fake-cni").expect("fake-cni binary");
        install_with_libraries(&root, &fake, &thick.path("bin").join("fake-cni"));
        thick.daemon_config["chrootDir"] = json!(root);
        thick.write_primary("10-primary.conflist", &primary);
        thick.start_daemon();
        Self { thick, root, binds }
    }

    /// A pod sandbox whose netns file is visible inside the root too.
    fn sandbox(&mut self, name: &str) -> PodSandbox {
        let sandbox = self.thick.sandbox("default", name, UID);
        let netns = PathBuf::from(sandbox.netns_path());
        self.binds.bind(&netns, &inside(&self.root, Path::new(&format!("/var/run/netns/{}", sandbox.netns))));
        sandbox
    }
}

impl Drop for ChrootNode {
    fn drop(&mut self) {
        // Mounts go before the temporary directory is removed.
        self.thick.stop_daemon();
        std::mem::take(&mut self.binds);
    }
}

#[test]
#[ignore = "needs root (chroot, mount --bind, network namespaces) and /usr/lib/cni"]
fn delegates_run_inside_the_chroot_and_real_leases_stay_there() {
    if !require(skip()) {
        return;
    }
    let bridge = unique("mcr");
    let primary = json!({"cniVersion": "1.0.0", "name": "chroot-net", "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.231.0.0/24"}]]}}
    ]});
    let marker = json!({"cniVersion": "1.0.0", "name": "marker", "type": "fake-cni",
        "fake": {"recordDir": "/recorded-inside", "subnet": "10.232.0.0/24"}});
    let seed = vec![nad("default", "marker", &marker), pod("default", "p", UID, Some("marker"))];
    let mut node = ChrootNode::start(primary, seed, &["bridge", "host-local"]);
    node.thick.cleanup.record_link(&bridge);
    let sandbox = node.sandbox("p");

    let add = node.thick.shim("ADD", &sandbox);
    assert_eq!(add.code, 0, "{add:?}\n{}", node.thick.daemon_log());
    // fake-cni recorded into /recorded-inside: that path exists only inside the root.
    assert!(node.root.join("recorded-inside/calls.jsonl").is_file(), "fake-cni did not run inside the root");
    assert!(!Path::new("/recorded-inside").exists(), "fake-cni wrote into the daemon's view");
    // host-local kept its lease in the root's /var/lib/cni/networks, not the node's.
    let lease_dir = node.root.join("var/lib/cni/networks/chroot-net");
    let leases: Vec<String> = std::fs::read_dir(&lease_dir)
        .unwrap_or_else(|e| panic!("no lease directory {}: {e}", lease_dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(!Path::new("/var/lib/cni/networks/chroot-net").exists(), "a lease in the daemon's view");
    assert!(node.thick.pod_addresses(&sandbox).iter().any(|(name, addrs)| name == "eth0" && !addrs.is_empty()));

    let del = node.thick.shim("DEL", &sandbox);
    assert_eq!(del.code, 0, "{del:?}");
    let left: Vec<_> = std::fs::read_dir(&lease_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "DEL left leases: {left:?}");
    assert!(!node.thick.path("cni").join(&sandbox.container_id).exists(), "delegate cache left");
}

#[test]
#[ignore = "needs root (chroot, mount --bind, network namespaces) and /usr/lib/cni"]
fn a_plugin_missing_inside_the_chroot_fails_with_libcnis_text_and_leaves_nothing() {
    if !require(skip()) {
        return;
    }
    let primary = json!({"cniVersion": "1.0.0", "name": "chroot-net", "plugins": [
        {"type": "fake-cni", "fake": {"recordDir": "/recorded-inside", "subnet": "10.233.0.0/24"}}]});
    // `bridge` is linked in the daemon's view but not copied into the root.
    let only_outside = json!({"cniVersion": "1.0.0", "name": "outside", "type": "bridge", "bridge": unique("mco")});
    let seed = vec![nad("default", "outside", &only_outside), pod("default", "p", UID, Some("outside"))];
    let mut node = ChrootNode::start(primary, seed, &[]);
    let _ = std::os::unix::fs::symlink("/usr/lib/cni/bridge", node.thick.path("bin/bridge"));
    let sandbox = node.sandbox("p");
    let add = node.thick.shim("ADD", &sandbox);
    assert_ne!(add.code, 0);
    let msg = add.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("failed to find plugin \"bridge\" in path"), "{add:?}");
    assert!(!node.thick.path("cni").join(&sandbox.container_id).exists(), "delegate cache left");
    // The cluster network ran (inside the root) and was rolled back.
    let calls: Vec<String> = fake_cni::read_calls(node.root.join("recorded-inside"))
        .into_iter()
        .map(|c| c.command)
        .filter(|c| c != "VERSION")
        .collect();
    assert_eq!(calls, vec!["ADD", "DEL"]);
}

#[test]
#[ignore = "needs root"]
fn an_unusable_chroot_dir_stops_the_daemon_at_start() {
    if !require(skip()) {
        return;
    }
    let mut thick = Node::new(vec![]);
    thick.daemon_config["chrootDir"] = json!(thick.path("no-such-root"));
    let config = thick.path("daemon-config.json");
    std::fs::write(&config, serde_json::to_vec(&thick.daemon_config).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_multus-daemon")).arg("-config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chrootDir") && stderr.contains("no-such-root"), "{stderr}");
}
