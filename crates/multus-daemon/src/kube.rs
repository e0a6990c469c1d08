//! The daemon's view of Kubernetes: a client (in-cluster or kubeconfig) whose responses are
//! bounded ([`multus_node::limits`]), a node-scoped watch cache of pods, the NADs this node uses
//! ([`crate::nad_cache`], filled and kept right by [`crate::kube_nads`]), the live pod lookup
//! used on a cache miss, the one network-status write per ADD, and events sent off the request
//! path.
//!
//! Memory does not depend on what the cluster holds: the pod cache has this node's pods,
//! reduced to what Multus reads (a pod whose annotations exceed the API server's own 256 KiB
//! limit is kept as "too large", without them); the NAD cache has a byte budget.

use crate::kube_nads::NadSource;
use crate::nad_cache::{Key as NadKey, NadAnswer, NadCache};
use crate::seams::{BoxFuture, Cluster, ClusterError, NadAnswers, PodEvent, PodLookup};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as KubeEvent, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use multus::model::{Nad, NadLookup, PodInfo};
use multus_node::limits::{POD_LIST_PAGE_SIZE, ResponseLimit};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub use multus_node::client::{SERVICE_ACCOUNT_DIR, build_client};
use multus_node::objects::pod_info_with;
pub use multus_node::objects::{nad_resource, pod_info};

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// From a kubeconfig or in-cluster: see [`multus_node::client::ClientError`].
    #[error(transparent)]
    Client(#[from] multus_node::client::ClientError),
    /// perNodeCertificate hook: see [`crate::certs`].
    #[error(transparent)]
    PerNodeCertificate(#[from] crate::certs::CertError),
}

// --- perNodeCertificate hook (the logic lives in crate::certs) ---
/// The daemon's client: with `perNodeCertificate.enabled`, one that authenticates with this
/// node's client certificate (requested with the bootstrap kubeconfig, renewed before it
/// expires; `kubeconfig` is not used then); otherwise [`build_client`].
pub async fn build_client_for(
    config: &multus::config::DaemonConfig,
    kubeconfig: Option<&Path>,
) -> Result<kube::Client, ClientError> {
    match config.per_node_certificate.as_ref().filter(|p| p.enabled) {
        Some(settings) => {
            let node = std::env::var(crate::certs::NODE_NAME_ENV).ok();
            let cert_config = crate::certs::CertManagerConfig::from_settings(settings, node.as_deref())?;
            Ok(crate::certs::CertManager::start(cert_config).await?.detach())
        }
        None => Ok(build_client(kubeconfig).await?),
    }
}
// --- end of perNodeCertificate hook ---

type Key = (String, String);

/// A watch-fed map that becomes "synced" after its first complete list.
pub struct Cache<T> {
    items: RwLock<HashMap<Key, T>>,
    synced: watch::Sender<bool>,
    /// Counts changes: a receiver wakes on the next one (`dynamicNetworks` scans then).
    changes: watch::Sender<u64>,
}

impl<T: Clone> Cache<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            items: RwLock::new(HashMap::new()),
            synced: watch::channel(false).0,
            changes: watch::channel(0).0,
        })
    }

    /// The map for reading. Writers only insert, remove or swap whole values, so a panic in
    /// one cannot leave the map half-updated: a poisoned lock is still good to read.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, T>> {
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, T>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the object, if the watch has seen it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<T> {
        self.read().get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// How many objects the cache holds (the cache-size metric).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// The cache holds nothing (before the first list, or no such objects).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first complete list has been applied: a miss now means "not there", not "not yet".
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wait until the first list has been applied, or `timeout` passes.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await.is_ok()
    }

    /// Wakes on every later change of the cache.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn put(&self, key: Key, value: T) {
        self.write().insert(key, value);
        self.changed();
    }

    fn remove(&self, key: &Key) {
        self.write().remove(key);
        self.changed();
    }

    fn replace_all(&self, items: HashMap<Key, T>) {
        *self.write() = items;
        self.synced.send_replace(true);
        self.changed();
    }
}

