use super::*;
use crate::error::CniError;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn env() -> Vec<(String, String)> {
    vec![("CNI_COMMAND".into(), "ADD".into()), ("CNI_IFNAME".into(), "eth0".into())]
}

#[tokio::test]
async fn runs_a_plugin_and_passes_env_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(
        dir.path(),
        "ok",
        r#"in=$(cat); printf '{"cmd":"%s","if":"%s","in":%s,"extra":"%s"}' "$CNI_COMMAND" "$CNI_IFNAME" "$in" "$EXTRA""#,
    );
    let exec = RawExec {
        timeout: None,
        extra_env: vec![("EXTRA".into(), "x".into()), ("CNI_IFNAME".into(), "lost".into())],
        ..RawExec::default()
    };
    let out = exec.run(PluginRequest::new(&p, env(), br#"{"a":1}"#)).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v, serde_json::json!({"cmd":"ADD","if":"eth0","in":{"a":1},"extra":"x"}));
}

#[tokio::test]
async fn endless_output_is_cut_off_and_the_plugin_killed() {
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB of stdout (4× the cap) and as much stderr: neither may reach the daemon's memory.
    let p = write_script(
        dir.path(),
        "flood",
        "cat >/dev/null; head -c 67108864 /dev/zero >&2 & head -c 67108864 /dev/zero; wait",
    );
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(e, ExecError::OutputTooLarge { limit: MAX_PLUGIN_STDOUT, .. }), "{e}");
    let chatty = write_script(dir.path(), "chatty", "cat >/dev/null; head -c 8388608 /dev/zero >&2; echo '{}'");
    let out = RawExec::new().run(PluginRequest::new(&chatty, env(), b"{}")).await.unwrap();
    assert_eq!(out, b"{}\n", "a long stderr is drained and dropped past the cap");
}

/// A plugin writing 64 MiB to stderr fails with an error of a few KiB: its first and last
/// 2 KiB and a marker counting the bytes cut (before: 1 MiB of it, in the error and the log).
#[tokio::test]
async fn a_flood_on_stderr_makes_a_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(
        dir.path(),
        "flood",
        "cat >/dev/null; echo FIRST >&2; head -c 67108864 /dev/zero | tr '\\0' x >&2; echo LAST >&2; exit 1",
    );
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    let text = e.to_string();
    assert!(text.len() < 6 * 1024, "{} bytes of error", text.len());
    let cut = 64 * 1024 * 1024 + 11 - MAX_PLUGIN_STDERR;
    assert!(text.contains(&format!("[… {cut} bytes cut …]")), "{}", &text[..text.len().min(300)]);
    assert!(text.starts_with(r#"netplugin failed: "FIRST\nxxx"#), "{}", &text[..40]);
    assert!(text.ends_with(r#"xxxLAST\n""#), "{}", &text[text.len() - 40..]);
    assert_eq!(e.to_cni_error().msg.len(), text.len());

    // Stdout that is not an error object is echoed the same way.
    let p = write_script(dir.path(), "garbage", "cat >/dev/null; head -c 8388608 /dev/zero | tr '\\0' y; exit 1");
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(e, ExecError::BadErrorOutput { .. }), "{e:?}");
    assert!(e.to_string().len() < 6 * 1024 && e.to_string().contains("bytes cut"));

    // And so is an error object's msg.
    let p = write_script(
        dir.path(),
        "longmsg",
        "cat >/dev/null; printf '{\"code\":7,\"msg\":\"'; head -c 1048576 /dev/zero | tr '\\0' m; printf '\"}'; exit 1",
    );
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    let obj = e.plugin_error().unwrap();
    assert_eq!(obj.code, 7);
    assert!(obj.msg.len() < 5 * 1024 && obj.msg.contains("bytes cut"), "{}", obj.msg.len());
}

/// A plugin that exits 0 with its result, but leaves a child holding its stdout, is done:
/// the run returns its result within the exit grace (before: at the timeout, failed), and
/// the child is killed.
#[tokio::test]
async fn a_child_holding_stdout_does_not_hold_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child");
    let p = write_script(
        dir.path(),
        "leaves",
        &format!("cat >/dev/null; (sleep 300) & echo $! > {}; echo '{{}}'", pidfile.display()),
    );
    let start = Instant::now();
    let out = RawExec::with_timeout(Duration::from_secs(10)).run(PluginRequest::new(&p, env(), b"{}")).await;
    assert_eq!(out.unwrap(), b"{}\n");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let running = !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z');
    if running {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(!running, "the plugin's child {pid} survived the run");
}

#[tokio::test]
async fn error_object_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(
        dir.path(),
        "fail",
        r#"cat >/dev/null; echo '{"code":11,"msg":"try again"}'; echo log >&2; exit 1"#,
    );
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert_eq!(e.plugin_error(), Some(&CniError::new(11, "try again")));
}

#[tokio::test]
async fn garbage_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "garbage", "echo 'not json'; exit 3");
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(&e, ExecError::BadErrorOutput { status: 3, stdout, .. } if stdout == "not json\n"), "{e:?}");
}

