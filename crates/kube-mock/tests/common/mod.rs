//! A small raw HTTP client for tests that need exact bytes, headers and status codes.

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    pub fn new(base: &str) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), base: base.to_string() }
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(format!("{}{}", self.base, path_and_query));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self.client.request(builder.body(Full::new(body.into())).unwrap()).await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        Reply { status, headers, body }
    }

    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.send("GET", path_and_query, &[], Bytes::new()).await
    }

    pub async fn json(&self, method: &str, path_and_query: &str, body: &Value) -> Reply {
        self.send(method, path_and_query, &[("content-type", "application/json")], body.to_string()).await
    }

    /// Opens a watch and returns its body for incremental reading.
    pub async fn open(&self, path_and_query: &str) -> (u16, hyper::body::Incoming) {
        let request =
            http::Request::get(format!("{}{}", self.base, path_and_query)).body(Full::new(Bytes::new())).unwrap();
        let response = self.client.request(request).await.expect("watch opened");
        (response.status().as_u16(), response.into_body())
    }
}

/// Reads newline-delimited watch events until `count` events arrived or the stream ended.
pub async fn read_events(body: &mut hyper::body::Incoming, count: usize) -> Vec<Value> {
    let mut buffer = Vec::new();
    let mut events = Vec::new();
    while events.len() < count {
        let frame = match tokio::time::timeout(std::time::Duration::from_secs(5), body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(_) => break,
            Err(_) => panic!("timed out waiting for watch events; got {events:?}"),
        };
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            events.push(serde_json::from_slice(&line).expect("watch event is JSON"));
        }
    }
    events
}

pub fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

pub fn fixture_seed() -> Vec<Value> {
    kube_mock::seed::load_path(&fixture("seed")).expect("fixtures")
}
