//! [`CniRuntime`] driving Debian's reference plugins (`/usr/lib/cni`): bridge + host-local, then a
//! bridge + tuning chain. Needs root and Debian's containernetworking-plugins:
//! `#[ignore]`d, run by CI as root with `--include-ignored`, where a missing plugin fails the test;
//! a machine that cannot create network namespaces skips it ([`test_skip::require`]).
//!
//! Isolation: plugins run in the runtime's own network namespace, which for a test process is
//! the host's. So that nothing touches the host, every test creates two fresh namespaces — a
//! "host" one and a "container" one — and puts each plugin behind a two-line wrapper script in a
//! temporary plugin directory:
//!
//! ```sh
//! #!/bin/sh
//! exec ip netns exec <host-ns> /usr/lib/cni/<plugin>
//! ```
//!
//! The bridge, the host-side veth and the bridge's gateway address thus live in the test's "host"
//! namespace; delegated plugins (host-local) are found through `CNI_PATH`, i.e. through their
//! wrappers too. host-local keeps its leases in a per-test `dataDir`. Both namespaces are deleted
//! by a drop guard, even when an assertion fails; deleting them destroys every link made inside.

use cni::NetConfList;
use cni::exec::RawExec;
use cni::runtime::{CniRuntime, RuntimeConf};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PLUGIN_DIR: &str = "/usr/lib/cni";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace this test created; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(role: &str) -> Result<Self, String> {
        let name = format!("cnirt-{}-{}-{role}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let out =
            Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip netns add {name} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(Self { name })
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }

    /// `ip -n <ns> -j <args>` as JSON.
    fn ip_json(&self, args: &[&str]) -> Value {
        let out = Command::new("ip").args(["-n", &self.name, "-j"]).args(args).output().unwrap();
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

struct Env {
    host: Netns,
    ctr: Netns,
    dir: tempfile::TempDir,
    runtime: CniRuntime<RawExec>,
}

impl Env {
    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// Leases host-local holds for `network` (files named after an IP address).
    fn leases(&self, network: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.data_dir().join(network)) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    fn addresses(&self, ifname: &str) -> Vec<String> {
        let v = self.ctr.ip_json(&["addr", "show", "dev", ifname]);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().map(str::to_string))
            .collect()
    }

    fn link(&self, ifname: &str) -> Option<Value> {
        self.ctr.ip_json(&["link", "show", "dev", ifname]).as_array().and_then(|a| a.first().cloned())
    }
}

/// Set everything up (`None`: this machine cannot create network namespaces, a skip).
fn setup(plugins: &[&str]) -> Option<Env> {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root (network namespaces); run it as root");
    for p in plugins.iter().chain(["host-local"].iter()) {
        assert!(
            Path::new(PLUGIN_DIR).join(p).is_file(),
            "this test needs {PLUGIN_DIR}/{p} (Debian's containernetworking-plugins)"
        );
    }
    let namespaces = Netns::create("h").and_then(|host| Ok((host, Netns::create("c")?)));
    let (host, ctr) = match namespaces {
        Ok(both) => both,
        Err(e) => {
            test_skip::require(Some(&e));
            return None;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for p in plugins.iter().chain(["host-local"].iter()) {
        let wrapper = bin.join(p);
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec ip netns exec {} {PLUGIN_DIR}/{p}\n", host.name)).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let runtime = CniRuntime::new(vec![bin], dir.path().join("cache"), RawExec::with_timeout(Duration::from_secs(60)));
    Some(Env { host, ctr, dir, runtime })
}

fn bridge_plugin(env: &Env, subnet: &str) -> Value {
    json!({
        "type": "bridge",
        "bridge": "rtbr0",
        "isGateway": true,
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": subnet}]],
            "dataDir": env.data_dir(),
        }
    })
}

#[tokio::test]
#[ignore = "needs root and containernetworking-plugins"]
async fn bridge_and_host_local_add_check_del() {
    let Some(env) = setup(&["bridge"]) else { return };
    let network = format!("rtnet-{}", env.host.name);
    let list = NetConfList::from_value(json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [bridge_plugin(&env, "10.77.1.0/24")],
    }))
    .unwrap();
    let rt = RuntimeConf::new(format!("ctr-{}", env.ctr.name), env.ctr.path(), "eth0").with_arg("IgnoreUnknown", "1");

    let result = env.runtime.add_network_list(&list, &rt).await.unwrap();
    let eth0 = result.interfaces.iter().find(|i| i.name == "eth0").expect("eth0 in the result");
    assert_eq!(eth0.sandbox, env.ctr.path());
    let ip = result.ips[0].address.addr().to_string();
    assert!(ip.starts_with("10.77.1."), "{ip}");
    let addrs = env.addresses("eth0");
    assert!(addrs.contains(&ip), "{addrs:?}");
    assert_eq!(env.leases(&network), vec![ip.clone()]);
    let cache = env.runtime.cache_file_path(&network, &rt).unwrap();
    assert!(cache.exists());
    // The bridge is in the test's "host" namespace, not the real host's.
    assert!(env.host.ip_json(&["link", "show", "dev", "rtbr0"]).is_array());

    env.runtime.check_network_list(&list, &rt).await.unwrap();

    env.runtime.del_network_list(&list, &rt).await.unwrap();
    assert!(!cache.exists());
    assert!(env.link("eth0").is_none(), "eth0 still in the container");
    assert!(env.leases(&network).is_empty(), "lease left: {:?}", env.leases(&network));
    // DEL is idempotent.
    env.runtime.del_network_list(&list, &rt).await.unwrap();
    // A CHECK after DEL fails (no interface, no prevResult).
    assert!(env.runtime.check_network_list(&list, &rt).await.is_err());
}

#[tokio::test]
#[ignore = "needs root and containernetworking-plugins"]
async fn bridge_and_tuning_chain_with_mac_capability() {
    let Some(env) = setup(&["bridge", "tuning"]) else { return };
    let network = format!("rtchain-{}", env.host.name);
    let list = NetConfList::from_value(json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            bridge_plugin(&env, "10.77.2.0/24"),
            {
                "type": "tuning",
                "capabilities": {"mac": true},
                "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}
            }
        ],
    }))
    .unwrap();
    let mac = "c2:11:22:33:44:55";
    let rt = RuntimeConf::new(format!("ctr-{}", env.ctr.name), env.ctr.path(), "eth0")
        .with_capability("mac", json!(mac))
        .with_capability("portMappings", json!([]));

    let result = env.runtime.add_network_list(&list, &rt).await.unwrap();
    let link = env.link("eth0").expect("eth0 in the container");
    assert_eq!(link["address"], mac, "tuning applied runtimeConfig.mac");
    let eth0 = result.interfaces.iter().find(|i| i.name == "eth0").unwrap();
    assert_eq!(eth0.mac, mac, "the chained result reports the new MAC");
    let sysctl = std::process::Command::new("ip")
        .args(["netns", "exec", &env.ctr.name, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&sysctl.stdout).trim(), "1");
    let cache = env.runtime.cache_file_path(&network, &rt).unwrap();
    assert!(cache.exists());
    let cached = env.runtime.get_cached_result(&network, &rt).unwrap().unwrap();
    assert_eq!(cached, result);

    env.runtime.check_network_list(&list, &rt).await.unwrap();
    env.runtime.del_network_list(&list, &rt).await.unwrap();
    assert!(!cache.exists());
    assert!(env.link("eth0").is_none());
    assert!(env.leases(&network).is_empty());
    env.runtime.del_network_list(&list, &rt).await.unwrap();
}