#[tokio::test]
async fn nothing_on_stdout_but_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "stderr", "echo 'it broke' >&2; exit 1");
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(&e, ExecError::NoErrorOutput { status: 1, stderr } if stderr == "it broke\n"), "{e:?}");
    assert_eq!(e.to_cni_error().msg, r#"netplugin failed: "it broke\n""#);
}

#[tokio::test]
async fn timeout_kills_and_reaps() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = write_script(dir.path(), "slow", &format!("echo $$ > {}; exec sleep 60", pidfile.display()));
    let start = Instant::now();
    let e =
        RawExec::with_timeout(Duration::from_millis(500)).run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(e, ExecError::Timeout { .. }), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    // Killed and reaped: the pid no longer exists (not even as a zombie).
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let gone = !Path::new(&format!("/proc/{pid}")).exists();
    assert!(gone, "plugin process {pid} still exists");
}

#[tokio::test]
async fn request_timeout_overrides_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "slow", "exec sleep 60");
    let req = PluginRequest::new(&p, env(), b"{}").with_timeout(Some(Duration::from_millis(200)));
    let e = RawExec::with_timeout(Duration::from_secs(3600)).run(req).await.unwrap_err();
    assert!(matches!(e, ExecError::Timeout { after, .. } if after == Duration::from_millis(200)));
}

#[tokio::test]
async fn death_by_signal_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "killed", "echo dying >&2; kill -9 $$");
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(&e, ExecError::Signaled { signal: 9, stderr, .. } if stderr == "dying\n"), "{e:?}");
    assert_eq!(e.to_cni_error().code, 0);
}

#[tokio::test]
async fn large_output_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // 2 MiB on stdout and 1 MiB on stderr, before reading 1 MiB of stdin.
    let p = write_script(dir.path(), "big", "head -c 2097152 /dev/zero; head -c 1048576 /dev/zero >&2; cat >/dev/null");
    let input = vec![b' '; 1 << 20];
    let out = RawExec::with_timeout(Duration::from_secs(60)).run(PluginRequest::new(&p, env(), &input)).await.unwrap();
    assert_eq!(out.len(), 2 << 20);
}

#[tokio::test]
async fn plugin_that_never_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "deaf", "echo '{}'");
    let input = vec![b' '; 4 << 20];
    let out = RawExec::with_timeout(Duration::from_secs(60)).run(PluginRequest::new(&p, env(), &input)).await.unwrap();
    assert_eq!(out, b"{}\n");
}

#[tokio::test]
async fn stdin_is_closed_after_writing() {
    let dir = tempfile::tempdir().unwrap();
    // `cat` only finishes when it sees EOF.
    let p = write_script(dir.path(), "cat", "cat");
    let out =
        RawExec::with_timeout(Duration::from_secs(30)).run(PluginRequest::new(&p, env(), b"hello")).await.unwrap();
    assert_eq!(out, b"hello");
}

#[tokio::test]
async fn spawn_failure() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("not-executable");
    std::fs::write(&p, "#!/bin/sh\n").unwrap();
    let e = RawExec::new().run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    assert!(matches!(e, ExecError::Spawn { .. }), "{e:?}");
}

#[tokio::test]
async fn text_file_busy_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "busy", "echo ok");
    // An open write handle makes exec fail with ETXTBSY until it is closed.
    let handle = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(handle);
    });
    let out = RawExec::with_timeout(Duration::from_secs(30)).run(PluginRequest::new(&p, env(), b"{}")).await.unwrap();
    assert_eq!(out, b"ok\n");
    closer.join().unwrap();
}

#[tokio::test]
async fn text_file_busy_on_every_attempt_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "busy", "echo ok");
    let _writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let exec =
        RawExec { text_busy: TextBusyRetry { retries: 2, delay: Duration::from_millis(10) }, ..RawExec::default() };
    let e = exec.run(PluginRequest::new(&p, env(), b"{}")).await.unwrap_err();
    // Not Go's "success with empty output": the run fails, naming the cause.
    assert!(
        matches!(&e, ExecError::Spawn { source, chroot: None, .. } if source.raw_os_error() == Some(libc::ETXTBSY)),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&format!("failed to start plugin {}: ", p.display())), "{e}");
}

#[tokio::test]
async fn a_cancelled_request_kills_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let p = write_script(dir.path(), "slow", &format!("echo $$ > {}; exec sleep 60", pidfile.display()));
    let exec = RawExec::new();
    let cancelled =
        tokio::time::timeout(Duration::from_millis(500), exec.run(PluginRequest::new(&p, env(), b"{}"))).await;
    assert!(cancelled.is_err());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // Killed on drop; tokio reaps it in the background. Gone or a zombie: not running.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running =
            stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')) && !stat.is_empty();
        if !running {
            break;
        }
        assert!(Instant::now() < deadline, "plugin {pid} still running after cancellation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn blocking_variant_outside_and_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "ok", "cat");
    let exec = RawExec::with_timeout(Duration::from_secs(30));
    assert_eq!(exec.run_blocking(PluginRequest::new(&p, env(), b"x")).unwrap(), b"x");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(async { exec.run_blocking(PluginRequest::new(&p, env(), b"y")) });
    assert_eq!(out.unwrap(), b"y");
}
