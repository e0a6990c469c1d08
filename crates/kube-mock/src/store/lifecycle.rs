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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{EventType, ObjectName, Store, StoreState, mark_crd_established, meta, now_rfc3339};
use crate::resources::{Gvr, resources_from_crd};
use crate::status::ApiError;

/// The finalizer of Orphan propagation.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of Foreground propagation.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer that removes a deleted CRD's custom resources.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The API server's default for pods without `spec.terminationGracePeriodSeconds`.
const DEFAULT_POD_GRACE_SECONDS: i64 = 30;
/// A bound on the work one change may cause, against reference cycles.
const MAX_STEPS: usize = 1_000_000;

/// `propagationPolicy` of a DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents lose their reference to the owner and stay.
    Orphan,
    /// The owner goes at once; the garbage collector deletes the dependents afterwards.
    Background,
    /// The owner stays (with `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
}

impl Propagation {
    /// The wire value (`Orphan`, `Background`, `Foreground`).
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "Orphan" => Some(Propagation::Orphan),
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            _ => None,
        }
    }
}

/// The options of a DELETE (`meta.k8s.io/v1` `DeleteOptions`, from the body or the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation_policy: Option<Propagation>,
    /// `orphanDependents` (deprecated; true means Orphan, false Background).
    pub orphan_dependents: Option<bool>,
    /// `gracePeriodSeconds` (pods only; negative means 1).
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
}

impl DeleteOptions {
    /// Options with this propagation policy.
    pub fn propagation(policy: Propagation) -> Self {
        Self { propagation_policy: Some(policy), ..Self::default() }
    }

    /// These options with `gracePeriodSeconds`.
    pub fn with_grace_period(mut self, seconds: i64) -> Self {
        self.grace_period_seconds = Some(seconds);
        self
    }

    /// These options with a uid precondition.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.precondition_uid = Some(uid.to_string());
        self
    }

    /// Reads a `DeleteOptions` JSON body (`null` or `{}` for none). Malformed fields are a 400,
    /// invalid combinations a 422, as from the real server.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        if body.is_null() {
            return Ok(Self::default());
        }
        let Some(map) = body.as_object() else {
            return Err(ApiError::bad_request("the DeleteOptions body must be a JSON object"));
        };
        let field_error = |field: &str, want: &str| {
            ApiError::bad_request(format!("DeleteOptions.{field}: expected {want}, got {}", map[field]))
        };
        let string = |field: &str| match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(field_error(field, "a string")),
        };
        let policy = string("propagationPolicy")?;
        let orphan = match map.get("orphanDependents") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(field_error("orphanDependents", "a boolean")),
        };
        let grace = match map.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| field_error("gracePeriodSeconds", "an integer"))?),
        };
        if map.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
            return Err(ApiError::bad_request("dryRun is not supported by kube-mock"));
        }
        let preconditions = &body["preconditions"];
        let precondition = |field: &str| match &preconditions[field] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(ApiError::bad_request(format!(
                "DeleteOptions.preconditions.{field}: expected a string, got {other}"
            ))),
        };
        Self::validated(policy.as_deref(), orphan, grace, precondition("uid")?, precondition("resourceVersion")?)
    }

    /// Reads the query parameters of a DELETE without a body.
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let policy = query.get("propagationPolicy").filter(|p| !p.is_empty()).map(String::as_str);
        let orphan = match query.get("orphanDependents").map(String::as_str) {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(ApiError::bad_request(format!("invalid orphanDependents {other:?}"))),
        };
        let grace = match query.get("gracePeriodSeconds").filter(|g| !g.is_empty()) {
            None => None,
            Some(g) => Some(
                g.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}: not a number")))?,
            ),
        };
        Self::validated(policy, orphan, grace, None, None)
    }

    fn validated(
        policy: Option<&str>,
        orphan: Option<bool>,
        grace: Option<i64>,
        uid: Option<String>,
        resource_version: Option<String>,
    ) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        if let (Some(_), Some(policy)) = (orphan, policy) {
            errors.push(format!(
                "propagationPolicy: Invalid value: \"{policy}\": orphanDependents and deletionPropagation cannot be both set"
            ));
        }
        let propagation = policy.and_then(|p| {
            let parsed = Propagation::parse(p);
            if parsed.is_none() {
                errors.push(format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ));
            }
            parsed
        });
        if !errors.is_empty() {
            let causes = if errors.len() == 1 { errors.remove(0) } else { format!("[{}]", errors.join(", ")) };
            return Err(ApiError::new(422, "Invalid", format!("DeleteOptions.meta.k8s.io \"\" is invalid: {causes}")));
        }
        Ok(Self {
            propagation_policy: propagation,
            orphan_dependents: orphan,
            grace_period_seconds: grace,
            precondition_uid: uid,
            precondition_resource_version: resource_version,
        })
    }
}

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

