//! The Multus commands: ADD (spec §5), DEL and CHECK (§6), STATUS and GC (§7), and the
//! `/delegate` hot-plug API (§4.6).
//!
//! Planning is pure (`multus::resolve`, `multus::plan`); this module does the side effects in
//! order: pod lookup from the watch cache, delegate cache, delegate execution through the cni
//! runtime (libcni semantics, result cache in `cniDir`), network-namespace checks and route
//! edits on dedicated threads, one status write, and events off the request path.
//!
//! Behaviour that deliberately differs from the Go daemon:
//! - a failed ADD leaves nothing behind: every delegate already added, including the failed one,
//!   gets a DEL, and when that rollback is clean the delegate cache file is removed too; a
//!   failure after the delegates ran (e.g. the status write with the API server down) rolls
//!   back as well instead of leaving interfaces for a later DEL;
//! - DEL runs from the delegate cache even without pod context, so a DEL with the API server
//!   down, the pod gone, or `CNI_ARGS` missing still releases everything;
//! - CHECK checks every cached delegate (the Go daemon's CHECK is a no-op in auto mode);
//! - GC honours the runtime's `cni.dev/valid-attachments` (the Go daemon ignores it).

use crate::cni_handler::{CmdArgs, PodArgs};
use crate::kube::{KubeContext, PodEvent, PodLookup};
use crate::netns;
use cni::exec::RawExec;
use cni::runtime::{CniRuntime, RuntimeConf, RuntimeError};
use cni::{CniError, CniResult, Version};
use multus::config::{DaemonConfig, NetConf};
use multus::delegate::Delegate;
use multus::error::PodRef;
use multus::model::PodInfo;
use multus::plan::{self, DelegateInvocation, Operation, PlanContext, RuntimeConfig};
use multus::{cache, default_route, resolve, status};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long one delegate may run before it is killed (the Go daemon has no limit; a hung
/// plugin then holds the runtime's request until the runtime gives up).
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(120);

/// An error of a command, as the socket API reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum OpError {
    /// A CNI error object whose code must reach the runtime (e.g. STATUS 50).
    Cni(CniError),
    Text(String),
}

impl OpError {
    pub fn text(msg: impl Into<String>) -> Self {
        Self::Text(msg.into())
    }

    pub fn prefixed(self, prefix: &str) -> Self {
        match self {
            Self::Text(m) => Self::Text(format!("{prefix}{m}")),
            Self::Cni(e) => Self::Cni(CniError { msg: format!("{prefix}{}", e.msg), ..e }),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cni(e) => write!(f, "{e}"),
            Self::Text(m) => f.write_str(m),
        }
    }
}

impl From<multus::error::MultusError> for OpError {
    fn from(e: multus::error::MultusError) -> Self {
        Self::Text(e.to_string())
    }
}

