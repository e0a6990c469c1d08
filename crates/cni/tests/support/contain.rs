//! Shared by the containment tests (`containment.rs`: process-group mode, no root needed;
//! `containment_root.rs`: the cgroup modes). Every scenario runs real processes.
//!
//! Processes are identified by pid *and* start time, so a recycled pid is never mistaken for
//! (or killed as) one of ours; a guard kills whatever a failed test left behind.

#![allow(dead_code)]

use cni::exec::{Containment, ExecError, PluginRequest, RawExec};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Bound for waiting on events that must happen (a hang guard, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

pub fn env() -> Vec<(String, String)> {
    vec![("CNI_COMMAND".into(), "ADD".into())]
}

/// `(state, start time)` of a pid, if it exists.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// A process of ours: pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    start: Option<u64>,
}

impl Proc {
    /// Read a pid a test plugin wrote (`echo $x > f.tmp && mv f.tmp f`), waiting for it.
    pub fn from_pidfile(path: &Path) -> Proc {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Some(pid) = text.strip_suffix('\n').and_then(|t| t.parse().ok()) {
                return Proc::of(pid);
            }
            assert!(Instant::now() < deadline, "{} never appeared", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn of(pid: i32) -> Proc {
        Proc { pid, start: stat(pid).map(|(_, start)| start) }
    }

    /// Still running (not gone, not a zombie, not a recycled pid).
    pub fn running(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if Some(start) == self.start && state != 'Z')
    }

    /// Wait until the process is no longer running; false if it still is after `patience`.
    pub fn wait_stopped_within(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while self.running() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// Kills the listed processes (if still ours and running) when a test ends, passed or not.
#[derive(Default)]
pub struct Reaper(Vec<Proc>);

impl Reaper {
    pub fn watch(&mut self, p: Proc) -> Proc {
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

/// Write `$var` to `file` atomically (for [`Proc::from_pidfile`]).
pub fn record(var: &str, file: &Path) -> String {
    format!("echo {var} > {f}.tmp && mv {f}.tmp {f}", f = file.display())
}

/// An executor in a scope unique to this test and process, using exactly `mechanism`: a
/// test that cannot have it fails (root tests are `#[ignore]`d for machines without it).
pub fn executor(test: &str, mechanism: Containment) -> RawExec {
    let exec = RawExec::new().with_scope(&scope_for(test)).with_containment(mechanism);
    let got = exec.containment();
    assert_eq!(
        got, mechanism,
        "this test needs {mechanism} (root and a writable hierarchy); it is #[ignore]d for machines without it"
    );
    exec
}

pub fn scope_for(test: &str) -> String {
    format!("test-{test}-{}", std::process::id())
}

/// Environment variables of the helper executor process ([`helper_executor_body`]).
pub const HELPER_SCOPE: &str = "CNI_CONTAIN_TEST_SCOPE";
pub const HELPER_MECHANISM: &str = "CNI_CONTAIN_TEST_MECHANISM";
pub const HELPER_PLUGIN: &str = "CNI_CONTAIN_TEST_PLUGIN";

pub fn mechanism_name(m: Containment) -> &'static str {
    match m {
        Containment::CgroupV2 => "v2",
        Containment::CgroupV1Freezer => "v1",
        Containment::ProcessGroup => "pg",
    }
}

fn mechanism_from(name: &str) -> Containment {
    match name {
        "v2" => Containment::CgroupV2,
        "v1" => Containment::CgroupV1Freezer,
        _ => Containment::ProcessGroup,
    }
}

/// The body of the helper process: when started with the helper variables, run the plugin
/// with an executor of that scope and mechanism until killed. Without them it does nothing.
pub fn helper_executor_body() {
    let (Some(scope), Some(mechanism), Some(plugin)) =
        (std::env::var_os(HELPER_SCOPE), std::env::var(HELPER_MECHANISM).ok(), std::env::var_os(HELPER_PLUGIN))
    else {
        return;
    };
    let exec = RawExec::new().with_scope(&scope.to_string_lossy()).with_containment(mechanism_from(&mechanism));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let plugin = PathBuf::from(plugin);
    let r = rt.block_on(exec.run(PluginRequest::new(&plugin, env(), b"{}")));
    panic!("the helper's plugin was expected to run until the helper is killed: {r:?}");
}

/// Start this test binary as a helper executor (its test `helper_executor`) running `plugin`.
pub fn start_helper(scope: &str, mechanism: Containment, plugin: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_executor", "--include-ignored", "--test-threads=1", "--nocapture"])
        .env(HELPER_SCOPE, scope)
        .env(HELPER_MECHANISM, mechanism_name(mechanism))
        .env(HELPER_PLUGIN, plugin)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

// ---- the scenarios, each run per mechanism by the test files ----

/// (a) A plugin starts `setsid sleep 300 &` (a new session, outside its process group) and
/// hangs: the timeout kills the setsid'd process too.
pub async fn setsid_child_dies_on_timeout(exec: RawExec) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (escaper, pidfile) = (dir.path().join("escaper"), dir.path().join("pid"));
    let plugin = write_script(
        dir.path(),
        "escapes",
        &format!("setsid sleep 300 &\n{}\n{}\nexec sleep 600", record("$!", &escaper), record("$$", &pidfile)),
    );
    // The timeout must fire after the escaper started, or there is nothing to check.
    for timeout in [Duration::from_millis(500), Duration::from_secs(3), Duration::from_secs(10)] {
        let _ = std::fs::remove_file(&escaper);
        let mut exec = exec.clone();
        exec.timeout = Some(timeout);
        let e = exec.run(PluginRequest::new(&plugin, env(), b"{}")).await.unwrap_err();
        assert!(matches!(e, ExecError::Timeout { .. }), "{e:?}");
        if !escaper.exists() {
            continue;
        }
        let escaper = reaper.watch(Proc::from_pidfile(&escaper));
        let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
        assert!(!plugin.running(), "the plugin survived its timeout");
        assert!(
            escaper.wait_stopped_within(Duration::from_secs(5)),
            "setsid'd process {} survived the timeout",
            escaper.pid
        );
        return;
    }
    panic!("the plugin never got to start its escaper, even with a 10 s timeout");
}

/// (a') The same for a cancelled request (the run future dropped).
pub async fn setsid_child_dies_on_cancellation(exec: RawExec) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (escaper, pidfile) = (dir.path().join("escaper"), dir.path().join("pid"));
    let plugin = write_script(
        dir.path(),
        "escapes",
        &format!("setsid sleep 300 &\n{}\n{}\nexec sleep 600", record("$!", &escaper), record("$$", &pidfile)),
    );
    let run = exec.run(PluginRequest::new(&plugin, env(), b"{}"));
    let started = async {
        while !(pidfile.exists() && escaper.exists()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        r = run => panic!("the plugin finished on its own: {r:?}"),
        () = started => {}
    }
    let escaper = reaper.watch(Proc::from_pidfile(&escaper));
    let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
    assert!(plugin.wait_stopped_within(PATIENCE), "the plugin survived the cancellation");
    assert!(
        escaper.wait_stopped_within(Duration::from_secs(5)),
        "setsid'd process {} survived the cancellation",
        escaper.pid
    );
}

/// (b) A plugin leaves a background child holding its stdout and exits 0 with a result: the
/// run returns promptly with the result, and the child is killed.
pub async fn child_holding_stdout_does_not_hold_the_result(exec: RawExec) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    let plugin = write_script(
        dir.path(),
        "leaves",
        &format!(
            "cat >/dev/null\n(sleep 300) &\n{}\necho '{{\"cniVersion\":\"1.0.0\"}}'\nexit 0",
            record("$!", &child)
        ),
    );
    let mut exec = exec;
    exec.timeout = Some(Duration::from_secs(20));
    let start = Instant::now();
    let out = exec.run(PluginRequest::new(&plugin, env(), b"{}")).await.unwrap();
    let took = start.elapsed();
    assert_eq!(out, b"{\"cniVersion\":\"1.0.0\"}\n");
    assert!(took < Duration::from_secs(5), "the run took {took:?}: it waited for the child");
    let child = reaper.watch(Proc::from_pidfile(&child));
    assert!(child.wait_stopped_within(Duration::from_secs(5)), "the background child {} survived", child.pid);
}

/// (b') A plugin leaves a child with its output redirected (pipes end at once): the child is
/// killed when the plugin exits all the same.
pub async fn detached_child_is_killed_at_exit(exec: RawExec) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    let plugin = write_script(
        dir.path(),
        "detaches",
        &format!("setsid sleep 300 </dev/null >/dev/null 2>&1 &\n{}\necho '{{}}'", record("$!", &child)),
    );
    let out = exec.run(PluginRequest::new(&plugin, env(), b"{}")).await.unwrap();
    assert_eq!(out, b"{}\n");
    let child = reaper.watch(Proc::from_pidfile(&child));
    // SIGKILLed before the run returned; dying takes the kernel a moment on a loaded machine.
    assert!(child.wait_stopped_within(Duration::from_secs(2)), "the detached child {} survived the run", child.pid);
}

/// (c) A plugin forks a grandchild that writes a file after 3 s; the process running the
/// executor is killed with SIGKILL (the plugin dies with it, the grandchild does not); a new
/// executor of the same scope reaps the grandchild before it writes.
pub fn leftovers_of_a_killed_executor_are_reaped(mechanism: Containment, test: &str) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (late, grandchild, pidfile) = (dir.path().join("late"), dir.path().join("grandchild"), dir.path().join("pid"));
    let plugin = write_script(
        dir.path(),
        "forks",
        &format!(
            "(sleep 3; echo late > {late}) &\n{}\n{}\nexec sleep 600",
            record("$!", &grandchild),
            record("$$", &pidfile),
            late = late.display()
        ),
    );
    let scope = scope_for(test);
    let mut helper = start_helper(&scope, mechanism, &plugin);
    let helper_proc = reaper.watch(Proc::of(i32::try_from(helper.id()).unwrap()));
    let plugin = reaper.watch(Proc::from_pidfile(&pidfile));
    let grandchild = reaper.watch(Proc::from_pidfile(&grandchild));
    helper.kill().unwrap(); // SIGKILL: no clean-up code runs in the helper
    helper.wait().unwrap();
    assert!(!helper_proc.running());
    assert!(plugin.wait_stopped_within(PATIENCE), "the plugin outlived its killed parent");
    assert!(grandchild.running(), "premise: the grandchild outlives the killed executor");

    let exec = executor(test, mechanism);
    let reaped = exec.reap_leftovers();
    assert!(reaped.killed.iter().any(|p| p.pid == grandchild.pid), "{grandchild:?} not among {reaped:?}");
    assert!(reaped.survivors.is_empty(), "{reaped:?}");
    assert!(!grandchild.running(), "reap_leftovers returned before the grandchild was gone");
    std::thread::sleep(Duration::from_secs(4));
    assert!(!late.exists(), "the grandchild wrote its file after reap_leftovers");
    assert!(exec.reap_leftovers().killed.is_empty(), "a second reap finds nothing");
}

/// (d) One scope's executor never touches another scope's processes: a helper process runs a
/// plugin (which started a child) in scope "other"; in scope "mine" (this process) a reap of
/// leftovers and a plugin that leaves a child behind kill only their own.
pub async fn scopes_do_not_touch_each_other(mechanism: Containment, test: &str) {
    let mut reaper = Reaper::default();
    let dir = tempfile::tempdir().unwrap();
    let (their_child, their_plugin) = (dir.path().join("their-child"), dir.path().join("their-plugin"));
    let theirs = write_script(
        dir.path(),
        "theirs",
        &format!("sleep 300 &\n{}\n{}\nexec sleep 600", record("$!", &their_child), record("$$", &their_plugin)),
    );
    let other_scope = format!("{}-other", scope_for(test));
    let mut helper = start_helper(&other_scope, mechanism, &theirs);
    reaper.watch(Proc::of(i32::try_from(helper.id()).unwrap()));
    let their_plugin = reaper.watch(Proc::from_pidfile(&their_plugin));
    let their_child = reaper.watch(Proc::from_pidfile(&their_child));

    let mine = executor(&format!("{test}-mine"), mechanism);
    let reaped = mine.reap_leftovers();
    assert!(reaped.killed.is_empty(), "{reaped:?}");
    let my_child = dir.path().join("my-child");
    let leaves = write_script(
        dir.path(),
        "mine",
        &format!("sleep 300 >/dev/null 2>&1 &\n{}\necho '{{}}'", record("$!", &my_child)),
    );
    assert_eq!(mine.run(PluginRequest::new(&leaves, env(), b"{}")).await.unwrap(), b"{}\n");
    let my_child = reaper.watch(Proc::from_pidfile(&my_child));
    assert!(!my_child.running(), "my own leftover survived");
    assert!(their_plugin.running() && their_child.running(), "the other scope's processes were touched");

    // Clean up the other scope as its next instance would.
    helper.kill().unwrap();
    helper.wait().unwrap();
    let other = RawExec::new().with_scope(&other_scope).with_containment(mechanism);
    let reaped = other.reap_leftovers();
    assert!(reaped.killed.iter().any(|p| p.pid == their_child.pid), "{reaped:?}");
    mine.reap_leftovers();
}

/// After runs of every kind, no invocation cgroup is left in the scope directory.
pub async fn nothing_is_left_behind(exec: RawExec, scope_dir: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let ok = write_script(dir.path(), "ok", "cat >/dev/null; echo '{}'");
    let fail = write_script(dir.path(), "fail", "echo oops >&2; exit 1");
    let leaves = write_script(dir.path(), "leaves", "sleep 300 & echo '{}'");
    for _ in 0..5 {
        exec.run(PluginRequest::new(&ok, env(), b"{}")).await.unwrap();
        exec.run(PluginRequest::new(&fail, env(), b"{}")).await.unwrap_err();
        exec.run(PluginRequest::new(&leaves, env(), b"{}")).await.unwrap();
    }
    // Empty cgroups are removed in the background, just after the runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<_> = std::fs::read_dir(scope_dir)
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left in {}: {left:?}", scope_dir.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
