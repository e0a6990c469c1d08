//! `chrootDir` (multus spec §8): checking the directory once, up front, and finding plugins.
//!
//! Plugins are looked up in the daemon's view of the file system, as the Go daemon does, and the
//! path found is executed after `chroot(dir)` in the child, so a binary must exist at the same
//! path in both views. Where this differs from Go: a plugin counts as found only in a directory
//! where it is a regular file in **both** views (the path inside the root resolved as the kernel
//! will after `chroot`: symlinks and `..` stay inside it). A plugin missing inside the root is
//! therefore reported as libcni reports a missing plugin, `failed to find plugin "x" in path
//! [...]` ([`ExecError::NotFound`](super::ExecError::NotFound)), where Go fails later at exec
//! with a `fork/exec` error; and a daemon's rollback, which skips plugins that do not exist,
//! treats both cases alike.

use super::ExecError;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a `chrootDir` cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChrootError {
    /// Nothing exists at the path.
    #[error("chrootDir {}: no such directory", path.display())]
    NotFound {
        /// The configured `chrootDir`.
        path: PathBuf,
    },
    /// Something other than a directory is at the path.
    #[error("chrootDir {}: not a directory", path.display())]
    NotADirectory {
        /// The configured `chrootDir`.
        path: PathBuf,
    },
    /// The directory cannot be read by this process.
    #[error("chrootDir {}: cannot access it: {source}", path.display())]
    Inaccessible {
        /// The configured `chrootDir`.
        path: PathBuf,
        /// Why.
        source: Arc<io::Error>,
    },
    /// `chroot(2)` was refused: the process lacks `CAP_SYS_CHROOT`.
    #[error(
        "chrootDir {}: chroot is not permitted ({source}); running delegates there needs CAP_SYS_CHROOT (run the daemon as root, privileged)",
        path.display()
    )]
    NotPermitted {
        /// The configured `chrootDir`.
        path: PathBuf,
        /// The refusal, usually `EPERM`.
        source: Arc<io::Error>,
    },
    /// A trial `chroot` + `chdir("/")` failed for another reason.
    #[error("chrootDir {}: a trial chroot failed: {source}", path.display())]
    TrialFailed {
        /// The configured `chrootDir`.
        path: PathBuf,
        /// What `chroot` or `chdir` answered.
        source: Arc<io::Error>,
    },
}

/// Check that plugins can be run chrooted into `dir`: it exists, is a directory this process
/// can read, and `chroot(dir)` + `chdir("/")` succeed. The trial runs on a short-lived thread
/// with its own root and working directory (`unshare(CLONE_FS)`), so the process's stay as
/// they are; it needs the same privilege as the real thing (`CAP_SYS_CHROOT`).
///
/// Call it once at start-up: a bad `chrootDir` is then a clear error there instead of a
/// failure of every request.
pub fn validate_chroot_dir(dir: &Path) -> Result<(), ChrootError> {
    let path = || dir.to_path_buf();
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ChrootError::NotFound { path: path() },
        _ => ChrootError::Inaccessible { path: path(), source: Arc::new(e) },
    })?;
    if !meta.is_dir() {
        return Err(ChrootError::NotADirectory { path: path() });
    }
    std::fs::read_dir(dir).map_err(|e| ChrootError::Inaccessible { path: path(), source: Arc::new(e) })?;
    let root = CString::new(dir.as_os_str().as_bytes()).map_err(|_| ChrootError::Inaccessible {
        path: path(),
        source: Arc::new(io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte")),
    })?;
    trial_chroot(root).map_err(|e| classify_trial_failure(dir, e))
}

fn classify_trial_failure(dir: &Path, e: io::Error) -> ChrootError {
    let path = dir.to_path_buf();
    match e.raw_os_error() {
        Some(libc::EPERM) => ChrootError::NotPermitted { path, source: Arc::new(e) },
        Some(libc::EACCES | libc::ENOENT | libc::ENOTDIR) => ChrootError::Inaccessible { path, source: Arc::new(e) },
        _ => ChrootError::TrialFailed { path, source: Arc::new(e) },
    }
}

