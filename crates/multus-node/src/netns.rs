//! Network-namespace paths as a runtime gives them: opened without blocking (a FIFO must not
//! hang the caller) and checked to be a namespace file (nsfs) before anyone enters them.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;

/// Why a path did not open as a network namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened or its filesystem checked (e.g. it is gone).
    #[error("failed to open netns {path:?}: {reason}")]
    Open {
        /// The netns path the runtime gave.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The path is not on nsfs: refused before `setns` would act on an arbitrary file.
    #[error("{path:?} is not a network namespace")]
    NotANamespace {
        /// The netns path the runtime gave.
        path: String,
    },
}

/// Whether a network namespace (a path a runtime gave) still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsPresence {
    /// The path opens as a network namespace.
    Present,
    /// The path does not exist.
    Absent,
    /// It could not be checked (permissions, not a namespace file…): treat as alive.
    Unknown,
}

/// Open `path` as a namespace file: non-blocking (a FIFO or device must not hang the caller)
/// and on nsfs (a regular file or directory is refused before `setns` sees it).
pub fn open(path: &str) -> Result<File, OpenError> {
    let failed = |e: &dyn std::fmt::Display| OpenError::Open { path: path.to_string(), reason: e.to_string() };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| failed(&e))?;
    let fs = nix::sys::statfs::fstatfs(&file).map_err(|e| failed(&e))?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(OpenError::NotANamespace { path: path.to_string() });
    }
    Ok(file)
}

/// Whether the namespace at `path` exists: a path that is gone is [`NetnsPresence::Absent`];
/// one that exists but does not open as a namespace is [`NetnsPresence::Unknown`].
pub fn presence(path: &str) -> NetnsPresence {
    match open(path) {
        Ok(_) => NetnsPresence::Present,
        Err(OpenError::Open { .. }) if !std::path::Path::new(path).exists() => NetnsPresence::Absent,
        Err(_) => NetnsPresence::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = open(fifo.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, OpenError::NotANamespace { .. }), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(matches!(open(file.to_str().unwrap()), Err(OpenError::NotANamespace { .. })));
        assert!(matches!(open("/nonexistent/netns"), Err(OpenError::Open { .. })));
        assert_eq!(presence("/nonexistent/netns"), NetnsPresence::Absent);
        assert_eq!(presence(file.to_str().unwrap()), NetnsPresence::Unknown);
    }

    #[test]
    fn the_own_namespace_file_is_accepted() {
        open("/proc/self/ns/net").unwrap();
        assert_eq!(presence("/proc/self/ns/net"), NetnsPresence::Present);
    }
}
