//! Containing everything a plugin invocation starts, so that it can be killed as a whole.
//!
//! A plugin may fork: Debian's `bridge` execs its IPAM plugin (`host-local`), other plugins
//! start helpers, some double-fork or call `setsid`. None of these may outlive the invocation:
//! an IPAM call finishing after the runtime's DEL allocates a lease nothing frees. So every
//! invocation gets a container of its own, the plugin joins it between `fork` and `exec`
//! (before it can start anything), and the container is emptied when the invocation ends:
//! after a timeout or a cancellation (the whole container is killed), and after the plugin
//! exited (whatever it left running is killed, with a warning naming it).
//!
//! The mechanisms, and what each guarantees: [`Containment`].
//!
//! In every mode the plugin also keeps its own process group and `PR_SET_PDEATHSIG(SIGKILL)`
//! (see `child.rs`): a killed daemon takes its direct children with it, and the cgroup
//! catches everything they started, which the next daemon instance kills through
//! [`reap_leftovers`](super::RawExec::reap_leftovers) before it serves.
//!
//! # Scopes
//!
//! An executor works in one scope ([`RawExec::with_scope`](super::RawExec::with_scope)); a
//! daemon names it after its socket, so that parallel daemons (or parallel tests) on one
//! machine never touch each other's plugins. Executors without a scope use one private to the
//! process (`multus-delegates.pid<pid>.<start time>`); what a process that died left in its
//! private scope is reaped by the next process that opens one. A scope's directory is removed
//! whenever nothing runs in it.

mod cgroup;
pub(crate) mod procfs;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The environment variable that tags every process of an invocation when no cgroup can be
/// used ([`Containment::ProcessGroup`]): `<scope dir>/<invocation id>`.
pub const INVOCATION_ENV: &str = "MULTUS_RS_INVOCATION";

/// Prefix of a named scope's directory (`multus-delegates-<scope>`).
const SCOPE_DIR_PREFIX: &str = "multus-delegates-";
/// Prefix of a process's private scope directory (`multus-delegates.pid<pid>.<start time>`).
const PRIVATE_PREFIX: &str = "multus-delegates.pid";

/// How a plugin invocation's processes are held together.
///
/// # Mechanisms, best first, and what each guarantees
///
/// The mechanism is chosen once per scope, at first use, and logged:
///
/// 1. **cgroup v2** ([`Containment::CgroupV2`]): `<own cgroup>/multus-delegates-<scope>/<id>`,
///    a child of the daemon's *own* cgroup (found from the `0::` line of `/proc/self/cgroup`
///    and the `cgroup2` mount in `/proc/self/mountinfo`, `/sys/fs/cgroup` or
///    `/sys/fs/cgroup/unified`), so delegates stay accounted to the daemon's pod; no
///    controller is enabled anywhere. The child writes `0` to the cgroup's `cgroup.procs`
///    (opened before `fork`) before `exec`. **Guarantee:** every process the plugin starts,
///    by any means (`fork`, `setsid`, double fork, daemonising), is in the cgroup — an
///    unprivileged process cannot leave a cgroup — and is killed with one write to
///    `cgroup.kill` (Linux ≥ 5.14, atomic even against a fork bomb; older kernels: every
///    listed pid is SIGKILLed, repeated until `cgroup.events` says `populated 0`). The only
///    way out is a process with the privilege to move itself into another cgroup.
/// 2. **cgroup v1 freezer** ([`Containment::CgroupV1Freezer`]), where v2 is unusable: the same
///    layout in the daemon's own `freezer` cgroup. A kill freezes the cgroup (nothing in it
///    can fork any more), SIGKILLs every pid in `cgroup.procs`, thaws it, and repeats until
///    the cgroup is empty. **Guarantee:** as for v2 (a process cannot leave a v1 cgroup
///    without privilege either); a kill takes a few more system calls.
/// 3. **process group** ([`Containment::ProcessGroup`]), when no cgroup hierarchy is writable
///    (an unprivileged daemon): the plugin leads its own process group; the daemon becomes a
///    child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphaned descendants are re-parented to
///    it instead of to init and stay in its process tree; each plugin's environment carries
///    [`INVOCATION_ENV`]` = <scope dir>/<id>`. At a kill, the daemon's process tree is walked
///    (`/proc/<pid>/task/*/children`) and a process belongs to the invocation when its
///    parent chain leads to the plugin, or it carries the invocation's tag, or it is still
///    in the plugin's process group. **Guarantee (best effort):** the plugin and everything
///    it starts is found, unless a descendant *both* leaves the process group (`setsid`) *and*
///    drops the tag from its environment (`env -i`) *and* is orphaned; such a process is
///    left running. A daemon killed with `kill -9` loses the subreaper: leftovers are
///    re-parented to init and found by [`reap_leftovers`](super::RawExec::reap_leftovers)
///    through their tag only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Containment {
    /// A cgroup v2 per invocation, killed with `cgroup.kill`.
    CgroupV2,
    /// A cgroup in the v1 freezer hierarchy per invocation, frozen and killed.
    CgroupV1Freezer,
    /// Process group, child subreaper and a `/proc` walk: best effort.
    ProcessGroup,
}