/// Shared daemon state.
pub struct Daemon {
    pub config: DaemonConfig,
    pub kube: Option<Arc<KubeContext>>,
    pub delegate_timeout: Duration,
    /// The daemon process's own `CNI_PATH`, searched after `binDir`.
    process_cni_path: Vec<PathBuf>,
    /// The daemon process's own `CNI_ARGS`, merged into every delegate's.
    process_cni_args: Option<String>,
    /// One lock per container: operations on the same sandbox never interleave (the Go daemon
    /// has none, quirk 14); different sandboxes proceed in parallel.
    sandbox_locks: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

impl Daemon {
    pub fn new(config: DaemonConfig, kube: Option<Arc<KubeContext>>) -> Self {
        let timeout = config
            .raw
            .get("delegateTimeoutSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_DELEGATE_TIMEOUT);
        Self {
            config,
            kube,
            delegate_timeout: timeout,
            process_cni_path: std::env::var("CNI_PATH").map(|p| cni::env::split_path(&p)).unwrap_or_default(),
            process_cni_args: std::env::var("CNI_ARGS").ok().filter(|s| !s.is_empty()),
            sandbox_locks: Default::default(),
        }
    }

    /// Serialise operations on one container ID.
    pub async fn lock_sandbox(&self, container_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.sandbox_locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, weak| weak.strong_count() > 0);
            match locks.get(container_id).and_then(std::sync::Weak::upgrade) {
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

    fn runtime(&self, conf: &NetConf) -> CniRuntime<RawExec> {
        let mut dirs = vec![PathBuf::from(&conf.bin_dir)];
        dirs.extend(self.process_cni_path.iter().cloned());
        CniRuntime::new(dirs, &conf.cni_dir, RawExec::with_timeout(self.delegate_timeout))
    }

    fn kube(&self) -> Result<&Arc<KubeContext>, OpError> {
        self.kube.as_ref().ok_or_else(|| OpError::text("no Kubernetes client configured"))
    }
}

/// The `[<ns>/<name>/<uid>]` tag of the Go daemon's messages.
fn pod_tag(pod: &PodArgs) -> String {
    pod_ref(pod).to_string()
}

fn pod_ref(pod: &PodArgs) -> PodRef {
    PodRef::new(&pod.namespace, &pod.name, pod.uid.as_deref().unwrap_or(""))
}

/// `[<ns>/<name>/<uid>:<net>]: error adding container to network "<net>": <cause>`.
fn add_failure(pod: &PodArgs, delegate: &Delegate, cause: impl fmt::Display) -> String {
    multus::error::MultusError::delegate_add(Some(&pod_ref(pod)), delegate.network_name(), cause).to_string()
}

/// The interface clash check's failure (§5.13).
fn ifname_clash(delegate: &Delegate, ifname: &str) -> String {
    format!(
        "DelegateAdd: cannot set \"{}\" interface name to \"{ifname}\": validateIfName: interface name {ifname} already exists",
        delegate.plugin_type()
    )
}

/// The parts of the effective config that network resolution reads.
fn settings(conf: &NetConf) -> resolve::ResolveSettings {
    resolve::ResolveSettings {
        cni_version: conf.cni_version.clone(),
        cluster_network: conf.cluster_network.clone(),
        default_networks: conf.default_networks.clone(),
        multus_namespace: conf.multus_namespace.clone(),
        conf_dir: PathBuf::from(&conf.conf_dir),
        system_namespaces: conf.system_namespaces.clone(),
        namespace_isolation: conf.namespace_isolation,
        global_namespaces: conf.non_isolated_namespaces.clone(),
        auxiliary_cni_chain_name: conf.auxiliary_cni_chain_name.clone(),
        static_delegates: conf.delegates.iter().map(|m| Value::Object(m.clone())).collect(),
    }
}

/// No NADs at all (no Kubernetes client).
fn no_nads() -> std::collections::BTreeMap<(String, String), multus::model::Nad> {
    Default::default()
}

fn runtime_conf(cmd: &CmdArgs, inv: &DelegateInvocation) -> RuntimeConf {
    RuntimeConf {
        container_id: cmd.container_id.clone(),
        netns: cmd.netns.clone(),
        ifname: inv.ifname.clone(),
        args: inv.cni_args.clone(),
        capability_args: inv.capability_args.clone(),
    }
}

async fn exec_add(rt: &CniRuntime<RawExec>, d: &Delegate, conf: &RuntimeConf) -> Result<CniResult, RuntimeError> {
    let list = d.config().to_list();
    rt.add_network_list_with_bytes(&list, d.bytes(), conf).await
}

async fn exec_del(rt: &CniRuntime<RawExec>, d: &Delegate, conf: &RuntimeConf) -> Result<(), RuntimeError> {
    rt.del_network_list(&d.config().to_list(), conf).await
}

async fn exec_check(rt: &CniRuntime<RawExec>, d: &Delegate, conf: &RuntimeConf) -> Result<(), RuntimeError> {
    rt.check_network_list(&d.config().to_list(), conf).await
}

/// Plan context for a request.
fn plan_context<'a>(
    cmd: &'a CmdArgs,
    k8s: &'a multus::k8s_args::K8sArgs,
    uid: &'a str,
    runtime_config: Option<&'a RuntimeConfig>,
    process_cni_args: Option<&'a str>,
) -> PlanContext<'a> {
    PlanContext {
        container_id: &cmd.container_id,
        ifname: &cmd.ifname,
        pod_namespace: &k8s.namespace,
        pod_name: &k8s.name,
        pod_uid: uid,
        sandbox_id: &k8s.infra_container_id,
        runtime_config,
        process_cni_args,
    }
}

/// ADD (§5.3). Returns the master's result as JSON in the daemon's current version.
pub async fn add(d: &Daemon, cmd: &CmdArgs, pod_args: &PodArgs, conf: &NetConf) -> Result<Value, OpError> {
    let tag = pod_tag(pod_args);
    let k8s =
        multus::k8s_args::parse_multus_args(&cmd.args).map_err(|e| OpError::text(format!("Multus: [{tag}]: {e}")))?;
    if !d.config.is_auto_mode()
        && !conf.readiness_indicator_file.is_empty()
        && !crate::confgen::wait_for_file(Path::new(&conf.readiness_indicator_file), Duration::from_secs(45)).await
    {
        return Err(OpError::text(format!(
            "Multus: [{tag}]: have you checked that your default network is ready? still waiting for readinessindicatorfile @ {}",
            conf.readiness_indicator_file
        )));
    }
    let kube = d.kube()?;
    let pod = match kube.lookup_pod(&pod_args.namespace, &pod_args.name).await {
        Ok(PodLookup::Found(p)) => p,
        Ok(PodLookup::NotFound) => {
            tracing::warn!(
                "pod {}/{} not found; answering with a placeholder result",
                pod_args.namespace,
                pod_args.name
            );
            let placeholder = plan::pod_not_found_result(&conf.cni_version, &cmd.ifname, &cmd.netns);
            return CniResult::from_value(&placeholder)
                .and_then(|r| r.convert_to(Version::V1_1_0))
                .map(|r| r.to_value())
                .map_err(|e| OpError::text(format!("Multus: [{tag}]: {e}")));
        }
        Err(e) => return Err(OpError::text(format!("Multus: [{tag}]: {e:#}"))),
    };
    if let Some(uid) = pod_args.uid.as_deref().filter(|u| !u.is_empty())
        && uid != pod.uid
        && !pod.is_static()
    {
        return Err(OpError::text(format!(
            "Multus: [{tag}]: expected pod UID \"{uid}\" but got \"{}\" from Kube API",
            pod.uid
        )));
    }
    let uid = if pod.is_static() { pod_args.uid.clone().unwrap_or_default() } else { pod.uid.clone() };

    let who = PodRef::new(&pod_args.namespace, &pod_args.name, &uid);
    let resolved =
        resolve::resolve_add_delegates(&settings(conf), Some(&who), Some(&pod), kube.as_ref(), &mut resolve::NoDevices);
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            emit_warnings(kube, &pod, e.warnings());
            return Err(e.into());
        }
    };
    emit_warnings(kube, &pod, &resolved.warnings);
    let delegates = resolved.delegates;

    let runtime_config = conf.runtime_config.as_ref().map(RuntimeConfig::from_value);
    let ctx = plan_context(cmd, &k8s, &uid, runtime_config.as_ref(), d.process_cni_args.as_deref());
    let invocations = match plan::plan_all(&delegates, &ctx, Operation::Add) {
        Ok(i) => i,
        Err((i, e)) => return Err(OpError::text(add_failure(pod_args, &delegates[i], e))),
    };

    let cni_dir = PathBuf::from(&conf.cni_dir);
    // A runtime should not ADD twice without a DEL; if it does, the first ADD's cache must
    // survive this one's failure so that its DEL still finds everything.
    let previous_cache = std::fs::read(cache::cache_path(&cni_dir, &cmd.container_id)).ok();
    cache::write_cache(&cni_dir, &cmd.container_id, &delegates)
        .map_err(|e| OpError::text(format!("Multus: [{tag}]: error saving the delegates: {e}")))?;

    let rt = d.runtime(conf);
    let mut results: Vec<Option<CniResult>> = Vec::with_capacity(delegates.len());
    let mut statuses = Vec::new();
    let mut ran = 0usize;
    let failure: Option<String> = 'run: {
        for (i, (delegate, inv)) in delegates.iter().zip(&invocations).enumerate() {
            let net = delegate.network_name().to_string();
            let fail = |msg: String| add_failure(pod_args, delegate, msg);
            // Interface clash check (§5.13): fail before the plugin touches anything.
            match netns::link_exists(&cmd.netns, &inv.ifname).await {
                Ok(false) => {}
                Ok(true) => break 'run Some(fail(ifname_clash(delegate, &inv.ifname))),
                Err(e) => {
                    break 'run Some(fail(format!("DelegateAdd: {e}")));
                }
            }
            let rconf = runtime_conf(cmd, inv);
            // From here on this delegate may have changed something: a rollback must DEL it,
            // even when its ADD fails. A delegate stopped by the clash check above never ran,
            // and its DEL would remove the interface that was already there (the Go daemon
            // does exactly that to a pod ADDed twice).
            ran = i + 1;
            let result = match exec_add(&rt, delegate, &rconf).await {
                Ok(r) => r,
                Err(e) => break 'run Some(fail(e.to_string())),
            };
            tracing::info!(
                "Add: {}:{}:{}:{}({}):{} {}",
                k8s.namespace,
                k8s.name,
                uid,
                delegate.name,
                net,
                inv.ifname,
                result.to_json()
            );
            if let Err(e) = apply_default_route(&rt, delegate, &result, cmd, inv).await {
                break 'run Some(fail(e));
            }
            let device_info = inv
                .device_info_file
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            match status::network_statuses(&result, &delegate.name, delegate.is_master, device_info.as_ref()) {
                Ok(mut entries) => statuses.append(&mut entries),
                Err(e) => tracing::warn!("cannot build the network status of {net}: {e}"),
            }
            if let Some(message) = plan::added_interface_message(&inv.ifname, &result, &delegate.name) {
                kube.emit(PodEvent { pod: pod.clone(), warning: false, reason: "AddedInterface".into(), message });
            }
            results.push(Some(result));
        }
        if !statuses.is_empty()
            && let Err(e) = kube.write_network_status(&pod, &status::format_network_status(&statuses)).await
        {
            break 'run Some(format!("Multus: [{tag}]: {e:#}"));
        }
        None
    };
    if let Some(message) = failure {
        rollback(&rt, &delegates[..ran], &invocations[..ran], cmd, &cni_dir, previous_cache.as_deref()).await;
        return Err(OpError::text(message));
    }
    let selected = plan::select_result(&delegates, &results)
        .cloned()
        .unwrap_or_else(|| CniResult::empty(Version::parse(&conf.cni_version).unwrap_or(Version::V1_1_0)));
    selected
        .convert_to(Version::V1_1_0)
        .map(|r| r.to_value())
        .map_err(|e| OpError::text(format!("Multus: [{tag}]: {e}")))
}

