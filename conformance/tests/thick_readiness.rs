//! The thick target's readiness wait against daemon stand-ins: a v4.2.x-style daemon without
//! `/readyz` (404 there, 200 on `/healthz`) is ready through `/healthz`, as the shim does; a
//! current daemon is ready through `/readyz`; a daemon that never gets ready or dies is
//! reported. The stand-in is a tiny HTTP-over-unix-socket server in this test.
//!
//! The last test drives the shipped Go template (`targets/go-multus-thick.yaml`) with only its
//! two paths replaced: the daemon path by a stand-in executable (this test binary, re-entered
//! through `standin_daemon_entry`) that reads `-config`, serves `/healthz` but not `/readyz`
//! and writes `00-multus.conf`, as a Go v4.2.x daemon does.

use multus_conformance::thick::{self, HEALTHZ, READYZ, ThickRt};
use multus_conformance::{Runner, Target, model};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Flavour {
    /// Go v4.2.x: 404 for `/readyz`, 200 for `/healthz`.
    NoReadyz,
    /// multus-rs / newer Go: 200 for `/readyz`.
    Readyz,
    /// Up but never ready: 503 everywhere.
    NeverReady,
}

/// A stand-in daemon socket served from a thread; stops on drop.
struct StandIn {
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn serve(sock: &Path, flavour: Flavour) -> StandIn {
        let listener = UnixListener::bind(sock).expect("bind stand-in socket");
        listener.set_nonblocking(true).expect("nonblocking");
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (paths.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve_loop(&listener, flavour, &p, &s));
        StandIn { paths, stop, thread: Some(thread) }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_loop(listener: &UnixListener, flavour: Flavour, paths: &Mutex<Vec<String>>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => return,
        };
        let _ = conn.set_nonblocking(false);
        let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            continue;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
        paths.lock().unwrap().push(path.clone());
        let status = match (flavour, path.as_str()) {
            (Flavour::NeverReady, _) => "503 Service Unavailable",
            (Flavour::NoReadyz, "/healthz") | (Flavour::Readyz, "/readyz" | "/healthz") => "200 OK",
            _ => "404 Not Found",
        };
        let _ =
            conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
    }
}

fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[test]
fn daemon_without_readyz_is_ready_through_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("multus.sock");
    let standin = StandIn::serve(&sock, Flavour::NoReadyz);
    let endpoint = thick::wait_ready(&sock, deadline(20_000), &mut || true).expect("ready");
    assert_eq!(endpoint, HEALTHZ);
    assert_eq!(standin.paths(), vec![READYZ.to_string(), HEALTHZ.to_string()], "one /readyz probe, then /healthz");
}

#[test]
fn daemon_with_readyz_never_gets_asked_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("multus.sock");
    let standin = StandIn::serve(&sock, Flavour::Readyz);
    assert_eq!(thick::wait_ready(&sock, deadline(20_000), &mut || true), Ok(READYZ));
    assert_eq!(standin.paths(), vec![READYZ.to_string()]);
}

#[test]
fn daemon_never_ready_or_dead_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("multus.sock");
    let _standin = StandIn::serve(&sock, Flavour::NeverReady);
    let err = thick::wait_ready(&sock, deadline(200), &mut || true).unwrap_err();
    assert!(err.to_string().contains("/readyz answered 503"), "{err}");
    let err = thick::wait_ready(&sock, deadline(20_000), &mut || false).unwrap_err();
    assert!(err.to_string().contains("exited"), "{err}");
}

/// A thick target whose "daemon" is `sleep` and whose socket is served by the stand-in: the
/// whole start path (config, socket location from the effective daemon config, readiness,
/// shim config) works with a daemon that has no `/readyz`.
#[test]
fn thick_target_starts_against_a_daemon_without_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let netd = dir.path().join("net.d");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(
        netd.join("00-multus.conf"),
        r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus-shim"}"#,
    )
    .unwrap();
    let standin = StandIn::serve(&run.join("multus.sock"), Flavour::NoReadyz);
    let yaml = format!(
        "kind: thick\nthick:\n  name: standin\n  shim: /bin/true\n  daemon: [sleep, '600']\n  api_server: []\n  kubeconfig: /dev/null\n  cluster_network: fake\n  fake_cni: /nonexistent/fake-cni\n  ready_timeout: 20\n  daemon_config: {{socketDir: '{}', cniConfigDir: '{}'}}\n",
        run.display(),
        netd.display()
    );
    let file = dir.path().join("standin.yaml");
    std::fs::write(&file, yaml).unwrap();
    let target = Target::from_spec(&format!("thick:{}", file.display())).unwrap();
    let rt = ThickRt::start(&target).expect("the harness starts against a daemon without /readyz");
    assert_eq!(rt.ready_endpoint, Some(HEALTHZ));
    assert_eq!(rt.shim_config["name"], "multus-cni-network");
    assert_eq!(rt.shim_config["daemonSocketDir"], run.display().to_string());
    assert!(standin.paths().starts_with(&[READYZ.to_string(), HEALTHZ.to_string()]));
}

