//! One request to `/cni` or `/delegate`, decoded and validated once (spec §4.3).
//!
//! Everything later steps need about the container and the pod is extracted here, into a
//! [`CniRequest`] that the command modules receive; nothing downstream reads the raw
//! environment or re-parses `CNI_ARGS`.
//!
//! Two readings of `CNI_ARGS` exist in the reference and both are kept, each parsed once:
//! the server's strict one ([`multus::k8s_args::parse_server_args`], for the pod identity)
//! and libcni's `LoadArgs` one ([`multus::k8s_args::parse_multus_args`], whose values feed the
//! delegates' `CNI_ARGS`).
//!
//! Unlike the Go daemon, values that reach the file system are validated here, before any
//! command runs: the container ID names the delegate cache file (`<cniDir>/<containerID>`), so
//! `../x` or `/abs` must never get that far, whatever a client sends to the socket.

use cni::Command;
use multus::error::PodRef;
use multus::k8s_args::{self, K8sArgs, K8sArgsError};
pub use multus::pod::PodIdentity;
use multus_api::InterfaceAttributes;
use std::collections::BTreeMap;

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/cni`: the shim's CNI call, served as the Multus meta-plugin.
    Cni,
    /// `/delegate`: one delegate config run for a pod on a client's behalf (hot-plug); no GC.
    Delegate,
}

/// A request that failed extraction; the reply carries the message without the request
/// description (as the reference's extraction errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not a request object (bad JSON, bad base64…).
    #[error("{0}")]
    Decode(String),
    /// A `CNI_*` variable is missing or invalid (command, container ID, netns, ifname, args).
    #[error("could not extract the CNI command args: {0}")]
    CommandArgs(String),
    /// `CNI_ARGS` names no valid pod where the command needs one.
    #[error("could not extract the kubernetes runtime args: {0}")]
    PodArgs(String),
}

/// A decoded, validated request. Only its constructors make one (each validates), so a command
/// never runs on values that skipped the checks.
#[derive(Debug, Clone, PartialEq)]
#[expect(clippy::manual_non_exhaustive, reason = "`#[non_exhaustive]` would still let the rest of the crate build one")]
pub struct CniRequest {
    /// The endpoint it came in on; it decides which commands are valid.
    pub endpoint: Endpoint,
    /// `CNI_COMMAND` (never VERSION, which the shim answers itself).
    pub command: Command,
    /// Validated (CNI name rules) unless empty, which only STATUS and GC allow.
    pub container_id: String,
    /// May be empty for DEL (a runtime that lost the namespace still deletes).
    pub netns: String,
    /// `CNI_IFNAME`, `eth0` when absent or empty; validated unless STATUS or GC.
    pub ifname: String,
    /// `CNI_ARGS` exactly as the runtime passed it.
    pub cni_args: String,
    /// The pod, by the server's strict rules. `None` for STATUS/GC on `/cni`, and for a DEL
    /// whose `CNI_ARGS` does not name a pod (it still runs from the delegate cache).
    pub pod: Option<PodIdentity>,
    /// libcni's reading of `CNI_ARGS` (§5.2), parsed once. ADD fails on an error; the other
    /// commands log it and go on without the values.
    pub load_args: Result<K8sArgs, K8sArgsError>,
    /// The shim's stdin, verbatim (for `/delegate`: the delegate's own config).
    pub config: Vec<u8>,
    /// `/delegate` only.
    pub interface_attributes: Option<InterfaceAttributes>,
    /// Keeps struct literals out of other modules.
    validated: (),
}

impl CniRequest {
    /// Decode and validate a request body.
    pub fn parse(body: &[u8], endpoint: Endpoint) -> Result<Self, RequestError> {
        let request = multus_api::Request::from_json(body).map_err(|e| RequestError::Decode(e.to_string()))?;
        Self::from_api(request, endpoint)
    }

