//! The API server's failure modes, scripted with wiremock (a truncated chunked list with a raw
//! TCP server, which wiremock cannot send), against the real multus-daemon binary: garbage
//! bodies, truncated lists, slow headers, 429 with `Retry-After`, 5xx storms. For each, a CNI
//! ADD gets a CNI error that names the API server within the daemon's pod-lookup deadline, the
//! daemon stays alive with bounded memory, does not hammer the server, and once the server is
//! sane again becomes ready and gets an ADD past the API step (the pod's network names a NAD
//! that does not exist: that error, not an API one, proves the pod was read).
//!
//! Endless lists and endless watch lines (which need a streaming server) are covered by
//! `bounded_responses.rs`. No root needed: the ADDs stop before any delegate runs.

mod raw_api;

use serde_json::{Value, json};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use test_node::{DaemonProcess, ShimCall};
use wiremock::matchers::{any, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use multus_daemon::kube::{POD_CACHE_WAIT, POD_GET_TIMEOUT};
use multus_daemon::kube_nads::FETCH_TIMEOUT;

const NAMESPACE: &str = "default";
/// The NAD every test pod asks for; the API server never has it.
const MISSING_NAD: &str = "missing-net";
/// The error an ADD gets once it is past the API step.
const PAST_THE_API: &str = "cannot find a network-attachment-definition (missing-net)";
/// Slack on every deadline: a loaded 2-core machine running debug builds.
const SLACK: Duration = Duration::from_secs(10);
/// Peak RSS bound (debug build; the same bound as bounded_responses.rs, whose faults are worse).
const MAX_HWM_KIB: u64 = 160 * 1024;
/// How long a fault lasts while requests are counted.
const WINDOW: Duration = Duration::from_secs(10);
/// Requests in [`WINDOW`]: two watches (pods, NADs) backing off from 800 ms make about a dozen,
/// plus the ADD's GET; a retry loop without backoff makes hundreds.
const MAX_REQUESTS_PER_WINDOW: usize = 40;
/// From a sane server to a recovered daemon: the watches' backoff is at most 30 s.
const RECOVERY: Duration = Duration::from_secs(75);

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": format!("uid-{name}"), "resourceVersion": "6",
            "annotations": {"k8s.v1.cni.cncf.io/networks": MISSING_NAD}},
        "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "i"}]}})
}

fn pod_list(pods: &[Value]) -> String {
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "6"}, "items": pods}).to_string()
}

fn pod_watch(pods: &[Value]) -> String {
    pods.iter().map(|p| format!("{}\n", json!({"type": "ADDED", "object": p}))).collect()
}

fn nad_list() -> String {
    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "7"}, "items": []})
        .to_string()
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})
        .to_string()
}

/// How the runtime's ADD reaches the daemon.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    /// The multus-shim binary, as a runtime runs it (over the socket directly when the binary
    /// was not built, as with `cargo test -p multus-daemon`; `cargo xtask test` builds it).
    Shim,
    /// The shim's request posted ungated (`/cni`): a shim would wait for `/readyz` first, and
    /// the daemon is not ready while the fault lasts since its start.
    Socket,
}

/// What the runtime got.
#[derive(Debug)]
struct Answer {
    ok: bool,
    text: String,
    took: Duration,
}

/// The real daemon, pointed at `server` by a kubeconfig; temp dirs only.
struct Daemon {
    dir: tempfile::TempDir,
    process: DaemonProcess,
    calls: AtomicU64,
}

impl Daemon {
    fn start(server: &str) -> Daemon {
        let (dir, process) = raw_api::start_daemon(server, "verbose");
        Daemon { dir, process, calls: AtomicU64::new(0) }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/multus.sock")
    }

    fn ready(&self) -> bool {
        test_node::daemon::ready(&self.socket())
    }

    /// Ready with its `00-multus.conf` written (the shim's stdin).
    fn wait_ready(&mut self, within: Duration) {
        let socket = self.socket();
        let conf = self.dir.path().join("net.d/00-multus.conf");
        self.process.wait_ready(&socket, Some(&conf), within).unwrap();
    }

