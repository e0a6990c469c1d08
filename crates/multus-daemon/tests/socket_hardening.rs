//! The socket server under hostile and unlucky clients, over a real unix socket: idle and
//! half-sent requests, oversized bodies and the body budget, malformed HTTP and JSON,
//! DEL while not ready, graceful shutdown, and a second daemon on the same socket.
//! No root and no API server needed.

use multus_api::client;
use multus_daemon::server::{self, Api, BindError, Caller, Health, Limits, Reply};
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A generous bound for "answers in bounded time": far above any real answer, only hit by a
/// hang.
const HANG: Duration = Duration::from_secs(30);

/// Records the `CNI_COMMAND` of every request; ADDs wait until `release` is notified when
/// `hold_adds` is set, and every request waits forever when `hang` is set.
#[derive(Default)]
struct Recorder {
    commands: Mutex<Vec<String>>,
    hold_adds: bool,
    hang: bool,
    release: tokio::sync::Notify,
}

impl Recorder {
    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

impl Api for Recorder {
    fn cni(&self, body: Vec<u8>, _caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(async move {
            let command = multus_api::Request::from_json(&body)
                .ok()
                .and_then(|r| r.env_var("CNI_COMMAND").map(str::to_string))
                .unwrap_or_default();
            self.commands.lock().unwrap().push(command.clone());
            if self.hang {
                std::future::pending::<()>().await;
            }
            if self.hold_adds && command == "ADD" {
                self.release.notified().await;
            }
            Reply::ok(Vec::new())
        })
    }
    fn delegate(&self, body: Vec<u8>, caller: Caller) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        self.cni(body, caller)
    }
}

struct TestServer {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    health: Arc<Health>,
    shutdown: tokio::sync::watch::Sender<bool>,
    done: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
}

impl TestServer {
    fn start(api: Arc<dyn Api>, limits: Limits, grace: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (listener, socket) = {
            let _guard = runtime.enter();
            server::bind_socket(&dir.path().join("run")).unwrap()
        };
        let health = Arc::new(Health::default());
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let done = runtime.spawn(server::serve_with(listener, api, health.clone(), limits, rx, grace));
        Self { _dir: dir, socket, health, shutdown, done: Some(done), runtime }
    }

    /// Request shutdown and wait (bounded) for `serve` to return.
    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take() {
            self.runtime.block_on(async { tokio::time::timeout(HANG, done).await }).expect("serve returned").unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn cni_request(command: &str) -> Vec<u8> {
    multus_api::Request::from_env(
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"),
        ],
        br#"{"cniVersion":"1.0.0","name":"n","type":"multus-shim"}"#.to_vec(),
    )
    .to_json()
}

fn post(socket: &Path, path: &str, body: &[u8]) -> client::HttpResponse {
    client::post(socket, path, body, Some(HANG)).unwrap()
}

/// Send raw bytes and read the whole answer (the server closes every connection).
fn raw(socket: &Path, bytes: &[u8]) -> String {
    let mut conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(HANG)).unwrap();
    let _ = conn.write_all(bytes);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Wait (bounded) until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn idle_and_half_sent_connections_do_not_stop_real_requests() {
    let api = Arc::new(Recorder::default());
    let s = TestServer::start(api.clone(), Limits { connection_limit: Some(2), ..Limits::default() }, HANG);
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(UnixStream::connect(&s.socket).unwrap());
    }
    for partial in
        [&b"POST /cni HTTP/1.1\r\nContent-Le"[..], b"POST /cni HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"env\":"]
    {
        for _ in 0..2 {
            let mut c = UnixStream::connect(&s.socket).unwrap();
            c.write_all(partial).unwrap();
            held.push(c);
        }
    }
    // connectionLimit 2 and 304 stalled clients: the real request is served at once.
    let r = post(&s.socket, "/cni", &cni_request("DEL"));
    assert_eq!(r.status, 200);
    assert_eq!(api.commands(), ["DEL"]);
    assert_eq!(post(&s.socket, "/healthz", b"null").status, 200);
}

