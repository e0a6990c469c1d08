//! The shim binary against a scripted fake daemon on a real unix socket: readiness gating per
//! command (DEL is never gated; the others are sent gated, `/cni?ready`, and the fake refuses
//! them with `503` while not ready, as multus-daemon does), a Go v4.2.x daemon without `/readyz`
//! that ignores the gate, a daemon that appears late, a daemon that never answers, and
//! environment bytes that are not UTF-8.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the fake daemon answers one path: a status and a body, or never.
#[derive(Clone)]
enum Answer {
    Status(u16, &'static str),
    /// `503` for the first `n` requests (counted in the Arc), then 200 with an empty body.
    BusyFirst(Arc<std::sync::atomic::AtomicU32>),
    Never,
}

#[derive(Clone)]
struct Script {
    readyz: Answer,
    healthz: Answer,
    cni: Answer,
    /// Answer a gated `/cni?ready` with `503` while `/readyz` does not answer 200 (multus-daemon);
    /// false: ignore the query (a Go daemon).
    honours_gate: bool,
}

const ADD_REPLY: &str = r#"{"Result":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"0a:58:0a:f4:01:04","sandbox":"/var/run/netns/x"}],"ips":[{"interface":0,"address":"10.244.1.4/24","gateway":"10.244.1.1"}],"dns":{}}}"#;

impl Script {
    fn ready() -> Self {
        Self {
            readyz: Answer::Status(200, ""),
            healthz: Answer::Status(200, ""),
            cni: Answer::Status(200, ADD_REPLY),
            honours_gate: true,
        }
    }

    /// A Go v4.2.x daemon: no `/readyz`, the gate's query ignored.
    fn go_v42() -> Self {
        Self { readyz: Answer::Status(404, ""), honours_gate: false, ..Self::ready() }
    }
}

/// One request the fake daemon received: path (without the query), whether it was gated, and
/// whether the gate refused it; its body.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    gated: bool,
    refused: bool,
    body: Vec<u8>,
}

