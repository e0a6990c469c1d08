//! cgroup hierarchies: finding this process's own cgroup, and creating, killing and removing
//! the invocation cgroups under it (blocking file-system calls: callers keep them off the
//! async runtime's workers where they can wait).

use super::kill::ContainedProcess;
use super::procfs::{self, PidFd, Reap};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The two cgroup flavours used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The unified hierarchy (`cgroup2`).
    V2,
    /// The v1 `freezer` hierarchy.
    V1Freezer,
}

/// One line of `/proc/self/mountinfo`, the fields used.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    /// The mounted directory of the file system (a cgroup path for cgroupfs).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
    fstype: String,
    /// Per-mount options (`rw`, `ro`, …).
    mount_opts: String,
    /// Per-superblock options (for cgroup v1: the controllers).
    super_opts: String,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\'
            && let Some(d) = octal
        {
            out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')));
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            Some(Mount {
                root: unescape(pre.get(3)?),
                point: PathBuf::from(unescape(pre.get(4)?)),
                mount_opts: pre.get(5)?.to_string(),
                fstype: post.next()?.to_string(),
                super_opts: post.nth(1).unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// This process's cgroup path in the hierarchy of `kind`, from `/proc/self/cgroup`.
fn own_path(kind: Kind, proc_cgroup: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match kind {
            Kind::V2 => id == "0" && controllers.is_empty(),
            Kind::V1Freezer => controllers.split(',').any(|c| c == "freezer"),
        };
        hit.then(|| path.to_string())
    })
}

/// `path` relative to the cgroup path `root` a mount shows, if it lies inside it.
fn inside(root: &str, path: &str) -> Option<String> {
    if root == "/" {
        return Some(path.trim_start_matches('/').to_string());
    }
    let rest = path.strip_prefix(root.trim_end_matches('/'))?;
    if rest.is_empty() {
        return Some(String::new());
    }
    rest.strip_prefix('/').map(str::to_string)
}

/// Why this process has no cgroup of a kind to put plugins under.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OwnDirError {
    /// `/proc/self/cgroup` names no cgroup of the kind.
    #[error("this process is in no {0} hierarchy")]
    NoHierarchy(&'static str),
    /// The own cgroup is above the root of this cgroup namespace.
    #[error("own {what} cgroup {own:?} lies outside this cgroup namespace")]
    OutsideNamespace { what: &'static str, own: String },
    /// No hierarchy of the kind is mounted.
    #[error("no {0} mount")]
    NoMount(&'static str),
    /// The own cgroup is in no writable mount of the kind.
    #[error("own {what} cgroup {own} is not inside a writable {what} mount")]
    NotWritable { what: &'static str, own: String },
    /// `/proc/self/mountinfo` or `/proc/self/cgroup` could not be read.
    #[error("{path}: {source}")]
    Read { path: &'static str, source: io::Error },
    /// The path found is not a directory.
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
}

/// The directory of this process's own cgroup of `kind`, from the texts of
/// `/proc/self/mountinfo` and `/proc/self/cgroup`; `Err` says why there is none.
fn own_dir_from(kind: Kind, mountinfo: &str, proc_cgroup: &str) -> Result<PathBuf, OwnDirError> {
    let what = match kind {
        Kind::V2 => "cgroup2",
        Kind::V1Freezer => "cgroup v1 freezer",
    };
    let own = own_path(kind, proc_cgroup).ok_or(OwnDirError::NoHierarchy(what))?;
    if own.contains("/..") || !own.starts_with('/') {
        return Err(OwnDirError::OutsideNamespace { what, own });
    }
    let mut mounts: Vec<Mount> = parse_mountinfo(mountinfo)
        .into_iter()
        .filter(|m| match kind {
            Kind::V2 => m.fstype == "cgroup2",
            Kind::V1Freezer => m.fstype == "cgroup" && m.super_opts.split(',').any(|o| o == "freezer"),
        })
        .collect();
    if mounts.is_empty() {
        return Err(OwnDirError::NoMount(what));
    }
    // The usual places first.
    mounts.sort_by_key(|m| !m.point.starts_with("/sys/fs/cgroup"));
    let writable = |m: &Mount| !m.mount_opts.split(',').any(|o| o == "ro");
    let found = mounts.iter().filter(|m| writable(m)).find_map(|m| Some(m.point.join(inside(&m.root, &own)?)));
    found.ok_or(OwnDirError::NotWritable { what, own })
}

/// The directory of this process's own cgroup of `kind`.
pub(crate) fn own_dir(kind: Kind) -> Result<PathBuf, OwnDirError> {
    let read = |path: &'static str| std::fs::read_to_string(path).map_err(|source| OwnDirError::Read { path, source });
    let dir = own_dir_from(kind, &read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?)?;
    if dir.is_dir() { Ok(dir) } else { Err(OwnDirError::NotADirectory(dir)) }
}

/// The cgroups of one scope: `<own cgroup>/<scope dir>/<invocation>`.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    pub(crate) kind: Kind,
    /// `cgroup.kill` exists (v2, Linux ≥ 5.14).
    pub(crate) kill_file: bool,
    /// Plugins are started inside their cgroup with `clone3(CLONE_INTO_CGROUP)` (v2, Linux ≥
    /// 5.7) instead of moving themselves in (see [`super::super::clone`] for why).
    pub(crate) clone_into: bool,
    /// `<own cgroup>/<scope dir>`.
    pub(crate) scope_dir: PathBuf,
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.write_all(text.as_bytes())
}

impl Cgroups {
    /// Create the scope directory under `own` and prove that a process can be moved into a
    /// cgroup there (a forked child joins a trial cgroup, which is then removed).
    pub(crate) fn open(kind: Kind, own: &Path, scope_dir_name: &str) -> io::Result<Self> {
        let scope_dir = own.join(scope_dir_name);
        match std::fs::create_dir(&scope_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let kill_file = kind == Kind::V2 && scope_dir.join("cgroup.kill").exists();
        let mut cgroups = Self { kind, kill_file, clone_into: false, scope_dir };
        if kind == Kind::V2 {
            match cgroups.probe(true) {
                Ok(()) => {
                    cgroups.clone_into = true;
                    return Ok(cgroups);
                }
                Err(e) => tracing::info!("cannot start processes inside a cgroup (clone3 CLONE_INTO_CGROUP): {e}"),
            }
        }
        if let Err(e) = cgroups.probe(false) {
            let _ = std::fs::remove_dir(&cgroups.scope_dir);
            return Err(e);
        }
        Ok(cgroups)
    }

    /// Start a trial child in a trial cgroup: created in it (`clone_into`), or moving itself.
    fn probe(&self, clone_into: bool) -> io::Result<()> {
        let dir = self.scope_dir.join(format!("probe-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let tried = if clone_into {
            open_dir(&dir).and_then(|fd| super::super::clone3::probe(&fd))
        } else {
            OpenOptions::new().write(true).open(dir.join("cgroup.procs")).and_then(|f| join_in_child(&f))
        };
        let removed = self.remove(&dir);
        tried.and(removed)
    }

    /// Create the invocation cgroup `name` and open what the child enters it through: the
    /// directory (for `clone3`) or its `cgroup.procs`. `AlreadyExists` when the name is taken.
    pub(crate) fn create(&self, name: &str) -> io::Result<(PathBuf, OwnedFd)> {
        let dir = self.scope_dir.join(name);
        if let Err(e) = std::fs::create_dir(&dir) {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
            // The scope directory was removed (an anonymous scope with nothing running).
            match std::fs::create_dir(&self.scope_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            std::fs::create_dir(&dir)?;
        }
        let entry = if self.clone_into {
            open_dir(&dir)
        } else {
            OpenOptions::new().write(true).open(dir.join("cgroup.procs")).map(OwnedFd::from)
        };
        match entry {
            Ok(fd) => Ok((dir, fd)),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// The processes in `dir` and in the cgroups below it.
    pub(crate) fn procs(dir: &Path) -> Vec<i32> {
        let mut out = Vec::new();
        let mut text = String::new();
        if File::open(dir.join("cgroup.procs")).and_then(|mut f| f.read_to_string(&mut text)).is_ok() {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
        for sub in subdirs(dir) {
            out.extend(Self::procs(&sub));
        }
        out
    }

    /// Whether a process is left in `dir` (or below).
    pub(crate) fn populated(&self, dir: &Path) -> bool {
        if self.kind == Kind::V2 {
            let mut text = String::new();
            if File::open(dir.join("cgroup.events")).and_then(|mut f| f.read_to_string(&mut text)).is_ok() {
                return text.lines().any(|l| l == "populated 1");
            }
        }
        !Self::procs(dir).is_empty()
    }

    /// SIGKILL what is in `dir` now, without waiting (v1: without freezing; a process forked
    /// meanwhile is caught by [`Cgroups::kill_all`]).
    pub(crate) fn signal(&self, dir: &Path) {
        if self.kill_file && write_file(&dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        for pid in Self::procs(dir) {
            procfs::kill_pid(pid, None);
        }
    }

    /// Kill everything in `dir` (and below) and wait until it is empty, at most until
    /// `deadline`. Zombies that are this process's children (it is their subreaper or pid 1)
    /// are reaped, except `spare` (the plugin itself, reaped by its owner). Returns the
    /// processes killed and those still there at the deadline.
    pub(crate) fn kill_all(
        &self,
        dir: &Path,
        deadline: Instant,
        spare: Option<i32>,
    ) -> (Vec<ContainedProcess>, Vec<ContainedProcess>) {
        let mut seen: HashMap<i32, (String, Option<PidFd>)> = HashMap::new();
        let mut order = Vec::new();
        let mut delay = Duration::from_micros(500);
        let mut survivors = Vec::new();
        loop {
            let pids = self.kill_round(dir, &mut seen, &mut order);
            reap(&mut seen, spare);
            if pids.is_empty() && !self.populated(dir) {
                break;
            }
            if Instant::now() >= deadline {
                survivors = pids.iter().map(|&pid| ContainedProcess { pid, comm: procfs::comm(pid) }).collect();
                break;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
        reap(&mut seen, spare);
        let killed = order.into_iter().map(|pid| ContainedProcess { comm: seen[&pid].0.clone(), pid }).collect();
        (killed, survivors)
    }

    /// One round: note the processes present, then kill them (v1: frozen first, so that none
    /// can fork while the list is killed).
    fn kill_round(
        &self,
        dir: &Path,
        seen: &mut HashMap<i32, (String, Option<PidFd>)>,
        order: &mut Vec<i32>,
    ) -> Vec<i32> {
        let frozen = self.kind == Kind::V1Freezer && self.freeze(dir);
        let pids = Self::procs(dir);
        for &pid in &pids {
            seen.entry(pid).or_insert_with(|| {
                order.push(pid);
                (procfs::comm(pid), PidFd::open(pid).ok())
            });
        }
        if self.kill_file {
            let _ = write_file(&dir.join("cgroup.kill"), "1");
        }
        for &pid in &pids {
            procfs::kill_pid(pid, seen.get(&pid).and_then(|(_, fd)| fd.as_ref()));
        }
        if frozen {
            let _ = write_file(&dir.join("freezer.state"), "THAWED");
        }
        pids
    }

    /// Freeze a v1 freezer cgroup and wait (briefly) until it is frozen.
    fn freeze(&self, dir: &Path) -> bool {
        if write_file(&dir.join("freezer.state"), "FROZEN").is_err() {
            return false;
        }
        let until = Instant::now() + Duration::from_millis(500);
        loop {
            let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            if state.trim() == "FROZEN" || Instant::now() > until {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Remove `dir` and the cgroups below it (deepest first).
    pub(crate) fn remove(&self, dir: &Path) -> io::Result<()> {
        for sub in subdirs(dir) {
            self.remove(&sub)?;
        }
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    /// The invocation cgroups in the scope directory.
    pub(crate) fn invocations(&self) -> Vec<PathBuf> {
        subdirs(&self.scope_dir)
    }
}

fn reap(seen: &mut HashMap<i32, (String, Option<PidFd>)>, spare: Option<i32>) {
    for (pid, (_, fd)) in seen.iter_mut() {
        if Some(*pid) == spare {
            continue;
        }
        if let Some(f) = fd
            && f.try_reap() != Reap::Alive
        {
            *fd = None;
        }
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    Ok(OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(dir)?.into())
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Fork a child that writes `0` (itself) into `procs` and exits: proof that plugins can join.
#[allow(unsafe_code)]
fn join_in_child(procs: &File) -> io::Result<()> {
    let fd = procs.as_raw_fd();
    // SAFETY: between fork and _exit the child only makes async-signal-safe system calls
    // (write, _exit) on data prepared before the fork; it allocates nothing and takes no lock.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => unsafe {
            let code = if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 { 0 } else { *libc::__errno_location() };
            libc::_exit(code.clamp(0, 255))
        },
        pid => {
            use nix::sys::wait::{WaitStatus, waitpid};
            match waitpid(nix::unistd::Pid::from_raw(pid), None).map_err(io::Error::from)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                WaitStatus::Exited(_, errno) => Err(io::Error::from_raw_os_error(errno)),
                other => Err(io::Error::other(format!("the trial child ended with {other:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_the_own_cgroup_in_a_hybrid_layout() {
        let cg = "6:freezer:/a/b\n4:memory:/x\n0::/\n";
        assert_eq!(own_dir_from(Kind::V2, HYBRID, cg).unwrap(), PathBuf::from("/sys/fs/cgroup/unified/"));
        assert_eq!(own_dir_from(Kind::V1Freezer, HYBRID, cg).unwrap(), PathBuf::from("/sys/fs/cgroup/freezer/a/b"));
    }

    #[test]
    fn finds_the_own_cgroup_in_a_pure_v2_container() {
        // A privileged container in its own cgroup namespace: /sys/fs/cgroup shows the
        // container's cgroup as its root, and /proc/self/cgroup says "/".
        let mi = "1 0 0:1 / / rw - overlay overlay rw\n2 1 0:2 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(own_dir_from(Kind::V2, mi, "0::/\n").unwrap(), PathBuf::from("/sys/fs/cgroup/"));
        // Without a namespace: the full path below the host's root.
        let cg = "0::/kubepods.slice/pod1.slice/cri-containerd-abc.scope\n";
        assert_eq!(
            own_dir_from(Kind::V2, mi, cg).unwrap(),
            PathBuf::from("/sys/fs/cgroup/kubepods.slice/pod1.slice/cri-containerd-abc.scope")
        );
        // A mount whose root is a sub-cgroup only covers what lies below it.
        let mi2 = "2 1 0:2 /kubepods.slice /mnt/cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_dir_from(Kind::V2, mi2, cg).unwrap(),
            PathBuf::from("/mnt/cg/pod1.slice/cri-containerd-abc.scope")
        );
        assert!(own_dir_from(Kind::V2, mi2, "0::/system.slice/x\n").is_err());
        assert!(own_dir_from(Kind::V2, mi2, "0::/kubepods.slicex\n").is_err());
    }

    #[test]
    fn refuses_what_cannot_be_used() {
        let ro = "2 1 0:2 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
        assert!(own_dir_from(Kind::V2, ro, "0::/\n").unwrap_err().to_string().contains("writable"));
        assert!(
            own_dir_from(Kind::V2, HYBRID, "6:freezer:/\n").unwrap_err().to_string().contains("no cgroup2 hierarchy")
        );
        assert!(own_dir_from(Kind::V2, "", "0::/\n").unwrap_err().to_string().contains("no cgroup2 mount"));
        assert!(own_dir_from(Kind::V2, HYBRID, "0::/../../x\n").unwrap_err().to_string().contains("outside"));
        assert!(own_dir_from(Kind::V1Freezer, HYBRID, "0::/\n").is_err());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
