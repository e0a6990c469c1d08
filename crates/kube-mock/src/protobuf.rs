//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//!
//! client-go writes core types as protobuf: the 4-byte magic `k8s\0`, then a `runtime.Unknown`
//! envelope whose `raw` field holds the typed message. Only the types a Multus daemon and
//! kubectl's CSR commands write (core/v1 Pod and Event, certificates.k8s.io/v1
//! CertificateSigningRequest) are decoded; they are converted to the JSON the real server would
//! store, with Go's `omitempty` rules (empty strings, empty maps and lists are left out).

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::authentication::v1 as authentication;
use k8s_pb::api::certificates::v1 as certificates;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

/// The four bytes every Kubernetes protobuf body starts with.
pub const PROTOBUF_MAGIC: &[u8; 4] = b"k8s\0";

/// Why a protobuf body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with [`PROTOBUF_MAGIC`].
    #[error("protobuf body does not start with the k8s magic prefix")]
    MissingMagic,
    /// A message could not be decoded.
    #[error("malformed protobuf {what}: {message}")]
    Malformed {
        /// Which message (envelope, Pod, …).
        what: &'static str,
        /// The decoder's complaint.
        message: String,
    },
    /// A kind the mock has no protobuf mapping for.
    #[error(
        "protobuf bodies are accepted only for core/v1 Pod and Event, certificates.k8s.io/v1 CertificateSigningRequest, authentication.k8s.io/v1 TokenRequest and meta.k8s.io/v1 DeleteOptions, got {api_version}/{kind}"
    )]
    UnsupportedKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// A `contentEncoding` other than none.
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedEncoding(String),
}

/// The type carried by a protobuf envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMeta {
    /// `apiVersion` of the wrapped object.
    pub api_version: String,
    /// `kind` of the wrapped object.
    pub kind: String,
}

/// Unwraps the envelope: type meta and the raw typed message.
pub fn decode_envelope(body: &[u8]) -> Result<(TypeMeta, Vec<u8>), ProtobufError> {
    let payload = body.strip_prefix(PROTOBUF_MAGIC.as_slice()).ok_or(ProtobufError::MissingMagic)?;
    let unknown = Unknown::decode(payload)
        .map_err(|e| ProtobufError::Malformed { what: "runtime.Unknown envelope", message: e.to_string() })?;
    let encoding = unknown.content_encoding.unwrap_or_default();
    if !encoding.is_empty() {
        return Err(ProtobufError::UnsupportedEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    Ok((
        TypeMeta { api_version: type_meta.api_version.unwrap_or_default(), kind: type_meta.kind.unwrap_or_default() },
        unknown.raw.unwrap_or_default(),
    ))
}

/// Decodes a protobuf `meta.k8s.io/v1` DeleteOptions body (client-go sends one with every
/// DELETE when it speaks protobuf) to its JSON form.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ProtobufError> {
    let (type_meta, raw) = decode_envelope(body)?;
    if type_meta.kind != "DeleteOptions" {
        return Err(ProtobufError::UnsupportedKind { api_version: type_meta.api_version, kind: type_meta.kind });
    }
    let options = meta::DeleteOptions::decode(raw.as_slice())
        .map_err(|e| ProtobufError::Malformed { what: "DeleteOptions", message: e.to_string() })?;
    let mut out = json!({});
    if let Some(grace) = options.grace_period_seconds {
        out["gracePeriodSeconds"] = json!(grace);
    }
    if let Some(orphan) = options.orphan_dependents {
        out["orphanDependents"] = json!(orphan);
    }
    if let Some(policy) = options.propagation_policy {
        out["propagationPolicy"] = json!(policy);
    }
    if let Some(pre) = options.preconditions {
        let mut preconditions = json!({});
        if let Some(uid) = pre.uid {
            preconditions["uid"] = json!(uid);
        }
        if let Some(rv) = pre.resource_version {
            preconditions["resourceVersion"] = json!(rv);
        }
        out["preconditions"] = preconditions;
    }
    if !options.dry_run.is_empty() {
        out["dryRun"] = json!(options.dry_run);
    }
    Ok(out)
}

/// Decodes a protobuf body to the JSON object it represents.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let (type_meta, raw) = decode_envelope(body)?;
    match (type_meta.api_version.as_str(), type_meta.kind.as_str()) {
        ("v1", "Pod") => {
            let pod = core::Pod::decode(raw.as_slice())
                .map_err(|e| ProtobufError::Malformed { what: "Pod", message: e.to_string() })?;
            Ok(pod_to_json(&pod))
        }
        ("v1", "Event") => {
            let event = core::Event::decode(raw.as_slice())
                .map_err(|e| ProtobufError::Malformed { what: "Event", message: e.to_string() })?;
            Ok(event_to_json(&event))
        }
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => {
            let csr = certificates::CertificateSigningRequest::decode(raw.as_slice())
                .map_err(|e| ProtobufError::Malformed { what: "CertificateSigningRequest", message: e.to_string() })?;
            Ok(csr_to_json(&csr))
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            let request = authentication::TokenRequest::decode(raw.as_slice())
                .map_err(|e| ProtobufError::Malformed { what: "TokenRequest", message: e.to_string() })?;
            Ok(token_request_to_json(&request))
        }
        _ => Err(ProtobufError::UnsupportedKind { api_version: type_meta.api_version, kind: type_meta.kind }),
    }
}

