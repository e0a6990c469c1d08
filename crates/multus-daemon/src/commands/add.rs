//! ADD (spec §5): plan (pure) → validate → apply with rollback → one status write.
//!
//! Differences from the Go daemon, on purpose:
//! - a failed ADD leaves nothing behind: every delegate already added, including the failed
//!   one, gets a DEL, and when that rollback is clean the delegate cache file is removed too (or
//!   the previous ADD's cache put back); a failure after the delegates ran (e.g. the status write
//!   with the API server down) rolls back as well instead of leaving interfaces for a later DEL;
//! - a second ADD for a sandbox stops at the interface clash check before its delegate runs,
//!   so it neither rolls back nor overwrites the first ADD's attachment and caches;
//! - with `parallelDelegates` (opt-in; Go always runs them one after the other) the delegates
//!   of a pod run at the same time, at most [`PARALLEL_DELEGATES_MAX`] at once. The result and
//!   the network-status entries still come in annotation order whatever order the delegates
//!   finish in, and the rollback guarantee is the same: when any delegate fails, every delegate
//!   that ran (the failed one included) is DELeted, last first. The error answered is the one of
//!   the first failed delegate in annotation order.

use super::{
    Planned, Runtime, emit_warnings, exec_add, exec_del, plan_context, resolve_settings, resolve_with_devices,
    runtime_config,
};
use crate::daemon::Daemon;
use crate::error::CommandError;
use crate::request::{CniRequest, PodIdentity};
use crate::seams::{ClusterError, PodEvent, PodLookup};
use cni::exec::ExecError;
use cni::{CniResult, Version};
use multus::config::NetConf;
use multus::delegate::Delegate;
use multus::error::{ErrorKind, MultusError, PodRef};
use multus::k8s_args::K8sArgs;
use multus::model::PodInfo;
use multus::plan::{self, Operation};
use multus::{cache, default_route, resolve, status};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Delegates of one pod running at once with `parallelDelegates` (a pod may ask for up to 128).
pub const PARALLEL_DELEGATES_MAX: usize = 16;

/// The non-auto-mode readiness-indicator wait of each ADD (§5.3 step 2).
const READINESS_WAIT: Duration = Duration::from_secs(45);

/// The delegates of an ADD and how each is invoked; computed before anything changes.
#[derive(Debug, Clone)]
pub struct AddPlan {
    pub delegates: Vec<Delegate>,
    /// One per delegate, in order.
    pub runs: Vec<Planned>,
}

impl AddPlan {
    /// Each delegate with its invocation.
    fn steps(&self) -> impl Iterator<Item = (&Delegate, &Planned)> {
        self.delegates.iter().zip(&self.runs)
    }
}

/// What every step of one ADD shares: the daemon, the request, its pod and its runtime.
pub(super) struct AddRun<'a> {
    pub(super) d: &'a Daemon,
    pub(super) rt: Runtime,
    pub(super) req: &'a CniRequest,
    pub(super) conf: &'a NetConf,
    /// The pod as the API server has it.
    pub(super) pod: &'a PodInfo,
    /// The pod as the request names it (error prefixes).
    pub(super) who: PodRef,
}

