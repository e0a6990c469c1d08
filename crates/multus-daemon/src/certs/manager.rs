//! The certificate manager: the first certificate, renewal and reload.

use super::*;

/// What is known about the certificate in use (for logs, tests and status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Hex serial number.
    pub serial: String,
    /// Subject common name.
    pub common_name: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// How many certificates this manager has installed (1 after startup).
    pub generation: u64,
}

pub(super) struct Shared {
    config: CertManagerConfig,
    store: FileStore,
    /// The bootstrap kubeconfig as last read successfully.
    bootstrap: Mutex<kube::Config>,
    current: RwLock<ClientCertificate>,
    resolver: Arc<CurrentCertificate>,
    /// The long-lived client's view of the API server's CA.
    trust: Option<Arc<ServerTrust>>,
    generations: Arc<Generations>,
    info: watch::Sender<CertificateInfo>,
    /// The long-lived client (also used for CSRs while the certificate is valid).
    client: kube::Client,
    /// Serialises installs (rotation and reload).
    install: Mutex<()>,
}

/// The client-certificate manager: the long-lived client, and the tasks that renew and reload
/// its certificate. Dropping it stops the tasks; [`CertManager::detach`] keeps them for the
/// process's life.
pub struct CertManager {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CertManager {
    /// Gets a certificate (the stored one when still good, else a new one within
    /// `timing.startup_wait`), builds the client and starts renewing.
    pub async fn start(config: CertManagerConfig) -> Result<Self, CertError> {
        let bootstrap = load_bootstrap(&config.bootstrap_kubeconfig)
            .await
            .map_err(|reason| CertError::Bootstrap { path: config.bootstrap_kubeconfig.clone(), reason })?;
        std::fs::create_dir_all(&config.cert_dir)
            .map_err(|source| CertError::CertDir { path: config.cert_dir.clone(), source })?;
        let store = FileStore::new(&config.cert_dir);
        let common_name = config.common_name();
        let stored = match store.load() {
            Ok(Some(stored)) if stored.is_expired_at(SystemTime::now()) => {
                tracing::info!(
                    "the stored client certificate expired at {}; requesting a new one",
                    rfc3339(stored.not_after)
                );
                None
            }
            Ok(Some(stored)) if !stored.has_subject(&common_name) => {
                tracing::info!(
                    "the stored client certificate is for {} {:?}, not {common_name}; requesting a new one",
                    stored.common_name,
                    stored.organizations
                );
                None
            }
            Ok(Some(stored)) => Some(stored),
            Ok(None) => None,
            Err(StoreError::Invalid { path, reason }) => {
                tracing::warn!("{} is not usable ({reason}); requesting a new certificate", path.display());
                None
            }
            Err(StoreError::Io { path, source }) => return Err(CertError::CertDir { path, source }),
        };
        let (certificate, bootstrap) = match stored {
            Some(stored) => {
                tracing::info!(
                    "using the stored client certificate {} for {common_name}, valid until {}",
                    store.current_path().display(),
                    rfc3339(stored.not_after)
                );
                (stored, bootstrap)
            }
            None => first_certificate(&config, &store, bootstrap).await?,
        };
        let resolver = Arc::new(CurrentCertificate(RwLock::new(certificate.certified.clone())));
        let trust = ServerTrust::for_config(&bootstrap).map_err(CertClientError::from)?.map(Arc::new);
        let generations = Arc::new(Generations::default());
        let client = certificate_client(&bootstrap, resolver.clone(), trust.clone(), generations.clone())?;
        let info = watch::Sender::new(info_of(&certificate, 1));
        let shared = Arc::new(Shared {
            config,
            store,
            bootstrap: Mutex::new(bootstrap),
            current: RwLock::new(certificate),
            resolver,
            trust,
            generations,
            info,
            client,
            install: Mutex::new(()),
        });
        let tasks = vec![tokio::spawn(renew(shared.clone())), tokio::spawn(reload(shared.clone()))];
        Ok(Self { shared, tasks })
    }

