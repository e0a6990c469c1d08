//! The wire formats against the Go v4.2.4 pair's captured traffic
//! (`shim-daemon-ADD-pod1-2nads.http.txt`): a request the Go shim sent must decode, and ours
//! must have the same shape; the Go daemon's ADD reply must decode into a CNI result.

use multus_api::{Request, Response};
use serde_json::Value;

const GO_REQUEST: &str = include_str!("go_capture_request.json");
const GO_ADD_REPLY: &str = include_str!("go_capture_add_reply.json");

#[test]
fn the_go_shims_request_decodes() {
    let req = Request::from_json(GO_REQUEST.trim().as_bytes()).expect("Go request");
    assert_eq!(req.env_var("CNI_COMMAND"), Some("ADD"));
    assert_eq!(req.env_var("CNI_CONTAINERID"), Some("cid-pod1"));
    let config: Value = serde_json::from_slice(&req.config).expect("config is the base64 of the shim's stdin");
    assert_eq!(config["type"], "multus-shim");
    assert_eq!(
        req.describe(),
        r#"ContainerID:"cid-pod1" Netns:"/var/run/netns/e2e-pod1" IfName:"eth0" Args:"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=cid-pod1;K8S_POD_UID=11111111-1111-1111-1111-111111111111" Path:"""#
    );
}

#[test]
fn our_request_has_the_go_shape() {
    let go = Request::from_json(GO_REQUEST.trim().as_bytes()).unwrap();
    let ours = Request::from_env(go.env.clone(), go.config.clone());
    let ours_json: Value = serde_json::from_slice(&ours.to_json()).unwrap();
    let go_json: Value = serde_json::from_str(GO_REQUEST.trim()).unwrap();
    // Same keys, same base64 config; only the Go shim's extra process variables are gone.
    assert_eq!(ours_json["config"], go_json["config"]);
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&ours_json), vec!["env", "config"]);
    for (k, v) in ours_json["env"].as_object().unwrap() {
        assert_eq!(&go_json["env"][k], v, "{k}");
    }
    insta::assert_snapshot!("shim_request", String::from_utf8(ours.to_json()).unwrap());
}

#[test]
fn the_go_daemons_add_reply_decodes() {
    let reply: Response = serde_json::from_str(GO_ADD_REPLY.trim()).unwrap();
    let result = cni::CniResult::from_value(reply.result.as_ref().unwrap()).unwrap();
    assert_eq!(result.cni_version, cni::Version::V1_1_0);
    assert_eq!(result.interfaces[2].name, "eth0");
    // Re-encoding gives the Go daemon's bytes: same key order and omissions.
    let ours = serde_json::to_string(&Response { result: Some(result.to_value()) }).unwrap();
    assert_eq!(ours, GO_ADD_REPLY.trim());
}
