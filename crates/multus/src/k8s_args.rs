//! Pod identity from `CNI_ARGS`.
//!
//! The reference reads `CNI_ARGS` twice, with different rules:
//!
//! - [`parse_server_args`]: the daemon's request preprocessing (§4.3) — strict `K=V` items,
//!   whitespace-trimmed, namespace and name required; gives the request's [`PodIdentity`].
//! - [`parse_multus_args`]: inside the Multus ADD/DEL/CHECK (§5.2) — libcni's `LoadArgs` into
//!   the known keys `IgnoreUnknown`, `IP`, `K8S_POD_NAME`, `K8S_POD_NAMESPACE`,
//!   `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`.
//!
//! Differences from the reference: empty items (e.g. a trailing `;`) are skipped by
//! [`parse_multus_args`] (libcni rejects them as an invalid pair); [`parse_server_args`] keeps
//! the reference's strictness.

pub use crate::pod::PodIdentity;
use cni::args::{ArgsError, CniArgs};

/// `CNI_ARGS` key of the pod's namespace.
pub const K8S_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
/// `CNI_ARGS` key of the pod's name.
pub const K8S_POD_NAME: &str = "K8S_POD_NAME";
/// `CNI_ARGS` key of the sandbox (infra) container ID.
pub const K8S_POD_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";
/// `CNI_ARGS` key of the pod's UID.
pub const K8S_POD_UID: &str = "K8S_POD_UID";
/// `CNI_ARGS` key that makes unknown keys acceptable.
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";
/// `CNI_ARGS` key of a requested IP address.
pub const IP: &str = "IP";

/// The keys Multus' own args type knows (everything else needs `IgnoreUnknown`).
pub const KNOWN_KEYS: &[&str] =
    &[IGNORE_UNKNOWN, IP, K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID];

/// libcni's reading of `CNI_ARGS` (§5.2): the pod, and the other keys Multus knows. What the
/// delegates' `CNI_ARGS` are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sArgs {
    /// `K8S_POD_NAMESPACE`, `K8S_POD_NAME` and `K8S_POD_UID`.
    pub pod: PodIdentity,
    /// `K8S_POD_INFRA_CONTAINER_ID` (empty when absent).
    pub infra_container_id: String,
    /// `IP` (validated as an IP address; empty → `None`).
    pub ip: Option<String>,
}

impl K8sArgs {
    /// No values; usable in constants.
    pub const EMPTY: Self = Self { pod: PodIdentity::UNKNOWN, infra_container_id: String::new(), ip: None };

    /// Only the pod (e.g. the server's reading when libcni's failed).
    pub fn of_pod(pod: PodIdentity) -> Self {
        Self { pod, ..Self::EMPTY }
    }

    /// The UID, `""` when absent.
    pub fn uid_or_empty(&self) -> &str {
        self.pod.uid_or_empty()
    }
}

/// Why `CNI_ARGS` was rejected; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sArgsError {
    /// An item is not `K=V`.
    #[error("invalid CNI_ARG '{0}'")]
    InvalidArg(String),
    /// `K8S_POD_NAMESPACE` is missing.
    #[error("missing K8S_POD_NAMESPACE")]
    MissingNamespace,
    /// `K8S_POD_NAME` is missing.
    #[error("missing K8S_POD_NAME")]
    MissingName,
    /// libcni `LoadArgs` failure inside the Multus command.
    #[error("Multus: error getting k8s args: {0}")]
    Load(String),
}

/// §4.3: split on `;`, each item must split on `=` into exactly two parts (trimmed); the last
/// occurrence of a key wins. `K8S_POD_NAMESPACE` and `K8S_POD_NAME` are required (values may
/// be empty); `K8S_POD_UID` is taken as-is when present.
pub fn parse_server_args(cni_args: &str) -> Result<PodIdentity, K8sArgsError> {
    let mut namespace = None;
    let mut name = None;
    let mut uid = None;
    for item in cni_args.split(';') {
        let parts: Vec<&str> = item.split('=').collect();
        let [key, value] = parts.as_slice() else {
            return Err(K8sArgsError::InvalidArg(item.to_string()));
        };
        let value = value.trim().to_string();
        match key.trim() {
            K8S_POD_NAMESPACE => namespace = Some(value),
            K8S_POD_NAME => name = Some(value),
            K8S_POD_UID => uid = Some(value),
            _ => {}
        }
    }
    Ok(PodIdentity {
        namespace: namespace.ok_or(K8sArgsError::MissingNamespace)?,
        name: name.ok_or(K8sArgsError::MissingName)?,
        uid,
    })
}

