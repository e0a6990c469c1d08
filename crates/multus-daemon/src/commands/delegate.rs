//! `/delegate` (spec §4.6): run one given delegate config for an existing pod ("hot-plug").
//!
//! Unlike the Go daemon, the daemon config is NOT overlaid onto the delegate's own config (the
//! Go daemon injects `cniVersion`, `binDir`, `socketDir`… into the plugin config, quirk 15):
//! the daemon config only supplies Multus's own settings (`binDir`, `cniDir`). CHECK works for
//! conflists too.

use super::{Outcome, Planned, exec_add, exec_check, exec_del, plan_context};
use crate::daemon::Daemon;
use crate::error::CommandError;
use crate::request::CniRequest;
use crate::seams::{PodEvent, PodLookup};
use cni::{Command, Version};
use multus::config::NetConf;
use multus::error::{ErrorKind, MultusError};
use multus::model::NetworkSelectionElement;
use multus::plan::{self, Operation};
use serde_json::Value;

/// A hot-plugged network is never the master: it is planned at index 1.
const HOT_PLUG_INDEX: usize = 1;

pub async fn run(d: &Daemon, req: &CniRequest) -> Result<Outcome, CommandError> {
    let pod_id = match &req.pod {
        Some(p) if p.is_complete() => p,
        other => {
            let p = other.clone().unwrap_or_default();
            return Err(CommandError::MissingPod { namespace: p.namespace, name: p.name });
        }
    };
    let who = pod_id.pod_ref();
    let conf = multus_settings(d)?;
    let attrs = req.interface_attributes.clone().unwrap_or_default();
    let element = NetworkSelectionElement {
        interface: req.ifname.clone(),
        ips: attrs.ips,
        mac: attrs.mac,
        cni_args: attrs.cni_args,
        ..Default::default()
    };
    let delegate = multus::delegate::load_delegate(&req.config, Some(&element), "", "")
        .map_err(|e| CommandError::multus(&who, ErrorKind::PodDelegates, e.to_string()))?;
    let rt = d.runtime(&conf);
    if req.command == Command::Status {
        return rt
            .status_network_list(&delegate.config().to_list())
            .await
            .map(|()| Outcome::Done)
            .map_err(|e| CommandError::Status(e.to_cni_error()));
    }
    let pod = match d.cluster().lookup_pod(&pod_id.namespace, &pod_id.name).await {
        Ok(PodLookup::Found(p)) => p,
        Ok(PodLookup::NotFound) => return Err(CommandError::PodNotFound { pod: who }),
        Err(e) => return Err(CommandError::cluster(&who, &e)),
    };
    // The pod as the delegates see it: libcni's reading of CNI_ARGS with the API's UID.
    let mut args = req.load_args_or_default();
    args.pod.uid = Some(pod.uid.clone());
    let ctx = plan_context(d, req, &args, None);
    let op = match req.command {
        Command::Add => Operation::Add,
        Command::Del => Operation::Del,
        _ => Operation::Check,
    };
    let net = delegate.network_name().to_string();
    let inv = plan::plan_invocation(&delegate, HOT_PLUG_INDEX, &ctx, op)
        .map_err(|e| MultusError::delegate_add(Some(&who), &net, e))?;
    let Planned { invocation: inv, runtime_conf: rconf } = Planned::new(req, inv);
    match req.command {
        Command::Add => {
            super::check_interface_free(d, req, &delegate, &inv.ifname, &who).await?;
            let result =
                exec_add(d, &rt, &delegate, &rconf).await.map_err(|e| CommandError::delegate_add(&who, &net, &e))?;
            if let Some(message) = plan::added_interface_message(&inv.ifname, &result, &delegate.name) {
                d.cluster().emit(PodEvent { pod, warning: false, reason: "AddedInterface".into(), message });
            }
            let value: Value = result
                .convert_to(Version::V1_1_0)
                .map_err(|e| CommandError::multus(&who, ErrorKind::Other, e.to_string()))?
                .to_value();
            Ok(Outcome::Result(value))
        }
        Command::Del => exec_del(d, &rt, &delegate, &rconf).await.map(|()| Outcome::Done).map_err(|e| {
            CommandError::HotPlugDel(crate::error::DelFailure { network: net, conflist: false, cause: e.to_string() })
        }),
        _ => exec_check(d, &rt, &delegate, &rconf).await.map(|()| Outcome::Done).map_err(|e| CommandError::Check {
            network: net,
            conflist: false,
            cause: e.to_string(),
        }),
    }
}

/// Multus's own settings for `/delegate`: the defaults overlaid with the daemon config.
fn multus_settings(d: &Daemon) -> Result<NetConf, CommandError> {
    let mut raw = d.config.raw.clone();
    raw.entry("clusterNetwork").or_insert_with(|| Value::String("/delegate-api".into()));
    NetConf::from_map(raw).map_err(CommandError::NetConf)
}
