//! Deletion as kube-apiserver and its controllers do it: `DeleteOptions` (propagation policy,
//! grace period, preconditions), finalizers, graceful deletion of pods, the garbage collector
//! that follows `metadata.ownerReferences`, the CustomResourceDefinition cleanup finalizer, and
//! a stand-in kubelet that finishes terminating pods.
//!
//! The generic registry's rules (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`):
//! - a DELETE first checks the preconditions (uid, resourceVersion → 409 Conflict);
//! - the propagation policy becomes finalizers: `orphan` (Orphan), `foregroundDeletion`
//!   (Foreground), neither (Background, the default); without a policy, finalizers already on
//!   the object decide;
//! - pods are deleted gracefully: `deletionTimestamp` = now + grace period and
//!   `deletionGracePeriodSeconds` (from `gracePeriodSeconds`, else the pod's
//!   `spec.terminationGracePeriodSeconds`, else 30; 0 for unscheduled or finished pods); a
//!   later DELETE may only shorten it; with 0 and no finalizers the pod is removed at once;
//! - an object with finalizers stays, with `deletionTimestamp` (and
//!   `deletionGracePeriodSeconds: 0` unless graceful), until an update removes the last one;
//!   no finalizer can be added meanwhile.
//!
//! The garbage collector (`pkg/controller/garbagecollector`): when an owner is removed, each
//! dependent whose other owners are all gone (or being deleted in the foreground) is deleted
//! with the policy of its own finalizers (Background by default), else only the stale
//! references are dropped; for an owner being deleted in the foreground its dependents are
//! deleted and the owner goes once no dependent with `blockOwnerDeletion: true` is left; for
//! Orphan the references to the owner are removed from its dependents, then the `orphan`
//! finalizer. An object created with a reference to an owner that never existed is left alone
//! (the real collector would delete it once it looked): the collector acts on deletions only.
//!
//! Deleting a CRD sets `deletionTimestamp`, the `customresourcecleanup.apiextensions.k8s.io`
//! finalizer and the `Terminating` condition; its custom resources are deleted (creating new
//! ones is refused with 405), and when none is left the CRD goes, its resources are no longer
//! served and their watches end.
//!
//! Everything runs synchronously under the store lock, in the order the controllers would act:
//! the request's own change first, then what follows from it. Watches see the same sequence of
//! events as against a real cluster, only without the delays, except for the kubelet, whose
//! delay is a setting ([`Store::set_kubelet_delay`]).

