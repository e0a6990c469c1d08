//! The daemon's shared state: its config, its seams and the per-sandbox locks.

use crate::seams::{Cluster, Devices, Netns, NoCluster, NoDeviceSource};
use cni::exec::{Exec, RawExec};
use cni::runtime::CniRuntime;
use multus::config::{DaemonConfig, NetConf};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long one delegate may run before it is killed (the Go daemon has no limit; a hung
/// plugin then holds the runtime's request until the runtime gives up).
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(120);

/// The side effects a daemon acts through.
#[derive(Clone)]
pub struct Seams {
    /// Delegate execution (`RawExec` in production, `RecordingExec` in tests).
    pub exec: Arc<dyn Exec>,
    /// Pods, NADs, the status write and events.
    pub cluster: Arc<dyn Cluster>,
    /// Link checks and route edits inside pod namespaces.
    pub netns: Arc<dyn Netns>,
    /// The pod's devices (device plugins, DRA) and their device-info files.
    pub devices: Arc<dyn Devices>,
}

impl Seams {
    /// The production seams for `config`: real plugin processes with the configured timeout,
    /// the node's namespaces, and the given cluster and device sources.
    /// With `chrootDir`, every delegate runs with its root changed to it (in the child, between
    /// fork and exec; the daemon's own root never changes). At most `delegateConcurrency`
    /// plugins run at once ([`crate::admission`]).
    pub fn production(config: &DaemonConfig, cluster: Arc<dyn Cluster>, devices: Arc<dyn Devices>) -> Self {
        let mut exec = RawExec::with_timeout(delegate_timeout(config)).with_scope(&delegate_scope(config));
        if !config.chroot_dir.is_empty() {
            exec = exec.with_chroot_dir(&config.chroot_dir);
        }
        // Delegates share the daemon's memory limit: only so many run at once (main checked
        // the key at start).
        let limit = crate::admission::own_memory_limit();
        let slots = crate::admission::slots(config, limit).unwrap_or(crate::admission::MAX_AUTO_SLOTS);
        tracing::info!(
            "delegate processes at once: {slots} (memory limit: {})",
            limit.map_or("none".to_string(), |l| format!("{} MiB", l >> 20))
        );
        let exec = crate::admission::Admitted::new(exec, slots);
        Self { exec: Arc::new(exec), cluster, netns: Arc::new(crate::netns::HostNetns), devices }
    }
}

/// `delegateTimeoutSeconds` (a multus-rs key), else [`DEFAULT_DELEGATE_TIMEOUT`].
pub fn delegate_timeout(config: &DaemonConfig) -> Duration {
    config
        .raw
        .get("delegateTimeoutSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_DELEGATE_TIMEOUT)
}

/// The scope of the daemon's delegate invocations (`cni::exec::RawExec::with_scope`: cgroups
/// under `<own cgroup>/multus-delegates-<scope>/`): its socket path, so that daemons on other
/// sockets (parallel tests on one machine) never touch each other's delegates.
pub fn delegate_scope(config: &DaemonConfig) -> String {
    config.socket_path().display().to_string()
}

/// `parallelDelegates` (a multus-rs key, default false as Go): run a pod's delegates at the
/// same time (see `commands::add`).
pub fn parallel_delegates(config: &DaemonConfig) -> bool {
    config.raw.get("parallelDelegates").and_then(Value::as_bool).unwrap_or(false)
}

/// Shared daemon state.
pub struct Daemon {
    /// The daemon config as read at start (with the flags applied); each request merges its
    /// own config over it.
    pub config: DaemonConfig,
    /// Everything the daemon does to the outside world, swappable for tests.
    pub seams: Seams,
    /// What `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The daemon process's own `CNI_PATH`, searched after `binDir`.
    process_cni_path: Vec<PathBuf>,
    /// The daemon process's own `CNI_ARGS`, merged into every delegate's.
    process_cni_args: Option<String>,
    /// One lock per container: operations on the same sandbox never interleave (the Go daemon
    /// has none, quirk 14); different sandboxes proceed in parallel.
    sandbox_locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    /// Container IDs of the runtime's last GC valid-attachment list: the orphan reconciler
    /// never touches these.
    gc_valid: Mutex<Option<std::collections::BTreeSet<String>>>,
    /// GC is exclusive with ADD, DEL and CHECK (CNI spec: a runtime never runs them together;
    /// ocicni uses a RW lock): the daemon holds that too, so its own reclaiming (orphan
    /// reconciler, undone ADDs) never meets a GC half-way.
    gc_gate: Arc<tokio::sync::RwLock<()>>,
    /// KiB of delegate config that requests carrying a lot of it may hold at once
    /// ([`Daemon::admit_config_bytes`]).
    config_budget: Arc<tokio::sync::Semaphore>,
}

/// A request carrying at least this much delegate config (its pod's NADs for ADD, its delegate
/// cache for DEL) shares [`CONFIG_BUDGET_BYTES`] with the others that do; smaller ones (nearly
/// every real one: a NAD is well under 1 KiB) never wait.
pub const CONFIG_GATE_BYTES: usize = 64 << 10;

/// How much delegate config big requests hold at once. A request copies its configs about five
/// times on its way to the plugins (the delegates, the delegate cache, each plugin's stdin, the
/// result cache), so 2 MiB of configs in flight is about 10 MiB of the daemon's memory, however
/// many pods select 1 MB NADs at once (measured before: 20 such pods took the daemon to 192 MiB).
pub const CONFIG_BUDGET_BYTES: usize = 2 << 20;

/// The answer of [`Daemon::try_admit_config_bytes`].
#[derive(Debug)]
pub enum ConfigRoom {
    /// Go on, holding this (`None`: a request too small to need room).
    Granted(Option<tokio::sync::OwnedSemaphorePermit>),
    /// No room now.
    MustWait,
}

impl Daemon {
    /// A daemon acting through `seams`; the process's own `CNI_PATH` and `CNI_ARGS` are read once.
    pub fn new(config: DaemonConfig, seams: Seams) -> Self {
        Self::with_process_env(
            config,
            seams,
            std::env::var("CNI_PATH").ok().as_deref(),
            std::env::var("CNI_ARGS").ok().as_deref(),
        )
    }

    /// As [`Daemon::new`], with the process environment given (tests).
    pub fn with_process_env(
        config: DaemonConfig,
        seams: Seams,
        cni_path: Option<&str>,
        cni_args: Option<&str>,
    ) -> Self {
        Self {
            config,
            seams,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            process_cni_path: cni_path.map(cni::env::split_path).unwrap_or_default(),
            process_cni_args: cni_args.filter(|s| !s.is_empty()).map(str::to_string),
            sandbox_locks: Mutex::default(),
            gc_valid: Mutex::default(),
            gc_gate: Arc::default(),
            config_budget: Arc::new(tokio::sync::Semaphore::new(CONFIG_BUDGET_BYTES >> 10)),
        }
    }

    /// Share `metrics` (e.g. with the watch caches) instead of the daemon's own.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// A daemon without Kubernetes (STATUS/GC and static delegates only) — for tests.
    pub fn without_cluster(config: DaemonConfig, exec: Arc<dyn Exec>) -> Self {
        let seams = Seams {
            exec,
            cluster: Arc::new(NoCluster),
            netns: Arc::new(crate::netns::HostNetns),
            devices: Arc::new(NoDeviceSource),
        };
        Self::with_process_env(config, seams, None, None)
    }

    /// The cluster seam: pods, NADs and the network-status annotation.
    pub(crate) fn cluster(&self) -> &dyn Cluster {
        self.seams.cluster.as_ref()
    }

    /// The netns seam: network namespace inspection and the interface and route edits.
    pub(crate) fn netns(&self) -> &dyn Netns {
        self.seams.netns.as_ref()
    }

    /// The device seam: device IDs and device-info files for resource-backed networks.
    pub(crate) fn devices(&self) -> &dyn Devices {
        self.seams.devices.as_ref()
    }

    /// The daemon process's own `CNI_ARGS` (`None` when unset or empty), merged into every
    /// delegate's.
    pub(crate) fn process_cni_args(&self) -> Option<&str> {
        self.process_cni_args.as_deref()
    }

    /// A libcni runtime for one request: `binDir` then the process's `CNI_PATH`; results cached
    /// in `cniDir`.
    pub fn runtime(&self, conf: &NetConf) -> CniRuntime<Arc<dyn Exec>> {
        let mut dirs = vec![PathBuf::from(&conf.bin_dir)];
        dirs.extend(self.process_cni_path.iter().cloned());
        CniRuntime::new(dirs, &conf.cni_dir, self.seams.exec.clone())
    }

    /// Remember the container IDs the runtime's GC called valid.
    pub fn set_gc_valid_containers(&self, valid: std::collections::BTreeSet<String>) {
        *self.gc_valid.lock().unwrap_or_else(|p| p.into_inner()) = Some(valid);
    }

    /// The runtime DELeted `container_id`: its listing in the last GC no longer protects what
    /// a DEL could not remove (a read-only `cniDir`) from the orphan reconciler.
    pub fn withdraw_gc_valid_container(&self, container_id: &str) {
        if let Some(valid) = self.gc_valid.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            valid.remove(container_id);
        }
    }

    /// The container IDs of the runtime's last GC valid-attachment list, if a GC came.
    pub fn gc_valid_containers(&self) -> Option<std::collections::BTreeSet<String>> {
        self.gc_valid.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Held by every ADD, DEL and CHECK (and the reconciler's DELs) for their whole run: many at
    /// once, never during a GC.
    pub async fn share_gc_gate(&self) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.gc_gate.clone().read_owned().await
    }

    /// Held by a GC: waits for the commands running now, and holds new ones until it is done.
    pub async fn exclusive_gc_gate(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.gc_gate.clone().write_owned().await
    }

    /// Wait for room to handle a request carrying `bytes` of delegate config (see
    /// [`CONFIG_GATE_BYTES`]); the room is held until the permit is dropped. `None`: too small
    /// to wait. A request larger than the whole budget runs alone.
    pub async fn admit_config_bytes(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if bytes < CONFIG_GATE_BYTES {
            return None;
        }
        self.config_budget.clone().acquire_many_owned(Self::config_kib(bytes)).await.ok()
    }

    /// [`Daemon::admit_config_bytes`] without waiting: [`ConfigRoom::MustWait`] when the
    /// request must wait (the caller then lets go of its configs first, so waiting requests
    /// hold none).
    pub fn try_admit_config_bytes(&self, bytes: usize) -> ConfigRoom {
        if bytes < CONFIG_GATE_BYTES {
            return ConfigRoom::Granted(None);
        }
        match self.config_budget.clone().try_acquire_many_owned(Self::config_kib(bytes)) {
            Ok(permit) => ConfigRoom::Granted(Some(permit)),
            Err(_) => ConfigRoom::MustWait,
        }
    }

    fn config_kib(bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024).min(CONFIG_BUDGET_BYTES >> 10)).unwrap_or(u32::MAX)
    }

    /// Serialise operations on one container ID.
    pub async fn lock_sandbox(&self, container_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            // A panic while holding this map lock cannot leave it inconsistent (insert/retain
            // only), so a poisoned lock is still usable.
            let mut locks = self.sandbox_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(container_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(container_id.to_string(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}
