//! `metav1.Status` errors, the only error shape Kubernetes clients understand.

use serde_json::{Value, json};

use crate::resources::Gvr;

/// An API error that is answered as a `metav1.Status` object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code, also the Status object's `code`.
    pub code: u16,
    /// Status `reason` (`NotFound`, `Conflict`, …).
    pub reason: String,
    /// Human-readable Status `message`.
    pub message: String,
    /// Boxed to keep `Result<_, ApiError>` small.
    pub details: Option<Box<Value>>,
    /// Seconds, sent as `Retry-After` and in `details.retryAfterSeconds`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with the given code, reason and message, without details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), message: message.into(), details: None, retry_after: None }
    }

    fn with_details(mut self, gvr: &Gvr, name: &str) -> Self {
        let mut details = json!({"name": name, "kind": gvr.resource});
        if !gvr.group.is_empty() {
            details["group"] = json!(gvr.group);
        }
        self.details = Some(Box::new(details));
        self
    }

    /// 404 NotFound for the object `name`.
    pub fn not_found(gvr: &Gvr, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", gvr.qualified_resource())).with_details(gvr, name)
    }

    /// 409 AlreadyExists for a create of an existing object.
    pub fn already_exists(gvr: &Gvr, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", gvr.qualified_resource()))
            .with_details(gvr, name)
    }

    /// 409 Conflict for a write with a stale `resourceVersion`.
    pub fn conflict(gvr: &Gvr, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                gvr.qualified_resource()
            ),
        )
        .with_details(gvr, name)
    }

    /// 422 Invalid, with the validation failure in `cause`.
    pub fn invalid(gvr: &Gvr, kind: &str, name: &str, cause: &str) -> Self {
        let qualified_kind = if gvr.group.is_empty() { kind.to_string() } else { format!("{kind}.{}", gvr.group) };
        Self::new(422, "Invalid", format!("{qualified_kind} \"{name}\" is invalid: {cause}")).with_details(gvr, name)
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 Expired (a watch or list from a compacted resourceVersion).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 401 Unauthorized (no or wrong credentials).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden, worded as for the multus service account.
    pub fn forbidden(verb: &str, gvr: &Gvr, namespace: Option<&str>) -> Self {
        let group = if gvr.group.is_empty() { "\"\"".to_string() } else { format!("\"{}\"", gvr.group) };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} is forbidden: User \"system:serviceaccount:kube-system:multus\" cannot {verb} resource \"{}\" in API group {group} {scope}",
                gvr.qualified_resource(),
                gvr.resource
            ),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType for a body in a format the server does not read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (Pod, Event, CertificateSigningRequest only); got {content_type:?}"
            ),
        )
    }

    /// 429 TooManyRequests, asking the client to retry after `retry_after` seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut err = Self::new(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        err.retry_after = Some(retry_after);
        err.details = Some(Box::new(json!({"retryAfterSeconds": retry_after})));
        err
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// A Status with the reason the real server uses for a given code, for injected faults.
    pub fn for_code(code: u16, message: Option<String>) -> Self {
        let (reason, default_message) = match code {
            400 => ("BadRequest", "the server rejected our request for an unknown reason"),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "forbidden"),
            404 => ("NotFound", "the server could not find the requested resource"),
            405 => ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
            409 => (
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            410 => ("Expired", "too old resource version"),
            415 => ("UnsupportedMediaType", "the body of the request was in an unknown format"),
            422 => ("Invalid", "the object is invalid"),
            429 => return Self::too_many_requests(1).with_message(message),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
            504 => ("Timeout", "the server was unable to return a response in the time allotted"),
            _ => ("InternalError", "an error on the server has prevented the request from succeeding"),
        };
        Self::new(code, reason, message.unwrap_or_else(|| default_message.to_string()))
    }

    fn with_message(mut self, message: Option<String>) -> Self {
        if let Some(message) = message {
            self.message = message;
        }
        self
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = (**details).clone();
        }
        status
    }
}

/// A success Status, as returned by some deletes.
pub fn success_status(gvr: &Gvr, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "kind": gvr.resource});
    if !gvr.group.is_empty() {
        details["group"] = json!(gvr.group);
    }
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_the_real_server() {
        let pods = Gvr::new("", "v1", "pods");
        let nads = Gvr::new("k8s.cni.cncf.io", "v1", "network-attachment-definitions");
        assert_eq!(ApiError::not_found(&pods, "pod1").message, "pods \"pod1\" not found");
        let status = ApiError::not_found(&nads, "x").to_status();
        assert_eq!(status["message"], "network-attachment-definitions.k8s.cni.cncf.io \"x\" not found");
        assert_eq!(status["details"]["group"], "k8s.cni.cncf.io");
        assert_eq!(status["code"], 404);
        assert_eq!(ApiError::for_code(429, None).retry_after, Some(1));
        assert_eq!(
            ApiError::invalid(&pods, "Pod", "p", "metadata.name: Required value").message,
            "Pod \"p\" is invalid: metadata.name: Required value"
        );
    }
}