    fn alive(&mut self) {
        assert!(self.process.exited().is_none(), "the daemon died:\n{}", self.process.log());
    }

    fn hwm_kib(&self) -> u64 {
        raw_api::status_kib(self.process.pid(), "VmHWM:")
    }

    /// One ADD for `pod` as the runtime makes it.
    fn add(&self, pod: &str, via: Via) -> Answer {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let container = format!("{pod}-{n}");
        let args = test_node::cni_args(NAMESPACE, pod, &container, &format!("uid-{pod}"));
        // Written by confgen once the daemon is ready; before that, what it will write.
        let conf = std::fs::read(self.dir.path().join("net.d/00-multus.conf")).unwrap_or_else(|_| {
            json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "multus-shim",
                "clusterNetwork": self.dir.path().join("net.d/10-primary.conf"),
                "cniDir": self.dir.path().join("cni"), "daemonSocketDir": self.dir.path().join("run")})
            .to_string()
            .into_bytes()
        });
        let netns = "/var/run/netns/api-faults-unused";
        let started = Instant::now();
        match (via, test_node::bin("multus-shim")) {
            (Via::Shim, Some(shim)) => {
                let run = ShimCall::new("ADD")
                    .attachment(&container, netns, "eth0", &args)
                    .cni_path(self.dir.path().join("bin"))
                    .env("MULTUS_SHIM_READY_WAIT_MS", "5000")
                    .stdin(conf)
                    .run(&shim)
                    .expect("run multus-shim");
                Answer { ok: run.success(), text: format!("{}{}", run.stdout, run.stderr), took: started.elapsed() }
            }
            _ => {
                let request = multus_api::Request::from_env(
                    [
                        ("CNI_COMMAND", "ADD"),
                        ("CNI_CONTAINERID", container.as_str()),
                        ("CNI_NETNS", netns),
                        ("CNI_IFNAME", "eth0"),
                        ("CNI_ARGS", args.as_str()),
                    ],
                    conf,
                );
                let reply = multus_api::client::post(
                    &self.socket(),
                    "/cni",
                    &request.to_json(),
                    Some(Duration::from_secs(120)),
                )
                .expect("the daemon answers");
                Answer {
                    ok: reply.status == 200,
                    text: String::from_utf8_lossy(&reply.body).into_owned(),
                    took: started.elapsed(),
                }
            }
        }
    }

    /// An ADD while the server misbehaves: a CNI error naming the API server, within the pod
    /// lookup's deadline.
    fn add_fails_clearly(&self, pod: &str, via: Via, names: &[&str]) -> Answer {
        let answer = self.add(pod, via);
        assert!(!answer.ok, "an ADD succeeded with the API server down: {answer:?}");
        assert!(answer.text.contains("error waiting for pod"), "{answer:?}");
        assert!(answer.text.contains("API server"), "the error does not name the API server: {answer:?}");
        assert!(names.iter().any(|n| answer.text.contains(n)), "the error names none of {names:?}: {answer:?}");
        let bound = POD_GET_TIMEOUT + POD_CACHE_WAIT + SLACK;
        assert!(answer.took < bound, "the ADD took {:?} (bound {bound:?}): {answer:?}", answer.took);
        answer
    }

    /// Alive and within its memory bound for `window` (sampled every 100 ms).
    fn stays_bounded(&mut self, window: Duration) {
        let until = Instant::now() + window;
        while Instant::now() < until {
            self.alive();
            std::thread::sleep(Duration::from_millis(100));
        }
        let hwm = self.hwm_kib();
        assert!(hwm < MAX_HWM_KIB, "the daemon reached {hwm} KiB");
    }

    /// Ready, and an ADD of `pod` (served by the list and watch only: its GET is a 404) gets
    /// past the API step: the pod cache is fed again. How long that took.
    fn recovers(&mut self, pod: &str) -> Duration {
        let started = Instant::now();
        self.wait_ready(RECOVERY);
        loop {
            let answer = self.add(pod, Via::Shim);
            // A placeholder success means the cache has not seen the pod yet (its GET is a 404).
            if !answer.ok && answer.text.contains(PAST_THE_API) {
                return started.elapsed();
            }
            assert!(
                answer.ok || answer.text.contains("API server"),
                "an unexpected answer after recovering: {answer:?}"
            );
            assert!(
                started.elapsed() < RECOVERY,
                "not recovered after {RECOVERY:?}: {answer:?}\n{}",
                self.process.log()
            );
            self.alive();
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// wiremock and a runtime to drive it (the server itself runs on its own thread).
struct Api {
    rt: tokio::runtime::Runtime,
    server: MockServer,
}

impl Api {
    fn start() -> Api {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = rt.block_on(MockServer::start());
        Api { rt, server }
    }

    fn uri(&self) -> String {
        self.server.uri()
    }

    fn requests(&self) -> usize {
        self.rt.block_on(self.server.received_requests()).map_or(0, |r| r.len())
    }

    fn mount(&self, mock: Mock) {
        self.rt.block_on(mock.mount(&self.server));
    }

    /// Everything answered by `respond` (mocks and the request log cleared first).
    fn fault(&self, respond: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static) {
        self.rt.block_on(self.server.reset());
        self.mount(Mock::given(any()).respond_with(respond));
    }

    /// A sane API server with `pods` on the node: lists, watches (their events, then the end
    /// of the watch after 1 s, as a server's timeout would), 404 for single objects.
    fn sane(&self, pods: &[Value]) {
        self.rt.block_on(self.server.reset());
        let json = |body: String| ResponseTemplate::new(200).set_body_raw(body, "application/json");
        let pods_path = "/api/v1/pods";
        let nads_path = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";
        self.mount(
            Mock::given(method("GET"))
                .and(path(pods_path))
                .and(query_param("watch", "true"))
                .respond_with(json(pod_watch(pods)).set_delay(Duration::from_secs(1)))
                .with_priority(1),
        );
        self.mount(Mock::given(method("GET")).and(path(pods_path)).respond_with(json(pod_list(pods))).with_priority(2));
        self.mount(
            Mock::given(method("GET"))
                .and(path(nads_path))
                .and(query_param("watch", "true"))
                .respond_with(json(String::new()).set_delay(Duration::from_secs(1)))
                .with_priority(1),
        );
        self.mount(Mock::given(method("GET")).and(path(nads_path)).respond_with(json(nad_list())).with_priority(2));
        // Single pods and NADs (and anything else): not found.
        self.mount(
            Mock::given(path_regex("."))
                .respond_with(
                    ResponseTemplate::new(404).set_body_raw(status(404, "NotFound", "not found"), "application/json"),
                )
                .with_priority(10),
        );
    }
}

fn is_watch(request: &Request) -> bool {
    request.url.query_pairs().any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
}

fn is_list(request: &Request) -> bool {
    request.url.path() == "/api/v1/pods" || request.url.path().ends_with("/network-attachment-definitions")
}

#[test]
fn garbage_bodies_are_clear_errors_and_the_daemon_recovers() {
    let api = Api::start();
    // Non-JSON for everything, then JSON of the wrong shape (lists whose items are not a list,
    // a pod whose metadata is a string, watch events without a type).
    type Answerer = fn(&Request) -> ResponseTemplate;
    let cases: [(&str, Answerer); 2] = [
        ("not JSON", |_| {
            ResponseTemplate::new(200).set_body_raw("<html>502 from a proxy</html>\n{{{\n", "application/json")
        }),
        ("wrong shape", |r| {
            let body = if is_watch(r) {
                "{\"object\":17}\n[1,2,3]\n".to_string()
            } else if is_list(r) {
                json!({"kind": "PodList", "metadata": "nope", "items": {"a": 1}}).to_string()
            } else {
                json!({"kind": "Pod", "metadata": "nope", "spec": [1]}).to_string()
            };
            ResponseTemplate::new(200).set_body_raw(body, "application/json")
        }),
    ];
    let mut daemon: Option<Daemon> = None;
    for (what, respond) in cases {
        api.fault(respond);
        // The first case from the daemon's start: its list and watch get garbage too.
        let daemon = daemon.get_or_insert_with(|| Daemon::start(&api.uri()));
        std::thread::sleep(Duration::from_secs(2));
        assert!(!daemon.ready(), "ready on garbage ({what})");
        let answer = daemon.add_fails_clearly("p-unknown", Via::Socket, &["deserializ", "expected", "invalid"]);
        daemon.stays_bounded(Duration::from_secs(3));
        eprintln!(
            "garbage ({what}): ADD answered in {:?}: {}; peak RSS {} KiB; {} requests",
            answer.took,
            answer.text.trim(),
            daemon.hwm_kib(),
            api.requests()
        );
    }
    let daemon = daemon.as_mut().unwrap();
    api.sane(&[pod("p-after")]);
    let took = daemon.recovers("p-after");
    eprintln!("garbage: recovered {took:?} after the server turned sane; peak RSS {} KiB", daemon.hwm_kib());
}

#[test]
fn slow_headers_are_cut_at_the_daemons_deadlines() {
    let api = Api::start();
    api.sane(&[pod("p-listed")]);
    let mut daemon = Daemon::start(&api.uri());
    daemon.wait_ready(Duration::from_secs(30));
    // Far beyond every deadline of an ADD (not the client's 60 s read timeout: the watches wait
    // that long, the ADD must not).
    api.fault(|_| ResponseTemplate::new(200).set_body_raw("{}", "application/json").set_delay(Duration::from_secs(30)));
    let answer = daemon.add_fails_clearly("p-unknown", Via::Shim, &["did not answer"]);
    eprintln!("slow headers: pod GET: ADD answered in {:?}: {}", answer.took, answer.text.trim());
    // A pod in the cache: its NAD's GET is the slow one.
    let answer = daemon.add("p-listed", Via::Shim);
    assert!(!answer.ok, "{answer:?}");
    assert!(answer.text.contains(&format!("the API server did not answer within {FETCH_TIMEOUT:?}")), "{answer:?}");
    assert!(answer.took < FETCH_TIMEOUT + SLACK, "{answer:?}");
    eprintln!("slow headers: NAD GET: ADD answered in {:?}: {}", answer.took, answer.text.trim());
    daemon.stays_bounded(Duration::from_secs(2));
    api.sane(&[pod("p-listed"), pod("p-after")]);
    let took = daemon.recovers("p-after");
    eprintln!("slow headers: recovered in {took:?}; peak RSS {} KiB", daemon.hwm_kib());
}

#[test]
fn too_many_requests_is_a_clear_error_and_backed_off() {
    let api = Api::start();
    api.sane(&[pod("p-listed")]);
    let mut daemon = Daemon::start(&api.uri());
    daemon.wait_ready(Duration::from_secs(30));
    let started = Instant::now();
    api.fault(|_| {
        ResponseTemplate::new(429).insert_header("Retry-After", "2").set_body_raw(
            status(429, "TooManyRequests", "too many requests, please try again later"),
            "application/json",
        )
    });
    let answer = daemon.add_fails_clearly("p-unknown", Via::Shim, &["429", "too many requests"]);
    daemon.stays_bounded(WINDOW.saturating_sub(started.elapsed()));
    let requests = api.requests();
    eprintln!(
        "429: ADD answered in {:?}: {}; {requests} requests in {:?}; peak RSS {} KiB",
        answer.took,
        answer.text.trim(),
        started.elapsed(),
        daemon.hwm_kib()
    );
    assert!(requests <= MAX_REQUESTS_PER_WINDOW, "{requests} requests in {:?}", started.elapsed());
    api.sane(&[pod("p-listed"), pod("p-after")]);
    let took = daemon.recovers("p-after");
    eprintln!("429: recovered in {took:?}");
}

#[test]
fn a_5xx_storm_from_the_start_is_backed_off_and_outlived() {
    let api = Api::start();
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    api.fault(move |_| {
        // 500 and 503 in turn, as an overloaded API server behind a load balancer answers.
        if counter.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            ResponseTemplate::new(500).set_body_raw(status(500, "InternalError", "etcd is down"), "application/json")
        } else {
            ResponseTemplate::new(503).set_body_string("upstream connect error or disconnect/reset before headers")
        }
    });
    let started = Instant::now();
    let mut daemon = Daemon::start(&api.uri());
    std::thread::sleep(Duration::from_secs(2));
    let answer = daemon.add_fails_clearly("p-unknown", Via::Socket, &["500", "503", "etcd is down"]);
    daemon.stays_bounded(WINDOW.saturating_sub(started.elapsed()));
    assert!(!daemon.ready(), "ready in a storm");
    let requests = api.requests();
    eprintln!(
        "5xx storm: ADD answered in {:?}: {}; {requests} requests in {:?}; peak RSS {} KiB",
        answer.took,
        answer.text.trim(),
        started.elapsed(),
        daemon.hwm_kib()
    );
    assert!(requests <= MAX_REQUESTS_PER_WINDOW, "{requests} requests in {:?}", started.elapsed());
    api.sane(&[pod("p-after")]);
    let took = daemon.recovers("p-after");
    eprintln!("5xx storm: recovered in {took:?}");
}

// --- A truncated chunked list: wiremock answers with whole bodies (it sets Content-Length and
// cannot end a response mid-chunk), so this one is a raw TCP server, as in bounded_responses.rs.

fn respond_raw(mut stream: TcpStream, truncated: &AtomicBool, pods: &[Value]) {
    let Some((method, target)) = raw_api::read_head(&stream) else { return };
    let watch = target.contains("watch=true") || target.contains("watch=1");
    if truncated.load(Ordering::SeqCst) {
        // A chunked answer cut mid-object: the connection closes before the last chunk.
        let part = if watch {
            format!("{{\"type\":\"ADDED\",\"object\":{{\"metadata\":{{\"name\":\"p-{}", "x".repeat(100))
        } else {
            format!(
                "{{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"6\"}},\"items\":[{}",
                pod("p-cut")
            )
        };
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{part}\r\n",
                part.len()
            )
            .as_bytes(),
        );
        return;
    }
    let (code, body) = match (method.as_str(), target.split('?').next().unwrap_or("")) {
        ("GET", "/api/v1/pods") if watch => ("200 OK", pod_watch(pods)),
        ("GET", "/api/v1/pods") => ("200 OK", pod_list(pods)),
        ("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions") if watch => ("200 OK", String::new()),
        ("GET", "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions") => ("200 OK", nad_list()),
        _ => ("404 Not Found", status(404, "NotFound", "not found")),
    };
    if watch {
        // The watch's events, then its end after a second (a server's watch timeout).
        let _ = stream.write_all(
            format!("HTTP/1.1 {code}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}").as_bytes(),
        );
        std::thread::sleep(Duration::from_secs(1));
        return;
    }
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

