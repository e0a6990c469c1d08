//! Prometheus metrics (`metricsPort`, spec §10), in the text format of the `prometheus` crate.
//!
//! The Go daemon's one counter keeps its name and labels (`multus_server_request_total`
//! {handler, code, method}); the others answer what operators ask when a pod does not get its
//! networks. Label values are bounded: verbs, plugin types, network (NAD) names, outcomes —
//! never pod names or container IDs.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::time::Duration;

/// Seconds buckets from 1 ms to ~2 min: a delegate ADD takes milliseconds to seconds, the
/// delegate timeout is minutes.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 120.0];

/// Every metric of the daemon, in its own registry.
pub struct Metrics {
    registry: Registry,
    /// Go's `multus_server_request_total{handler,code,method}` (handler `/cni`, `/delegate`,
    /// `/healthz`, `/readyz` or `NotFound`; method lower-case).
    pub server_requests: IntCounterVec,
    /// Requests being handled now.
    pub requests_in_flight: IntGauge,
    /// Command duration by command (`ADD`, `DEL`…), endpoint and outcome (`success`/`failure`).
    pub command_duration: HistogramVec,
    /// One delegate invocation's duration by verb, plugin type and network.
    pub delegate_duration: HistogramVec,
    /// Failed delegate invocations by verb, plugin type and network.
    pub delegate_failures: IntCounterVec,
    /// Writes to the API server (`network_status`, `event`) by outcome.
    pub api_writes: IntCounterVec,
    /// Duration of the network-status write.
    pub api_write_duration: HistogramVec,
    /// Objects in the watch caches (`pods`, `network-attachment-definitions`).
    pub watch_cache_objects: IntGaugeVec,
    /// Full relists of a watch cache (start-up, after a 410 or a broken watch).
    pub watch_relists: IntCounterVec,
    /// NAD lookups by result: `hit` (answered by the node's NAD cache) or `miss` (one GET).
    pub nad_cache_lookups: IntCounterVec,
    /// Bytes the node's NAD cache holds (config text and bookkeeping), never above its budget.
    pub nad_cache_bytes: IntGauge,
    /// Reads from the API server besides the watches, by kind and outcome (`success`,
    /// `not_found`, `too_large`, `failure`).
    pub api_reads: IntCounterVec,
    /// ADD rollbacks by outcome (`clean`, `incomplete`).
    pub rollbacks: IntCounterVec,
    /// Attachments plugged in or out of running pods (`dynamicNetworks`), by `op` (`add`,
    /// `remove`) and `result` (`success`, `failure`).
    pub dynamic_attachments: IntCounterVec,
    /// DELs by source (`cache`, `recomputed`) and DELs that found nothing to delete (`nothing`).
    pub dels: IntCounterVec,
    /// What the orphan reconciler decided per attachment and pass (`deleted`, `would_delete`,
    /// `failed`, `deferred`, `alive`, `unknown`, `protected_by_gc`).
    pub reconcile: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(c.clone())).unwrap_or_else(|e| panic!("registering {name}: {e}"));
    c
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let h = HistogramVec::new(opts, labels).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(h.clone())).unwrap_or_else(|e| panic!("registering {name}: {e}"));
    h
}

