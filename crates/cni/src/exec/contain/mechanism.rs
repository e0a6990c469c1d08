//! The mechanisms that hold an invocation's processes together, best first.

use std::fmt;

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
///    [`INVOCATION_ENV`](super::INVOCATION_ENV)` = <scope dir>/<id>`. At a kill, the daemon's process tree is walked
///    (`/proc/<pid>/task/*/children`) and a process belongs to the invocation when its
///    parent chain leads to the plugin, or it carries the invocation's tag, or it is still
///    in the plugin's process group. **Guarantee (best effort):** the plugin and everything
///    it starts is found, unless a descendant *both* leaves the process group (`setsid`) *and*
///    drops the tag from its environment (`env -i`) *and* is orphaned; such a process is
///    left running. A daemon killed with `kill -9` loses the subreaper: leftovers are
///    re-parented to init and found by [`reap_leftovers`](crate::exec::RawExec::reap_leftovers)
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
    pub(super) fn rank(self) -> u8 {
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