struct FakeDaemon {
    socket: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDaemon {
    fn start(socket: &Path, script: Script) -> Self {
        let listener = UnixListener::bind(socket).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (seen, script) = (seen.clone(), script.clone());
                    std::thread::spawn(move || serve_one(conn, &script, &seen));
                }
            })
        };
        Self { socket: socket.to_path_buf(), seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `/cni` requests the fake ran (not those its gate refused).
    fn cni_requests(&self) -> Vec<serde_json::Value> {
        self.seen()
            .into_iter()
            .filter(|s| s.path == "/cni" && !s.refused)
            .map(|s| serde_json::from_slice(&s.body).unwrap())
            .collect()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.socket);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn serve_one(conn: UnixStream, script: &Script, seen: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (path, gated) = (path.to_string(), query.split('&').any(|kv| kv == "ready"));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let ready_now = match &script.readyz {
        Answer::Status(status, _) => *status == 200,
        Answer::BusyFirst(left) => left.load(Ordering::SeqCst) == 0,
        Answer::Never => false,
    };
    let refused = path == "/cni" && gated && script.honours_gate && !ready_now;
    seen.lock().unwrap().push(Seen { path: path.clone(), gated, refused, body });
    let answer = match path.as_str() {
        _ if refused => &Answer::Status(503, "not ready"),
        "/readyz" => &script.readyz,
        "/healthz" => &script.healthz,
        "/cni" => &script.cni,
        _ => &Answer::Status(404, ""),
    };
    match answer {
        Answer::Status(status, body) => {
            let mut conn = conn;
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Answer::BusyFirst(left) => {
            let busy = left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            let status = if busy { "503 Service Unavailable" } else { "200 OK" };
            let mut conn = conn;
            let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
        // Hold the connection open without answering until the client gives up.
        Answer::Never => {
            let mut sink = [0u8; 1];
            let _ = (&conn).read(&mut sink);
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("multus.sock")
    }

    fn stdin(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim",
            "daemonSocketDir": self.dir.path(), "logToStderr": true, "logLevel": "verbose",
        })
        .to_string()
    }

    fn command(&self, cni_command: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_multus-shim"));
        cmd.env_clear()
            .env("CNI_COMMAND", cni_command)
            .env("CNI_CONTAINERID", "3f6955aa")
            .env("CNI_NETNS", "/var/run/netns/x")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/opt/cni/bin")
            .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0")
            .env("MULTUS_SHIM_READY_WAIT_MS", "10000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, cmd: Command) -> Output {
        self.run_with_stdin(cmd, &self.stdin())
    }

    fn run_with_stdin(&self, mut cmd: Command, stdin: &str) -> Output {
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn del_is_not_gated_on_readiness() {
    let env = Env::new();
    // A daemon still syncing its caches, or draining after SIGTERM: /readyz answers 500.
    let daemon = FakeDaemon::start(&env.socket(), Script { readyz: Answer::Status(500, ""), ..Script::ready() });
    let out = env.run(env.command("DEL"));
    assert!(out.status.success(), "{}", text(&out.stdout));
    let sent = daemon.cni_requests();
    assert_eq!(sent.len(), 1, "the DEL reached the daemon");
    assert_eq!(sent[0]["env"]["CNI_COMMAND"], "DEL");
    assert!(daemon.seen().iter().all(|s| s.path == "/cni"), "no readiness probe before a DEL");
}

#[test]
fn add_and_check_wait_for_readiness() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script { readyz: Answer::Status(500, ""), ..Script::ready() });
    for command in ["ADD", "CHECK"] {
        let mut cmd = env.command(command);
        cmd.env("MULTUS_SHIM_READY_WAIT_MS", "300");
        let out = env.run(cmd);
        assert!(!out.status.success());
        let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(err["msg"].as_str().unwrap().contains("timed out waiting for the daemon"), "{err}");
    }
    assert!(daemon.cni_requests().is_empty(), "nothing ran while the daemon was not ready");
    let seen = daemon.seen();
    assert!(seen.iter().any(|s| s.path == "/readyz"), "refused, the shim polled readiness: {seen:?}");
    assert!(seen.iter().filter(|s| s.path == "/cni").all(|s| s.gated && s.refused), "{seen:?}");
}

#[test]
fn a_ready_daemon_costs_one_round_trip() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script::ready());
    for command in ["ADD", "CHECK"] {
        let out = env.run(env.command(command));
        assert!(out.status.success(), "{command}: {}", text(&out.stdout));
    }
    let seen = daemon.seen();
    assert_eq!(seen.len(), 2, "no readiness probe: {seen:?}");
    assert!(seen.iter().all(|s| s.path == "/cni" && s.gated && !s.refused), "{seen:?}");
}

#[test]
fn a_gated_request_refused_is_sent_again_once_the_daemon_is_ready() {
    let env = Env::new();
    // Not ready for the first probes (caches syncing), then ready.
    let probes = Arc::new(std::sync::atomic::AtomicU32::new(2));
    let daemon = FakeDaemon::start(
        &env.socket(),
        Script { readyz: Answer::BusyFirst(probes.clone()), cni: Answer::Status(200, ADD_REPLY), ..Script::ready() },
    );
    let out = env.run(env.command("ADD"));
    assert!(out.status.success(), "{}", text(&out.stdout));
    let sent = daemon.cni_requests();
    assert_eq!(sent.len(), 1, "the ADD ran once");
    let paths: Vec<_> = daemon.seen().into_iter().map(|s| (s.path, s.refused)).collect();
    assert_eq!(paths.first(), Some(&("/cni".to_string(), true)), "{paths:?}");
    assert_eq!(paths.last(), Some(&("/cni".to_string(), false)), "{paths:?}");
}

#[test]
fn status_answers_50_at_once_when_the_gate_refuses() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script { readyz: Answer::Status(500, ""), ..Script::ready() });
    let mut cmd = env.command("STATUS");
    cmd.env("MULTUS_SHIM_READY_WAIT_MS", "60000");
    let started = std::time::Instant::now();
    let stdin = env.stdin().replace("\"1.0.0\"", "\"1.1.0\"");
    let out = env.run_with_stdin(cmd, &stdin);
    assert!(started.elapsed() < Duration::from_secs(5));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 50, "{err}");
    assert!(daemon.cni_requests().is_empty());
}

#[test]
fn a_go_v42_daemon_without_readyz_serves_add_and_del() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script::go_v42());
    let add = env.run(env.command("ADD"));
    assert!(add.status.success(), "{}", text(&add.stdout));
    let result: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["ips"][0]["address"], "10.244.1.4/24");
    let del = env.run(env.command("DEL"));
    assert!(del.status.success());
    let commands: Vec<_> = daemon.cni_requests().iter().map(|r| r["env"]["CNI_COMMAND"].clone()).collect();
    assert_eq!(commands, ["ADD", "DEL"]);
    // Serving is the Go v4.2.x daemon's readiness (its shim probed /healthz, always 200): the
    // gated ADD goes straight through.
    let paths: Vec<_> = daemon.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/cni", "/cni"]);
}

#[test]
fn a_go_v42_daemon_that_starts_late_is_polled_through_healthz() {
    let env = Env::new();
    let mut child = env.command("ADD").spawn().unwrap();
    child.stdin.take().unwrap().write_all(env.stdin().as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let daemon = FakeDaemon::start(&env.socket(), Script::go_v42());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert_eq!(daemon.cni_requests().len(), 1);
    let paths: Vec<_> = daemon.seen().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&"/healthz".to_string()), "fell back to /healthz: {paths:?}");
}

