//! The one thread that forks every plugin process.
//!
//! Plugin processes get `PR_SET_PDEATHSIG(SIGKILL)` so that they die with the daemon. Linux
//! sends that signal when the *thread* that forked the child exits, not when the process does.
//! `tokio::process::Command::spawn` forks on whatever thread polls the future, and tokio's
//! threads come and go: blocking-pool threads exit after 10 s idle (`thread_keep_alive`), and
//! `block_in_place` turns a worker into one of them. A plugin forked there would be killed in
//! the middle of its ADD when that thread retires.
//!
//! So every fork happens here, on a dedicated thread (`cni-spawner`) that lives until the
//! process exits:
//! - its loop only ends when every job sender is gone, and one sender is kept in a `static`;
//! - a panic while spawning is caught, so it can never unwind out of the loop (the thread's
//!   exit would kill every running plugin);
//! - spawning is quick (`fork` + `exec`; the parent waits only for `exec` to succeed), so one
//!   thread serialising the forks is not a bottleneck; waiting for plugins happens on the
//!   caller's runtime as before.
//!
//! Two ways of starting, both here: `clone3` straight into the invocation's cgroup (cgroup v2,
//! [`super::clone`]: the caller registers the pidfd and pipes with its runtime), or
//! `tokio::process::Command` (the child moves itself into its cgroup, if any, before `exec`);
//! the spawned [`tokio::process::Child`] is registered with the caller's runtime (the job
//! carries its handle), so reading, waiting and killing work exactly as if the caller had
//! spawned it.
//!
//! A new thread inherits its creator's network namespace. In case the first plugin is started
//! from a thread that has entered a pod's namespace, the spawner moves itself back into the
//! process's namespace (`/proc/self/ns/net`, the main thread's) when it starts; a daemon should
//! still call [`start_spawner`] early, from its main thread.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError, mpsc};

/// The spawner thread's name (visible in `/proc/<pid>/task/*/comm`).
pub const THREAD_NAME: &str = "cni-spawner";

/// What to start, and where to send the result.
enum Job {
    /// Through `tokio::process::Command` (registered with the caller's runtime).
    Command {
        command: Box<tokio::process::Command>,
        runtime: tokio::runtime::Handle,
        reply: tokio::sync::oneshot::Sender<io::Result<tokio::process::Child>>,
    },
    /// Through `clone3` into a cgroup ([`super::clone`]); the caller registers the result.
    Clone { prepared: super::clone::Prepared, reply: tokio::sync::oneshot::Sender<io::Result<super::clone::RawChild>> },
}

/// The job queue. Never emptied once set: the thread's loop ends only when every sender is gone.
static JOBS: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

/// Start the spawner thread now (it is otherwise started by the first plugin run). Idempotent.
///
/// A daemon calls this at start-up from its main thread, so that the thread is created in the
/// daemon's own namespaces and a failure to create it is reported at once.
pub fn start_spawner() -> io::Result<()> {
    sender().map(drop)
}

fn sender() -> io::Result<mpsc::Sender<Job>> {
    let mut jobs = JOBS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(tx) = jobs.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new().name(THREAD_NAME.to_string()).spawn(move || serve(&rx))?;
    *jobs = Some(tx.clone());
    Ok(tx)
}

fn gone() -> io::Error {
    io::Error::other("the plugin spawner thread is gone")
}

/// Start `command` on the spawner thread, registered with the current tokio runtime.
pub(crate) async fn spawn(command: tokio::process::Command) -> io::Result<tokio::process::Child> {
    let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    sender()?.send(Job::Command { command: Box::new(command), runtime, reply }).map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

/// Start a prepared plugin with `clone3` on the spawner thread.
pub(crate) async fn spawn_clone(prepared: super::clone::Prepared) -> io::Result<super::clone::RawChild> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    sender()?.send(Job::Clone { prepared, reply }).map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

fn serve(jobs: &mpsc::Receiver<Job>) {
    align_network_namespace();
    while let Ok(job) = jobs.recv() {
        let _ = catch_unwind(AssertUnwindSafe(|| match job {
            Job::Command { mut command, runtime, reply } => {
                let _context = runtime.enter();
                if let Err(Ok(child)) = reply.send(command.spawn()) {
                    // The request was cancelled while its plugin was being started.
                    super::group::kill_process_group(&child);
                    drop(child);
                }
            }
            Job::Clone { prepared, reply } => {
                if let Err(Ok(child)) = reply.send(super::clone::spawn(&prepared)) {
                    child.abandon();
                }
            }
        }));
    }
}

/// Move this thread into the process's network namespace if it was born elsewhere.
fn align_network_namespace() {
    let id = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    let (Ok(mine), Ok(process)) = (id("/proc/thread-self/ns/net"), id("/proc/self/ns/net")) else {
        return;
    };
    if mine == process {
        return;
    }
    let moved = File::open("/proc/self/ns/net")
        .and_then(|ns| nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from));
    match moved {
        Ok(()) => tracing::warn!(
            "the plugin spawner was started from a thread in another network namespace; moved it to the process's"
        ),
        Err(e) => tracing::error!(
            "the plugin spawner was started from a thread in another network namespace and cannot leave it: {e}"
        ),
    }
}
