//! The `fake-kubelet` binary as the demo and e2e run it: ready line, script file (re-read while
//! running) plus flags, all three methods over the real gRPC API, failures, clean stop.

use std::path::{Path, PathBuf};
use std::process::Command;
use test_node::FakeKubelet;

use multus_devices::kubelet::KubeletSource;
use multus_devices::podresources::v1::{AllocatableResourcesRequest, GetPodResourcesRequest};
use multus_devices::{DeviceError, DeviceMap};

/// Starts the binary (through the test node's launcher, which stops it by PID when dropped)
/// once it printed its ready line.
fn start(socket: &Path, args: &[&str]) -> FakeKubelet {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    FakeKubelet::start(Path::new(env!("CARGO_BIN_EXE_fake-kubelet")), socket, &args).expect("fake-kubelet starts")
}

fn ids(map: &DeviceMap, resource: &str) -> Vec<String> {
    map.get(resource).cloned().unwrap_or_default()
}

const SCRIPT: &str = r#"
pods:
- namespace: default
  name: sriov-pod
  containers:
  - name: app
    devices:
    - resourceName: intel.com/sriov
      deviceIds: ["0000:af:06.1", "0000:af:06.0"]
      numaNodes: [0]
"#;

#[tokio::test]
async fn serves_the_script_file_and_flags_and_follows_edits() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("pod-resources/kubelet.sock");
    let config = dir.path().join("script.yaml");
    std::fs::write(&config, SCRIPT).unwrap();
    let _kubelet = start(
        &socket,
        &["--config", config.to_str().unwrap(), "--device", "other/web/c1:example.com/rdma=mlx5_2,mlx5_1"],
    );
    let source = KubeletSource::with_socket(&socket);

    let map = source.device_map("default", "sriov-pod", "").await.unwrap();
    assert_eq!(ids(&map, "intel.com/sriov"), ["0000:af:06.0", "0000:af:06.1"]);
    assert_eq!(ids(&source.device_map("other", "web", "").await.unwrap(), "example.com/rdma"), ["mlx5_1", "mlx5_2"]);
    assert!(source.device_map("default", "unknown", "").await.unwrap().is_empty());

    let mut client = source.client().await.unwrap();
    let pod = client
        .get(GetPodResourcesRequest { pod_name: "sriov-pod".into(), pod_namespace: "default".into() })
        .await
        .unwrap()
        .into_inner()
        .pod_resources
        .unwrap();
    assert_eq!(pod.containers[0].name, "app");
    assert_eq!(pod.containers[0].devices[0].topology.as_ref().unwrap().nodes[0].id, 0);
    let missing = client
        .get(GetPodResourcesRequest { pod_name: "nope".into(), pod_namespace: "default".into() })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let allocatable = client.get_allocatable_resources(AllocatableResourcesRequest {}).await.unwrap().into_inner();
    let resources: Vec<&str> = allocatable.devices.iter().map(|d| d.resource_name.as_str()).collect();
    assert_eq!(resources, ["intel.com/sriov", "example.com/rdma"]);

    // The file is re-read on every call: a failure scripted now is answered at once.
    std::fs::write(&config, format!("{SCRIPT}fail: {{code: permission_denied, message: no access}}\n")).unwrap();
    match source.device_map("default", "sriov-pod", "").await {
        Err(DeviceError::KubeletList { code, message, .. }) => {
            assert_eq!(code, tonic::Code::PermissionDenied);
            assert_eq!(message, "no access");
        }
        other => panic!("expected a List failure, got {other:?}"),
    }
    // A broken file is an Internal error naming the file, not a crash.
    std::fs::write(&config, "pods: [{bogus: 1}]").unwrap();
    let err = source.device_map("default", "sriov-pod", "").await.unwrap_err();
    assert!(err.to_string().contains("script.yaml"), "{err}");
}

#[tokio::test]
async fn fail_and_delay_flags() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let _kubelet = start(&socket, &["--fail", "unavailable:kubelet restarting"]);
    let err = KubeletSource::with_socket(&socket).device_map("ns", "p", "").await.unwrap_err();
    assert!(matches!(&err, DeviceError::KubeletList { code: tonic::Code::Unavailable, .. }), "{err}");
    assert!(err.to_string().contains("kubelet restarting"), "{err}");
    drop(_kubelet);

    let slow_socket = dir.path().join("slow.sock");
    let _slow = start(&slow_socket, &["--delay-ms", "5000", "--device", "ns/p:r=1"]);
    let source = KubeletSource {
        call_timeout: std::time::Duration::from_millis(200),
        ..KubeletSource::with_socket(&slow_socket)
    };
    let err = source.device_map("ns", "p", "").await.unwrap_err();
    assert!(matches!(err, DeviceError::KubeletTimeout { .. }), "{err}");
}

#[test]
fn sigterm_stops_it_and_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let mut kubelet = start(&socket, &[]);
    assert!(socket.exists());
    let pid = kubelet.process().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = kubelet.process().wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}

#[test]
fn bad_flags_and_occupied_paths_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let unused = dir.path().join("unused.sock");
    let unused = unused.to_str().unwrap();
    for args in [
        vec!["--socket", file.to_str().unwrap()],
        vec!["--socket", unused, "--device", "garbage"],
        vec!["--socket", unused, "--fail", "sideways"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_fake-kubelet")).args(&args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}