impl Containment {
    fn rank(self) -> u8 {
        match self {
            Self::CgroupV2 => 2,
            Self::CgroupV1Freezer => 1,
            Self::ProcessGroup => 0,
        }
    }
}

impl fmt::Display for Containment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CgroupV2 => "cgroup v2",
            Self::CgroupV1Freezer => "cgroup v1 freezer",
            Self::ProcessGroup => "process group + subreaper",
        })
    }
}

/// A process that was killed (or could not be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainedProcess {
    /// Its pid.
    pub pid: i32,
    /// Its command name (`/proc/<pid>/comm`; `?` when it was already gone).
    pub comm: String,
}

impl fmt::Display for ContainedProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.pid, self.comm)
    }
}

/// Joins processes as `1 (a), 2 (b)`.
pub(crate) fn list(procs: &[ContainedProcess]) -> String {
    procs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// What [`RawExec::reap_leftovers`](super::RawExec::reap_leftovers) found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Processes of earlier invocations in this scope that were still running, now killed.
    pub killed: Vec<ContainedProcess>,
    /// Processes that were still there when the wait for them ended (stuck in the kernel).
    pub survivors: Vec<ContainedProcess>,
    /// Invocation cgroups removed (empty ones included).
    pub cgroups_removed: usize,
}

impl Leftovers {
    /// Nothing was found.
    pub fn is_empty(&self) -> bool {
        self.killed.is_empty() && self.survivors.is_empty() && self.cgroups_removed == 0
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "killed {} process(es)", self.killed.len())?;
        if !self.killed.is_empty() {
            write!(f, " [{}]", list(&self.killed))?;
        }
        write!(f, ", removed {} cgroup(s)", self.cgroups_removed)?;
        if !self.survivors.is_empty() {
            write!(f, "; still running after {:?}: [{}]", cgroup::KILL_PATIENCE, list(&self.survivors))?;
        }
        Ok(())
    }
}

/// A scope name as given (a socket path, say) made into a safe directory-name part: ASCII
/// letters, digits, `_`, `.` and `-` are kept, anything else becomes `_`; when that changed
/// the text, or it was long, a hash of the original keeps distinct inputs distinct.
pub fn sanitize_scope(text: &str) -> String {
    const MAX: usize = 64;
    let clean: String = text
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean == text && !clean.is_empty() && clean.len() <= MAX {
        return clean.to_string();
    }
    // FNV-1a, 32 bits: stable across builds and platforms.
    let hash = text.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    let tail_start = clean.len().saturating_sub(MAX);
    format!("{}-{hash:08x}", &clean[tail_start..]).trim_start_matches('-').to_string()
}

/// Invocation ids (`<scope dir>/<id>`) running in this process: never reaped as leftovers.
static LIVE: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Invocation ids are unique in the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// The scopes of this process, one per (directory, mechanism limit).
static SCOPES: Mutex<Vec<Arc<Scope>>> = Mutex::new(Vec::new());

fn live<T>(f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
    let mut guard = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashSet::new))
}

