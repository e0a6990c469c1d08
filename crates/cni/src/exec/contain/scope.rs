//! Scopes: the invocations of one executor (or of every executor of one name) share a scope, a
//! directory of invocation cgroups (or, without cgroups, a tag prefix); the mechanism is chosen
//! once per scope.

use super::cgroup;
use super::kill::{KILL_PATIENCE, Leftovers, kill_and_wait, list};
use super::mechanism::Containment;
use super::procfs;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// The environment variable that tags every process of an invocation when no cgroup can be
/// used ([`Containment::ProcessGroup`]): `<scope dir>/<invocation id>`.
pub const INVOCATION_ENV: &str = "MULTUS_RS_INVOCATION";

/// Prefix of a named scope's directory (`multus-delegates-<scope>`).
const SCOPE_DIR_PREFIX: &str = "multus-delegates-";
/// Prefix of a process's private scope directory (`multus-delegates.pid<pid>.<start time>`).
const PRIVATE_PREFIX: &str = "multus-delegates.pid";

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
pub(super) static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// The scopes of this process, one per (directory, mechanism limit).
static SCOPES: Mutex<Vec<Arc<Scope>>> = Mutex::new(Vec::new());

pub(super) fn live<T>(f: impl FnOnce(&mut HashSet<String>) -> T) -> T {
    let mut guard = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashSet::new))
}

/// The executor's scope: shared by clones and by executors of the same scope name.
#[derive(Clone)]
pub(crate) struct ScopeRef(pub(super) Arc<Scope>);

pub(crate) struct Scope {
    /// The name given (empty: the process's private scope).
    name: String,
    /// The directory name: `multus-delegates-<name>` or `multus-delegates.pid<pid>.<start>`.
    pub(super) dir_name: String,
    /// The best mechanism allowed.
    limit: Containment,
    backend: OnceLock<Backend>,
}

pub(super) enum Backend {
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

    /// Kill what earlier instances left in this scope (see
    /// [`RawExec::reap_leftovers`](crate::exec::RawExec::reap_leftovers)). Blocking, bounded.
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
                    let (killed, survivors) = cg.kill_all(&dir, Instant::now() + KILL_PATIENCE, None);
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
    pub(super) fn remove_dir_if_idle(&self, cg: &cgroup::Cgroups) {
        let prefix = format!("{}/", self.dir_name);
        let guard = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(|l| !l.iter().any(|k| k.starts_with(&prefix))) {
            let _ = std::fs::remove_dir(&cg.scope_dir);
        }
    }

    pub(super) fn backend(&self) -> &Backend {
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
            let opened = cgroup::own_dir(kind).map_err(|e| e.to_string()).and_then(|own| {
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
            let (k, survivors) = dead.kill_all(&dir, Instant::now() + KILL_PATIENCE, None);
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