#[test]
fn a_huge_connection_limit_is_no_limit() {
    let api = Arc::new(Recorder::default());
    let s = TestServer::start(api.clone(), Limits { connection_limit: Some(usize::MAX), ..Limits::default() }, HANG);
    assert_eq!(post(&s.socket, "/cni", &cni_request("DEL")).status, 200);
}

#[test]
fn idle_connections_beyond_the_cap_make_room_for_real_requests() {
    let api = Arc::new(Recorder::default());
    // Header timeout as long as the client's patience: only eviction can serve the request.
    let limits = Limits { max_connections: 8, header_read_timeout: HANG * 2, ..Limits::default() };
    let s = TestServer::start(api.clone(), limits, HANG);
    let mut idle: Vec<_> = (0..40).map(|_| UnixStream::connect(&s.socket).unwrap()).collect();
    // 40 idle clients for 8 connections (and the probe lane): the oldest silent ones are
    // closed as new ones come, so the request behind them in the backlog is served.
    assert_eq!(post(&s.socket, "/cni", &cni_request("DEL")).status, 200);
    assert_eq!(api.commands(), ["DEL"]);
    let closed_at_least = 40 + 1 - (8 + server::PROBE_LANE_CONNECTIONS);
    for conn in &mut idle[..closed_at_least] {
        conn.set_read_timeout(Some(HANG)).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(conn.read(&mut buf).unwrap_or(0), 0, "the oldest idle connections were closed");
    }
}

#[test]
fn an_idle_connection_is_closed_by_the_header_timeout() {
    let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let s = TestServer::start(Arc::new(Recorder::default()), limits, HANG);
    for partial in [&b""[..], b"POST /cni HTTP/1.1\r\nContent-Le"] {
        let mut conn = UnixStream::connect(&s.socket).unwrap();
        conn.write_all(partial).unwrap();
        conn.set_read_timeout(Some(HANG)).unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || status_of(&answer) == 408, "{answer}");
    }
    eventually("no connection is left open", || s.health.open_connections() == 0);
}

#[test]
fn a_stalled_body_gets_408_and_frees_its_budget() {
    let api = Arc::new(Recorder::default());
    let limits = Limits { body_read_timeout: Duration::from_millis(300), ..Limits::default() };
    let s = TestServer::start(api.clone(), limits, HANG);
    let answer = raw(&s.socket, b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"env\":");
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("request body not received within"), "{answer}");
    eventually("the budget is returned", || s.health.body_bytes().0 == 0);
    assert!(api.commands().is_empty());
}

#[test]
fn oversized_bodies_get_a_clear_413() {
    let api = Arc::new(Recorder::default());
    let s = TestServer::start(api.clone(), Limits::default(), HANG);
    // Declared too large: refused before a byte of the body is read.
    let answer = raw(&s.socket, b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n");
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(answer.contains("request body too large: 16777216 bytes, the limit is 1048576 bytes"), "{answer}");
    // Chunked, growing past the limit.
    let chunk = vec![b'a'; 64 * 1024];
    let mut body = b"POST /cni HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(&chunk);
        body.extend_from_slice(b"\r\n");
    }
    let answer = raw(&s.socket, &body);
    assert_eq!(status_of(&answer), 413, "{answer}");
    assert!(answer.contains("more than 1048576 bytes"), "{answer}");
    // Through the client as the shim sends it.
    let r = post(&s.socket, "/cni", &vec![b' '; 2 * 1024 * 1024]);
    assert_eq!(r.status, 413);
    // Exactly the limit is accepted (a JSON request padded with spaces).
    let mut at_limit = cni_request("DEL");
    at_limit.resize(server::MAX_BODY_BYTES, b' ');
    assert_eq!(post(&s.socket, "/cni", &at_limit).status, 200);
    assert_eq!(api.commands(), ["DEL"]);
    eventually("the budget is returned", || s.health.body_bytes().0 == 0);
}