/// The executor's scope: shared by clones and by executors of the same scope name.
#[derive(Clone)]
pub(crate) struct ScopeRef(Arc<Scope>);

pub(crate) struct Scope {
    /// The name given (empty: the process's private scope).
    name: String,
    /// The directory name: `multus-delegates-<name>` or `multus-delegates.pid<pid>.<start>`.
    dir_name: String,
    /// The best mechanism allowed.
    limit: Containment,
    backend: OnceLock<Backend>,
}

enum Backend {
    Cgroups(cgroup::Cgroups),
    ProcessGroup,
}

impl Default for ScopeRef {
    fn default() -> Self {
        Self::get("", Containment::CgroupV2)
    }
}

impl fmt::Debug for ScopeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("dir", &self.0.dir_name).field("limit", &self.0.limit).finish()
    }
}

impl ScopeRef {
    /// The scope `name` (already sanitized; empty: the process's private scope).
    pub(crate) fn get(name: &str, limit: Containment) -> Self {
        let dir_name = if name.is_empty() {
            let me = std::process::id() as i32;
            format!("{PRIVATE_PREFIX}{me}.{}", procfs::start_time(me).unwrap_or_default())
        } else {
            format!("{SCOPE_DIR_PREFIX}{name}")
        };
        let mut scopes = SCOPES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = scopes.iter().find(|s| s.dir_name == dir_name && s.limit == limit) {
            return Self(s.clone());
        }
        let scope = Arc::new(Scope { name: name.to_string(), dir_name, limit, backend: OnceLock::new() });
        scopes.push(scope.clone());
        Self(scope)
    }

    pub(crate) fn name(&self) -> &str {
        &self.0.name
    }

    pub(crate) fn limit(&self) -> Containment {
        self.0.limit
    }

    /// The mechanism in use (chosen and logged at the first call).
    pub(crate) fn containment(&self) -> Containment {
        match self.0.backend() {
            Backend::Cgroups(cg) => match cg.kind {
                cgroup::Kind::V2 => Containment::CgroupV2,
                cgroup::Kind::V1Freezer => Containment::CgroupV1Freezer,
            },
            Backend::ProcessGroup => Containment::ProcessGroup,
        }
    }

    /// The directory holding the scope's invocation cgroups (`None`: process-group mode).
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        match self.0.backend() {
            Backend::Cgroups(cg) => Some(cg.scope_dir.clone()),
            Backend::ProcessGroup => None,
        }
    }

    /// Start an invocation: its cgroup is created (a few system calls, no waiting).
    pub(crate) fn invocation(&self) -> Invocation {
        let scope = self.0.clone();
        let backend = scope.backend();
        for _ in 0..64 {
            let id = format!("{}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
            let key = format!("{}/{id}", scope.dir_name);
            live(|l| l.insert(key.clone()));
            let mut inv = Invocation {
                scope: scope.clone(),
                key,
                cgroup: None,
                plugin: None,
                plugin_reaped: false,
                finished: false,
            };
            let Backend::Cgroups(cg) = backend else { return inv };
            match cg.create(&id) {
                Ok((dir, fd)) => {
                    inv.cgroup = Some((dir, Arc::new(fd)));
                    return inv;
                }
                // A directory of an earlier process with the same pid: take the next id.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => inv.forget(),
                Err(e) => {
                    tracing::warn!(
                        "cannot create a cgroup for a plugin invocation in {}: {e}; this one is contained by its process group only",
                        cg.scope_dir.display()
                    );
                    return inv;
                }
            }
        }
        tracing::warn!("no free invocation cgroup name; this invocation is contained by its process group only");
        let key = format!("{}/{}-x", scope.dir_name, std::process::id());
        Invocation { scope, key, cgroup: None, plugin: None, plugin_reaped: false, finished: false }
    }

    /// Kill what earlier instances left in this scope (see
    /// [`RawExec::reap_leftovers`](super::RawExec::reap_leftovers)). Blocking, bounded.
    pub(crate) fn reap_leftovers(&self) -> Leftovers {
        let scope = &self.0;
        let mut out = Leftovers::default();
        match scope.backend() {
            Backend::Cgroups(cg) => {
                for dir in cg.invocations() {
                    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let key = format!("{}/{name}", scope.dir_name);
                    if live(|l| l.contains(&key)) || name == format!("probe-{}", std::process::id()) {
                        continue;
                    }
                    let (killed, survivors) = cg.kill_all(&dir, Instant::now() + cgroup::KILL_PATIENCE, None);
                    out.killed.extend(killed);
                    if survivors.is_empty() && cg.remove(&dir).is_ok() {
                        out.cgroups_removed += 1;
                    }
                    out.survivors.extend(survivors);
                }
                scope.remove_dir_if_idle(cg);
            }
            Backend::ProcessGroup => {
                let prefix = format!("{}/", scope.dir_name);
                let stale = |pid: i32| {
                    procfs::environ_value(pid, INVOCATION_ENV)
                        .is_some_and(|tag| tag.starts_with(&prefix) && !live(|l| l.contains(&tag)))
                };
                let me = std::process::id() as i32;
                let found: Vec<i32> = procfs::all_pids().into_iter().filter(|&p| p != me && stale(p)).collect();
                let (killed, survivors) = kill_and_wait(&found, None, || {
                    procfs::all_pids().into_iter().filter(|&p| p != me && stale(p)).collect()
                });
                out.killed = killed;
                out.survivors = survivors;
            }
        }
        out
    }
}

