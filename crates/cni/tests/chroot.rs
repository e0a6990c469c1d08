//! `RawExec` with a chroot directory (`chrootDir`, multus spec §8), against a root tree each
//! test builds in a temporary directory: `/bin/sh` (or a Debian plugin) plus the libraries
//! `ldd` names, and marker files that exist only inside.
//!
//! Needs root (`chroot(2)`); run with `--include-ignored` as root. A missing prerequisite
//! fails with the reason.

use cni::NetConfList;
use cni::exec::{ChrootError, Exec, ExecError, PluginRequest, RawExec, validate_chroot_dir};
use cni::runtime::{CniRuntime, RuntimeConf};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PLUGIN_DIR: &str = "/usr/lib/cni";

fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (chroot); run it as root");
}

/// `path` inside `root` (`root` + the absolute path).
fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Copy `binary` into `root` at the same path, with the shared libraries `ldd` lists.
fn install_with_libraries(root: &Path, binary: &Path) {
    assert!(
        binary.is_file(),
        "{} is missing: install it (Debian: containernetworking-plugins / dash)",
        binary.display()
    );
    let out = std::process::Command::new("ldd").arg(binary).output().expect("ldd is needed (Debian: libc-bin)");
    let listing = String::from_utf8_lossy(&out.stdout);
    let libraries = listing.lines().filter_map(|line| {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let target = line.split("=>").last()?.split_whitespace().next()?;
        target.starts_with('/').then(|| PathBuf::from(target))
    });
    for file in std::iter::once(binary.to_path_buf()).chain(libraries) {
        let dest = inside(root, &file);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copying {} into the root: {e}", file.display()));
    }
}

fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn add_env() -> Vec<(String, String)> {
    vec![("CNI_COMMAND".into(), "ADD".into()), ("CNI_IFNAME".into(), "eth0".into())]
}

/// A temporary tree: `<tmp>/bin` is the plugin directory of the daemon's view, `<tmp>/root` the
/// chroot directory, holding `/bin/sh` and `<tmp>/bin` at the same absolute path.
struct Tree {
    tmp: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        require_root();
        let tree = Self { tmp: tempfile::tempdir().unwrap() };
        install_with_libraries(&tree.root(), Path::new("/bin/sh"));
        std::fs::create_dir_all(tree.bin()).unwrap();
        std::fs::create_dir_all(inside(&tree.root(), &tree.bin())).unwrap();
        tree
    }
    fn bin(&self) -> PathBuf {
        self.tmp.path().join("bin")
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn exec(&self) -> RawExec {
        RawExec::with_timeout(Duration::from_secs(60)).with_chroot_dir(self.root())
    }
}

