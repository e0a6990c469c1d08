//! Pod identity from `CNI_ARGS`.
//!
//! The reference reads `CNI_ARGS` twice, with different rules:
//!
//! - [`parse_server_args`] / [`server_args_from_env`]: the daemon's request preprocessing
//!   (§4.3) — strict `K=V` items, whitespace-trimmed, namespace and name required.
//! - [`parse_multus_args`]: inside the Multus ADD/DEL/CHECK (§5.2) — libcni's `LoadArgs` into
//!   the known keys `IgnoreUnknown`, `IP`, `K8S_POD_NAME`, `K8S_POD_NAMESPACE`,
//!   `K8S_POD_INFRA_CONTAINER_ID`, `K8S_POD_UID`.
//!
//! Differences from the reference: empty items (e.g. a trailing `;`) are skipped by
//! [`parse_multus_args`] (libcni rejects them as an invalid pair); [`parse_server_args`] keeps
//! the reference's strictness.

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

/// The pod a CNI request is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sArgs {
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    /// `K8S_POD_NAME`.
    pub name: String,
    /// `K8S_POD_INFRA_CONTAINER_ID` (empty when absent).
    pub infra_container_id: String,
    /// `None`: `K8S_POD_UID` absent; `Some("")`: present but empty.
    pub uid: Option<String>,
    /// `IP` (validated as an IP address; empty → `None`).
    pub ip: Option<String>,
}

impl K8sArgs {
    /// The UID, `""` when absent.
    pub fn uid_or_empty(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }
}

/// Why `CNI_ARGS` was rejected; the texts are the reference's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum K8sArgsError {
    /// The request has no `CNI_ARGS`.
    #[error("missing CNI_ARGS")]
    MissingCniArgs,
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
/// be empty); `K8S_POD_UID` is taken as-is when present. `infra_container_id` and `ip` are left
/// empty (the server reads the infra container ID from the request env, see
/// [`server_args_from_env`]).
pub fn parse_server_args(cni_args: &str) -> Result<K8sArgs, K8sArgsError> {
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
    Ok(K8sArgs {
        namespace: namespace.ok_or(K8sArgsError::MissingNamespace)?,
        name: name.ok_or(K8sArgsError::MissingName)?,
        infra_container_id: String::new(),
        uid,
        ip: None,
    })
}

/// §4.3 from a request's env: `CNI_ARGS` must be present ("missing CNI_ARGS"), and
/// `K8S_POD_INFRA_CONTAINER_ID` is read from the env itself (normally absent → empty).
pub fn server_args_from_env<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<K8sArgs, K8sArgsError> {
    let cni_args = get("CNI_ARGS").ok_or(K8sArgsError::MissingCniArgs)?;
    let mut args = parse_server_args(cni_args)?;
    args.infra_container_id = get(K8S_POD_INFRA_CONTAINER_ID).unwrap_or("").to_string();
    Ok(args)
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
        namespace: get(K8S_POD_NAMESPACE),
        name: get(K8S_POD_NAME),
        infra_container_id: get(K8S_POD_INFRA_CONTAINER_ID),
        uid: args.get(K8S_POD_UID).map(str::to_string),
        ip: args.get(IP).filter(|ip| !ip.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const RUNTIME_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
                                K8S_POD_INFRA_CONTAINER_ID=3f69;K8S_POD_UID=f0bf-cb";

    #[test]
    fn server_args_from_runtime_args() {
        let a = parse_server_args(RUNTIME_ARGS).unwrap();
        assert_eq!(a.namespace, "default");
        assert_eq!(a.name, "web-0");
        assert_eq!(a.uid.as_deref(), Some("f0bf-cb"));
        // The infra container ID comes from the env, not CNI_ARGS.
        assert_eq!(a.infra_container_id, "");
        assert_eq!(a.ip, None);
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
    fn server_args_env() {
        let mut env = HashMap::new();
        let get = |env: &HashMap<&str, &'static str>| {
            let env = env.clone();
            server_args_from_env(move |k| env.get(k).copied())
        };
        assert_eq!(get(&env), Err(K8sArgsError::MissingCniArgs));
        env.insert("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
        env.insert(K8S_POD_INFRA_CONTAINER_ID, "sandbox");
        let a = get(&env).unwrap();
        assert_eq!(a.infra_container_id, "sandbox");
        assert_eq!(a.name, "p");
    }

    #[test]
    fn multus_args() {
        let a = parse_multus_args(RUNTIME_ARGS).unwrap();
        assert_eq!(
            a,
            K8sArgs {
                namespace: "default".into(),
                name: "web-0".into(),
                infra_container_id: "3f69".into(),
                uid: Some("f0bf-cb".into()),
                ip: None,
            }
        );
        let a = parse_multus_args("").unwrap();
        assert_eq!(a, K8sArgs::default());
        let a = parse_multus_args("IP=10.0.0.5;K8S_POD_NAME=x;FOO=1;IgnoreUnknown=true").unwrap();
        assert_eq!(a.ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(a.name, "x");
        assert_eq!(a.uid, None);
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
                prop_assert_eq!((b.namespace, b.name, b.uid), (ns, name, uid));
            }
        }
    }
}
