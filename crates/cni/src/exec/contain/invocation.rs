//! One plugin invocation's container: created when the plugin starts, emptied (and removed)
//! when the invocation ends.

use super::cgroup;
use super::kill::{ContainedProcess, KILL_PATIENCE, kill_and_wait, list};
use super::procfs;
use super::scope::{Backend, INVOCATION_ENV, NEXT_ID, Scope, ScopeRef, live};
use crate::exec::background;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl ScopeRef {
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
        let deadline = Instant::now() + KILL_PATIENCE;
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
                        KILL_PATIENCE,
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

    /// [`Invocation::finish`] on the clean-up thread, nobody waiting (a cancelled invocation,
    /// or one with nothing left to kill).
    pub(crate) fn finish_in_background(self) {
        background::run(move || {
            let done = self.finish();
            if !done.killed.is_empty() {
                tracing::debug!("plugin invocation ended: killed {}", list(&done.killed));
            }
        });
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
        rest.finish_in_background();
    }
}
