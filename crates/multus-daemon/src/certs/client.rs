//! The long-lived API client: the current certificate and the server trust behind one TLS
//! config, and connections that close when the certificate changes.

use super::*;

/// Hands rustls the current certificate at every handshake.
#[derive(Debug)]
pub(super) struct CurrentCertificate(pub(super) RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = key;
    }
}

impl ResolvesClientCert for CurrentCertificate {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies the API server's certificate with the CA of the bootstrap kubeconfig as last read.
#[derive(Debug)]
pub(super) struct ServerTrust(RwLock<Arc<dyn ServerCertVerifier>>);

impl ServerTrust {
    /// For configs that name their CA; None otherwise (system roots, or verification off).
    pub(super) fn for_config(config: &kube::Config) -> Result<Option<Self>, TrustError> {
        Ok(verifier_for(config)?.map(|v| Self(RwLock::new(v))))
    }

    fn get(&self) -> Arc<dyn ServerCertVerifier> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn update(&self, config: &kube::Config) {
        match verifier_for(config) {
            Ok(Some(verifier)) => *self.0.write().unwrap_or_else(|p| p.into_inner()) = verifier,
            Ok(None) => {}
            Err(e) => tracing::warn!("the bootstrap kubeconfig's CA is unusable ({e}); keeping the previous one"),
        }
    }
}

/// A verifier for the CA certificates a config names.
pub(super) fn verifier_for(config: &kube::Config) -> Result<Option<Arc<dyn ServerCertVerifier>>, TrustError> {
    let Some(roots) = config.root_cert.as_ref().filter(|_| !config.accept_invalid_certs) else { return Ok(None) };
    let mut store = rustls::RootCertStore::empty();
    for der in roots {
        store.add(CertificateDer::from(der.clone()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider).build()?;
    Ok(Some(verifier))
}

/// Why the CA certificates of a kubeconfig cannot verify the API server.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A CA certificate is unusable.
    #[error(transparent)]
    Root(#[from] rustls::Error),
    /// No verifier can be built from them.
    #[error(transparent)]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

impl ServerCertVerifier for ServerTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.get().verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// Connections belong to the certificate generation they were opened in; moving to a new
/// generation closes them.
#[derive(Debug, Default)]
pub(super) struct Generations(Mutex<Arc<Notify>>);

impl Generations {
    /// Completes when the current generation ends. Registered on creation, so an end that
    /// comes before the first poll is not missed.
    fn end_of_current(&self) -> OwnedNotified {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone().notified_owned()
    }

    pub(super) fn advance(&self) {
        let old = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        old.notify_waiters();
    }
}

/// A connector whose connections end when the certificate generation they began in is over.
#[derive(Clone)]
pub(super) struct GenerationConnector<C> {
    inner: C,
    generations: Arc<Generations>,
}

impl<C> tower::Service<Uri> for GenerationConnector<C>
where
    C: tower::Service<Uri> + Send,
    C::Future: Send + 'static,
{
    type Response = GenerationStream<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        // Taken before the handshake: a rotation during it closes this connection at once
        // (one retried request) rather than letting an old certificate through.
        let ended = Box::pin(self.generations.end_of_current());
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(GenerationStream { io, ended, over: false })
        })
    }
}

pub(super) struct GenerationStream<T> {
    io: T,
    ended: Pin<Box<OwnedNotified>>,
    /// The generation has ended (the future is not polled again once complete).
    over: bool,
}

impl<T> GenerationStream<T> {
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.over && self.ended.as_mut().poll(cx).is_ready() {
            self.over = true;
        }
        self.over
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for GenerationStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.ended(cx) {
            // End of stream: hyper drops the connection (and an idle one leaves the pool).
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for GenerationStream<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.ended(cx) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client certificate replaced")));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.ended(cx) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "client certificate replaced")));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for GenerationStream<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// The client-go timeouts the daemon's other client uses.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the client that authenticates with the per-node certificate cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CertClientError {
    /// Client certificates need TLS.
    #[error("the API server {0} is not https: client certificates need TLS")]
    NotHttps(http::Uri),
    /// The kubeconfig's TLS settings or extra headers are unusable.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// `tls-server-name` is not a DNS name or an address.
    #[error("tls-server-name: {0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
    /// The kubeconfig's CA certificates cannot verify the API server.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// A client for `server` (URL, CA and TLS settings of the bootstrap kubeconfig, none of its
/// credentials) that authenticates with whatever certificate `certificate` holds.
pub(super) fn certificate_client(
    server: &kube::Config,
    certificate: Arc<CurrentCertificate>,
    trust: Option<Arc<ServerTrust>>,
    generations: Arc<Generations>,
) -> Result<kube::Client, CertClientError> {
    let mut config = server.clone();
    config.auth_info = Default::default();
    if config.cluster_url.scheme_str() != Some("https") {
        return Err(CertClientError::NotHttps(config.cluster_url));
    }
    let mut tls = config.rustls_client_config()?;
    tls.client_auth_cert_resolver = certificate;
    tls.resumption = rustls::client::Resumption::disabled();
    if let Some(trust) = trust {
        tls.dangerous().set_certificate_verifier(trust);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http1().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(GenerationConnector { inner: https, generations });
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_read_timeout(Some(READ_TIMEOUT));
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(multus_node::limits::ResponseLimitLayer::default())
        .layer(config.base_uri_layer())
        .layer(config.extra_headers_layer()?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The bootstrap kubeconfig as a client config.
pub(super) async fn load_bootstrap(path: &Path) -> Result<kube::Config, kube::config::KubeconfigError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(READ_TIMEOUT);
    Ok(config)
}
