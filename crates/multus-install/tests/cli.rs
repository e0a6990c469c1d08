//! Both command lines of the binary: its own subcommands, and the Go init container's
//! `install_multus` (selected by argv[0]), run as a DaemonSet runs them.

use assert_cmd::Command;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const FLAG_DEFAULTS: &str = "  -d, --dest-dir string   destination directory (default \"/host/opt/cni/bin\")
  -h, --help              show help message and quit
  -t, --type string       specify installer type (thick/thin)
";

/// An image-like directory: this binary (copied, as `multus-install`), `install_multus`
/// pointing at it, and stand-ins for the binaries to install; plus an empty destination.
struct Image {
    dir: tempfile::TempDir,
}

impl Image {
    fn new(link: bool) -> Self {
        let image = Self { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(image.bin()).unwrap();
        std::fs::create_dir_all(image.dest()).unwrap();
        let real = image.bin().join("multus-install");
        std::fs::copy(assert_cmd::cargo::cargo_bin("multus-install"), &real).unwrap();
        let go_name = image.bin().join("install_multus");
        if link {
            std::os::unix::fs::symlink("multus-install", &go_name).unwrap();
        } else {
            std::fs::copy(&real, &go_name).unwrap();
        }
        for (name, content) in [("multus-shim", "#!/bin/sh\necho shim\n"), ("passthru", "#!/bin/sh\necho passthru\n")] {
            std::fs::write(image.bin().join(name), content).unwrap();
            std::fs::set_permissions(image.bin().join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        image
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("usr/src/multus-cni/bin")
    }
    fn dest(&self) -> PathBuf {
        self.dir.path().join("host/opt/cni/bin")
    }
    fn install_multus(&self) -> Command {
        Command::new(self.bin().join("install_multus"))
    }
    fn installed(&self) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(self.dest()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }
}

/// `assert()` that retries a start failing with "text file busy": another test thread may fork
/// while this test still has a freshly copied binary open for writing, and the child keeps that
/// descriptor until it execs (the classic ETXTBSY race of multi-threaded test binaries).
trait AssertRetrying {
    fn assert_retrying(&mut self) -> assert_cmd::assert::Assert;
}

impl AssertRetrying for Command {
    fn assert_retrying(&mut self) -> assert_cmd::assert::Assert {
        for _ in 0..100 {
            match self.output() {
                Ok(output) => return assert_cmd::assert::Assert::new(output),
                Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => panic!("cannot start {self:?}: {e}"),
            }
        }
        panic!("{self:?} stayed busy (ETXTBSY)");
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn go_init_container_command_line_installs_shim_and_passthru() {
    for link in [false, true] {
        let image = Image::new(link);
        let dest = image.dest();
        // The Go manifest's init container: `install_multus -d /host/opt/cni/bin -t thick`.
        image
            .install_multus()
            .args(["-d", dest.to_str().unwrap(), "-t", "thick"])
            .assert_retrying()
            .success()
            .stderr("")
            .stdout(format!(
                "multus multus-shim copy succeeded!\npassthru cni {} copy succeeded!\n",
                image.bin().join("passthru").display()
            ));
        assert_eq!(image.installed(), ["multus-shim", "passthru"], "link={link}");
        assert_eq!(std::fs::read_to_string(dest.join("passthru")).unwrap(), "#!/bin/sh\necho passthru\n");
        assert_eq!(mode(&dest.join("multus-shim")), 0o755);
    }
}

#[test]
fn go_command_line_spellings() {
    let image = Image::new(true);
    let dest = image.dest();
    let dest = dest.to_str().unwrap();
    let long_equals = [String::from("--type=thick"), format!("--dest-dir={dest}")];
    let short_attached = [String::from("-tthick"), format!("-d={dest}")];
    for args in [
        vec!["--type", "thick", "--dest-dir", dest],
        long_equals.iter().map(String::as_str).collect(),
        short_attached.iter().map(String::as_str).collect(),
        vec!["-type", "thick", "-dest-dir", dest],
    ] {
        std::fs::remove_dir_all(image.dest()).unwrap();
        std::fs::create_dir(image.dest()).unwrap();
        image.install_multus().args(&args).assert_retrying().success();
        assert_eq!(image.installed(), ["multus-shim", "passthru"], "{args:?}");
    }
}

#[test]
fn go_command_line_refusals() {
    let image = Image::new(true);
    image
        .install_multus()
        .args(["-t", "thicker"])
        .assert_retrying()
        .code(1)
        .stdout("")
        .stderr("--type is missing or --type has invalid value\n");
    image.install_multus().assert_retrying().code(1).stderr("--type is missing or --type has invalid value\n");
    image.install_multus().arg("-h").assert_retrying().code(1).stdout("").stderr(FLAG_DEFAULTS);
    let argv0 = image.bin().join("install_multus");
    image
        .install_multus()
        .args(["--dest", "/x"])
        .assert_retrying()
        .code(2)
        .stderr(format!("unknown flag: --dest\nUsage of {}:\n{FLAG_DEFAULTS}", argv0.display()));
    // A missing destination: nothing is half-done, exit 1.
    image
        .install_multus()
        .args(["-t", "thick", "-d", "/nonexistent/dir"])
        .assert_retrying()
        .code(1)
        .stderr(predicate::str::starts_with("failed to copy file multus-shim: "));
    assert!(image.installed().is_empty());
}

#[test]
fn own_subcommands_keep_working() {
    let image = Image::new(true);
    let dest = image.dest();
    Command::new(image.bin().join("multus-install"))
        .args(["install", "--dest", dest.to_str().unwrap()])
        .assert_retrying()
        .success()
        .stdout(format!("installed {}\n", dest.join("multus-shim").display()));
    assert_eq!(image.installed(), ["multus-shim"]);
    Command::new(image.bin().join("multus-install"))
        .args(["install", "-d", dest.to_str().unwrap(), "--binary", "multus-shim", "--binary", "passthru"])
        .assert_retrying()
        .success();
    assert_eq!(image.installed(), ["multus-shim", "passthru"]);
    let socket = image.dir.path().join("no-daemon.sock");
    Command::new(image.bin().join("multus-install"))
        .args(["probe", "--socket", socket.to_str().unwrap(), "--timeout-ms", "500"])
        .assert_retrying()
        .code(1)
        .stderr(predicate::str::starts_with("multus-install probe: /readyz: "));
}
