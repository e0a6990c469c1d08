//! The Multus commands, one module each: ADD (spec §5), DEL and CHECK (§6), STATUS and GC
//! (§7), and the `/delegate` hot-plug API (§4.6).
//!
//! Every command receives the [`CniRequest`] parsed once by the handler and acts only through
//! the daemon's [`crate::daemon::Seams`]. Planning is pure (`multus::resolve`,
//! `multus::plan`); these modules order the side effects.
//!
//! Behaviour that deliberately differs from the Go daemon (each listed in
//! `docs/compatibility.md`):
//! - a failed ADD leaves nothing behind (see [`add`]);
//! - DEL runs from the delegate cache even without pod context (see [`del`]);
//! - CHECK checks every cached delegate (see [`check`]);
//! - GC honours the runtime's `cni.dev/valid-attachments` (see [`status_gc`]).

pub mod add;
pub mod check;
pub mod del;
pub mod delegate;
pub mod effective;
pub mod hotplug;
pub mod status_gc;

use crate::daemon::Daemon;
use crate::error::CommandError;
use crate::request::{CniRequest, Endpoint};
use cni::exec::Exec;
use cni::runtime::{CniRuntime, RuntimeConf, RuntimeError};
use cni::{CniResult, Command};
use multus::config::NetConf;
use multus::delegate::Delegate;
use multus::error::{MultusError, PodRef, Warning};
use multus::k8s_args::K8sArgs;
use multus::model::PodInfo;
use multus::plan::{DelegateInvocation, PlanContext, RuntimeConfig};
use multus::resolve::{DeviceIdSource, DeviceProbe, ResolveSettings, Resolved};
use serde_json::Value;
use std::sync::Arc;

/// The libcni runtime the commands run delegates with.
pub(crate) type Runtime = CniRuntime<Arc<dyn Exec>>;

/// What a successful command answers: ADD's result (in the daemon's current CNI version) or
/// nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// ADD's result.
    Result(Value),
    /// Success without a result (DEL, CHECK, STATUS, GC).
    Done,
}

impl Outcome {
    /// The reply body: `{"Result": …}` or empty.
    pub fn into_body(self) -> Vec<u8> {
        match self {
            Self::Result(value) => {
                // Serialising a `Value` into a Vec cannot fail.
                serde_json::to_vec(&multus_api::Response { result: Some(value) }).unwrap_or_default()
            }
            Self::Done => Vec::new(),
        }
    }
}

/// Run one request's command.
pub async fn run(d: &Daemon, req: &CniRequest) -> Result<Outcome, CommandError> {
    // Whatever the command allocates is given back once the daemon is idle again.
    crate::memory::note_activity();
    if req.endpoint == Endpoint::Delegate {
        return delegate::run(d, req).await;
    }
    let conf = effective::effective_config(d, &req.config)?;
    match req.command {
        Command::Add => add::run(d, req, &conf).await.map(Outcome::Result),
        Command::Del => del::run(d, req, &conf).await.map(|()| Outcome::Done),
        Command::Check => check::run(d, req, &conf).await.map(|()| Outcome::Done),
        Command::Status => status_gc::status(d, &conf).await.map(|()| Outcome::Done),
        Command::Gc => status_gc::gc(d, req, &conf).await.map(|()| Outcome::Done),
        // Refused when the request was parsed.
        Command::Version => Err(CommandError::Internal(crate::error::InternalError::VersionCommand)),
    }
}

/// The parts of the effective config that network resolution reads: the one mapping in
/// `multus`, shared with `multusctl explain`.
pub(crate) fn resolve_settings(conf: &NetConf) -> ResolveSettings {
    ResolveSettings::from_netconf(conf)
}

/// The runtime's `runtimeConfig`, leniently parsed.
pub(crate) fn runtime_config(conf: &NetConf) -> Option<RuntimeConfig> {
    conf.runtime_config.as_ref().map(RuntimeConfig::from_value)
}

/// Planning context of a request: `args` is the pod as its delegates see it.
pub(crate) fn plan_context<'a>(
    d: &'a Daemon,
    req: &'a CniRequest,
    args: &'a K8sArgs,
    runtime_config: Option<&'a RuntimeConfig>,
) -> PlanContext<'a> {
    PlanContext {
        container_id: &req.container_id,
        ifname: &req.ifname,
        args,
        runtime_config,
        process_cni_args: d.process_cni_args(),
    }
}

/// One delegate's invocation and libcni's runtime conf of it, computed once (its ADD, the
/// cached-result edit of `default-route` and a rollback's DEL all use the same).
#[derive(Debug, Clone)]
pub struct Planned {
    /// Interface name, `CNI_ARGS` and capability args.
    pub invocation: DelegateInvocation,
    /// What libcni runs the delegate with.
    pub runtime_conf: RuntimeConf,
}

impl Planned {
    /// The invocation of a delegate for `req`.
    pub(crate) fn new(req: &CniRequest, invocation: DelegateInvocation) -> Self {
        let runtime_conf = RuntimeConf {
            container_id: req.container_id.clone(),
            netns: req.netns.clone(),
            ifname: invocation.ifname.clone(),
            args: invocation.cni_args.clone(),
            capability_args: invocation.capability_args.clone(),
        };
        Self { invocation, runtime_conf }
    }
}