/// Feed a cache from a watcher stream until the stream ends (it does not, short of shutdown).
async fn run_watch<K, T>(
    api: Api<K>,
    config: watcher::Config,
    cache: Arc<Cache<T>>,
    convert: fn(&K) -> Option<(Key, T)>,
    watched: Watched,
) where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    let mut buffer: Option<HashMap<Key, T>> = None;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let size = watched.metrics.watch_cache_objects.with_label_values(&[watched.resource]);
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => {
                watched.metrics.watch_relists.with_label_values(&[watched.resource]).inc();
                buffer = Some(HashMap::new());
            }
            Ok(Event::InitApply(obj)) => {
                if let (Some(buf), Some((k, v))) = (buffer.as_mut(), convert(&obj)) {
                    buf.insert(k, v);
                }
            }
            Ok(Event::InitDone) => {
                cache.replace_all(buffer.take().unwrap_or_default());
                // A relist's pages are garbage now: give them back once the daemon is idle.
                crate::memory::note_activity();
            }
            Ok(Event::Apply(obj)) => {
                if let Some((k, v)) = convert(&obj) {
                    cache.put(k, v);
                }
            }
            Ok(Event::Delete(obj)) => {
                if let Some((k, _)) = convert(&obj) {
                    cache.remove(&k);
                }
            }
            Err(e) => {
                tracing::warn!("{} watch error (will retry): {e}", watched.resource);
                // A list or watch cut for its size frees what it had read: give it back too.
                crate::memory::note_activity();
            }
        }
        size.set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
    }
}

/// Which resource a watch feeds, for its metrics.
struct Watched {
    resource: &'static str,
    metrics: Arc<crate::metrics::Metrics>,
}

/// The most annotation bytes (keys and values) a pod may have: the API server's own limit
/// (`TotalAnnotationSizeLimitB`), so only an API server that does not enforce it sends more.
pub const MAX_POD_ANNOTATION_BYTES: usize = 256 << 10;

/// How long the live pod GET of an ADD's cache miss may take.
pub const POD_GET_TIMEOUT: Duration = Duration::from_secs(2);

/// After a failed live GET, how long the watch cache is still polled for the pod (the Go
/// daemon's window): an ADD with the API server down fails after about
/// [`POD_GET_TIMEOUT`] + this.
pub const POD_CACHE_WAIT: Duration = Duration::from_millis(2500);

/// The most a live pod GET reads: a pod is at most about 1.5 MB in etcd.
const POD_RESPONSE_LIMIT: usize = 4 << 20;

/// A pod in the watch cache: what Multus reads of it, or, when its annotations exceed
/// [`MAX_POD_ANNOTATION_BYTES`], its identity without them (its ADD fails, never parses them).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPod {
    /// The pod (annotations emptied when refused).
    pub info: PodInfo,
    /// The size of the annotations when they were refused.
    pub refused_annotation_bytes: Option<usize>,
}

impl CachedPod {
    /// Reduce a Pod, refusing annotations over the limit.
    pub fn from_pod(pod: &Pod) -> Option<(Key, CachedPod)> {
        let bytes: usize = pod.metadata.annotations.iter().flatten().map(|(k, v)| k.len() + v.len()).sum();
        let (key, mut info) = pod_info_with(pod, bytes <= MAX_POD_ANNOTATION_BYTES)?;
        let refused = (bytes > MAX_POD_ANNOTATION_BYTES).then_some(bytes);
        if refused.is_some() {
            info.annotations.clear();
        }
        Some((key, CachedPod { info, refused_annotation_bytes: refused }))
    }

    /// The pod, or the refusal.
    fn lookup(self) -> Result<PodLookup, ClusterError> {
        match self.refused_annotation_bytes {
            None => Ok(PodLookup::Found(self.info)),
            Some(bytes) => Err(ClusterError::PodTooLarge {
                namespace: self.info.namespace,
                name: self.info.name,
                bytes,
                limit: MAX_POD_ANNOTATION_BYTES,
            }),
        }
    }
}

