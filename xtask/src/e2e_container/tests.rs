use super::*;

fn node() -> Node {
    Node { root: PathBuf::from("/r/node") }
}

fn plan(privileged: bool) -> (Cmd, Cmd) {
    let docs = manifests::load_file(&manifests::manifest_path()).unwrap();
    let (pod, _) = daemonset_pod(&docs).unwrap();
    let node = node();
    let shared = |p: &Path| {
        if p.starts_with("/run/netns") { SourcePropagation::Shared } else { SourcePropagation::Private }
    };
    let ctx = PodContext {
        node: &node,
        node_name: "node1",
        image: "multus-rs:test",
        privileged,
        volume_dir: PathBuf::from("/r/volumes"),
        service_account_dir: PathBuf::from("/r/sa"),
        api_port: 6443,
        propagation_of: &shared,
    };
    let init = docker_run(&ctx, &pod, &pod["initContainers"][0], "i", true).unwrap();
    let daemon = docker_run(&ctx, &pod, &pod["containers"][0], "d", false).unwrap();
    (init, daemon)
}

#[test]
fn the_init_container_runs_install_multus_on_the_nodes_bin_dir() {
    let (init, _) = plan(true);
    assert_eq!(
        init.to_string(),
        "docker run --rm --name i --privileged --network host --pid host \
         -e KUBERNETES_SERVICE_HOST=127.0.0.1 -e KUBERNETES_SERVICE_PORT=6443 \
         --mount type=bind,source=/r/sa,target=/var/run/secrets/kubernetes.io/serviceaccount,readonly \
         --mount type=bind,source=/r/node/opt/cni/bin,target=/host/opt/cni/bin \
         --entrypoint /usr/src/multus-cni/bin/install_multus multus-rs:test -d /host/opt/cni/bin -t thick"
    );
}

#[test]
fn the_daemon_container_is_the_manifests() {
    let (_, d) = plan(false);
    let s = d.to_string();
    assert!(s.starts_with("docker run -d --name d --cap-add ALL --cap-drop SYS_RESOURCE"), "{s}");
    for part in [
        "--network host --pid host",
        "--memory 52428800 --cpus 0.1",
        "-e MULTUS_NODE_NAME=node1",
        "-e MULTUS_POD_NAME=kube-multus-ds-node1",
        "-e MULTUS_POD_NAMESPACE=kube-system",
        "source=/r/node/etc/cni/net.d,target=/host/etc/cni/net.d ",
        "source=/r/node/opt/cni/bin,target=/opt/cni/bin ",
        "source=/r/node/run,target=/host/run ",
        "source=/r/node/var/lib/cni/multus,target=/var/lib/cni/multus ",
        "source=/r/node/var/lib/kubelet,target=/var/lib/kubelet ",
        "source=/r/node/run/k8s.cni.cncf.io,target=/run/k8s.cni.cncf.io ",
        // The real namespaces, where the manifest mounts them and inside the node's root.
        "source=/run/netns,target=/run/netns,bind-propagation=rslave ",
        "source=/r/volumes/multus-daemon-config,target=/etc/cni/net.d/multus.d,readonly ",
        "source=/r/node,target=/hostroot ",
        "source=/proc,target=/hostroot/proc ",
        "source=/sys,target=/hostroot/sys ",
        "source=/dev,target=/hostroot/dev ",
        "source=/run/netns,target=/hostroot/run/netns,bind-propagation=rslave ",
        "source=/run/netns,target=/host/run/netns ",
        "source=/r/node/etc/cni/multus/net.d,target=/etc/cni/multus/net.d ",
    ] {
        assert!(s.contains(part), "{part:?} not in {s}");
    }
    assert!(s.ends_with("--entrypoint /usr/src/multus-cni/bin/multus-daemon multus-rs:test"), "{s}");
    assert!(!s.contains("source=/lib") && !s.contains("source=/usr/lib"), "{s}");
}

#[test]
fn node_paths() {
    let n = node();
    assert_eq!(n.host_path("/"), PathBuf::from("/r/node"));
    assert_eq!(n.host_path("/run/netns/"), PathBuf::from("/run/netns"));
    assert_eq!(n.host_path("/run/netns/x"), PathBuf::from("/run/netns/x"));
    assert_eq!(n.host_path("/run/netnsx"), PathBuf::from("/r/node/run/netnsx"));
    assert_eq!(n.host_path("/opt/cni/bin"), PathBuf::from("/r/node/opt/cni/bin"));
    assert!(shim_wrapper(&n).contains("exec chroot '/r/node' /opt/cni/bin/multus-shim \"$@\""));
}

