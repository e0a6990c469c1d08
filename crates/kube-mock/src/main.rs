//! `kube-mock`: run the mock Kubernetes API server standalone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube_mock::{CsrApproval, CsrSettings, DenyRule, MockApiServer, MockConfig};

/// A mock Kubernetes API server for kubectl, kube-rs and client-go.
#[derive(Parser, Debug)]
#[command(name = "kube-mock", version = build_info::version!())]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Serve HTTPS with a throwaway CA.
    #[arg(long)]
    tls: bool,
    /// Require this bearer token.
    #[arg(long, env = "KUBE_MOCK_TOKEN")]
    token: Option<String>,
    /// YAML/JSON file or directory of objects to store at start (repeatable).
    #[arg(long = "seed", value_name = "PATH")]
    seed: Vec<PathBuf>,
    /// Write a kubeconfig for this server to FILE.
    #[arg(long, value_name = "FILE")]
    kubeconfig_out: Option<PathBuf>,
    /// Write service-account files (token, ca.crt, namespace) into DIR.
    #[arg(long, value_name = "DIR")]
    in_cluster_dir: Option<PathBuf>,
    /// Answer VERB:RESOURCE with 403 Forbidden, e.g. `update:pods/status` or `*:secrets` (repeatable).
    #[arg(long = "deny", value_name = "VERB:RESOURCE")]
    deny: Vec<String>,
    /// Events kept per resource for resuming watches.
    #[arg(long, default_value_t = 1000)]
    watch_history: usize,
    /// Extra subject alternative names for the TLS certificate (repeatable).
    #[arg(long = "san", value_name = "NAME_OR_IP")]
    extra_sans: Vec<String>,
    /// Path prefix of the admin API.
    #[arg(long, default_value = "/_mock")]
    admin_prefix: String,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 10)]
    bookmark_seconds: u64,
    /// Who approves CertificateSigningRequests: manual, approve-all or multus-cert-approver.
    #[arg(long, default_value = "manual")]
    csr_approval: CsrApproval,
    /// Smallest expirationSeconds of a CertificateSigningRequest (the real API server: 600).
    #[arg(long, default_value_t = 600)]
    csr_min_expiration_seconds: i64,
    /// How far the CSR signer backdates notBefore, in seconds (kube-controller-manager: 300).
    #[arg(long, default_value_t = 300)]
    csr_backdate_seconds: u64,
    /// Write a kubeconfig that authenticates with a client certificate to FILE, for the
    /// subject given by --client-cert-subject (e.g. a kubelet's, as Multus' bootstrap kubeconfig).
    #[arg(long, value_name = "FILE", requires = "tls")]
    client_cert_kubeconfig_out: Option<PathBuf>,
    /// Subject of that certificate: `CN` or `CN/O`, e.g. `system:node:node1/system:nodes`.
    #[arg(long, value_name = "CN[/O]", default_value = "system:node:node1/system:nodes")]
    client_cert_subject: String,
    /// Evaluate the stored RBAC objects (ClusterRoles, Roles and their bindings) for
    /// service-account users: requests no binding grants get 403. Other users keep full access.
    #[arg(long)]
    enforce_rbac: bool,
    /// What the stand-in kubelet does with a terminating pod: delete it with grace period 0
    /// after this many milliseconds (0: right after the deletionTimestamp is set), or `never`.
    #[arg(long, value_name = "MILLIS|never", default_value = "0", value_parser = parse_kubelet_delay)]
    kubelet_delete_after_ms: KubeletDelay,
}

/// `--kubelet-delete-after-ms`: milliseconds, or never.
#[derive(Debug, Clone, Copy)]
struct KubeletDelay(Option<Duration>);

fn parse_kubelet_delay(value: &str) -> Result<KubeletDelay, String> {
    match value {
        "never" => Ok(KubeletDelay(None)),
        millis => millis
            .parse::<u64>()
            .map(|m| KubeletDelay(Some(Duration::from_millis(m))))
            .map_err(|_| format!("{millis:?} is neither a number of milliseconds nor `never`")),
    }
}

fn main() -> anyhow::Result<()> {
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("kube-mock"));
        return Ok(());
    }
    // Colour only on a terminal: tests and CI pipe stderr into files.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let mut seed = Vec::new();
    for path in &cli.seed {
        seed.extend(kube_mock::seed::load_path(path)?);
    }
    let deny = cli.deny.iter().map(|d| d.parse::<DenyRule>()).collect::<Result<Vec<_>, _>>()?;
    let config = MockConfig {
        listen: cli.listen,
        tls: cli.tls,
        token: cli.token.clone(),
        seed,
        extra_sans: cli.extra_sans.clone(),
        watch_history: cli.watch_history,
        deny,
        admin_prefix: cli.admin_prefix.clone(),
        bookmark_interval: Duration::from_secs(cli.bookmark_seconds.max(1)),
        csr: CsrSettings {
            approval: cli.csr_approval,
            min_expiration_seconds: cli.csr_min_expiration_seconds,
            backdate: Duration::from_secs(cli.csr_backdate_seconds),
            ..CsrSettings::default()
        },
        enforce_rbac: cli.enforce_rbac,
        kubelet_delete_after: cli.kubelet_delete_after_ms.0,
        ..MockConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(run(cli, config))
}

async fn run(cli: Cli, config: MockConfig) -> anyhow::Result<()> {
    let server = MockApiServer::start(config).await.context("starting the mock API server")?;
    if let Some(path) = &cli.kubeconfig_out {
        server.write_kubeconfig(path).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.client_cert_kubeconfig_out {
        let (cn, o) = match cli.client_cert_subject.split_once('/') {
            Some((cn, o)) => (cn, Some(o)),
            None => (cli.client_cert_subject.as_str(), None),
        };
        let certificate = server
            .issue_client_certificate(cn, o, Duration::from_secs(365 * 24 * 3600))
            .context("issuing the client certificate")?;
        std::fs::write(path, server.kubeconfig_yaml_with_client_certificate(&certificate))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = &cli.in_cluster_dir {
        server.write_in_cluster_dir(dir).with_context(|| format!("writing {}", dir.display()))?;
    }
    // Installed before the address is printed: a script may send SIGTERM as soon as it has read
    // it, and before the handler exists that signal would kill the process without a shutdown.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    // The first stdout line is the contract with scripts: they read the address from it.
    println!("listening on {}", server.url());
    use std::io::Write as _;
    std::io::stdout().flush().context("flushing stdout")?;

    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
    }
    server.shutdown().await;
    Ok(())
}