/// Waits before retrying a network-status write the API server answered with "later" (429, 503,
/// 504). kube-rs's own retries are off (`multus_node::client`), and client-go retries these for
/// the Go daemon, so the one write an ADD waits on retries them itself, briefly.
const STATUS_WRITE_RETRY_DELAYS: [Duration; 3] =
    [Duration::from_millis(200), Duration::from_millis(400), Duration::from_millis(800)];

fn api_says_later(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if matches!(s.code, 429 | 503 | 504))
}

/// A merge PATCH of `pods/<name>/status`, retried on "later" answers.
async fn patch_status_retrying(api: &Api<Pod>, name: &str, patch: &serde_json::Value) -> Result<Pod, kube::Error> {
    let mut delays = STATUS_WRITE_RETRY_DELAYS.iter();
    loop {
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
            Err(e) if api_says_later(&e) => match delays.next() {
                Some(delay) => tokio::time::sleep(*delay).await,
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// Everything the request handlers need from Kubernetes.
pub struct KubeContext {
    client: kube::Client,
    /// This node's pods (all pods when no node name is known).
    pub pods: Arc<Cache<CachedPod>>,
    /// The NetworkAttachmentDefinitions this node uses (see [`crate::nad_cache`]).
    pub nads: Arc<NadCache>,
    nad_source: NadSource,
    events: mpsc::Sender<PodEvent>,
}

impl KubeContext {
    /// Start the pod watch cache (restricted to `node_name` when given), the NAD cache's watch
    /// and the event sender.
    pub fn start(client: kube::Client, node_name: Option<&str>, metrics: Arc<crate::metrics::Metrics>) -> Arc<Self> {
        let pods = Cache::new();
        let nad_source = NadSource::start(client.clone(), crate::nad_cache::DEFAULT_BUDGET_BYTES, metrics.clone());
        let mut pod_config = watcher::Config::default().page_size(POD_LIST_PAGE_SIZE);
        if let Some(node) = node_name.filter(|n| !n.is_empty()) {
            pod_config = pod_config.fields(&format!("spec.nodeName={node}"));
        }
        let watched = |resource| Watched { resource, metrics: metrics.clone() };
        tokio::spawn(run_watch(
            Api::<Pod>::all(client.clone()),
            pod_config,
            pods.clone(),
            CachedPod::from_pod,
            watched("pods"),
        ));
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(send_events(client.clone(), rx, metrics));
        Arc::new(Self { client, pods, nads: nad_source.cache.clone(), nad_source, events: tx })
    }

    /// What is known about each NAD of `keys` (see [`NadSource::answers`]).
    pub async fn nad_answers(&self, keys: &[NadKey]) -> NadAnswers {
        self.nad_source.answers(keys).await
    }

    /// Look a pod up: the watch cache first; on a miss one live GET (a pod created a moment
    /// ago may not have reached the cache); if the API cannot answer, keep polling the cache
    /// (50 ms steps for 2.5 s, the Go daemon's window) before giving up.
    ///
    /// A pod whose annotations exceed [`MAX_POD_ANNOTATION_BYTES`] is an error
    /// ([`ClusterError::PodTooLarge`]); its annotations were never kept.
    pub async fn lookup_pod(&self, namespace: &str, name: &str) -> Result<PodLookup, ClusterError> {
        if let Some(p) = self.pods.get(namespace, name) {
            return p.lookup();
        }
        let live = tokio::time::timeout(POD_GET_TIMEOUT, self.get_pod(namespace, name)).await;
        // The runtime sees this text: it names the API server, not just kube-rs's error (a bare
        // "timed out" or "Error deserializing response" did not say who failed).
        let api_error = match live {
            Ok(Ok(Some(pod))) => {
                return CachedPod::from_pod(&pod).map(|(_, p)| p.lookup()).unwrap_or(Ok(PodLookup::NotFound));
            }
            Ok(Ok(None)) => return Ok(PodLookup::NotFound),
            Ok(Err(e)) => format!("getting the pod from the API server failed: {e}"),
            Err(_) => format!("the API server did not answer the pod GET within {POD_GET_TIMEOUT:?}"),
        };
        let deadline = tokio::time::Instant::now() + POD_CACHE_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(p) = self.pods.get(namespace, name) {
                return p.lookup();
            }
        }
        Err(ClusterError::PodLookup(api_error))
    }

    /// One live pod GET, its answer limited to [`POD_RESPONSE_LIMIT`] bytes.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, kube::Error> {
        let mut request = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
            .get(name, &Default::default())
            .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert(ResponseLimit(POD_RESPONSE_LIMIT));
        match self.client.request::<Pod>(request).await {
            Ok(pod) => Ok(Some(pod)),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write the network-status annotation with one merge PATCH of `pods/<name>/status`.
    /// A pod deleted meanwhile is not an error (the runtime will DEL). When RBAC grants only
    /// `update` on `pods/status` (the Go daemon's ClusterRole), fall back to GET + PUT with
    /// conflict retries, as the Go daemon writes it.
    pub async fn write_network_status(&self, pod: &PodInfo, value: &str) -> Result<(), ClusterError> {
        self.set_network_status(pod, Some(value)).await
    }

    /// Remove the network-status annotation (an undone ADD), as [`Self::write_network_status`]
    /// writes it.
    pub async fn clear_network_status(&self, pod: &PodInfo) -> Result<(), ClusterError> {
        self.set_network_status(pod, None).await
    }

    async fn set_network_status(&self, pod: &PodInfo, value: Option<&str>) -> Result<(), ClusterError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        // A merge patch removes a key set to null.
        let patch = serde_json::json!({
            "metadata": {"annotations": {multus::model::NETWORK_STATUS_ANNOTATION: value}}
        });
        match patch_status_retrying(&api, &pod.name, &patch).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!("pod {}/{} was deleted before its network status was written", pod.namespace, pod.name);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 403 => self.put_network_status(&api, pod, value).await,
            Err(e) => Err(ClusterError::StatusWrite(e.to_string())),
        }
    }

    async fn put_network_status(&self, api: &Api<Pod>, pod: &PodInfo, value: Option<&str>) -> Result<(), ClusterError> {
        for _ in 0..5 {
            let mut live = match api.get(&pod.name).await {
                Ok(p) => p,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(ClusterError::StatusWrite(e.to_string())),
            };
            if !pod.is_static() && live.metadata.uid.as_deref().unwrap_or("") != pod.uid {
                return Err(ClusterError::UidChanged {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    expected: pod.uid.clone(),
                    actual: live.metadata.uid.unwrap_or_default(),
                });
            }
            let annotations = live.metadata.annotations.get_or_insert_with(Default::default);
            match value {
                Some(value) => {
                    annotations.insert(multus::model::NETWORK_STATUS_ANNOTATION.to_string(), value.to_string());
                }
                None => {
                    if annotations.remove(multus::model::NETWORK_STATUS_ANNOTATION).is_none() {
                        return Ok(());
                    }
                }
            }
            match api.replace_status(&pod.name, &PostParams::default(), &live).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(ClusterError::StatusWrite(e.to_string())),
            }
        }
        Err(ClusterError::StatusWrite("too many conflicts".into()))
    }

    /// Queue an event; never blocks the request (a full queue drops the event).
    pub fn emit(&self, event: PodEvent) {
        if self.events.try_send(event).is_err() {
            tracing::debug!("event queue full; dropping an event");
        }
    }
}

