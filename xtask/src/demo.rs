//! `cargo xtask demo`: one node on this machine — kube-mock, multus-daemon, multus-shim and real
//! delegates — and what each pod got.

use anyhow::{Context, Result, bail};

use crate::fixtures;
use crate::harness::{self, Bins, LocalEnv, PodRun, step};
use crate::util::with_cleanup;

#[path = "demo_devices.rs"]
mod devices;
use devices::DeviceDemo;

pub const NAMESPACE: &str = "multus-demo";
/// The seeded pods, in the order they are shown.
pub const PODS: [&str; 3] = ["multi", "static-ip", "plain"];

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Skip the build (use the binaries already in target/demo, or in the directory of
    /// `MULTUS_XTASK_PROFILE`'s profile).
    #[arg(long)]
    pub no_build: bool,
    /// Use fake-cni delegates even when the real plugins could run.
    #[arg(long)]
    pub fake: bool,
    /// Do not install Debian's containernetworking-plugins and iproute2 (done as root on a
    /// machine that lacks them, so that one command sets up a fresh machine).
    #[arg(long)]
    pub no_install: bool,
}

pub fn run(args: DemoArgs) -> Result<()> {
    // The `demo` profile (Cargo.toml): unoptimised, no debug info, one build of everything the
    // demo runs, so a fresh machine shows its first pod in minutes, not after an LTO build.
    harness::use_default_profile("demo");
    if !args.no_install && !args.fake {
        crate::test::install_packages()?;
    }
    with_cleanup(|| demo(&args))
}

fn demo(args: &DemoArgs) -> Result<()> {
    let real = if args.fake {
        println!("fake-cni delegates (--fake)");
        false
    } else {
        match harness::real_delegates_available() {
            Ok(()) => true,
            Err(reason) => {
                println!("Real delegates unavailable: {reason}.");
                println!("Running with fake-cni delegates instead (the same flow; no interfaces are made).");
                false
            }
        }
    };
    if !args.no_build {
        step(format!(
            "building multus-daemon, multus-shim, kube-mock, fake-cni, fake-kubelet, multusctl ({} profile)",
            crate::harness::profile()
        ));
        Bins::build_cmd().args(devices::BUILT_PACKAGES.iter().flat_map(|p| ["-p", p])).run()?;
    }
    let fixture = fixtures::fixtures_dir().join("demo");
    let mut env = LocalEnv::new("demo", &fixture, NAMESPACE, real)?;
    println!("    run directory: {}", env.run.display());
    if real {
        println!(
            "    host links: veth {} (macvlan master), bridges {} and {} (fixed MACs, no addresses)",
            env.var("MACVLAN_MASTER"),
            env.var("CLUSTER_BRIDGE"),
            env.var("NAD_BRIDGE")
        );
    }

    let seed = env.run.join("seed");
    fixtures::render_dir(&fixture.join("seed"), &seed, &env.vars)?;
    let mut device_demo = DeviceDemo::prepare(&env, &seed)?;
    step(format!(
        "starting kube-mock seeded with fixtures/demo/seed (namespace, 3 NADs, 3 pods on node1) and the device network \
         (NAD {} with resourceName {}, pods {} and {})",
        "sriov-net",
        devices::RESOURCE,
        devices::DEVICE_POD,
        devices::MISSING_POD
    ));
    let mock_pid = env.start_mock(&[seed], &[])?;
    println!("    API server {} (pid {mock_pid}), kubeconfig {}", env.api, env.kubeconfig.display());

    let config = env.write_configs()?;
    step("starting fake-kubelet (pod-resources v1 gRPC on a unix socket)");
    device_demo.start(&env)?;
    step(format!("starting multus-daemon -config {} (MULTUS_NODE_NAME=node1)", config.display()));
    env.start_daemon()?;
    println!("    ready; generated {}:", env.multus_conf_path().display());
    println!("    {}", env.multus_conf()?.trim());

    let mut pods: Vec<PodRun> = Vec::new();
    let mut failures = Vec::new();
    for name in PODS {
        let pod = env.sandbox(NAMESPACE, name)?;
        step(format!("ADD {NAMESPACE}/{name} (netns {}, container {})", pod.netns, &pod.container_id[..12]));
        let out = env.shim("ADD", &pod)?;
        if !out.success {
            failures.push(format!("ADD {name}: {}", out.describe()));
            println!("    ADD failed: {}", out.describe());
            continue;
        }
        print_result(&out.stdout);
        show_pod(&env, &pod)?;
        let check = env.shim("CHECK", &pod)?;
        if check.success {
            println!("    CHECK: ok");
        } else {
            failures.push(format!("CHECK {name}: {}", check.describe()));
            println!("    CHECK failed: {}", check.describe());
        }
        pods.push(pod);
    }
    if let Some(pod) = pods.iter().find(|p| p.name == crate::demo_hotplug::POD) {
        failures.extend(crate::demo_hotplug::show(&env, pod, &show_pod)?);
    }

    // The device network: the VF the fake kubelet reports reaches the delegate and the
    // pod's network-status.
    let device_pod = env.sandbox(NAMESPACE, devices::DEVICE_POD)?;
    step(format!(
        "ADD {NAMESPACE}/{} (selects sriov-net: resourceName {}; netns {}, container {})",
        devices::DEVICE_POD,
        devices::RESOURCE,
        device_pod.netns,
        &device_pod.container_id[..12]
    ));
    let out = env.shim("ADD", &device_pod)?;
    if out.success {
        print_result(&out.stdout);
        failures.extend(device_demo.show(&env, &device_pod)?);
        let check = env.shim("CHECK", &device_pod)?;
        if check.success {
            println!("    CHECK: ok");
        } else {
            failures.push(format!("CHECK {}: {}", devices::DEVICE_POD, check.describe()));
            println!("    CHECK failed: {}", check.describe());
        }
        pods.push(device_pod.clone());
    } else {
        failures.push(format!("ADD {}: {}", devices::DEVICE_POD, out.describe()));
        println!("    ADD failed: {}", out.describe());
    }

    for pod in &pods {
        step(format!("DEL {}/{}", pod.namespace, pod.name));
        let out = env.shim("DEL", pod)?;
        if !out.success {
            failures.push(format!("DEL {}: {}", pod.name, out.describe()));
        }
        let view = env.inspect(pod)?;
        let left: Vec<&str> = view.ifaces.iter().map(|i| i.name.as_str()).filter(|n| *n != "lo").collect();
        let files = env.leftovers(pod);
        if left.is_empty() && files.is_empty() {
            println!("    gone: no interface but lo, no delegate cache, no IPAM lease");
        } else {
            println!("    left behind: interfaces {left:?}, files {files:?}");
            failures.push(format!("DEL {} left {left:?} {files:?}", pod.name));
        }
        if pod.name == devices::DEVICE_POD {
            match device_demo.check_deleted(&env, pod) {
                None => println!("    device-info file of net1 removed"),
                Some(file) => failures.push(format!("DEL {} left {file}", pod.name)),
            }
        }
    }

    failures.extend(devices::explain_missing(&env)?);

    step("cleaning up (processes by PID, network namespaces, host links, run directory)");
    if failures.is_empty() {
        println!(
            "demo finished: {} pods added, checked and deleted; {} refused and explained",
            pods.len(),
            devices::MISSING_POD
        );
        Ok(())
    } else {
        println!("daemon log: {}", env.daemon_log().display());
        bail!("demo finished with {} failure(s):\n  {}", failures.len(), failures.join("\n  "))
    }
}

