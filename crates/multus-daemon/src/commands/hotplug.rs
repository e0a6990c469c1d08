//! Networks that follow the pod (`dynamicNetworks`, a multus-rs extension): bring a running
//! sandbox's attachments in line with its pod's current selection annotation.
//!
//! The caller holds the sandbox lock and gives the ADD the runtime would send for the sandbox
//! (container, namespace, master interface and `CNI_ARGS` from the caches, `00-multus.conf` as
//! config). The pod's networks are resolved as an ADD resolves them; [`multus::hotplug`] decides
//! what to remove and add; removals run first (their DEL), then each addition (its ADD, rolled
//! back with a DEL when it fails: the pod keeps what it had). The delegate cache is rewritten
//! with every interface name pinned, so the runtime's DEL at pod deletion removes hot-plugged
//! attachments too, and network-status is written once, from every attachment's cached result.

use super::add::{AddRun, check_uid, complete_pod, write_status};
use super::{Planned, exec_del, plan_context, resolve_settings, runtime_config};
use crate::daemon::Daemon;
use crate::error::CommandError;
use crate::request::CniRequest;
use crate::seams::{PodEvent, PodLookup};
use multus::cache::{self, CacheRead};
use multus::config::NetConf;
use multus::error::{ErrorKind, MultusError};
use multus::hotplug::{HotplugPlan, delegates_after, live_attachments, plan_hotplug, wanted_attachments};
use multus::k8s_args::K8sArgs;
use multus::model::NETWORKS_ANNOTATION;
use multus::plan::{self, Operation};
use multus::status;
use std::path::PathBuf;

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// `(network, interface)` plugged in.
    pub added: Vec<(String, String)>,
    /// `(network, interface)` unplugged.
    pub removed: Vec<(String, String)>,
    /// `(network, error)` of each change that failed (nothing of it is left).
    pub failed: Vec<(String, String)>,
}

