//! Label and field selectors, parsed once per request and matched against JSON objects.

use serde_json::Value;

/// A selector string that does not parse; the message is the real server's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key`: the label is present.
    Exists(String),
    /// `!key`: the label is absent.
    NotExists(String),
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the label is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the label is absent).
    NotIn(String, Vec<String>),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 316 && key.chars().all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(input: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(SelectorError(format!("unbalanced parentheses in {input:?}")));
                }
            }
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced parentheses in {input:?}")));
    }
    parts.push(&input[start..]);
    Ok(parts)
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("{whole:?}: expected a parenthesised set of values")))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(|v| !valid_value(v)) {
        return Err(SelectorError(format!("{whole:?}: invalid value in set")));
    }
    Ok(values)
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; the empty string selects everything.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let input = input.trim();
        if input.is_empty() {
            return Ok(Self::default());
        }
        let mut requirements = Vec::new();
        for part in split_top_level(input)? {
            let part = part.trim();
            let requirement = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::NotExists(key.trim().to_string())
            } else if let Some((key, value)) = part.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once("==") {
                LabelRequirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once('=') {
                LabelRequirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, rest)) = part.split_once(" notin ") {
                LabelRequirement::NotIn(key.trim().into(), parse_set(rest, part)?)
            } else if let Some((key, rest)) = part.split_once(" in ") {
                LabelRequirement::In(key.trim().into(), parse_set(rest, part)?)
            } else {
                LabelRequirement::Exists(part.to_string())
            };
            let (key, value) = match &requirement {
                LabelRequirement::Exists(k) | LabelRequirement::NotExists(k) => (k, None),
                LabelRequirement::Equals(k, v) | LabelRequirement::NotEquals(k, v) => (k, Some(v)),
                LabelRequirement::In(k, _) | LabelRequirement::NotIn(k, _) => (k, None),
            };
            if !valid_key(key) {
                return Err(SelectorError(format!("{part:?}: invalid label key {key:?}")));
            }
            if value.is_some_and(|v| !valid_value(v)) {
                return Err(SelectorError(format!("{part:?}: invalid label value")));
            }
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
        })
    }
}

/// One `field=value` or `field!=value` requirement of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path (`spec.nodeName`).
    pub field: String,
    /// Value compared with the field's string form.
    pub value: String,
    /// Whether the requirement is `!=`.
    pub negated: bool,
}

/// A parsed field selector over the small set of fields the real server indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// Fields the real API server accepts in field selectors, per resource.
fn field_supported(resource: &str, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    match resource {
        "pods" => matches!(
            field,
            "spec.nodeName"
                | "spec.restartPolicy"
                | "spec.schedulerName"
                | "spec.serviceAccountName"
                | "spec.hostNetwork"
                | "status.phase"
                | "status.podIP"
                | "status.nominatedNodeName"
        ),
        "events" => {
            field.starts_with("involvedObject.")
                || matches!(field, "reason" | "reportingComponent" | "source" | "type" | "regarding.name")
        }
        "namespaces" => field == "status.phase",
        "nodes" => field == "spec.unschedulable",
        "secrets" => field == "type",
        "resourceslices" => matches!(field, "spec.nodeName" | "spec.driver"),
        "certificatesigningrequests" => field == "spec.signerName",
        _ => false,
    }
}

impl FieldSelector {
    /// Parses a `fieldSelector` query value for `resource`; fields the real server does not index
    /// for that resource are rejected.
    pub fn parse(input: &str, resource: &str) -> Result<Self, SelectorError> {
        let input = input.trim();
        if input.is_empty() {
            return Ok(Self::default());
        }
        let mut requirements = Vec::new();
        for part in input.split(',') {
            let (field, value, negated) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError(format!("invalid selector: '{input}'; can't understand '{part}'")));
            };
            let field = field.trim();
            if !field_supported(resource, field) {
                return Err(SelectorError(format!("field label not supported: {field}")));
            }
            requirements.push(FieldRequirement { field: field.into(), value: value.trim().into(), negated });
        }
        Ok(Self(requirements))
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|req| {
            let actual = field_value(object, &req.field);
            (actual == req.value) != req.negated
        })
    }

    /// `spec.nodeName=node1` style requirement value for a field, if the selector pins it.
    pub fn pinned(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|r| r.field == field && !r.negated).map(|r| r.value.as_str())
    }
}

/// The string form of a field, as the real server's field-label conversion produces it
/// (absent fields compare as the empty string).
fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for segment in path.split('.') {
        current = &current[segment];
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels},
               "spec": {"nodeName": "node1"}, "status": {"phase": "Running"}})
    }

    #[test]
    fn label_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        for (sel, expected) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("app=web,tier in (back)", false),
            ("example.com/role!=x", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&o), expected, "{sel}");
        }
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for sel in ["app in web", "a in (b", "x)", "bad key=1", "a=b c", "a in (b c)"] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let o = obj(json!({}));
        let sel = FieldSelector::parse("spec.nodeName=node1,status.phase!=Failed", "pods").unwrap();
        assert!(sel.matches(&o));
        assert_eq!(sel.pinned("spec.nodeName"), Some("node1"));
        assert!(!FieldSelector::parse("metadata.name==q", "pods").unwrap().matches(&o));
        assert!(FieldSelector::parse("metadata.namespace=ns", "configmaps").unwrap().matches(&o));
        assert!(FieldSelector::parse("spec.nodeName=node1", "configmaps").is_err());
        assert!(FieldSelector::parse("garbage", "pods").is_err());
    }

    #[test]
    fn resource_slice_field_selectors() {
        let slice = json!({"metadata": {"name": "s"}, "spec": {"nodeName": "node1", "driver": "sriov.example.com"}});
        let sel = FieldSelector::parse("spec.nodeName=node1,spec.driver=sriov.example.com", "resourceslices").unwrap();
        assert!(sel.matches(&slice));
        assert!(!FieldSelector::parse("spec.driver=other", "resourceslices").unwrap().matches(&slice));
        // A slice for all nodes has no nodeName: it never matches a node pin.
        let all_nodes = json!({"metadata": {"name": "a"}, "spec": {"allNodes": true, "driver": "sriov.example.com"}});
        assert!(!sel.matches(&all_nodes));
        assert!(FieldSelector::parse("spec.pool.name=p", "resourceslices").is_err());
        assert!(FieldSelector::parse("spec.driver=d", "resourceclaims").is_err());
    }
}
