//! `multus-daemon`: the long-running half of the Multus thick plugin.
//!
//! Startup (spec §1.1, with multus-rs's choices): read `daemon-config.json`; set up logging;
//! wait for the readiness indicator file; build the kube client and start the node-scoped
//! watch caches; bind `<socketDir>/multus.sock` (0600 in a 0700 directory) and serve; become
//! ready once the caches have synced (or 20 s have passed each); in auto mode generate
//! `00-multus.conf` and keep it current. On SIGTERM/SIGINT `/readyz` turns 500, new
//! connections stop once no request is in flight (at most half of `SHUTDOWN_GRACE`), requests
//! in flight and queued finish (up to `SHUTDOWN_GRACE`, 25 s, inside the manifest's 30 s
//! `terminationGracePeriodSeconds`), and `00-multus.conf` is KEPT
//! (the Go daemon deletes it, so pods created during a daemon restart silently get only the
//! primary network; `cleanupConfigOnExit: true` restores that behaviour).
//!
//! Exit codes as the Go daemon: 1 config/readiness failures, 2 config generation failures or
//! readiness indicator removed, 3 server start failures; `-version` exits 0 (Go: 4).

use multus::config::DaemonConfig;
use multus_daemon::daemon::{Daemon, Seams};
use multus_daemon::flags::{self, Flags};
use multus_daemon::metrics::Metrics;
use multus_daemon::server::{self, Health};
use multus_daemon::{confgen, devices, handler, kube, logging, memory, reconcile, uninstall};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const READINESS_FILE_WAIT: Duration = Duration::from_secs(45);
const CACHE_SYNC_WAIT: Duration = Duration::from_secs(20);
/// The shutdown drain's bound (docs/deploy.md, docs/compatibility.md): below the manifest's
/// 30 s `terminationGracePeriodSeconds`, so the kubelet's SIGKILL never cuts a drain short.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);
/// How long a stopping daemon waits for the API server's answer to "uninstall or restart?".
const UNINSTALL_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    let flags = match Flags::from_env() {
        Ok(f) => f,
        Err(e) => {
            // Go's flag.ExitOnError: message, exit 2.
            eprintln!("multus-daemon: {e}\nRun `multus-daemon -help` for the flags and the config keys they set.");
            return ExitCode::from(2);
        }
    };
    if flags.help {
        print!("{}", flags::help_text());
        return ExitCode::SUCCESS;
    }
    if flags.version {
        println!("{}", flags::version_line());
        return ExitCode::SUCCESS;
    }
    // Large blocks in their own mappings, free heap returned: memory taken by a burst goes back
    // to the system (memory.rs). Before any other thread allocates.
    memory::configure_allocator();
    // Delegates are forked from one long-lived thread, so their parent-death signal fires only
    // when the daemon itself dies (started here, before any thread enters a pod namespace).
    if let Err(e) = cni::exec::start_spawner() {
        eprintln!("multus-daemon: cannot start the delegate spawner thread: {e}");
        return ExitCode::from(3);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("multus-daemon: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> ExitCode {
    let started = std::time::Instant::now();
    // Listen for SIGTERM/SIGINT before anything is served: a signal that came between readiness
    // and the first wait for it used to kill the daemon outright (default action), requests in
    // flight and the restart-or-uninstall decision with it.
    let mut signals = ShutdownSignals::install();
    let raw = match std::fs::read(&flags.config) {
        Ok(r) => r,
        Err(e) => return fail(1, &format!("failed to read the config file {}: {e}", flags.config.display())),
    };
    let config = match DaemonConfig::from_bytes(&raw) {
        Ok(c) => c,
        Err(e) => return fail(1, &format!("failed to load the daemon configuration: {e}")),
    };
    // Command-line flags (the thin entrypoint's parameters) win over the file's keys.
    let mut raw_config = config.raw;
    let flag_effects = flags::apply(&flags.settings, &mut raw_config);
    let config = match DaemonConfig::from_map(raw_config) {
        Ok(c) => c,
        Err(e) => return fail(1, &format!("failed to load the daemon configuration with the flags applied: {e}")),
    };
    // Never fails: a log file that cannot be opened is reported and stderr is used instead.
    logging::init_from_config(&config);
    for effect in &flag_effects {
        if effect.overrode_the_file() || matches!(effect, flags::Applied::Ignored { .. }) {
            tracing::warn!("{}", effect.describe());
        } else {
            tracing::info!("{}", effect.describe());
        }
    }
    if !config.readiness_indicator_file.is_empty()
        && !confgen::wait_for_file(Path::new(&config.readiness_indicator_file), READINESS_FILE_WAIT).await
    {
        return fail(
            1,
            &format!(
                "have you checked that your default network is ready? still waiting for readinessindicatorfile @ {}",
                config.readiness_indicator_file
            ),
        );
    }
    // A chroot that cannot work must stop the daemon now, not fail every request later.
    if !config.chroot_dir.is_empty() {
        if let Err(e) = cni::exec::validate_chroot_dir(Path::new(&config.chroot_dir)) {
            return fail(1, &format!("chrootDir {:?} cannot be used: {e}", config.chroot_dir));
        }
        tracing::info!("delegates run chrooted into {}", config.chroot_dir);
    }
    let reconcile_settings = match reconcile::Settings::from_config(&config) {
        Ok(s) => s,
        Err(e) => return fail(1, &e.to_string()),
    };
    if let Err(e) = multus_daemon::admission::slots(&config, None) {
        return fail(1, &e.to_string());
    }
    let dynamic_networks = match multus_daemon::dynamic::enabled(&config) {
        Ok(on) => on,
        Err(e) => return fail(1, &e.to_string()),
    };
    // Nothing writes yet: temporary files of a previous run's interrupted writes can go.
    reconcile::remove_stale_temp_files(&config);
    let connection_limit = match config.connection_limit() {
        Ok(l) => l,
        Err(e) => return fail(3, &e.to_string()),
    };

    // perNodeCertificate hook: the per-node certificate client when enabled.
    let client = match kube::build_client_for(&config, flags.kubeconfig.as_deref()).await {
        Ok(c) => c,
        Err(e) => return fail(3, &e.to_string()),
    };
    tracing::debug!("kube client built after {:?}", started.elapsed());
    let node = std::env::var("MULTUS_NODE_NAME").ok();
    let devices = Arc::new(devices::node_devices(&config, client.clone()));
    let exit_client = client.clone();
    let owner_watch =
        uninstall::own_pod_from_env().map(|(ns, name)| uninstall::OwnerWatch::start(client.clone(), ns, name));
    let metrics = Arc::new(Metrics::new());
    let kube = kube::KubeContext::start(client, node.as_deref(), metrics.clone());

    let seams = Seams::production(&config, kube.clone(), devices);
    let daemon = Arc::new(Daemon::new(config.clone(), seams).with_metrics(metrics.clone()));
    let socket_dir = config.socket_path().parent().map(Path::to_path_buf).unwrap_or_default();
    // The check of an existing socket may wait (server::SILENT_SOCKET_PATIENCE); the informers
    // started above keep running meanwhile.
    let (listener, socket_path) = match tokio::task::block_in_place(|| server::bind_socket(&socket_dir)) {
        Ok(l) => l,
        Err(e) => return fail(3, &format!("failed to listen on {}: {e}", socket_dir.display())),
    };
    tracing::info!("listening on {}", socket_path.display());
    // A predecessor killed with SIGKILL took its delegates with it, not what they had started
    // (an IPAM call, say): kill that before serving (the bound socket proves it is gone).
    let scope = multus_daemon::daemon::delegate_scope(&config);
    let leftovers = tokio::task::block_in_place(|| cni::exec::RawExec::new().with_scope(&scope).reap_leftovers());
    if !leftovers.killed.is_empty() || !leftovers.survivors.is_empty() {
        tracing::warn!("delegate processes left by a previous instance: {leftovers}");
    } else if leftovers.cgroups_removed > 0 {
        tracing::info!("delegate cgroups left by a previous instance: {leftovers}");
    }
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let api = Arc::new(handler::Handler::new(daemon.clone()));
    let server_task = tokio::spawn(server::serve(
        listener,
        api,
        health.clone(),
        connection_limit,
        shutdown_rx.clone(),
        SHUTDOWN_GRACE,
    ));

    if let Some(port) = config.metrics_port {
        start_metrics(port, metrics.clone(), config.enable_pprof, shutdown_rx.clone()).await;
    } else if config.enable_pprof {
        tracing::warn!("enablePprof has no effect without metricsPort");
    }

    // Ready once the pod cache knows the node's pods and the NAD watch has started (one list of
    // one item: no NAD is read) — or after the Go daemon's waits.
    if !kube.pods.wait_synced(CACHE_SYNC_WAIT).await {
        tracing::warn!("pod cache not synced after {CACHE_SYNC_WAIT:?}; serving anyway");
    }
    if !kube.nads.wait_synced(CACHE_SYNC_WAIT).await {
        tracing::warn!("NAD cache not synced after {CACHE_SYNC_WAIT:?}; serving anyway");
    }
    health.set_ready(true);
    tokio::spawn(memory::trim_when_idle(metrics.clone(), shutdown_rx.clone()));
    // Orphans are judged against a synced pod cache, and only after the node serves requests.
    let reconciler = tokio::spawn(reconcile::run_periodically(daemon.clone(), reconcile_settings, shutdown_rx.clone()));
    if dynamic_networks {
        tokio::spawn(multus_daemon::dynamic::run(daemon.clone(), shutdown_rx.clone()));
    }
    tracing::info!("ready after {:?}", started.elapsed());

    let confgen_task = match confgen::start(&config, shutdown_rx.clone()).await {
        Ok(task) => task,
        Err(e) => {
            let _ = shutdown_tx.send(true);
            return fail(2, &format!("{e:#}"));
        }
    };

    let mut confgen_task = confgen_task;
    let exit = tokio::select! {
        _ = signals.recv() => {
            tracing::info!("caught a termination signal, stopping...");
            0
        }
        code = wait_confgen(&mut confgen_task) => code,
    };
    health.set_ready(false);
    // Uninstall or restart: decided before the file watcher stops, so a remove is the last word.
    let how = if confgen::cleanup_on_exit(&config) {
        uninstall::Exit::Uninstall
    } else {
        uninstall::decide(exit_client, owner_watch.as_ref(), UNINSTALL_PROBE_TIMEOUT).await
    };
    let _ = shutdown_tx.send(true);
    if let Some(task) = confgen_task.take() {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if how == uninstall::Exit::Uninstall {
        confgen::remove_multus_conf(&config);
    } else {
        tracing::info!("keeping 00-multus.conf: the daemon is expected back (restart)");
    }
    // A reconcile pass in progress finishes its DEL (bounded by the shutdown grace).
    if tokio::time::timeout(SHUTDOWN_GRACE, reconciler).await.is_err() {
        tracing::warn!("orphan reconcile pass still running at exit");
    }
    // Returns once drained; it has removed the socket if it was still ours (never another
    // daemon's that took the path over).
    let _ = server_task.await;
    ExitCode::from(exit)
}

/// `/metrics` (and with `enablePprof`, `/debug/pprof/*` and `/debug/state`) on every interface at `port`, as the Go
/// daemon listens on `:<port>`. A port that cannot be bound costs the metrics, not the node's
/// CNI: the error is logged and the daemon goes on.
async fn start_metrics(
    port: u16,
    metrics: Arc<Metrics>,
    with_debug: bool,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(listener) => {
            tracing::info!(
                "metrics on :{port}/metrics{}",
                if with_debug { ", /debug/pprof/ and /debug/state" } else { "" }
            );
            let endpoints = multus_daemon::metrics::Endpoints { debug: with_debug };
            tokio::spawn(multus_daemon::metrics::serve(listener, metrics, endpoints, shutdown));
        }
        Err(e) => tracing::error!("cannot serve metrics on port {port}: {e}; running without them"),
    }
}

/// The config generator ends only on a fatal condition (e.g. readiness indicator removed).
async fn wait_confgen(task: &mut Option<tokio::task::JoinHandle<u8>>) -> u8 {
    match task.as_mut() {
        Some(t) => {
            let code = t.await.unwrap_or(2);
            *task = None;
            code
        }
        None => std::future::pending().await,
    }
}

/// SIGTERM and SIGINT, listened for from the daemon's start.
struct ShutdownSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl ShutdownSignals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(term), Ok(int)) => Self(Some((term, int))),
            _ => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT: the daemon stops only when killed");
                Self(None)
            }
        }
    }

    async fn recv(&mut self) {
        match &mut self.0 {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}

fn fail(code: u8, msg: &str) -> ExitCode {
    tracing::error!("{msg}");
    eprintln!("multus-daemon: {msg}");
    ExitCode::from(code)
}
