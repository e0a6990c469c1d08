//! One request to `/cni` or `/delegate`: decode, extract the CNI and pod arguments (spec §4.3),
//! build the effective config (§2.4), dispatch to [`crate::ops`], and shape the reply (§4.4–§4.5).

use crate::ops::{self, Daemon, OpError};
use crate::server::Reply;
use cni::Command;
use multus::config::NetConf;
use multus_api::{ErrorBody, Request};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The CNI arguments of a request, after extraction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArgs {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` exactly as the runtime passed it.
    pub args: String,
    /// `K8S_POD_INFRA_CONTAINER_ID` from the request environment.
    pub infra_container_id: String,
}

/// The pod a request concerns, from `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodArgs {
    pub namespace: String,
    pub name: String,
    /// `None`: the runtime did not pass `K8S_POD_UID`.
    pub uid: Option<String>,
}

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Cni,
    Delegate,
}

/// Extract the CNI arguments (§4.3). Our DEL is lenient where the Go daemon drops the DEL
/// entirely (quirk 12): a DEL without `CNI_NETNS` or `CNI_ARGS` still runs from the cache.
pub fn extract_cmd_args(env: &BTreeMap<String, String>, endpoint: Endpoint) -> Result<CmdArgs, String> {
    let command_str = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    if command_str.is_empty() {
        return Err("unexpected or missing CNI_COMMAND".into());
    }
    let command = match (command_str.parse::<Command>(), endpoint) {
        (Ok(Command::Version), _) | (Err(_), _) | (Ok(Command::Gc), Endpoint::Delegate) => {
            return Err(format!("unknown cmd type: {command_str}"));
        }
        (Ok(c), _) => c,
    };
    let needs_pod_context = !matches!(command, Command::Status | Command::Gc);
    let lenient = command == Command::Del;
    let get = |key: &str, required: bool| -> Result<String, String> {
        match env.get(key) {
            Some(v) => Ok(v.clone()),
            None if required => Err(format!("missing {key}")),
            None => Ok(String::new()),
        }
    };
    Ok(CmdArgs {
        command,
        container_id: get("CNI_CONTAINERID", needs_pod_context)?,
        netns: get("CNI_NETNS", needs_pod_context && !lenient)?,
        ifname: env.get("CNI_IFNAME").filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| "eth0".into()),
        args: get("CNI_ARGS", needs_pod_context && !lenient)?,
        infra_container_id: env.get("K8S_POD_INFRA_CONTAINER_ID").cloned().unwrap_or_default(),
    })
}

/// Pod namespace, name and UID from `CNI_ARGS`, parsed as strictly as the Go server does:
/// every item must be exactly `K=V` (both trimmed).
pub fn extract_pod_args(cni_args: &str) -> Result<PodArgs, String> {
    let mut out = PodArgs::default();
    let (mut have_ns, mut have_name) = (false, false);
    for item in cni_args.split(';').filter(|i| !i.is_empty()) {
        let parts: Vec<&str> = item.split('=').collect();
        if parts.len() != 2 {
            return Err(format!("invalid CNI_ARG '{item}'"));
        }
        let (k, v) = (parts[0].trim(), parts[1].trim());
        match k {
            "K8S_POD_NAMESPACE" => {
                out.namespace = v.to_string();
                have_ns = true;
            }
            "K8S_POD_NAME" => {
                out.name = v.to_string();
                have_name = true;
            }
            "K8S_POD_UID" => out.uid = Some(v.to_string()),
            _ => {}
        }
    }
    if !have_ns {
        return Err("missing K8S_POD_NAMESPACE".into());
    }
    if !have_name {
        return Err("missing K8S_POD_NAME".into());
    }
    Ok(out)
}

/// Serves `/cni` and `/delegate` for the socket server.
pub struct Handler {
    pub daemon: Arc<Daemon>,
}

impl Handler {
    async fn handle(&self, body: Vec<u8>, endpoint: Endpoint) -> Reply {
        let request = match Request::from_json(&body) {
            Ok(r) => r,
            Err(e) => return Reply::text(400, &e.to_string()),
        };
        let cmd = match extract_cmd_args(&request.env, endpoint) {
            Ok(c) => c,
            Err(e) => return Reply::text(400, &format!("could not extract the CNI command args: {e}")),
        };
        let pod = match self.pod_args(&cmd, endpoint).await {
            Ok(p) => p,
            Err(e) => return Reply::text(400, &format!("could not extract the kubernetes runtime args: {e}")),
        };
        let merged = match self.daemon.config.merge_request_config(&request.config) {
            Ok(m) => m,
            Err(e) => return error_reply(&request, OpError::text(e.to_string())),
        };
        tracing::info!("{} starting CNI request {}", cmd.command, request.describe());
        let _sandbox = match cmd.command {
            Command::Add | Command::Del | Command::Check if !cmd.container_id.is_empty() => {
                Some(self.daemon.lock_sandbox(&cmd.container_id).await)
            }
            _ => None,
        };
        let outcome = self.dispatch(&request, &cmd, pod.as_ref(), &merged, endpoint).await;
        match outcome {
            Ok(body) => {
                tracing::info!(
                    "{} finished CNI request {}, result: {:?}",
                    cmd.command,
                    request.describe(),
                    String::from_utf8_lossy(&body)
                );
                Reply::ok(body)
            }
            Err(e) => {
                tracing::error!("{} finished CNI request {}, err: {}", cmd.command, request.describe(), e);
                error_reply(&request, e)
            }
        }
    }

