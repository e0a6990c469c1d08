//! CHECK (spec §6.2).
//!
//! Unlike the Go daemon (whose CHECK does nothing once `clusterNetwork` is set, i.e. always in
//! auto mode), every delegate in the delegate cache is checked against its cached result, and a
//! container without a cache (never added, or already deleted) fails the CHECK, as the CNI spec
//! asks of a plugin that has no such attachment.

use super::{Planned, exec_check, plan_context, resolve_settings, runtime_config};
use crate::daemon::Daemon;
use crate::error::CommandError;
use crate::request::CniRequest;
use multus::cache;
use multus::config::NetConf;
use multus::plan::{self, Operation};
use multus::resolve;
use std::path::PathBuf;

pub async fn run(d: &Daemon, req: &CniRequest, conf: &NetConf) -> Result<(), CommandError> {
    let cni_dir = PathBuf::from(&conf.cni_dir);
    let delegates = match cache::read_cache(&cni_dir, &req.container_id) {
        cache::CacheRead::Found { delegates, .. } => delegates,
        _ if conf.cluster_network.is_empty() && !conf.delegates.is_empty() => {
            let no_nads = crate::seams::NoCluster;
            resolve::resolve_add_delegates(&resolve_settings(conf), None, None, &no_nads, &mut resolve::NoDevices)?
                .delegates
        }
        cache::CacheRead::Missing => return Err(CommandError::NoAttachment(req.container_id.clone())),
        cache::CacheRead::Unreadable(e) | cache::CacheRead::Invalid(e) => {
            return Err(CommandError::Check {
                network: String::new(),
                conflist: false,
                cause: format!("the delegate cache is unusable: {e}"),
            });
        }
    };
    let args = req.load_args_or_default();
    let runtime_config = runtime_config(conf);
    let ctx = plan_context(d, req, &args, runtime_config.as_ref());
    let rt = d.runtime(conf);
    for (i, delegate) in delegates.iter().enumerate() {
        let failed = |cause: String| CommandError::Check {
            network: delegate.network_name().to_string(),
            conflist: delegate.is_conflist(),
            cause,
        };
        let inv = plan::plan_invocation(delegate, i, &ctx, Operation::Check).map_err(|e| failed(e.to_string()))?;
        let planned = Planned::new(req, inv);
        exec_check(d, &rt, delegate, &planned.runtime_conf).await.map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}