    /// Validate an already decoded request.
    pub fn from_api(request: multus_api::Request, endpoint: Endpoint) -> Result<Self, RequestError> {
        let env = &request.env;
        let command = extract_command(env, endpoint)?;
        let needs_pod_context = !matches!(command, Command::Status | Command::Gc);
        // Our DEL is lenient where the Go daemon drops the DEL entirely (quirk 12): a DEL
        // without CNI_NETNS or CNI_ARGS still runs from the cache.
        let lenient = command == Command::Del;
        let get = |key: &str, required: bool| -> Result<String, RequestError> {
            match env.get(key) {
                Some(v) => Ok(v.clone()),
                None if required => Err(RequestError::CommandArgs(format!("missing {key}"))),
                None => Ok(String::new()),
            }
        };
        let container_id = get("CNI_CONTAINERID", needs_pod_context)?;
        if !container_id.is_empty() || needs_pod_context {
            cni::validate::validate_container_id(&container_id)
                .map_err(|e| RequestError::CommandArgs(format!("invalid CNI_CONTAINERID: {}", e.msg)))?;
        }
        let netns = get("CNI_NETNS", needs_pod_context && !lenient)?;
        if netns.contains('\0') {
            return Err(RequestError::CommandArgs("invalid CNI_NETNS: contains a NUL byte".into()));
        }
        let ifname = env.get("CNI_IFNAME").filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| "eth0".into());
        if needs_pod_context {
            cni::validate::validate_interface_name(&ifname)
                .map_err(|e| RequestError::CommandArgs(format!("invalid CNI_IFNAME: {}", e.msg)))?;
        }
        let cni_args = get("CNI_ARGS", needs_pod_context && !lenient)?;
        let pod = extract_pod(command, endpoint, &cni_args)?;
        Ok(Self {
            endpoint,
            command,
            container_id,
            netns,
            ifname,
            load_args: k8s_args::parse_multus_args(&cni_args),
            cni_args,
            pod,
            config: request.config,
            interface_attributes: request.interface_attributes,
            validated: (),
        })
    }

    /// The DEL a runtime would send for an attachment the daemon recorded (the reconciler's
    /// and GC's): its container, namespace, master interface and the `CNI_ARGS` libcni cached
    /// for it, with `stdin` as the config. Validated like a runtime's request.
    pub fn del_from_cache(
        stdin: &[u8],
        container_id: &str,
        netns: &str,
        ifname: &str,
        cni_args: &[(String, String)],
    ) -> Result<Self, RequestError> {
        // The runtime's CNI_ARGS string, as the ADD's were recorded pair by pair.
        let args = cni_args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", container_id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_ARGS", args.as_str()),
        ];
        let env = env.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::from_api(multus_api::Request { env, config: stdin.to_vec(), interface_attributes: None }, Endpoint::Cni)
    }

    /// The ADD a runtime would send for an attachment the daemon recorded: what
    /// `dynamicNetworks` plans a running sandbox's changes with (see [`Self::del_from_cache`]).
    pub fn add_from_cache(
        stdin: &[u8],
        container_id: &str,
        netns: &str,
        ifname: &str,
        cni_args: &[(String, String)],
    ) -> Result<Self, RequestError> {
        let del = Self::del_from_cache(stdin, container_id, netns, ifname, cni_args)?;
        Ok(Self { command: Command::Add, ..del })
    }

    /// The DEL of this request's sandbox (undoing an ADD the caller abandoned). A DEL needs
    /// less than any other command, so what was valid for this one is valid for it.
    pub fn as_del(&self) -> Self {
        Self { command: Command::Del, ..self.clone() }
    }

    /// A request whose `CNI_ARGS` gave no `K8S_POD_UID` takes it from `lookup` (the pod cache),
    /// as the Go server does; failing that, the request is refused. DEL is left as it is: it
    /// must never depend on the API.
    pub fn with_recovered_uid(
        mut self,
        lookup: impl FnOnce(&str, &str) -> Option<String>,
    ) -> Result<Self, RequestError> {
        if self.command == Command::Del {
            return Ok(self);
        }
        if let Some(pod) = self.pod.as_mut().filter(|p| p.uid.is_none()) {
            match lookup(&pod.namespace, &pod.name) {
                Some(uid) => pod.uid = Some(uid),
                None => {
                    return Err(RequestError::PodArgs(format!(
                        "missing pod UID; attempted to recover it from the K8s API, but failed: pod {}/{} not found in the cache",
                        pod.namespace, pod.name
                    )));
                }
            }
        }
        Ok(self)
    }

    /// The description the reference prefixes to command errors:
    /// `ContainerID:"…" Netns:"…" IfName:"…" Args:"…" Path:""`.
    pub fn describe(&self) -> String {
        format!(
            "ContainerID:{:?} Netns:{:?} IfName:{:?} Args:{:?} Path:\"\"",
            self.container_id, self.netns, self.ifname, self.cni_args
        )
    }

    /// The pod identity for error prefixes (`//` when unknown).
    pub fn pod_ref(&self) -> PodRef {
        self.pod.as_ref().map(PodIdentity::pod_ref).unwrap_or_default()
    }

    /// libcni's reading of `CNI_ARGS` for commands that tolerate a bad one: the error is logged
    /// with its reason and the values are left empty (delegates then get only the pod identity
    /// the server parsed).
    pub fn load_args_or_default(&self) -> K8sArgs {
        match &self.load_args {
            Ok(args) => args.clone(),
            Err(e) => {
                tracing::warn!(
                    container = %self.container_id,
                    "{} continues without the CNI_ARGS values: {e}",
                    self.command
                );
                K8sArgs::of_pod(self.pod.clone().unwrap_or_default())
            }
        }
    }
}