impl Scope {
    /// Remove the scope directory if no invocation of this process runs in it (it fails
    /// harmlessly while another process's does; a creator racing with this finds the
    /// directory gone and makes it again).
    fn remove_dir_if_idle(&self, cg: &cgroup::Cgroups) {
        let prefix = format!("{}/", self.dir_name);
        let guard = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(|l| !l.iter().any(|k| k.starts_with(&prefix))) {
            let _ = std::fs::remove_dir(&cg.scope_dir);
        }
    }

    fn backend(&self) -> &Backend {
        self.backend.get_or_init(|| self.detect())
    }

    fn detect(&self) -> Backend {
        let mut skipped = Vec::new();
        for (kind, c) in
            [(cgroup::Kind::V2, Containment::CgroupV2), (cgroup::Kind::V1Freezer, Containment::CgroupV1Freezer)]
        {
            if c.rank() > self.limit.rank() {
                continue;
            }
            let opened = cgroup::own_dir(kind).and_then(|own| {
                cgroup::Cgroups::open(kind, &own, &self.dir_name).map_err(|e| format!("{}: {e}", own.display()))
            });
            match opened {
                Ok(cg) => {
                    if self.name.is_empty() {
                        sweep_dead_private_scopes(&cg);
                    }
                    let how = match (kind, cg.kill_file, cg.clone_into) {
                        (cgroup::Kind::V2, true, true) => "started inside it with clone3, killed with cgroup.kill",
                        (cgroup::Kind::V2, true, false) => {
                            "joined before exec (no clone3 CLONE_INTO_CGROUP: one RCU grace period per start), killed with cgroup.kill"
                        }
                        (cgroup::Kind::V2, false, _) => "no cgroup.kill (Linux < 5.14): killed pid by pid",
                        (cgroup::Kind::V1Freezer, _, _) => {
                            "joined before exec (one RCU grace period per start), frozen and killed"
                        }
                    };
                    tracing::info!(
                        "plugin invocations are contained by {c}: one cgroup each under {} ({how}){}",
                        cg.scope_dir.display(),
                        if skipped.is_empty() { String::new() } else { format!("; not used: {}", skipped.join("; ")) }
                    );
                    return Backend::Cgroups(cg);
                }
                Err(e) => skipped.push(format!("{c}: {e}")),
            }
        }
        let subreaper = nix::sys::prctl::set_child_subreaper(true);
        tracing::warn!(
            "plugin invocations are contained by {} only (best effort: a descendant that leaves the process group and clears its environment escapes){}{}",
            Containment::ProcessGroup,
            match subreaper {
                Ok(()) => String::new(),
                Err(e) => format!("; cannot become a child subreaper: {e}"),
            },
            if skipped.is_empty() { String::new() } else { format!("; not used: {}", skipped.join("; ")) }
        );
        Backend::ProcessGroup
    }
}

