//! The object store: JSON objects keyed by (group, version, resource, namespace, name), one
//! global monotonically increasing resourceVersion, and a bounded event history per resource
//! from which watches resume. Deletion (finalizers, grace periods, the garbage collector, the
//! CRD cleanup and the stand-in kubelet) is in [`lifecycle`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::resources::{Gvr, Registry, ResourceDef, validate_crd};
use crate::status::ApiError;

mod events;
pub mod lifecycle;

pub use events::{EventType, StoreEvent, Subscription, WatchStart};
pub use lifecycle::{
    CRD_CLEANUP_FINALIZER, DeleteOptions, Deletion, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation, Update,
};

/// Namespace ("" for cluster-scoped objects) and name.
type ObjectName = (String, String);

struct StoreState {
    resource_version: u64,
    objects: HashMap<Gvr, BTreeMap<ObjectName, Arc<Value>>>,
    history: HashMap<Gvr, VecDeque<Arc<StoreEvent>>>,
    /// Per resource: events at or below this resourceVersion are no longer in the history.
    compacted: HashMap<Gvr, u64>,
    /// uid → where the object with that uid is stored (the garbage collector's owner lookup).
    uids: HashMap<String, (Gvr, ObjectName)>,
    /// Owner uid → the objects whose `metadata.ownerReferences` name it.
    dependents: HashMap<String, BTreeSet<(Gvr, ObjectName)>>,
}

impl StoreState {
    /// The stored object, or the NotFound the API answers for it.
    fn current(&self, gvr: &Gvr, key: &ObjectName, name: &str) -> Result<Arc<Value>, ApiError> {
        self.objects
            .get(gvr)
            .and_then(|objects| objects.get(key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(gvr, name))
    }
}

struct StoreInner {
    state: Mutex<StoreState>,
    events: broadcast::Sender<Arc<StoreEvent>>,
    /// Resources that stopped being served (their CRD is gone): their watches end.
    gone: broadcast::Sender<Gvr>,
    registry: Registry,
    watch_history: usize,
    /// What the stand-in kubelet does with terminating pods.
    kubelet: Mutex<lifecycle::Kubelet>,
}

/// A cloneable handle to the object store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

/// Initial resourceVersion; any positive value works, a larger one makes logs easier to read.
const FIRST_RESOURCE_VERSION: u64 = 100;
const BROADCAST_CAPACITY: usize = 8192;

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn meta(object: &Value, field: &str) -> Option<String> {
    object["metadata"][field].as_str().map(str::to_string)
}

/// Kubernetes names: lowercase RFC 1123 subdomain.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let uuid = uuid::Uuid::new_v4();
    uuid.as_bytes()[..5].iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

impl Store {
    /// An empty store serving `registry`, keeping up to `watch_history` events per resource for
    /// watches that resume.
    pub fn new(registry: Registry, watch_history: usize) -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (gone, _) = broadcast::channel(64);
        let store = Self {
            inner: Arc::new(StoreInner {
                state: Mutex::new(StoreState {
                    resource_version: FIRST_RESOURCE_VERSION,
                    objects: HashMap::new(),
                    history: HashMap::new(),
                    compacted: HashMap::new(),
                    uids: HashMap::new(),
                    dependents: HashMap::new(),
                }),
                events,
                gone,
                registry,
                watch_history: watch_history.max(1),
                kubelet: Mutex::new(lifecycle::Kubelet::default()),
            }),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = store.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        let _ = store.create(crate::resources::network_attachment_definition_crd());
        store
    }

    /// The resource table this store serves.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than stopping the whole mock, so keep serving.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// Moves the global resourceVersion forward so the next write gets `to + 1`; used to
    /// replay captured traffic whose bodies carry resourceVersions. Never moves it back.
    pub fn advance_resource_version(&self, to: u64) {
        let mut state = self.lock();
        state.resource_version = state.resource_version.max(to);
    }