mod kubelet;
mod options;
mod rules;

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{EventType, ObjectName, Store, StoreState, mark_crd_established, meta, now_rfc3339};
use crate::resources::{Gvr, resources_from_crd};
use crate::status::ApiError;
pub(crate) use kubelet::Kubelet;
pub use options::{CRD_CLEANUP_FINALIZER, DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use rules::{
    DEFAULT_POD_GRACE_SECONDS, check_preconditions, crd_gvr, deletion_grace, finalizers, gc_finalizers, has_finalizer,
    is_crd, is_deleting, is_pod, mark_as_deleting, owner_uids, rfc3339, seconds_from_now, set_finalizers,
    should_delete_during_update, uid_of,
};

/// A bound on the work one change may cause, against reference cycles.
const MAX_STEPS: usize = 1_000_000;

/// What a delete did.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// The removed object, or the object now being deleted (with `deletionTimestamp`).
    pub object: Value,
    /// Whether the object left the store (false: it waits for finalizers or its grace period).
    pub removed: bool,
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The stored object; when the update removed it, the object as updated (what the real
    /// server answers then, while watches get the last stored state in the DELETED event).
    pub object: Value,
    /// The update removed the last finalizer of an object being deleted, which removed it.
    pub removed: bool,
}

/// Follow-up work of a change, in the order the controllers would do it.
pub(super) enum Work {
    /// An object left the store.
    Removed { gvr: Gvr, object: Arc<Value> },
    /// An object is being deleted: act on its finalizers (and, for pods, the kubelet).
    Deleting { gvr: Gvr, key: ObjectName },
    /// The owner with this uid may have no blocking dependents left.
    ForegroundCheck { uid: String },
    /// The CRD called this is being deleted: remove its custom resources.
    CrdCleanup { name: String },
}

/// No finalizer may be added to an object being deleted (422, worded as the real validation).
pub(super) fn check_new_finalizers(
    gvr: &Gvr,
    kind: &str,
    name: &str,
    current: &Value,
    next: &Value,
) -> Result<(), ApiError> {
    if !is_deleting(current) {
        return Ok(());
    }
    let old = finalizers(current);
    let mut added: Vec<String> = finalizers(next).into_iter().filter(|f| !old.contains(f)).collect();
    if added.is_empty() {
        return Ok(());
    }
    added.sort();
    added.dedup();
    let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    Err(ApiError::invalid(
        gvr,
        kind,
        name,
        &format!(
            "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
            listed.join(", ")
        ),
    ))
}

/// Whether the CRD serving `gvr` (a custom resource) is being deleted.
pub(super) fn crd_terminating(state: &StoreState, gvr: &Gvr) -> bool {
    let name = format!("{}.{}", gvr.resource, gvr.group);
    state.objects.get(&crd_gvr()).and_then(|crds| crds.get(&(String::new(), name))).is_some_and(|crd| is_deleting(crd))
}

impl StoreState {
    /// Keeps the uid and owner indexes in step with a change of the object at `key`.
    pub(super) fn index(&mut self, gvr: &Gvr, key: &ObjectName, previous: Option<&Value>, current: Option<&Value>) {
        let location = (gvr.clone(), key.clone());
        let old_owners = previous.map(owner_uids).unwrap_or_default();
        let new_owners = current.map(owner_uids).unwrap_or_default();
        for owner in old_owners.iter().filter(|o| !new_owners.contains(o)) {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(&location);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        for owner in new_owners.iter().filter(|o| !old_owners.contains(o)) {
            self.dependents.entry(owner.clone()).or_default().insert(location.clone());
        }
        match current {
            Some(object) => {
                let uid = uid_of(object);
                if !uid.is_empty() {
                    self.uids.insert(uid, location);
                }
            }
            None => {
                if let Some(uid) = previous.map(uid_of)
                    && self.uids.get(&uid).is_some_and(|at| *at == location)
                {
                    self.uids.remove(&uid);
                }
            }
        }
    }

    fn object(&self, gvr: &Gvr, key: &ObjectName) -> Option<Arc<Value>> {
        self.objects.get(gvr).and_then(|objects| objects.get(key)).cloned()
    }

    fn by_uid(&self, uid: &str) -> Option<(Gvr, ObjectName, Arc<Value>)> {
        let (gvr, key) = self.uids.get(uid)?;
        let object = self.object(gvr, key)?;
        Some((gvr.clone(), key.clone(), object))
    }

    fn dependents_of(&self, uid: &str) -> Vec<(Gvr, ObjectName)> {
        self.dependents.get(uid).map(|set| set.iter().cloned().collect()).unwrap_or_default()
    }
}

impl Store {
    /// The DELETE of one object, under the lock; follow-up work goes to `work`.
    pub(super) fn delete_locked(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
        options: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        let current = state.current(gvr, key, &key.1)?;
        check_preconditions(gvr, &current, options)?;
        if is_crd(gvr) && !is_deleting(&current) {
            // The CRD's own REST delete: mark it, then its finalizer controller takes over.
            let mut next = (*current).clone();
            next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            let mut list = finalizers(&next);
            if !list.iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
                list.push(CRD_CLEANUP_FINALIZER.into());
            }
            set_finalizers(&mut next, list);
            mark_crd_established(&mut next);
            let stored = self.commit(state, gvr, key.clone(), next, Some(current), EventType::Modified);
            work.push_back(Work::Deleting { gvr: gvr.clone(), key: key.clone() });
            return Ok(Deletion { object: stored, removed: false });
        }
        let mut next = (*current).clone();
        // Graceful deletion (pods): the grace period that applies, if any.
        let mut graceful = None;
        if is_pod(gvr) {
            let requested = options.grace_period_seconds.map(|g| if g < 0 { 1 } else { g });
            if is_deleting(&current) {
                match deletion_grace(&current) {
                    None | Some(0) => {}
                    Some(existing) => match requested {
                        Some(period) if period < existing => {
                            let deadline = current["metadata"]["deletionTimestamp"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .map(|t| t.with_timezone(&chrono::Utc))
                                .unwrap_or_else(chrono::Utc::now)
                                - chrono::Duration::seconds(existing)
                                + chrono::Duration::seconds(period);
                            next["metadata"]["deletionTimestamp"] = json!(rfc3339(deadline));
                            next["metadata"]["deletionGracePeriodSeconds"] = json!(period);
                            graceful = Some(period);
                        }
                        // Graceful deletion is pending: nothing changes, not even finalizers.
                        _ => return Ok(Deletion { object: (*current).clone(), removed: false }),
                    },
                }
            } else {
                let spec = &current["spec"];
                let mut period = requested.unwrap_or_else(|| {
                    spec["terminationGracePeriodSeconds"].as_i64().map_or(DEFAULT_POD_GRACE_SECONDS, |g| g.max(0))
                });
                let phase = current["status"]["phase"].as_str().unwrap_or_default();
                if spec["nodeName"].as_str().is_none_or(str::is_empty) || matches!(phase, "Failed" | "Succeeded") {
                    period = 0;
                }
                next["metadata"]["deletionTimestamp"] = json!(seconds_from_now(period));
                next["metadata"]["deletionGracePeriodSeconds"] = json!(period);
                graceful = Some(period);
            }
        }
        let (changed, list) = gc_finalizers(&current, options);
        if changed {
            set_finalizers(&mut next, list.clone());
        }
        let pending_finalizers = !list.is_empty();
        match graceful {
            None if pending_finalizers => {
                mark_as_deleting(&mut next);
                if next == *current {
                    return Ok(Deletion { object: (*current).clone(), removed: false });
                }
                let stored = self.commit(state, gvr, key.clone(), next, Some(current), EventType::Modified);
                work.push_back(Work::Deleting { gvr: gvr.clone(), key: key.clone() });
                Ok(Deletion { object: stored, removed: false })
            }
            None => Ok(Deletion { object: self.remove_tracked(state, work, gvr, key), removed: true }),
            Some(period) => {
                let stored = self.commit(state, gvr, key.clone(), next, Some(current), EventType::Modified);
                if pending_finalizers || period > 0 {
                    work.push_back(Work::Deleting { gvr: gvr.clone(), key: key.clone() });
                    return Ok(Deletion { object: stored, removed: false });
                }
                Ok(Deletion { object: self.remove_tracked(state, work, gvr, key), removed: true })
            }
        }
    }

    /// Removes an object and queues what follows from its removal.
    pub(super) fn remove_tracked(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
    ) -> Value {
        let removed = self.remove_locked(state, gvr, key);
        if !removed.is_null() {
            work.push_back(Work::Removed { gvr: gvr.clone(), object: Arc::new(removed.clone()) });
        }
        removed
    }

    /// Stores an update of `current`, or deletes the object when the update took its last
    /// finalizer while it is being deleted.
    pub(super) fn apply_update(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
        next: Value,
        current: Arc<Value>,
    ) -> Update {
        if should_delete_during_update(&next, &current) {
            let removed = self.remove_tracked(state, work, gvr, key);
            let mut answer = next;
            answer["metadata"]["resourceVersion"] = removed["metadata"]["resourceVersion"].clone();
            return Update { object: answer, removed: true };
        }
        let old_owners = owner_uids(&current);
        let stored = self.commit(state, gvr, key.clone(), next, Some(current), EventType::Modified);
        // A dependent that lost an owner reference may have been the owner's last blocker.
        let new_owners = owner_uids(&stored);
        for uid in old_owners.into_iter().filter(|o| !new_owners.contains(o)) {
            work.push_back(Work::ForegroundCheck { uid });
        }
        Update { object: stored, removed: false }
    }

    /// Runs the follow-up work of a change until nothing is left.
    pub(super) fn settle(&self, state: &mut StoreState, mut work: VecDeque<Work>) {
        let mut steps = 0;
        while let Some(item) = work.pop_front() {
            steps += 1;
            if steps > MAX_STEPS {
                tracing::warn!("garbage collection stopped after {MAX_STEPS} steps (an ownerReferences cycle?)");
                return;
            }
            match item {
                Work::Removed { gvr, object } => self.after_removal(state, &mut work, &gvr, &object),
                Work::Deleting { gvr, key } => self.while_deleting(state, &mut work, &gvr, &key),
                Work::ForegroundCheck { uid } => self.check_foreground(state, &mut work, &uid),
                Work::CrdCleanup { name } => self.crd_cleanup(state, &mut work, &name),
            }
        }
    }

    fn after_removal(&self, state: &mut StoreState, work: &mut VecDeque<Work>, gvr: &Gvr, object: &Value) {
        let uid = uid_of(object);
        // The garbage collector: dependents of the removed owner.
        for (dep_gvr, dep_key) in state.dependents_of(&uid) {
            self.gc_attempt(state, work, &dep_gvr, &dep_key);
        }
        // Owners waiting (Foreground) for this dependent.
        for owner in owner_uids(object) {
            work.push_back(Work::ForegroundCheck { uid: owner });
        }
        // A custom resource of a CRD being deleted: maybe the last one.
        if !gvr.group.is_empty() && crd_terminating(state, gvr) {
            let name = format!("{}.{}", gvr.resource, gvr.group);
            if !work.iter().any(|w| matches!(w, Work::CrdCleanup { name: n } if *n == name)) {
                work.push_back(Work::CrdCleanup { name });
            }
        }
        if is_crd(gvr) {
            // No longer served: its watches end, requests get 404.
            if let Some(name) = object["metadata"]["name"].as_str() {
                self.inner.registry.remove_crd(name);
            }
            for version_gvr in crd_version_gvrs(object) {
                let _ = self.inner.gone.send(version_gvr);
            }
        }
        if gvr.group.is_empty() && gvr.resource == "namespaces" {
            // Everything in a deleted namespace goes with it (the real namespace controller
            // does this after the namespace turned Terminating).
            let namespace = meta(object, "name").unwrap_or_default();
            let contents: Vec<(Gvr, ObjectName)> = state
                .objects
                .iter()
                .flat_map(|(g, objects)| {
                    objects.keys().filter(|(ns, _)| *ns == namespace).map(|k| (g.clone(), k.clone()))
                })
                .collect();
            for (g, k) in contents {
                self.remove_tracked(state, work, &g, &k);
            }
        }
    }

    /// attemptToDeleteItem of the garbage collector for one dependent.
    fn gc_attempt(&self, state: &mut StoreState, work: &mut VecDeque<Work>, gvr: &Gvr, key: &ObjectName) {
        let Some(dependent) = state.object(gvr, key) else { return };
        let uid = uid_of(&dependent);
        if is_deleting(&dependent) {
            if has_finalizer(&dependent, FOREGROUND_FINALIZER) {
                work.push_back(Work::ForegroundCheck { uid });
            }
            return;
        }
        let mut solid = 0;
        let mut stale = Vec::new();
        let mut waiting = false;
        for owner in owner_uids(&dependent) {
            match state.by_uid(&owner) {
                None => stale.push(owner),
                Some((_, _, o)) if is_deleting(&o) && has_finalizer(&o, FOREGROUND_FINALIZER) => {
                    waiting = true;
                    stale.push(owner);
                }
                Some(_) => solid += 1,
            }
        }
        if solid > 0 {
            if !stale.is_empty() {
                self.remove_owner_references(state, work, gvr, key, &stale);
            }
            return;
        }
        if stale.is_empty() {
            return;
        }
        let policy = if waiting && state.dependents.get(&uid).is_some_and(|d| !d.is_empty()) {
            Propagation::Foreground
        } else if has_finalizer(&dependent, ORPHAN_FINALIZER) {
            Propagation::Orphan
        } else if has_finalizer(&dependent, FOREGROUND_FINALIZER) {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        let options = DeleteOptions::propagation(policy).with_uid(&uid);
        if let Err(err) = self.delete_locked(state, work, gvr, key, &options) {
            tracing::debug!(%err, resource = %gvr.qualified_resource(), name = %key.1, "garbage collector could not delete");
        }
    }

    /// Drops the references to `owners` from an object's `ownerReferences`.
    fn remove_owner_references(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
        owners: &[String],
    ) {
        let Some(current) = state.object(gvr, key) else { return };
        let mut next = (*current).clone();
        let Some(refs) = next["metadata"]["ownerReferences"].as_array() else { return };
        let kept: Vec<Value> =
            refs.iter().filter(|r| r["uid"].as_str().is_none_or(|u| !owners.iter().any(|o| o == u))).cloned().collect();
        if kept.len() == refs.len() {
            return;
        }
        if let Some(metadata) = next["metadata"].as_object_mut() {
            if kept.is_empty() {
                metadata.remove("ownerReferences");
            } else {
                metadata.insert("ownerReferences".into(), Value::Array(kept));
            }
        }
        self.apply_update(state, work, gvr, key, next, current);
    }

    /// Removes one finalizer (as the controller that owns it does, with an update).
    fn remove_finalizer(
        &self,
        state: &mut StoreState,
        work: &mut VecDeque<Work>,
        gvr: &Gvr,
        key: &ObjectName,
        finalizer: &str,
    ) {
        let Some(current) = state.object(gvr, key) else { return };
        if !has_finalizer(&current, finalizer) {
            return;
        }
        let mut next = (*current).clone();
        set_finalizers(&mut next, finalizers(&current).into_iter().filter(|f| f != finalizer).collect());
        if is_crd(gvr) {
            mark_crd_established(&mut next);
        }
        self.apply_update(state, work, gvr, key, next, current);
    }

    fn while_deleting(&self, state: &mut StoreState, work: &mut VecDeque<Work>, gvr: &Gvr, key: &ObjectName) {
        let Some(object) = state.object(gvr, key) else { return };
        if !is_deleting(&object) {
            return;
        }
        let uid = uid_of(&object);
        if is_crd(gvr) && has_finalizer(&object, CRD_CLEANUP_FINALIZER) {
            work.push_back(Work::CrdCleanup { name: key.1.clone() });
        }
        if has_finalizer(&object, ORPHAN_FINALIZER) {
            for (dep_gvr, dep_key) in state.dependents_of(&uid) {
                self.remove_owner_references(state, work, &dep_gvr, &dep_key, std::slice::from_ref(&uid));
            }
            self.remove_finalizer(state, work, gvr, key, ORPHAN_FINALIZER);
        } else if has_finalizer(&object, FOREGROUND_FINALIZER) {
            for (dep_gvr, dep_key) in state.dependents_of(&uid) {
                self.gc_attempt(state, work, &dep_gvr, &dep_key);
            }
            work.push_back(Work::ForegroundCheck { uid });
        }
        if is_pod(gvr) && deletion_grace(&object).unwrap_or(0) > 0 {
            self.kubelet_terminating(state, work, gvr, key);
        }
    }

    /// processDeletingDependentsItem: an owner in foreground deletion goes once no dependent
    /// with `blockOwnerDeletion: true` is left.
    fn check_foreground(&self, state: &mut StoreState, work: &mut VecDeque<Work>, uid: &str) {
        let Some((gvr, key, owner)) = state.by_uid(uid) else { return };
        if !is_deleting(&owner) || !has_finalizer(&owner, FOREGROUND_FINALIZER) {
            return;
        }
        let blocking: Vec<(Gvr, ObjectName)> = state
            .dependents_of(uid)
            .into_iter()
            .filter(|(g, k)| {
                state.object(g, k).is_some_and(|dep| {
                    dep["metadata"]["ownerReferences"].as_array().is_some_and(|refs| {
                        refs.iter().any(|r| r["uid"] == uid && r["blockOwnerDeletion"].as_bool() == Some(true))
                    })
                })
            })
            .collect();
        if blocking.is_empty() {
            self.remove_finalizer(state, work, &gvr, &key, FOREGROUND_FINALIZER);
            return;
        }
        for (g, k) in blocking {
            self.gc_attempt(state, work, &g, &k);
        }
    }

    /// The CRD finalizer controller: delete the custom resources, then release the CRD.
    fn crd_cleanup(&self, state: &mut StoreState, work: &mut VecDeque<Work>, name: &str) {
        let key = (String::new(), name.to_string());
        let Some(crd) = state.object(&crd_gvr(), &key) else { return };
        if !is_deleting(&crd) || !has_finalizer(&crd, CRD_CLEANUP_FINALIZER) {
            return;
        }
        let gvrs = crd_version_gvrs(&crd);
        for gvr in &gvrs {
            let keys: Vec<ObjectName> = state
                .objects
                .get(gvr)
                .map(|objects| objects.iter().filter(|(_, o)| !is_deleting(o)).map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            for key in keys {
                if let Err(err) = self.delete_locked(state, work, gvr, &key, &DeleteOptions::default()) {
                    tracing::debug!(%err, crd = name, "CRD cleanup could not delete a custom resource");
                }
            }
        }
        let remaining: usize = gvrs.iter().map(|g| state.objects.get(g).map_or(0, |o| o.len())).sum();
        if remaining == 0 {
            self.remove_finalizer(state, work, &crd_gvr(), &key, CRD_CLEANUP_FINALIZER);
        }
    }
}

/// Every version's resource of a CRD object (served or not: objects are stored per version).
fn crd_version_gvrs(crd: &Value) -> Vec<Gvr> {
    let spec = &crd["spec"];
    let (Some(group), Some(plural)) = (spec["group"].as_str(), spec["names"]["plural"].as_str()) else {
        return Vec::new();
    };
    let mut gvrs: Vec<Gvr> = spec["versions"]
        .as_array()
        .map(|versions| {
            versions.iter().filter_map(|v| v["name"].as_str()).map(|v| Gvr::new(group, v, plural)).collect()
        })
        .unwrap_or_default();
    for def in resources_from_crd(crd) {
        if !gvrs.contains(&def.gvr()) {
            gvrs.push(def.gvr());
        }
    }
    gvrs
}

#[cfg(test)]
mod tests;
