use super::*;
use crate::resources::Registry;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use x509_parser::prelude::FromDer;

fn request_pem(cn: &str, org: Option<&str>) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(org) = org {
        params.distinguished_name.push(DnType::OrganizationName, org);
    }
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(name: &str, cn: &str, org: Option<&str>, usages: &[&str], expiration: Option<i64>) -> Value {
    let mut csr = json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(request_pem(cn, org)),
                 "signerName": KUBE_APISERVER_CLIENT_SIGNER, "usages": usages}
    });
    if let Some(seconds) = expiration {
        csr["spec"]["expirationSeconds"] = json!(seconds);
    }
    csr
}

fn node_user(node: &str) -> UserInfo {
    UserInfo {
        username: format!("system:node:{node}"),
        groups: vec!["system:nodes".into(), "system:authenticated".into()],
    }
}

const MULTUS_USAGES: &[&str] = &["digital signature", "client auth"];

#[test]
fn create_checks_the_request_and_records_the_requester() {
    let mut good = csr("a", "system:multus:node1", Some("system:multus"), MULTUS_USAGES, Some(600));
    good["spec"]["username"] = json!("someone-else");
    good["status"] = json!({"certificate": "Zm9v"});
    admit_create(&mut good, &node_user("node1"), 600).unwrap();
    assert_eq!(good["spec"]["username"], "system:node:node1");
    assert_eq!(good["spec"]["groups"], json!(["system:nodes", "system:authenticated"]));
    assert!(good.get("status").is_none());

    let user = node_user("node1");
    let mut short = csr("b", "x", None, MULTUS_USAGES, Some(599));
    let err = admit_create(&mut short, &user, 600).unwrap_err();
    assert_eq!(err.code, 422);
    assert!(err.message.contains("spec.expirationSeconds"), "{}", err.message);
    assert!(admit_create(&mut csr("b", "x", None, MULTUS_USAGES, Some(60)), &user, 30).is_ok());

    let mut garbage = csr("c", "x", None, MULTUS_USAGES, None);
    garbage["spec"]["request"] = json!(base64::engine::general_purpose::STANDARD.encode("not pem"));
    assert!(
        admit_create(&mut garbage, &user, 600)
            .unwrap_err()
            .message
            .contains("PEM block type must be CERTIFICATE REQUEST")
    );
    let mut no_signer = csr("d", "x", None, MULTUS_USAGES, None);
    no_signer["spec"]["signerName"] = json!("");
    assert!(admit_create(&mut no_signer, &user, 600).unwrap_err().message.contains("spec.signerName: Required value"));
    let mut bad_usage = csr("e", "x", None, &["client auth", "flying"], None);
    assert!(
        admit_create(&mut bad_usage, &user, 600).unwrap_err().message.contains("spec.usages[1]: Unsupported value")
    );
    let mut no_usage = csr("f", "x", None, &[], None);
    assert!(admit_create(&mut no_usage, &user, 600).unwrap_err().message.contains("spec.usages: Required value"));
}