/// `chroot(root)` + `chdir("/")` on a throw-away thread that first stops sharing its root and
/// working directory with the process.
fn trial_chroot(root: CString) -> io::Result<()> {
    let trial = move || -> io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)?;
        nix::unistd::chroot(root.as_c_str())?;
        nix::unistd::chdir(c"/")?;
        Ok(())
    };
    std::thread::Builder::new()
        .name("cni-chroot-trial".to_string())
        .spawn(trial)?
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the trial thread panicked")))
}

/// [`super::find_in_path`] for a chrooted executor: the first `dir/plugin_type` that is a
/// regular file in the daemon's view and inside `root`.
pub(crate) fn find_in_path_and_root(plugin_type: &str, dirs: &[PathBuf], root: &Path) -> Result<PathBuf, ExecError> {
    super::find_in_path_where(plugin_type, dirs, |candidate| is_file_in_root(root, candidate))
}

/// Whether `path`, resolved as if `root` were `/`, is a regular file (symlinks followed).
fn is_file_in_root(root: &Path, path: &Path) -> bool {
    match resolve_in_root(root, path) {
        Ok(is_file) => is_file,
        // Kernels before 5.6 lack openat2: resolve in the daemon's view instead (an absolute
        // symlink inside the root then points outside it).
        Err(nix::errno::Errno::ENOSYS) => {
            std::fs::metadata(root.join(path.strip_prefix("/").unwrap_or(path))).is_ok_and(|m| m.is_file())
        }
        Err(_) => false,
    }
}

fn resolve_in_root(root: &Path, path: &Path) -> nix::Result<bool> {
    let root_fd = nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT);
    let found = nix::fcntl::openat2(root_fd, path, how);
    let _ = nix::unistd::close(root_fd);
    let fd = found?;
    let stat = nix::sys::stat::fstat(fd);
    let _ = nix::unistd::close(fd);
    Ok(SFlag::from_bits_truncate(stat?.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = validate_chroot_dir(&missing).unwrap_err();
        assert!(matches!(e, ChrootError::NotFound { .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("chrootDir {}: no such directory", missing.display()));

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = validate_chroot_dir(&file).unwrap_err();
        assert_eq!(e.to_string(), format!("chrootDir {}: not a directory", file.display()));
    }

    #[test]
    fn trial_failures_are_classified() {
        let dir = Path::new("/r");
        let e = classify_trial_failure(dir, io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, ChrootError::NotPermitted { .. }));
        assert!(e.to_string().contains("needs CAP_SYS_CHROOT"), "{e}");
        let e = classify_trial_failure(dir, io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(e, ChrootError::Inaccessible { .. }));
        let e = classify_trial_failure(dir, io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(matches!(e, ChrootError::TrialFailed { .. }));
    }

    #[test]
    fn lookup_resolves_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("opt/cni/bin")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/cni")).unwrap();
        std::fs::write(r.join("usr/lib/cni/real"), "").unwrap();
        // An absolute symlink inside the root points inside the root after chroot.
        std::os::unix::fs::symlink("/usr/lib/cni/real", r.join("opt/cni/bin/abs")).unwrap();
        std::os::unix::fs::symlink("../../../usr/lib/cni/real", r.join("opt/cni/bin/rel")).unwrap();
        // `..` cannot climb out of the root: /../../.. is still the root.
        std::os::unix::fs::symlink("/../../../../usr/lib/cni/real", r.join("opt/cni/bin/climb")).unwrap();
        std::fs::create_dir(r.join("opt/cni/bin/dir")).unwrap();
        for name in ["abs", "rel", "climb"] {
            assert!(is_file_in_root(r, &Path::new("/opt/cni/bin").join(name)), "{name}");
        }
        assert!(!is_file_in_root(r, Path::new("/opt/cni/bin/dir")));
        assert!(!is_file_in_root(r, Path::new("/opt/cni/bin/missing")));
        // The daemon's own /bin/sh is not inside this root.
        assert!(Path::new("/bin/sh").exists());
        assert!(!is_file_in_root(r, Path::new("/bin/sh")));
    }
}
