//! The stand-in kubelet: it finishes terminating pods (deletes them with grace period 0), at
//! once, after a delay, or never.

use std::collections::VecDeque;
use std::time::Duration;

use super::Work;
use super::options::DeleteOptions;
use super::rules::{deletion_grace, is_deleting, is_pod, uid_of};
use crate::resources::Gvr;
use crate::store::{ObjectName, Store, StoreState};

/// The stand-in kubelet's setting and the runtime its timers run on.
pub(crate) struct Kubelet {
    /// How long a terminating pod stays before the kubelet deletes it with grace period 0;
    /// None: never (the pod stays terminating until deleted with `gracePeriodSeconds=0`).
    delay: Option<Duration>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Default for Kubelet {
    fn default() -> Self {
        Self { delay: Some(Duration::ZERO), runtime: None }
    }
}

impl Store {
    /// What the stand-in kubelet does with a pod that is terminating (deleted with a grace
    /// period): delete it with grace period 0 after `delay` (`Some(Duration::ZERO)`, the
    /// default: right after the MODIFIED event that set its `deletionTimestamp`), or never
    /// (`None`: the pod stays terminating until something deletes it with
    /// `gracePeriodSeconds=0`). Pods already terminating are handled with the new setting.
    pub fn set_kubelet_delay(&self, delay: Option<Duration>) {
        self.kubelet_lock().delay = delay;
        if delay.is_none() {
            return;
        }
        let mut state = self.lock();
        let pods: Vec<(Gvr, ObjectName)> = state
            .objects
            .iter()
            .filter(|(gvr, _)| is_pod(gvr))
            .flat_map(|(gvr, pods)| {
                pods.iter()
                    .filter(|(_, pod)| is_deleting(pod) && deletion_grace(pod).unwrap_or(0) > 0)
                    .map(|(key, _)| (gvr.clone(), key.clone()))
            })
            .collect();
        let mut work = VecDeque::new();
        for (gvr, key) in pods {
            self.kubelet_terminating(&mut state, &mut work, &gvr, &key);
        }
        self.settle(&mut state, work);
    }

    /// The stand-in kubelet's delay (see [`Store::set_kubelet_delay`]).
    pub fn kubelet_delay(&self) -> Option<Duration> {
        self.kubelet_lock().delay
    }

    /// The runtime the kubelet's timers run on (else the caller's, if any).
    pub(crate) fn set_runtime(&self, runtime: tokio::runtime::Handle) {
        self.kubelet_lock().runtime = Some(runtime);
    }

    fn kubelet_lock(&self) -> std::sync::MutexGuard<'_, Kubelet> {
        self.inner.kubelet.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A pod became terminating: the kubelet stops it and deletes it with grace period 0.
    pub(super) fn kubelet_terminating(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
    ) {
        let Some(pod) = state.object(gvr, key) else { return };
        let uid = uid_of(&pod);
        match self.kubelet_delay() {
            None => {}
            Some(delay) if delay.is_zero() => self.kubelet_finish_locked(state, work, gvr, key, &uid),
            Some(delay) => {
                let runtime =
                    self.kubelet_lock().runtime.clone().or_else(|| tokio::runtime::Handle::try_current().ok());
                let Some(runtime) = runtime else {
                    tracing::warn!(pod = %key.1, "no runtime for the kubelet's timer: the pod stays terminating");
                    return;
                };
                let store = self.clone();
                let (gvr, key) = (gvr.clone(), key.clone());
                runtime.spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut state = store.lock();
                    let mut work = VecDeque::new();
                    store.kubelet_finish_locked(&mut state, &mut work, &gvr, &key, &uid);
                    store.settle(&mut state, work);
                });
            }
        }
    }

    /// The kubelet's final DELETE: grace period 0, preconditioned on the pod's uid.
    fn kubelet_finish_locked(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
        uid: &str,
    ) {
        let options = DeleteOptions::default().with_grace_period(0).with_uid(uid);
        if let Err(err) = self.delete_locked(state, work, gvr, key, &options) {
            tracing::debug!(%err, pod = %key.1, "kubelet: pod already gone");
        }
    }
}
