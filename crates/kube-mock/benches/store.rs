//! List, watch and patch latency over HTTP with 10,000 pods and 1,000 NADs seeded, plus the
//! resident memory of the process. Kept short: `cargo bench -p kube-mock`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube_mock::{MockApiServer, MockConfig};
use serde_json::json;

const PODS: usize = 10_000;
const NADS: usize = 1_000;
const NODES: usize = 10;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn seed() -> Vec<serde_json::Value> {
    let mut objects = Vec::with_capacity(PODS + NADS);
    for i in 0..PODS {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i:05}"), "namespace": format!("ns-{}", i % 20),
                         "labels": {"app": format!("app-{}", i % 50)},
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-net,bridge-net"}},
            "spec": {"nodeName": format!("node{}", i % NODES), "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}
        }));
    }
    for i in 0..NADS {
        objects.push(json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": format!("nad-{i:04}"), "namespace": format!("ns-{}", i % 20)},
            "spec": {"config": format!("{{\"cniVersion\":\"1.0.0\",\"name\":\"nad-{i}\",\"type\":\"bridge\"}}")}
        }));
    }
    objects
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn request(client: &HttpClient, method: &str, url: &str, content_type: &str, body: Vec<u8>) -> Bytes {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = client.request(req).await.expect("response");
    assert!(response.status().is_success(), "{method} {url}: {}", response.status());
    response.into_body().collect().await.expect("body").to_bytes()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let rss_before = rss_kib();
    let seeding = Instant::now();
    let server =
        runtime.block_on(MockApiServer::start(MockConfig { seed: seed(), ..MockConfig::default() })).expect("server");
    let seed_time = seeding.elapsed();
    let rss_after = rss_kib();
    eprintln!(
        "seeded {PODS} pods + {NADS} NADs in {:.0} ms; RSS {} MiB before, {} MiB after ({} MiB for the store)",
        seed_time.as_secs_f64() * 1000.0,
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024
    );
    let base = server.url();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let mut group = c.benchmark_group("kube-mock");
    group.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(300));
    group.bench_function("list all 10k pods", |b| {
        b.iter(|| runtime.block_on(request(&client, "GET", &format!("{base}/api/v1/pods"), "", Vec::new())))
    });
    group.bench_function("list pods of one node (1k)", |b| {
        let url = format!("{base}/api/v1/pods?fieldSelector=spec.nodeName%3Dnode1&limit=500&resourceVersion=0");
        b.iter(|| runtime.block_on(request(&client, "GET", &url, "", Vec::new())))
    });
    group.bench_function("list NADs of one namespace (50)", |b| {
        let url = format!("{base}/apis/k8s.cni.cncf.io/v1/namespaces/ns-3/network-attachment-definitions");
        b.iter(|| runtime.block_on(request(&client, "GET", &url, "", Vec::new())))
    });
    let mut counter = 0u64;
    group.bench_function("merge-patch pod annotation", |b| {
        let url = format!("{base}/api/v1/namespaces/ns-1/pods/pod-00001");
        b.iter(|| {
            counter += 1;
            let body = json!({"metadata": {"annotations": {"bench": counter.to_string()}}}).to_string().into_bytes();
            runtime.block_on(request(&client, "PATCH", &url, "application/merge-patch+json", body))
        })
    });
    group.bench_function("watch event latency (patch → MODIFIED on a node-scoped watch)", |b| {
        let watch_url = format!(
            "{base}/api/v1/pods?watch=true&fieldSelector=spec.nodeName%3Dnode2&resourceVersion={}",
            server.store().resource_version()
        );
        let patch_url = format!("{base}/api/v1/namespaces/ns-2/pods/pod-00002");
        let mut watch = runtime.block_on(async {
            let req = http::Request::get(&watch_url).body(Full::new(Bytes::new())).expect("request");
            client.request(req).await.expect("watch").into_body()
        });
        b.iter(|| {
            counter += 1;
            let body = json!({"metadata": {"annotations": {"bench": counter.to_string()}}}).to_string().into_bytes();
            runtime.block_on(async {
                request(&client, "PATCH", &patch_url, "application/merge-patch+json", body).await;
                // One MODIFIED event per patch; frames may split lines, so read to a newline.
                let mut seen = Vec::new();
                while !seen.ends_with(b"\n") {
                    let frame = watch.frame().await.expect("watch open").expect("frame");
                    if let Ok(data) = frame.into_data() {
                        seen.extend_from_slice(&data);
                    }
                }
            })
        })
    });
    group.finish();
    eprintln!("RSS at the end: {} MiB", rss_kib() / 1024);
    runtime.block_on(server.shutdown());
}

criterion_group!(kube_mock, benches);
criterion_main!(kube_mock);
