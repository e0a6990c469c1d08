//! The thick plugin's shim ↔ daemon API: HTTP/1.1 over the unix socket `<dir>/multus.sock`.
//!
//! The wire format is the Go reference's (see `docs/thick-api.md`): a JSON request
//! `{"env": {...}, "config": "<base64 stdin>", "interfaceAttributes": {...}}` posted to `/cni`
//! or `/delegate`, answered with `{"Result": <CNI result>}` for ADD, an empty 200 for other
//! commands, or a 400 whose body is a CNI error object (`application/json`) or a plain message.
//!
//! The types live here so that the shim, the daemon, the conformance harness and the tests
//! share one definition. [`client`] is a small blocking client: the shim must start in a
//! couple of milliseconds, so it carries no async runtime and no HTTP library.

#![warn(missing_docs)]

pub mod client;

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Socket file name inside the socket directory.
pub const SOCKET_FILE: &str = "multus.sock";
/// Default socket directory of both the daemon (`socketDir`) and the shim (`daemonSocketDir`).
pub const DEFAULT_SOCKET_DIR: &str = "/run/multus/";

/// HTTP paths served by the daemon.
pub mod path {
    /// A CNI command from the shim.
    pub const CNI: &str = "/cni";
    /// "Hot-plug": run one given delegate config for a pod that already exists.
    pub const DELEGATE: &str = "/delegate";
    /// Liveness: always 200 (the shim checks it before DEL).
    pub const HEALTHZ: &str = "/healthz";
    /// Readiness: 200, then 500 once shutdown began (the shim waits for it before ADD, CHECK,
    /// STATUS and GC).
    pub const READYZ: &str = "/readyz";
}

/// Largest request body a daemon accepts (`413 Payload Too Large` beyond it), and so the largest
/// request a shim sends.
///
/// Real requests are a few kilobytes: the runtime's config (`00-multus.conf`, which embeds the
/// cluster network's conflist) plus `runtimeConfig`, base64-encoded. The largest legitimate one
/// is a CNI GC request: libcni lists every attachment of the node twice (the current and the
/// legacy key), about 230 bytes per attachment before base64, so 1,000 pods with two attachments
/// each come to about 0.6 MiB on the wire. 1 MiB leaves room above that while keeping what
/// one connection can make the daemon buffer small.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Socket path for a socket directory (`<dir>/multus.sock`).
pub fn socket_path(dir: &str) -> std::path::PathBuf {
    let dir = if dir.is_empty() { DEFAULT_SOCKET_DIR } else { dir };
    std::path::Path::new(dir).join(SOCKET_FILE)
}

/// A request to `/cni` or `/delegate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The CNI environment. Go marshals its map with sorted keys; a BTreeMap does the same.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The plugin's stdin, verbatim (base64 on the wire, as Go encodes `[]byte`).
    #[serde(default, with = "base64_bytes")]
    pub config: Vec<u8>,
    /// `/delegate` only: per-attachment overrides.
    #[serde(rename = "interfaceAttributes", default, skip_serializing_if = "Option::is_none")]
    pub interface_attributes: Option<InterfaceAttributes>,
}

/// `/delegate`'s interface attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttributes {
    /// Addresses the delegate should assign (the `ips` capability).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// MAC address the delegate should use (the `mac` capability).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Serialised as `null` when absent, as the Go client does.
    #[serde(rename = "cni-args", default)]
    pub cni_args: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The environment variables a daemon reads. The Go shim forwards its whole environment; the
/// Go daemon reads only these, so forwarding just these stays compatible and leaks nothing.
pub const FORWARDED_ENV: [&str; 7] =
    ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH", "K8S_POD_INFRA_CONTAINER_ID"];

/// A forwarded environment variable the shim cannot send as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The variable's name or value is not valid UTF-8 (the name is shown lossily).
    #[error("environment variable {name} is not valid UTF-8")]
    NotUtf8 {
        /// The variable's name.
        name: String,
    },
}

/// Whether a shim forwards the variable `name` (raw bytes, so non-UTF-8 names are judged too).
fn is_forwarded(name: &[u8]) -> bool {
    name.starts_with(b"CNI_") || FORWARDED_ENV.iter().any(|f| f.as_bytes() == name)
}