#[test]
fn subresources_guard_the_decision_and_the_certificate() {
    let mut current = csr("a", "system:multus:n", Some("system:multus"), MULTUS_USAGES, Some(600));
    current["metadata"]["resourceVersion"] = json!("5");
    // Main resource: spec and status cannot change.
    let mut incoming = current.clone();
    incoming["spec"]["signerName"] = json!("other");
    incoming["status"] = json!({"certificate": "eA=="});
    incoming["metadata"]["labels"] = json!({"x": "1"});
    let next = merge_update(None, &current, incoming).unwrap();
    assert_eq!(next["spec"]["signerName"], KUBE_APISERVER_CLIENT_SIGNER);
    assert!(next.get("status").is_none());
    assert_eq!(next["metadata"]["labels"]["x"], "1");

    // Approval: conditions only, defaults filled in.
    let mut approval = current.clone();
    approval["status"] = json!({"conditions": [{"type": "Approved", "reason": "R"}], "certificate": "eA=="});
    let approved = merge_update(Some("approval"), &current, approval).unwrap();
    assert_eq!(approved["status"]["conditions"][0]["status"], "True");
    assert!(approved["status"]["conditions"][0]["lastUpdateTime"].is_string());
    assert!(approved["status"].get("certificate").is_none());

    let mut both = current.clone();
    both["status"] = json!({"conditions": [{"type": "Approved"}, {"type": "Denied"}]});
    assert_eq!(merge_update(Some("approval"), &current, both).unwrap_err().code, 422);
    let removal = current.clone();
    assert_eq!(merge_update(Some("approval"), &approved, removal).unwrap_err().code, 422);

    // Status: the certificate needs approval and is then fixed; the decision stays.
    let mut issue = current.clone();
    issue["status"] = json!({"certificate": "eA=="});
    assert_eq!(merge_update(Some("status"), &current, issue.clone()).unwrap_err().code, 422);
    let issued = merge_update(Some("status"), &approved, issue).unwrap();
    assert_eq!(issued["status"]["certificate"], "eA==");
    assert_eq!(issued["status"]["conditions"][0]["type"], "Approved");
    let mut change = issued.clone();
    change["status"]["certificate"] = json!("eQ==");
    assert_eq!(merge_update(Some("status"), &issued, change).unwrap_err().code, 422);
}

#[test]
fn cert_approver_rules() {
    let mut ok = csr("csr-1", "system:multus:node1", Some("system:multus"), MULTUS_USAGES, Some(600));
    admit_create(&mut ok, &node_user("node1"), 600).unwrap();
    assert!(cert_approver_applies(&ok));
    cert_approver_verdict(&ok).unwrap();

    let check = |mut c: Value, user: UserInfo| {
        admit_create(&mut c, &user, 600).unwrap();
        cert_approver_verdict(&c).unwrap_err().to_string()
    };
    let wrong_user = UserInfo { username: "system:bootstrap:abcdef".into(), groups: vec![] };
    assert!(check(ok.clone(), wrong_user).contains("unexpected user"));
    let other_node = csr("c", "system:multus:node2", Some("system:multus"), MULTUS_USAGES, Some(600));
    assert!(check(other_node, node_user("node1")).contains("commonName"));
    let usages = csr("c", "system:multus:node1", Some("system:multus"), &["client auth"], Some(600));
    assert!(check(usages, node_user("node1")).contains("unexpected usages"));
    let org = csr("c", "system:multus:node1", Some("system:nodes"), MULTUS_USAGES, Some(600));
    assert!(check(org, node_user("node1")).contains("organization"));
    let forever = csr("c", "system:multus:node1", Some("system:multus"), MULTUS_USAGES, None);
    assert!(check(forever, node_user("node1")).contains("without specifying the expirationSeconds"));
    let groups = UserInfo { username: "system:multus:node1".into(), groups: vec!["system:masters".into()] };
    assert!(check(ok.clone(), groups).contains("unexpected groups"));
    let bad_node = UserInfo { username: "system:node:Node_1".into(), groups: vec![] };
    assert!(check(ok, bad_node).contains("not a valid DNS subdomain"));

    let kubelet = csr("k", "system:node:node1", Some("system:nodes"), MULTUS_USAGES, Some(600));
    assert!(!cert_approver_applies(&kubelet));
    assert!(is_dns1123_subdomain("node-1.example.com"));
    assert!(!is_dns1123_subdomain("-node"));
}

fn controller(approval: CsrApproval, settings: CsrSettings) -> CsrController {
    CsrController {
        store: Store::new(Registry::with_builtins(), 100),
        ca: Arc::new(CertificateAuthority::generate().unwrap()),
        settings,
        approval: Arc::new(RwLock::new(approval)),
        resync: Arc::new(Notify::new()),
    }
}

