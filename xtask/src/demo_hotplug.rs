//! The demo's hot-plug (`dynamicNetworks`): a network added to a running pod's selection
//! annotation appears in its sandbox, and goes when it is taken out again.

use anyhow::Result;
use std::time::{Duration, Instant};

use crate::harness::{self, LocalEnv, PodRun, step};

/// The pod the demo plugs a network into, and the network.
pub const POD: &str = "plain";
pub const NETWORK: &str = "bridge-net";

fn statuses(env: &LocalEnv, pod: &PodRun) -> Vec<(String, String)> {
    let Ok(api_pod) = env.get_pod(&pod.namespace, &pod.name) else { return vec![] };
    harness::network_status(&api_pod)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.interface))
        .collect()
}

fn annotate(env: &LocalEnv, pod: &PodRun, value: Option<&str>) -> Result<()> {
    let key = "k8s.v1.cni.cncf.io/networks";
    let change = match value {
        Some(v) => format!("{key}={v}"),
        None => format!("{key}-"),
    };
    let cmd = env.kubectl(&["-n", &pod.namespace, "annotate", "pod", &pod.name, &change, "--overwrite"]);
    println!("    {cmd}");
    cmd.output()?;
    Ok(())
}

/// Wait (20 s at most) until network-status has `want` entries; whether it did.
fn wait_entries(env: &LocalEnv, pod: &PodRun, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if statuses(env, pod).len() == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Plug [`NETWORK`] into `pod` and out again; failures are returned as lines.
pub fn show(env: &LocalEnv, pod: &PodRun, show_pod: &dyn Fn(&LocalEnv, &PodRun) -> Result<()>) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let before = statuses(env, pod).len();
    step(format!("hot-plug (dynamicNetworks): {NETWORK} added to the running pod {}/{}", pod.namespace, pod.name));
    annotate(env, pod, Some(NETWORK))?;
    if wait_entries(env, pod, before + 1) {
        show_pod(env, pod)?;
    } else {
        failures.push(format!(
            "hot-plug of {NETWORK} into {}: network-status still {:?}",
            pod.name,
            statuses(env, pod)
        ));
    }
    step(format!("unplug: the annotation taken out of {}/{}", pod.namespace, pod.name));
    annotate(env, pod, None)?;
    if wait_entries(env, pod, before) {
        show_pod(env, pod)?;
    } else {
        failures.push(format!("unplug of {NETWORK} from {}: network-status still {:?}", pod.name, statuses(env, pod)));
    }
    Ok(failures)
}