    /// Pod identity. STATUS and GC need none; DEL tolerates its absence (it works from the
    /// cache); a missing UID is recovered from the pod cache as the Go server does.
    async fn pod_args(&self, cmd: &CmdArgs, endpoint: Endpoint) -> Result<Option<PodArgs>, String> {
        if matches!(cmd.command, Command::Status | Command::Gc) && endpoint == Endpoint::Cni {
            return Ok(None);
        }
        let mut pod = match extract_pod_args(&cmd.args) {
            Ok(p) => p,
            Err(_) if cmd.command == Command::Del => return Ok(None),
            Err(e) => return Err(e),
        };
        if pod.uid.is_none() && cmd.command != Command::Del {
            match self.daemon.kube.as_ref().and_then(|k| k.pods.get(&pod.namespace, &pod.name)) {
                Some(p) => pod.uid = Some(p.uid),
                None => {
                    return Err(format!(
                        "missing pod UID; attempted to recover it from the K8s API, but failed: pod {}/{} not found in the cache",
                        pod.namespace, pod.name
                    ));
                }
            }
        }
        Ok(Some(pod))
    }

    async fn dispatch(
        &self,
        request: &Request,
        cmd: &CmdArgs,
        pod: Option<&PodArgs>,
        merged: &[u8],
        endpoint: Endpoint,
    ) -> Result<Vec<u8>, OpError> {
        if endpoint == Endpoint::Delegate {
            return ops::delegate(&self.daemon, request, cmd, pod, merged).await;
        }
        let conf =
            NetConf::from_bytes(merged).map_err(|e| OpError::text(format!("Multus: error loading netconf: {e}")))?;
        match cmd.command {
            Command::Add => {
                let pod = pod.ok_or_else(|| OpError::text("required CNI variable missing"))?;
                if pod.name.is_empty() || pod.namespace.is_empty() {
                    return Err(OpError::text(format!(
                        "required CNI variable missing. pod name: {}; pod namespace: {}",
                        pod.name, pod.namespace
                    )));
                }
                let result = ops::add(&self.daemon, cmd, pod, &conf).await.map_err(|e| {
                    e.prefixed(&format!("error configuring pod [{}/{}] networking: ", pod.namespace, pod.name))
                })?;
                let response = multus_api::Response { result: Some(result) };
                Ok(serde_json::to_vec(&response).unwrap_or_default())
            }
            Command::Del => ops::del(&self.daemon, cmd, pod, &conf).await.map(|()| Vec::new()),
            Command::Check => ops::check(&self.daemon, cmd, pod, &conf).await.map(|()| Vec::new()),
            Command::Status => ops::status(&self.daemon, &conf).await.map(|()| Vec::new()),
            Command::Gc => ops::gc(&self.daemon, &conf).await.map(|()| Vec::new()),
            Command::Version => Err(OpError::text("unknown cmd type: VERSION")),
        }
    }
}

/// Errors from the command handlers carry the request description, as the Go daemon's do;
/// a CNI error object (e.g. a delegate's STATUS code 50) is sent as JSON so its code survives.
fn error_reply(request: &Request, e: OpError) -> Reply {
    match e {
        OpError::Cni(err) => Reply::from_error_body(&ErrorBody::Cni(err)),
        OpError::Text(msg) => Reply::text(400, &format!("{} ERRORED: {msg}", request.describe())),
    }
}

impl crate::server::Api for Handler {
    fn cni(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.handle(body, Endpoint::Cni))
    }
    fn delegate(&self, body: Vec<u8>) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.handle(body, Endpoint::Delegate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn command_is_required_and_known() {
        assert_eq!(extract_cmd_args(&env(&[]), Endpoint::Cni).unwrap_err(), "unexpected or missing CNI_COMMAND");
        assert_eq!(
            extract_cmd_args(&env(&[("CNI_COMMAND", "FOO")]), Endpoint::Cni).unwrap_err(),
            "unknown cmd type: FOO"
        );
        assert_eq!(
            extract_cmd_args(&env(&[("CNI_COMMAND", "GC")]), Endpoint::Delegate).unwrap_err(),
            "unknown cmd type: GC"
        );
    }

    #[test]
    fn add_needs_its_keys_but_status_and_gc_do_not() {
        let e = extract_cmd_args(&env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c")]), Endpoint::Cni).unwrap_err();
        assert_eq!(e, "missing CNI_NETNS");
        let s = extract_cmd_args(&env(&[("CNI_COMMAND", "STATUS")]), Endpoint::Cni).unwrap();
        assert_eq!((s.command, s.ifname.as_str()), (Command::Status, "eth0"));
        assert!(extract_cmd_args(&env(&[("CNI_COMMAND", "GC")]), Endpoint::Cni).is_ok());
    }

    #[test]
    fn del_without_netns_or_args_still_runs() {
        let d = extract_cmd_args(&env(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c")]), Endpoint::Cni).unwrap();
        assert_eq!((d.netns.as_str(), d.args.as_str()), ("", ""));
        assert_eq!(
            extract_cmd_args(&env(&[("CNI_COMMAND", "DEL")]), Endpoint::Cni).unwrap_err(),
            "missing CNI_CONTAINERID"
        );
    }

    #[test]
    fn pod_args_are_strict() {
        let p = extract_pod_args("IgnoreUnknown=1; K8S_POD_NAMESPACE = ns ;K8S_POD_NAME=p;K8S_POD_UID=").unwrap();
        assert_eq!((p.namespace.as_str(), p.name.as_str(), p.uid.as_deref()), ("ns", "p", Some("")));
        assert_eq!(extract_pod_args("K8S_POD_NAME=p").unwrap_err(), "missing K8S_POD_NAMESPACE");
        assert_eq!(extract_pod_args("A=b=c").unwrap_err(), "invalid CNI_ARG 'A=b=c'");
        assert_eq!(extract_pod_args("K8S_POD_NAMESPACE=n").unwrap_err(), "missing K8S_POD_NAME");
    }
}
