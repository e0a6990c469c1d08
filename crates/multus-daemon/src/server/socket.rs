//! Binding `<socketDir>/multus.sock`: the directory's mode, telling a stale socket from a
//! running daemon's, and removing the socket on exit only while it is still ours.
//!
//! Which daemon owns the socket is decided by a lock, not by how fast it answers: the daemon
//! holds an exclusive `flock` on `<socketDir>/multus.sock.lock` for as long as its socket is at
//! the path. The kernel drops the lock when the process dies however it dies (`kill -9`
//! included), so a starting daemon that can take the lock knows no multus-rs daemon serves the
//! socket, and one that cannot knows one does — however busy it is. (Deciding by `/healthz`
//! alone handed a saturated daemon's socket to a newcomer while the first kept running
//! without one.) A socket whose lock is free is then probed as before, for servers that take
//! no lock (the Go daemon, older multus-rs).

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixListener;

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon serves the socket: taking its path over would cut it off.
    #[error(
        "another daemon is serving on {path} ({evidence}); refusing to take its socket over \
         (stop it first, or use another socketDir)"
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
        /// How it was told: the owner lock is held, or the socket answers `GET /healthz`.
        evidence: String,
    },
    /// Connecting to the existing socket failed with neither "refused" nor "not found" (e.g.
    /// permission denied), so whether a daemon serves on it is unknown.
    #[error("cannot tell whether {path} is in use, not replacing it: {source}")]
    Unknown {
        /// The socket path.
        path: PathBuf,
        /// The probe's error.
        source: io::Error,
    },
    /// A directory sits where the socket goes; it is never removed.
    #[error("{path} is a directory, not a socket")]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// A file-system step on the socket directory or the socket failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step, worded to precede the path (`"cannot bind"`).
        what: &'static str,
        /// The directory or file it acted on.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> BindError + 'p {
    move |source| BindError::Io { what, path: path.to_path_buf(), source }
}

/// The bound `<dir>/multus.sock`. The socket file is removed when this is dropped (or when
/// [`serve`](super::serve) has drained), and only while it is still the one bound here: a
/// daemon that took the path over in the meantime keeps its socket.
pub struct SocketListener {
    pub(super) listener: Option<UnixListener>,
    path: PathBuf,
    /// `(st_dev, st_ino)` of the socket file bound here.
    identity: (u64, u64),
    /// The owner lock (module docs), released when the socket is removed. `None` when it could
    /// not be taken (see [`bind_socket`]).
    owner: std::sync::Mutex<Option<nix::fcntl::Flock<std::fs::File>>>,
}

impl SocketListener {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file at the socket's path is still the socket bound here.
    pub fn is_ours(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.identity)
    }

    /// Remove the socket file if it is still ours; true if it was removed. The owner lock goes
    /// with it either way: a daemon draining its last requests no longer owns the path.
    pub fn remove_if_ours(&self) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let _lock = lock_dir(dir);
        let removed = self.is_ours() && std::fs::remove_file(&self.path).is_ok();
        self.owner.lock().unwrap_or_else(|p| p.into_inner()).take();
        removed
    }

    /// Whether this daemon holds the owner lock (module docs).
    pub fn holds_owner_lock(&self) -> bool {
        self.owner.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl Drop for SocketListener {
    fn drop(&mut self) {
        self.remove_if_ours();
    }
}

/// An exclusive `flock` on the socket directory, so that two daemons starting (or one
/// starting while another exits) check and replace the socket one at a time. `None` when the
/// directory cannot be locked (the checks still run, without that guarantee).
fn lock_dir(dir: &Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::File::open(dir).ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
}

/// `<dir>/multus.sock.lock`: held by the daemon whose socket is at `<dir>/multus.sock`.
pub fn owner_lock_path(dir: &Path) -> PathBuf {
    dir.join(format!("{}.lock", multus_api::SOCKET_FILE))
}

/// The owner lock, as a starting daemon finds it.
enum OwnerLock {
    /// Taken: no other multus-rs daemon owns the socket.
    Taken(nix::fcntl::Flock<std::fs::File>),
    /// Another live process holds it.
    HeldElsewhere,
    /// The lock file cannot be opened or locked (a read-only directory, a file system without
    /// `flock`): decide by probing alone, as before.
    Unavailable(String),
}

fn take_owner_lock(dir: &Path) -> OwnerLock {
    use std::os::unix::fs::OpenOptionsExt;
    let path = owner_lock_path(dir);
    let file = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path) {
        Ok(f) => f,
        Err(e) => return OwnerLock::Unavailable(format!("{}: {e}", path.display())),
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => OwnerLock::Taken(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => OwnerLock::HeldElsewhere,
        Err((_, e)) => OwnerLock::Unavailable(format!("{}: {e}", path.display())),
    }
}

/// Bind `<dir>/multus.sock` with mode 0600.
///
/// - The directory is created with mode 0700 when missing. An existing directory keeps its
///   permissions (the Go daemon re-creates it 0700, which breaks a directory shared on
///   purpose); the socket's own 0600 is what keeps other users out.
/// - A socket whose owner lock another process holds (module docs), or whose server answers
///   `GET /healthz`, belongs to a running daemon: binding fails with [`BindError::InUse`]
///   instead of stealing its path (the Go daemon unlinks it, and the first daemon's exit then
///   deletes the second one's socket). A socket whose lock is free and which refuses
///   connections is stale and replaced, and so is one that accepts but does not answer
///   within [`SILENT_SOCKET_PATIENCE`].
/// - The socket is bound under a temporary name, made 0600, and renamed into place, so it is
///   never reachable with looser permissions and the replacement is atomic.
/// - Unlike the Go daemon, nothing else in the directory is removed, so a mis-set
///   `socketDir` cannot wipe unrelated files.
///
/// Must be called within a tokio runtime. Returns the listener and the socket's path.
pub fn bind_socket(dir: &Path) -> Result<(SocketListener, PathBuf), BindError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(BindError::Io {
                what: "not a directory:",
                path: dir.to_path_buf(),
                source: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err("cannot create", dir))?;
            // The umask may have narrowed the mode; make it exactly 0700.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("cannot set the mode of", dir))?;
        }
        Err(e) => return Err(io_err("cannot read", dir)(e)),
    }
    let _lock = lock_dir(dir);
    let path = dir.join(multus_api::SOCKET_FILE);
    let owner = take_owner_lock(dir);
    let held_elsewhere = matches!(owner, OwnerLock::HeldElsewhere);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if held_elsewhere {
                // Its socket was removed from under it (it removes the lock with its socket):
                // it serves nobody; take the path, without the lock it still holds.
                tracing::warn!(
                    "{} is held by a daemon whose socket is gone; binding {} without the owner lock",
                    owner_lock_path(dir).display(),
                    path.display()
                );
            }
        }
        Err(e) => return Err(io_err("cannot read", &path)(e)),
        Ok(m) if m.is_dir() => return Err(BindError::NotASocket { path }),
        Ok(m) if m.file_type().is_socket() && held_elsewhere => {
            let evidence = format!("it holds {}", owner_lock_path(dir).display());
            return Err(BindError::InUse { path, evidence });
        }
        Ok(m) if m.file_type().is_socket() => check_existing_socket(&path, SILENT_SOCKET_PATIENCE)?,
        Ok(_) => tracing::warn!("replacing {}, which is not a socket", path.display()),
    }
    let owner = match owner {
        OwnerLock::Taken(lock) => Some(lock),
        OwnerLock::HeldElsewhere => None,
        OwnerLock::Unavailable(why) => {
            tracing::warn!(
                "cannot take the socket's owner lock ({why}); a busy daemon may lose its socket to a newcomer"
            );
            None
        }
    };
    let temp = dir.join(format!(".msock-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let bound = (|| {
        let listener = UnixListener::bind(&temp).map_err(io_err("cannot bind", &temp))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err("cannot set the mode of", &temp))?;
        let meta = std::fs::symlink_metadata(&temp).map_err(io_err("cannot read", &temp))?;
        std::fs::rename(&temp, &path).map_err(io_err("cannot rename the new socket to", &path))?;
        Ok::<_, BindError>((listener, (meta.dev(), meta.ino())))
    })();
    let (listener, identity) = bound.inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    Ok((
        SocketListener { listener: Some(listener), path: path.clone(), identity, owner: std::sync::Mutex::new(owner) },
        path,
    ))
}