/// `CNI_COMMAND`: required, and known on this endpoint (GC is not served on `/delegate`).
fn extract_command(env: &BTreeMap<String, String>, endpoint: Endpoint) -> Result<Command, RequestError> {
    let text = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    if text.is_empty() {
        return Err(RequestError::CommandArgs("unexpected or missing CNI_COMMAND".into()));
    }
    match (text.parse::<Command>(), endpoint) {
        (Ok(Command::Version), _) | (Err(_), _) | (Ok(Command::Gc), Endpoint::Delegate) => {
            Err(RequestError::CommandArgs(format!("unknown cmd type: {text}")))
        }
        (Ok(c), _) => Ok(c),
    }
}

/// Pod identity. STATUS and GC on `/cni` need none; DEL tolerates its absence (it works from
/// the cache). A missing UID is recovered later from the pod cache (it needs the cluster).
fn extract_pod(command: Command, endpoint: Endpoint, cni_args: &str) -> Result<Option<PodIdentity>, RequestError> {
    if matches!(command, Command::Status | Command::Gc) && endpoint == Endpoint::Cni {
        return Ok(None);
    }
    match k8s_args::parse_server_args(cni_args) {
        Ok(pod) => Ok(Some(pod)),
        Err(e) if command == Command::Del => {
            tracing::warn!("DEL without a pod identity in CNI_ARGS ({e}); deleting from the delegate cache only");
            Ok(None)
        }
        Err(e) => Err(RequestError::PodArgs(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)], endpoint: Endpoint) -> Result<CniRequest, RequestError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CniRequest::from_api(multus_api::Request { env, config: b"{}".to_vec(), interface_attributes: None }, endpoint)
    }

    const POD: &str = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u";

    #[test]
    fn command_is_required_and_known() {
        let msg = |r: Result<CniRequest, RequestError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(request(&[], Endpoint::Cni)),
            "could not extract the CNI command args: unexpected or missing CNI_COMMAND"
        );
        assert_eq!(
            msg(request(&[("CNI_COMMAND", "FOO")], Endpoint::Cni)),
            "could not extract the CNI command args: unknown cmd type: FOO"
        );
        assert_eq!(
            msg(request(&[("CNI_COMMAND", "GC")], Endpoint::Delegate)),
            "could not extract the CNI command args: unknown cmd type: GC"
        );
        assert_eq!(
            msg(request(&[("CNI_COMMAND", "VERSION")], Endpoint::Cni)),
            "could not extract the CNI command args: unknown cmd type: VERSION"
        );
    }

    #[test]
    fn add_needs_its_keys_but_status_and_gc_do_not() {
        let e = request(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c")], Endpoint::Cni).unwrap_err();
        assert_eq!(e, RequestError::CommandArgs("missing CNI_NETNS".into()));
        let s = request(&[("CNI_COMMAND", "STATUS")], Endpoint::Cni).unwrap();
        assert_eq!((s.command, s.ifname.as_str(), s.pod.is_none()), (Command::Status, "eth0", true));
        assert!(request(&[("CNI_COMMAND", "GC")], Endpoint::Cni).is_ok());
    }

    #[test]
    fn del_without_netns_or_args_still_runs() {
        let d = request(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c")], Endpoint::Cni).unwrap();
        assert_eq!((d.netns.as_str(), d.cni_args.as_str(), d.pod.is_none()), ("", "", true));
        assert_eq!(
            request(&[("CNI_COMMAND", "DEL")], Endpoint::Cni).unwrap_err(),
            RequestError::CommandArgs("missing CNI_CONTAINERID".into())
        );
    }

    #[test]
    fn container_ids_that_are_paths_are_refused_before_anything_runs() {
        for bad in ["../../etc/passwd", "/abs/path", "a/b", "..", "", "x\0y", "-lead"] {
            for command in ["ADD", "DEL", "CHECK"] {
                let e = request(
                    &[("CNI_COMMAND", command), ("CNI_CONTAINERID", bad), ("CNI_NETNS", "/n"), ("CNI_ARGS", POD)],
                    Endpoint::Cni,
                )
                .unwrap_err();
                assert!(
                    matches!(&e, RequestError::CommandArgs(m) if m.starts_with("invalid CNI_CONTAINERID") || m.starts_with("missing")),
                    "{command} {bad:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn interface_names_are_validated() {
        for bad in ["a/b", "..", ".", "a b", "0123456789abcdef"] {
            let e = request(
                &[
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "c"),
                    ("CNI_NETNS", "/n"),
                    ("CNI_IFNAME", bad),
                    ("CNI_ARGS", POD),
                ],
                Endpoint::Cni,
            )
            .unwrap_err();
            assert!(matches!(&e, RequestError::CommandArgs(m) if m.starts_with("invalid CNI_IFNAME")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn pod_args_are_strict_for_add_and_lenient_for_del() {
        let base = [("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/n")];
        let with = |command: &'static str, args: &'static str| {
            let mut v = base.to_vec();
            v.push(("CNI_COMMAND", command));
            v.push(("CNI_ARGS", args));
            request(&v, Endpoint::Cni)
        };
        let p = with("ADD", "IgnoreUnknown=1; K8S_POD_NAMESPACE = ns ;K8S_POD_NAME=p;K8S_POD_UID=").unwrap();
        assert_eq!(p.pod, Some(PodIdentity { namespace: "ns".into(), name: "p".into(), uid: Some(String::new()) }));
        assert_eq!(
            with("ADD", "K8S_POD_NAME=p").unwrap_err(),
            RequestError::PodArgs("missing K8S_POD_NAMESPACE".into())
        );
        assert_eq!(with("ADD", "A=b=c").unwrap_err(), RequestError::PodArgs("invalid CNI_ARG 'A=b=c'".into()));
        assert_eq!(with("DEL", "A=b=c").unwrap().pod, None);
    }

    #[test]
    fn both_readings_of_cni_args_are_parsed_once() {
        let r = request(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/n"),
                ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;Foo=bar"),
            ],
            Endpoint::Cni,
        )
        .unwrap();
        assert!(r.pod.is_some(), "the server reading ignores unknown keys");
        assert!(r.load_args.is_err(), "libcni's reading refuses them without IgnoreUnknown");
        let fallback = r.load_args_or_default();
        assert_eq!((fallback.pod.namespace.as_str(), fallback.pod.name.as_str()), ("ns", "p"));
    }

    #[test]
    fn describe_matches_the_reference() {
        let r = request(
            &[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/n"), ("CNI_ARGS", POD)],
            Endpoint::Cni,
        )
        .unwrap();
        assert_eq!(
            r.describe(),
            r#"ContainerID:"c1" Netns:"/n" IfName:"eth0" Args:"K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u" Path:"""#
        );
    }

    #[test]
    fn a_del_from_the_cache_reads_the_recorded_args() {
        let pairs: Vec<(String, String)> =
            [("IgnoreUnknown", "true"), ("K8S_POD_NAMESPACE", "ns"), ("K8S_POD_NAME", "p")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let d = CniRequest::del_from_cache(b"{}", "c1", "/n", "eth0", &pairs).unwrap();
        assert_eq!((d.command, d.container_id.as_str(), d.netns.as_str()), (Command::Del, "c1", "/n"));
        assert_eq!(d.pod, Some(PodIdentity { namespace: "ns".into(), name: "p".into(), uid: None }));
        assert_eq!(d.cni_args, "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p");
        assert!(d.load_args.is_ok());
        assert!(CniRequest::del_from_cache(b"{}", "../x", "", "eth0", &[]).is_err());
        // A cached interface name a runtime could not have sent is refused, not replayed.
        assert!(CniRequest::del_from_cache(b"{}", "c1", "/n", "bad/ifname", &[]).is_err());
        assert!(CniRequest::del_from_cache(b"{}", "c1", "/n", "much-too-long-ifname", &[]).is_err());
    }

    #[test]
    fn a_missing_uid_is_recovered_except_for_del() {
        let env = [("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/n"), ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p")];
        let with = |command: &'static str| {
            let mut v = env.to_vec();
            v.push(("CNI_COMMAND", command));
            request(&v, Endpoint::Cni).unwrap()
        };
        let add = with("ADD").with_recovered_uid(|_, _| Some("u".into())).unwrap();
        assert_eq!(add.pod.unwrap().uid.as_deref(), Some("u"));
        assert!(matches!(with("ADD").with_recovered_uid(|_, _| None), Err(RequestError::PodArgs(_))));
        assert_eq!(with("DEL").with_recovered_uid(|_, _| None).unwrap().pod.unwrap().uid, None);
    }

    #[test]
    fn bad_bodies_are_decode_errors() {
        for body in [&b"not json"[..], br#"{"config":{"a":1}}"#, br#"{"config":"!!"}"#] {
            assert!(matches!(CniRequest::parse(body, Endpoint::Cni), Err(RequestError::Decode(_))), "{body:?}");
        }
    }
}