/// DEL every delegate in `delegates` (last first), ignoring errors; when everything went away
/// cleanly, remove the delegate cache (or put back the one an earlier ADD had written).
async fn rollback(
    rt: &CniRuntime<RawExec>,
    delegates: &[Delegate],
    invocations: &[DelegateInvocation],
    cmd: &CmdArgs,
    cni_dir: &Path,
    previous_cache: Option<&[u8]>,
) {
    let mut clean = true;
    for (delegate, inv) in delegates.iter().zip(invocations).rev() {
        match exec_del(rt, delegate, &runtime_conf(cmd, inv)).await {
            Ok(()) => {}
            // A plugin that does not exist cannot have left anything behind.
            Err(e) if matches!(e.exec_error(), Some(cni::exec::ExecError::NotFound { .. })) => {}
            Err(e) => {
                clean = false;
                tracing::error!("rollback: DEL of {} failed: {e}", delegate.network_name());
            }
        }
    }
    if !clean {
        return;
    }
    match previous_cache {
        Some(bytes) => {
            let path = cache::cache_path(cni_dir, &cmd.container_id);
            if let Err(e) = crate::confgen::write_atomic(&path, bytes, 0o600) {
                tracing::error!("rollback: cannot restore the previous delegate cache {}: {e}", path.display());
            }
        }
        None => {
            let _ = cache::remove_cache(cni_dir, &cmd.container_id);
        }
    }
}