/// §5.2: libcni `LoadArgs` semantics. Unknown keys are an error unless `IgnoreUnknown` is
/// `1`/`true`/`True`; a value containing `=` is an invalid pair; `IP` must be an address.
/// Absent pod keys give empty strings (`uid`: `None`).
pub fn parse_multus_args(cni_args: &str) -> Result<K8sArgs, K8sArgsError> {
    let args = CniArgs::parse_strict(cni_args, KNOWN_KEYS).map_err(|e| {
        K8sArgsError::Load(match e {
            // libcni formats the list with %q: ["A" "B"].
            ArgsError::UnknownKeys(keys) => {
                format!("ARGS: unknown args [{}]", keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(" "))
            }
            ArgsError::InvalidPair(pair) => format!("ARGS: invalid pair {pair:?}"),
        })
    })?;
    for (key, value) in args.pairs() {
        let bad = |reason: String| {
            K8sArgsError::Load(format!("ARGS: error parsing value of pair {:?}: {reason}", format!("{key}={value}")))
        };
        match key.as_str() {
            IGNORE_UNKNOWN if !matches!(value.as_str(), "1" | "true" | "True" | "0" | "false" | "False") => {
                return Err(bad(format!("boolean unmarshal error: invalid input {value}")));
            }
            IP if !value.is_empty() && value.parse::<std::net::IpAddr>().is_err() => {
                return Err(bad(format!("invalid IP address: {value}")));
            }
            _ => {}
        }
    }
    let get = |key: &str| args.get(key).unwrap_or("").to_string();
    Ok(K8sArgs {
        pod: PodIdentity {
            namespace: get(K8S_POD_NAMESPACE),
            name: get(K8S_POD_NAME),
            uid: args.get(K8S_POD_UID).map(str::to_string),
        },
        infra_container_id: get(K8S_POD_INFRA_CONTAINER_ID),
        ip: args.get(IP).filter(|ip| !ip.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNTIME_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                                K8S_POD_INFRA_CONTAINER_ID=3f69;K8S_POD_UID=f0bf-cb";

    #[test]
    fn server_args_from_runtime_args() {
        let a = parse_server_args(RUNTIME_ARGS).unwrap();
        assert_eq!(a.namespace, "default");
        assert_eq!(a.name, "web-0");
        assert_eq!(a.uid.as_deref(), Some("f0bf-cb"));
    }

    #[test]
    fn server_args_trim_and_last_wins() {
        let a = parse_server_args(" K8S_POD_NAMESPACE = ns ;K8S_POD_NAME=a;K8S_POD_NAME= b ").unwrap();
        assert_eq!((a.namespace.as_str(), a.name.as_str()), ("ns", "b"));
        assert_eq!(a.uid, None);
        // Present but empty UID is kept as empty (not looked up).
        let a = parse_server_args("K8S_POD_NAMESPACE=;K8S_POD_NAME=;K8S_POD_UID=").unwrap();
        assert_eq!(a.uid.as_deref(), Some(""));
        assert_eq!(a.uid_or_empty(), "");
    }

    #[test]
    fn server_args_errors() {
        for (input, want) in [
            ("", "invalid CNI_ARG ''"),
            ("K8S_POD_NAMESPACE=a;", "invalid CNI_ARG ''"),
            ("K8S_POD_NAMESPACE=a;BLAH=foo=bar", "invalid CNI_ARG 'BLAH=foo=bar'"),
            ("novalue", "invalid CNI_ARG 'novalue'"),
            ("K8S_POD_NAME=a", "missing K8S_POD_NAMESPACE"),
            ("K8S_POD_NAMESPACE=a", "missing K8S_POD_NAME"),
            ("IgnoreUnknown=1", "missing K8S_POD_NAMESPACE"),
        ] {
            assert_eq!(parse_server_args(input).unwrap_err().to_string(), want, "{input}");
        }
    }

    #[test]
    fn multus_args() {
        let a = parse_multus_args(RUNTIME_ARGS).unwrap();
        assert_eq!(
            a,
            K8sArgs {
                pod: PodIdentity { namespace: "default".into(), name: "web-0".into(), uid: Some("f0bf-cb".into()) },
                infra_container_id: "3f69".into(),
                ip: None,
            }
        );
        let a = parse_multus_args("").unwrap();
        assert_eq!(a, K8sArgs::default());
        let a = parse_multus_args("IP=10.0.0.5;K8S_POD_NAME=x;FOO=1;IgnoreUnknown=true").unwrap();
        assert_eq!(a.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(a.pod.name, "x");
        assert_eq!(a.pod.uid, None);
        assert_eq!(parse_multus_args("IP=").unwrap().ip, None);
    }

    // §12.4 item 55
    #[test]
    fn multus_args_errors() {
        for (input, want) in [
            ("K8S_POD_NAME=a;FOO=1", "Multus: error getting k8s args: ARGS: unknown args [\"FOO\"]"),
            ("FOO=1;BAR=2;IgnoreUnknown=0", "Multus: error getting k8s args: ARGS: unknown args [\"FOO\" \"BAR\"]"),
            ("BLAH=foo=bar", "Multus: error getting k8s args: ARGS: invalid pair \"BLAH=foo=bar\""),
            ("garbage", "Multus: error getting k8s args: ARGS: invalid pair \"garbage\""),
            (
                "IP=10.0.0.300",
                "Multus: error getting k8s args: ARGS: error parsing value of pair \
                 \"IP=10.0.0.300\": invalid IP address: 10.0.0.300",
            ),
            (
                "IgnoreUnknown=yes",
                "Multus: error getting k8s args: ARGS: error parsing value of pair \
                 \"IgnoreUnknown=yes\": boolean unmarshal error: invalid input yes",
            ),
        ] {
            assert_eq!(parse_multus_args(input).unwrap_err().to_string(), want, "{input}");
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panic(s in any::<String>()) {
                let _ = parse_server_args(&s);
                let _ = parse_multus_args(&s);
            }

            #[test]
            fn server_round_trip(ns in "[a-z0-9-]{0,12}", name in "[a-z0-9.-]{0,20}", uid in proptest::option::of("[a-f0-9-]{0,36}")) {
                let mut s = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={name}");
                if let Some(uid) = &uid {
                    s.push_str(&format!(";K8S_POD_UID={uid}"));
                }
                let a = parse_server_args(&s).unwrap();
                prop_assert_eq!(&a.namespace, &ns);
                prop_assert_eq!(&a.name, &name);
                prop_assert_eq!(&a.uid, &uid);
                let b = parse_multus_args(&s).unwrap();
                prop_assert_eq!((b.pod.namespace, b.pod.name, b.pod.uid), (ns, name, uid));
            }
        }
    }
}