#[test]
#[ignore = "needs root"]
fn the_plugin_runs_inside_the_root_with_its_working_directory_there() {
    let tree = Tree::new();
    validate_chroot_dir(&tree.root()).expect("a usable chroot directory");
    std::fs::write(tree.root().join("marker"), "inside\n").unwrap();
    // The same plugin path in both views; which copy runs tells which view exec used.
    write_script(&tree.bin().join("where"), r#"echo '{"view":"daemon"}'"#);
    write_script(
        &inside(&tree.root(), &tree.bin().join("where")),
        r#"read -r marker < /marker
IFS= read -r input || true
printf '{"view":"chroot","marker":"%s","cwd":"%s","command":"%s","stdin":%s}' "$marker" "$(pwd -P)" "$CNI_COMMAND" "$input""#,
    );
    let exec = tree.exec();
    let path = exec.find_plugin("where", &[tree.bin()]).unwrap();
    assert_eq!(path, tree.bin().join("where"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(exec.run(PluginRequest::new(&path, add_env(), br#"{"a":1}"#))).unwrap();
    let out: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
    // Working directory "/" inside the root (the Go daemon leaves it outside: upstream #1308).
    assert_eq!(out, json!({"view":"chroot","marker":"inside","cwd":"/","command":"ADD","stdin":{"a":1}}));
    // The daemon itself never changed root.
    assert!(Path::new("/proc/self/root").read_link().unwrap() == Path::new("/"));
}

#[test]
#[ignore = "needs root"]
fn a_plugin_missing_inside_the_root_is_not_found_with_libcnis_words() {
    let tree = Tree::new();
    // Present in the daemon's view only.
    write_script(&tree.bin().join("daemon-only"), "echo '{}'");
    let exec = tree.exec();
    let dirs = [PathBuf::from("/nonexistent"), tree.bin()];
    let e = exec.find_plugin("daemon-only", &dirs).unwrap_err();
    assert!(matches!(e, ExecError::NotFound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(r#"failed to find plugin "daemon-only" in path [/nonexistent {}]"#, tree.bin().display())
    );
    // Through the runtime, as the daemon runs a delegate.
    let runtime = CniRuntime::new(dirs.to_vec(), tree.tmp.path().join("cache"), exec);
    let list =
        NetConfList::from_value(json!({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"daemon-only"}]})).unwrap();
    let conf = RuntimeConf {
        container_id: "c1".into(),
        netns: "/var/run/netns/none".into(),
        ifname: "eth0".into(),
        ..RuntimeConf::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = rt.block_on(runtime.add_network_list(&list, &conf)).unwrap_err();
    assert!(matches!(e.exec_error(), Some(ExecError::NotFound { .. })), "{e:?}");
    assert!(e.to_string().contains(r#"failed to find plugin "daemon-only" in path"#), "{e}");
}

#[test]
#[ignore = "needs root"]
fn a_plugin_whose_interpreter_is_missing_inside_the_root_fails_to_start() {
    let tree = Tree::new();
    let plugin = tree.bin().join("python-plugin");
    for view in [plugin.clone(), inside(&tree.root(), &plugin)] {
        std::fs::write(&view, "#!/usr/bin/python3\n").unwrap();
        std::fs::set_permissions(&view, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let exec = tree.exec();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let e = rt.block_on(exec.run(PluginRequest::new(&plugin, add_env(), b"{}"))).unwrap_err();
    assert!(matches!(&e, ExecError::Spawn { chroot: Some(_), .. }), "{e:?}");
    assert!(e.to_string().contains(&format!("(chroot {})", tree.root().display())), "{e}");
}

/// Debian's host-local, run as the Go daemon runs delegates with `"chrootDir": "/hostroot"`:
/// its leases land in the root's `/var/lib/cni/networks` (the node's IPAM state), never in the
/// daemon's, and DEL removes them there.
#[test]
#[ignore = "needs root and /usr/lib/cni/host-local (containernetworking-plugins)"]
fn host_local_keeps_its_leases_inside_the_root() {
    let tree = Tree::new();
    let host_local = Path::new(PLUGIN_DIR).join("host-local");
    install_with_libraries(&tree.root(), &host_local);
    let network = format!("chroot-test-{}", std::process::id());
    let config = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [{"type": "host-local", "ipam": {"type": "host-local", "subnet": "10.251.7.0/24"}}]
    });
    let list = NetConfList::from_value(config).unwrap();
    let runtime = CniRuntime::new(vec![PathBuf::from(PLUGIN_DIR)], tree.tmp.path().join("cache"), tree.exec());
    let conf = RuntimeConf {
        container_id: format!("ctr-{}", std::process::id()),
        netns: "/var/run/netns/unused".into(),
        ifname: "eth0".into(),
        ..RuntimeConf::default()
    };
    let leases_inside = inside(&tree.root(), &Path::new("/var/lib/cni/networks").join(&network));
    let leases_outside = Path::new("/var/lib/cni/networks").join(&network);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let result = rt.block_on(runtime.add_network_list(&list, &conf)).unwrap();
    let ip = result.ips[0].address.addr().to_string();
    assert_eq!(ip, "10.251.7.2");
    assert!(leases_inside.join(&ip).is_file(), "no lease at {}", leases_inside.join(&ip).display());
    assert!(!leases_outside.exists(), "host-local wrote into the daemon's view: {}", leases_outside.display());

    rt.block_on(runtime.del_network_list(&list, &conf)).unwrap();
    assert!(!leases_inside.join(&ip).exists(), "DEL left the lease behind");
}

#[test]
#[ignore = "needs root"]
fn validation_accepts_a_usable_root_and_refuses_an_unprivileged_one() {
    let tree = Tree::new();
    validate_chroot_dir(&tree.root()).unwrap();
    // Readable for anyone, so that only the missing privilege is left to report.
    for dir in [tree.tmp.path(), tree.root().as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let root = tree.root();
    let e = std::thread::spawn(move || {
        drop_privileges_of_this_thread();
        validate_chroot_dir(&root)
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert!(matches!(e, ChrootError::NotPermitted { .. }), "{e:?}");
    assert!(e.to_string().contains("needs CAP_SYS_CHROOT"), "{e}");
}

/// Become `nobody` in this thread only (the raw system call, not libc's process-wide
/// `setresuid`), dropping every capability; the thread's exit ends it.
#[allow(unsafe_code)]
fn drop_privileges_of_this_thread() {
    const NOBODY: libc::c_long = 65534;
    // SAFETY: a plain system call with integer arguments; it changes only this thread's
    // credentials, which no other code relies on (the thread ends right after the check).
    let rc = unsafe { libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY) };
    assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
}
