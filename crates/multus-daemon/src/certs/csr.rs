//! One CertificateSigningRequest: the request, its state, and waiting for the certificate.

use super::*;

/// A PEM CSR for `common_name`/O `system:multus` and its new ECDSA P-256 key (client-go's
/// key type).
pub(super) fn certificate_request(common_name: &str) -> Result<(String, rcgen::KeyPair), rcgen::Error> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let request = params.serialize_request(&key)?;
    Ok((request.pem()?, key))
}

/// What the API said about a CSR we wait on.
pub(super) enum CsrState {
    Pending,
    Issued(String),
    Denied(String, String),
    Failed(String, String),
}

pub(super) fn csr_state(csr: &CertificateSigningRequest) -> CsrState {
    let Some(status) = &csr.status else { return CsrState::Pending };
    for condition in status.conditions.iter().flatten() {
        let detail = || (condition.reason.clone().unwrap_or_default(), condition.message.clone().unwrap_or_default());
        match condition.type_.as_str() {
            "Denied" => return CsrState::Denied(detail().0, detail().1),
            "Failed" => return CsrState::Failed(detail().0, detail().1),
            _ => {}
        }
    }
    let approved = status.conditions.iter().flatten().any(|c| c.type_ == "Approved");
    match &status.certificate {
        Some(certificate) if approved && !certificate.0.is_empty() => {
            CsrState::Issued(String::from_utf8_lossy(&certificate.0).into_owned())
        }
        _ => CsrState::Pending,
    }
}

/// Files one CSR with `client` and waits up to `wait` for its certificate.
pub(super) async fn request_certificate(
    client: kube::Client,
    config: &CertManagerConfig,
    wait: Duration,
) -> Result<ClientCertificate, RotationError> {
    let common_name = config.common_name();
    let (request_pem, key) = certificate_request(&common_name).map_err(|e| RotationError::Create(e.to_string()))?;
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta { generate_name: Some("csr-".into()), ..Default::default() },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request_pem.into_bytes()),
            signer_name: SIGNER_NAME.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            expiration_seconds: Some(i32::try_from(config.cert_duration.as_secs()).unwrap_or(i32::MAX)),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let created = api.create(&PostParams::default(), &csr).await.map_err(|e| RotationError::Create(e.to_string()))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    let uid = created.metadata.uid.clone();
    tracing::info!("filed CertificateSigningRequest {name} for {common_name}; waiting for its certificate");
    let ours = |csr: &CertificateSigningRequest| uid.is_none() || csr.metadata.uid == uid;
    let decided = |csr: &CertificateSigningRequest| ours(csr) && !matches!(csr_state(csr), CsrState::Pending);
    let watch_config = kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut states = std::pin::pin!(kube::runtime::watcher(api, watch_config).default_backoff());
    let waited = tokio::time::timeout(wait, async {
        let mut last_error = None;
        while let Some(event) = states.next().await {
            match event {
                Ok(kube::runtime::watcher::Event::Apply(csr) | kube::runtime::watcher::Event::InitApply(csr))
                    if decided(&csr) =>
                {
                    return Ok(csr);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("watching CertificateSigningRequest {name}: {e}");
                    last_error = Some(e.to_string());
                }
            }
        }
        Err(last_error.unwrap_or_else(|| "the watch ended".into()))
    })
    .await;
    let csr = match waited {
        Err(_) => return Err(RotationError::NotSigned { name, waited: wait }),
        Ok(Err(reason)) => return Err(RotationError::Watch { name, reason }),
        Ok(Ok(csr)) => csr,
    };
    match csr_state(&csr) {
        CsrState::Issued(certificate_pem) => ClientCertificate::from_pem(&certificate_pem, &key.serialize_pem())
            .map_err(|reason| RotationError::Unusable { name, reason }),
        CsrState::Denied(reason, message) => Err(RotationError::Denied { name, reason, message }),
        CsrState::Failed(reason, message) => Err(RotationError::Failed { name, reason, message }),
        CsrState::Pending => Err(RotationError::NotSigned { name, waited: wait }),
    }
}
