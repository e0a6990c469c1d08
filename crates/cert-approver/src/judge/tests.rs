use super::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequestCondition, CertificateSigningRequestSpec, CertificateSigningRequestStatus,
};
use proptest::prelude::*;

/// A request as the API server stores it: `username`/`groups` from the requester.
struct Req {
    username: String,
    groups: Vec<String>,
    usages: Vec<String>,
    cn: String,
    orgs: Vec<String>,
    sans: Vec<String>,
    expiration: Option<i32>,
    signer: String,
}

impl Req {
    /// What node1's daemon files with its kubelet credentials.
    fn daemon(node: &str) -> Self {
        Self {
            username: format!("system:node:{node}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
            usages: vec!["digital signature".into(), "client auth".into()],
            cn: format!("system:multus:{node}"),
            orgs: vec!["system:multus".into()],
            sans: vec![],
            expiration: Some(600),
            signer: SIGNER_NAME.into(),
        }
    }

    fn build(&self) -> CertificateSigningRequest {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(self.sans.clone()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in &self.orgs {
            params.distinguished_name.push(rcgen::DnType::OrganizationName, o.as_str());
        }
        params.distinguished_name.push(rcgen::DnType::CommonName, self.cn.as_str());
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        CertificateSigningRequest {
            metadata: Default::default(),
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: self.signer.clone(),
                usages: Some(self.usages.clone()),
                expiration_seconds: self.expiration,
                username: Some(self.username.clone()),
                groups: Some(self.groups.clone()),
                ..Default::default()
            },
            status: None,
        }
    }
}

fn deny(req: &Req) -> Denial {
    match judge(&req.build()) {
        Verdict::Deny(d) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn the_daemons_first_request_is_approved() {
    assert_eq!(judge(&Req::daemon("node1").build()), Verdict::Approve { node: "node1".into() });
}

#[test]
fn rotation_with_the_current_certificate_is_approved() {
    let req = Req {
        username: "system:multus:node1".into(),
        groups: vec!["system:multus".into(), "system:authenticated".into()],
        ..Req::daemon("node1")
    };
    assert_eq!(judge(&req.build()), Verdict::Approve { node: "node1".into() });
}

#[test]
fn a_forged_node_name_is_denied() {
    let req = Req { cn: "system:multus:node2".into(), ..Req::daemon("node1") };
    let denial = deny(&req);
    assert_eq!(denial.reason(), "NodeNameMismatch");
    assert_eq!(
        denial.to_string(),
        "common name \"system:multus:node2\" does not match the requesting node \"node1\" (expected \"system:multus:node1\")"
    );
    // Renewing as node1's daemon does not reach node2 either.
    let rotation = Req { username: "system:multus:node1".into(), ..req };
    assert_eq!(deny(&rotation).reason(), "NodeNameMismatch");
}

#[test]
fn each_rule_denies_with_its_reason() {
    let base = || Req::daemon("node1");
    let cases: Vec<(Req, &str)> = vec![
        (Req { username: "system:serviceaccount:default:x".into(), ..base() }, "UnexpectedRequester"),
        (Req { username: "system:node:".into(), ..base() }, "InvalidNodeName"),
        (Req { username: "system:node:Node_1".into(), cn: "system:multus:Node_1".into(), ..base() }, "InvalidNodeName"),
        (Req { groups: vec!["system:masters".into()], ..base() }, "UnexpectedGroups"),
        (Req { usages: vec!["client auth".into()], ..base() }, "UnexpectedUsages"),
        (
            Req { usages: vec!["digital signature".into(), "client auth".into(), "server auth".into()], ..base() },
            "UnexpectedUsages",
        ),
        (Req { orgs: vec!["system:nodes".into()], ..base() }, "UnexpectedOrganization"),
        (Req { orgs: vec!["system:multus".into(), "system:masters".into()], ..base() }, "UnexpectedOrganization"),
        (Req { sans: vec!["node1.example".into()], ..base() }, "SubjectAltNamesRequested"),
        (Req { expiration: None, ..base() }, "NoExpiration"),
        (Req { expiration: Some(366 * 24 * 3600), ..base() }, "ExpirationTooLong"),
    ];
    for (req, reason) in cases {
        let denial = deny(&req);
        assert_eq!(denial.reason(), reason, "{denial}");
        assert!(!denial.to_string().is_empty());
    }
}

#[test]
fn other_requests_are_left_alone() {
    let other_signer = Req { signer: "kubernetes.io/kube-apiserver-client-kubelet".into(), ..Req::daemon("node1") };
    assert_eq!(judge(&other_signer.build()), Verdict::Ignore(Ignored::OtherSigner));
    let other_subject = Req { cn: "system:node:node1".into(), ..Req::daemon("node1") };
    assert_eq!(judge(&other_subject.build()), Verdict::Ignore(Ignored::NotMultus));
    let mut garbage = Req::daemon("node1").build();
    garbage.spec.request = ByteString(b"not a pem".to_vec());
    assert_eq!(judge(&garbage), Verdict::Ignore(Ignored::NotMultus));
    let mut decided = Req::daemon("node1").build();
    decided.status = Some(CertificateSigningRequestStatus {
        conditions: Some(vec![CertificateSigningRequestCondition {
            type_: "Denied".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    assert_eq!(judge(&decided), Verdict::Ignore(Ignored::Decided));
}

#[test]
fn a_tampered_request_is_not_judged() {
    let mut csr = Req::daemon("node1").build();
    let pem = String::from_utf8(csr.spec.request.0.clone()).unwrap();
    let block = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1;
    let mut der = block.contents.clone();
    // Flip a byte of the common name: the signature no longer matches.
    let at = der.windows(5).position(|w| w == b"node1").unwrap();
    der[at + 4] = b'2';
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
    csr.spec.request = ByteString(
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n").into_bytes(),
    );
    assert_eq!(judge(&csr), Verdict::Ignore(Ignored::NotMultus));
}

#[test]
fn an_approval_needs_the_node() {
    let approve = || Verdict::Approve { node: "node1".into() };
    assert_eq!(require_node(approve(), true), approve());
    assert_eq!(require_node(approve(), false), Verdict::Deny(Denial::NodeNotFound("node1".into())));
    let denied = Verdict::Deny(Denial::NoExpiration);
    assert_eq!(require_node(denied.clone(), false), denied);
}

fn node_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,5})?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Approved exactly when the certificate names the requester's own node, whichever
    /// credentials (kubelet or the daemon's) it asks with.
    #[test]
    fn approved_only_for_the_requesters_own_node(requester in node_name(), named in node_name(), rotation: bool) {
        let prefix = if rotation { "system:multus" } else { "system:node" };
        let req = Req {
            username: format!("{prefix}:{requester}"),
            cn: format!("system:multus:{named}"),
            ..Req::daemon(&requester)
        };
        match judge(&req.build()) {
            Verdict::Approve { node } => prop_assert!(node == requester && named == requester),
            Verdict::Deny(d) => prop_assert!(named != requester && d.reason() == "NodeNameMismatch", "{d}"),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    /// Any usage set but exactly {digital signature, client auth} is denied.
    #[test]
    fn only_the_two_usages_pass(usages in proptest::sample::subsequence(
        vec!["digital signature", "client auth", "key encipherment", "server auth", "any"], 0..=5)) {
        let req = Req { usages: usages.iter().map(|u| u.to_string()).collect(), ..Req::daemon("node1") };
        let mut set = usages.clone();
        set.sort_unstable();
        let verdict = judge(&req.build());
        if set == ["client auth", "digital signature"] {
            prop_assert_eq!(verdict, Verdict::Approve { node: "node1".into() });
        } else {
            prop_assert!(matches!(verdict, Verdict::Deny(Denial::UnexpectedUsages(_))), "{verdict:?}");
        }
    }

    #[test]
    fn node_names_are_dns_subdomains(name in "\\PC{0,20}") {
        let valid = is_dns1123_subdomain(&name);
        let simple = !name.is_empty()
            && name.split('.').all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        prop_assert_eq!(valid, simple);
    }
}