/// Synchronous lookups (STATUS, GC, the DEL recompute): the NAD cache, with a GET on a miss
/// while the calling thread waits. ADD fetches its NADs beforehand ([`Cluster::nad_answers`]).
impl NadLookup for KubeContext {
    fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
        match self.nad_source.answer_now(&(namespace.to_string(), name.to_string())) {
            NadAnswer::Found(nad) => Some(Nad::clone(&nad)),
            _ => None,
        }
    }

    fn missing_reason(&self, namespace: &str, name: &str) -> Option<String> {
        match self.nads.peek(&(namespace.to_string(), name.to_string())) {
            Some(answer @ NadAnswer::TooLarge { .. }) => answer.reason(name),
            _ => None,
        }
    }
}

impl Cluster for KubeContext {
    fn lookup_pod<'a>(&'a self, namespace: &'a str, name: &'a str) -> BoxFuture<'a, Result<PodLookup, ClusterError>> {
        Box::pin(KubeContext::lookup_pod(self, namespace, name))
    }

    fn cached_pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.pods.get(namespace, name).map(|p| p.info)
    }

    fn nad_answers<'a>(&'a self, keys: &'a [NadKey]) -> BoxFuture<'a, NadAnswers> {
        Box::pin(KubeContext::nad_answers(self, keys))
    }

    fn write_network_status<'a>(&'a self, pod: &'a PodInfo, value: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(KubeContext::write_network_status(self, pod, value))
    }

    fn clear_network_status<'a>(&'a self, pod: &'a PodInfo) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(KubeContext::clear_network_status(self, pod))
    }

    fn pod_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.pods.subscribe_changes())
    }

    fn emit(&self, event: PodEvent) {
        KubeContext::emit(self, event)
    }
}

