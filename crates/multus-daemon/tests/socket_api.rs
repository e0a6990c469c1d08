//! The socket API's wire behaviour against the Go daemon's captured replies
//! (`daemon-socket-curl-cases.txt`): methods, unknown paths, malformed bodies, argument
//! extraction errors, and probes. No root and no API server needed.

use multus::config::DaemonConfig;
use multus_api::client;
use multus_daemon::daemon::Daemon;
use multus_daemon::handler::Handler;
use multus_daemon::server::{self, Health};
use std::sync::Arc;
use std::time::Duration;

struct Server {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    health: Arc<Health>,
    shutdown: tokio::sync::watch::Sender<bool>,
    runtime: tokio::runtime::Runtime,
    daemon: Arc<Daemon>,
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let config = DaemonConfig::from_bytes(br#"{"cniVersion":"1.0.0"}"#).unwrap();
    let daemon = Arc::new(Daemon::without_cluster(config, Arc::new(cni::exec::RawExec::new())));
    let health = Arc::new(Health::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (listener, socket) = {
        let _guard = runtime.enter();
        server::bind_socket(&dir.path().join("run")).unwrap()
    };
    let api = Arc::new(Handler::new(daemon.clone()));
    runtime.spawn(server::serve(listener, api, health.clone(), Some(4), rx, Duration::from_secs(1)));
    Server { _dir: dir, socket, health, shutdown: tx, runtime, daemon }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn request(s: &Server, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let r = client::request(&s.socket, method, path, body, Some(Duration::from_secs(5))).unwrap();
    (r.status, r.content_type, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn socket_and_directory_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let s = start();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.socket), 0o600);
    assert_eq!(mode(s.socket.parent().unwrap()), 0o700);
    drop(s.runtime.enter());
}

#[test]
fn probes_methods_and_unknown_paths() {
    let s = start();
    assert_eq!(request(&s, "GET", "/healthz", b"").0, 200);
    assert_eq!(request(&s, "POST", "/healthz", b"null").0, 200);
    assert_eq!(request(&s, "POST", "/readyz", b"null").0, 500, "not ready before startup completes");
    s.health.set_ready(true);
    assert_eq!(request(&s, "POST", "/readyz", b"null").0, 200);
    assert_eq!(
        request(&s, "GET", "/cni", b""),
        (405, "text/plain; charset=utf-8".into(), "Method not allowed\n".into())
    );
    assert_eq!(request(&s, "PUT", "/delegate", b"").0, 405);
    assert_eq!(request(&s, "DELETE", "/healthz", b"").0, 405);
    let (status, _, body) = request(&s, "GET", "/nope", b"");
    assert_eq!((status, body.as_str()), (404, ""));
    assert_eq!(request(&s, "GET", "/metrics", b"").0, 404, "metrics are not served on the socket");
}

#[test]
fn malformed_requests_get_clear_400s() {
    let s = start();
    let (status, ct, body) = request(&s, "POST", "/cni", b"garbage");
    assert_eq!((status, ct.as_str()), (400, "text/plain; charset=utf-8"));
    assert!(body.ends_with('\n') && body.len() > 1, "{body:?}");

    let (status, _, body) = request(&s, "POST", "/cni", br#"{"env":{}}"#);
    assert_eq!(
        (status, body.as_str()),
        (400, "could not extract the CNI command args: unexpected or missing CNI_COMMAND\n")
    );
    let (status, _, body) = request(&s, "POST", "/cni", br#"{"env":{"CNI_COMMAND":"ADD"},"config":{"a":1}}"#);
    assert_eq!(status, 400);
    assert!(body.contains("expected a string"), "{body}");

    let (status, _, body) = request(&s, "POST", "/cni", br#"{"env":{"CNI_COMMAND":"FOO"}}"#);
    assert_eq!((status, body.as_str()), (400, "could not extract the CNI command args: unknown cmd type: FOO\n"));

    let env = r#"{"env":{"CNI_COMMAND":"ADD","CNI_CONTAINERID":"c","CNI_NETNS":"/x","CNI_ARGS":"K8S_POD_NAME=p"}}"#;
    let (status, _, body) = request(&s, "POST", "/cni", env.as_bytes());
    assert_eq!(
        (status, body.as_str()),
        (400, "could not extract the kubernetes runtime args: missing K8S_POD_NAMESPACE\n")
    );
}

#[test]
fn command_errors_carry_the_request_description() {
    let s = start();
    // A config the daemon cannot use (no clusterNetwork, no delegates).
    let req = multus_api::Request::from_env(
        [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "cid-1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_UID=u"),
        ],
        br#"{"cniVersion":"1.0.0","name":"multus-cni-network","type":"multus-shim"}"#.to_vec(),
    );
    let (status, ct, body) = request(&s, "POST", "/cni", &req.to_json());
    assert_eq!((status, ct.as_str()), (400, "text/plain; charset=utf-8"));
    insta::assert_snapshot!(body);
}

#[test]
fn every_answer_is_counted_under_the_go_metric() {
    let s = start();
    request(&s, "POST", "/healthz", b"null");
    request(&s, "GET", "/healthz", b"");
    request(&s, "POST", "/readyz", b"null");
    request(&s, "POST", "/cni", br#"{"env":{}}"#);
    request(&s, "GET", "/nope", b"");
    let scrape = String::from_utf8(s.daemon.metrics.render()).unwrap();
    for line in [
        r#"multus_server_request_total{code="200",handler="/healthz",method="post"} 1"#,
        r#"multus_server_request_total{code="200",handler="/healthz",method="get"} 1"#,
        r#"multus_server_request_total{code="500",handler="/readyz",method="post"} 1"#,
        r#"multus_server_request_total{code="400",handler="/cni",method="post"} 1"#,
        r#"multus_server_request_total{code="404",handler="NotFound",method="get"} 1"#,
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line}\n{scrape}");
    }
}