/// Entry point of the stand-in daemon executable: does nothing unless this binary was started
/// as the stand-in (`CONFORMANCE_STANDIN_CONFIG` names the daemon config).
#[test]
#[ignore = "entry point of the stand-in daemon process, run by go_template_needs_only_its_two_paths"]
fn standin_daemon_entry() {
    let Some(config) = std::env::var_os("CONFORMANCE_STANDIN_CONFIG") else { return };
    let conf: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let socket_dir = PathBuf::from(conf["socketDir"].as_str().unwrap());
    let netd = PathBuf::from(conf["cniConfigDir"].as_str().unwrap());
    std::fs::create_dir_all(&socket_dir).unwrap();
    let _ = std::fs::remove_file(socket_dir.join("multus.sock"));
    let standin = StandIn::serve(&socket_dir.join("multus.sock"), Flavour::NoReadyz);
    // What a Go daemon in auto mode writes; the values are its well-known ones.
    let multus_conf = serde_json::json!({"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus-shim",
        "logToStderr": true, "daemonSocketDir": socket_dir});
    std::fs::write(netd.join("00-multus.conf"), multus_conf.to_string()).unwrap();
    // The Go client needs the service account at its fixed path: the template's mount must be there.
    let sa = Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
    assert!(sa.join("token").is_file(), "service-account token not mounted at {}", sa.display());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let _ = standin.paths();
    }
}

/// Empty directories this test may create on the host, removed afterwards if they were not
/// there before (the template's `mkdir -p` runs before its private mount).
struct CreatedDirs(Vec<PathBuf>);

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
#[ignore = "needs root (unshare -m, mount --bind) and kube-mock"]
fn go_template_needs_only_its_two_paths() {
    assert!(multus_conformance::sys::is_root(), "needs root: run as root with --include-ignored");
    let bin = multus_conformance::target::cargo_bin_dir();
    assert!(
        bin.join("kube-mock").is_file(),
        "{}/kube-mock missing: cargo build -p kube-mock -p multus-shim -p fake-cni",
        bin.display()
    );
    let created = CreatedDirs(
        ["/var/run/secrets/kubernetes.io/serviceaccount", "/var/run/secrets/kubernetes.io", "/var/run/secrets"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let daemon = dir.path().join("standin-daemon");
    std::fs::write(
        &daemon,
        format!(
            "#!/bin/sh\n# stand-in for a Go v4.2.x multus-daemon: -config <file>\nCONFORMANCE_STANDIN_CONFIG=\"$2\" exec {} --exact standin_daemon_entry --ignored --nocapture\n",
            exe.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&daemon, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shim = bin.join("multus-shim");
    let shim = if shim.is_file() { shim } else { PathBuf::from("/bin/true") };

    let template =
        std::fs::read_to_string(format!("{}/targets/go-multus-thick.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert_eq!(template.matches("/opt/multus-go/bin/").count(), 2, "the template has exactly two paths to set");
    let text = template
        .replace("/opt/multus-go/bin/multus-shim", &shim.display().to_string())
        .replace("/opt/multus-go/bin/multus-daemon", &daemon.display().to_string());
    let file = dir.path().join("go.yaml");
    std::fs::write(&file, text).unwrap();

    let target = Target::from_spec(&format!("thick:{}", file.display())).unwrap();
    let mut runner = Runner::new(target).expect("the harness drives the Go template against a daemon without /readyz");
    assert_eq!(runner.ready_endpoint(), Some(HEALTHZ));
    let cases: Vec<_> = model::load_dir(&model::default_scenario_dir())
        .unwrap()
        .into_iter()
        .filter(|c| c.id == "thick-multus-conf-generated")
        .collect();
    assert_eq!(cases.len(), 1);
    let report = runner.run(&cases);
    assert_eq!(report.cases[0].outcome, multus_conformance::Outcome::Pass, "{:#?}", report.cases[0]);
    drop(runner);
    drop(created);
}