impl Request {
    /// Build the request a shim sends from the raw process environment
    /// (`std::env::vars_os()`), which may hold bytes that are not UTF-8.
    ///
    /// Only forwarded variables (`CNI_*`, `K8S_POD_INFRA_CONTAINER_ID`) are looked at; one of
    /// them that is not UTF-8 is an error rather than a silent replacement character, since
    /// the daemon would otherwise act on a container ID, netns path or `CNI_ARGS` the runtime
    /// never sent. Other variables are dropped whatever their bytes.
    pub fn from_os_env<I>(vars: I, stdin: Vec<u8>) -> Result<Self, EnvError>
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        use std::os::unix::ffi::OsStrExt;
        let mut env = BTreeMap::new();
        for (name, value) in vars {
            if !is_forwarded(name.as_bytes()) {
                continue;
            }
            let not_utf8 = || EnvError::NotUtf8 { name: name.to_string_lossy().into_owned() };
            let key = name.to_str().ok_or_else(not_utf8)?;
            let value = value.to_str().ok_or_else(not_utf8)?;
            env.insert(key.to_string(), value.to_string());
        }
        Ok(Self { env, config: stdin, interface_attributes: None })
    }

    /// As [`Request::from_os_env`], for DEL, which must reach the daemon whatever the bytes: a
    /// DEL that never reaches it leaks the pod's interfaces and leases, and the daemon deletes
    /// from its cache by container ID. A `CNI_ARGS` that is not UTF-8 is sent with each invalid
    /// sequence replaced by U+FFFD (what Go's `json.Marshal` sends for the Go shim: its values
    /// only name the pod); any other forwarded variable that is not UTF-8 is left out rather
    /// than sent mangled (a made-up netns path or container ID must not be acted on). Returns
    /// the request and the names replaced or left out, for the shim to say so.
    pub fn from_os_env_for_del<I>(vars: I, stdin: Vec<u8>) -> (Self, Vec<String>)
    where
        I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    {
        use std::os::unix::ffi::OsStrExt;
        let mut env = BTreeMap::new();
        let mut not_utf8 = Vec::new();
        for (name, value) in vars {
            if !is_forwarded(name.as_bytes()) {
                continue;
            }
            let Some(key) = name.to_str() else {
                not_utf8.push(name.to_string_lossy().into_owned());
                continue;
            };
            match value.to_str() {
                Some(v) => {
                    env.insert(key.to_string(), v.to_string());
                }
                None => {
                    not_utf8.push(key.to_string());
                    if key == "CNI_ARGS" {
                        env.insert(key.to_string(), value.to_string_lossy().into_owned());
                    }
                }
            }
        }
        (Self { env, config: stdin, interface_attributes: None }, not_utf8)
    }

    /// Build the request a shim sends: the forwarded variables (those set) and stdin.
    pub fn from_env<I, K, V>(vars: I, stdin: Vec<u8>) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env =
            vars.into_iter().map(|(k, v)| (k.into(), v.into())).filter(|(k, _)| is_forwarded(k.as_bytes())).collect();
        Self { env, config: stdin, interface_attributes: None }
    }

    /// The JSON body the shim posts.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parse a body as the daemon reads it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// A forwarded variable, if the shim sent it.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The description the reference prefixes to command errors:
    /// `ContainerID:"…" Netns:"…" IfName:"…" Args:"…" Path:""` (`Path` is always empty).
    pub fn describe(&self) -> String {
        let get = |k| self.env_var(k).unwrap_or("");
        format!(
            "ContainerID:{:?} Netns:{:?} IfName:{:?} Args:{:?} Path:\"\"",
            get("CNI_CONTAINERID"),
            get("CNI_NETNS"),
            get("CNI_IFNAME"),
            get("CNI_ARGS")
        )
    }
}

/// An ADD reply: `{"Result": <result in the daemon's current version>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The ADD result; absent in the empty replies of other commands.
    #[serde(rename = "Result", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// An error body as the daemon sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorBody {
    /// `application/json`: a CNI error object whose code should reach the runtime.
    Cni(cni::CniError),
    /// `text/plain`: a message (the body carries a trailing newline on the wire).
    Text(String),
}

impl ErrorBody {
    /// The `Content-Type` the daemon sends with this body.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Cni(_) => "application/json",
            Self::Text(_) => "text/plain; charset=utf-8",
        }
    }

    /// The body as sent on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Cni(e) => e.to_json().into_bytes(),
            Self::Text(msg) => format!("{msg}\n").into_bytes(),
        }
    }

    /// How the shim reads a non-200 body: a CNI error object with a non-empty `msg`, else text.
    pub fn parse(body: &[u8]) -> Self {
        match cni::CniError::from_json(body) {
            Some(e) if !e.msg.is_empty() => Self::Cni(e),
            _ => Self::Text(String::from_utf8_lossy(body).trim_end_matches('\n').to_string()),
        }
    }
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // Go decodes a JSON null into an empty []byte.
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(Vec::new()),
            Some(s) => base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom),
        }
    }
}