#[test]
fn sixty_clients_sending_16_mb_stay_within_the_body_budget() {
    let api = Arc::new(Recorder::default());
    let limits = Limits { body_read_timeout: Duration::from_secs(2), ..Limits::default() };
    let budget = limits.body_budget_bytes;
    let s = TestServer::start(api.clone(), limits, HANG);
    let socket = s.socket.clone();
    let senders: Vec<_> = (0..60)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut conn = UnixStream::connect(&socket).unwrap();
                conn.set_write_timeout(Some(HANG)).unwrap();
                conn.set_read_timeout(Some(HANG)).unwrap();
                // Half declare 16 MB, half stream chunks without a length.
                let head: &[u8] = if i % 2 == 0 {
                    b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n"
                } else {
                    b"POST /cni HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                };
                let _ = conn.write_all(head);
                let chunk = vec![b'x'; 256 * 1024];
                for _ in 0..64 {
                    let sent = if i % 2 == 0 {
                        conn.write_all(&chunk)
                    } else {
                        conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                            .and_then(|()| conn.write_all(&chunk))
                            .and_then(|()| conn.write_all(b"\r\n"))
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                let mut answer = Vec::new();
                let _ = conn.read_to_end(&mut answer);
                status_of(&String::from_utf8_lossy(&answer))
            })
        })
        .collect();
    let statuses: Vec<u16> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| matches!(s, 413 | 503 | 408 | 0)), "{statuses:?}");
    assert!(statuses.contains(&413), "{statuses:?}");
    let (now, peak) = s.health.body_bytes();
    assert!(peak <= budget, "peak {peak} bytes over the budget of {budget}");
    assert!(now <= budget);
    assert_eq!(post(&s.socket, "/cni", &cni_request("DEL")).status, 200, "the daemon still serves");
    assert_eq!(api.commands(), ["DEL"]);
}

#[test]
fn malformed_http_gets_4xx() {
    let limits = Limits { body_read_timeout: Duration::from_millis(500), ..Limits::default() };
    let s = TestServer::start(Arc::new(Recorder::default()), limits, HANG);
    let cases: [(&[u8], u16); 5] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /cni HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        (b"POST /cni HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n", 400),
        (b"POST /cni HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 408),
    ];
    for (bytes, expected) in cases {
        let answer = raw(&s.socket, bytes);
        assert_eq!(status_of(&answer), expected, "{}: {answer}", String::from_utf8_lossy(bytes));
    }
    let mut huge_header = b"POST /cni HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(&raw(&s.socket, &huge_header)), 431);
    assert_eq!(post(&s.socket, "/healthz", b"null").status, 200, "still serving");
}

