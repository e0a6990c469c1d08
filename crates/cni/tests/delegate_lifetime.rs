//! Plugin processes started by `RawExec` never outlive their purpose (issue 12):
//! - a timeout or a dropped request kills the plugin *and what it forked* (its process group);
//! - a plugin dies when the process that started it is killed (`PR_SET_PDEATHSIG`);
//! - but not when the *thread* that started it exits: every plugin is forked by the long-lived
//!   spawner thread, so a tokio blocking thread retiring after its keep-alive kills nothing.
//!
//! Processes are identified by pid *and* start time, so a recycled pid is never mistaken for
//! (or killed as) one of ours; a guard kills whatever a failed test left behind.

use cni::exec::{ExecError, PluginRequest, RawExec};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Bound for waiting on events that must happen (never a timing assertion: only a hang guard).
const PATIENCE: Duration = Duration::from_secs(30);

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn env() -> Vec<(String, String)> {
    vec![("CNI_COMMAND".into(), "ADD".into())]
}

/// A process of ours: pid plus start time (field 22 of `/proc/<pid>/stat`); `None` when it
/// was already gone when first looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: i32,
    start: Option<u64>,
}

/// `(state, start time)` of a pid, if it exists.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state is field 3, start time field 22.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

impl Proc {
    /// Read a pid a test plugin wrote, waiting until the file is complete.
    fn from_pidfile(path: &Path) -> Proc {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Some(pid) = text.strip_suffix('\n').and_then(|t| t.parse().ok()) {
                return Proc::of(pid);
            }
            assert!(Instant::now() < deadline, "{} never appeared", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn of(pid: i32) -> Proc {
        Proc { pid, start: stat(pid).map(|(_, start)| start) }
    }

    /// Still running (not gone, not a zombie, not a recycled pid).
    fn running(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if Some(start) == self.start && state != 'Z')
    }

    /// Wait until the process is no longer running; false if it still is after [`PATIENCE`].
    fn wait_stopped(&self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        while self.running() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// Kills the listed processes (if still ours and running) when a test ends, passed or not.
#[derive(Default)]
struct Reaper(Vec<Proc>);

impl Reaper {
    fn watch(&mut self, p: Proc) -> Proc {
        self.0.push(p);
        p
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.running() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// A plugin that starts a background sleeper (same process group), records both pids, and
/// waits for it. Returns (plugin path, plugin pidfile, sleeper pidfile).
fn forking_plugin(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (pid, sleeper) = (dir.join("pid"), dir.join("sleeper"));
    let script = format!(
        "sleep 600 &\necho $! > {sleeper}.tmp && mv {sleeper}.tmp {sleeper}\necho $$ > {pid}.tmp && mv {pid}.tmp {pid}\nwait",
        sleeper = sleeper.display(),
        pid = pid.display()
    );
    (write_script(dir, "forker", &script), pid, sleeper)
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let mut reaper = Reaper::default();
    // The timeout must fire after the plugin has forked its sleeper, or there is nothing to
    // check; a loaded machine gets a longer timeout rather than a false pass.
    for timeout in [Duration::from_millis(500), Duration::from_secs(3), Duration::from_secs(10)] {
        let dir = tempfile::tempdir().unwrap();
        let (plugin, pidfile, sleeperfile) = forking_plugin(dir.path());
        let e = RawExec::with_timeout(timeout).run(PluginRequest::new(&plugin, env(), b"{}")).await.unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e:?}");
        if !(pidfile.exists() && sleeperfile.exists()) {
            continue;
        }
        let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
        let sleeper = reaper.watch(Proc::from_pidfile(&sleeperfile));
        assert!(!plugin.running(), "the plugin was killed and reaped by the timeout");
        assert!(sleeper.wait_stopped(), "the plugin's child {} survived the timeout", sleeper.pid);
        return;
    }
    panic!("the plugin never got to fork its sleeper, even with a 10 s timeout");
}

#[tokio::test]
async fn a_dropped_request_kills_the_whole_process_group() {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (plugin, pidfile, sleeperfile) = forking_plugin(dir.path());
    let exec = RawExec::new();
    let run = exec.run(PluginRequest::new(&plugin, env(), b"{}"));
    let started = async {
        while !(pidfile.exists() && sleeperfile.exists()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the plugin finished on its own: {r:?}"),
        () = started => {}
    }
    // `run` has been dropped: the request is cancelled.
    let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
    let sleeper = reaper.watch(Proc::from_pidfile(&sleeperfile));
    assert!(plugin.wait_stopped(), "the plugin {} survived the cancellation", plugin.pid);
    assert!(sleeper.wait_stopped(), "the plugin's child {} survived the cancellation", sleeper.pid);
}

/// The premise of the spawner thread: the parent-death signal follows the *thread* that forked.
/// A child forked with `PR_SET_PDEATHSIG` from a thread that then exits is killed at once,
/// although its parent process lives on.
#[test]
#[allow(unsafe_code)]
fn parent_death_signal_follows_the_forking_thread() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = std::thread::spawn(|| {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("600").stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe and nothing is allocated between fork and exec.
        unsafe {
            cmd.pre_exec(|| Ok(nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?));
        }
        cmd.spawn().unwrap()
    })
    .join()
    .unwrap();
    // The forking thread has exited, so the kernel has sent SIGKILL.
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child outlived the thread that forked it");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

/// A plugin started while the request was polled on a tokio blocking thread keeps running after
/// that thread has retired (keep-alive shortened to 50 ms), and finishes its run normally.
#[test]
fn a_plugin_outlives_the_thread_that_started_it() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_keep_alive(Duration::from_millis(50))
        .enable_all()
        .build()
        .unwrap();
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (pidfile, release) = (dir.path().join("pid"), dir.path().join("release"));
    let plugin = write_script(
        dir.path(),
        "waits",
        &format!(
            "echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\nwhile [ ! -e {release} ]; do sleep 0.05; done\necho done",
            pid = pidfile.display(),
            release = release.display()
        ),
    );
    let run: Pin<Box<dyn Future<Output = Result<Vec<u8>, ExecError>> + Send>> = Box::pin(async move {
        let exec = RawExec::new();
        exec.run(PluginRequest::new(&plugin, env(), b"{}")).await
    });

    // Poll the request on a blocking-pool thread until the plugin is running, then hand it back.
    let started = pidfile.clone();
    let (run, thread) = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            let mut run = run;
            tokio::runtime::Handle::current().block_on(async {
                let wait_started = async {
                    while !started.exists() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! {
                    r = &mut run => panic!("the plugin finished early: {r:?}"),
                    () = wait_started => {}
                }
            });
            (run, nix::unistd::gettid())
        })
        .await
        .unwrap()
    });
    let plugin = reaper.watch(Proc::from_pidfile(&pidfile));

    // The blocking thread retires once idle for its keep-alive.
    let deadline = Instant::now() + PATIENCE;
    while Path::new(&format!("/proc/self/task/{thread}")).exists() {
        assert!(Instant::now() < deadline, "blocking thread {thread} never retired");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(plugin.running(), "the plugin died with the thread that started it");

    std::fs::write(&release, "").unwrap();
    let out = rt.block_on(run).expect("the plugin finishes normally");
    assert_eq!(out, b"done\n");
}

/// Environment variable naming the plugin [`helper_parent_process`] runs.
const HELPER_PLUGIN: &str = "CNI_EXEC_TEST_HELPER_PLUGIN";

/// Not a test on its own: the body of the parent process that
/// [`a_plugin_dies_with_its_killed_parent`] starts (this test binary, filtered to this function,
/// with [`HELPER_PLUGIN`] set) and then kills. Without the variable it does nothing.
#[test]
#[ignore = "entry point of the helper parent process, started by a_plugin_dies_with_its_killed_parent"]
fn helper_parent_process() {
    let Some(plugin) = std::env::var_os(HELPER_PLUGIN) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let plugin = PathBuf::from(plugin);
    let r = rt.block_on(RawExec::new().run(PluginRequest::new(&plugin, env(), b"{}")));
    panic!("the helper's plugin was expected to run until the helper is killed: {r:?}");
}

#[test]
fn a_plugin_dies_with_its_killed_parent() {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let plugin = write_script(
        dir.path(),
        "sleeps",
        &format!("echo $$ > {pid}.tmp && mv {pid}.tmp {pid}\nexec sleep 600", pid = pidfile.display()),
    );
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_parent_process", "--include-ignored", "--test-threads=1"])
        .env(HELPER_PLUGIN, &plugin)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The helper is killed and reaped below; if the test fails before, kill it here.
    let helper_proc = reaper.watch(Proc::of(i32::try_from(helper.id()).unwrap()));
    let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
    assert!(plugin.running());

    helper.kill().unwrap(); // SIGKILL: no clean-up code runs in the helper
    helper.wait().unwrap();
    assert!(!helper_proc.running());
    assert!(plugin.wait_stopped(), "plugin {} outlived its killed parent", plugin.pid);
}