/// Run one delegate invocation and record it in the metrics (verb, plugin type, network).
pub(crate) async fn observed<T>(
    d: &Daemon,
    verb: Command,
    delegate: &Delegate,
    run: impl std::future::Future<Output = Result<T, RuntimeError>>,
) -> Result<T, RuntimeError> {
    let started = std::time::Instant::now();
    let outcome = run.await;
    let network = if delegate.name.is_empty() { delegate.network_name() } else { &delegate.name };
    d.metrics.observe_delegate(verb.as_str(), delegate.plugin_type(), network, started.elapsed(), outcome.is_ok());
    outcome
}

pub(crate) async fn exec_add(
    d: &Daemon,
    rt: &Runtime,
    delegate: &Delegate,
    conf: &RuntimeConf,
) -> Result<CniResult, RuntimeError> {
    let list = delegate.config().to_list();
    observed(d, Command::Add, delegate, rt.add_network_list_with_bytes(&list, delegate.bytes(), conf)).await
}

pub(crate) async fn exec_del(
    d: &Daemon,
    rt: &Runtime,
    delegate: &Delegate,
    conf: &RuntimeConf,
) -> Result<(), RuntimeError> {
    let list = delegate.config().to_list();
    observed(d, Command::Del, delegate, rt.del_network_list(&list, conf)).await
}

pub(crate) async fn exec_check(
    d: &Daemon,
    rt: &Runtime,
    delegate: &Delegate,
    conf: &RuntimeConf,
) -> Result<(), RuntimeError> {
    let list = delegate.config().to_list();
    observed(d, Command::Check, delegate, rt.check_network_list(&list, conf)).await
}

/// Interface clash check (§5.13): fail before the plugin touches anything. A delegate stopped
/// here never ran, and its DEL would remove the interface that was already there (the Go
/// daemon does exactly that to a pod ADDed twice).
pub(crate) async fn check_interface_free(
    d: &Daemon,
    req: &CniRequest,
    delegate: &Delegate,
    ifname: &str,
    who: &PodRef,
) -> Result<(), CommandError> {
    let net = delegate.network_name();
    match d.netns().link_exists(&req.netns, ifname).await {
        Ok(false) => Ok(()),
        Ok(true) => {
            let clash = format!(
                "DelegateAdd: cannot set \"{}\" interface name to \"{ifname}\": validateIfName: interface name {ifname} already exists",
                delegate.plugin_type()
            );
            Err(MultusError::delegate_add(Some(who), net, clash).into())
        }
        Err(e) => Err(CommandError::delegate_netns(who, net, "DelegateAdd: ", &e)),
    }
}

/// The NADs a resolution for `pod` will look up, answered before it runs: from the node's NAD
/// cache, the misses fetched from the API server (at the same time, one GET each) — so that
/// the resolution itself stays synchronous and pure, and a NAD already used on this node costs
/// no round trip.
pub(crate) async fn nads_for<'a>(
    d: &'a Daemon,
    settings: &ResolveSettings,
    pod: Option<&PodInfo>,
) -> crate::seams::NadView<'a> {
    let keys = multus::resolve::nad_keys(settings, pod);
    let answers = if keys.is_empty() { Default::default() } else { d.cluster().nad_answers(&keys).await };
    crate::seams::NadView::new(answers, d.cluster())
}

/// Run a resolution, looking the pod's devices up only when a network asks for one (the
/// reference builds its device map lazily, at the first NAD with a resource name): a first pass
/// with a probe tells; then, if needed, the real pass with the devices (or the lookup error,
/// which then fails the resolution at that NAD with the reference's text).
pub(crate) async fn resolve_with_devices(
    d: &Daemon,
    pod: &PodInfo,
    resolve: impl Fn(&mut dyn DeviceIdSource) -> Result<Resolved, MultusError>,
) -> Result<Resolved, MultusError> {
    let mut probe = DeviceProbe::default();
    let first = resolve(&mut probe);
    if !probe.asked {
        return first;
    }
    let mut devices = d.devices().pod_devices(pod).await;
    if let Ok(map) = &devices {
        tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), "devices of the pod: {map:?}");
    }
    resolve(&mut devices)
}

/// Emit the planner's warnings: events on the pod where asked, log lines otherwise.
pub(crate) fn emit_warnings(d: &Daemon, pod: &PodInfo, warnings: &[Warning]) {
    for w in warnings {
        if w.event {
            d.cluster().emit(crate::seams::PodEvent {
                pod: pod.clone(),
                warning: true,
                reason: w.reason.clone(),
                message: w.message.clone(),
            });
        } else {
            tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), "{}: {}", w.reason, w.message);
        }
    }
}

/// Remove a `CNIDeviceInfoFile` this daemon computed (only inside the CNI device-info
/// directory: a path that came from a request is never deleted as given).
pub(crate) fn remove_device_info_file(path: &str) {
    let p = std::path::Path::new(path);
    let inside = p.parent() == Some(std::path::Path::new(multus::plan::CNI_DEVICE_INFO_DIR))
        && p.file_name().is_some_and(|n| n != "." && n != "..");
    if !inside {
        tracing::warn!("not removing the device-info file {path:?}: outside {}", multus::plan::CNI_DEVICE_INFO_DIR);
        return;
    }
    match std::fs::remove_file(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove the device-info file {path}: {e}"),
    }
}