#[test]
fn del_reaches_a_daemon_that_comes_up_late() {
    let env = Env::new();
    let mut cmd = env.command("DEL");
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(env.stdin().as_bytes()).unwrap();
    // No socket yet (a daemon restarting); it appears a little later.
    std::thread::sleep(Duration::from_millis(300));
    let daemon = FakeDaemon::start(&env.socket(), Script::ready());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let sent = daemon.cni_requests();
    assert_eq!(sent.len(), 1, "the DEL was re-sent until the daemon answered: {}", text(&out.stderr));
    assert_eq!(sent[0]["env"]["CNI_COMMAND"], "DEL");
}

#[test]
fn del_is_re_sent_while_the_daemon_answers_503() {
    let env = Env::new();
    let busy = Arc::new(std::sync::atomic::AtomicU32::new(2));
    let daemon = FakeDaemon::start(&env.socket(), Script { cni: Answer::BusyFirst(busy.clone()), ..Script::ready() });
    let out = env.run(env.command("DEL"));
    assert!(out.status.success());
    assert_eq!(daemon.cni_requests().len(), 3, "two 503s, then the DEL went through");
    assert_eq!(busy.load(Ordering::SeqCst), 0);
}

#[test]
fn del_gives_up_on_a_daemon_that_never_appears_and_exits_0() {
    let env = Env::new();
    let mut cmd = env.command("DEL");
    cmd.env("MULTUS_SHIM_READY_WAIT_MS", "300");
    let out = env.run(cmd);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("CmdDel (shim): failed to send CNI request"), "{}", text(&out.stderr));
}

#[test]
fn the_cni_call_is_bounded() {
    let env = Env::new();
    // A daemon that accepts the request and never answers (e.g. stuck on a FIFO netns).
    let _daemon = FakeDaemon::start(&env.socket(), Script { cni: Answer::Never, ..Script::ready() });
    let mut add = env.command("ADD");
    add.env("MULTUS_SHIM_CNI_TIMEOUT_MS", "500");
    let out = env.run(add);
    assert!(!out.status.success());
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 999);
    assert!(err["msg"].as_str().unwrap().contains("no complete answer within"), "{err}");

    let mut del = env.command("DEL");
    del.env("MULTUS_SHIM_CNI_TIMEOUT_MS", "500");
    let out = env.run(del);
    assert!(out.status.success(), "DEL exits 0 even when the daemon does not answer");
    assert!(text(&out.stderr).contains("no complete answer within"), "{}", text(&out.stderr));
}

#[test]
fn forwarded_variables_that_are_not_utf8_are_a_clear_error() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script::ready());
    let bad_args = OsString::from_vec(b"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-\xff".to_vec());

    let mut add = env.command("ADD");
    add.env("CNI_ARGS", &bad_args);
    let out = env.run(add);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], 4, "{err}");
    assert_eq!(err["msg"], "CmdAdd (shim): environment variable CNI_ARGS is not valid UTF-8");
    assert!(!text(&out.stdout).contains("panicked") && !text(&out.stderr).contains("panicked"));

    // A DEL is sent anyway (issue 21: a DEL that never reaches the daemon leaks the pod): bad
    // bytes in CNI_ARGS replaced, a netns path that is not UTF-8 left out, not made up.
    let mut del = env.command("DEL");
    del.env("CNI_NETNS", OsString::from_vec(b"/var/run/netns/\xfe".to_vec()));
    del.env("CNI_ARGS", &bad_args);
    let out = env.run(del);
    assert!(out.status.success(), "DEL exits 0: {}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("CNI_ARGS, CNI_NETNS not valid UTF-8; sending the DEL anyway"),
        "{}",
        text(&out.stderr)
    );
    let sent = daemon.cni_requests();
    assert_eq!(sent.len(), 1, "only the DEL reached the daemon");
    assert_eq!(sent[0]["env"]["CNI_COMMAND"], "DEL");
    assert_eq!(sent[0]["env"]["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-\u{fffd}");
    assert!(sent[0]["env"].get("CNI_NETNS").is_none(), "not sent made up");
}

#[test]
fn other_variables_are_not_forwarded_whatever_their_bytes() {
    let env = Env::new();
    let daemon = FakeDaemon::start(&env.socket(), Script::ready());
    let mut add = env.command("ADD");
    add.env("HOME", OsString::from_vec(b"/root/\xff".to_vec())).env("SECRET_TOKEN", "x");
    let out = env.run(add);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let sent = daemon.cni_requests();
    let keys: Vec<_> = sent[0]["env"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["CNI_ARGS", "CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS", "CNI_PATH"]);
}