    /// The client that authenticates with the current certificate.
    pub fn client(&self) -> kube::Client {
        self.shared.client.clone()
    }

    /// The certificate in use.
    pub fn current(&self) -> CertificateInfo {
        self.shared.info.borrow().clone()
    }

    /// Changes of the certificate in use.
    pub fn subscribe(&self) -> watch::Receiver<CertificateInfo> {
        self.shared.info.subscribe()
    }

    /// The client, with renewal running for as long as the process does.
    pub fn detach(mut self) -> kube::Client {
        self.tasks.clear();
        self.client()
    }
}

impl Drop for CertManager {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn info_of(certificate: &ClientCertificate, generation: u64) -> CertificateInfo {
    CertificateInfo {
        serial: certificate.serial.clone(),
        common_name: certificate.common_name.clone(),
        not_before: certificate.not_before,
        not_after: certificate.not_after,
        generation,
    }
}

/// "x509: certificate signed by unknown authority", as rustls says it.
pub(super) fn is_unknown_authority(error: &RotationError) -> bool {
    let text = error.to_string();
    text.contains("UnknownIssuer") || text.contains("unknown authority")
}

/// The bootstrap kubeconfig, re-read; on failure the last good one.
pub(super) async fn fresh_bootstrap(path: &Path, last: &Mutex<kube::Config>) -> kube::Config {
    match load_bootstrap(path).await {
        Ok(config) => {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = config.clone();
            config
        }
        Err(reason) => {
            tracing::warn!(
                "cannot re-read the bootstrap kubeconfig {} ({reason}); using the one read before",
                path.display()
            );
            last.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }
    }
}

/// One attempt with the bootstrap credentials, then the pair is stored.
pub(super) async fn bootstrap_attempt(
    config: &CertManagerConfig,
    store: &FileStore,
    bootstrap: kube::Config,
    wait: Duration,
) -> Result<ClientCertificate, RotationError> {
    let client = multus_node::limits::client(bootstrap).map_err(RotationError::Client)?;
    let certificate = request_certificate(client, config, wait).await?;
    store.save(&certificate).map_err(|source| RotationError::Store { path: store.current_path(), source })?;
    Ok(certificate)
}

/// Startup without a usable stored certificate: attempts with retries until one succeeds or
/// `startup_wait` is over. Returns the certificate and the bootstrap kubeconfig that worked.
pub(super) async fn first_certificate(
    config: &CertManagerConfig,
    store: &FileStore,
    bootstrap: kube::Config,
) -> Result<(ClientCertificate, kube::Config), CertError> {
    let timing = &config.timing;
    let started = tokio::time::Instant::now();
    let deadline = started + timing.startup_wait;
    let last_good = Mutex::new(bootstrap.clone());
    let mut attempt = 0;
    tracing::info!("waiting for a client certificate for {}", config.common_name());
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bootstrap = if attempt == 0 {
            bootstrap.clone()
        } else {
            fresh_bootstrap(&config.bootstrap_kubeconfig, &last_good).await
        };
        let outcome = bootstrap_attempt(config, store, bootstrap.clone(), timing.csr_wait.min(remaining)).await;
        let error = match outcome {
            Ok(certificate) => {
                tracing::info!(
                    "client certificate for {} issued, valid until {}",
                    certificate.common_name,
                    rfc3339(certificate.not_after)
                );
                return Ok((certificate, bootstrap));
            }
            Err(error) => error,
        };
        if is_unknown_authority(&error) {
            tracing::warn!(
                "the API server's certificate is not signed by the bootstrap kubeconfig's CA; {} is re-read for the next attempt",
                config.bootstrap_kubeconfig.display()
            );
        }
        let delay = jittered(timing.retry_delay(attempt));
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining <= delay {
            tokio::time::sleep(remaining).await;
            return Err(CertError::NotIssued {
                common_name: config.common_name(),
                waited: started.elapsed(),
                last: error,
            });
        }
        tracing::warn!("no client certificate yet ({error}); retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// client-go's 10 % jitter on retry delays.
pub(super) fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(1.0 + 0.1 * random_unit())
}

impl Shared {
    fn current(&self) -> ClientCertificate {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The bootstrap kubeconfig read again; the long-lived client trusts its CA from now on.
    async fn refresh_bootstrap(&self) -> kube::Config {
        let bootstrap = fresh_bootstrap(&self.config.bootstrap_kubeconfig, &self.bootstrap).await;
        if let Some(trust) = &self.trust {
            trust.update(&bootstrap);
        }
        bootstrap
    }

    /// Makes `certificate` the one in use: new handshakes present it, older connections close.
    fn install(&self, certificate: ClientCertificate) {
        let _installing = self.install.lock().unwrap_or_else(|p| p.into_inner());
        if self.current().serial == certificate.serial {
            return;
        }
        self.resolver.set(certificate.certified.clone());
        let generation = self.info.borrow().generation + 1;
        let info = info_of(&certificate, generation);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certificate;
        self.generations.advance();
        self.info.send_replace(info);
    }

    /// One renewal attempt: with the current certificate while it is valid (Go: `current()`
    /// is nil once expired), else with the bootstrap credentials.
    async fn renew_once(&self) -> Result<ClientCertificate, RotationError> {
        let wait = self.config.timing.csr_wait;
        if self.current().is_expired_at(SystemTime::now()) {
            let bootstrap = self.refresh_bootstrap().await;
            return bootstrap_attempt(&self.config, &self.store, bootstrap, wait).await;
        }
        let certificate = request_certificate(self.client.clone(), &self.config, wait).await?;
        self.store
            .save(&certificate)
            .map_err(|source| RotationError::Store { path: self.store.current_path(), source })?;
        Ok(certificate)
    }
}

/// Sleeps until `deadline` (wall clock), in steps so that clock changes are noticed, or until
/// the certificate in use changes (returns false then).
pub(super) async fn sleep_until(deadline: SystemTime, changes: &mut watch::Receiver<CertificateInfo>) -> bool {
    loop {
        let Ok(left) = deadline.duration_since(SystemTime::now()) else { return true };
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The manager is gone; nothing to renew.
                    std::future::pending::<()>().await;
                }
                return false;
            }
        }
    }
}

/// Renews the certificate at 70–90 % of its lifetime, retrying failures for as long as it takes.
pub(super) async fn renew(shared: Arc<Shared>) {
    let mut changes = shared.info.subscribe();
    loop {
        let certificate = shared.current();
        let (lower, upper) = shared.config.timing.rotation_fraction;
        let deadline = rotation_deadline(certificate.not_before, certificate.not_after, random_between(lower, upper));
        tracing::info!("the client certificate will be renewed at {}", rfc3339(deadline));
        changes.mark_unchanged();
        if !sleep_until(deadline, &mut changes).await {
            continue;
        }
        let mut attempt = 0;
        loop {
            tracing::info!("renewing the client certificate for {}", shared.config.common_name());
            match shared.renew_once().await {
                Ok(renewed) => {
                    tracing::info!(
                        "client certificate renewed: serial {}, valid until {}",
                        renewed.serial,
                        rfc3339(renewed.not_after)
                    );
                    shared.install(renewed);
                    break;
                }
                Err(error) => {
                    let delay = jittered(shared.config.timing.retry_delay(attempt));
                    tracing::warn!("renewing the client certificate failed ({error}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// Re-reads the stored pair, installing one written by someone else, and the bootstrap
/// kubeconfig, following a rotated CA.
pub(super) async fn reload(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(shared.config.timing.reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        shared.refresh_bootstrap().await;
        match shared.store.load() {
            Ok(Some(stored)) if stored.serial != shared.current().serial => {
                if stored.is_expired_at(SystemTime::now()) {
                    tracing::debug!("the stored client certificate changed but is expired; not using it");
                } else {
                    tracing::info!("the stored client certificate changed (serial {}); using it", stored.serial);
                    shared.install(stored);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("re-reading the stored client certificate: {e}"),
        }
    }
}