#[test]
fn a_truncated_chunked_list_is_an_error_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let truncated = Arc::new(AtomicBool::new(true));
    let requests = Arc::new(AtomicUsize::new(0));
    let (server_truncated, server_requests) = (truncated.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            server_requests.fetch_add(1, Ordering::SeqCst);
            let truncated = server_truncated.clone();
            std::thread::spawn(move || respond_raw(stream, &truncated, &[pod("p-after")]));
        }
    });
    let started = Instant::now();
    let mut daemon = Daemon::start(&format!("http://{addr}"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!daemon.ready(), "ready on truncated lists");
    let answer = daemon.add_fails_clearly("p-unknown", Via::Socket, &["error", "closed", "incomplete"]);
    daemon.stays_bounded(WINDOW.saturating_sub(started.elapsed()));
    let seen = requests.load(Ordering::SeqCst);
    eprintln!(
        "truncated chunked list: ADD answered in {:?}: {}; {seen} requests in {:?}; peak RSS {} KiB",
        answer.took,
        answer.text.trim(),
        started.elapsed(),
        daemon.hwm_kib()
    );
    assert!(seen <= MAX_REQUESTS_PER_WINDOW, "{seen} requests in {:?}", started.elapsed());
    truncated.store(false, Ordering::SeqCst);
    let took = daemon.recovers("p-after");
    eprintln!("truncated chunked list: recovered in {took:?}");
}