/// Standard base64, as Go's `encoding/json` encodes `[]byte`.
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_only_cni_variables() {
        let r = Request::from_env(
            [("CNI_COMMAND", "ADD"), ("PATH", "/usr/bin"), ("HOME", "/root"), ("K8S_POD_INFRA_CONTAINER_ID", "x")],
            b"{}".to_vec(),
        );
        assert_eq!(r.env.keys().collect::<Vec<_>>(), vec!["CNI_COMMAND", "K8S_POD_INFRA_CONTAINER_ID"]);
    }

    #[test]
    fn os_env_forwards_only_cni_variables_and_ignores_other_bytes() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let os = |s: &str| OsString::from(s);
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let r = Request::from_os_env(
            [
                (os("CNI_COMMAND"), os("DEL")),
                (os("HOME"), raw(b"/root/\xff")),
                (raw(b"JUNK\xfe"), os("x")),
                (os("K8S_POD_INFRA_CONTAINER_ID"), os("c")),
            ],
            b"{}".to_vec(),
        )
        .unwrap();
        assert_eq!(r.env.keys().collect::<Vec<_>>(), vec!["CNI_COMMAND", "K8S_POD_INFRA_CONTAINER_ID"]);
    }

    #[test]
    fn os_env_refuses_a_forwarded_variable_that_is_not_utf8() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let e = Request::from_os_env([(raw(b"CNI_ARGS"), raw(b"K8S_POD_NAME=p\xff"))], vec![]).unwrap_err();
        assert_eq!(e.to_string(), "environment variable CNI_ARGS is not valid UTF-8");
        let e = Request::from_os_env([(raw(b"CNI_\xffX"), raw(b"v"))], vec![]).unwrap_err();
        assert_eq!(e, EnvError::NotUtf8 { name: "CNI_\u{fffd}X".into() });
    }

    #[test]
    fn a_del_replaces_bad_bytes_in_cni_args_and_leaves_other_bad_variables_out() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let (r, not_utf8) = Request::from_os_env_for_del(
            [
                (raw(b"CNI_COMMAND"), raw(b"DEL")),
                (raw(b"CNI_ARGS"), raw(b"K8S_POD_NAME=p\xff;K8S_POD_NAMESPACE=default")),
                (raw(b"CNI_NETNS"), raw(b"/var/run/netns/\xfe")),
                (raw(b"CNI_\xffX"), raw(b"v")),
                (raw(b"HOME"), raw(b"/root/\xff")),
            ],
            b"{}".to_vec(),
        );
        assert_eq!(r.env_var("CNI_ARGS"), Some("K8S_POD_NAME=p\u{fffd};K8S_POD_NAMESPACE=default"));
        assert_eq!(r.env_var("CNI_COMMAND"), Some("DEL"));
        assert_eq!(r.env_var("CNI_NETNS"), None, "not sent made up");
        assert_eq!(not_utf8, vec!["CNI_ARGS".to_string(), "CNI_NETNS".into(), "CNI_\u{fffd}X".into()]);
        assert_eq!(r.env.len(), 2, "HOME is not forwarded");
    }

    /// Found by the `api_request` fuzz target: without correctly rounded float parsing a
    /// large number in `cni-args` changed by one ULP on each decode/encode round.
    #[test]
    fn numbers_survive_a_round_trip_exactly() {
        let raw = br#"{"env":{"CNI_COMMAND":"ADD"},"interfaceAttributes":{"cni-args":{"n":[444444444444444444444445,0.1,1e-300,2.2250738585072011e-308]}}}"#;
        let first = Request::from_json(raw).unwrap();
        let second = Request::from_json(&first.to_json()).unwrap();
        assert_eq!(second, first);
        assert_eq!(second.to_json(), first.to_json());
    }

    #[test]
    fn request_wire_format() {
        let r = Request::from_env([("CNI_COMMAND", "DEL"), ("CNI_ARGS", "a=b")], b"{\"x\":1}".to_vec());
        assert_eq!(
            String::from_utf8(r.to_json()).unwrap(),
            r#"{"env":{"CNI_ARGS":"a=b","CNI_COMMAND":"DEL"},"config":"eyJ4IjoxfQ=="}"#
        );
        let back = Request::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn config_must_be_base64_not_an_object() {
        assert!(Request::from_json(br#"{"config":{"a":1}}"#).is_err());
        assert_eq!(Request::from_json(br#"{"config":null}"#).unwrap().config, b"");
    }

    #[test]
    fn error_bodies() {
        assert!(matches!(ErrorBody::parse(br#"{"code":50,"msg":"down"}"#), ErrorBody::Cni(e) if e.code == 50));
        assert!(matches!(ErrorBody::parse(br#"{"code":50,"msg":""}"#), ErrorBody::Text(_)));
        assert_eq!(ErrorBody::parse(b"boom\n"), ErrorBody::Text("boom".into()));
    }
}
