//! DEL (spec §6.1), from the delegate cache when there is one.
//!
//! Every delegate is deleted (last first) whatever the others do; their errors are collected
//! into one list. The cache file is removed when it was used (with `retryDeleteOnError`, only
//! when every DEL succeeded).
//!
//! Unlike the Go daemon, DEL works without pod context: with the API server down, the pod
//! gone, or `CNI_ARGS` missing, the delegate cache still says what to delete.

use super::{Planned, exec_del, plan_context, remove_device_info_file, resolve_settings, runtime_config};
use crate::daemon::Daemon;
use crate::error::{CommandError, DelFailure};
use crate::request::CniRequest;
use crate::seams::{NetnsPresence, PodLookup};
use multus::cache::{self, DelSource};
use multus::config::NetConf;
use multus::delegate::Delegate;
use multus::error::PodRef;
use multus::model::PodInfo;
use multus::plan::{self, Operation};
use multus::resolve;
use std::path::PathBuf;
use std::time::Duration;

/// How long DEL waits for the pod (only needed when there is no cache to delete from).
const POD_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(d: &Daemon, req: &CniRequest, conf: &NetConf) -> Result<(), CommandError> {
    let cni_dir = PathBuf::from(&conf.cni_dir);
    d.withdraw_gc_valid_container(&req.container_id);
    // A delegate cache of big configs is read, decoded and copied per delegate: take turns.
    let cache_bytes = std::fs::metadata(cache::cache_path(&cni_dir, &req.container_id)).map_or(0, |m| m.len());
    let _config_room = d.admit_config_bytes(usize::try_from(cache_bytes).unwrap_or(usize::MAX)).await;
    let read = cache::read_cache(&cni_dir, &req.container_id);
    // The pod is only needed to recompute the delegates when there is no cache.
    let pod = match &read {
        cache::CacheRead::Missing => known_pod(d, req).await,
        _ => None,
    };
    let count = |source: &str| d.metrics.dels.with_label_values(&[source]).inc();
    let (mut delegates, from_cache) = match cache::del_decision(read, pod.is_some()) {
        DelSource::UseCache { delegates, .. } => (delegates, true),
        DelSource::Recompute => match &pod {
            Some(pod) => (recompute(d, conf, pod).await?, false),
            None => return Ok(()),
        },
        DelSource::Nothing { reason } => {
            count("nothing");
            tracing::warn!(container = %req.container_id, "{reason}");
            return Ok(());
        }
    };
    count(if from_cache { "cache" } else { "recomputed" });
    for delegate in &mut delegates {
        if let Err(e) = delegate.inject_cni_version_if_missing(&conf.cni_version) {
            // The DEL still runs with the config as cached; the plugin may refuse it.
            tracing::warn!(container = %req.container_id, "cannot set cniVersion of {}: {e}", delegate.network_name());
        }
    }
    // The UID delegates see: the runtime's, else the pod's (from the lookup or, without a
    // wait, the watch cache).
    let uid = req
        .pod
        .as_ref()
        .and_then(|p| {
            p.uid.clone().or_else(|| {
                pod.as_ref()
                    .map(|pod| pod.uid.clone())
                    .or_else(|| d.cluster().cached_pod(&p.namespace, &p.name).map(|pod| pod.uid))
            })
        })
        .unwrap_or_default();
    // The pod as the delegates see it: libcni's reading of CNI_ARGS with that UID.
    let mut args = req.load_args_or_default();
    args.pod.uid = Some(uid);
    let runtime_config = runtime_config(conf);
    let ctx = plan_context(d, req, &args, runtime_config.as_ref());
    let rt = d.runtime(conf);
    // Decided once: a namespace that is gone stays gone.
    let netns_gone = req.netns.is_empty() || d.netns().presence(&req.netns) == NetnsPresence::Absent;
    let mut failures = Vec::new();
    for (i, delegate) in delegates.iter().enumerate().rev() {
        let planned = match plan::plan_invocation(delegate, i, &ctx, Operation::Del) {
            Ok(inv) => Planned::new(req, inv),
            Err(e) => {
                failures.push(failure(delegate, e.to_string()));
                continue;
            }
        };
        let rt_conf = &planned.runtime_conf;
        if let Err(e) = exec_del(d, &rt, delegate, rt_conf).await
            && !(netns_gone && released_outside_the_netns(&rt, delegate, rt_conf, &e).await)
        {
            failures.push(failure(delegate, e.to_string()));
        }
        if let Some(path) = &planned.invocation.device_info_file {
            remove_device_info_file(path);
        }
    }
    let texts: Vec<String> = failures.iter().map(ToString::to_string).collect();
    if from_cache
        && cache::should_remove_cache(conf.retry_delete_on_error, &texts)
        && let Err(e) = cache::remove_cache(&cni_dir, &req.container_id)
    {
        tracing::error!(container = %req.container_id, "cannot remove the delegate cache: {e}");
    }
    if failures.is_empty() { Ok(()) } else { Err(CommandError::Del(failures)) }
}