#[test]
fn malformed_json_base64_and_utf8_get_clear_400s() {
    let config = multus::config::DaemonConfig::from_bytes(br#"{"cniVersion":"1.0.0"}"#).unwrap();
    let exec = Arc::new(cni::exec::RawExec::new());
    let daemon = Arc::new(multus_daemon::daemon::Daemon::without_cluster(config, exec));
    let api = Arc::new(multus_daemon::handler::Handler::new(daemon));
    let s = TestServer::start(api, Limits::default(), HANG);
    let cases: [&[u8]; 9] = [
        b"",
        b"{",
        b"[1,2,3]",
        b"{\"env\":{\"CNI_COMMAND\":\"DEL\xff\"}}",
        br#"{"env":{"CNI_COMMAND":"DEL"},"config":"not base64!"}"#,
        br#"{"env":{"CNI_COMMAND":"DEL"},"config":12}"#,
        br#"{"env":{"CNI_COMMAND":7}}"#,
        br#"{"env":{"CNI_COMMAND":"DEL"}}"#,
        br#"{"env":{"CNI_COMMAND":"ADD","CNI_CONTAINERID":"c","CNI_NETNS":"/x"}}"#,
    ];
    for body in cases {
        let r = post(&s.socket, "/cni", body);
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{}: {text}", String::from_utf8_lossy(body));
        assert!(text.trim().len() > 5, "a message that says what is wrong: {text:?}");
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(post(&s.socket, "/cni", deep.as_bytes()).status, 400, "deep nesting is refused, not a stack overflow");
    assert_eq!(post(&s.socket, "/healthz", b"null").status, 200, "still serving");
}

#[test]
fn del_is_served_while_not_ready() {
    let api = Arc::new(Recorder::default());
    let s = TestServer::start(api.clone(), Limits::default(), HANG);
    // Start-up: the caches have not synced, /readyz says so, and a DEL is still run.
    assert!(!s.health.is_ready());
    assert_eq!(post(&s.socket, "/readyz", b"null").status, 500);
    assert_eq!(post(&s.socket, "/cni", &cni_request("DEL")).status, 200);
    assert_eq!(api.commands(), ["DEL"]);
}

#[test]
fn shutdown_serves_del_and_finishes_requests_in_flight() {
    let api = Arc::new(Recorder { hold_adds: true, ..Recorder::default() });
    let mut s = TestServer::start(api.clone(), Limits::default(), HANG);
    s.health.set_ready(true);
    let add = {
        let socket = s.socket.clone();
        std::thread::spawn(move || post(&socket, "/cni", &cni_request("ADD")).status)
    };
    eventually("the ADD is in flight", || api.commands() == ["ADD"]);
    let _ = s.shutdown.send(true);
    eventually("/readyz answers 500", || post(&s.socket, "/readyz", b"null").status == 500);
    assert_eq!(post(&s.socket, "/healthz", b"null").status, 200);
    assert_eq!(post(&s.socket, "/cni", &cni_request("DEL")).status, 200, "DEL served while draining");
    assert!(s.socket.exists(), "still listening while the ADD runs");
    api.release.notify_one();
    assert_eq!(add.join().unwrap(), 200, "the ADD in flight finished and was answered");
    s.stop();
    assert_eq!(api.commands(), ["ADD", "DEL"]);
    assert!(!s.socket.exists(), "our socket is removed once drained");
}

#[test]
fn shutdown_grace_is_bounded() {
    let api = Arc::new(Recorder { hang: true, ..Recorder::default() });
    let mut s = TestServer::start(api.clone(), Limits::default(), Duration::from_millis(500));
    let socket = s.socket.clone();
    std::thread::spawn(move || client::post(&socket, "/cni", &cni_request("ADD"), Some(HANG)));
    eventually("the request is in flight", || s.health.in_flight() == 1);
    s.stop();
    assert_eq!(s.health.in_flight(), 1, "serve returned with the hung request still running");
    assert!(!s.socket.exists());
}

#[test]
fn a_second_daemon_refuses_a_socket_that_answers() {
    let api = Arc::new(Recorder::default());
    let s = TestServer::start(api, Limits::default(), HANG);
    let second = {
        let _guard = s.runtime.enter();
        server::bind_socket(s.socket.parent().unwrap())
    };
    let err = second.err().expect("refused");
    assert!(matches!(err, BindError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("another daemon is serving on"), "{err}");
    assert_eq!(post(&s.socket, "/healthz", b"null").status, 200, "the first daemon keeps its socket");
}

/// Issue 21: a daemon whose connection slots are all taken by CNI requests still answers
/// probes at once (probe lane), and a second daemon starting meanwhile does not take its
/// socket: the owner lock says it is alive, however slow its answers. Before, `/healthz` sat
/// in the backlog, the newcomer's 3 s probe went unanswered and it replaced the socket while
/// the first daemon kept running without one.
#[test]
fn a_saturated_daemon_answers_probes_and_keeps_its_socket() {
    let api = Arc::new(Recorder { hold_adds: true, ..Recorder::default() });
    let limits = Limits { max_connections: 8, ..Limits::default() };
    let s = TestServer::start(api.clone(), limits, HANG);
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let socket = s.socket.clone();
            std::thread::spawn(move || post(&socket, "/cni", &cni_request("ADD")))
        })
        .collect();
    eventually("every regular place holds a running ADD", || s.health.in_flight() == 8);
    let started = std::time::Instant::now();
    let probe = client::request(&s.socket, "GET", "/healthz", b"", Some(Duration::from_secs(2)));
    assert_eq!(probe.expect("/healthz answered while saturated").status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "answered at once: {:?}", started.elapsed());

    let second = {
        let _guard = s.runtime.enter();
        server::bind_socket(s.socket.parent().unwrap())
    };
    let err = second.err().expect("the newcomer is refused");
    assert!(matches!(err, BindError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("multus.sock.lock"), "refused by the owner lock: {err}");
    assert!(started.elapsed() < server::SILENT_SOCKET_PATIENCE, "refused without waiting for a probe");

    // Every ADD is served, the two beyond the limit once places free up.
    for _ in 0..10 {
        api.release.notify_one();
    }
    let deadline = std::time::Instant::now() + HANG;
    while api.commands().len() < 10 || s.health.in_flight() > 0 {
        api.release.notify_one();
        assert!(std::time::Instant::now() < deadline, "ADDs not all served: {:?}", api.commands());
        std::thread::sleep(Duration::from_millis(10));
    }
    for c in clients {
        assert_eq!(c.join().unwrap().status, 200);
    }
}

#[test]
fn the_owner_lock_goes_with_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let (first, path) = server::bind_socket(dir.path()).unwrap();
    assert!(first.holds_owner_lock());
    assert!(first.remove_if_ours());
    assert!(!first.holds_owner_lock(), "released with the socket (a draining daemon owns nothing)");
    let (second, _) = server::bind_socket(dir.path()).expect("the path is free");
    assert!(second.holds_owner_lock());
    drop(first);
    assert!(path.exists(), "the first daemon's exit leaves the second one's socket");
    drop(second);
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(multus_api::SOCKET_FILE);
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists(), "a socket left behind by a crashed daemon");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let (listener, socket) = server::bind_socket(dir.path()).unwrap();
    assert_eq!(socket, path);
    assert!(UnixStream::connect(&path).is_ok(), "the new socket accepts");
    drop(listener);
    assert!(!path.exists(), "removed on exit");
}