/// Reap what processes that died left in their private scopes (siblings of `cg`'s scope
/// directory named after a process — pid and start time — that no longer exists).
fn sweep_dead_private_scopes(cg: &cgroup::Cgroups) {
    let Some(parent) = cg.scope_dir.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, start)) = name.strip_prefix(PRIVATE_PREFIX).and_then(|rest| rest.split_once('.')) else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else { continue };
        if procfs::start_time(pid) == Some(start) {
            continue;
        }
        let dead = cgroup::Cgroups { scope_dir: entry.path(), ..cg.clone() };
        let mut killed = Vec::new();
        for dir in dead.invocations() {
            let (k, survivors) = dead.kill_all(&dir, Instant::now() + cgroup::KILL_PATIENCE, None);
            killed.extend(k);
            if survivors.is_empty() {
                let _ = dead.remove(&dir);
            }
        }
        let _ = std::fs::remove_dir(&dead.scope_dir);
        if !killed.is_empty() {
            tracing::warn!(
                "killed what plugins of a dead process left in {}: {}",
                dead.scope_dir.display(),
                list(&killed)
            );
        }
    }
}

/// Processes an invocation left behind, killed when it ended.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    pub(crate) killed: Vec<ContainedProcess>,
    pub(crate) survivors: Vec<ContainedProcess>,
}

/// One plugin invocation's container. Dropped before [`Invocation::finish`] (a cancelled
/// request), it kills its processes at once and waits for them and removes its cgroup in the
/// background.
pub(crate) struct Invocation {
    scope: Arc<Scope>,
    /// `<scope dir>/<id>`: the live-set entry, and the tag of the process-group mode.
    key: String,
    /// The cgroup and its open `cgroup.procs` (`None`: process group mode).
    cgroup: Option<(PathBuf, Arc<OwnedFd>)>,
    /// The plugin's pid, once started.
    plugin: Option<i32>,
    plugin_reaped: bool,
    finished: bool,
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation").field("key", &self.key).field("plugin", &self.plugin).finish()
    }
}

impl Invocation {
    /// The `cgroup.procs` the child writes itself into before `exec` (when it is not started
    /// inside the cgroup: [`Invocation::clone_into`]).
    pub(crate) fn join_fd(&self) -> Option<Arc<OwnedFd>> {
        if self.clone_into().is_some() {
            return None;
        }
        self.cgroup.as_ref().map(|(_, fd)| fd.clone())
    }

