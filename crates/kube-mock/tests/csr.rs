//! CertificateSigningRequests and client-certificate authentication through kube-rs: a
//! kubelet-like client certificate, a CSR approved and signed by the mock, the issued
//! certificate used to authenticate, expired and foreign certificates refused with 401, the
//! bootstrap token next to it, and approving/denying by hand or by policy.

use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_mock::{CertificateAuthority, CsrApproval, CsrSettings, IssuedCertificate, MockApiServer, MockConfig};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::json;

const BOOTSTRAP_TOKEN: &str = "abcdef.0123456789abcdef";

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn client_from_yaml(yaml: &str) -> Client {
    install_crypto();
    let kubeconfig = Kubeconfig::from_yaml(yaml).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

async fn client_with_certificate(server: &MockApiServer, certificate: &IssuedCertificate) -> Client {
    client_from_yaml(&server.kubeconfig_yaml_with_client_certificate(certificate)).await
}

async fn start(approval: CsrApproval) -> MockApiServer {
    MockApiServer::start(MockConfig {
        tls: true,
        token: Some(BOOTSTRAP_TOKEN.into()),
        csr: CsrSettings { approval, ..CsrSettings::default() },
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

/// A CSR for `cn`/`org` as client-go's certificate manager files it, plus its private key.
fn multus_csr(cn: &str, org: &str, expiration_seconds: Option<i32>) -> (CertificateSigningRequest, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, org);
    params.distinguished_name.push(DnType::CommonName, cn);
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(pem.into_bytes()),
            signer_name: "kubernetes.io/kube-apiserver-client".into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds,
            ..Default::default()
        },
        status: None,
    };
    (csr, key)
}

/// Polls the CSR until `done` holds (bounded: 10 s).
async fn wait_for(
    csrs: &Api<CertificateSigningRequest>,
    name: &str,
    what: &str,
    done: impl Fn(&CertificateSigningRequest) -> bool,
) -> CertificateSigningRequest {
    for _ in 0..500 {
        let csr = csrs.get(name).await.unwrap();
        if done(&csr) {
            return csr;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("CSR {name}: timed out waiting until {what}");
}

fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty())
}

fn condition(csr: &CertificateSigningRequest, kind: &str) -> Option<(String, String)> {
    let conditions = csr.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == kind)?;
    Some((c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

fn users_in_journal(server: &MockApiServer) -> Vec<String> {
    server.journal().into_iter().filter_map(|e| e.user).collect()
}

#[tokio::test]
async fn multus_flow_kubelet_certificate_csr_approved_signed_and_used() {
    let server = start(CsrApproval::MultusCertApprover).await;
    let kubelet =
        server.issue_client_certificate("system:node:node1", Some("system:nodes"), Duration::from_secs(3600)).unwrap();
    let bootstrap = client_with_certificate(&server, &kubelet).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(bootstrap.clone());

    let (request, key) = multus_csr("system:multus:node1", "system:multus", Some(600));
    let created = csrs.create(&PostParams::default(), &request).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("csr-"));
    // The requester is who authenticated, whatever the body said.
    assert_eq!(created.spec.username.as_deref(), Some("system:node:node1"));
    assert_eq!(created.spec.groups, Some(vec!["system:nodes".to_string(), "system:authenticated".to_string()]));

    let signed = wait_for(&csrs, &name, "issued", issued).await;
    assert_eq!(condition(&signed, "Approved").unwrap(), ("AutoApproved".into(), format!("Auto-approved CSR {name:?}")));
    let certificate_pem = String::from_utf8(signed.status.unwrap().certificate.unwrap().0).unwrap();

    // The issued certificate authenticates as system:multus:node1.
    let multus = IssuedCertificate { certificate_pem, key_pem: key.serialize_pem() };
    let pods: Api<Pod> = Api::all(client_with_certificate(&server, &multus).await);
    server.clear_journal();
    pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(users_in_journal(&server), vec!["system:multus:node1"]);
    assert_eq!(server.csrs().len(), 1);
}

#[tokio::test]
async fn expired_and_foreign_certificates_get_401_and_tokens_still_work() {
    let server = start(CsrApproval::Manual).await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let expired = server
        .certificate_authority()
        .issue_client_certificate("system:multus:node1", Some("system:multus"), now - 2 * hour, now - hour)
        .unwrap();
    let foreign = CertificateAuthority::generate()
        .unwrap()
        .issue_client_certificate("system:multus:node1", Some("system:multus"), now - hour, now + hour)
        .unwrap();
    for (what, certificate) in [("expired", &expired), ("foreign", &foreign)] {
        let pods: Api<Pod> = Api::all(client_with_certificate(&server, certificate).await);
        let err = pods.list(&ListParams::default()).await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 401), "{what}: {err:?}");
    }

    // The bootstrap token: a CSR filed with it is the bootstrap user's.
    let token_client = client_from_yaml(&server.kubeconfig_yaml()).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(token_client);
    let (request, _) = multus_csr("system:multus:node1", "system:multus", Some(600));
    let created = csrs.create(&PostParams::default(), &request).await.unwrap();
    assert_eq!(created.spec.username.as_deref(), Some("system:bootstrap:abcdef"));

    // The real API server refuses lifetimes under ten minutes.
    let (short, _) = multus_csr("system:multus:node1", "system:multus", Some(60));
    let err = csrs.create(&PostParams::default(), &short).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("expirationSeconds")), "{err:?}");
}

