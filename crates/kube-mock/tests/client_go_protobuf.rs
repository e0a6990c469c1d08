//! Replays the exact requests a Go client-go Multus daemon sent (captured in
//! tests/fixtures/client-go/*.jsonl): protobuf `POST events` and `PUT pods/status`.

mod common;

use base64::Engine as _;
use common::{Http, fixture, fixture_seed};
use kube_mock::{MockApiServer, MockConfig};
use prost::Message as _;
use serde_json::{Value, json};

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const CLIENT_GO_ACCEPT: &str = "application/vnd.kubernetes.protobuf,application/json";

fn captured(file: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(&format!("client-go/{file}")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Fields of `expected` that carry information (Go's zero values are not stored).
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match expected {
        Value::Object(map) => {
            for (key, value) in map {
                assert_contains(&actual[key], value, &format!("{path}.{key}"));
            }
        }
        Value::String(s) if s.is_empty() => {}
        Value::Number(n) if n.as_i64() == Some(0) => {}
        Value::Null => {}
        other => assert_eq!(&actual.clone(), other, "at {path}"),
    }
}

#[tokio::test]
async fn client_go_protobuf_writes_are_decoded_and_stored() {
    let server = MockApiServer::start(MockConfig::default()).await.unwrap();
    // Make pod1 get resourceVersion 1001, as in the capture, so the PUT's precondition holds.
    server.store().advance_resource_version(1000);
    let pod1 = fixture_seed().into_iter().find(|o| o["metadata"]["name"] == "pod1").unwrap();
    let stored = server.store().create(pod1).unwrap();
    assert_eq!(stored["metadata"]["resourceVersion"], "1001");
    let http = Http::new(&server.url());

    for request in captured("apiserver-requests-ADD-pod1.jsonl") {
        let body = match request["body"]["raw_b64"].as_str() {
            Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
            None => Vec::new(),
        };
        let path = format!("{}?{}", request["path"].as_str().unwrap(), request["rawquery"].as_str().unwrap());
        let method = request["method"].as_str().unwrap();
        let content_type = request["body"]["content_type"].as_str().unwrap_or_default();
        let reply =
            http.send(method, &path, &[("content-type", content_type), ("accept", CLIENT_GO_ACCEPT)], body).await;
        assert_eq!(reply.status, request["status"].as_u64().unwrap() as u16, "{method} {path}: {}", reply.json());
        assert_eq!(reply.headers["content-type"], "application/json");
        let answer = reply.json();
        let expected = &request["body"]["pb_decoded"];
        match method {
            "POST" => {
                assert_contains(&answer, expected, "event");
                let name = expected["metadata"]["name"].as_str().unwrap();
                let stored = server.store().get_kind("v1", "Event", "default", name).unwrap();
                assert_eq!(stored["involvedObject"]["uid"], "11111111-1111-1111-1111-111111111111");
                assert_eq!(stored["firstTimestamp"], expected["firstTimestamp"]);
                assert!(stored["metadata"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
            }
            "GET" => assert_eq!(answer["metadata"]["name"], "pod1"),
            "PUT" => {
                let stored = server.store().get_kind("v1", "Pod", "default", "pod1").unwrap();
                let annotations = &expected["metadata"]["annotations"];
                assert_eq!(stored["metadata"]["annotations"], *annotations);
                assert!(
                    stored["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
                        .as_str()
                        .unwrap()
                        .contains("192.168.100.2")
                );
                assert_eq!(stored["spec"]["nodeName"], "node1");
                assert_eq!(stored["spec"]["containers"][0]["image"], "busybox");
                assert_eq!(stored["status"]["phase"], "Pending");
                assert_eq!(answer["metadata"]["resourceVersion"], stored["metadata"]["resourceVersion"]);
            }
            other => panic!("unexpected captured method {other}"),
        }
    }

    // The journal shows the protobuf bodies decoded to JSON.
    let journal = server.journal();
    let put = journal.iter().find(|e| e.method == "PUT").unwrap();
    assert_eq!(put.content_type.as_deref(), Some(PROTOBUF));
    assert_eq!(put.body.as_ref().unwrap()["kind"], "Pod");
    assert_eq!(journal.iter().filter(|e| e.method == "POST" && e.status == 201).count(), 3);
}

#[tokio::test]
async fn client_go_startup_requests_are_answered() {
    let server = MockApiServer::start(MockConfig { seed: fixture_seed(), ..MockConfig::default() }).await.unwrap();
    let http = Http::new(&server.url());
    for request in captured("apiserver-requests-daemon-startup.jsonl") {
        let mut path = format!("{}?{}", request["path"].as_str().unwrap(), request["rawquery"].as_str().unwrap());
        let is_watch = request["watch"].as_bool() == Some(true);
        if is_watch {
            // Resume from "now" instead of the captured resourceVersion, and end quickly.
            path = path
                .replace("resourceVersion=1020", &format!("resourceVersion={}", server.store().resource_version()))
                .replace("timeoutSeconds=583", "timeoutSeconds=1")
                .replace("timeoutSeconds=516", "timeoutSeconds=1");
        }
        let reply = http.send("GET", &path, &[("accept", CLIENT_GO_ACCEPT)], bytes::Bytes::new()).await;
        assert_eq!(reply.status, 200, "{path}");
        if !is_watch {
            let list = reply.json();
            let items = list["items"].as_array().unwrap();
            assert!(!items.is_empty(), "{path}");
            if path.contains("spec.nodeName") {
                assert!(items.iter().all(|p| p["spec"]["nodeName"] == "node1"));
            }
        }
    }
}

#[tokio::test]
async fn protobuf_bodies_of_other_types_get_415() {
    let server = MockApiServer::start(MockConfig::default()).await.unwrap();
    let envelope = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(Vec::new()),
        content_encoding: None,
        content_type: None,
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(envelope.encode_to_vec());
    let reply = Http::new(&server.url())
        .send("POST", "/api/v1/namespaces/default/configmaps", &[("content-type", PROTOBUF)], body)
        .await;
    assert_eq!(reply.status, 415);
    let status = reply.json();
    assert_eq!(status["reason"], "UnsupportedMediaType");
    assert!(status["message"].as_str().unwrap().contains("ConfigMap"));
    let garbage = Http::new(&server.url())
        .send("POST", "/api/v1/namespaces/default/events", &[("content-type", PROTOBUF)], b"k8s\0\x0a\xff".to_vec())
        .await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["kind"], json!("Status"));
}
