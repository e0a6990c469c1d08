//! The node's NAD cache against kube-mock, in process (no root): a NAD is fetched once on first
//! use and then answered from the cache; the metadata watch makes a modified, deleted or newly
//! created NAD seen; a gap clears the cache; a NAD over the size limit is refused; the NADs of
//! the rest of the cluster cost nothing, not even at start.

use kube_mock::{MockApiServer, MockConfig};
use multus_daemon::kube::KubeContext;
use multus_daemon::metrics::Metrics;
use multus_daemon::nad_cache::{DEFAULT_BUDGET_BYTES, NadAnswer};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Node {
    mock: MockApiServer,
    kube: Arc<KubeContext>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
    ready: Duration,
}

fn nad(namespace: &str, name: &str, config: &str) -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": namespace}, "spec": {"config": config}})
}

fn config(tag: &str, pad: usize) -> String {
    json!({"cniVersion": "1.0.0", "type": "macvlan", "tag": tag, "pad": "x".repeat(pad)}).to_string()
}

async fn start(seed: Vec<Value>) -> Node {
    let mock =
        MockApiServer::start(MockConfig { seed, bookmark_interval: Duration::from_millis(200), ..Default::default() })
            .await
            .expect("kube-mock");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    mock.write_kubeconfig(&kubeconfig).unwrap();
    let client = multus_daemon::kube::build_client(Some(&kubeconfig)).await.expect("client");
    let metrics = Arc::new(Metrics::new());
    let started = Instant::now();
    let kube = KubeContext::start(client, Some("node1"), metrics.clone());
    assert!(kube.nads.wait_synced(Duration::from_secs(10)).await, "NAD watch never started");
    let ready = started.elapsed();
    Node { mock, kube, metrics, _dir: dir, ready }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

impl Node {
    async fn answer(&self, ns: &str, name: &str) -> NadAnswer {
        let k = key(ns, name);
        self.kube.nad_answers(std::slice::from_ref(&k)).await.remove(&k).expect("an answer per key")
    }

    /// GETs of one NAD the API server saw.
    fn gets(&self, ns: &str, name: &str) -> usize {
        let path = format!("/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}");
        self.mock.journal().iter().filter(|e| e.method == "GET" && e.path == path).count()
    }

    /// Wait until the watch has told the cache something about `ns/name`.
    async fn until(&self, what: &str, mut done: impl FnMut(Option<NadAnswer>) -> bool, ns: &str, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self.kube.nads.peek(&key(ns, name))) {
            assert!(
                Instant::now() < deadline,
                "{what}: the cache still says {:?}",
                self.kube.nads.peek(&key(ns, name))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn config_of(answer: &NadAnswer) -> String {
        match answer {
            NadAnswer::Found(n) => n.config.clone(),
            other => panic!("expected a NAD, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_fetches_once_and_later_uses_cost_no_request() {
    let node = start(vec![nad("ns1", "net-a", &config("a", 0))]).await;
    assert!(node.kube.nads.is_empty(), "nothing is read before a pod asks");
    assert!(Node::config_of(&node.answer("ns1", "net-a").await).contains("\"tag\":\"a\""));
    assert_eq!(node.gets("ns1", "net-a"), 1);
    for _ in 0..5 {
        assert!(matches!(node.answer("ns1", "net-a").await, NadAnswer::Found(_)));
    }
    assert_eq!(node.gets("ns1", "net-a"), 1, "a NAD used on the node costs no round trip");
    // Many requests waiting for the same uncached NAD share one GET.
    node.mock.store().create(nad("ns1", "net-b", &config("b", 0))).unwrap();
    let waits: Vec<_> = (0..16).map(|_| node.answer("ns1", "net-b")).collect();
    let answers = futures::future::join_all(waits).await;
    assert!(answers.iter().all(|a| matches!(a, NadAnswer::Found(_))));
    assert_eq!(node.gets("ns1", "net-b"), 1);
    let metrics = String::from_utf8(node.metrics.render()).unwrap();
    assert!(
        metrics.contains("multus_apiserver_reads_total{kind=\"network_attachment_definition\",outcome=\"success\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("multus_nad_cache_lookups_total{result=\"hit\"} 5"), "{metrics}");
    assert!(metrics.contains("multus_watch_cache_objects{resource=\"network-attachment-definitions\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modified_nad_is_seen_and_a_deleted_one_is_not_found() {
    let node = start(vec![nad("ns1", "net-a", &config("v1", 0))]).await;
    assert!(Node::config_of(&node.answer("ns1", "net-a").await).contains("v1"));
    node.mock.store().upsert(nad("ns1", "net-a", &config("v2", 0))).unwrap();
    node.until("modified", |a| a.is_none(), "ns1", "net-a").await;
    assert!(Node::config_of(&node.answer("ns1", "net-a").await).contains("v2"));
    assert_eq!(node.gets("ns1", "net-a"), 2);

    node.mock.store().delete_kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", "ns1", "net-a").unwrap();
    node.until("deleted", |a| a == Some(NadAnswer::NotFound), "ns1", "net-a").await;
    let answer = node.answer("ns1", "net-a").await;
    assert_eq!(answer, NadAnswer::NotFound);
    assert_eq!(
        answer.reason("net-a").unwrap(),
        "networkattachmentdefinition.k8s.cni.cncf.io \"net-a\" not found",
        "the reference's text"
    );
    assert_eq!(node.gets("ns1", "net-a"), 2, "the watch said it is gone: no GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_nad_is_asked_for_once_and_seen_when_created() {
    let node = start(vec![]).await;
    assert_eq!(node.answer("ns1", "later").await, NadAnswer::NotFound);
    assert_eq!(node.answer("ns1", "later").await, NadAnswer::NotFound);
    assert_eq!(node.gets("ns1", "later"), 1, "a negative answer is cached while the watch runs");
    node.mock.store().create(nad("ns1", "later", &config("new", 0))).unwrap();
    node.until("created", |a| a.is_none(), "ns1", "later").await;
    assert!(Node::config_of(&node.answer("ns1", "later").await).contains("new"));
    // A name that cannot exist is not asked for at all.
    assert_eq!(node.answer("ns1", "no/such").await, NadAnswer::NotFound);
    assert_eq!(node.mock.journal().iter().filter(|e| e.path.contains("such")).count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nad_over_the_size_limit_is_refused_not_kept() {
    let node = start(vec![nad("ns1", "huge", &config("h", 2 << 20))]).await;
    let answer = node.answer("ns1", "huge").await;
    let NadAnswer::TooLarge { bytes } = answer else { panic!("{answer:?}") };
    assert!(bytes > 2 << 20, "{bytes}");
    let why = answer.reason("huge").unwrap();
    assert!(why.contains("is refused") && why.contains("2.0 MiB") && why.contains("1.5 MiB"), "{why}");
    assert!(node.kube.nads.stats().bytes < 1024, "only the refusal is kept");
    assert!(matches!(node.answer("ns1", "huge").await, NadAnswer::TooLarge { .. }));
    assert_eq!(node.gets("ns1", "huge"), 1, "the refusal is remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_stays_within_its_budget() {
    let seed: Vec<Value> = (0..30).map(|i| nad("ns1", &format!("n{i}"), &config("b", 400 << 10))).collect();
    let node = start(seed).await;
    for i in 0..30 {
        assert!(matches!(node.answer("ns1", &format!("n{i}")).await, NadAnswer::Found(_)));
        assert!(node.kube.nads.stats().bytes <= DEFAULT_BUDGET_BYTES);
    }
    let stats = node.kube.nads.stats();
    assert!(stats.evictions > 0 && stats.entries < 30, "{stats:?}");
    // The most recent stays; the oldest went and is fetched again.
    assert!(matches!(node.answer("ns1", "n29").await, NadAnswer::Found(_)));
    assert_eq!(node.gets("ns1", "n29"), 1);
    assert!(matches!(node.answer("ns1", "n0").await, NadAnswer::Found(_)));
    assert_eq!(node.gets("ns1", "n0"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_gap_clears_the_cache() {
    let node = start(vec![nad("ns1", "net-a", &config("a", 0))]).await;
    assert!(matches!(node.answer("ns1", "net-a").await, NadAnswer::Found(_)));
    assert_eq!(node.answer("ns1", "absent").await, NadAnswer::NotFound);
    // An etcd compaction: the watch gets 410 and must list again.
    node.mock.expire_watches();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.kube.nads.is_empty() {
        assert!(Instant::now() < deadline, "the cache was not cleared after the gap");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(node.answer("ns1", "net-a").await, NadAnswer::Found(_)));
    assert_eq!(node.gets("ns1", "net-a"), 2);
    let metrics = String::from_utf8(node.metrics.render()).unwrap();
    assert!(metrics.contains("multus_watch_relists_total{resource=\"network-attachment-definitions\"} 2"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nads_of_the_rest_of_the_cluster_cost_nothing() {
    let seed: Vec<Value> =
        (0..10_000).map(|i| nad(&format!("tenant-{}", i % 1000), &format!("net-{i}"), &config("t", 900))).collect();
    let node = start(seed).await;
    assert!(node.ready < Duration::from_secs(1), "ready after {:?}", node.ready);
    assert!(node.kube.nads.is_empty());
    let nad_requests: Vec<String> = node
        .mock
        .journal()
        .iter()
        .filter(|e| e.path.contains("network-attachment-definitions"))
        .map(|e| format!("{} {}?{}", e.method, e.path, e.query.clone().unwrap_or_default()))
        .collect();
    assert!(nad_requests.iter().any(|r| r.contains("limit=1")), "{nad_requests:?}");
    assert!(
        nad_requests.iter().all(|r| r.contains("limit=1") || r.contains("watch=true")),
        "only a list of one and the watch: {nad_requests:?}"
    );
    assert!(Node::config_of(&node.answer("tenant-7", "net-7").await).contains("\"tag\":\"t\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pod_cannot_make_the_daemon_fetch_more_than_its_share() {
    let seed: Vec<Value> = (0..12).map(|i| nad("ns1", &format!("big-{i}"), &config("b", 1 << 20))).collect();
    let node = start(seed).await;
    let keys: Vec<(String, String)> = (0..12).map(|i| key("ns1", &format!("big-{i}"))).collect();
    let answers = node.kube.nad_answers(&keys).await;
    let found = answers.values().filter(|a| matches!(a, NadAnswer::Found(_))).count();
    let skipped: Vec<&NadAnswer> = answers.values().filter(|a| matches!(a, NadAnswer::Unavailable(_))).collect();
    assert_eq!((found, skipped.len()), (4, 8), "{answers:?}");
    let why = skipped[0].reason("big-9").unwrap();
    assert!(why.contains("not fetched") && why.contains("4.0 MiB"), "{why}");
    let gets = node.mock.journal().iter().filter(|e| e.method == "GET" && e.path.contains("/big-")).count();
    assert_eq!(gets, 4, "only the first wave was fetched");
}