/// Reconcile the sandbox of `req` (see the module docs).
pub async fn reconcile(d: &Daemon, req: &CniRequest, conf: &NetConf) -> Result<Applied, CommandError> {
    let pod_id = complete_pod(req)?;
    let who = pod_id.pod_ref();
    let args = req.load_args.clone().map_err(MultusError::from)?;
    let pod = match d.cluster().lookup_pod(&pod_id.namespace, &pod_id.name).await {
        Ok(PodLookup::Found(p)) => p,
        // Gone: its sandbox is the runtime's (and the orphan reconciler's) to delete.
        Ok(PodLookup::NotFound) => return Ok(Applied::default()),
        Err(e) => return Err(CommandError::cluster(&who, &e)),
    };
    check_uid(pod_id, &pod, &who)?;
    let uid = if pod.is_static() { pod_id.uid_or_empty() } else { pod.uid.as_str() };
    let args = K8sArgs { pod: args.pod.with_uid(uid), ..args };
    let resolve_as = pod_id.with_uid(uid).pod_ref();
    let cni_dir = PathBuf::from(&conf.cni_dir);
    let cached = match cache::read_cache(&cni_dir, &req.container_id) {
        CacheRead::Found { delegates, .. } => delegates,
        // No cache: nothing proves what the sandbox has; never act.
        _ => return Ok(Applied::default()),
    };
    let run = AddRun { d, rt: d.runtime(conf), req, conf, pod: &pod, who: who.clone() };
    let settings = resolve_settings(conf);
    let nads = super::nads_for(d, &settings, Some(&pod)).await;
    let resolved = run.make_plan(&resolve_as, &args, &settings, &nads).await?;
    drop(nads);
    let live = live_attachments(&cached, &req.ifname);
    let hot = plan_hotplug(&live, &wanted_attachments(&resolved.delegates))
        .map_err(|e| CommandError::multus(&who, ErrorKind::PodDelegates, e.to_string()))?;
    let selection = pod.annotation(NETWORKS_ANNOTATION).unwrap_or("").to_string();
    if hot.is_empty() {
        // Nothing to change; the cache learns that this selection is what the sandbox has.
        if cached.first().is_some_and(|m| m.selection.as_deref() != Some(selection.as_str())) {
            let mut same = cached.clone();
            same[0].selection = Some(selection);
            cache::write_cache(&cni_dir, &req.container_id, &same).map_err(|e| {
                CommandError::multus(&who, ErrorKind::SaveDelegates, format!("error saving the delegates: {e}"))
            })?;
        }
        return Ok(Applied::default());
    }
    let runtime_config = runtime_config(conf);
    let ctx = plan_context(d, req, &args, runtime_config.as_ref());
    let mut applied = Applied::default();
    let mut done = HotplugPlan::default();

    for gone in &hot.remove {
        let Some((index, delegate)) = cached
            .iter()
            .enumerate()
            .find(|(i, c)| c.name == gone.network && plan::interface_name(c, *i, &req.ifname) == gone.ifname)
        else {
            continue;
        };
        let outcome = match plan::plan_invocation(delegate, index, &ctx, Operation::Del) {
            Ok(inv) => {
                exec_del(d, &run.rt, delegate, &Planned::new(req, inv).runtime_conf).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(pod = %who, "unplugged {} ({})", gone.ifname, gone.network);
                d.metrics.dynamic_attachments.with_label_values(&["remove", "success"]).inc();
                applied.removed.push((gone.network.clone(), gone.ifname.clone()));
                done.remove.push(gone.clone());
            }
            Err(e) => {
                // It stays in the cache: the next change, or the pod's DEL, tries again.
                d.metrics.dynamic_attachments.with_label_values(&["remove", "failure"]).inc();
                applied.failed.push((gone.network.clone(), format!("DEL of {}: {e}", gone.ifname)));
            }
        }
    }
    for (wanted, ifname) in &hot.add {
        let Some(mut delegate) = resolved.delegates.get(wanted.position).cloned() else { continue };
        delegate.ifname_request = ifname.clone();
        let planned = match plan::plan_invocation(&delegate, wanted.position, &ctx, Operation::Add) {
            Ok(inv) => Planned::new(req, inv),
            Err(e) => {
                applied.failed.push((wanted.network.clone(), e.to_string()));
                continue;
            }
        };
        match run.add_one(&delegate, &planned).await {
            Ok(added) => {
                if let Some(message) = added.event {
                    d.cluster().emit(PodEvent {
                        pod: pod.clone(),
                        warning: false,
                        reason: "AddedInterface".into(),
                        message,
                    });
                }
                d.metrics.dynamic_attachments.with_label_values(&["add", "success"]).inc();
                applied.added.push((wanted.network.clone(), ifname.clone()));
                done.add.push((wanted.clone(), ifname.clone()));
            }
            Err((ran, e)) => {
                if ran && let Err(del) = exec_del(d, &run.rt, &delegate, &planned.runtime_conf).await {
                    tracing::error!(pod = %who, "hot-plug rollback: DEL of {} failed: {del}", delegate.network_name());
                }
                d.metrics.dynamic_attachments.with_label_values(&["add", "failure"]).inc();
                applied.failed.push((wanted.network.clone(), e.to_string()));
            }
        }
    }
    if done.is_empty() {
        return Ok(applied);
    }
    let selection = if applied.failed.is_empty() { Some(selection) } else { None };
    let mut after = delegates_after(&cached, &req.ifname, &done, &resolved.delegates);
    // The selection is recorded as reached only when all of it was: after a restart, what
    // failed is tried again.
    if let (Some(selection), Some(master)) = (selection, after.first_mut()) {
        master.selection = Some(selection);
    }
    cache::write_cache(&cni_dir, &req.container_id, &after).map_err(|e| {
        CommandError::multus(&who, ErrorKind::SaveDelegates, format!("error saving the delegates: {e}"))
    })?;
    let mut statuses = Vec::new();
    for (index, delegate) in after.iter().enumerate() {
        let Ok(inv) = plan::plan_invocation(delegate, index, &ctx, Operation::Del) else { continue };
        let rt_conf = Planned::new(req, inv).runtime_conf;
        match run.rt.get_cached_result(delegate.network_name(), &rt_conf) {
            Ok(Some(result)) => match status::network_statuses(&result, &delegate.name, delegate.is_master, None) {
                Ok(entries) => statuses.extend(entries),
                Err(e) => tracing::warn!(pod = %who, "cannot build the network status of {}: {e}", delegate.name),
            },
            Ok(None) => tracing::warn!(pod = %who, "no cached result for {} ({})", delegate.name, rt_conf.ifname),
            Err(e) => tracing::warn!(pod = %who, "cannot read the cached result of {}: {e}", delegate.name),
        }
    }
    write_status(d, &pod, &statuses, &who).await?;
    Ok(applied)
}
