//! `cargo xtask image`: static release binaries in a `FROM scratch` image, `multus-rs:dev`.
//!
//! The image is defined by the committed multi-stage `Dockerfile` at the repository root. Its
//! `build` stage compiles from source (BuildKit; amd64 and arm64); this command instead builds
//! the binaries on the host (reusing `target/`) and builds the Dockerfile's last stage alone,
//! with the same root file system in its context ([`final_stage`]).

use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::util::{Cmd, cargo_cmd, target_dir, workspace_root};

pub const DEFAULT_TAG: &str = "multus-rs:dev";
/// The profile the image (and the benchmark) build: small and fast to page in.
pub const DEFAULT_PROFILE: &str = "release-small";
/// The (only) target with a standard library installed here; crt-static makes it a static
/// glibc binary. An explicit `--target` keeps RUSTFLAGS away from build scripts and proc-macros.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// Static and position-dependent, like Go's default linux/amd64 binaries: a static PIE would
/// dirty megabytes of relocated pages in every process (the daemon's idle RSS drops from
/// ~12 MB to under 10 MB), and the shim starts faster.
pub const RUSTFLAGS: &str = "-C target-feature=+crt-static -C relocation-model=static -C strip=symbols";
/// Where the manifests expect the binaries inside the image (the Go image's directory).
pub const IMAGE_BIN_DIR: &str = "/usr/src/multus-cni/bin";
/// The binaries every image has (cargo binary names = file names in [`IMAGE_BIN_DIR`]);
/// `cert-approver` runs from the same image in its own Deployment (deployments/cert-approver.yml).
pub const BINARIES: [&str; 4] = ["multus-daemon", "multus-shim", "multus-install", "cert-approver"];
/// Built and shipped when the workspace has a binary of this name: the CNI plugin the Go
/// project installs for `auxiliaryCNIChainName` chains (`install_multus` copies it to the node).
pub const OPTIONAL_BINARIES: [&str; 1] = ["passthru"];
/// Names the Go manifests execute that are another binary here: `install_multus` is
/// `multus-install`, which behaves as Go's install_multus when run under that name. A relative
/// symlink keeps one copy of the bytes, and the process still sees `install_multus` as `argv[0]`.
pub const GO_NAME_LINKS: [(&str, &str); 1] = [("install_multus", "multus-install")];

