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
mod invocation;
mod kill;
mod mechanism;
pub(crate) mod procfs;
mod scope;

pub(crate) use invocation::{Finished, Invocation};
pub(crate) use kill::list;
pub use kill::{ContainedProcess, Leftovers};
pub use mechanism::Containment;
pub(crate) use scope::ScopeRef;
pub use scope::{INVOCATION_ENV, sanitize_scope};

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