/// `default-route` handling after a delegate's ADD (§5.15): routes in the pod and the
/// delegate's cached result.
async fn apply_default_route(
    rt: &CniRuntime<RawExec>,
    delegate: &Delegate,
    result: &CniResult,
    cmd: &CmdArgs,
    inv: &DelegateInvocation,
) -> Result<(), String> {
    let actions = default_route::route_actions(delegate, result);
    if actions.is_empty() {
        return Ok(());
    }
    if actions.delete_default_v4 || actions.delete_default_v6 {
        netns::delete_default_routes(&cmd.netns, &inv.ifname, actions.delete_default_v4, actions.delete_default_v6)
            .await
            .map_err(|e| format!("error deleting default gateway: {e}"))?;
    }
    for gw in &actions.add_gateways {
        netns::add_default_route(&cmd.netns, &inv.ifname, *gw)
            .await
            .map_err(|e| format!("error setting default gateway: {e}"))?;
    }
    let rconf = runtime_conf(cmd, inv);
    let mut edit_error = None;
    rt.update_cached_result(delegate.network_name(), &rconf, |cached: &mut Value| {
        if let Err(e) = default_route::apply_cache_edits(cached, &actions) {
            edit_error = Some(e.to_string());
        }
    })
    .map_err(|e| format!("error editing the cached result: {e}"))?;
    edit_error.map_or(Ok(()), |e| Err(format!("error editing the cached result: {e}")))
}