/// The stand-in kubelet's setting and the runtime its timers run on.
pub(super) struct Kubelet {
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

fn crd_gvr() -> Gvr {
    Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

fn is_pod(gvr: &Gvr) -> bool {
    gvr.group.is_empty() && gvr.resource == "pods"
}

fn is_crd(gvr: &Gvr) -> bool {
    gvr.group == "apiextensions.k8s.io" && gvr.resource == "customresourcedefinitions"
}

fn uid_of(object: &Value) -> String {
    meta(object, "uid").unwrap_or_default()
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == finalizer))
}

fn set_finalizers(object: &mut Value, list: Vec<String>) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        if list.is_empty() {
            metadata.remove("finalizers");
        } else {
            metadata.insert("finalizers".into(), json!(list));
        }
    }
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// `deletionGracePeriodSeconds`, a negative one read as 1 (as the real server does).
fn deletion_grace(object: &Value) -> Option<i64> {
    object["metadata"]["deletionGracePeriodSeconds"].as_i64().map(|g| if g < 0 { 1 } else { g })
}

/// The uids of an object's `ownerReferences`.
pub(super) fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).map(str::to_string).collect())
        .unwrap_or_default()
}

fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn seconds_from_now(seconds: i64) -> String {
    rfc3339(chrono::Utc::now() + chrono::Duration::seconds(seconds))
}

/// The finalizers the propagation policy asks for (deletionFinalizersForGarbageCollection):
/// whether they differ from the object's, and the new list.
fn gc_finalizers(object: &Value, options: &DeleteOptions) -> (bool, Vec<String>) {
    let existing = finalizers(object);
    // Without an explicit policy, the first of the two finalizers on the object decides.
    let from_finalizers = |wanted: &str| {
        existing.iter().find(|f| *f == ORPHAN_FINALIZER || *f == FOREGROUND_FINALIZER).is_some_and(|f| f == wanted)
    };
    let (orphan, foreground) = match (options.orphan_dependents, options.propagation_policy) {
        (Some(orphan), _) => (orphan, false),
        (None, Some(policy)) => (policy == Propagation::Orphan, policy == Propagation::Foreground),
        (None, None) => (from_finalizers(ORPHAN_FINALIZER), from_finalizers(FOREGROUND_FINALIZER)),
    };
    let mut next: Vec<String> =
        existing.iter().filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER).cloned().collect();
    if orphan {
        next.push(ORPHAN_FINALIZER.into());
    }
    if foreground {
        next.push(FOREGROUND_FINALIZER.into());
    }
    let mut before = existing.clone();
    before.sort();
    before.dedup();
    let mut after = next.clone();
    after.sort();
    after.dedup();
    (before != after, next)
}

/// markAsDeleting: `deletionTimestamp` now (unless already earlier), grace period 0.
fn mark_as_deleting(object: &mut Value) {
    let now = chrono::Utc::now();
    let existing = object["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    if existing.is_none_or(|t| t > now) {
        object["metadata"]["deletionTimestamp"] = json!(rfc3339(now));
    }
    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
}