/// What is at one path of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageEntry {
    /// A static binary (its cargo binary name).
    Binary(&'static str),
    /// A symlink to another file of [`IMAGE_BIN_DIR`].
    Link(&'static str),
}

/// Every executable path of the image, with what is there.
pub fn image_paths(with_passthru: bool) -> Vec<(String, ImageEntry)> {
    let optional: &[&'static str] = if with_passthru { &OPTIONAL_BINARIES } else { &[] };
    BINARIES
        .iter()
        .chain(optional)
        .map(|b| (format!("{IMAGE_BIN_DIR}/{b}"), ImageEntry::Binary(b)))
        .chain(GO_NAME_LINKS.iter().map(|(name, to)| (format!("{IMAGE_BIN_DIR}/{name}"), ImageEntry::Link(to))))
        .collect()
}

#[derive(clap::Args, Clone)]
pub struct ImageArgs {
    /// Image tag.
    #[arg(long, default_value = DEFAULT_TAG)]
    pub tag: String,
    /// Cargo profile for the binaries (`release-small`: opt-level s, fat LTO, one codegen unit).
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// Print the commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Directory of the statically linked binaries.
pub fn binary_dir(profile: &str) -> PathBuf {
    target_dir().join(TARGET).join(profile)
}

pub fn context_dir() -> PathBuf {
    target_dir().join("image-context")
}

/// `cargo build` of [`BINARIES`], static.
pub fn build_cmd(profile: &str) -> Cmd {
    build_cmd_with(profile, &[])
}

/// `cargo build` of [`BINARIES`] and the `extra` packages, static.
pub fn build_cmd_with(profile: &str, extra: &[String]) -> Cmd {
    let mut c = cargo_cmd().args(["build", "--profile", profile, "--target", TARGET]);
    for b in BINARIES.iter().copied().chain(extra.iter().map(String::as_str)) {
        c = c.args(["-p", b]);
    }
    c.env("RUSTFLAGS", RUSTFLAGS)
}

/// The workspace packages that provide [`OPTIONAL_BINARIES`] (package name, binary name).
pub fn optional_packages() -> Result<Vec<(String, &'static str)>> {
    let out = cargo_cmd().args(["metadata", "--no-deps", "--format-version", "1", "--offline"]).output()?;
    let meta: serde_json::Value = serde_json::from_str(&out).context("parsing `cargo metadata`")?;
    let mut found = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let Some(bin) = OPTIONAL_BINARIES.iter().find(|b| is_bin && target["name"] == **b) {
                found.push((pkg["name"].as_str().unwrap_or_default().to_string(), *bin));
            }
        }
    }
    Ok(found)
}

pub fn docker_build_cmd(tag: &str, context: &Path) -> Cmd {
    Cmd::new("docker").args(["build", "-t", tag]).arg(context.display().to_string())
}

/// The committed multi-stage Dockerfile.
pub fn dockerfile_path() -> PathBuf {
    workspace_root().join("Dockerfile")
}

/// How the image's last stage takes the root file system from the build stage.
pub const COPY_FROM_BUILD: &str = "COPY --from=build /rootfs/ /";
/// The same, from the build context that [`write_context`] lays out.
pub const COPY_FROM_CONTEXT: &str = "COPY rootfs/ /";

/// The Dockerfile's last stage, taking the root file system from the build context instead of
/// the `build` stage: what `cargo xtask image` builds around the host's binaries.
pub fn final_stage(dockerfile: &str) -> Result<String> {
    let lines: Vec<&str> = dockerfile.lines().collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .context("the Dockerfile has no FROM")?;
    let stage = &lines[last_from..];
    anyhow::ensure!(
        stage.iter().filter(|l| l.trim() == COPY_FROM_BUILD).count() == 1,
        "the Dockerfile's last stage must take its files with `{COPY_FROM_BUILD}`"
    );
    let mut out = String::from(
        "# Generated by `cargo xtask image` from the last stage of the repository's Dockerfile: the\n\
         # root file system comes from this context (binaries built on the host).\n",
    );
    for line in stage {
        out.push_str(if line.trim() == COPY_FROM_BUILD { COPY_FROM_CONTEXT } else { line });
        out.push('\n');
    }
    Ok(out)
}

/// [`final_stage`] of the committed Dockerfile.
pub fn dockerfile() -> Result<String> {
    let path = dockerfile_path();
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    final_stage(&text).with_context(|| format!("in {}", path.display()))
}

/// Lay out the build context: `Dockerfile` and `rootfs/` with `binaries` (name, source) and the
/// [`GO_NAME_LINKS`].
pub fn write_context(dir: &Path, binaries: &[(&str, PathBuf)]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    let bin = rootfs.join(IMAGE_BIN_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&bin)?;
    for (name, src) in binaries {
        let dst = bin.join(name);
        std::fs::copy(src, &dst).with_context(|| format!("copying {}", src.display()))?;
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
    }
    for (name, to) in GO_NAME_LINKS {
        std::os::unix::fs::symlink(to, bin.join(name))?;
    }
    std::fs::create_dir_all(rootfs.join("run"))?;
    std::fs::create_dir_all(rootfs.join("var"))?;
    std::os::unix::fs::symlink("../run", rootfs.join("var/run"))?;
    let tmp = rootfs.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    std::fs::write(dir.join("Dockerfile"), dockerfile()?)?;
    Ok(())
}

pub fn run(args: ImageArgs) -> Result<()> {
    let optional = optional_packages()?;
    let packages: Vec<String> = optional.iter().map(|(p, _)| p.clone()).collect();
    let build = build_cmd_with(&args.profile, &packages);
    let context = context_dir();
    let docker = docker_build_cmd(&args.tag, &context);
    if args.dry_run {
        println!("{build}");
        println!(
            "# write {}/Dockerfile (the last stage of {}) and rootfs/:",
            context.display(),
            dockerfile_path().display()
        );
        for (path, entry) in image_paths(!optional.is_empty()) {
            match entry {
                ImageEntry::Binary(b) => println!("#   {path}  ({b}, static)"),
                ImageEntry::Link(to) => println!("#   {path} -> {to}"),
            }
        }
        println!("{docker}");
        println!("docker image inspect -f '{{{{.Size}}}}' {}", args.tag);
        return Ok(());
    }
    eprintln!("xtask: {build}");
    build.run()?;
    let bin_dir = binary_dir(&args.profile);
    let mut binaries: Vec<(&str, PathBuf)> = BINARIES.iter().map(|b| (*b, bin_dir.join(b))).collect();
    // Shipped when built (a package providing it exists in the workspace).
    binaries.extend(optional.iter().map(|(_, b)| (*b, bin_dir.join(b))).filter(|(_, p)| p.exists()));
    for (name, path) in &binaries {
        let size = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.len();
        println!("{name}: {} ({:.1} MB)", path.display(), size as f64 / 1e6);
    }
    write_context(&context, &binaries)?;
    eprintln!("xtask: {docker}");
    docker.run()?;
    let size = Cmd::new("docker").args(["image", "inspect", "-f", "{{.Size}}", &args.tag]).output()?;
    let bytes: u64 = size.trim().parse().unwrap_or(0);
    println!("image {}: {:.1} MB", args.tag, bytes as f64 / 1e6);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::have;

    #[test]
    fn build_command_is_static_with_an_explicit_target() {
        let c = build_cmd_with("release", &["passthru".into()]);
        assert!(c.args.windows(2).any(|w| w == ["--target", TARGET]));
        for b in BINARIES.iter().chain(&["passthru"]) {
            assert!(c.args.windows(2).any(|w| w[0] == "-p" && w[1] == *b), "{b}");
        }
        assert!(c.env.iter().any(|(k, v)| k == "RUSTFLAGS" && v.contains("+crt-static")));
        assert!(!build_cmd("release").args.iter().any(|a| a == "passthru"));
    }

    /// `cargo metadata` answers, and what it finds is a binary this image knows.
    #[test]
    fn optional_packages_are_found_in_the_workspace() {
        for (pkg, bin) in optional_packages().unwrap() {
            assert!(!pkg.is_empty());
            assert!(OPTIONAL_BINARIES.contains(&bin));
        }
    }

    #[test]
    fn the_go_image_paths() {
        let paths: Vec<String> = image_paths(true).into_iter().map(|(p, _)| p).collect();
        for p in [
            "/usr/src/multus-cni/bin/multus-daemon",
            "/usr/src/multus-cni/bin/multus-shim",
            "/usr/src/multus-cni/bin/install_multus",
            "/usr/src/multus-cni/bin/passthru",
            "/usr/src/multus-cni/bin/multus-install",
            "/usr/src/multus-cni/bin/cert-approver",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p}");
        }
        assert!(!image_paths(false).iter().any(|(p, _)| p.ends_with("/passthru")));
        let d = dockerfile().unwrap();
        assert!(d.lines().any(|l| l == "FROM scratch"), "{d}");
        assert!(d.lines().any(|l| l == COPY_FROM_CONTEXT), "{d}");
        assert!(!d.contains("--from=build") && !d.contains("cargo build"), "{d}");
        assert!(d.contains("ENTRYPOINT [\"/usr/src/multus-cni/bin/multus-daemon\"]"));
    }

    #[test]
    fn final_stage_needs_the_copy_from_the_build_stage() {
        let two = "FROM x AS build\nRUN true\nFROM scratch\nCOPY --from=build /rootfs/ /\nCMD [\"a\"]\n";
        let last = final_stage(two).unwrap();
        assert!(last.ends_with("FROM scratch\nCOPY rootfs/ /\nCMD [\"a\"]\n"), "{last}");
        assert!(final_stage("FROM scratch\nCOPY a /\n").is_err());
        assert!(final_stage("RUN true\n").is_err());
    }

    /// The committed Dockerfile's instructions: continuation lines joined; comments, parser
    /// directives and blank lines dropped.
    fn instructions() -> Vec<String> {
        let text = std::fs::read_to_string(dockerfile_path()).unwrap();
        let mut out = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(head) => current.push_str(head),
                None => {
                    current.push_str(line);
                    out.push(std::mem::take(&mut current).trim().to_string());
                }
            }
        }
        assert!(current.is_empty(), "a continuation line ends the Dockerfile");
        out
    }

    /// The build stage's `RUN` that compiles, as the shell script docker runs (no --mount flags).
    fn build_script() -> String {
        let run = instructions().into_iter().find(|i| i.starts_with("RUN ") && i.contains("cargo build")).unwrap();
        let mut script = run.trim_start_matches("RUN ").trim_start();
        while let Some(rest) = script.strip_prefix("--mount=") {
            script = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r).trim_start();
        }
        script.to_string()
    }

    /// What the Dockerfile builds from source is what this module describes: two stages, the
    /// same static flags, binaries, paths and entry point.
    #[test]
    fn the_committed_dockerfile_describes_this_image() {
        let all = instructions();
        let froms: Vec<&String> = all.iter().filter(|i| i.starts_with("FROM ")).collect();
        assert_eq!(froms, ["FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS build", "FROM scratch"]);
        assert!(all.iter().any(|i| i.starts_with("ARG RUST_IMAGE=") && i.contains("rust:")), "{all:?}");
        assert!(all.iter().any(|i| i == "ARG ROOTFS=/rootfs") && all.iter().any(|i| i == COPY_FROM_BUILD));
        let script = build_script();
        assert!(script.contains(&format!("RUSTFLAGS=\"{RUSTFLAGS}\"")), "{script}");
        assert!(script.contains("cargo build --locked --profile \"$PROFILE\""), "{script}");
        for b in BINARIES.iter().chain(&OPTIONAL_BINARIES) {
            assert!(script.contains(&format!("-p {b}")), "{b} is not built: {script}");
        }
        let last = final_stage(&std::fs::read_to_string(dockerfile_path()).unwrap()).unwrap();
        assert!(last.contains(&format!("ENTRYPOINT [\"{IMAGE_BIN_DIR}/multus-daemon\"]")), "{last}");
        let ignored = std::fs::read_to_string(workspace_root().join(".dockerignore")).unwrap();
        assert!(ignored.lines().any(|l| l == "/target/") && ignored.lines().any(|l| l == "/.git/"));
    }

    /// Runs the build stage's script on this machine with a stand-in `cargo` (it records how it
    /// was called and writes placeholder binaries) and `dpkg` (an amd64 build machine): for
    /// each architecture, the root file system holds every path of [`image_paths`], and a
    /// cross build gets the cross linker and C compiler.
    #[test]
    fn the_build_stage_lays_out_the_image_for_amd64_and_arm64() {
        let dir = tempfile::tempdir().unwrap();
        let stubs = dir.path().join("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        let stub = |name: &str, body: &str| {
            let p = stubs.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        stub("dpkg", "echo amd64\n");
        stub(
            "cargo",
            r#"{ echo "ARGS $*"; env | grep -E '^(RUSTFLAGS|MULTUS_RS_|CARGO_TARGET_|CC_)' | sort; } >> "$CARGO_LOG"
target=; profile=; pkgs=
while [ $# -gt 0 ]; do
  case "$1" in --target) target=$2; shift ;; --profile) profile=$2; shift ;; -p) pkgs="$pkgs $2"; shift ;; esac
  shift
done
mkdir -p "target/$target/$profile"
for p in $pkgs; do echo "$p for $target" > "target/$target/$profile/$p"; done
"#,
        );
        let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap_or_default());
        let script = build_script();
        for (arch, target) in [("amd64", "x86_64-unknown-linux-gnu"), ("arm64", "aarch64-unknown-linux-gnu")] {
            let work = dir.path().join(arch);
            let (src, rootfs, log) = (work.join("src"), work.join("rootfs"), work.join("cargo.log"));
            std::fs::create_dir_all(&src).unwrap();
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .current_dir(&src)
                .env_clear()
                .env("PATH", &path)
                .env("TARGETARCH", arch)
                .env("PROFILE", "release-small")
                .env("GIT_COMMIT", "0123abcd")
                .env("BUILD_DATE", "2026-01-02T03:04:05Z")
                .env("ROOTFS", &rootfs)
                .env("CARGO_LOG", &log)
                .output()
                .unwrap();
            assert!(out.status.success(), "{arch}: {}", String::from_utf8_lossy(&out.stderr));
            for (path, entry) in image_paths(true) {
                let p = rootfs.join(path.trim_start_matches('/'));
                match entry {
                    ImageEntry::Binary(b) => {
                        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{b} for {target}\n"), "{path}");
                        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755, "{path}");
                    }
                    ImageEntry::Link(to) => assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from(to), "{path}"),
                }
            }
            assert_eq!(std::fs::read_link(rootfs.join("var/run")).unwrap(), PathBuf::from("../run"));
            assert_eq!(std::fs::metadata(rootfs.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
            let log = std::fs::read_to_string(&log).unwrap();
            assert!(log.contains(&format!("--target {target}")) && log.contains("--locked"), "{log}");
            assert!(log.contains(&format!("RUSTFLAGS={RUSTFLAGS}\n")), "{log}");
            assert!(log.contains("MULTUS_RS_GIT_COMMIT=0123abcd\n"), "{log}");
            assert!(log.contains("MULTUS_RS_BUILD_DATE=2026-01-02T03:04:05Z\n"), "{log}");
            let cross = log.contains("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc\n")
                && log.contains("CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc\n");
            assert_eq!(cross, arch == "arm64", "{arch}: {log}");
        }
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("TARGETARCH", "s390x")
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported TARGETARCH s390x"));
    }

    fn fake_context(dir: &Path, names: &[&'static str]) {
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let bins: Vec<(&str, PathBuf)> = names
            .iter()
            .map(|b| {
                let p = src.join(b);
                std::fs::write(&p, format!("binary {b}")).unwrap();
                (*b, p)
            })
            .collect();
        write_context(&dir.join("ctx"), &bins).unwrap();
    }

    #[test]
    fn context_layout() {
        let dir = tempfile::tempdir().unwrap();
        fake_context(dir.path(), &["multus-daemon", "multus-shim", "multus-install", "cert-approver", "passthru"]);
        let bin = dir.path().join("ctx/rootfs/usr/src/multus-cni/bin");
        for (path, entry) in image_paths(true) {
            let p = bin.join(Path::new(&path).file_name().unwrap());
            match entry {
                ImageEntry::Binary(b) => {
                    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755, "{b}");
                    assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("binary {b}"));
                }
                ImageEntry::Link(to) => {
                    assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from(to));
                    // Resolves inside the directory (no absolute or dangling target).
                    assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("binary {to}"));
                }
            }
        }
        let ctx = dir.path().join("ctx");
        assert_eq!(std::fs::read_link(ctx.join("rootfs/var/run")).unwrap(), PathBuf::from("../run"));
        assert!(ctx.join("Dockerfile").is_file());
        // Writing again replaces the old context; without passthru there is none.
        fake_context(dir.path(), &BINARIES);
        assert!(!bin.join("passthru").exists());
        assert!(bin.join("install_multus").exists());
    }

    /// Builds an image from the generated context (placeholder binaries): docker accepts the
    /// committed Dockerfile's last stage. Seconds, no network.
    #[test]
    #[ignore = "needs docker"]
    fn docker_accepts_the_context() {
        assert!(
            have("docker") && Cmd::new("docker").arg("info").run_quiet(),
            "this test needs a working docker (docker info failed)"
        );
        let dir = tempfile::tempdir().unwrap();
        fake_context(dir.path(), &BINARIES);
        let tag = format!("multus-rs-xtask-test:{}", std::process::id());
        let built = docker_build_cmd(&tag, &dir.path().join("ctx")).output();
        Cmd::new("docker").args(["rmi", "-f", &tag]).run_quiet();
        built.unwrap();
    }

    /// The real image (a static release build) answers at the Go paths.
    /// `cargo test -p xtask -- --ignored builds_the_real_image`.
    #[test]
    #[ignore = "needs docker and a static release build (minutes)"]
    fn builds_the_real_image() {
        assert!(
            have("docker") && Cmd::new("docker").arg("info").run_quiet(),
            "this test needs a working docker (docker info failed)"
        );
        let tag = format!("multus-rs-xtask-test:{}", std::process::id());
        let _cleanup = crate::util::defer(format!("remove image {tag}"), {
            let tag = tag.clone();
            move || {
                Cmd::new("docker").args(["rmi", "-f", &tag]).run_quiet();
            }
        });
        run(ImageArgs { tag: tag.clone(), profile: "release".into(), dry_run: false }).unwrap();
        let exec = |path: &str, args: &[&str], env: &[&str]| {
            let mut c = std::process::Command::new("docker");
            c.args(["run", "--rm"]);
            for e in env {
                c.args(["-e", e]);
            }
            let out = c.args(["--entrypoint", path, &tag]).args(args).output().unwrap();
            (
                out.status.code(),
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            )
        };
        let (code, out) = exec("/usr/src/multus-cni/bin/multus-daemon", &["-version"], &[]);
        assert!(code == Some(0) && out.starts_with("multus-daemon: version:"), "{code:?} {out}");
        let (code, out) = exec("/usr/src/multus-cni/bin/multus-shim", &["-version"], &[]);
        assert!(code == Some(0) && out.contains("multus-shim"), "{code:?} {out}");
        let (code, out) = exec("/usr/src/multus-cni/bin/cert-approver", &["-version"], &[]);
        assert!(code == Some(0) && out.starts_with("cert-approver: version:"), "{code:?} {out}");
        // install_multus without arguments: a usage error from the program, not "not found".
        let (code, out) = exec("/usr/src/multus-cni/bin/install_multus", &[], &[]);
        assert!(!matches!(code, Some(126 | 127)) && !out.is_empty(), "{code:?} {out}");
        if optional_packages().unwrap().iter().any(|(_, b)| *b == "passthru") {
            let (code, out) = exec("/usr/src/multus-cni/bin/passthru", &[], &["CNI_COMMAND=VERSION"]);
            assert!(code == Some(0) && out.contains("supportedVersions"), "{code:?} {out}");
        }
    }

    /// The committed Dockerfile from source with BuildKit (the Rust image and crates.io from the
    /// network; tens of minutes): the image answers `-version` with the commit passed in.
    /// `cargo test -p xtask -- --ignored builds_from_source_with_buildx`.
    #[test]
    #[ignore = "needs docker buildx, the Rust image and crates.io (tens of minutes)"]
    fn builds_from_source_with_buildx() {
        assert!(
            Cmd::new("docker").args(["buildx", "version"]).run_quiet(),
            "this test needs docker with the buildx plugin (docker buildx version failed)"
        );
        let tag = format!("multus-rs-xtask-source-test:{}", std::process::id());
        let _cleanup = crate::util::defer(format!("remove image {tag}"), {
            let tag = tag.clone();
            move || {
                Cmd::new("docker").args(["rmi", "-f", &tag]).run_quiet();
            }
        });
        let root = workspace_root().display().to_string();
        Cmd::new("docker")
            .args(["buildx", "build", "--load", "-t", &tag, "--build-arg", "PROFILE=release"])
            .args(["--build-arg", "GIT_COMMIT=0123456789abcdef", &root])
            .run()
            .unwrap();
        let out = Cmd::new("docker")
            .args(["run", "--rm", "--entrypoint", "/usr/src/multus-cni/bin/multus-shim", &tag, "-version"])
            .output()
            .unwrap();
        assert!(out.contains("commit:0123456789abcdef"), "{out}");
    }
}
