use super::*;

#[test]
fn rejects_garbage_without_panicking() {
    assert_eq!(decode_object(b""), Err(ProtobufError::MissingMagic));
    assert_eq!(decode_object(b"{\"kind\":\"Pod\"}"), Err(ProtobufError::MissingMagic));
    assert!(matches!(decode_object(b"k8s\0\xff\xff\xff"), Err(ProtobufError::Malformed { .. })));
    for len in 0..64u8 {
        let mut body = PROTOBUF_MAGIC.to_vec();
        body.extend((0..len).map(|i| i.wrapping_mul(37)));
        let _ = decode_object(&body);
    }
}

#[test]
fn unsupported_kinds_are_named() {
    let envelope = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(Vec::new()),
        content_encoding: None,
        content_type: None,
    };
    let mut body = PROTOBUF_MAGIC.to_vec();
    body.extend(envelope.encode_to_vec());
    assert_eq!(
        decode_object(&body),
        Err(ProtobufError::UnsupportedKind { api_version: "v1".into(), kind: "ConfigMap".into() })
    );
}

#[test]
fn pod_round_trip_through_protobuf() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            annotations: [("a".to_string(), "b".to_string())].into(),
            ..Default::default()
        }),
        spec: Some(core::PodSpec { node_name: Some("node1".into()), ..Default::default() }),
        status: Some(core::PodStatus { phase: Some("Running".into()), ..Default::default() }),
    };
    let envelope = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
        }),
        raw: Some(pod.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = PROTOBUF_MAGIC.to_vec();
    body.extend(envelope.encode_to_vec());
    let json = decode_object(&body).unwrap();
    assert_eq!(json["metadata"]["annotations"]["a"], "b");
    assert_eq!(json["spec"]["nodeName"], "node1");
    assert_eq!(json["status"]["phase"], "Running");
}

#[test]
fn csr_round_trip_through_protobuf() {
    let csr = certificates::CertificateSigningRequest {
        metadata: Some(meta::ObjectMeta { name: Some("csr-1".into()), ..Default::default() }),
        spec: Some(certificates::CertificateSigningRequestSpec {
            request: Some(b"-----BEGIN CERTIFICATE REQUEST-----".to_vec()),
            signer_name: Some("kubernetes.io/kube-apiserver-client".into()),
            expiration_seconds: Some(600),
            usages: vec!["digital signature".into(), "client auth".into()],
            ..Default::default()
        }),
        status: Some(certificates::CertificateSigningRequestStatus {
            conditions: vec![certificates::CertificateSigningRequestCondition {
                r#type: Some("Approved".into()),
                status: Some("True".into()),
                reason: Some("KubectlApprove".into()),
                ..Default::default()
            }],
            certificate: None,
        }),
    };
    let envelope = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some("certificates.k8s.io/v1".into()),
            kind: Some("CertificateSigningRequest".into()),
        }),
        raw: Some(csr.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    let mut body = PROTOBUF_MAGIC.to_vec();
    body.extend(envelope.encode_to_vec());
    let json = decode_object(&body).unwrap();
    assert_eq!(
        json["spec"]["request"],
        base64::engine::general_purpose::STANDARD.encode("-----BEGIN CERTIFICATE REQUEST-----")
    );
    assert_eq!(json["spec"]["expirationSeconds"], 600);
    assert_eq!(json["spec"]["usages"], json!(["digital signature", "client auth"]));
    assert_eq!(json["status"]["conditions"][0]["reason"], "KubectlApprove");
    assert!(json["status"].get("certificate").is_none());
}

fn wrapped(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let envelope = Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: None,
        content_type: None,
    };
    let mut body = PROTOBUF_MAGIC.to_vec();
    body.extend(envelope.encode_to_vec());
    body
}

#[test]
fn token_requests_and_delete_options_through_protobuf() {
    let request = authentication::TokenRequest {
        metadata: Some(meta::ObjectMeta { name: Some("multus".into()), ..Default::default() }),
        spec: Some(authentication::TokenRequestSpec {
            audiences: vec!["api".into()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        status: None,
    };
    let json = decode_object(&wrapped("authentication.k8s.io/v1", "TokenRequest", request.encode_to_vec())).unwrap();
    assert_eq!(json["spec"], json!({"audiences": ["api"], "expirationSeconds": 3600}));
    let options = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: Some("Foreground".into()),
        preconditions: Some(meta::Preconditions { uid: Some("u".into()), resource_version: None }),
        ..Default::default()
    };
    let json = decode_delete_options(&wrapped("meta.k8s.io/v1", "DeleteOptions", options.encode_to_vec())).unwrap();
    assert_eq!(
        json,
        json!({"gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "preconditions": {"uid": "u"}})
    );
    assert!(decode_delete_options(&wrapped("v1", "Pod", Vec::new())).is_err());
    assert!(decode_delete_options(b"k8s\0\x7f").is_err());
}
