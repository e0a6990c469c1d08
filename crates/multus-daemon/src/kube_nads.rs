//! NetworkAttachmentDefinitions from the API server, for the node's [`NadCache`].
//!
//! - **The watch** ([`NadSource::start`]): one `GET …/network-attachment-definitions?limit=1`
//!   (metadata only) gives the collection's resourceVersion, then a metadata-only watch from
//!   there reports which NAD changed — nothing of the cluster's NADs is kept but the entries
//!   this node asked for. A 410 Gone or a broken event means a gap: list again, clear the cache.
//!   Events are decoded down to namespace, name and resourceVersion (an API server that ignores
//!   the metadata-only `Accept` costs a larger line, never a kept object).
//! - **The fill** ([`NadSource::answers`]): the keys a request needs are answered from the cache;
//!   the misses are fetched with one GET each, at the same time, and one GET per key however
//!   many requests wait for it. A NAD larger than [`MAX_NAD_BYTES`] is refused, never parsed.

use crate::metrics::Metrics;
use crate::nad_cache::{Change, Key, MAX_NAD_BYTES, NadAnswer, NadCache, nad_bytes};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt, Shared};
use kube::api::{ListParams, WatchEvent, WatchParams};
use multus::model::{Nad, RESOURCE_NAME_ANNOTATION};
use multus::resolve::MAX_POD_NAD_CONFIG_BYTES;
use multus_node::limits::{ResponseLimit, ResponseTooLarge};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The NAD collection of every namespace.
const COLLECTION: &str = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions";

/// How long one NAD GET may take before the request that needs it fails.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer to one NAD GET that is read: the config, plus room for a
/// `last-applied-configuration` annotation holding it again (escaped).
pub const NAD_RESPONSE_LIMIT: usize = 3 * MAX_NAD_BYTES;

/// NAD GETs in flight at once, over every request: each holds up to [`NAD_RESPONSE_LIMIT`]
/// (twice, while kube-rs parses it).
pub const FETCHES_AT_ONCE: usize = 4;

/// The watch asks the server to end it after this long; it is started again at once.
const WATCH_TIMEOUT_SECS: u32 = 290;
const BACKOFF_MIN: Duration = Duration::from_millis(800);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Namespace, name and resourceVersion: all the watch reads of an object.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct Meta {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
}

/// A watch event's object, reduced to its metadata.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct MetaOnly {
    #[serde(default)]
    metadata: Meta,
}

/// A list, reduced to its resourceVersion (the items are skipped unread).
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ListMeta {
    #[serde(default)]
    metadata: Meta,
}

/// A NAD as the daemon keeps it: `spec.config` and the resourceName annotation; everything
/// else (other annotations, managed fields) is skipped without being stored.
#[derive(Debug, Default, serde::Deserialize)]
struct NadObject {
    #[serde(default)]
    metadata: NadMeta,
    #[serde(default)]
    spec: NadSpec,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NadMeta {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default, rename = "resourceVersion")]
    resource_version: String,
    #[serde(default, deserialize_with = "resource_name_only")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct NadSpec {
    #[serde(default, deserialize_with = "config_text")]
    config: String,
}

/// Keep only the resourceName annotation (the one Multus reads on a NAD).
fn resource_name_only<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct Annotations;
    impl<'de> Visitor<'de> for Annotations {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == RESOURCE_NAME_ANNOTATION {
                    out.insert(key, map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    d.deserialize_option(Annotations)
}

/// `spec.config` as text; anything but a string counts as empty (as the lister's callers read it).
fn config_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E>(self, _: bool) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_i64<E>(self, _: i64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_u64<E>(self, _: u64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_f64<E>(self, _: f64) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_unit<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(String::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(String::new())
        }
    }
    d.deserialize_any(Text)
}

/// A namespace is a DNS-1123 label, a NAD name a DNS-1123 subdomain: anything else cannot
/// exist, so it is not asked for (and never reaches a request path).
pub fn is_valid_key(key: &Key) -> bool {
    fn label_chars(s: &str, dots: bool) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || (dots && *c == b'.'))
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
    }
    let (namespace, name) = key;
    namespace.len() <= 63 && label_chars(namespace, false) && name.len() <= 253 && label_chars(name, true)
}

type Flight = Shared<BoxFuture<'static, NadAnswer>>;

fn found_bytes(answer: &NadAnswer) -> usize {
    match answer {
        NadAnswer::Found(nad) => nad_bytes(nad),
        _ => 0,
    }
}