/// ADD. Returns the selected result (§5.16) as JSON in CNI 1.1.0.
pub async fn run(d: &Daemon, req: &CniRequest, conf: &NetConf) -> Result<Value, CommandError> {
    let pod_id = complete_pod(req)?;
    let who = pod_id.pod_ref();
    let args = req.load_args.clone().map_err(MultusError::from)?;
    wait_for_readiness(d, conf, &who).await?;
    let pod = match d.cluster().lookup_pod(&pod_id.namespace, &pod_id.name).await {
        Ok(PodLookup::Found(p)) => p,
        Ok(PodLookup::NotFound) => {
            tracing::warn!(pod = %who, "pod not found; answering with a placeholder result");
            return placeholder_result(conf, req, &who);
        }
        Err(e) => {
            if let ClusterError::PodTooLarge { .. } = &e {
                refused_pod_event(d, pod_id, &e);
            }
            return Err(CommandError::cluster(&who, &e));
        }
    };
    check_uid(pod_id, &pod, &who)?;
    // A static pod's mirror has its own UID: the runtime's is the one delegates must see.
    let uid = if pod.is_static() { pod_id.uid_or_empty() } else { pod.uid.as_str() };
    // The pod as the delegates see it: libcni's reading of CNI_ARGS with that UID.
    let args = K8sArgs { pod: args.pod.with_uid(uid), ..args };
    let resolve_as = pod_id.with_uid(uid).pod_ref();
    let run = AddRun { d, rt: d.runtime(conf), req, conf, pod: &pod, who };

    let settings = resolve_settings(conf);
    let mut nads = super::nads_for(d, &settings, Some(&pod)).await;
    // Before the configs are copied into delegates, pods with big NADs take turns; one that
    // must wait lets go of its NADs meanwhile and looks them up again (from the cache, mostly).
    let weight = nads.config_bytes();
    let _config_room = match d.try_admit_config_bytes(weight) {
        crate::daemon::ConfigRoom::Granted(room) => room,
        crate::daemon::ConfigRoom::MustWait => {
            drop(nads);
            let room = d.admit_config_bytes(weight).await;
            nads = super::nads_for(d, &settings, Some(&pod)).await;
            room
        }
    };
    let mut plan = run.make_plan(&resolve_as, &args, &settings, &nads).await?;
    drop(nads);
    // With dynamicNetworks the cache remembers the selection this sandbox was made for: a
    // change made during this ADD (or while the daemon was down) is then seen as one.
    if crate::dynamic::enabled(&d.config).unwrap_or(false)
        && let Some(master) = plan.delegates.first_mut()
    {
        master.selection = Some(pod.annotation(multus::model::NETWORKS_ANNOTATION).unwrap_or("").to_string());
    }
    let cni_dir = PathBuf::from(&conf.cni_dir);
    // A runtime should not ADD twice without a DEL; if it does, the first ADD's cache must
    // survive this one's failure so that its DEL still finds everything.
    let previous_cache = std::fs::read(cache::cache_path(&cni_dir, &req.container_id)).ok();
    cache::write_cache(&cni_dir, &req.container_id, &plan.delegates).map_err(|e| {
        CommandError::multus(&run.who, ErrorKind::SaveDelegates, format!("error saving the delegates: {e}"))
    })?;

    let applied = if crate::daemon::parallel_delegates(&d.config) && runs_in_parallel(&plan) {
        run.apply_parallel(&plan).await
    } else {
        run.apply(&plan).await
    };
    let failure = match applied {
        Ok(attachment) => match write_status(d, &pod, &attachment.statuses, &run.who).await {
            Ok(()) => return select_result(conf, &plan, &attachment.results, &run.who),
            Err(e) => ((0..plan.delegates.len()).collect(), e),
        },
        Err(failure) => failure,
    };
    let (ran, error) = failure;
    run.rollback(&plan, &ran, previous_cache.as_deref()).await;
    Err(error)
}

/// Delegates run at once only when there are several and their interface names differ (two
/// with the same name must meet the clash check one after the other).
fn runs_in_parallel(plan: &AddPlan) -> bool {
    let mut names: Vec<&str> = plan.runs.iter().map(|r| r.invocation.ifname.as_str()).collect();
    names.sort_unstable();
    names.len() > 1 && names.windows(2).all(|w| w[0] != w[1])
}

/// A Warning event on a pod refused for its size (the ADD fails; the runtime retries until the
/// pod is fixed or deleted).
fn refused_pod_event(d: &Daemon, pod_id: &PodIdentity, e: &ClusterError) {
    let pod = d.cluster().cached_pod(&pod_id.namespace, &pod_id.name).unwrap_or_else(|| PodInfo {
        namespace: pod_id.namespace.clone(),
        name: pod_id.name.clone(),
        uid: pod_id.uid.clone().unwrap_or_default(),
        ..Default::default()
    });
    d.cluster().emit(PodEvent { pod, warning: true, reason: "PodTooLarge".into(), message: e.to_string() });
}

/// ADD needs the pod's namespace and name.
pub(super) fn complete_pod(req: &CniRequest) -> Result<&PodIdentity, CommandError> {
    match &req.pod {
        Some(p) if p.is_complete() => Ok(p),
        other => {
            let p = other.clone().unwrap_or_default();
            Err(CommandError::MissingPod { namespace: p.namespace, name: p.name })
        }
    }
}

/// Non-auto mode only: the primary network's readiness file must exist.
async fn wait_for_readiness(d: &Daemon, conf: &NetConf, who: &PodRef) -> Result<(), CommandError> {
    if d.config.is_auto_mode() || conf.readiness_indicator_file.is_empty() {
        return Ok(());
    }
    if crate::confgen::wait_for_file(Path::new(&conf.readiness_indicator_file), READINESS_WAIT).await {
        return Ok(());
    }
    Err(CommandError::multus(
        who,
        ErrorKind::Other,
        format!(
            "have you checked that your default network is ready? still waiting for readinessindicatorfile @ {}",
            conf.readiness_indicator_file
        ),
    ))
}

