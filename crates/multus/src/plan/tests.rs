use super::*;
use crate::delegate::load_delegate;
use crate::model::NetworkSelectionElement;
use crate::pod::PodIdentity;

fn nad(el: Value, conf: &str) -> Delegate {
    let e: NetworkSelectionElement = serde_json::from_value(el).unwrap();
    load_delegate(conf.as_bytes(), Some(&e), "", "").unwrap()
}

fn master() -> Delegate {
    let mut d = load_delegate(br#"{"cniVersion":"1.0.0","name":"cluster","type":"bridge"}"#, None, "", "").unwrap();
    d.is_master = true;
    d
}

fn ctx<'a>(rc: Option<&'a RuntimeConfig>) -> PlanContext<'a> {
    PlanContext {
        container_id: "cid",
        ifname: "eth0",
        args: pod_args("uid-1", "cid"),
        runtime_config: rc,
        process_cni_args: None,
    }
}

fn pod_args(uid: &str, sandbox_id: &str) -> &'static K8sArgs {
    let pod = PodIdentity { namespace: "default".into(), name: "pod1".into(), uid: Some(uid.into()) };
    Box::leak(Box::new(K8sArgs { pod, infra_container_id: sandbox_id.into(), ip: None }))
}

#[test]
fn interface_names() {
    // §5.13 example: cluster + [{"name":"a","interface":"macvlan1"},{"name":"b"}] → eth0, macvlan1, net2
    let ds = vec![
        master(),
        nad(json!({"name":"a","namespace":"default","interface":"macvlan1"}), r#"{"name":"a","type":"macvlan"}"#),
        nad(json!({"name":"b","namespace":"default"}), r#"{"name":"b","type":"macvlan"}"#),
    ];
    let plans = plan_all(&ds, &ctx(None), Operation::Add).unwrap();
    let names: Vec<&str> = plans.iter().map(|p| p.ifname.as_str()).collect();
    assert_eq!(names, ["eth0", "macvlan1", "net2"]);
    // a master with a requested name (default-network annotation `@ifname`)
    let mut m = master();
    m.ifname_request = "ext0".into();
    assert_eq!(interface_name(&m, 0, "eth0"), "ext0");
}

#[test]
fn cni_args_order_and_process_merge() {
    // §12.3 item 37, §12.5 item 68
    let d = master();
    let p = plan_invocation(&d, 0, &ctx(None), Operation::Add).unwrap();
    assert_eq!(
        p.cni_args_string(),
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=cid;K8S_POD_UID=uid-1"
    );
    let mut c = ctx(None);
    c.args = pod_args("", "");
    c.process_cni_args = Some("K8S_POD_UID=from-env;BLAHBLAH=foo=bar;novalue;K8S_POD_NAME=other;;X=");
    let p = plan_invocation(&d, 0, &c, Operation::Add).unwrap();
    assert_eq!(
        p.cni_args_string(),
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID=from-env;BLAHBLAH=foo=bar;X="
    );
}

#[test]
fn mac_and_ip_args_on_add_only_and_validated() {
    let d = nad(
        json!({"name":"m","namespace":"default","mac":"c2:b0:57:49:47:f1","ips":["10.1.1.11/24","fd00::5"]}),
        r#"{"name":"m","type":"macvlan"}"#,
    );
    let p = plan_invocation(&d, 1, &ctx(None), Operation::Add).unwrap();
    assert!(p.cni_args_string().ends_with(";K8S_POD_UID=uid-1;MAC=c2:b0:57:49:47:f1;IP=10.1.1.11/24,fd00::5"));
    let p = plan_invocation(&d, 1, &ctx(None), Operation::Del).unwrap();
    assert!(p.cni_args_string().ends_with("K8S_POD_UID=uid-1"));

    let mut bad = d.clone();
    bad.mac_request = "zz:00".into();
    assert_eq!(
        plan_invocation(&bad, 1, &ctx(None), Operation::Add).unwrap_err().to_string(),
        r#"DelegateAdd: failed to parse mac address "zz:00""#
    );
    let mut bad = d.clone();
    bad.ip_request = vec!["10.1.1.300".into()];
    assert_eq!(
        plan_invocation(&bad, 1, &ctx(None), Operation::Add).unwrap_err(),
        PlanError::InvalidIp("10.1.1.300".into())
    );
    assert!(plan_invocation(&bad, 1, &ctx(None), Operation::Del).is_ok());
}

#[test]
fn hardware_addresses() {
    for ok in [
        "c2:b0:57:49:47:f1",
        "C2-B0-57-49-47-F1",
        "0000.5e00.5301",
        "00:00:00:00:fe:80:00:00",
        "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
    ] {
        assert!(is_valid_hardware_address(ok), "{ok}");
    }
    for bad in
        ["", "c2:b0:57:49:47", "c2:b0:57:49:47:f1:", "c2:b0-57:49:47:f1", "g2:b0:57:49:47:f1", "c2b0.5749.47f1.1"]
    {
        assert!(!is_valid_hardware_address(bad), "{bad}");
    }
}

#[test]
fn capability_args_for_master_and_nad() {
    // §12.3 items 27 and 30
    let rc = RuntimeConfig::from_value(&json!({
        "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
        "bandwidth":{"ingressRate":10,"ingressBurst":20,"egressRate":30,"egressBurst":40},
        "ips":["10.0.0.9"],"mac":"02:00:00:00:00:09",
        "io.kubernetes.cri.pod-annotations":{"a":"b"},"cgroupPath":"/kubepods/x"
    }));
    let mut m = load_delegate(
        br#"{"name":"cluster","plugins":[{"type":"ptp"},{"type":"portmap","capabilities":{"portMappings":true,"io.kubernetes.cri.pod-annotations":true}}]}"#,
        None,
        "",
        "",
    )
    .unwrap();
    m.is_master = true;
    let p = plan_invocation(&m, 0, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(
        Value::Object(p.capability_args.clone()),
        json!({
            "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
            "bandwidth":{"ingressRate":10,"ingressBurst":20,"egressRate":30,"egressBurst":40},
            "ips":["10.0.0.9"],"mac":"02:00:00:00:00:09",
            "io.kubernetes.cri.pod-annotations":{"a":"b"}
        })
    );
    assert_eq!(p.device_info_file, None);

    let d = nad(
        json!({"name":"macvlan-conf","namespace":"default","mac":"c2:b0:57:49:47:f1","ips":["10.1.1.11/24"],
               "bandwidth":{"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4},
               "portMappings":[{"hostPort":9090,"containerPort":90}],"infiniband-guid":"c2:b0:57:49:47:f1:00:01"}),
        r#"{"name":"macvlan-conf","type":"macvlan","capabilities":{"ips":true,"mac":true,"bandwidth":true,"portMappings":true}}"#,
    );
    let p = plan_invocation(&d, 1, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(
        Value::Object(p.capability_args.clone()),
        json!({
            "portMappings":[{"hostPort":9090,"containerPort":90}],
            "bandwidth":{"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4},
            "ips":["10.1.1.11/24"],"mac":"c2:b0:57:49:47:f1","infinibandGUID":"c2:b0:57:49:47:f1:00:01"
        })
    );
    assert_eq!(p.network_name, "macvlan-conf");

    // non-master without requests inherits the runtime's values
    let plain = nad(json!({"name":"p","namespace":"default"}), r#"{"name":"p","type":"bridge"}"#);
    let p = plan_invocation(&plain, 2, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(p.capability_args["portMappings"][0]["hostPort"], 8080);
    assert!(!p.capability_args.contains_key("cgroupPath"));
}

#[test]
fn device_info_file_rules() {
    let rc = RuntimeConfig::from_value(&json!({"CNIDeviceInfoFile":"/runtime/path","deviceID":"rt-dev"}));
    let e: NetworkSelectionElement = serde_json::from_value(json!({"name":"sriov","namespace":"ns1"})).unwrap();
    let d = load_delegate(br#"{"name":"s","type":"sriov"}"#, Some(&e), "0000:af:06.0", "intel.com/sriov").unwrap();
    let p = plan_invocation(&d, 1, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(p.capability_args["deviceID"], "0000:af:06.0");
    assert_eq!(p.capability_args["CNIDeviceInfoFile"], "/var/run/k8s.cni.cncf.io/devinfo/cni/ns1-sriov-cid_net1");
    assert_eq!(p.device_info_file.as_deref(), Some("/var/run/k8s.cni.cncf.io/devinfo/cni/ns1-sriov-cid_net1"));
    // master: runtime deviceID → computed path replaces the runtime's file
    let p = plan_invocation(&master(), 0, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(p.capability_args["deviceID"], "rt-dev");
    assert_eq!(p.capability_args["CNIDeviceInfoFile"], "/var/run/k8s.cni.cncf.io/devinfo/cni/cluster-cid_eth0");
    // no device ID anywhere: the runtime's file passes through
    let rc = RuntimeConfig::from_value(&json!({"CNIDeviceInfoFile":"/runtime/path"}));
    let p = plan_invocation(&master(), 0, &ctx(Some(&rc)), Operation::Add).unwrap();
    assert_eq!(p.capability_args["CNIDeviceInfoFile"], "/runtime/path");
    assert_eq!(
        dp_device_info_path("intel.com/sriov", "0000:af:06.0"),
        "/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov-0000:af:06.0-device.json"
    );
}

#[test]
fn added_interface_messages() {
    let r = CniResult::from_value(&json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/ns"}],"ips":[{"address":"10.244.0.2/16","interface":0}]})).unwrap();
    assert_eq!(
        added_interface_message("eth0", &r, "mock-cluster-net").unwrap(),
        "Add eth0 [10.244.0.2/16] from mock-cluster-net"
    );
    assert_eq!(added_interface_message("eth0", &r, "").unwrap(), "Add eth0 [10.244.0.2/16]");
    let r2 = CniResult::from_value(
        &json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/24"},{"address":"fd00::1/64"}]}),
    )
    .unwrap();
    assert_eq!(
        added_interface_message("net1", &r2, "default/x").unwrap(),
        "Add net1 [10.0.0.1/24 fd00::1/64] from default/x"
    );
    let empty = CniResult::from_value(&json!({"cniVersion":"1.0.0"})).unwrap();
    assert_eq!(added_interface_message("net1", &empty, "x"), None);
}

#[test]
fn pod_not_found_placeholder() {
    assert_eq!(
        pod_not_found_result("1.0.0", "eth0", "/var/run/netns/x").to_string(),
        r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/var/run/netns/x"}],"ips":[{"address":"0.0.0.0/0","gateway":"0.0.0.0"}],"dns":{}}"#
    );
}

#[test]
fn result_selection() {
    let r = |v: &str| Some(CniResult::from_value(&json!({"cniVersion": v})).unwrap());
    let ds = vec![master(), nad(json!({"name":"a"}), r#"{"name":"a","type":"t"}"#)];
    let results = vec![r("1.0.0"), r("0.4.0")];
    assert_eq!(select_result(&ds, &results).unwrap().cni_version.to_string(), "1.0.0");
    let results = vec![None, r("0.4.0")];
    assert_eq!(select_result(&ds, &results).unwrap().cni_version.to_string(), "0.4.0");
}

/// containerd serializes its capability args without JSON tags; they were dropped silently
/// until `e2e --local --cri` showed no DNAT rule for a pod's hostPort.
#[test]
fn containerds_go_field_names_are_read_and_passed_on_in_the_cni_spelling() {
    let rc = RuntimeConfig::from_value(&json!({
        "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
        "bandwidth": {"IngressRate": 1000, "IngressBurst": 10, "EgressRate": 2000, "EgressBurst": 20}
    }));
    assert_eq!(rc.port_mappings.len(), 1);
    assert_eq!((rc.port_mappings[0].host_port, rc.port_mappings[0].container_port), (8080, 80));
    assert_eq!(
        serde_json::to_value(&rc.port_mappings).unwrap(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    );
    let bandwidth = rc.bandwidth.unwrap();
    assert_eq!((bandwidth.ingress_rate, bandwidth.egress_burst), (1000, 20));
    assert_eq!(serde_json::to_value(&bandwidth).unwrap()["egressRate"], 2000);
}