fn emit_warnings(kube: &KubeContext, pod: &PodInfo, warnings: &[multus::error::Warning]) {
    for w in warnings {
        if w.event {
            kube.emit(PodEvent {
                pod: pod.clone(),
                warning: true,
                reason: w.reason.clone(),
                message: w.message.clone(),
            });
        } else {
            tracing::warn!("{}: {}", w.reason, w.message);
        }
    }
}

/// DEL (§6.1), from the delegate cache when there is one. Errors of single delegates do not
/// stop the others; the cache file is removed when it was used (or, with
/// `retryDeleteOnError`, only when every DEL succeeded).
pub async fn del(d: &Daemon, cmd: &CmdArgs, pod_args: Option<&PodArgs>, conf: &NetConf) -> Result<(), OpError> {
    let cni_dir = PathBuf::from(&conf.cni_dir);
    let k8s = multus::k8s_args::parse_multus_args(&cmd.args).unwrap_or_default();
    let pod = match (pod_args, d.kube.as_ref()) {
        (Some(p), Some(kube)) => {
            match tokio::time::timeout(Duration::from_secs(3), kube.lookup_pod(&p.namespace, &p.name)).await {
                Ok(Ok(PodLookup::Found(pod))) => {
                    let uid_ok = p.uid.as_deref().is_none_or(|u| u.is_empty() || u == pod.uid) || pod.is_static();
                    if uid_ok { Some(pod) } else { None }
                }
                _ => None,
            }
        }
        _ => None,
    };
    let read = cache::read_cache(&cni_dir, &cmd.container_id);
    let (mut delegates, from_cache) = match cache::del_decision(read, pod.is_some()) {
        cache::DelSource::UseCache { delegates, .. } => (delegates, true),
        cache::DelSource::Recompute => {
            let kube = d.kube()?;
            let Some(pod) = pod.as_ref() else {
                return Ok(());
            };
            let who = PodRef::new(&pod.namespace, &pod.name, &pod.uid);
            let r = resolve::resolve_del_delegates(
                &settings(conf),
                Some(&who),
                pod,
                kube.as_ref(),
                &mut resolve::NoDevices,
            )?;
            for w in &r.warnings {
                tracing::warn!("{}: {}", w.reason, w.message);
            }
            (r.delegates, false)
        }
        cache::DelSource::Nothing { reason } => {
            tracing::warn!("Multus: failed to get the cached delegates file: {reason}, cannot properly delete");
            return Ok(());
        }
    };
    for delegate in &mut delegates {
        let _ = delegate.inject_cni_version_if_missing(&conf.cni_version);
    }
    let uid = pod_args.and_then(|p| p.uid.clone()).or_else(|| pod.as_ref().map(|p| p.uid.clone())).unwrap_or_default();
    let runtime_config = conf.runtime_config.as_ref().map(RuntimeConfig::from_value);
    let ctx = plan_context(cmd, &k8s, &uid, runtime_config.as_ref(), d.process_cni_args.as_deref());
    let rt = d.runtime(conf);
    let mut errors = Vec::new();
    for (i, delegate) in delegates.iter().enumerate().rev() {
        let inv = match plan::plan_invocation(delegate, i, &ctx, Operation::Del) {
            Ok(inv) => inv,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        if let Err(e) = exec_del(&rt, delegate, &runtime_conf(cmd, &inv)).await {
            let kind = if delegate.is_conflist() { "ConflistDel" } else { "DelegateDel" };
            errors.push(format!("DelegateDel: error invoking {kind} - \"{}\": {e}", delegate.network_name()));
        }
        if let Some(path) = &inv.device_info_file {
            let _ = std::fs::remove_file(path);
        }
    }
    if from_cache && cache::should_remove_cache(conf.retry_delete_on_error, &errors) {
        let _ = cache::remove_cache(&cni_dir, &cmd.container_id);
    }
    cache::combine_del_errors(&errors).map_or(Ok(()), |e| Err(OpError::text(e)))
}

/// CHECK (§6.2): every cached delegate is checked against its cached result. Without a cache
/// (never ADDed here) there is nothing to check.
pub async fn check(d: &Daemon, cmd: &CmdArgs, _pod_args: Option<&PodArgs>, conf: &NetConf) -> Result<(), OpError> {
    let cni_dir = PathBuf::from(&conf.cni_dir);
    let delegates = match cache::read_cache(&cni_dir, &cmd.container_id) {
        cache::CacheRead::Found { delegates, .. } => delegates,
        _ if conf.cluster_network.is_empty() && !conf.delegates.is_empty() => {
            resolve::resolve_add_delegates(&settings(conf), None, None, &no_nads(), &mut resolve::NoDevices)?.delegates
        }
        _ => return Ok(()),
    };
    let k8s = multus::k8s_args::parse_multus_args(&cmd.args).unwrap_or_default();
    let uid = k8s.uid.clone().unwrap_or_default();
    let runtime_config = conf.runtime_config.as_ref().map(RuntimeConfig::from_value);
    let ctx = plan_context(cmd, &k8s, &uid, runtime_config.as_ref(), d.process_cni_args.as_deref());
    let rt = d.runtime(conf);
    for (i, delegate) in delegates.iter().enumerate() {
        let inv =
            plan::plan_invocation(delegate, i, &ctx, Operation::Check).map_err(|e| OpError::text(e.to_string()))?;
        if let Err(e) = exec_check(&rt, delegate, &runtime_conf(cmd, &inv)).await {
            let kind = if delegate.is_conflist() { "ConflistCheck" } else { "DelegateCheck" };
            return Err(OpError::text(format!(
                "DelegateCheck: error invoking {kind} - \"{}\": {e}",
                delegate.network_name()
            )));
        }
    }
    Ok(())
}

/// The cluster network as a delegate, for STATUS and GC (no pod, no default networks).
fn cluster_delegate(d: &Daemon, conf: &NetConf) -> Result<Delegate, OpError> {
    let resolved = match d.kube.as_deref() {
        Some(k) => resolve::resolve_cluster_network(&settings(conf), k)?,
        None => resolve::resolve_cluster_network(&settings(conf), &no_nads())?,
    };
    resolved.delegates.into_iter().next().ok_or_else(|| OpError::text("no cluster network"))
}

/// STATUS (§7): the cluster network's STATUS; a delegate's CNI error keeps its code.
pub async fn status(d: &Daemon, conf: &NetConf) -> Result<(), OpError> {
    let delegate = cluster_delegate(d, conf)?;
    let list = delegate.config().to_list();
    d.runtime(conf).status_network_list(&list).await.map_err(|e| OpError::Cni(e.to_cni_error()))
}

/// GC (§7): the valid attachments are the runtime's list when it sent one (stdin
/// `cni.dev/valid-attachments`), else every attachment in the result cache.
pub async fn gc(d: &Daemon, conf: &NetConf) -> Result<(), OpError> {
    let delegate = cluster_delegate(d, conf)?;
    let rt = d.runtime(conf);
    let list = delegate.config().to_list();
    let from_runtime: Option<Vec<cni::runtime::ValidAttachment>> = conf
        .raw
        .get(cni::skel::VALID_ATTACHMENTS_KEY)
        .or_else(|| conf.raw.get(cni::skel::LEGACY_ATTACHMENTS_KEY))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let valid = match from_runtime {
        Some(v) => v,
        None => all_cached_attachments(Path::new(&conf.cni_dir))
            .map_err(|e| OpError::text(format!("error in gather valid attachments: {e}")))?,
    };
    rt.gc_network_list(&list, Some(&valid)).await.map_err(|e| OpError::text(format!("error in GC command: {e}")))
}

/// Every `(containerId, ifName)` in `<cniDir>/results`; a missing directory means none.
fn all_cached_attachments(cni_dir: &Path) -> std::io::Result<Vec<cni::runtime::ValidAttachment>> {
    let dir = cni_dir.join("results");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(bytes) = std::fs::read(entry.path()) else { continue };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { continue };
        let cid = v.get("containerId").and_then(Value::as_str).unwrap_or("");
        let ifname = v.get("ifName").and_then(Value::as_str).unwrap_or("");
        if !cid.is_empty() && !ifname.is_empty() {
            out.push(cni::runtime::ValidAttachment::new(cid, ifname));
        }
    }
    Ok(out)
}

