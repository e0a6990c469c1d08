//! The kubelet source of [`DeviceResolver`] against fake-kubelet over a real unix socket, and the
//! checkpoint fallback (spec §5.10.1, §12.6 items 76–77).

use std::path::Path;
use std::time::Duration;

use fake_kubelet::{DeviceScript, Failure, FakeKubelet, Script};
use multus_devices::kubelet::KubeletSource;
use multus_devices::{DeviceError, DeviceMap, DeviceResolver, PodDevicesQuery};

fn pod(namespace: &str, name: &str, uid: &str) -> PodDevicesQuery {
    PodDevicesQuery {
        namespace: namespace.into(),
        name: name.into(),
        uid: uid.into(),
        node_name: "node1".into(),
        ..Default::default()
    }
}

fn devices(resource: &str, ids: &[&str]) -> DeviceScript {
    DeviceScript {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
        numa_nodes: vec![],
    }
}

/// Two pods named `web` in two namespaces, the first with two containers and two resources.
fn script() -> Script {
    let mut script = Script::default();
    script.add_devices("ns1", "web", "app", devices("intel.com/sriov", &["0000:af:06.3", "0000:af:06.1"]));
    script.add_devices("ns1", "web", "sidecar", devices("intel.com/sriov", &["0000:af:06.2"]));
    script.add_devices("ns1", "web", "sidecar", devices("example.com/rdma", &["mlx5_4"]));
    script.add_devices("ns2", "web", "app", devices("intel.com/sriov", &["0000:af:07.0"]));
    script
}

fn resolver(socket: &Path, checkpoint: &Path) -> DeviceResolver {
    DeviceResolver::new(
        KubeletSource { checkpoint: checkpoint.to_path_buf(), ..KubeletSource::with_socket(socket) },
        None,
    )
}

fn map(entries: &[(&str, &[&str])]) -> DeviceMap {
    entries.iter().map(|(k, ids)| (k.to_string(), ids.iter().map(|s| s.to_string()).collect())).collect()
}

#[tokio::test]
async fn pods_are_matched_by_name_and_namespace_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let kubelet = FakeKubelet::start(&socket, script()).await.unwrap();
    let resolver = resolver(&socket, &dir.path().join("no-checkpoint"));

    let ns1 = resolver.pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap();
    assert_eq!(
        ns1,
        map(&[
            ("example.com/rdma", &["mlx5_4"]),
            ("intel.com/sriov", &["0000:af:06.1", "0000:af:06.2", "0000:af:06.3"]),
        ])
    );
    let ns2 = resolver.pod_devices(&pod("ns2", "web", "uid-2")).await.unwrap();
    assert_eq!(ns2, map(&[("intel.com/sriov", &["0000:af:07.0"])]));
    // Unknown pod: an empty map, not an error.
    assert!(resolver.pod_devices(&pod("ns1", "unknown", "uid-3")).await.unwrap().is_empty());
    assert_eq!(kubelet.calls().list(), 3);

    // Empty name or namespace with the socket present: an error (item 76).
    let err = resolver.pod_devices(&pod("", "web", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::EmptyPodName), "{err}");
    assert_eq!(err.go_context(), "failed to get resourceMap from ResourceClient");
    kubelet.shutdown().await;
    assert!(!socket.exists());
}

#[tokio::test]
async fn grpc_failures_and_slowness_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let failing = Script {
        fail: Some(Failure { code: "unavailable".into(), message: "kubelet is restarting".into() }),
        ..script()
    };
    let kubelet = FakeKubelet::start(&socket, failing).await.unwrap();
    let resolver = resolver(&socket, &dir.path().join("no-checkpoint"));
    let err = resolver.pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap_err();
    match &err {
        DeviceError::KubeletList { code, message, .. } => {
            assert_eq!(*code, tonic::Code::Unavailable);
            assert_eq!(message, "kubelet is restarting");
        }
        other => panic!("expected KubeletList, got {other:?}"),
    }
    assert_eq!(err.go_context(), "failed to get a ResourceClient instance");

    // Slow: the call timeout ends the wait (the reference's is 10 s; shortened here).
    kubelet.set_script(Script { delay_ms: 30_000, ..script() });
    let impatient = DeviceResolver::new(
        KubeletSource { call_timeout: Duration::from_millis(200), ..KubeletSource::with_socket(&socket) },
        None,
    );
    let err = impatient.pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::KubeletTimeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");

    // Answers larger than the message limit are refused (the reference allows 16 MiB).
    kubelet.set_script(script());
    let small_limit =
        DeviceResolver::new(KubeletSource { max_message_size: 64, ..KubeletSource::with_socket(&socket) }, None);
    let err = small_limit.pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::KubeletList { code: tonic::Code::OutOfRange, .. }), "{err}");
    kubelet.shutdown().await;
}

#[tokio::test]
async fn a_socket_nobody_listens_on_is_an_error_not_a_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    // A stale socket file: bound once, listener gone.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let checkpoint = dir.path().join("checkpoint");
    std::fs::write(&checkpoint, r#"{"Data":{"PodDeviceEntries":[]}}"#).unwrap();
    let err = resolver(&socket, &checkpoint).pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::KubeletConnect { .. }), "{err}");
    assert!(err.to_string().contains("kubelet.sock"), "{err}");
}

#[tokio::test]
async fn without_the_socket_the_checkpoint_is_read_by_uid() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("kubelet_internal_checkpoint");
    std::fs::write(
        &checkpoint,
        r#"{"Data":{"PodDeviceEntries":[
            {"PodUID":"uid-1","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:af:06.1","0000:af:06.0"]},"AllocResp":"Cg=="},
            {"PodUID":"uid-2","ContainerName":"app","ResourceName":"intel.com/sriov","DeviceIDs":{"0":["0000:af:07.0"]},"AllocResp":"Cg=="}
        ],"RegisteredDevices":{"intel.com/sriov":["0000:af:06.0","0000:af:06.1","0000:af:07.0"]}},"Checksum":42}"#,
    )
    .unwrap();
    let resolver = resolver(&dir.path().join("absent.sock"), &checkpoint);
    // Name and namespace do not matter for the checkpoint; the UID does.
    let found = resolver.pod_devices(&pod("any", "name", "uid-1")).await.unwrap();
    assert_eq!(found, map(&[("intel.com/sriov", &["0000:af:06.0", "0000:af:06.1"])]));
    assert!(resolver.pod_devices(&pod("any", "name", "uid-9")).await.unwrap().is_empty());
    assert!(matches!(resolver.pod_devices(&pod("any", "name", "")).await, Err(DeviceError::EmptyPodUid)));

    std::fs::write(&checkpoint, "{not json").unwrap();
    let err = resolver.pod_devices(&pod("any", "name", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::CheckpointParse { .. }), "{err}");
}

#[tokio::test]
async fn without_socket_and_checkpoint_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let resolver = resolver(&dir.path().join("absent.sock"), &dir.path().join("absent-checkpoint"));
    let err = resolver.pod_devices(&pod("ns1", "web", "uid-1")).await.unwrap_err();
    assert!(matches!(err, DeviceError::CheckpointRead { .. }), "{err}");
    assert!(err.to_string().contains("absent-checkpoint"), "{err}");
    assert_eq!(err.go_context(), "failed to get a ResourceClient instance");
}