/// The NAD cache with its watch and its GETs. Clones share everything.
#[derive(Clone)]
pub struct NadSource {
    client: kube::Client,
    /// The node's NAD cache.
    pub cache: Arc<NadCache>,
    inflight: Arc<Mutex<HashMap<Key, Flight>>>,
    permits: Arc<tokio::sync::Semaphore>,
    metrics: Arc<Metrics>,
}

impl NadSource {
    /// A cache of `budget` bytes, kept right by a watch started now.
    pub fn start(client: kube::Client, budget: usize, metrics: Arc<Metrics>) -> Self {
        let source = Self::new(client, budget, metrics);
        tokio::spawn(source.clone().watch_forever());
        source
    }

    /// Without the watch (tests drive the cache themselves).
    pub fn new(client: kube::Client, budget: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            cache: Arc::new(NadCache::new(budget)),
            inflight: Default::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(FETCHES_AT_ONCE)),
            metrics,
        }
    }

    /// What is known about each NAD of `keys`: hits from the cache, misses fetched
    /// [`FETCHES_AT_ONCE`] at a time (one GET per key, shared with other requests waiting for
    /// it). Once the NADs found for the request exceed what one pod may use
    /// ([`MAX_POD_NAD_CONFIG_BYTES`]), the rest are not fetched.
    pub async fn answers(&self, keys: &[Key]) -> BTreeMap<Key, NadAnswer> {
        let mut out = BTreeMap::new();
        let mut misses = Vec::new();
        let mut found = 0usize;
        for key in keys {
            if out.contains_key(key) || misses.contains(key) {
                continue;
            }
            if !is_valid_key(key) {
                out.insert(key.clone(), NadAnswer::NotFound);
                continue;
            }
            match self.cache.lookup(key) {
                Some(answer) => {
                    self.metrics.nad_cache_lookups.with_label_values(&["hit"]).inc();
                    found += found_bytes(&answer);
                    out.insert(key.clone(), answer);
                }
                None => {
                    self.metrics.nad_cache_lookups.with_label_values(&["miss"]).inc();
                    misses.push(key.clone());
                }
            }
        }
        for wave in misses.chunks(FETCHES_AT_ONCE) {
            let (skipped, fetched): (Vec<&Key>, Vec<&Key>) =
                wave.iter().partition(|_| found > MAX_POD_NAD_CONFIG_BYTES);
            for key in skipped {
                out.insert(
                    key.clone(),
                    NadAnswer::Unavailable(format!(
                        "not fetched: the pod's other networks already use more than the {} of NAD config one pod may use",
                        crate::nad_cache::human_bytes(MAX_POD_NAD_CONFIG_BYTES)
                    )),
                );
            }
            let answers = futures::future::join_all(fetched.iter().map(|k| self.flight(k))).await;
            for (key, answer) in fetched.into_iter().zip(answers) {
                found += found_bytes(&answer);
                out.insert(key.clone(), answer);
            }
        }
        out
    }

    /// One NAD, for synchronous callers: from the cache, or on a miss fetched while this
    /// thread waits (only possible on a multi-threaded runtime; elsewhere a miss is
    /// [`NadAnswer::Unavailable`]). Requests fetch their NADs beforehand
    /// ([`NadSource::answers`]); this serves the paths that do not (STATUS, GC, the DEL
    /// recompute).
    pub fn answer_now(&self, key: &Key) -> NadAnswer {
        if !is_valid_key(key) {
            return NadAnswer::NotFound;
        }
        if let Some(answer) = self.cache.lookup(key) {
            self.metrics.nad_cache_lookups.with_label_values(&["hit"]).inc();
            return answer;
        }
        self.metrics.nad_cache_lookups.with_label_values(&["miss"]).inc();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                let flight = self.flight(key);
                tokio::task::block_in_place(|| handle.block_on(flight))
            }
            _ => NadAnswer::Unavailable("not in this node's NAD cache".into()),
        }
    }

    /// The GET of `key`, started unless one is in flight already.
    fn flight(&self, key: &Key) -> Flight {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inflight.get(key) {
            return f.clone();
        }
        let this = self.clone();
        let k = key.clone();
        // A task of its own: the GET and the store finish even if every waiting request is
        // cancelled.
        let task = tokio::spawn(async move {
            let token = this.cache.begin_fetch();
            let (answer, resource_version) = this.fetch(&k).await;
            this.cache.store(&k, &answer, &resource_version, token);
            this.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
            this.update_gauges();
            answer
        });
        let flight =
            async move { task.await.unwrap_or_else(|e| NadAnswer::Unavailable(format!("lookup failed: {e}"))) }
                .boxed()
                .shared();
        inflight.insert(key.clone(), flight.clone());
        flight
    }

    /// One GET: the answer and the object's resourceVersion.
    async fn fetch(&self, (namespace, name): &Key) -> (NadAnswer, String) {
        // The semaphore is never closed; without a permit the GET goes ahead anyway.
        let _permit = self.permits.acquire().await.ok();
        let request = kube::core::Request::new(format!(
            "/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions"
        ))
        .get(name, &Default::default());
        let mut request = match request {
            Ok(r) => r,
            Err(e) => return (NadAnswer::Unavailable(e.to_string()), String::new()),
        };
        request.extensions_mut().insert(ResponseLimit(NAD_RESPONSE_LIMIT));
        let started = Instant::now();
        let got = tokio::time::timeout(FETCH_TIMEOUT, self.client.request::<NadObject>(request)).await;
        let outcome = |o: &str| self.metrics.api_reads.with_label_values(&["network_attachment_definition", o]).inc();
        let object = match got {
            Ok(Ok(object)) => object,
            Ok(Err(kube::Error::Api(status))) if status.is_not_found() => {
                outcome("not_found");
                return (NadAnswer::NotFound, String::new());
            }
            Ok(Err(e)) if ResponseTooLarge::is_in(&e) => {
                outcome("too_large");
                tracing::warn!("NetworkAttachmentDefinition {namespace}/{name}: {e}");
                return (NadAnswer::TooLarge { bytes: NAD_RESPONSE_LIMIT }, String::new());
            }
            Ok(Err(e)) => {
                outcome("failure");
                return (NadAnswer::Unavailable(format!("failed to get it from the API server: {e}")), String::new());
            }
            Err(_) => {
                outcome("failure");
                return (
                    NadAnswer::Unavailable(format!("the API server did not answer within {FETCH_TIMEOUT:?}")),
                    String::new(),
                );
            }
        };
        outcome("success");
        tracing::debug!("fetched NetworkAttachmentDefinition {namespace}/{name} in {:?}", started.elapsed());
        let nad = Nad {
            namespace: if object.metadata.namespace.is_empty() { namespace.clone() } else { object.metadata.namespace },
            name: if object.metadata.name.is_empty() { name.clone() } else { object.metadata.name },
            config: object.spec.config,
            annotations: object.metadata.annotations,
        };
        let bytes = nad_bytes(&nad);
        if bytes > MAX_NAD_BYTES {
            tracing::warn!(
                "NetworkAttachmentDefinition {namespace}/{name} is refused: {} of config, more than {}",
                crate::nad_cache::human_bytes(bytes),
                crate::nad_cache::human_bytes(MAX_NAD_BYTES)
            );
            return (NadAnswer::TooLarge { bytes }, object.metadata.resource_version);
        }
        (NadAnswer::Found(Arc::new(nad)), object.metadata.resource_version)
    }

    fn update_gauges(&self) {
        let stats = self.cache.stats();
        self.metrics
            .watch_cache_objects
            .with_label_values(&["network-attachment-definitions"])
            .set(i64::try_from(stats.entries).unwrap_or(i64::MAX));
        self.metrics.nad_cache_bytes.set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
    }

    /// The collection's current resourceVersion: a metadata list of one item.
    async fn list_resource_version(&self) -> Result<String, kube::Error> {
        let request = kube::core::Request::new(COLLECTION)
            .list_metadata(&ListParams::default().limit(1))
            .map_err(kube::Error::BuildRequest)?;
        let list: ListMeta = self.client.request(request).await?;
        Ok(list.metadata.resource_version)
    }

    /// Watch the collection from `version` for ever, relisting after a gap.
    async fn watch_forever(self) {
        let mut version: Option<String> = None;
        let mut backoff = BACKOFF_MIN;
        let resource = "network-attachment-definitions";
        loop {
            let from = match &version {
                Some(v) => v.clone(),
                None => match self.list_resource_version().await {
                    Ok(v) => {
                        self.cache.relisted();
                        self.metrics.watch_relists.with_label_values(&[resource]).inc();
                        self.update_gauges();
                        crate::memory::note_activity();
                        version = Some(v.clone());
                        v
                    }
                    Err(e) => {
                        tracing::warn!("NetworkAttachmentDefinition list failed (will retry): {e}");
                        self.cache.disconnected();
                        crate::memory::note_activity();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let started = Instant::now();
            match self.watch_once(&from, &mut version).await.err() {
                // The server ended the watch (its timeout): resume at once, unless it keeps
                // ending right away.
                None if started.elapsed() >= Duration::from_secs(1) => backoff = BACKOFF_MIN,
                None => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Some(e) => {
                    tracing::warn!("NetworkAttachmentDefinition watch error (will retry): {e}");
                    self.cache.disconnected();
                    crate::memory::note_activity();
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// One watch request from `from`; `version` follows the events (`None` after a gap).
    async fn watch_once(&self, from: &str, version: &mut Option<String>) -> Result<(), WatchError> {
        let params = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        let request = kube::core::Request::new(COLLECTION).watch_metadata(&params, from)?;
        let stream = match self.client.request_events::<MetaOnly>(request).await {
            Ok(s) => s,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                *version = None;
                return Err(WatchError::Expired(status.message));
            }
            Err(e) => return Err(e.into()),
        };
        self.cache.connected();
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            let (change, object) = match item {
                Ok(WatchEvent::Added(o)) => (Change::Added, o),
                Ok(WatchEvent::Modified(o)) => (Change::Modified, o),
                Ok(WatchEvent::Deleted(o)) => (Change::Deleted, o),
                Ok(WatchEvent::Bookmark(b)) => {
                    *version = Some(b.metadata.resource_version);
                    continue;
                }
                Ok(WatchEvent::Error(status)) => {
                    if status.code == 410 {
                        *version = None;
                    }
                    return Err(WatchError::Status { message: status.message, code: status.code });
                }
                Err(e) => {
                    // An event over the size limit cannot be skipped (resuming would replay
                    // it): start again from a new list.
                    if ResponseTooLarge::is_in(&e) {
                        *version = None;
                    }
                    return Err(e.into());
                }
            };
            let m = object.metadata;
            self.cache.on_event(change, &(m.namespace, m.name), &m.resource_version);
            if !m.resource_version.is_empty() {
                *version = Some(m.resource_version);
            }
            self.update_gauges();
        }
        Ok(())
    }
}

/// Why one NAD watch request ended (logged; the watch starts again).
#[derive(Debug, thiserror::Error)]
enum WatchError {
    /// The watch request could not be built.
    #[error(transparent)]
    Request(#[from] kube::core::request::Error),
    /// The API server or the connection failed.
    #[error(transparent)]
    Client(#[from] kube::Error),
    /// The resource version is too old (410): the next watch lists again.
    #[error("{0} (listing again)")]
    Expired(String),
    /// The watch stream carried an error status.
    #[error("{message} ({code})")]
    Status {
        /// The status message.
        message: String,
        /// The status code.
        code: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nad_is_read_down_to_what_multus_uses() {
        let text = serde_json::json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "n", "namespace": "ns", "resourceVersion": "42", "annotations": {
                "k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov",
                "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(10_000)},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"config": "{\"type\":\"macvlan\"}"}
        })
        .to_string();
        let o: NadObject = serde_json::from_str(&text).unwrap();
        assert_eq!((o.metadata.namespace.as_str(), o.metadata.name.as_str()), ("ns", "n"));
        assert_eq!(o.metadata.resource_version, "42");
        assert_eq!(o.spec.config, "{\"type\":\"macvlan\"}");
        assert_eq!(o.metadata.annotations.len(), 1);
        for odd in [serde_json::json!({}), serde_json::json!({"config": 5}), serde_json::json!({"config": {"a": [1]}})]
        {
            let o: NadObject =
                serde_json::from_value(serde_json::json!({"metadata": {"annotations": null}, "spec": odd})).unwrap();
            assert_eq!(o.spec.config, "");
        }
    }

    #[test]
    fn watch_events_and_lists_keep_only_metadata() {
        let line = r#"{"type":"MODIFIED","object":{"metadata":{"name":"n","namespace":"ns","resourceVersion":"7","annotations":{"a":"b"}},"spec":{"config":"{}"}}}"#;
        let ev: WatchEvent<MetaOnly> = serde_json::from_str(line).unwrap();
        let WatchEvent::Modified(o) = ev else { panic!("{ev:?}") };
        assert_eq!((o.metadata.name.as_str(), o.metadata.resource_version.as_str()), ("n", "7"));
        let list: ListMeta = serde_json::from_str(
            r#"{"kind":"PartialObjectMetadataList","metadata":{"resourceVersion":"99","continue":"x"},"items":[{"metadata":{"name":"a"}}]}"#,
        )
        .unwrap();
        assert_eq!(list.metadata.resource_version, "99");
    }

    #[test]
    fn keys_that_cannot_exist_are_not_asked_for() {
        let k = |ns: &str, n: &str| (ns.to_string(), n.to_string());
        assert!(is_valid_key(&k("default", "macvlan-conf")));
        assert!(is_valid_key(&k("kube-system", "a.b-c")));
        for bad in [k("", "x"), k("default", ""), k("default", "a/b"), k("default", "A"), k("x", "a?b"), k("a.b", "x")]
        {
            assert!(!is_valid_key(&bad), "{bad:?}");
        }
        assert!(!is_valid_key(&k("default", &"a".repeat(254))));
    }
}