#[test]
fn quantities() {
    assert_eq!(memory_bytes("50Mi").unwrap(), 50 * 1024 * 1024);
    assert_eq!(memory_bytes("15Mi").unwrap(), 15 * 1024 * 1024);
    assert_eq!(memory_bytes("1G").unwrap(), 1_000_000_000);
    assert_eq!(memory_bytes("1024").unwrap(), 1024);
    assert!(memory_bytes("lots").is_err());
    assert_eq!(cpus("100m").unwrap(), "0.1");
    assert_eq!(cpus("2").unwrap(), "2");
    assert!(cpus("x").is_err());
}

#[test]
fn propagation_follows_the_source_mount() {
    let info = "22 1 8:1 / / rw,relatime - ext4 /dev/vda rw\n\
                40 22 0:5 / /var/lib/docker rw shared:1 - ext4 /dev/vda rw\n\
                41 22 0:6 / /run/netns rw shared:2 - tmpfs tmpfs rw\n\
                42 22 0:7 / /mnt/s rw master:3 - tmpfs tmpfs rw\n";
    assert_eq!(mount_propagation(info, "/tmp/x"), SourcePropagation::Private);
    assert_eq!(mount_propagation(info, "/run/netns/"), SourcePropagation::Shared);
    assert_eq!(mount_propagation(info, "/run/netns/ns1"), SourcePropagation::Shared);
    assert_eq!(mount_propagation(info, "/run/netnsx"), SourcePropagation::Private);
    assert_eq!(mount_propagation(info, "/mnt/s/y"), SourcePropagation::Slave);
    use SourcePropagation::*;
    assert_eq!(docker_propagation(Some("HostToContainer"), Shared), Some("rslave"));
    assert_eq!(docker_propagation(Some("HostToContainer"), Slave), Some("rslave"));
    assert_eq!(docker_propagation(Some("HostToContainer"), Private), None);
    assert_eq!(docker_propagation(Some("Bidirectional"), Shared), Some("rshared"));
    assert_eq!(docker_propagation(Some("Bidirectional"), Private), None);
    assert_eq!(docker_propagation(None, Shared), None);
}

#[test]
fn volumes_are_written_and_the_config_edited_outside_upstream() {
    let docs = manifests::load_file(&manifests::manifest_path()).unwrap();
    let (pod, cms) = daemonset_pod(&docs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    materialise_volumes(&pod, &cms, dir.path(), &|_, _, c| test_daemon_config(&c)).unwrap();
    let conf: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("multus-daemon-config/daemon-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(conf["cniVersion"], "1.0.0");
    assert_eq!(conf["chrootDir"], "/hostroot");
    materialise_volumes(&pod, &cms, dir.path(), &|_, _, c| Ok(c)).unwrap();
    let text = std::fs::read_to_string(dir.path().join("multus-daemon-config/daemon-config.json")).unwrap();
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(text, cm["data"]["daemon-config.json"].as_str().unwrap(), "upstream: byte for byte");
}

/// A node made from Debian's plugins: the plugins and their loader and libc are inside.
#[test]
fn a_node_with_debians_plugins() {
    let missing = !Path::new(SYSTEM_CNI_DIR).join("bridge").exists() || !crate::util::have("ldd");
    if !test_node::require(missing.then(|| format!("needs {SYSTEM_CNI_DIR}/bridge and ldd"))) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::create(&dir.path().join("node"), Path::new(SYSTEM_CNI_DIR), &["bridge"]).unwrap();
    assert!(node.root.join("opt/cni/bin/bridge").is_file());
    assert_eq!(std::fs::read_link(node.root.join("var/run")).unwrap(), PathBuf::from("../run"));
    let ldd = std::process::Command::new("ldd").arg(node.root.join("opt/cni/bin/bridge")).output().unwrap();
    for lib in test_node::rootfs::shared_libraries(&String::from_utf8_lossy(&ldd.stdout)) {
        assert!(node.root.join(lib.trim_start_matches('/')).is_file(), "{lib} not in the node");
    }
    for r in REAL_NODE_PATHS {
        assert!(node.root.join(r.trim_start_matches('/')).is_dir(), "{r}");
    }
}