/// `/delegate` (§4.6): run one given delegate config for an existing pod ("hot-plug").
///
/// Unlike the Go daemon, the daemon config is NOT overlaid onto the delegate's own config (the
/// Go daemon injects `cniVersion`, `binDir`, `socketDir`… into the plugin config, quirk 15):
/// the daemon config only supplies Multus's own settings (`binDir`, `cniDir`). CHECK works for
/// conflists too.
pub async fn delegate(
    d: &Daemon,
    request: &multus_api::Request,
    cmd: &CmdArgs,
    pod_args: Option<&PodArgs>,
    _merged: &[u8],
) -> Result<Vec<u8>, OpError> {
    let pod_args = pod_args.ok_or_else(|| OpError::text("required CNI variable missing"))?;
    if pod_args.namespace.is_empty() || pod_args.name.is_empty() {
        return Err(OpError::text(format!(
            "required CNI variable missing. pod name: {}; pod namespace: {}",
            pod_args.name, pod_args.namespace
        )));
    }
    let tag = pod_tag(pod_args);
    // Multus's own settings: defaults overlaid with the daemon config.
    let mut raw = d.config.raw.clone();
    raw.entry("clusterNetwork").or_insert_with(|| Value::String("/delegate-api".into()));
    let conf = NetConf::from_map(raw).map_err(|e| OpError::text(format!("Multus: error loading netconf: {e}")))?;
    let attrs = request.interface_attributes.clone().unwrap_or_default();
    let element = multus::model::NetworkSelectionElement {
        interface: cmd.ifname.clone(),
        ips: attrs.ips,
        mac: attrs.mac,
        cni_args: attrs.cni_args,
        ..Default::default()
    };
    let delegate = multus::delegate::load_delegate(&request.config, Some(&element), "", "")
        .map_err(|e| OpError::text(format!("Multus: [{tag}]: {e}")))?;
    let rt = d.runtime(&conf);
    if cmd.command == cni::Command::Status {
        return rt
            .status_network_list(&delegate.config().to_list())
            .await
            .map(|()| Vec::new())
            .map_err(|e| OpError::Cni(e.to_cni_error()));
    }
    let kube = d.kube()?;
    let pod = match kube.lookup_pod(&pod_args.namespace, &pod_args.name).await {
        Ok(PodLookup::Found(p)) => p,
        Ok(PodLookup::NotFound) => {
            return Err(OpError::text(format!(
                "Multus: [{tag}]: pod {}/{} not found",
                pod_args.namespace, pod_args.name
            )));
        }
        Err(e) => return Err(OpError::text(format!("Multus: [{tag}]: {e:#}"))),
    };
    let k8s = multus::k8s_args::parse_multus_args(&cmd.args).unwrap_or_default();
    let uid = pod.uid.clone();
    let ctx = plan_context(cmd, &k8s, &uid, None, d.process_cni_args.as_deref());
    let op = match cmd.command {
        cni::Command::Add => Operation::Add,
        cni::Command::Del => Operation::Del,
        _ => Operation::Check,
    };
    // Index 1: a hot-plugged network is never the master.
    let inv = plan::plan_invocation(&delegate, 1, &ctx, op).map_err(|e| OpError::text(e.to_string()))?;
    let rconf = runtime_conf(cmd, &inv);
    let net = delegate.network_name().to_string();
    match cmd.command {
        cni::Command::Add => {
            if netns::link_exists(&cmd.netns, &inv.ifname).await.map_err(|e| OpError::text(e.to_string()))? {
                return Err(OpError::text(add_failure(pod_args, &delegate, ifname_clash(&delegate, &inv.ifname))));
            }
            let result = exec_add(&rt, &delegate, &rconf)
                .await
                .map_err(|e| OpError::text(add_failure(pod_args, &delegate, e)))?;
            if let Some(message) = plan::added_interface_message(&inv.ifname, &result, &delegate.name) {
                kube.emit(PodEvent { pod: pod.clone(), warning: false, reason: "AddedInterface".into(), message });
            }
            let value = result.convert_to(Version::V1_1_0).map_err(|e| OpError::text(e.to_string()))?.to_value();
            Ok(serde_json::to_vec(&multus_api::Response { result: Some(value) }).unwrap_or_default())
        }
        cni::Command::Del => exec_del(&rt, &delegate, &rconf)
            .await
            .map(|()| Vec::new())
            .map_err(|e| OpError::text(format!("DelegateDel: error invoking DelegateDel - \"{net}\": {e}"))),
        _ => exec_check(&rt, &delegate, &rconf)
            .await
            .map(|()| Vec::new())
            .map_err(|e| OpError::text(format!("DelegateCheck: error invoking DelegateCheck - \"{net}\": {e}"))),
    }
}