async fn send_events(client: kube::Client, mut rx: mpsc::Receiver<PodEvent>, metrics: Arc<crate::metrics::Metrics>) {
    while let Some(ev) = rx.recv().await {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let api: Api<KubeEvent> = Api::namespaced(client.clone(), &ev.pod.namespace);
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let event = KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", ev.pod.name, nanos)),
                namespace: Some(ev.pod.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(ev.pod.namespace.clone()),
                name: Some(ev.pod.name.clone()),
                uid: Some(ev.pod.uid.clone()),
                api_version: Some("v1".into()),
                resource_version: Some(ev.pod.resource_version.clone()).filter(|s| !s.is_empty()),
                ..Default::default()
            },
            reason: Some(ev.reason),
            message: Some(ev.message),
            source: Some(k8s_openapi::api::core::v1::EventSource { component: Some("multus".into()), host: None }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            type_: Some(if ev.warning { "Warning" } else { "Normal" }.into()),
            reporting_component: Some("multus".into()),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &event).await;
        let outcome = if created.is_ok() { "success" } else { "failure" };
        metrics.api_writes.with_label_values(&["event", outcome]).inc();
        if let Err(e) = created {
            // Events are best effort (the reference only logs them too).
            tracing::debug!("failed to record event: {e}");
        }
    }
}

#[cfg(test)]
mod status_write_tests {
    use super::*;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn client(server: &MockServer) -> kube::Client {
        let mut config = kube::Config::new(server.uri().parse().unwrap());
        config.default_retry = false;
        kube::Client::try_from(config).unwrap()
    }

    fn status(code: u16, reason: &str) -> serde_json::Value {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
    }

    const STATUS_PATH: &str = "/api/v1/namespaces/ns/pods/p/status";

    #[tokio::test]
    async fn a_throttled_status_write_is_retried_until_it_lands() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .and(path(STATUS_PATH))
            .respond_with(ResponseTemplate::new(429).set_body_json(status(429, "TooManyRequests")))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("PATCH"))
            .and(path(STATUS_PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}
            })))
            .mount(&server)
            .await;
        let api: Api<Pod> = Api::namespaced(client(&server), "ns");
        patch_status_retrying(&api, "p", &serde_json::json!({})).await.expect("written after two 429s");
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn retries_end_and_other_errors_are_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .and(path(STATUS_PATH))
            .respond_with(ResponseTemplate::new(503).set_body_json(status(503, "ServiceUnavailable")))
            .mount(&server)
            .await;
        let api: Api<Pod> = Api::namespaced(client(&server), "ns");
        let e = patch_status_retrying(&api, "p", &serde_json::json!({})).await.unwrap_err();
        assert!(api_says_later(&e), "{e}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1 + STATUS_WRITE_RETRY_DELAYS.len());

        let server = MockServer::start().await;
        Mock::given(method("PATCH"))
            .respond_with(ResponseTemplate::new(422).set_body_json(status(422, "Invalid")))
            .mount(&server)
            .await;
        let api: Api<Pod> = Api::namespaced(client(&server), "ns");
        assert!(patch_status_retrying(&api, "p", &serde_json::json!({})).await.is_err());
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }
}