fn create(c: &CsrController, mut object: Value, user: &UserInfo) {
    admit_create(&mut object, user, 600).unwrap();
    let def = csr_def(&c.store).unwrap();
    c.store.create_in(&def, "", object).unwrap();
}

fn issued_validity(csr: &Value) -> (i64, i64) {
    let pem = base64::engine::general_purpose::STANDARD.decode(csr["status"]["certificate"].as_str().unwrap()).unwrap();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp())
}

#[test]
fn approver_and_signer() {
    let settings = CsrSettings { backdate: Duration::from_secs(300), ..Default::default() };
    let c = controller(CsrApproval::MultusCertApprover, settings);
    let gvr = csr_gvr();
    create(
        &c,
        csr("good", "system:multus:node1", Some("system:multus"), MULTUS_USAGES, Some(600)),
        &node_user("node1"),
    );
    c.reconcile("good");
    let good = c.store.get(&gvr, "", "good").unwrap();
    assert_eq!(true_condition(&good, "Approved").unwrap()["reason"], "AutoApproved");
    let (not_before, not_after) = issued_validity(&good);
    // Short-lived: notBefore backdated 5 minutes, notAfter not.
    assert_eq!(not_after - not_before, 900);

    create(&c, csr("bad", "system:multus:node1", Some("system:multus"), MULTUS_USAGES, None), &node_user("node1"));
    c.reconcile("bad");
    let bad = c.store.get(&gvr, "", "bad").unwrap();
    assert_eq!(true_condition(&bad, "Denied").unwrap()["reason"], "CSRDenied");
    assert!(bad["status"].get("certificate").is_none());

    // Not the cert-approver's business: stays pending until someone decides.
    create(
        &c,
        csr("kubelet", "system:node:node1", Some("system:nodes"), MULTUS_USAGES, Some(3600)),
        &node_user("node1"),
    );
    c.reconcile("kubelet");
    assert!(c.store.get(&gvr, "", "kubelet").unwrap()["status"]["conditions"].is_null());
    decide(&c.store, "kubelet", true, "Manual", "ok").unwrap();
    assert_eq!(decide(&c.store, "kubelet", false, "Manual", "no").unwrap_err().code, 409);
    c.reconcile("kubelet");
    let (not_before, not_after) = issued_validity(&c.store.get(&gvr, "", "kubelet").unwrap());
    assert_eq!(not_after - not_before, 3900);

    // A server-auth usage makes the signer fail the request.
    create(
        &c,
        csr("server", "system:multus:node1", Some("system:multus"), &["server auth"], Some(600)),
        &node_user("node1"),
    );
    decide(&c.store, "server", true, "Manual", "ok").unwrap();
    c.reconcile("server");
    let server = c.store.get(&gvr, "", "server").unwrap();
    assert_eq!(true_condition(&server, "Failed").unwrap()["reason"], "SignerValidationFailure");
    assert!(server["status"].get("certificate").is_none());
}

#[test]
fn approve_all_and_unbackdated_short_certificates() {
    let settings = CsrSettings { backdate: Duration::ZERO, min_expiration_seconds: 10, ..Default::default() };
    let c = controller(CsrApproval::ApproveAll, settings);
    let user = UserInfo::anonymous();
    let mut object = csr("x", "anything", None, &["client auth"], Some(30));
    admit_create(&mut object, &user, 10).unwrap();
    c.store.create_in(&csr_def(&c.store).unwrap(), "", object).unwrap();
    c.reconcile("x");
    let (not_before, not_after) = issued_validity(&c.store.get(&csr_gvr(), "", "x").unwrap());
    assert_eq!(not_after - not_before, 30);
    assert_eq!("multus-cert-approver".parse::<CsrApproval>().unwrap(), CsrApproval::MultusCertApprover);
    assert!("sometimes".parse::<CsrApproval>().is_err());
}