/// An `authentication.k8s.io/v1` TokenRequest (kubectl's `create token`) as JSON.
pub fn token_request_to_json(request: &authentication::TokenRequest) -> Value {
    let spec = request.spec.as_ref().map(|s| {
        let bound = s.bound_object_ref.as_ref().map(|b| {
            Obj::default()
                .str("kind", &b.kind)
                .str("apiVersion", &b.api_version)
                .str("name", &b.name)
                .str("uid", &b.u_id)
                .done()
        });
        Obj::default()
            .strings("audiences", &s.audiences)
            .int("expirationSeconds", s.expiration_seconds)
            .value("boundObjectRef", bound.unwrap_or(Value::Null))
            .done()
    });
    Obj::default()
        .value("apiVersion", json!("authentication.k8s.io/v1"))
        .value("kind", json!("TokenRequest"))
        .value("metadata", object_meta(&request.metadata))
        .value("spec", spec.unwrap_or(Value::Null))
        .done()
}

/// A JSON object under construction that follows Go's `omitempty`.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn str(mut self, key: &str, value: &Option<String>) -> Self {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    /// A string field without omitempty in Go (always present when set).
    fn str_always(mut self, key: &str, value: &Option<String>) -> Self {
        self.0.insert(key.into(), json!(value.clone().unwrap_or_default()));
        self
    }
    fn bool(mut self, key: &str, value: Option<bool>) -> Self {
        if let Some(v) = value {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn int(mut self, key: &str, value: Option<i64>) -> Self {
        if let Some(v) = value {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn nonzero(mut self, key: &str, value: Option<i64>) -> Self {
        if let Some(v) = value.filter(|v| *v != 0) {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn value(mut self, key: &str, value: Value) -> Self {
        let empty = match &value {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            self.0.insert(key.into(), value);
        }
        self
    }
    fn strings(self, key: &str, values: &[String]) -> Self {
        self.value(key, json!(values))
    }
    fn map(self, key: &str, values: &BTreeMap<String, String>) -> Self {
        self.value(key, json!(values))
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn list<T>(items: &[T], convert: impl Fn(&T) -> Value) -> Value {
    Value::Array(items.iter().map(convert).collect())
}

fn time(t: &Option<meta::Time>) -> Value {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds.unwrap_or(0), 0))
        .map(|dt| json!(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
        .unwrap_or(Value::Null)
}

fn micro_time(t: &Option<meta::MicroTime>) -> Value {
    t.as_ref()
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds.unwrap_or(0), u32::try_from(t.nanos.unwrap_or(0)).unwrap_or(0))
        })
        .map(|dt| json!(dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()))
        .unwrap_or(Value::Null)
}

fn object_meta(m: &Option<meta::ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    Obj::default()
        .str("name", &m.name)
        .str("generateName", &m.generate_name)
        .str("namespace", &m.namespace)
        .str("uid", &m.uid)
        .str("resourceVersion", &m.resource_version)
        .nonzero("generation", m.generation)
        .value("creationTimestamp", time(&m.creation_timestamp))
        .value("deletionTimestamp", time(&m.deletion_timestamp))
        .int("deletionGracePeriodSeconds", m.deletion_grace_period_seconds)
        .map("labels", &m.labels)
        .map("annotations", &m.annotations)
        .value(
            "ownerReferences",
            list(&m.owner_references, |o| {
                Obj::default()
                    .str_always("apiVersion", &o.api_version)
                    .str_always("kind", &o.kind)
                    .str_always("name", &o.name)
                    .str_always("uid", &o.uid)
                    .bool("controller", o.controller)
                    .bool("blockOwnerDeletion", o.block_owner_deletion)
                    .done()
            }),
        )
        .strings("finalizers", &m.finalizers)
        .done()
}

fn object_reference(r: &Option<core::ObjectReference>) -> Value {
    let Some(r) = r else { return Value::Null };
    Obj::default()
        .str("kind", &r.kind)
        .str("namespace", &r.namespace)
        .str("name", &r.name)
        .str("uid", &r.uid)
        .str("apiVersion", &r.api_version)
        .str("resourceVersion", &r.resource_version)
        .str("fieldPath", &r.field_path)
        .done()
}

/// Event to JSON (what kubelets and the daemon's recorder send).
pub fn event_to_json(e: &core::Event) -> Value {
    let source = e
        .source
        .as_ref()
        .map(|s| Obj::default().str("component", &s.component).str("host", &s.host).done())
        .unwrap_or(Value::Null);
    let series = e
        .series
        .as_ref()
        .map(|s| {
            Obj::default()
                .int("count", s.count.map(i64::from))
                .value("lastObservedTime", micro_time(&s.last_observed_time))
                .done()
        })
        .unwrap_or(Value::Null);
    Obj::default()
        .value("apiVersion", json!("v1"))
        .value("kind", json!("Event"))
        .value("metadata", object_meta(&e.metadata))
        .value("involvedObject", object_reference(&e.involved_object))
        .str("reason", &e.reason)
        .str("message", &e.message)
        .value("source", source)
        .value("firstTimestamp", time(&e.first_timestamp))
        .value("lastTimestamp", time(&e.last_timestamp))
        .nonzero("count", e.count.map(i64::from))
        .str("type", &e.r#type)
        .value("eventTime", micro_time(&e.event_time))
        .value("series", series)
        .str("action", &e.action)
        .value("related", object_reference(&e.related))
        .str("reportingComponent", &e.reporting_component)
        .str("reportingInstance", &e.reporting_instance)
        .done()
}

fn container(c: &core::Container) -> Value {
    Obj::default()
        .str_always("name", &c.name)
        .str("image", &c.image)
        .strings("command", &c.command)
        .strings("args", &c.args)
        .str("workingDir", &c.working_dir)
        .value(
            "ports",
            list(&c.ports, |p| {
                Obj::default()
                    .str("name", &p.name)
                    .nonzero("hostPort", p.host_port.map(i64::from))
                    .int("containerPort", p.container_port.map(i64::from))
                    .str("protocol", &p.protocol)
                    .str("hostIP", &p.host_ip)
                    .done()
            }),
        )
        .value("env", list(&c.env, |e| Obj::default().str_always("name", &e.name).str("value", &e.value).done()))
        .value(
            "volumeMounts",
            list(&c.volume_mounts, |m| {
                Obj::default()
                    .str_always("name", &m.name)
                    .bool("readOnly", m.read_only.filter(|r| *r))
                    .str_always("mountPath", &m.mount_path)
                    .str("subPath", &m.sub_path)
                    .done()
            }),
        )
        .str("terminationMessagePath", &c.termination_message_path)
        .str("terminationMessagePolicy", &c.termination_message_policy)
        .str("imagePullPolicy", &c.image_pull_policy)
        .done()
}

fn pod_spec(s: &Option<core::PodSpec>) -> Value {
    let Some(s) = s else { return Value::Null };
    Obj::default()
        .value("initContainers", list(&s.init_containers, container))
        .value("containers", list(&s.containers, container))
        .str("restartPolicy", &s.restart_policy)
        .int("terminationGracePeriodSeconds", s.termination_grace_period_seconds)
        .int("activeDeadlineSeconds", s.active_deadline_seconds)
        .str("dnsPolicy", &s.dns_policy)
        .map("nodeSelector", &s.node_selector)
        .str("serviceAccountName", &s.service_account_name)
        .str("serviceAccount", &s.service_account)
        .bool("automountServiceAccountToken", s.automount_service_account_token)
        .str("nodeName", &s.node_name)
        .bool("hostNetwork", s.host_network.filter(|h| *h))
        .bool("hostPID", s.host_pid.filter(|h| *h))
        .bool("hostIPC", s.host_ipc.filter(|h| *h))
        .value("imagePullSecrets", list(&s.image_pull_secrets, |r| Obj::default().str("name", &r.name).done()))
        .str("hostname", &s.hostname)
        .str("subdomain", &s.subdomain)
        .str("schedulerName", &s.scheduler_name)
        .value(
            "tolerations",
            list(&s.tolerations, |t| {
                Obj::default()
                    .str("key", &t.key)
                    .str("operator", &t.operator)
                    .str("value", &t.value)
                    .str("effect", &t.effect)
                    .int("tolerationSeconds", t.toleration_seconds)
                    .done()
            }),
        )
        .str("priorityClassName", &s.priority_class_name)
        .int("priority", s.priority.map(i64::from))
        .str("runtimeClassName", &s.runtime_class_name)
        .bool("enableServiceLinks", s.enable_service_links)
        .str("preemptionPolicy", &s.preemption_policy)
        .done()
}

fn container_state(s: &Option<core::ContainerState>) -> Value {
    let Some(s) = s else { return Value::Null };
    let waiting = s.waiting.as_ref().map(|w| Obj::default().str("reason", &w.reason).str("message", &w.message).done());
    let running = s.running.as_ref().map(|r| Obj::default().value("startedAt", time(&r.started_at)).done());
    let terminated = s.terminated.as_ref().map(|t| {
        Obj::default()
            .int("exitCode", Some(i64::from(t.exit_code.unwrap_or(0))))
            .nonzero("signal", t.signal.map(i64::from))
            .str("reason", &t.reason)
            .str("message", &t.message)
            .value("startedAt", time(&t.started_at))
            .value("finishedAt", time(&t.finished_at))
            .str("containerID", &t.container_id)
            .done()
    });
    let mut out = Map::new();
    // An empty state object (`{}`) is still meaningful, so keep present sub-states as written.
    if let Some(w) = waiting {
        out.insert("waiting".into(), w);
    }
    if let Some(r) = running {
        out.insert("running".into(), r);
    }
    if let Some(t) = terminated {
        out.insert("terminated".into(), t);
    }
    Value::Object(out)
}

fn container_status(c: &core::ContainerStatus) -> Value {
    Obj::default()
        .str_always("name", &c.name)
        .value("state", container_state(&c.state))
        .value("lastState", container_state(&c.last_state))
        .value("ready", json!(c.ready.unwrap_or(false)))
        .value("restartCount", json!(c.restart_count.unwrap_or(0)))
        .str_always("image", &c.image)
        .str_always("imageID", &c.image_id)
        .str("containerID", &c.container_id)
        .bool("started", c.started)
        .done()
}

fn pod_status(s: &Option<core::PodStatus>) -> Value {
    let Some(s) = s else { return json!({}) };
    Obj::default()
        .nonzero("observedGeneration", s.observed_generation)
        .str("phase", &s.phase)
        .value(
            "conditions",
            list(&s.conditions, |c| {
                Obj::default()
                    .str_always("type", &c.r#type)
                    .nonzero("observedGeneration", c.observed_generation)
                    .str_always("status", &c.status)
                    .value("lastProbeTime", time(&c.last_probe_time))
                    .value("lastTransitionTime", time(&c.last_transition_time))
                    .str("reason", &c.reason)
                    .str("message", &c.message)
                    .done()
            }),
        )
        .str("message", &s.message)
        .str("reason", &s.reason)
        .str("nominatedNodeName", &s.nominated_node_name)
        .str("hostIP", &s.host_ip)
        .value("hostIPs", list(&s.host_ips, |ip| Obj::default().str("ip", &ip.ip).done()))
        .str("podIP", &s.pod_ip)
        .value("podIPs", list(&s.pod_ips, |ip| Obj::default().str("ip", &ip.ip).done()))
        .value("startTime", time(&s.start_time))
        .value("initContainerStatuses", list(&s.init_container_statuses, container_status))
        .value("containerStatuses", list(&s.container_statuses, container_status))
        .str("qosClass", &s.qos_class)
        .value("ephemeralContainerStatuses", list(&s.ephemeral_container_statuses, container_status))
        .str("resize", &s.resize)
        .done()
}

/// Pod to JSON. Metadata and status are complete for what kubelets and CNI plugins write;
/// the spec covers the commonly used fields (volumes, probes, affinity and security
/// contexts are not mapped).
pub fn pod_to_json(p: &core::Pod) -> Value {
    Obj::default()
        .value("apiVersion", json!("v1"))
        .value("kind", json!("Pod"))
        .value("metadata", object_meta(&p.metadata))
        .value("spec", pod_spec(&p.spec))
        .value("status", pod_status(&p.status))
        .done()
}

/// `[]byte` fields are base64 strings in JSON.
fn bytes(value: &Option<Vec<u8>>) -> Value {
    match value {
        Some(b) if !b.is_empty() => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        _ => Value::Null,
    }
}

/// CertificateSigningRequest to JSON, as client-go's certificate manager sends it.
pub fn csr_to_json(c: &certificates::CertificateSigningRequest) -> Value {
    let spec = c.spec.as_ref().map(|s| {
        let extra: Map<String, Value> = s.extra.iter().map(|(k, v)| (k.clone(), json!(v.items))).collect();
        Obj::default()
            .value("request", bytes(&s.request))
            .str("signerName", &s.signer_name)
            .int("expirationSeconds", s.expiration_seconds.map(i64::from))
            .strings("usages", &s.usages)
            .str("username", &s.username)
            .str("uid", &s.uid)
            .strings("groups", &s.groups)
            .value("extra", Value::Object(extra))
            .done()
    });
    let status = c.status.as_ref().map(|s| {
        Obj::default()
            .value(
                "conditions",
                list(&s.conditions, |c| {
                    Obj::default()
                        .str_always("type", &c.r#type)
                        .str_always("status", &c.status)
                        .str("reason", &c.reason)
                        .str("message", &c.message)
                        .value("lastUpdateTime", time(&c.last_update_time))
                        .value("lastTransitionTime", time(&c.last_transition_time))
                        .done()
                }),
            )
            .value("certificate", bytes(&s.certificate))
            .done()
    });
    Obj::default()
        .value("apiVersion", json!("certificates.k8s.io/v1"))
        .value("kind", json!("CertificateSigningRequest"))
        .value("metadata", object_meta(&c.metadata))
        .value("spec", spec.unwrap_or(Value::Null))
        .value("status", status.unwrap_or(Value::Null))
        .done()
}

#[cfg(test)]
mod tests;
