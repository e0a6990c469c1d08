//! `fake-kubelet`: serves the kubelet pod-resources v1 gRPC API on a unix socket from a script.
//! The first stdout line is `listening on unix://<socket>`; logs go to stderr (`RUST_LOG`).
//! SIGINT/SIGTERM stop it and remove the socket.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use fake_kubelet::{Failure, FakeKubelet, Script, parse_code, parse_device_flag};
use tokio::io::AsyncWriteExt as _;
use tokio::signal::unix::{SignalKind, signal};

/// A scriptable fake kubelet pod-resources server (List, Get, GetAllocatableResources).
#[derive(Debug, Parser)]
#[command(name = "fake-kubelet", version)]
struct Args {
    /// Unix socket to serve on (a stale socket is replaced; its directory is created).
    #[arg(long, default_value = "/var/lib/kubelet/pod-resources/kubelet.sock")]
    socket: PathBuf,
    /// Script file (JSON or YAML), re-read on every call so it can be edited while running.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Devices of a pod: NAMESPACE/POD[/CONTAINER]:RESOURCE=ID[,ID...] (repeatable; container
    /// `container` when omitted).
    #[arg(long = "device", value_name = "SPEC")]
    devices: Vec<String>,
    /// Wait this many milliseconds before answering each call.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer every call with this gRPC error: CODE[:MESSAGE] (code name or number).
    #[arg(long, value_name = "CODE[:MESSAGE]")]
    fail: Option<String>,
}

fn overlay_from(args: &Args) -> anyhow::Result<Script> {
    let mut script = Script { delay_ms: args.delay_ms, ..Script::default() };
    for flag in &args.devices {
        let (namespace, pod, container, device) = parse_device_flag(flag)?;
        script.add_devices(&namespace, &pod, &container, device);
    }
    if let Some(fail) = &args.fail {
        let (code, message) = match fail.split_once(':') {
            Some((code, message)) => (code, message.to_string()),
            None => (fail.as_str(), "fake-kubelet: configured failure".to_string()),
        };
        parse_code(code).map_err(|e| anyhow::anyhow!("--fail {fail}: {e}"))?;
        script.fail = Some(Failure { code: code.to_string(), message });
    }
    Ok(script)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "fake_kubelet=info".into()),
        )
        .init();
    let args = Args::parse();
    let overlay = overlay_from(&args)?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let server = FakeKubelet::start_with_file(&args.socket, args.config.clone(), overlay)
        .await
        .with_context(|| format!("fake-kubelet on {}", args.socket.display()))?;
    let socket = std::path::absolute(server.socket()).unwrap_or_else(|_| server.socket().to_path_buf());
    let mut stdout = tokio::io::stdout();
    stdout.write_all(format!("listening on unix://{}\n", socket.display()).as_bytes()).await?;
    stdout.flush().await?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
        _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
    }
    server.shutdown().await;
    Ok(())
}
