use super::*;
use proptest::prelude::*;

fn spec() -> SandboxSpec {
    SandboxSpec {
        name: "web-0".into(),
        namespace: "team-a".into(),
        uid: "6c1f0e4e-1d5a-4d8e-9b7b-0c1f2e3d4a5b".into(),
        annotations: [("k8s.v1.cni.cncf.io/networks".to_string(), "nad-a".to_string())].into(),
        port_mappings: vec![PortMap {
            protocol: "UDP".into(),
            container_port: 53,
            host_port: 5353,
            host_ip: String::new(),
        }],
        ..Default::default()
    }
}

#[test]
fn the_config_carries_the_pod_identity_labels_annotations_and_ports_as_the_kubelet_sends_them() {
    let config = pod_sandbox_config(&spec());
    let metadata = config.metadata.clone().unwrap();
    assert_eq!((metadata.name.as_str(), metadata.namespace.as_str(), metadata.attempt), ("web-0", "team-a", 0));
    assert_eq!(config.labels[POD_NAME_LABEL], "web-0");
    assert_eq!(config.labels[POD_NAMESPACE_LABEL], "team-a");
    assert_eq!(config.labels[POD_UID_LABEL], metadata.uid);
    assert_eq!(config.annotations["k8s.v1.cni.cncf.io/networks"], "nad-a");
    assert_eq!(config.hostname, "web-0");
    let port = &config.port_mappings[0];
    assert_eq!((port.protocol, port.container_port, port.host_port), (pb::Protocol::Udp as i32, 53, 5353));
    let namespaces = config.linux.unwrap().security_context.unwrap().namespace_options.unwrap();
    assert_eq!(namespaces.network, pb::NamespaceMode::Pod as i32);
    assert_eq!(namespaces.pid, pb::NamespaceMode::Container as i32);
}

#[test]
fn the_netns_path_comes_from_containerds_runtime_spec() {
    let info = r#"{"pid":42,"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},
        {"type":"network","path":"/var/run/netns/cni-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"}]}}}"#;
    assert_eq!(netns_path_from_info(info).as_deref(), Some("/var/run/netns/cni-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"));
    // A host-network sandbox has a network namespace entry without a path, or none at all.
    assert_eq!(netns_path_from_info(r#"{"runtimeSpec":{"linux":{"namespaces":[{"type":"network"}]}}}"#), None);
    assert_eq!(netns_path_from_info("not json"), None);
}

#[test]
fn a_status_without_network_ready_has_no_condition() {
    let condition = |ready| pb::RuntimeCondition { r#type: "NetworkReady".into(), status: ready, ..Default::default() };
    let status =
        |conditions| pb::StatusResponse { status: Some(pb::RuntimeStatus { conditions }), info: Default::default() };
    assert_eq!(NetworkCondition::from_status(&status(vec![])), None);
    assert!(NetworkCondition::from_status(&status(vec![condition(true)])).unwrap().ready);
    assert!(!NetworkCondition::from_status(&status(vec![condition(false)])).unwrap().ready);
}

proptest! {
    /// The kubelet's own labels always win over the pod's (a pod cannot pose as another).
    #[test]
    fn the_kubelet_labels_name_the_pod_whatever_its_labels_say(value in "[a-z0-9-]{0,20}") {
        let mut s = spec();
        s.labels.insert(POD_NAME_LABEL.into(), value);
        prop_assert_eq!(&pod_sandbox_config(&s).labels[POD_NAME_LABEL], "web-0");
    }

    #[test]
    fn any_info_text_is_read_without_panicking(info in ".{0,200}") {
        let _ = netns_path_from_info(&info);
    }
}