#[tokio::test]
async fn manual_approval_through_the_api_and_the_admin_api() {
    let server = start(CsrApproval::Manual).await;
    let client = client_from_yaml(&server.kubeconfig_yaml()).await;
    let csrs: Api<CertificateSigningRequest> = Api::all(client);
    let create = |request| {
        let csrs = csrs.clone();
        async move { csrs.create(&PostParams::default(), &request).await.unwrap().metadata.name.unwrap() }
    };
    let first = create(multus_csr("system:multus:node1", "system:multus", Some(3600)).0).await;

    // Nobody approves: pending (and the signer leaves it alone).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(csrs.get(&first).await.unwrap().status.is_none_or(|s| s.conditions.is_none()));

    // Approved through the approval subresource, as kubectl certificate approve does.
    let approval = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "TestApproval", "message": "approved by the test"}
    ]}});
    csrs.patch_approval(&first, &PatchParams::default(), &Patch::Merge(&approval)).await.unwrap();
    let signed = wait_for(&csrs, &first, "issued", issued).await;
    assert_eq!(condition(&signed, "Approved").unwrap().0, "TestApproval");
    // A decision cannot be taken back.
    let revoke = json!({"status": {"conditions": []}});
    let err = csrs.patch_approval(&first, &PatchParams::default(), &Patch::Merge(&revoke)).await.unwrap_err();
    assert!(matches!(&err, kube::Error::Api(s) if s.code == 422), "{err:?}");

    // Denied by the test (the admin API's csr/deny does the same): no certificate.
    let second = create(multus_csr("system:multus:node1", "system:multus", Some(3600)).0).await;
    server.deny_csr(&second, "not this one").unwrap();
    let denied = csrs.get(&second).await.unwrap();
    assert_eq!(condition(&denied, "Denied").unwrap(), ("KubeMockDeny".into(), "not this one".into()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!issued(&csrs.get(&second).await.unwrap()));

    // Switching the policy picks up pending requests.
    let third = create(multus_csr("anyone", "anything", Some(3600)).0).await;
    server.set_csr_approval(CsrApproval::ApproveAll);
    assert_eq!(server.csr_approval(), CsrApproval::ApproveAll);
    wait_for(&csrs, &third, "issued", issued).await;
}

/// With RBAC enforced, a service account decides a request only with `approve` on its signer
/// (`signers`, by name or by domain wildcard), besides `update` on the approval subresource,
/// as the API server's CertificateApproval admission demands.
#[tokio::test]
async fn approving_needs_approve_on_the_signer_under_rbac() {
    let role = |extra: Vec<serde_json::Value>| {
        let mut rules = vec![
            json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"], "verbs": ["get", "create"]}),
            json!({"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"], "verbs": ["update", "patch"]}),
        ];
        rules.extend(extra);
        json!({"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": "approver"}, "rules": rules})
    };
    let seed = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "approver", "namespace": "kube-system"}}),
        role(vec![]),
        json!({"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": {"name": "approver"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "approver"},
               "subjects": [{"kind": "ServiceAccount", "name": "approver", "namespace": "kube-system"}]}),
    ];
    let server = MockApiServer::start(MockConfig {
        tls: true,
        token: Some(BOOTSTRAP_TOKEN.into()),
        seed,
        enforce_rbac: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let token = server.issue_service_account_token("kube-system", "approver", None).unwrap();
    let csrs: Api<CertificateSigningRequest> =
        Api::all(client_from_yaml(&server.kubeconfig_yaml_with_token(&token)).await);
    let approval = json!({"status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "TestApproval", "message": "approved by the test"}
    ]}});
    let approve = |name: String| {
        let csrs = csrs.clone();
        let approval = approval.clone();
        async move { csrs.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval)).await }
    };
    let create = |request| {
        let csrs = csrs.clone();
        async move { csrs.create(&PostParams::default(), &request).await.unwrap().metadata.name.unwrap() }
    };

    let first = create(multus_csr("system:multus:node1", "system:multus", Some(3600)).0).await;
    let err = approve(first.clone()).await.unwrap_err();
    match &err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                format!(
                    "certificatesigningrequests.certificates.k8s.io \"{first}\" is forbidden: user not permitted to approve requests with signerName \"kubernetes.io/kube-apiserver-client\""
                )
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(condition(&csrs.get(&first).await.unwrap(), "Approved").is_none());

    // `approve` on another signer is not enough; on the signer's domain it is.
    let signers = |names: &[&str]| json!({"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": names, "verbs": ["approve"]});
    server.store().delete_kind(RBAC_V1, "ClusterRole", "", "approver").unwrap();
    server.store().create(role(vec![signers(&["example.com/other"])])).unwrap();
    assert!(matches!(approve(first.clone()).await, Err(kube::Error::Api(s)) if s.code == 403));
    server.store().delete_kind(RBAC_V1, "ClusterRole", "", "approver").unwrap();
    server.store().create(role(vec![signers(&["kubernetes.io/*"])])).unwrap();
    approve(first.clone()).await.unwrap();
    wait_for(&csrs, &first, "issued", issued).await;
}

const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";