    /// The cgroup directory to start the plugin in with `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) fn clone_into(&self) -> Option<Arc<OwnedFd>> {
        match (&self.cgroup, self.scope.backend()) {
            (Some((_, fd)), Backend::Cgroups(cg)) if cg.clone_into => Some(fd.clone()),
            _ => None,
        }
    }

    /// The variable that tags the plugin's processes (process-group mode only).
    pub(crate) fn env_tag(&self) -> Option<(&'static str, &str)> {
        self.cgroup.is_none().then_some((INVOCATION_ENV, self.key.as_str()))
    }

    pub(crate) fn set_plugin(&mut self, pid: Option<u32>) {
        self.plugin = pid.and_then(|p| i32::try_from(p).ok());
    }

    /// The plugin was reaped: its pid may be recycled from now on, so it no longer names a
    /// member (its process group still does while the group exists).
    pub(crate) fn plugin_reaped(&mut self) {
        self.plugin_reaped = true;
    }

    /// The processes of this invocation still alive, with command names (for a warning).
    pub(crate) fn members(&self) -> Vec<ContainedProcess> {
        let pids = match &self.cgroup {
            Some((dir, _)) => cgroup::Cgroups::procs(dir),
            None => self.tree_members(),
        };
        pids.into_iter().map(|pid| ContainedProcess { pid, comm: procfs::comm(pid) }).collect()
    }

    /// SIGKILL everything in the invocation now, without waiting.
    pub(crate) fn signal(&self) {
        match (&self.cgroup, self.scope.backend()) {
            (Some((dir, _)), Backend::Cgroups(cg)) => cg.signal(dir),
            _ => {
                for pid in self.tree_members() {
                    procfs::kill_pid(pid, None);
                }
            }
        }
    }

    /// Nothing of the invocation is running any more (cgroup modes: one read of
    /// `cgroup.events`; process-group mode cannot tell without a walk: `false`).
    pub(crate) fn is_empty_now(&self) -> bool {
        match (&self.cgroup, self.scope.backend()) {
            (Some((dir, _)), Backend::Cgroups(cg)) => !cg.populated(dir),
            _ => false,
        }
    }

    /// End the invocation: kill what is left (waiting until it is gone, bounded) and remove
    /// the cgroup. Blocking: run it where waiting is allowed.
    pub(crate) fn finish(mut self) -> Finished {
        self.finished = true;
        let deadline = Instant::now() + cgroup::KILL_PATIENCE;
        let mut out = Finished::default();
        match (&self.cgroup, self.scope.backend()) {
            (Some((dir, _)), Backend::Cgroups(cg)) => {
                if cg.populated(dir) {
                    (out.killed, out.survivors) = cg.kill_all(dir, deadline, self.plugin);
                }
                if out.survivors.is_empty() {
                    if let Err(e) = cg.remove(dir) {
                        tracing::warn!("cannot remove the invocation cgroup {}: {e}", dir.display());
                    }
                } else {
                    tracing::error!(
                        "processes of a plugin invocation survived SIGKILL for {:?}; leaving {} to a later reap: {}",
                        cgroup::KILL_PATIENCE,
                        dir.display(),
                        list(&out.survivors)
                    );
                }
            }
            _ => {
                let found = self.tree_members();
                if !found.is_empty() {
                    (out.killed, out.survivors) = kill_and_wait(&found, self.plugin, || self.tree_members());
                }
            }
        }
        self.forget();
        if self.cgroup.is_some()
            && let Backend::Cgroups(cg) = self.scope.backend()
        {
            // The scope's directory exists only while something runs in it: no empty cgroups
            // are left behind by daemons that come and go (tests), at the price of an rmdir
            // here, in the background, and a mkdir at the next start.
            self.scope.remove_dir_if_idle(cg);
        }
        out
    }

    /// Drop the live-set entry.
    fn forget(&mut self) {
        self.finished = true;
        live(|l| l.remove(&self.key));
    }

    /// Process-group mode: the processes of this invocation in this process's tree — below
    /// the plugin, tagged with this invocation, or in the plugin's process group (the plugin
    /// itself included while it runs).
    fn tree_members(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        let kids = |pid: i32| procfs::children(pid).unwrap_or_else(|| procfs::children_by_scan(pid));
        let mut out = Vec::new();
        let mut stack: Vec<(i32, bool)> = kids(me).into_iter().map(|c| (c, false)).collect();
        let mut visited = HashSet::new();
        while let Some((pid, inherited)) = stack.pop() {
            if !visited.insert(pid) {
                continue;
            }
            let member = inherited || (!self.plugin_reaped && Some(pid) == self.plugin) || {
                match procfs::environ_value(pid, INVOCATION_ENV) {
                    Some(tag) => tag == self.key,
                    // No environment to read (a zombie, or cleared): the process group decides.
                    None => self.plugin.is_some_and(|p| procfs::stat(pid).is_some_and(|s| s.pgid == p)),
                }
            };
            if member {
                out.push(pid);
            }
            stack.extend(kids(pid).into_iter().map(|c| (c, member)));
        }
        out
    }
}