/// The shim's stdout: the cluster network's result, in the caller's CNI version.
fn print_result(stdout: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(stdout) else {
        println!("    shim result: {}", stdout.trim());
        return;
    };
    let ips: Vec<String> = v["ips"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["address"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    println!("    shim result (cniVersion {}): ips {}", v["cniVersion"].as_str().unwrap_or("?"), ips.join(", "));
}

fn show_pod(env: &LocalEnv, pod: &PodRun) -> Result<()> {
    if env.real {
        let view = env.inspect(pod)?;
        println!("    interfaces (ip -n {} -j addr):", pod.netns);
        for i in &view.ifaces {
            println!("      {:<8} {:<17} {:<8} {}", i.name, i.mac, i.state, i.addrs.join(" "));
        }
        println!("    routes (ip -n {} -j route):", pod.netns);
        for r in &view.routes {
            println!("      {r}");
        }
    }
    let api_pod = env.get_pod(&pod.namespace, &pod.name)?;
    match harness::network_status(&api_pod).context("reading network-status")? {
        None => println!("    network-status: (not set)"),
        Some(entries) => {
            println!("    network-status (from the API server):");
            for e in entries {
                println!(
                    "      {:<28} {:<6} {:<16} mac {}{}{}",
                    e.name,
                    e.interface,
                    e.ips.join(","),
                    e.mac,
                    if e.default { " default" } else { "" },
                    if e.gateway.is_empty() { String::new() } else { format!(" gw {}", e.gateway.join(",")) }
                );
            }
        }
    }
    Ok(())
}