/// §5.3 step 3: a pod that does not exist gets an empty success result (quirk 19 kept).
fn placeholder_result(conf: &NetConf, req: &CniRequest, who: &PodRef) -> Result<Value, CommandError> {
    let placeholder = plan::pod_not_found_result(&conf.cni_version, &req.ifname, &req.netns);
    CniResult::from_value(&placeholder)
        .and_then(|r| r.convert_to(Version::V1_1_0))
        .map(|r| r.to_value())
        .map_err(|e| CommandError::multus(who, ErrorKind::Other, e.to_string()))
}

/// The runtime's UID must be the API's, except for static pods (§5.5).
pub(super) fn check_uid(pod_id: &PodIdentity, pod: &PodInfo, who: &PodRef) -> Result<(), CommandError> {
    match pod_id.uid.as_deref() {
        Some(uid) if !uid.is_empty() && uid != pod.uid && !pod.is_static() => Err(CommandError::multus(
            who,
            ErrorKind::Pod,
            format!("expected pod UID \"{uid}\" but got \"{}\" from Kube API", pod.uid),
        )),
        _ => Ok(()),
    }
}

/// What the delegates produced.
struct Attachment {
    /// One per delegate, in order.
    results: Vec<Option<CniResult>>,
    statuses: Vec<status::NetworkStatus>,
}

/// A failed apply: the indices of the delegates that may have changed something (they need a
/// DEL, in reverse order), and the error.
type Failure = (Vec<usize>, CommandError);

/// What one delegate's ADD produced.
pub(super) struct Added {
    pub(super) result: CniResult,
    pub(super) statuses: Vec<status::NetworkStatus>,
    /// The `AddedInterface` event's message.
    pub(super) event: Option<String>,
}

impl Attachment {
    /// Keep a delegate's result and status entries, and announce its interface.
    fn record(&mut self, d: &Daemon, pod: &PodInfo, added: Added) {
        self.statuses.extend(added.statuses);
        if let Some(message) = added.event {
            d.cluster().emit(PodEvent { pod: pod.clone(), warning: false, reason: "AddedInterface".into(), message });
        }
        self.results.push(Some(added.result));
    }
}

/// Give the delegate the device plugin's description of its device (§5.13). Errors are only
/// logged, as in the reference: the delegate still gets the device ID.
fn copy_device_info(d: &Daemon, delegate: &Delegate, planned: &Planned) {
    let Some(path) = planned.invocation.device_info_file.as_deref() else { return };
    if delegate.resource_name.is_empty() || delegate.device_id.is_empty() {
        return;
    }
    if let Err(e) = d.devices().copy_device_info(&delegate.resource_name, &delegate.device_id, path) {
        tracing::warn!("no device-info file for {} ({}): {e}", delegate.network_name(), delegate.device_id);
    }
}

/// A delegate's `CNIDeviceInfoFile`, parsed; a missing or unreadable file gives no entry.
fn read_device_info(path: &str) -> Option<Value> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("cannot read the device-info file {path}: {e}");
            return None;
        }
    };
    serde_json::from_slice(&bytes).inspect_err(|e| tracing::warn!("the device-info file {path} is not JSON: {e}")).ok()
}

/// The one network-status write of the ADD (skipped when no delegate produced an entry).
pub(super) async fn write_status(
    d: &Daemon,
    pod: &PodInfo,
    statuses: &[status::NetworkStatus],
    who: &PodRef,
) -> Result<(), CommandError> {
    if statuses.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let written = d.cluster().write_network_status(pod, &status::format_network_status(statuses)).await;
    d.metrics.api_write_duration.with_label_values(&["network_status"]).observe(started.elapsed().as_secs_f64());
    let outcome = if written.is_ok() { "success" } else { "failure" };
    d.metrics.api_writes.with_label_values(&["network_status", outcome]).inc();
    written.map_err(|e| CommandError::multus(who, ErrorKind::NetworkStatus, e.to_string()))
}