/// A delegate's DEL failed and the pod's network namespace is gone, so nothing the delegate
/// made inside it is left: release what lives outside (its IPAM leases, its result cache) as
/// its DEL would have. Some plugins (host-device, sbr of containernetworking-plugins 1.1) fail
/// their DEL once the namespace or interface is gone, before releasing their IPAM; without
/// this the lease and the caches would stay, since the runtime never repeats a DEL the shim
/// answered. True when the delegate is now fully deleted.
async fn released_outside_the_netns(
    rt: &super::Runtime,
    delegate: &Delegate,
    conf: &cni::runtime::RuntimeConf,
    error: &cni::runtime::RuntimeError,
) -> bool {
    let list = delegate.config().to_list();
    match rt.release_ipam_of_list(&list, conf).await {
        Ok(ipam) => {
            tracing::warn!(
                network = %delegate.network_name(),
                "DEL failed with the pod's network namespace gone ({error}); released its IPAM ({ipam} plugin(s)) and \
                 caches instead: nothing of it is left in the namespace"
            );
            true
        }
        Err(e) => {
            tracing::warn!(network = %delegate.network_name(), "DEL failed ({error}), and so did its IPAM release: {e}");
            false
        }
    }
}

fn failure(delegate: &Delegate, cause: String) -> DelFailure {
    DelFailure { network: delegate.network_name().to_string(), conflist: delegate.is_conflist(), cause }
}

/// The pod with DEL semantics (§5.5): absent, gone, replaced (UID mismatch) or unreachable
/// all mean "unknown"; only the reason is logged.
async fn known_pod(d: &Daemon, req: &CniRequest) -> Option<PodInfo> {
    let id = req.pod.as_ref()?;
    let lookup = tokio::time::timeout(POD_LOOKUP_TIMEOUT, d.cluster().lookup_pod(&id.namespace, &id.name)).await;
    match lookup {
        Ok(Ok(PodLookup::Found(pod))) => {
            let uid_ok = id.uid.as_deref().is_none_or(|u| u.is_empty() || u == pod.uid) || pod.is_static();
            if !uid_ok {
                tracing::warn!(pod = %id.pod_ref(), "the pod now has UID {}; deleting as if it were gone", pod.uid);
            }
            uid_ok.then_some(pod)
        }
        Ok(Ok(PodLookup::NotFound)) => None,
        Ok(Err(e)) => {
            tracing::warn!(pod = %id.pod_ref(), "DEL goes on without the pod: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(pod = %id.pod_ref(), "DEL goes on without the pod: lookup timed out");
            None
        }
    }
}

/// No cache but the pod is known: resolve its networks again (§6.1 step 6), devices included
/// (the reference re-reads them too).
async fn recompute(d: &Daemon, conf: &NetConf, pod: &PodInfo) -> Result<Vec<Delegate>, CommandError> {
    let who = PodRef::new(&pod.namespace, &pod.name, &pod.uid);
    let settings = resolve_settings(conf);
    let resolved = super::resolve_with_devices(d, pod, |devices| {
        resolve::resolve_del_delegates(&settings, Some(&who), pod, d.cluster(), devices)
    })
    .await?;
    for w in &resolved.warnings {
        tracing::warn!(pod = %who, "{}: {}", w.reason, w.message);
    }
    Ok(resolved.delegates)
}
