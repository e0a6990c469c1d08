//! What deletion does to one object's metadata: its finalizers, `deletionTimestamp` and grace
//! period, owner references, and the preconditions a DELETE checks.

use serde_json::{Value, json};

use super::options::{DeleteOptions, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use crate::resources::Gvr;
use crate::status::ApiError;
use crate::store::meta;

/// The API server's default for pods without `spec.terminationGracePeriodSeconds`.
pub(super) const DEFAULT_POD_GRACE_SECONDS: i64 = 30;

pub(super) fn crd_gvr() -> Gvr {
    Gvr::new("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

pub(super) fn is_pod(gvr: &Gvr) -> bool {
    gvr.group.is_empty() && gvr.resource == "pods"
}

pub(super) fn is_crd(gvr: &Gvr) -> bool {
    gvr.group == "apiextensions.k8s.io" && gvr.resource == "customresourcedefinitions"
}

pub(super) fn uid_of(object: &Value) -> String {
    meta(object, "uid").unwrap_or_default()
}

pub(super) fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object["metadata"]["finalizers"].as_array().is_some_and(|f| f.iter().any(|x| x == finalizer))
}

pub(super) fn set_finalizers(object: &mut Value, list: Vec<String>) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        if list.is_empty() {
            metadata.remove("finalizers");
        } else {
            metadata.insert("finalizers".into(), json!(list));
        }
    }
}

pub(super) fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// `deletionGracePeriodSeconds`, a negative one read as 1 (as the real server does).
pub(super) fn deletion_grace(object: &Value) -> Option<i64> {
    object["metadata"]["deletionGracePeriodSeconds"].as_i64().map(|g| if g < 0 { 1 } else { g })
}

/// The uids of an object's `ownerReferences`.
pub(super) fn owner_uids(object: &Value) -> Vec<String> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).map(str::to_string).collect())
        .unwrap_or_default()
}

pub(super) fn rfc3339(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(super) fn seconds_from_now(seconds: i64) -> String {
    rfc3339(chrono::Utc::now() + chrono::Duration::seconds(seconds))
}

/// The finalizers the propagation policy asks for (deletionFinalizersForGarbageCollection):
/// whether they differ from the object's, and the new list.
pub(super) fn gc_finalizers(object: &Value, options: &DeleteOptions) -> (bool, Vec<String>) {
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
pub(super) fn mark_as_deleting(object: &mut Value) {
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
pub(super) fn check_preconditions(gvr: &Gvr, object: &Value, options: &DeleteOptions) -> Result<(), ApiError> {
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

/// Whether an update must delete instead (shouldDeleteDuringUpdate): no finalizer left on an
/// object being deleted without a pending grace period.
pub(super) fn should_delete_during_update(next: &Value, current: &Value) -> bool {
    finalizers(next).is_empty() && is_deleting(current) && deletion_grace(current).is_none_or(|g| g == 0)
}