impl Metrics {
    /// The metrics, registered (with the process collector on Linux). The names and labels are
    /// constants, so registration can only fail on a programming error: that panics at start-up,
    /// never on a request.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests_in_flight = IntGauge::new("multus_requests_in_flight", "CNI requests being handled now.")
            .unwrap_or_else(|e| panic!("{e}"));
        registry.register(Box::new(requests_in_flight.clone())).unwrap_or_else(|e| panic!("{e}"));
        let watch_cache_objects = IntGaugeVec::new(
            Opts::new("multus_watch_cache_objects", "Objects in the daemon's watch caches."),
            &["resource"],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        registry.register(Box::new(watch_cache_objects.clone())).unwrap_or_else(|e| panic!("{e}"));
        let nad_cache_bytes = IntGauge::new(
            "multus_nad_cache_bytes",
            "Bytes held by the node's NAD cache (config text and bookkeeping).",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        registry.register(Box::new(nad_cache_bytes.clone())).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            server_requests: counter(
                &registry,
                "multus_server_request_total",
                "Counter of HTTP requests to the daemon's socket API, by handler, code and method.",
                &["handler", "code", "method"],
            ),
            requests_in_flight,
            command_duration: histogram(
                &registry,
                "multus_command_duration_seconds",
                "Duration of CNI commands handled by the daemon.",
                &["command", "endpoint", "outcome"],
            ),
            delegate_duration: histogram(
                &registry,
                "multus_delegate_duration_seconds",
                "Duration of one delegate plugin invocation.",
                &["verb", "plugin", "network"],
            ),
            delegate_failures: counter(
                &registry,
                "multus_delegate_failures_total",
                "Delegate plugin invocations that failed.",
                &["verb", "plugin", "network"],
            ),
            api_writes: counter(
                &registry,
                "multus_apiserver_writes_total",
                "Writes to the Kubernetes API server, by kind and outcome.",
                &["kind", "outcome"],
            ),
            api_write_duration: histogram(
                &registry,
                "multus_apiserver_write_duration_seconds",
                "Duration of writes to the Kubernetes API server.",
                &["kind"],
            ),
            watch_cache_objects,
            watch_relists: counter(
                &registry,
                "multus_watch_relists_total",
                "Full lists of a watch cache (start-up, expired or broken watches).",
                &["resource"],
            ),
            nad_cache_lookups: counter(
                &registry,
                "multus_nad_cache_lookups_total",
                "NAD lookups by result: hit (the node's NAD cache answered) or miss (fetched from the API server).",
                &["result"],
            ),
            nad_cache_bytes,
            api_reads: counter(
                &registry,
                "multus_apiserver_reads_total",
                "Reads from the Kubernetes API server besides the watches, by kind and outcome.",
                &["kind", "outcome"],
            ),
            rollbacks: counter(
                &registry,
                "multus_add_rollbacks_total",
                "ADDs rolled back after a failure, by whether the rollback left anything behind.",
                &["outcome"],
            ),
            dynamic_attachments: counter(
                &registry,
                "multus_dynamic_attachments_total",
                "Attachments plugged into or out of running pods as their selection changed (dynamicNetworks).",
                &["op", "result"],
            ),
            dels: counter(
                &registry,
                "multus_del_total",
                "DELs by where the delegate list came from (cache, recomputed) or nothing to delete.",
                &["source"],
            ),
            reconcile: counter(
                &registry,
                "multus_reconcile_attachments_total",
                "Attachments the orphan reconciler looked at, by decision.",
                &["action"],
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for metrics that break the format, which ours cannot.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        out
    }

    /// Record one delegate invocation.
    pub fn observe_delegate(&self, verb: &str, plugin: &str, network: &str, took: Duration, ok: bool) {
        self.delegate_duration.with_label_values(&[verb, plugin, network]).observe(took.as_secs_f64());
        if !ok {
            self.delegate_failures.with_label_values(&[verb, plugin, network]).inc();
        }
    }

    /// Record one request to the socket API (Go's label values: lower-case method).
    pub fn observe_request(&self, handler: &str, code: u16, method: &str) {
        self.server_requests.with_label_values(&[handler, &code.to_string(), &method.to_ascii_lowercase()]).inc();
    }
}

/// What the metrics listener serves besides `/metrics`: with `enablePprof`, Go's
/// `/debug/pprof/*` (CPU profiles and the command line; [`crate::profiling`]) and a
/// `/debug/state` snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    /// Serve `/debug/pprof/*` and `/debug/state` (`enablePprof: true`).
    pub debug: bool,
}

/// Serve `/metrics` (and the debug endpoints) on `listener` until `shutdown` turns true. A
/// request must send its headers within 10 s, as the Go metrics server demands.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    endpoints: Endpoints,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a transient error: back off instead of spinning.
                    tracing::warn!("metrics listener: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown_requested(&mut shutdown) => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (method, uri) = (req.method().clone(), req.uri().clone());
                    Ok::<_, std::convert::Infallible>(
                        route(&method, uri.path(), uri.query(), &metrics, endpoints).await,
                    )
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

/// Resolves once shutdown was requested (the watch guard is dropped before returning, so the
/// future stays `Send`).
async fn shutdown_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // An error means the sender is gone: the daemon is exiting anyway.
    let _ = rx.wait_for(|s| *s).await;
}

type Body = http_body_util::Full<bytes::Bytes>;

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Body::new(body.into()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn route(
    method: &hyper::Method,
    path: &str,
    query: Option<&str>,
    metrics: &Metrics,
    endpoints: Endpoints,
) -> hyper::Response<Body> {
    if method != hyper::Method::GET && method != hyper::Method::HEAD {
        return reply(405, "text/plain; charset=utf-8", b"Method not allowed\n".to_vec());
    }
    match path {
        "/metrics" => reply(200, prometheus::TEXT_FORMAT, metrics.render()),
        "/debug/state" if endpoints.debug => {
            reply(200, "application/json", serde_json::to_vec_pretty(&debug_state(metrics)).unwrap_or_default())
        }
        p if endpoints.debug && (p == "/debug/pprof" || p.starts_with("/debug/pprof/")) => {
            let answer = crate::profiling::answer(p, query).await;
            let mut response = reply(answer.status, answer.content_type, answer.body);
            if answer.attachment {
                response.headers_mut().insert(
                    hyper::header::CONTENT_DISPOSITION,
                    hyper::header::HeaderValue::from_static("attachment; filename=\"profile\""),
                );
            }
            response
        }
        _ => reply(404, "text/plain; charset=utf-8", b"404 page not found\n".to_vec()),
    }
}

/// A snapshot of what an operator asks when the daemon misbehaves: the async runtime's tasks,
/// the process's threads, descriptors and memory, and the requests being handled.
pub fn debug_state(metrics: &Metrics) -> serde_json::Value {
    let runtime = tokio::runtime::Handle::try_current().ok().map(|h| {
        let m = h.metrics();
        serde_json::json!({"workers": m.num_workers(), "aliveTasks": m.num_alive_tasks(), "globalQueueDepth": m.global_queue_depth()})
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
    };
    let descriptors = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    serde_json::json!({
        "runtime": runtime,
        "threads": field("Threads:"),
        "residentMemory": field("VmRSS:"),
        "peakResidentMemory": field("VmHWM:"),
        "openDescriptors": descriptors,
        "requestsInFlight": metrics.requests_in_flight.get(),
    })
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_listener_serves_metrics_and_debug_state() {
        let metrics = std::sync::Arc::new(Metrics::new());
        metrics.observe_request("/healthz", 200, "GET");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve(listener, metrics, Endpoints { debug: true }, rx));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let scrape = get("/metrics").await;
        assert!(scrape.starts_with("HTTP/1.1 200"), "{scrape}");
        assert!(scrape.contains("multus_server_request_total"), "{scrape}");
        assert!(scrape.contains("process_resident_memory_bytes"), "{scrape}");
        let state = get("/debug/state").await;
        assert!(state.contains("\"openDescriptors\""), "{state}");
        assert!(get("/debug/pprof/heap").await.starts_with("HTTP/1.1 501"));
        let index = get("/debug/pprof/").await;
        assert!(index.starts_with("HTTP/1.1 200") && index.contains("/debug/pprof/profile"), "{index}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
        server.await.unwrap();
    }

    #[test]
    fn the_go_counter_keeps_its_name_and_labels() {
        let m = Metrics::new();
        m.observe_request("/cni", 200, "POST");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains(r#"multus_server_request_total{code="200",handler="/cni",method="post"} 1"#), "{text}");
    }

    #[test]
    fn delegate_failures_are_counted_with_bounded_labels() {
        let m = Metrics::new();
        m.observe_delegate("ADD", "bridge", "default/net1", Duration::from_millis(3), false);
        m.observe_delegate("ADD", "bridge", "default/net1", Duration::from_millis(3), true);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"multus_delegate_failures_total{network="default/net1",plugin="bridge",verb="ADD"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"multus_delegate_duration_seconds_count{network="default/net1",plugin="bridge",verb="ADD"} 2"#
        ));
    }
}
