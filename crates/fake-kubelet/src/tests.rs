use super::*;

#[test]
fn yaml_and_json_scripts_parse_and_unknown_keys_are_refused() {
    let yaml = "pods:\n- namespace: default\n  name: sriov-pod\n  containers:\n  - name: app\n    devices:\n    - resourceName: intel.com/sriov\n      deviceIds: [\"0000:af:06.0\"]\n      numaNodes: [0]\ndelayMs: 5\nfail: {code: unavailable}\n";
    let script = Script::parse(yaml, "test.yaml").unwrap();
    assert_eq!(script.pods[0].containers[0].devices[0].device_ids, ["0000:af:06.0"]);
    assert_eq!(script.delay_ms, 5);
    assert_eq!(script.fail.as_ref().unwrap().message, "fake-kubelet: configured failure");
    let json = serde_json::to_string(&script).unwrap();
    assert_eq!(Script::parse(&json, "json").unwrap(), script);
    assert_eq!(Script::parse("", "empty").unwrap(), Script::default());
    for bad in ["pods: [{namespace: a, name: b, extra: 1}]", "{\"delay\": 1}", "fail: {code: sideways}"] {
        assert!(Script::parse(bad, "bad").is_err(), "{bad}");
    }
}

#[test]
fn codes_by_name_or_number() {
    assert_eq!(parse_code("unavailable"), Ok(tonic::Code::Unavailable));
    assert_eq!(parse_code("PERMISSION_DENIED"), Ok(tonic::Code::PermissionDenied));
    assert_eq!(parse_code("DeadlineExceeded"), Ok(tonic::Code::DeadlineExceeded));
    assert_eq!(parse_code("14"), Ok(tonic::Code::Unavailable));
    assert_eq!(parse_code("2"), Ok(tonic::Code::Unknown));
    assert!(parse_code("99").is_err());
    assert!(parse_code("nope").is_err());
}

#[test]
fn device_flags() {
    let (ns, pod, container, device) =
        parse_device_flag("default/web:intel.com/sriov=0000:af:06.0,0000:af:06.1").unwrap();
    assert_eq!((ns.as_str(), pod.as_str(), container.as_str()), ("default", "web", "container"));
    assert_eq!(device.resource_name, "intel.com/sriov");
    assert_eq!(device.device_ids, ["0000:af:06.0", "0000:af:06.1"]);
    let (_, _, container, device) = parse_device_flag("ns/p/c2:r=").unwrap();
    assert_eq!(container, "c2");
    assert!(device.device_ids.is_empty());
    for bad in ["default/web", "web:r=1", "a/b/c/d:r=1", "a/b:r", "/b:r=1", "a/b:=1"] {
        assert!(parse_device_flag(bad).is_err(), "{bad}");
    }
}

#[test]
fn overlay_and_add_devices() {
    let mut base = Script { delay_ms: 7, ..Default::default() };
    base.add_devices(
        "ns",
        "p",
        "c",
        DeviceScript { resource_name: "r".into(), device_ids: vec!["1".into()], numa_nodes: vec![] },
    );
    base.add_devices(
        "ns",
        "p",
        "c",
        DeviceScript { resource_name: "s".into(), device_ids: vec!["2".into()], numa_nodes: vec![] },
    );
    base.add_devices(
        "ns",
        "p",
        "d",
        DeviceScript { resource_name: "r".into(), device_ids: vec!["3".into()], numa_nodes: vec![] },
    );
    assert_eq!(base.pods.len(), 1);
    assert_eq!(base.pods[0].containers.len(), 2);
    assert_eq!(base.pods[0].containers[0].devices.len(), 2);
    let overlay = Script { fail: Some(Failure { code: "internal".into(), message: "x".into() }), ..Default::default() };
    let merged = base.clone().overlaid_with(&overlay);
    assert_eq!(merged.delay_ms, 7);
    assert!(merged.fail.is_some());
    // Allocatable defaults to the pods' devices, grouped by resource.
    let allocatable = merged.allocatable_devices();
    assert_eq!(allocatable.len(), 2);
    assert_eq!(allocatable[0].device_ids, ["1", "3"]);
}
