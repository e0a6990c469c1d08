//! Executes parsed resource requests against the store, with the real API server's rules
//! for subresources, preconditions and response shapes.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::discovery::table;
use crate::patch::{PatchKind, apply_patch};
use crate::request::{MetaVersion, Output, ResourceRequest, Verb};
use crate::resources::ResourceDef;
use crate::status::{ApiError, success_status};
use crate::store::{DeleteOptions, Store};

/// What to answer.
pub enum Reply {
    /// A JSON body with this status code.
    Json {
        /// HTTP status code.
        code: u16,
        /// The body (an object, a list, a Status or a Table).
        body: Value,
    },
    /// Start a watch stream; the server layer drives it.
    Watch,
}

fn ok(body: Value) -> Reply {
    Reply::Json { code: 200, body }
}

/// Decodes a write body (JSON, YAML, or protobuf for Pod, Event and CertificateSigningRequest)
/// into a JSON object.
pub fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let value: Value = match essence {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("the YAML body could not be decoded: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode_object(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind { .. }
            | crate::protobuf::ProtobufError::UnsupportedEncoding(_) => {
                ApiError::new(415, "UnsupportedMediaType", format!("{e}; send JSON instead"))
            }
            other => ApiError::bad_request(other.to_string()),
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(value)
}

/// The journal's view of a body: decoded where possible, never failing.
pub fn body_for_journal(content_type: &str, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.ends_with("+json") || essence == "application/json" {
        if let Ok(v) = serde_json::from_slice(body) {
            return Some(v);
        }
    } else if let Ok(v) = decode_body(content_type, body) {
        return Some(v);
    }
    Some(json!({"base64": base64::engine::general_purpose::STANDARD.encode(body)}))
}

fn check_body_identity(req: &ResourceRequest, body: &Value) -> Result<(), ApiError> {
    let def = &req.def;
    if let Some(api_version) = body["apiVersion"].as_str()
        && !api_version.is_empty()
        && api_version != def.api_version()
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    if let Some(kind) = body["kind"].as_str()
        && !kind.is_empty()
        && kind != def.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            def.kind
        )));
    }
    if let (Some(path_ns), Some(body_ns)) = (&req.namespace, body["metadata"]["namespace"].as_str())
        && !body_ns.is_empty()
        && body_ns != path_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The new object of an update, following the status-subresource split: the main resource