    /// The served resource for an object's apiVersion and kind.
    pub fn resource_for(&self, object: &Value) -> Result<ResourceDef, ApiError> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        self.inner.registry.find_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource is served for apiVersion {api_version:?}, kind {kind:?}"))
        })
    }

    fn namespace_key(def: &ResourceDef, object: &Value, namespace: Option<&str>) -> String {
        if !def.namespaced {
            return String::new();
        }
        namespace
            .map(str::to_string)
            .or_else(|| meta(object, "namespace"))
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string())
    }

    // ----- convenience API for tests and seeding (infers the resource from apiVersion/kind) -----

    /// Creates an object; a namespace that does not exist yet is created too.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let def = self.resource_for(&object)?;
        let namespace = Self::namespace_key(&def, &object, None);
        if def.namespaced {
            self.ensure_namespace(&namespace);
        }
        self.create_in(&def, &namespace, object)
    }

    /// Creates the object or replaces it regardless of its resourceVersion.
    pub fn upsert(&self, object: Value) -> Result<Value, ApiError> {
        let def = self.resource_for(&object)?;
        let namespace = Self::namespace_key(&def, &object, None);
        let name = meta(&object, "name").unwrap_or_default();
        if self.get(&def.gvr(), &namespace, &name).is_some() {
            let mut object = object;
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            self.replace(&def, &namespace, &name, object)
        } else {
            self.create(object)
        }
    }

    /// Replaces an object; a non-empty `metadata.resourceVersion` must be current (409 otherwise).
    pub fn update(&self, object: Value) -> Result<Value, ApiError> {
        let def = self.resource_for(&object)?;
        let namespace = Self::namespace_key(&def, &object, None);
        let name = meta(&object, "name").unwrap_or_default();
        self.replace(&def, &namespace, &name, object)
    }

    /// Deletes by apiVersion, kind, namespace and name as a `DELETE` without options does: pods
    /// are deleted gracefully (see [`Store::set_kubelet_delay`]), objects with finalizers stay
    /// with a `deletionTimestamp`, dependents are garbage collected in the background. Returns
    /// the object as the API answers it (the removed object, or the one now being deleted).
    pub fn delete_kind(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.delete_kind_with(api_version, kind, namespace, name, &DeleteOptions::default()).map(|d| d.object)
    }

    /// [`Store::delete_kind`] with explicit [`DeleteOptions`] (propagation policy, grace period,
    /// preconditions).
    pub fn delete_kind_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        let def = self.def_for(api_version, kind)?;
        let namespace = if def.namespaced { namespace } else { "" };
        self.delete(&def, namespace, name, options)
    }

    /// Removes an object at once, whatever its finalizers and grace period say (as deleting
    /// its key from etcd would). Its dependents are still garbage collected.
    pub fn remove_kind(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let def = self.def_for(api_version, kind)?;
        let namespace = if def.namespaced { namespace } else { "" };
        self.remove(&def, namespace, name)
    }

    fn def_for(&self, api_version: &str, kind: &str) -> Result<ResourceDef, ApiError> {
        self.inner.registry.find_kind(api_version, kind).ok_or_else(|| {
            ApiError::bad_request(format!("no resource is served for apiVersion {api_version:?}, kind {kind:?}"))
        })
    }

    /// The object of `kind` in `api_version` called `namespace/name` (namespace ignored for
    /// cluster-scoped kinds), if stored.
    pub fn get_kind(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = self.inner.registry.find_kind(api_version, kind)?;
        let namespace = if def.namespaced { namespace } else { "" };
        self.get(&def.gvr(), namespace, name)
    }

    /// All objects of a kind, optionally in one namespace.
    pub fn list_kind(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(def) = self.inner.registry.find_kind(api_version, kind) else {
            return Vec::new();
        };
        self.list(&def.gvr(), namespace).0.into_iter().map(|o| (*o).clone()).collect()
    }

    fn ensure_namespace(&self, namespace: &str) {
        let gvr = Gvr::new("", "v1", "namespaces");
        if self.get(&gvr, "", namespace).is_none() {
            let _ = self.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}));
        }
    }

    // ----- core operations used by the HTTP layer -----

    /// The stored object `namespace/name` of `gvr` (`""` namespace for cluster-scoped), if any.
    pub fn get(&self, gvr: &Gvr, namespace: &str, name: &str) -> Option<Value> {
        let state = self.lock();
        state
            .objects
            .get(gvr)
            .and_then(|objects| objects.get(&(namespace.to_string(), name.to_string())))
            .map(|o| (**o).clone())
    }

    /// Objects of one resource (all namespaces when `namespace` is None), ordered by
    /// namespace and name, with the resourceVersion of the snapshot.
    pub fn list(&self, gvr: &Gvr, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let state = self.lock();
        let items = match state.objects.get(gvr) {
            None => Vec::new(),
            Some(objects) => match namespace {
                None => objects.values().cloned().collect(),
                Some(ns) => objects
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, o)| o.clone())
                    .collect(),
            },
        };
        (items, state.resource_version)
    }

    /// Whether a namespace object exists.
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.get(&Gvr::new("", "v1", "namespaces"), "", namespace).is_some()
    }

    /// Creates an object of a served resource in `namespace` ("" for cluster-scoped).
    pub fn create_in(&self, def: &ResourceDef, namespace: &str, mut object: Value) -> Result<Value, ApiError> {
        let gvr = def.gvr();
        if !object.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        object["apiVersion"] = json!(def.api_version());
        object["kind"] = json!(def.kind);
        let mut name = meta(&object, "name").unwrap_or_default();
        if name.is_empty() {
            match meta(&object, "generateName").filter(|g| !g.is_empty()) {
                Some(prefix) => name = format!("{prefix}{}", random_suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &gvr,
                        &def.kind,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            }
        }
        if !valid_name(&name) && def.plural != "events" {
            return Err(ApiError::invalid(
                &gvr,
                &def.kind,
                &name,
                &format!(
                    "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
        if def.kind == "CustomResourceDefinition" {
            validate_crd(&object).map_err(|cause| ApiError::invalid(&gvr, &def.kind, &name, &cause.to_string()))?;
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("deletionTimestamp");
            }
            mark_crd_established(&mut object);
        }
        let metadata =
            object["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        metadata.insert("name".into(), json!(name));
        if def.namespaced {
            metadata.insert("namespace".into(), json!(namespace));
        } else {
            metadata.remove("namespace");
        }
        if metadata.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
            metadata.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        }
        if metadata.get("creationTimestamp").and_then(Value::as_str).is_none() {
            metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
        }
        // Set by deletion only, never by a create.
        metadata.remove("deletionTimestamp");
        metadata.remove("deletionGracePeriodSeconds");
        if def.kind == "Namespace" {
            object["status"] = json!({"phase": "Active"});
            object["spec"] = json!({"finalizers": ["kubernetes"]});
        }

        let mut state = self.lock();
        let key = (namespace.to_string(), name.clone());
        if state.objects.get(&gvr).is_some_and(|objects| objects.contains_key(&key)) {
            return Err(ApiError::already_exists(&gvr, &name));
        }
        if def.custom && lifecycle::crd_terminating(&state, &gvr) {
            let mut err =
                ApiError::method_not_allowed("create not allowed while custom resource definition is terminating");
            err.details = Some(Box::new(json!({"group": gvr.group, "kind": gvr.resource})));
            return Err(err);
        }
        let stored = self.commit(&mut state, &gvr, key, object, None, EventType::Added);
        drop(state);
        if def.kind == "CustomResourceDefinition" {
            self.inner.registry.apply_crd(&stored);
        }
        Ok(stored)
    }

    /// Replaces an object with `object`, keeping identity fields. Fails with 409 on a stale
    /// non-empty resourceVersion and with 404 when the object does not exist.
    pub fn replace(&self, def: &ResourceDef, namespace: &str, name: &str, object: Value) -> Result<Value, ApiError> {
        self.modify(def, namespace, name, |_current| Ok(object))
    }

    /// Read-modify-write under the store lock: `change` gets the current object and returns
    /// the new one. Used by PUT, PATCH and the status subresource so that no update is lost.
    pub fn modify<F>(&self, def: &ResourceDef, namespace: &str, name: &str, change: F) -> Result<Value, ApiError>
    where
        F: FnOnce(&Value) -> Result<Value, ApiError>,
    {
        self.modify_outcome(def, namespace, name, change).map(|update| update.object)
    }

    /// [`Store::modify`], also telling whether the update removed the object: an update that
    /// takes the last finalizer off an object being deleted deletes it, as on the real server.
    pub fn modify_outcome<F>(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        change: F,
    ) -> Result<Update, ApiError>
    where
        F: FnOnce(&Value) -> Result<Value, ApiError>,
    {
        let gvr = def.gvr();
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let current = state.current(&gvr, &key, name)?;
        let mut object = change(&current)?;
        if !object.is_object() {
            return Err(ApiError::bad_request("the object must be a JSON object"));
        }
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let body_name = meta(&object, "name").unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(expected) = meta(&object, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(expected) != meta(&current, "resourceVersion")
        {
            return Err(ApiError::conflict(&gvr, name));
        }
        let body_uid = meta(&object, "uid").unwrap_or_default();
        if !body_uid.is_empty() && Some(&body_uid) != meta(&current, "uid").as_ref() {
            return Err(ApiError::conflict(&gvr, name));
        }
        object["apiVersion"] = json!(def.api_version());
        object["kind"] = json!(def.kind);
        if let Some(metadata) = object["metadata"].as_object_mut() {
            metadata.insert("name".into(), json!(name));
            if def.namespaced {
                metadata.insert("namespace".into(), json!(namespace));
            }
            // Identity and server-owned fields survive any update.
            for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"]
            {
                match current["metadata"].get(field) {
                    Some(v) => metadata.insert(field.into(), v.clone()),
                    None => metadata.remove(field),
                };
            }
        }
        if def.kind == "CustomResourceDefinition" {
            validate_crd(&object).map_err(|cause| ApiError::invalid(&gvr, &def.kind, name, &cause.to_string()))?;
            mark_crd_established(&mut object);
        }
        lifecycle::check_new_finalizers(&gvr, &def.kind, name, &current, &object)?;
        if *current == object_without_rv(&object, &current) {
            // A no-op update keeps the resourceVersion and emits no event, like the real server.
            return Ok(Update { object: (*current).clone(), removed: false });
        }
        let mut work = VecDeque::new();
        let update = self.apply_update(&mut state, &mut work, &gvr, &key, object, current);
        self.settle(&mut state, work);
        drop(state);
        if def.kind == "CustomResourceDefinition" && !update.removed {
            self.inner.registry.apply_crd(&update.object);
        }
        Ok(update)
    }

    /// Deletes an object as a `DELETE` request with `options` does (see [`DeleteOptions`]).
    pub fn delete(
        &self,
        def: &ResourceDef,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deletion, ApiError> {
        let gvr = def.gvr();
        let key = (namespace.to_string(), name.to_string());
        let mut state = self.lock();
        let mut work = VecDeque::new();
        let deletion = self.delete_locked(&mut state, &mut work, &gvr, &key, options)?;
        self.settle(&mut state, work);
        Ok(deletion)
    }

    /// Removes an object at once, ignoring finalizers and grace periods; dependents are garbage
    /// collected as after any removal.
    pub fn remove(&self, def: &ResourceDef, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let gvr = def.gvr();
        let key = (namespace.to_string(), name.to_string());
        let mut state = self.lock();
        state.current(&gvr, &key, name)?;
        let mut work = VecDeque::new();
        let removed = self.remove_tracked(&mut state, &mut work, &gvr, &key);
        self.settle(&mut state, work);
        Ok(removed)
    }

    fn remove_locked(&self, state: &mut StoreState, gvr: &Gvr, key: &ObjectName) -> Value {
        let Some(current) = state.objects.get_mut(gvr).and_then(|objects| objects.remove(key)) else {
            return Value::Null;
        };
        state.index(gvr, key, Some(&current), None);
        state.resource_version += 1;
        let mut deleted = (*current).clone();
        deleted["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        let deleted = Arc::new(deleted);
        self.record(state, gvr, EventType::Deleted, deleted.clone(), Some(current));
        (*deleted).clone()
    }

    /// Assigns the next resourceVersion, stores the object and records the event.
    fn commit(
        &self,
        state: &mut StoreState,
        gvr: &Gvr,
        key: ObjectName,
        mut object: Value,
        previous: Option<Arc<Value>>,
        event_type: EventType,
    ) -> Value {
        state.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        let stored = Arc::new(object);
        state.index(gvr, &key, previous.as_deref(), Some(&stored));
        state.objects.entry(gvr.clone()).or_default().insert(key, stored.clone());
        self.record(state, gvr, event_type, stored.clone(), previous);
        (*stored).clone()
    }

    /// Number of stored objects (for benchmarks and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    /// Whether no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `object` with the current resourceVersion, for no-op detection.
fn object_without_rv(object: &Value, current: &Value) -> Value {
    let mut copy = object.clone();
    copy["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    copy
}

/// A stored CRD is immediately established: there is no controller to wait for. Conditions
/// that were already true keep their `lastTransitionTime`; a CRD being deleted is `Terminating`.
fn mark_crd_established(crd: &mut Value) {
    let names = crd["spec"]["names"].clone();
    let now = now_rfc3339();
    let previous = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let condition = |kind: &str, reason: &str, message: &str| {
        let since = previous
            .iter()
            .find(|c| c["type"] == kind && c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone());
        json!({"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since})
    };
    let versions: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).map(|n| json!(n)).collect())
        .unwrap_or_default();
    let mut conditions = vec![
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ];
    if crd["metadata"]["deletionTimestamp"].is_string() {
        conditions.push(condition(
            "Terminating",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; instance deletion will begin soon",
        ));
    }
    let mut status = Map::new();
    status.insert("acceptedNames".into(), names);
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("storedVersions".into(), Value::Array(versions));
    crd["status"] = Value::Object(status);
}

#[cfg(test)]
mod tests;
