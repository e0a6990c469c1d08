//! The HTTP surface with exact status codes: watches, errors, faults, deny rules and the
//! admin API.

mod common;

use std::time::{Duration, Instant};

use common::{Http, fixture_seed, read_events};
use kube_mock::{DenyRule, MockApiServer, MockConfig, RequestMatcher};
use serde_json::{Value, json};

async fn start(cfg: MockConfig) -> (MockApiServer, Http) {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..cfg }).await.unwrap();
    let http = Http::new(&server.url());
    (server, http)
}

const POD1: &str = "/api/v1/namespaces/default/pods/pod1";

#[tokio::test]
async fn watch_initial_events_selectors_bookmarks_and_timeout() {
    let (_server, http) =
        start(MockConfig { bookmark_interval: Duration::from_millis(100), ..Default::default() }).await;
    let (status, mut body) = http
        .open("/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dnode1&labelSelector=!skip&allowWatchBookmarks=true&timeoutSeconds=2")
        .await;
    assert_eq!(status, 200);
    let initial = read_events(&mut body, 7).await;
    assert!(initial.iter().all(|e| e["type"] == "ADDED" && e["object"]["spec"]["nodeName"] == "node1"), "{initial:?}");

    // pod1 gets a label that excludes it: this watcher sees DELETED; then a BOOKMARK.
    let patch = http
        .send(
            "PATCH",
            POD1,
            &[("content-type", "application/merge-patch+json")],
            r#"{"metadata":{"labels":{"skip":"1"}}}"#,
        )
        .await;
    assert_eq!(patch.status, 200);
    let patched_rv = patch.json()["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
    let mut events = Vec::new();
    while !events.iter().any(|e: &serde_json::Value| {
        e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap() >= patched_rv
    }) {
        events.extend(read_events(&mut body, 1).await);
    }
    let changes: Vec<_> = events.iter().filter(|e| e["type"] != "BOOKMARK").collect();
    assert_eq!(changes.len(), 1, "{events:?}");
    assert_eq!(changes[0]["type"], "DELETED");
    assert_eq!(changes[0]["object"]["metadata"]["name"], "pod1");

    // timeoutSeconds ends the stream.
    let started = Instant::now();
    let rest = read_events(&mut body, 1000).await;
    assert!(rest.iter().all(|e| e["type"] == "BOOKMARK"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_expires_old_ones() {
    let (server, http) = start(MockConfig { watch_history: 3, ..Default::default() }).await;
    let before = server.store().resource_version();
    for i in 0..2 {
        server.store().create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm{i}"), "namespace": "default"}})).unwrap();
    }
    let (_, mut body) =
        http.open(&format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={before}")).await;
    let events = read_events(&mut body, 2).await;
    assert_eq!(
        events.iter().map(|e| e["object"]["metadata"]["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["cm0", "cm1"]
    );

    for i in 2..6 {
        server.store().create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm{i}"), "namespace": "default"}})).unwrap();
    }
    let (_, mut old) = http.open(&format!("/api/v1/configmaps?watch=true&resourceVersion={before}")).await;
    let error = read_events(&mut old, 1).await;
    assert_eq!(error[0]["type"], "ERROR");
    assert_eq!(error[0]["object"]["code"], 410);
    assert_eq!(error[0]["object"]["reason"], "Expired");

    // Injected expiry of an open watch.
    server.faults().expire_watches(Some(RequestMatcher::resource("configmaps")));
    let events = read_events(&mut body, 10).await;
    assert_eq!(events.last().unwrap()["object"]["reason"], "Expired");

    let bad = http.get("/api/v1/pods?watch=true&resourceVersion=abc").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn send_initial_events_ends_with_a_marked_bookmark() {
    let (_server, http) = start(MockConfig::default()).await;
    let (_, mut body) = http
        .open("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true")
        .await;
    let events = read_events(&mut body, 5).await;
    assert!(events[..4].iter().all(|e| e["type"] == "ADDED"));
    assert_eq!(events[4]["type"], "BOOKMARK");
    assert_eq!(events[4]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
}

#[tokio::test]
async fn errors_are_statuses_and_bad_input_never_panics() {
    let (server, http) = start(MockConfig::default()).await;
    let cases: &[(&str, &str, &str, &str, u16, &str)] = &[
        ("GET", "/api/v1/namespaces/default/pods/nope", "", "", 404, "NotFound"),
        (
            "GET",
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/x",
            "",
            "",
            404,
            "NotFound",
        ),
        ("GET", "/api/v1/pods?labelSelector=a%20in%20(b", "", "", 400, "BadRequest"),
        ("GET", "/api/v1/pods?fieldSelector=spec.bogus%3D1", "", "", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces/default/pods", "application/json", "{", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces/default/pods", "application/yaml", "a: [", 400, "BadRequest"),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            r#"{"metadata":{"name":"pod1"}}"#,
            409,
            "AlreadyExists",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            r#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
            "Invalid",
        ),
        ("PUT", POD1, "application/json", r#"{"metadata":{"name":"pod1","resourceVersion":"1"}}"#, 409, "Conflict"),
        ("PATCH", POD1, "application/apply-patch+yaml", "{}", 415, "UnsupportedMediaType"),
        ("PATCH", POD1, "application/merge-patch+json", "nope", 400, "BadRequest"),
        ("DELETE", "/api", "", "", 405, "MethodNotAllowed"),
        ("GET", "/api/v1/nothing-here", "", "", 404, "NotFound"),
        ("GET", "/%ff/..//x", "", "", 404, "NotFound"),
    ];
    for (method, path, content_type, body, code, reason) in cases {
        let reply = http.send(method, path, &[("content-type", content_type)], body.to_string()).await;
        assert_eq!(reply.status, *code, "{method} {path}: {:?}", String::from_utf8_lossy(&reply.body));
        let status = reply.json();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some(*reason)),
            "{method} {path}"
        );
        assert_eq!(status["code"], *code);
    }
    let nad = http.get("/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/x").await.json();
    assert_eq!(nad["message"], "network-attachment-definitions.k8s.cni.cncf.io \"x\" not found");
    assert_eq!(
        nad["details"],
        json!({"name": "x", "group": "k8s.cni.cncf.io", "kind": "network-attachment-definitions"})
    );
    // Still serving.
    assert_eq!(http.get(POD1).await.status, 200);
    drop(server);
}

#[tokio::test]
async fn faults_latency_failures_conflicts_and_deny_rules() {
    let (server, http) =
        start(MockConfig { deny: vec!["update:pods/status".parse::<DenyRule>().unwrap()], ..Default::default() }).await;
    let faults = server.faults();

    faults.fail_next(RequestMatcher::resource("events").and_verb("create"), 1, 429, None).unwrap();
    let event =
        json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "pod1"}, "reason": "Test"});
    let throttled = http.json("POST", "/api/v1/namespaces/default/events", &event).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(throttled.json()["reason"], "TooManyRequests");
    assert_eq!(http.json("POST", "/api/v1/namespaces/default/events", &event).await.status, 201);

    faults.conflict_next(RequestMatcher::resource("pods"), 1).unwrap();
    let merge = [("content-type", "application/merge-patch+json")];
    assert_eq!(http.send("PATCH", POD1, &merge, "{}").await.status, 409);
    assert_eq!(http.send("PATCH", POD1, &merge, "{}").await.status, 200);

    faults
        .add_latency(
            RequestMatcher { path: Some("pods/pod1$".into()), ..Default::default() },
            Duration::from_millis(150),
        )
        .unwrap();
    let started = Instant::now();
    assert_eq!(http.get(POD1).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    faults.clear();

    let pod = http.get(POD1).await.json();
    let denied = http.json("PUT", &format!("{POD1}/status"), &pod).await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        denied.json()["message"],
        "pods \"pod1\" is forbidden: User \"system:anonymous\" cannot update resource \"pods/status\" in API group \"\" in the namespace \"default\""
    );
    server.set_deny_rules(Vec::new());
    assert_eq!(http.json("PUT", &format!("{POD1}/status"), &pod).await.status, 200);
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let (_server, http) = start(MockConfig { token: Some("t0k3n".into()), ..Default::default() }).await;
    assert_eq!(http.get(POD1).await.status, 401);
    assert_eq!(http.send("GET", POD1, &[("authorization", "Bearer wrong")], "").await.status, 401);
    assert_eq!(http.send("GET", POD1, &[("authorization", "Bearer t0k3n")], "").await.status, 200);
    assert_eq!(http.get("/version").await.status, 200);
}

#[tokio::test]
async fn admin_api_controls_faults_journal_objects_and_listening() {
    let (server, http) = start(MockConfig::default()).await;
    http.get(POD1).await;
    let journal = http.get("/_mock/journal").await.json();
    assert!(journal.as_array().unwrap().iter().any(|e| e["path"] == POD1 && e["status"] == 200));
    assert_eq!(http.send("DELETE", "/_mock/journal", &[], "").await.status, 200);
    assert!(server.journal().is_empty());

    let rule = json!({"type": "fail", "matcher": {"verb": "get", "resource": "pods"}, "remaining": 1, "code": 503});
    assert_eq!(http.json("POST", "/_mock/faults", &rule).await.status, 200);
    assert_eq!(http.get(POD1).await.status, 503);
    assert_eq!(http.get(POD1).await.status, 200);
    assert_eq!(http.json("POST", "/_mock/faults", &json!({"type": "bogus"})).await.status, 400);

    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-admin", "namespace": "default"}});
    assert_eq!(http.json("POST", "/_mock/objects", &cm).await.status, 200);
    assert_eq!(http.get("/api/v1/namespaces/default/configmaps/via-admin").await.status, 200);
    let listed = http.get("/_mock/objects?apiVersion=v1&kind=ConfigMap&namespace=default").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let target = json!({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "via-admin"});
    assert_eq!(http.json("DELETE", "/_mock/objects", &target).await.status, 200);
    assert_eq!(http.get("/api/v1/namespaces/default/configmaps/via-admin").await.status, 404);

    // Down for 300 ms, then back on the same port.
    assert_eq!(http.json("POST", "/_mock/listening/stop", &json!({"millis": 300})).await.status, 200);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(Http::new(&server.url()).get(POD1).await.status, 200);
}

#[tokio::test]
async fn discovery_and_openapi_documents() {
    let (_server, http) = start(MockConfig::default()).await;
    let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let groups = http.send("GET", "/apis", &[("accept", aggregated)], "").await;
    assert_eq!(groups.headers["content-type"], "application/json");
    assert_eq!(groups.json()["kind"], "APIGroupList");
    let core = http.get("/api/v1").await.json();
    assert!(core["resources"].as_array().unwrap().iter().any(|r| r["name"] == "pods/status"));
    assert_eq!(http.get("/openapi/v2").await.status, 200);
    let protobuf_only = http
        .send("GET", "/openapi/v2", &[("accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")], "")
        .await;
    assert_eq!(protobuf_only.status, 406);
    let index = http.get("/openapi/v3").await.json();
    let url = index["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    assert_eq!(http.get(&url).await.json()["openapi"], "3.0.0");
}

#[test]
fn start_blocking_serves_without_a_caller_runtime() {
    use std::io::{Read, Write};
    let server = MockApiServer::start_blocking(MockConfig::default()).unwrap();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"GET /api/v1/namespaces/default HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"name\":\"default\""));
    drop(server);
}

#[tokio::test]
async fn admin_api_decides_csrs_sets_the_policy_and_issues_client_certificates() {
    use base64::Engine as _;
    let (_server, http) = start(MockConfig::default()).await;
    let request = |cn: &str| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
               "metadata": {"name": cn},
               "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                        "signerName": "kubernetes.io/kube-apiserver-client",
                        "usages": ["digital signature", "client auth"], "expirationSeconds": 3600}})
    };
    const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    for name in ["approve-me", "deny-me"] {
        assert_eq!(http.json("POST", CSRS, &request(name)).await.status, 201);
    }
    let csr = |name: &'static str| {
        let http = &http;
        async move { http.get(&format!("{CSRS}/{name}")).await.json() }
    };
    // Without a token the requester is anonymous.
    assert_eq!(csr("approve-me").await["spec"]["username"], "system:anonymous");
    assert_eq!(http.get("/_mock/csr/approval").await.json()["approval"], "manual");

    let approve = http.json("POST", "/_mock/csr/approve", &json!({"name": "approve-me", "message": "ok"})).await;
    assert_eq!(approve.status, 200);
    let deny = http.json("POST", "/_mock/csr/deny", &json!({"name": "deny-me", "message": "no"})).await;
    assert_eq!(deny.json()["status"]["conditions"][0]["type"], "Denied");
    assert_eq!(http.json("POST", "/_mock/csr/approve", &json!({"name": "deny-me"})).await.status, 409);
    assert_eq!(http.json("POST", "/_mock/csr/approve", &json!({"name": "nope"})).await.status, 404);
    let mut signed = Value::Null;
    for _ in 0..250 {
        signed = csr("approve-me").await;
        if signed["status"]["certificate"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(signed["status"]["certificate"].is_string(), "{signed}");
    assert!(csr("deny-me").await["status"].get("certificate").is_none());

    // `kubectl get csr` columns.
    let table = http.send("GET", CSRS, &[("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")], "").await.json();
    let columns: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]);
    let conditions: Vec<&Value> = table["rows"].as_array().unwrap().iter().map(|r| &r["cells"][5]).collect();
    assert_eq!(conditions, [&json!("Approved,Issued"), &json!("Denied")]);

    let policy = http.json("PUT", "/_mock/csr/approval", &json!({"approval": "approve-all"})).await;
    assert_eq!(policy.json()["approval"], "approve-all");
    assert_eq!(http.json("PUT", "/_mock/csr/approval", &json!({"approval": "sometimes"})).await.status, 400);

    let issued = http
        .json(
            "POST",
            "/_mock/client-certificates",
            &json!({"commonName": "system:node:node1", "organization": "system:nodes"}),
        )
        .await
        .json();
    assert!(issued["certificatePem"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(issued["keyPem"].as_str().unwrap().contains("PRIVATE KEY"));
    assert!(issued["kubeconfig"].as_str().unwrap().contains("client-certificate-data:"));
}
