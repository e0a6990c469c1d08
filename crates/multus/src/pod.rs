//! The pod a CNI request is for: one identity, read from `CNI_ARGS` once when the request is
//! parsed and passed by reference from there on (resolution, planning, error prefixes).

use std::fmt;

/// The pod a request is for, as `CNI_ARGS` names it (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`,
/// `K8S_POD_UID`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `None`: `K8S_POD_UID` absent; `Some("")`: present but empty.
    pub uid: Option<String>,
}

impl PodIdentity {
    /// No pod (every part empty); usable in constants.
    pub const UNKNOWN: Self = Self { namespace: String::new(), name: String::new(), uid: None };

    /// The UID, `""` when absent.
    pub fn uid_or_empty(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }

    /// Namespace and name are both set (ADD and `/delegate` require it).
    pub fn is_complete(&self) -> bool {
        !self.namespace.is_empty() && !self.name.is_empty()
    }

    /// The `<ns>/<name>/<uid>` identity of the reference's error prefixes.
    pub fn pod_ref(&self) -> PodRef {
        PodRef::new(&self.namespace, &self.name, self.uid_or_empty())
    }

    /// The same pod with the UID the delegates must see (the API's, or the runtime's for a
    /// static pod).
    pub fn with_uid(&self, uid: &str) -> Self {
        Self { uid: Some(uid.to_string()), ..self.clone() }
    }
}

/// The pod identity as it appears in error prefixes: the `CNI_ARGS` values
/// (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`), not the API object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRef {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_UID` (may be empty).
    pub uid: String,
}

impl PodRef {
    /// A pod identity from its three parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, uid: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), uid: uid.into() }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.name, self.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_views() {
        let p = PodIdentity { namespace: "ns".into(), name: "p".into(), uid: None };
        assert!(p.is_complete());
        assert_eq!(p.pod_ref().to_string(), "ns/p/");
        assert_eq!(p.with_uid("u").pod_ref().to_string(), "ns/p/u");
        assert!(!PodIdentity::UNKNOWN.is_complete());
    }
}