/// The master's result (§5.16), up-converted to 1.1.0.
fn select_result(
    conf: &NetConf,
    plan: &AddPlan,
    results: &[Option<CniResult>],
    who: &PodRef,
) -> Result<Value, CommandError> {
    let selected = plan::select_result(&plan.delegates, results)
        .cloned()
        .unwrap_or_else(|| CniResult::empty(Version::parse(&conf.cni_version).unwrap_or(Version::V1_1_0)));
    selected
        .convert_to(Version::V1_1_0)
        .map(|r| r.to_value())
        .map_err(|e| CommandError::multus(who, ErrorKind::Other, e.to_string()))
}

impl AddRun<'_> {
    /// Resolve the delegates and plan every invocation. Nothing has changed yet when this
    /// fails. `resolve_as` is the pod with the UID the delegates see.
    pub(super) async fn make_plan(
        &self,
        resolve_as: &PodRef,
        args: &K8sArgs,
        settings: &multus::resolve::ResolveSettings,
        nads: &crate::seams::NadView<'_>,
    ) -> Result<AddPlan, CommandError> {
        let (d, pod) = (self.d, self.pod);
        let resolved = resolve_with_devices(d, pod, |devices| {
            resolve::resolve_add_delegates(settings, Some(resolve_as), Some(pod), nads, devices)
        })
        .await
        .inspect_err(|e| emit_warnings(d, pod, e.warnings()))?;
        emit_warnings(d, pod, &resolved.warnings);
        let delegates = resolved.delegates;
        let runtime_config = runtime_config(self.conf);
        let ctx = plan_context(d, self.req, args, runtime_config.as_ref());
        let invocations = plan::plan_all(&delegates, &ctx, Operation::Add)
            .map_err(|(i, e)| MultusError::delegate_add(Some(&self.who), delegates[i].network_name(), e))?;
        let runs = invocations.into_iter().map(|inv| Planned::new(self.req, inv)).collect();
        Ok(AddPlan { delegates, runs })
    }

    /// Run every delegate in order, stopping at the first failure.
    async fn apply(&self, plan: &AddPlan) -> Result<Attachment, Failure> {
        let mut attachment = Attachment { results: Vec::with_capacity(plan.delegates.len()), statuses: Vec::new() };
        for (i, (delegate, planned)) in plan.steps().enumerate() {
            let added = self.add_one(delegate, planned).await.map_err(|(ran, e)| {
                // The failed delegate needs a DEL too when it got as far as running.
                ((0..i + usize::from(ran)).collect(), e)
            })?;
            attachment.record(self.d, self.pod, added);
        }
        Ok(attachment)
    }

    /// Run the delegates at the same time (`parallelDelegates`), then take their outcomes in
    /// annotation order.
    async fn apply_parallel(&self, plan: &AddPlan) -> Result<Attachment, Failure> {
        use futures::StreamExt;
        // The futures are made first: a stream holding the closure that makes them is not
        // `Send` for every lifetime, which the request's task needs.
        let mut runs = Vec::with_capacity(plan.delegates.len());
        for (delegate, planned) in plan.steps() {
            runs.push(self.add_one(delegate, planned));
        }
        let outcomes: Vec<_> = futures::stream::iter(runs).buffered(PARALLEL_DELEGATES_MAX).collect().await;
        let mut attachment = Attachment { results: Vec::with_capacity(plan.delegates.len()), statuses: Vec::new() };
        let (mut ran, mut first_error) = (Vec::new(), None);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(added) => {
                    ran.push(i);
                    attachment.record(self.d, self.pod, added);
                }
                Err((changed, e)) => {
                    if changed {
                        ran.push(i);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(attachment),
            Some(e) => Err((ran, e)),
        }
    }

    /// One delegate's ADD: clash check, device info, the plugin, default route, status
    /// entries. On failure: whether the delegate may have changed something (it then needs a
    /// DEL), and the error.
    pub(super) async fn add_one(&self, delegate: &Delegate, planned: &Planned) -> Result<Added, (bool, CommandError)> {
        let (d, who, inv) = (self.d, &self.who, &planned.invocation);
        let net = delegate.network_name();
        // A delegate stopped by the clash check never ran: nothing of it to roll back.
        super::check_interface_free(d, self.req, delegate, &inv.ifname, who).await.map_err(|e| (false, e))?;
        // From here on this delegate may have changed something: a rollback must DEL it, even
        // when its ADD fails.
        copy_device_info(d, delegate, planned);
        let result = exec_add(d, &self.rt, delegate, &planned.runtime_conf)
            .await
            .map_err(|e| (true, CommandError::delegate_add(who, net, &e)))?;
        tracing::info!(
            "Add: {}:{}:{}:{}({}):{} {}",
            who.namespace,
            who.name,
            who.uid,
            delegate.name,
            net,
            inv.ifname,
            result.to_json()
        );
        self.apply_default_route(delegate, &result, planned)
            .await
            .map_err(|cause| (true, MultusError::delegate_add(Some(who), net, cause).into()))?;
        let device_info = inv.device_info_file.as_deref().and_then(read_device_info);
        let statuses = match status::network_statuses(&result, &delegate.name, delegate.is_master, device_info.as_ref())
        {
            Ok(entries) => entries,
            // The reference logs and goes on: the attachment works, only its annotation entry
            // is missing.
            Err(e) => {
                tracing::warn!(pod = %who, "cannot build the network status of {net}: {e}");
                Vec::new()
            }
        };
        let event = plan::added_interface_message(&inv.ifname, &result, &delegate.name);
        Ok(Added { result, statuses, event })
    }

    /// `default-route` handling after a delegate's ADD (§5.15): routes in the pod and the
    /// delegate's cached result.
    async fn apply_default_route(
        &self,
        delegate: &Delegate,
        result: &CniResult,
        planned: &Planned,
    ) -> Result<(), DefaultRouteFailure> {
        let (netns, ifname) = (&self.req.netns, &planned.invocation.ifname);
        let actions = default_route::route_actions(delegate, result);
        if actions.is_empty() {
            return Ok(());
        }
        if actions.delete_default_v4 || actions.delete_default_v6 {
            self.d
                .netns()
                .delete_default_routes(netns, ifname, actions.delete_default_v4, actions.delete_default_v6)
                .await
                .map_err(DefaultRouteFailure::Delete)?;
        }
        for gw in &actions.add_gateways {
            self.d.netns().add_default_route(netns, ifname, *gw).await.map_err(DefaultRouteFailure::Add)?;
        }
        let mut edit_error = None;
        self.rt
            .update_cached_result(delegate.network_name(), &planned.runtime_conf, |cached: &mut Value| {
                if let Err(e) = default_route::apply_cache_edits(cached, &actions) {
                    edit_error = Some(e);
                }
            })
            .map_err(|e| DefaultRouteFailure::CacheEdit(e.to_string()))?;
        edit_error.map_or(Ok(()), |e| Err(DefaultRouteFailure::CacheEdit(e.to_string())))
    }

    /// DEL the delegates at the indices `ran` (ascending; last first), ignoring errors; when
    /// everything went away cleanly, remove the delegate cache (or put back the one an earlier
    /// ADD had written).
    async fn rollback(&self, plan: &AddPlan, ran: &[usize], previous_cache: Option<&[u8]>) {
        let (d, container_id) = (self.d, &self.req.container_id);
        let mut clean = true;
        for (delegate, planned) in ran.iter().rev().filter_map(|&i| plan.delegates.get(i).zip(plan.runs.get(i))) {
            match exec_del(d, &self.rt, delegate, &planned.runtime_conf).await {
                Ok(()) => {}
                // A plugin that does not exist cannot have left anything behind.
                Err(e) if matches!(e.exec_error(), Some(ExecError::NotFound { .. })) => {}
                Err(e) => {
                    clean = false;
                    tracing::error!(container = %container_id, "rollback: DEL of {} failed: {e}", delegate.network_name());
                }
            }
            if let Some(path) = &planned.invocation.device_info_file {
                super::remove_device_info_file(path);
            }
        }
        d.metrics.rollbacks.with_label_values(&[if clean { "clean" } else { "incomplete" }]).inc();
        if !clean {
            tracing::warn!(
                container = %container_id,
                "rollback incomplete: keeping the delegate cache so that the runtime's DEL can finish it"
            );
            return;
        }
        let cni_dir = Path::new(&self.conf.cni_dir);
        let outcome = match previous_cache {
            Some(bytes) => cni::runtime::write_atomic(&cache::cache_path(cni_dir, container_id), bytes),
            None => cache::remove_cache(cni_dir, container_id),
        };
        if let Err(e) = outcome {
            tracing::error!(container = %container_id, "rollback: cannot restore the delegate cache: {e}");
        }
    }
}

/// Why a delegate's `default-route` could not be applied; the texts are the reference's.
#[derive(Debug, thiserror::Error)]
enum DefaultRouteFailure {
    #[error("error deleting default gateway: {0}")]
    Delete(crate::seams::NetnsError),
    #[error("error setting default gateway: {0}")]
    Add(crate::seams::NetnsError),
    #[error("error editing the cached result: {0}")]
    CacheEdit(String),
}
