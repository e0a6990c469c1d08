//! `cert-approver`: see the library documentation. Flags: `--kubeconfig PATH` (else the
//! in-cluster service account, or `$KUBECONFIG`), `-version`; log level from `RUST_LOG`
//! (default `info`).

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(name = "cert-approver", about = "Approves multus-daemon's per-node certificate requests")]
struct Args {
    /// Kubeconfig to use instead of the in-cluster service account (or $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
}

async fn client(args: &Args) -> anyhow::Result<kube::Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("using the kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context("no in-cluster service account and no kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the API client")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM ({e}); stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("cert-approver"));
        return Ok(());
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a container's log is a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let client = client(&args).await?;
    tracing::info!("{} watching CertificateSigningRequests", build_info::version_line!("cert-approver"));
    cert_approver::run(client, shutdown_signal()).await;
    Ok(())
}
