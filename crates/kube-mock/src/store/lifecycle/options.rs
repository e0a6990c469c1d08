//! A DELETE's options (`DeleteOptions`: propagation policy, grace period, preconditions) and
//! the finalizers that propagation becomes.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::ApiError;

/// The finalizer of Orphan propagation.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer of Foreground propagation.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer that removes a deleted CRD's custom resources.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// `propagationPolicy` of a DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents lose their reference to the owner and stay.
    Orphan,
    /// The owner goes at once; the garbage collector deletes the dependents afterwards.
    Background,
    /// The owner stays (with `foregroundDeletion`) until its blocking dependents are gone.
    Foreground,
}

impl Propagation {
    /// The wire value (`Orphan`, `Background`, `Foreground`).
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "Orphan" => Some(Propagation::Orphan),
            "Background" => Some(Propagation::Background),
            "Foreground" => Some(Propagation::Foreground),
            _ => None,
        }
    }
}

/// The options of a DELETE (`meta.k8s.io/v1` `DeleteOptions`, from the body or the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `propagationPolicy`.
    pub propagation_policy: Option<Propagation>,
    /// `orphanDependents` (deprecated; true means Orphan, false Background).
    pub orphan_dependents: Option<bool>,
    /// `gracePeriodSeconds` (pods only; negative means 1).
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
}

impl DeleteOptions {
    /// Options with this propagation policy.
    pub fn propagation(policy: Propagation) -> Self {
        Self { propagation_policy: Some(policy), ..Self::default() }
    }

    /// These options with `gracePeriodSeconds`.
    pub fn with_grace_period(mut self, seconds: i64) -> Self {
        self.grace_period_seconds = Some(seconds);
        self
    }

    /// These options with a uid precondition.
    pub fn with_uid(mut self, uid: &str) -> Self {
        self.precondition_uid = Some(uid.to_string());
        self
    }

    /// Reads a `DeleteOptions` JSON body (`null` or `{}` for none). Malformed fields are a 400,
    /// invalid combinations a 422, as from the real server.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        if body.is_null() {
            return Ok(Self::default());
        }
        let Some(map) = body.as_object() else {
            return Err(ApiError::bad_request("the DeleteOptions body must be a JSON object"));
        };
        let field_error = |field: &str, want: &str| {
            ApiError::bad_request(format!("DeleteOptions.{field}: expected {want}, got {}", map[field]))
        };
        let string = |field: &str| match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(field_error(field, "a string")),
        };
        let policy = string("propagationPolicy")?;
        let orphan = match map.get("orphanDependents") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(field_error("orphanDependents", "a boolean")),
        };
        let grace = match map.get("gracePeriodSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| field_error("gracePeriodSeconds", "an integer"))?),
        };
        if map.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
            return Err(ApiError::bad_request("dryRun is not supported by kube-mock"));
        }
        let preconditions = &body["preconditions"];
        let precondition = |field: &str| match &preconditions[field] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(ApiError::bad_request(format!(
                "DeleteOptions.preconditions.{field}: expected a string, got {other}"
            ))),
        };
        Self::validated(policy.as_deref(), orphan, grace, precondition("uid")?, precondition("resourceVersion")?)
    }

    /// Reads the query parameters of a DELETE without a body.
    pub fn from_query(query: &BTreeMap<String, String>) -> Result<Self, ApiError> {
        let policy = query.get("propagationPolicy").filter(|p| !p.is_empty()).map(String::as_str);
        let orphan = match query.get("orphanDependents").map(String::as_str) {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(ApiError::bad_request(format!("invalid orphanDependents {other:?}"))),
        };
        let grace = match query.get("gracePeriodSeconds").filter(|g| !g.is_empty()) {
            None => None,
            Some(g) => Some(
                g.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}: not a number")))?,
            ),
        };
        Self::validated(policy, orphan, grace, None, None)
    }

    fn validated(
        policy: Option<&str>,
        orphan: Option<bool>,
        grace: Option<i64>,
        uid: Option<String>,
        resource_version: Option<String>,
    ) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        if let (Some(_), Some(policy)) = (orphan, policy) {
            errors.push(format!(
                "propagationPolicy: Invalid value: \"{policy}\": orphanDependents and deletionPropagation cannot be both set"
            ));
        }
        let propagation = policy.and_then(|p| {
            let parsed = Propagation::parse(p);
            if parsed.is_none() {
                errors.push(format!(
                    "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                ));
            }
            parsed
        });
        if !errors.is_empty() {
            let causes = if errors.len() == 1 { errors.remove(0) } else { format!("[{}]", errors.join(", ")) };
            return Err(ApiError::new(422, "Invalid", format!("DeleteOptions.meta.k8s.io \"\" is invalid: {causes}")));
        }
        Ok(Self {
            propagation_policy: propagation,
            orphan_dependents: orphan,
            grace_period_seconds: grace,
            precondition_uid: uid,
            precondition_resource_version: resource_version,
        })
    }
}