/// Kill `found` (pidfds first, so a recycled pid is never hit) and wait until `rescan` finds
/// nothing, bounded; reaps those that are this process's children, except `spare`.
fn kill_and_wait(
    found: &[i32],
    spare: Option<i32>,
    rescan: impl Fn() -> Vec<i32>,
) -> (Vec<ContainedProcess>, Vec<ContainedProcess>) {
    let deadline = Instant::now() + cgroup::KILL_PATIENCE;
    let mut seen: Vec<(ContainedProcess, Option<procfs::PidFd>)> = Vec::new();
    let mut current = found.to_vec();
    let mut delay = Duration::from_micros(500);
    loop {
        for &pid in &current {
            if !seen.iter().any(|(p, _)| p.pid == pid) {
                seen.push((ContainedProcess { pid, comm: procfs::comm(pid) }, procfs::PidFd::open(pid).ok()));
            }
            let fd = seen.iter().find(|(p, _)| p.pid == pid).and_then(|(_, fd)| fd.as_ref());
            procfs::kill_pid(pid, fd);
        }
        for (p, fd) in &mut seen {
            if Some(p.pid) != spare
                && let Some(f) = fd
                && f.try_reap() != procfs::Reap::Alive
            {
                *fd = None;
            }
        }
        // A zombie that is not ours is dead: its parent reaps it.
        current = rescan().into_iter().filter(|&p| procfs::stat(p).is_some_and(|s| s.state != 'Z')).collect();
        if current.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let survivors = current.iter().map(|&pid| ContainedProcess { pid, comm: procfs::comm(pid) }).collect();
            return (seen.into_iter().map(|(p, _)| p).collect(), survivors);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
    (seen.into_iter().map(|(p, _)| p).collect(), Vec::new())
}

impl Drop for Invocation {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.signal();
        let rest = Invocation {
            scope: self.scope.clone(),
            key: std::mem::take(&mut self.key),
            cgroup: self.cgroup.take(),
            plugin: self.plugin,
            plugin_reaped: self.plugin_reaped,
            finished: false,
        };
        self.finished = true;
        in_background(Chore::Finish(rest));
    }
}

/// Clean-up that nobody waits for.
pub(crate) enum Chore {
    /// Finish an invocation (a cancelled one, or one with nothing left to kill).
    Finish(Invocation),
    /// Reap a killed plugin process.
    Reap(procfs::PidFd),
}

impl Chore {
    fn run(self) {
        match self {
            Chore::Finish(inv) => {
                let done = inv.finish();
                if !done.killed.is_empty() {
                    tracing::debug!("plugin invocation ended: killed {}", list(&done.killed));
                }
            }
            Chore::Reap(fd) => fd.reap_blocking(),
        }
    }
}

/// Hand `chore` to the clean-up thread (`cni-reaper`, started at first use, lives as long as
/// the process, so clean-up never depends on an async runtime that may be shutting down).
/// Without the thread, the chore runs here.
pub(crate) fn in_background(chore: Chore) {
    static CHORES: Mutex<Option<std::sync::mpsc::Sender<Chore>>> = Mutex::new(None);
    let mut tx = CHORES.lock().unwrap_or_else(PoisonError::into_inner);
    if tx.is_none() {
        let (sender, receiver) = std::sync::mpsc::channel::<Chore>();
        let started = std::thread::Builder::new().name("cni-reaper".into()).spawn(move || {
            while let Ok(chore) = receiver.recv() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| chore.run()));
            }
        });
        if started.is_ok() {
            *tx = Some(sender);
        }
    }
    let unsent = match tx.as_ref() {
        Some(sender) => sender.send(chore).err().map(|e| e.0),
        None => Some(chore),
    };
    drop(tx);
    if let Some(chore) = unsent {
        chore.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_safe_and_distinct() {
        assert_eq!(sanitize_scope("node-a"), "node-a");
        let a = sanitize_scope("/run/multus/multus.sock");
        assert!(a.starts_with("run_multus_multus.sock-"), "{a}");
        assert_ne!(a, sanitize_scope("/run/multus/multus_sock"));
        assert_ne!(a, sanitize_scope("run_multus_multus.sock"));
        for weird in ["", "..", "/", "a/../b", &"x".repeat(300), "é"] {
            let s = sanitize_scope(weird);
            assert!(!s.is_empty() && s.len() <= 73, "{weird:?} -> {s:?}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{s}");
            assert!(!s.starts_with('.') && s != "..", "{s}");
        }
    }

    #[test]
    fn leftovers_read_well() {
        let l = Leftovers {
            killed: vec![ContainedProcess { pid: 7, comm: "sleep".into() }],
            survivors: vec![],
            cgroups_removed: 2,
        };
        assert_eq!(l.to_string(), "killed 1 process(es) [7 (sleep)], removed 2 cgroup(s)");
        assert!(Leftovers::default().is_empty());
    }
}