/// The precondition checks of `rest.BeforeDelete`, with its messages.
fn check_preconditions(gvr: &Gvr, object: &Value, options: &DeleteOptions) -> Result<(), ApiError> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = meta(object, "name").unwrap_or_default();
    let qualified = if gvr.group.is_empty() { kind.to_string() } else { format!("{kind}.{}", gvr.group) };
    let conflict = |cause: String| {
        let mut err =
            ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {qualified} \"{name}\": {cause}"));
        let mut details = json!({"name": name, "kind": kind});
        if !gvr.group.is_empty() {
            details["group"] = json!(gvr.group);
        }
        err.details = Some(Box::new(details));
        err
    };
    if let Some(uid) = &options.precondition_uid {
        let actual = uid_of(object);
        if *uid != actual {
            return Err(conflict(format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
            )));
        }
    }
    if let Some(rv) = &options.precondition_resource_version {
        let actual = meta(object, "resourceVersion").unwrap_or_default();
        if *rv != actual {
            return Err(conflict(format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
            )));
        }
    }
    Ok(())
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

/// Whether an update must delete instead (shouldDeleteDuringUpdate): no finalizer left on an
/// object being deleted without a pending grace period.
fn should_delete_during_update(next: &Value, current: &Value) -> bool {
    finalizers(next).is_empty() && is_deleting(current) && deletion_grace(current).is_none_or(|g| g == 0)
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

    /// A pod became terminating: the kubelet stops it and deletes it with grace period 0.
    fn kubelet_terminating(&self, state: &mut StoreState, work: &mut VecDeque<Work>, gvr: &Gvr, key: &ObjectName) {
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
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn store() -> Store {
        Store::new(Registry::with_builtins(), 1000)
    }

    fn ds(name: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
               "spec": {"selector": {"matchLabels": {"app": name}}}})
    }

    fn owned_pod(name: &str, owner: &Value, block: bool) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "default", "ownerReferences": [{
                   "apiVersion": "apps/v1", "kind": "DaemonSet", "name": owner["metadata"]["name"],
                   "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block}]},
               "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}})
    }

    fn pods(s: &Store) -> Vec<Value> {
        s.list_kind("v1", "Pod", Some("default"))
    }

    #[test]
    fn options_parse_and_validate() {
        let o = DeleteOptions::from_json(&json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5,
                                                 "preconditions": {"uid": "u", "resourceVersion": "7"}}))
        .unwrap();
        assert_eq!(o.propagation_policy, Some(Propagation::Foreground));
        assert_eq!((o.grace_period_seconds, o.precondition_uid.as_deref()), (Some(5), Some("u")));
        let bad = DeleteOptions::from_json(&json!({"propagationPolicy": "Bogus"})).unwrap_err();
        assert_eq!(bad.code, 422);
        assert!(bad.message.contains("Unsupported value: \"Bogus\""), "{}", bad.message);
        let both = DeleteOptions::from_json(&json!({"propagationPolicy": "Orphan", "orphanDependents": true}));
        assert_eq!(both.unwrap_err().code, 422);
        assert_eq!(DeleteOptions::from_json(&json!({"gracePeriodSeconds": "x"})).unwrap_err().code, 400);
        assert_eq!(DeleteOptions::from_json(&json!([])).unwrap_err().code, 400);
        let mut query = BTreeMap::new();
        query.insert("propagationPolicy".to_string(), "Orphan".to_string());
        query.insert("gracePeriodSeconds".to_string(), "0".to_string());
        let q = DeleteOptions::from_query(&query).unwrap();
        assert_eq!((q.propagation_policy, q.grace_period_seconds), (Some(Propagation::Orphan), Some(0)));
    }

    #[test]
    fn finalizers_hold_an_object_until_the_last_one_goes() {
        let s = store();
        s.create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "default", "finalizers": ["example.com/a"]}}))
            .unwrap();
        let deletion = s.delete_kind_with("v1", "ConfigMap", "default", "c", &DeleteOptions::default()).unwrap();
        assert!(!deletion.removed);
        assert!(deletion.object["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(deletion.object["metadata"]["deletionGracePeriodSeconds"], 0);
        let mut current = s.get_kind("v1", "ConfigMap", "default", "c").unwrap();
        current["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
        let err = s.update(current.clone()).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.contains("no new finalizers can be added"), "{}", err.message);
        current["metadata"]["finalizers"] = json!([]);
        s.update(current).unwrap();
        assert!(s.get_kind("v1", "ConfigMap", "default", "c").is_none());
    }

    #[test]
    fn preconditions_conflict() {
        let s = store();
        s.create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}}))
            .unwrap();
        let err = s.delete_kind_with("v1", "ConfigMap", "default", "c", &DeleteOptions::default().with_uid("nope"));
        let err = err.unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        assert!(
            err.message
                .starts_with("Operation cannot be fulfilled on ConfigMap \"c\": the UID in the precondition (nope)")
        );
        let rv = DeleteOptions { precondition_resource_version: Some("1".into()), ..Default::default() };
        assert_eq!(s.delete_kind_with("v1", "ConfigMap", "default", "c", &rv).unwrap_err().code, 409);
    }

    #[test]
    fn pods_terminate_gracefully_and_the_kubelet_finishes_them() {
        let s = store();
        s.set_kubelet_delay(None);
        let mut pod = owned_pod("p", &json!({"metadata": {"name": "x", "uid": "none"}}), false);
        pod["metadata"].as_object_mut().unwrap().remove("ownerReferences");
        pod["spec"]["terminationGracePeriodSeconds"] = json!(12);
        s.create(pod).unwrap();
        let deletion = s.delete_kind("v1", "Pod", "default", "p").unwrap();
        assert_eq!(deletion["metadata"]["deletionGracePeriodSeconds"], 12);
        assert!(s.get_kind("v1", "Pod", "default", "p").is_some());
        // A longer grace period changes nothing; a shorter one shortens it.
        let again = s.delete_kind_with("v1", "Pod", "default", "p", &DeleteOptions::default().with_grace_period(60));
        assert_eq!(again.unwrap().object["metadata"]["deletionGracePeriodSeconds"], 12);
        let shorter = s.delete_kind_with("v1", "Pod", "default", "p", &DeleteOptions::default().with_grace_period(3));
        assert_eq!(shorter.unwrap().object["metadata"]["deletionGracePeriodSeconds"], 3);
        // The kubelet finishes terminating pods as soon as it is told to act.
        s.set_kubelet_delay(Some(Duration::ZERO));
        assert!(s.get_kind("v1", "Pod", "default", "p").is_none());
        // Unscheduled pods go at once.
        s.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "u", "namespace": "default"}}))
            .unwrap();
        s.set_kubelet_delay(None);
        let deletion = s.delete_kind_with("v1", "Pod", "default", "u", &DeleteOptions::default()).unwrap();
        assert!(deletion.removed);
    }

    #[test]
    fn background_foreground_and_orphan_propagation() {
        let s = store();
        let history_start = s.resource_version();
        // Background: the DaemonSet goes at once, its pods after it.
        let owner = s.create(ds("bg")).unwrap();
        s.create(owned_pod("bg-1", &owner, true)).unwrap();
        s.create(owned_pod("bg-2", &owner, true)).unwrap();
        let deletion = s.delete_kind("apps/v1", "DaemonSet", "default", "bg").unwrap();
        assert!(deletion["metadata"]["deletionTimestamp"].is_null());
        assert!(s.get_kind("apps/v1", "DaemonSet", "default", "bg").is_none());
        assert!(pods(&s).is_empty());
        let gvr = Gvr::new("", "v1", "pods");
        let events = s.subscribe(&gvr, None, super::super::WatchStart::After(history_start)).unwrap().replay;
        let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        // Each pod: ADDED, then MODIFIED (deletionTimestamp), MODIFIED (grace 0, the kubelet), DELETED.
        assert_eq!(kinds.iter().filter(|k| **k == "DELETED").count(), 2, "{kinds:?}");
        assert!(kinds.contains(&"MODIFIED"));

        // Foreground with a kubelet that never finishes: the owner waits for its pods.
        s.set_kubelet_delay(None);
        let owner = s.create(ds("fg")).unwrap();
        s.create(owned_pod("fg-1", &owner, true)).unwrap();
        let foreground = DeleteOptions::propagation(Propagation::Foreground);
        let deletion = s.delete_kind_with("apps/v1", "DaemonSet", "default", "fg", &foreground).unwrap();
        assert!(!deletion.removed);
        assert_eq!(deletion.object["metadata"]["finalizers"], json!([FOREGROUND_FINALIZER]));
        let waiting = s.get_kind("apps/v1", "DaemonSet", "default", "fg").unwrap();
        assert!(waiting["metadata"]["deletionTimestamp"].is_string());
        let pod = s.get_kind("v1", "Pod", "default", "fg-1").unwrap();
        assert!(pod["metadata"]["deletionTimestamp"].is_string());
        // The pod goes: so does its owner.
        s.set_kubelet_delay(Some(Duration::ZERO));
        assert!(s.get_kind("v1", "Pod", "default", "fg-1").is_none());
        assert!(s.get_kind("apps/v1", "DaemonSet", "default", "fg").is_none());

        // Orphan: the pods stay without their reference.
        let owner = s.create(ds("or")).unwrap();
        s.create(owned_pod("or-1", &owner, true)).unwrap();
        let orphan = DeleteOptions::propagation(Propagation::Orphan);
        let deletion = s.delete_kind_with("apps/v1", "DaemonSet", "default", "or", &orphan).unwrap();
        assert!(!deletion.removed, "the orphan finalizer is set first");
        assert!(s.get_kind("apps/v1", "DaemonSet", "default", "or").is_none());
        let pod = s.get_kind("v1", "Pod", "default", "or-1").unwrap();
        assert!(pod["metadata"]["ownerReferences"].is_null() && pod["metadata"]["deletionTimestamp"].is_null());
    }

    #[test]
    fn a_dependent_with_another_live_owner_only_loses_the_reference() {
        let s = store();
        let a = s.create(ds("a")).unwrap();
        let b = s.create(ds("b")).unwrap();
        let mut pod = owned_pod("shared", &a, false);
        let second = owned_pod("x", &b, false)["metadata"]["ownerReferences"][0].clone();
        pod["metadata"]["ownerReferences"].as_array_mut().unwrap().push(second);
        s.create(pod).unwrap();
        s.delete_kind("apps/v1", "DaemonSet", "default", "a").unwrap();
        let pod = s.get_kind("v1", "Pod", "default", "shared").unwrap();
        assert_eq!(pod["metadata"]["ownerReferences"].as_array().unwrap().len(), 1);
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], b["metadata"]["uid"]);
        s.delete_kind("apps/v1", "DaemonSet", "default", "b").unwrap();
        assert!(s.get_kind("v1", "Pod", "default", "shared").is_none());
    }

    #[test]
    fn crd_deletion_waits_for_custom_resources_with_finalizers() {
        let s = store();
        let nad = |name: &str, finalizers: Value| {
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": "default", "finalizers": finalizers}})
        };
        s.create(nad("plain", json!([]))).unwrap();
        s.create(nad("held", json!(["example.com/hold"]))).unwrap();
        let crd = "network-attachment-definitions.k8s.cni.cncf.io";
        let deletion = s.delete_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).unwrap();
        assert!(deletion["metadata"]["finalizers"].as_array().unwrap().contains(&json!(CRD_CLEANUP_FINALIZER)));
        let terminating = s.get_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).unwrap();
        assert!(terminating["status"]["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Terminating"));
        assert!(s.get_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "default", "plain").is_none());
        let def = s.registry().find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").unwrap();
        assert_eq!(s.create(nad("new", json!([]))).unwrap_err().code, 405);
        // The held one goes when its finalizer is removed; then the CRD goes.
        s.modify(&def, "default", "held", |current| {
            let mut next = current.clone();
            next["metadata"]["finalizers"] = json!([]);
            Ok(next)
        })
        .unwrap();
        assert!(s.get_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd).is_none());
        assert!(s.registry().find("k8s.cni.cncf.io", "v1", "network-attachment-definitions").is_none());
        // Created again: served again, empty.
        s.create(crate::resources::network_attachment_definition_crd()).unwrap();
        assert!(s.list_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", None).is_empty());
        s.create(nad("fresh", json!([]))).unwrap();
    }
}