/// keeps the stored status; the status subresource takes only status, labels and annotations.
fn merge_for_update(def: &ResourceDef, subresource: Option<&str>, current: &Value, mut incoming: Value) -> Value {
    match subresource {
        Some("status") => {
            let mut next = current.clone();
            next["status"] = incoming.get("status").cloned().unwrap_or(Value::Null);
            if next["status"].is_null()
                && let Some(o) = next.as_object_mut()
            {
                o.remove("status");
            }
            for field in ["labels", "annotations"] {
                match incoming["metadata"].get(field) {
                    Some(v) if !v.is_null() => next["metadata"][field] = v.clone(),
                    _ => {
                        if let Some(m) = next["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            next["metadata"]["resourceVersion"] = incoming["metadata"]["resourceVersion"].clone();
            if next["metadata"]["resourceVersion"].is_null()
                && let Some(m) = next["metadata"].as_object_mut()
            {
                m.remove("resourceVersion");
            }
            next
        }
        _ => {
            if def.status_subresource {
                match current.get("status") {
                    Some(status) => incoming["status"] = status.clone(),
                    None => {
                        if let Some(o) = incoming.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            incoming
        }
    }
}

/// The new object of an update, by the rules of the resource.
fn merge_update(
    def: &ResourceDef,
    subresource: Option<&str>,
    current: &Value,
    incoming: Value,
) -> Result<Value, ApiError> {
    if crate::csr::is_csr(def) {
        crate::csr::merge_update(subresource, current, incoming)
    } else {
        Ok(merge_for_update(def, subresource, current, incoming))
    }
}

fn namespace_of(req: &ResourceRequest) -> String {
    req.namespace.clone().unwrap_or_default()
}

fn list_kind(def: &ResourceDef) -> String {
    format!("{}List", def.kind)
}

/// Continue tokens carry the (namespace, name) key of the last item returned.
fn encode_continue(namespace: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([namespace, name]).to_string())
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let invalid = || ApiError::bad_request("continue key is not valid");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let (ns, name): (String, String) = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok((ns, name))
}

fn object_key(object: &Value) -> (String, String) {
    let m = &object["metadata"];
    (m["namespace"].as_str().unwrap_or_default().to_string(), m["name"].as_str().unwrap_or_default().to_string())
}

/// Objects matching the request's namespace and selectors, in key order.
fn selected(store: &Store, req: &ResourceRequest) -> (Vec<Arc<Value>>, u64) {
    let (items, rv) = store.list(&req.def.gvr(), req.namespace.as_deref());
    let opts = &req.options;
    let items =
        items.into_iter().filter(|o| opts.label_selector.matches(o) && opts.field_selector.matches(o)).collect();
    (items, rv)
}

fn list(store: &Store, req: &ResourceRequest) -> Result<Value, ApiError> {
    if let Output::PartialObjectMetadata(_) = req.output {
        return Err(not_acceptable(format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({})",
            go_type(&req.def, true)
        )));
    }
    let (items, rv) = selected(store, req);
    let start = req.options.continue_token.as_deref().map(decode_continue).transpose()?;
    let mut remaining = items.into_iter().filter(|o| start.as_ref().is_none_or(|s| object_key(o) > *s)).peekable();
    let limit = req.options.limit.unwrap_or(usize::MAX);
    let page: Vec<Arc<Value>> = remaining.by_ref().take(limit).collect();
    let rest = remaining.count();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if rest > 0
        && let Some(last) = page.last()
    {
        let (ns, name) = object_key(last);
        metadata["continue"] = json!(encode_continue(&ns, &name));
        metadata["remainingItemCount"] = json!(rest);
    }
    match req.output {
        Output::Table => Ok(table(&req.def, page.iter().map(|o| &**o), metadata, req.include_object)),
        Output::PartialObjectMetadataList(version) => {
            let items: Vec<Value> = page.iter().map(|o| partial_object_metadata(o, version)).collect();
            Ok(
                json!({"kind": "PartialObjectMetadataList", "apiVersion": version.api_version(), "metadata": metadata, "items": items}),
            )
        }
        Output::Object | Output::PartialObjectMetadata(_) => {
            let items: Vec<&Value> = page.iter().map(|o| &**o).collect();
            Ok(
                json!({"kind": list_kind(&req.def), "apiVersion": req.def.api_version(), "metadata": metadata, "items": items}),
            )
        }
    }
}

/// An object's `meta.k8s.io` `PartialObjectMetadata`: kind, apiVersion and its metadata.
pub fn partial_object_metadata(object: &Value, version: MetaVersion) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": version.api_version(), "metadata": object["metadata"]})
}

/// The Go type the real server names in its 406 messages.
fn go_type(def: &ResourceDef, list: bool) -> String {
    let suffix = if list { "List" } else { "" };
    if def.custom {
        format!("*unstructured.Unstructured{suffix}")
    } else {
        format!("*{}.{}{suffix}", def.version, def.kind)
    }
}

fn not_acceptable(message: String) -> ApiError {
    ApiError::new(406, "NotAcceptable", message)
}

/// One object in the form the client asked for (Status answers stay as they are).
fn present(req: &ResourceRequest, object: Value) -> Result<Value, ApiError> {
    if object["kind"] == "Status" && object["apiVersion"] == "v1" {
        return Ok(object);
    }
    match req.output {
        Output::Object => Ok(object),
        Output::Table => {
            let rv = object["metadata"]["resourceVersion"].clone();
            Ok(table(&req.def, [&object], json!({"resourceVersion": rv}), req.include_object))
        }
        Output::PartialObjectMetadata(version) => Ok(partial_object_metadata(&object, version)),
        Output::PartialObjectMetadataList(_) => Err(not_acceptable(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            go_type(&req.def, false)
        ))),
    }
}

/// The DeleteOptions of a DELETE: its body (JSON, or protobuf from client-go) when there is
/// one, else the query parameters.
fn delete_options(req: &ResourceRequest, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(req.delete_options.clone());
    }
    let value = if body.starts_with(crate::protobuf::PROTOBUF_MAGIC) {
        crate::protobuf::decode_delete_options(body).map_err(|e| ApiError::bad_request(e.to_string()))?
    } else {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the DeleteOptions body could not be decoded as JSON: {e}")))?;
        value
    };
    DeleteOptions::from_json(&value)
}

/// Resources whose DELETE answers with the object rather than a Status (ReturnDeletedObject).
fn returns_deleted_object(def: &ResourceDef) -> bool {
    def.custom || (def.group.is_empty() && def.plural == "pods")
}

/// Who sends a request, and the server settings admission depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The authenticated user.
    pub user: UserInfo,
    /// Smallest `expirationSeconds` of a new CertificateSigningRequest.
    pub csr_min_expiration_seconds: i64,
}

impl Default for RequestContext {
    fn default() -> Self {
        Self {
            user: UserInfo::anonymous(),
            csr_min_expiration_seconds: crate::csr::CsrSettings::default().min_expiration_seconds,
        }
    }
}

/// Executes a resource request as an anonymous user. `body` is the raw request body and
/// `content_type` its type.
pub fn execute(store: &Store, req: &ResourceRequest, content_type: &str, body: &[u8]) -> Result<Reply, ApiError> {
    execute_as(store, req, content_type, body, &RequestContext::default())
}

/// Executes a resource request for the user in `context`.
pub fn execute_as(
    store: &Store,
    req: &ResourceRequest,
    content_type: &str,
    body: &[u8],
    context: &RequestContext,
) -> Result<Reply, ApiError> {
    if req.dry_run {
        return Err(ApiError::bad_request("dryRun is not supported by kube-mock"));
    }
    let def = &req.def;
    let gvr = def.gvr();
    let namespace = namespace_of(req);
    let name = req.name.clone().unwrap_or_default();
    let subresource = req.subresource.as_deref();
    match req.verb {
        Verb::Get => {
            let object = store.get(&gvr, &namespace, &name).ok_or_else(|| ApiError::not_found(&gvr, &name))?;
            Ok(ok(present(req, object)?))
        }
        Verb::List => Ok(ok(list(store, req)?)),
        Verb::Watch => {
            if let Output::PartialObjectMetadataList(_) = req.output {
                return Err(not_acceptable(format!(
                    "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
                    go_type(def, false)
                )));
            }
            Ok(Reply::Watch)
        }
        Verb::Create => {
            let mut object = decode_body(content_type, body)?;
            check_body_identity(req, &object)?;
            if crate::csr::is_csr(def) {
                crate::csr::admit_create(&mut object, &context.user, context.csr_min_expiration_seconds)?;
            }
            if def.namespaced && !store.namespace_exists(&namespace) {
                return Err(ApiError::not_found(&crate::resources::Gvr::new("", "v1", "namespaces"), &namespace));
            }
            let created = store.create_in(def, &namespace, object)?;
            Ok(Reply::Json { code: 201, body: present(req, created)? })
        }
        Verb::Update => {
            let incoming = decode_body(content_type, body)?;
            check_body_identity(req, &incoming)?;
            let update = store
                .modify_outcome(def, &namespace, &name, |current| merge_update(def, subresource, current, incoming))?;
            Ok(ok(present(req, update.object)?))
        }
        Verb::Patch(kind) => {
            match kind {
                PatchKind::Apply => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "server-side apply (application/apply-patch+yaml) is not supported by kube-mock; use kubectl apply without --server-side, or a merge, JSON or strategic merge patch",
                    ));
                }
                PatchKind::StrategicMerge if def.custom => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                _ => {}
            }
            let update = store.modify_outcome(def, &namespace, &name, |current| {
                let patched = apply_patch(kind, current, body).map_err(|e| match e {
                    crate::patch::PatchError::Syntax(m) => ApiError::bad_request(m),
                    crate::patch::PatchError::Apply(m) => ApiError::invalid(&gvr, &def.kind, &name, &m),
                })?;
                // A patch that does not mention resourceVersion must not trip the precondition.
                merge_update(def, subresource, current, patched)
            })?;
            Ok(ok(present(req, update.object)?))
        }
        Verb::Delete => {
            let options = delete_options(req, body)?;
            let deletion = store.delete(def, &namespace, &name, &options)?;
            // An object that stays (finalizers, grace period) is answered as it is now; a
            // removed one as the object for pods and custom resources, else as a Status.
            if deletion.removed && !returns_deleted_object(def) {
                Ok(ok(success_status(&gvr, &name, deletion.object["metadata"]["uid"].as_str())))
            } else {
                Ok(ok(present(req, deletion.object)?))
            }
        }
        Verb::DeleteCollection => {
            let options = delete_options(req, body)?;
            let (items, _) = selected(store, req);
            let mut deleted = Vec::new();
            for item in items {
                let (ns, item_name) = object_key(&item);
                if let Ok(deletion) = store.delete(def, &ns, &item_name, &options) {
                    deleted.push(deletion.object);
                }
            }
            let list = json!({
                "kind": list_kind(def),
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": store.resource_version().to_string()},
                "items": deleted
            });
            Ok(ok(list))
        }
    }
}

#[cfg(test)]
mod tests;