/// How long a socket that accepts connections but never answers HTTP is given before it is
/// taken to be stale. Right after a daemon is killed, `connect` to its socket can still succeed
/// for a moment (seen 5 times in ~950 `kill -9` + restart cycles of the soak), and a daemon that
/// refused to start then would cost the node a CrashLoopBackOff delay.
pub const SILENT_SOCKET_PATIENCE: Duration = Duration::from_secs(3);

/// What an existing socket file turned out to be.
#[derive(Debug)]
enum SocketProbe {
    /// Nothing accepts on it: left behind by a daemon that is gone.
    Stale,
    /// Something answered a request: a running daemon (or some other live server).
    Answers,
    /// A connection was accepted but no answer came (reset, EOF or timeout).
    Silent(String),
}

/// Connect to `path` and ask `GET /healthz`, for at most `timeout`.
fn probe_socket(path: &Path, timeout: Duration) -> Result<SocketProbe, io::Error> {
    use multus_api::client::{ClientError, request};
    match request(path, "GET", multus_api::path::HEALTHZ, b"", Some(timeout)) {
        // Any HTTP answer, whatever its status, means a live server.
        Ok(_) | Err(ClientError::Malformed(_)) => Ok(SocketProbe::Answers),
        Err(ClientError::Connect { source, .. })
            if matches!(source.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound) =>
        {
            Ok(SocketProbe::Stale)
        }
        Err(ClientError::Connect { source, .. }) => Err(source),
        Err(e @ (ClientError::TimedOut { .. } | ClientError::Io(_))) => Ok(SocketProbe::Silent(e.to_string())),
    }
}

/// Decide whether the existing socket at `path` may be replaced: a socket that refuses
/// connections may; one whose server answers HTTP may not ([`BindError::InUse`]); one that
/// accepts but stays silent is probed again until `patience` has passed, then replaced with a
/// warning (no daemon that cannot answer `/healthz` for that long is serving anyone).
fn check_existing_socket(path: &Path, patience: Duration) -> Result<(), BindError> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let probe = probe_socket(path, left.clamp(Duration::from_millis(100), Duration::from_secs(1)))
            .map_err(|source| BindError::Unknown { path: path.to_path_buf(), source })?;
        match probe {
            SocketProbe::Stale => {
                tracing::info!("replacing the stale socket {} (nothing accepts on it)", path.display());
                return Ok(());
            }
            SocketProbe::Answers => {
                let evidence = format!("it answers GET {}", multus_api::path::HEALTHZ);
                return Err(BindError::InUse { path: path.to_path_buf(), evidence });
            }
            SocketProbe::Silent(why) if std::time::Instant::now() >= deadline => {
                tracing::warn!(
                    "replacing {}: it accepts connections but nothing answered GET {} within {patience:?} (last: {why})",
                    path.display(),
                    multus_api::path::HEALTHZ
                );
                return Ok(());
            }
            SocketProbe::Silent(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