/// Regression (soak, 5 in ~950 `kill -9` + restart cycles): right after a daemon was killed,
/// `connect` to its socket could still succeed, and the restarted daemon refused to start. A
/// socket that accepts but never answers is now replaced after a short patience.
#[test]
fn a_socket_that_accepts_but_never_answers_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(multus_api::SOCKET_FILE);
    // Bound and listening (so `connect` succeeds through the backlog) but never accepted.
    let silent = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert!(UnixStream::connect(&path).is_ok(), "the silent socket accepts connections");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let started = std::time::Instant::now();
    let (listener, socket) = server::bind_socket(dir.path()).expect("the silent socket is taken over");
    assert!(started.elapsed() >= server::SILENT_SOCKET_PATIENCE, "probed for the whole patience first");
    assert_eq!(socket, path);
    assert!(listener.is_ours());
    drop(silent);
    drop(listener);
    assert!(!path.exists(), "removed on exit");
}

#[test]
fn exit_removes_the_socket_only_while_it_is_ours() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    let (ours, path) = server::bind_socket(dir.path()).unwrap();
    assert!(ours.is_ours());
    // Another daemon took the path over (e.g. after an operator removed ours).
    std::fs::remove_file(&path).unwrap();
    let theirs = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert!(!ours.is_ours());
    drop(ours);
    assert!(path.exists(), "the other daemon's socket is left alone");
    assert!(UnixStream::connect(&path).is_ok());
    drop(theirs);
}

#[test]
fn socket_directory_permissions() {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _guard = runtime.enter();
    // Missing: created 0700 (parents too).
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("a/b");
    let (_l1, sock) = server::bind_socket(&missing).unwrap();
    assert_eq!((mode(&missing), mode(&dir.path().join("a")), mode(&sock)), (0o700, 0o700, 0o600));
    // Existing with other permissions: left as they are; the socket is still 0600.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_l2, sock) = server::bind_socket(&shared).unwrap();
    assert_eq!((mode(&shared), mode(&sock)), (0o755, 0o600));
    // Nothing else is left in the directory (the temporary bind name was renamed away) but
    // the owner lock, 0600 too.
    let mut names: Vec<String> =
        std::fs::read_dir(&shared).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, [multus_api::SOCKET_FILE.to_string(), format!("{}.lock", multus_api::SOCKET_FILE)]);
    assert_eq!(mode(&server::owner_lock_path(&shared)), 0o600);
}
