//! The command line: `multusctl [-o json|table] [--kubeconfig FILE] explain|lint|attachments`.
//!
//! Exit codes: 0 fine; 1 the command found something (the ADD fails, lint findings of severity
//! error or warning, orphaned attachments); 2 usage or I/O errors (clap's usage errors are 2 too).

// The doc comments below are clap's --help text, where `<name>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use crate::attachments::{self, AttachmentReport};
use crate::explain::{ExplainRequest, Explanation, explain};
use crate::lint::{Finding, LintOptions, LintReport, lint};
use crate::node::{NodeConfig, NodeOptions};
use crate::objects::{self, NAD_KIND, NadSet, ObjectView, load_paths};
use crate::{cluster, render};
use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use multus::model::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION, PodInfo};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Explain what the Multus daemon does with a pod, lint NetworkAttachmentDefinitions, list a
/// node's attachments.
#[derive(Debug, Parser)]
#[command(name = "multusctl", version = build_info::version!(), about, long_about = None)]
pub struct Cli {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// kubeconfig to use (default: $KUBECONFIG, then the in-cluster service account, then
    /// ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The plan the daemon makes for a pod's ADD, or why it fails.
    Explain(ExplainArgs),
    /// Check NetworkAttachmentDefinitions (files, or the API server's) and pod selections.
    Lint(LintArgs),
    /// The attachments in this node's delegate cache, and which are orphaned.
    Attachments(AttachmentsArgs),
}

/// The node's configuration.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's daemon config [default: /etc/cni/net.d/multus.d/daemon-config.json].
    #[arg(long, value_name = "FILE")]
    pub daemon_config: Option<PathBuf>,
    /// The config the runtime passes to the shim [default: <cniConfigDir>/00-multus.conf, or
    /// what the daemon would generate].
    #[arg(long, value_name = "FILE")]
    pub multus_conf: Option<PathBuf>,
    /// Look for plugin binaries here (repeatable) [default: the config's binDir when it exists
    /// on this machine].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The pod: NAME or NAMESPACE/NAME (from the API server, or from -f).
    pub pod: Option<String>,
    /// The pod's namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Read the pod (and any NADs) from these files or directories instead of the API server.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// NetworkAttachmentDefinitions from these files or directories (offline).
    #[arg(long, value_name = "PATH")]
    pub nads: Vec<PathBuf>,
    #[command(flatten)]
    pub node: NodeArgs,
    /// The pod's device IDs: a JSON file {"<resourceName>": ["<id>", …]}.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
    /// The runtime's capability arguments as JSON, e.g. '{"portMappings":[…]}'.
    #[arg(long, value_name = "JSON")]
    pub runtime_config: Option<String>,
    /// CNI_IFNAME of the request.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// CNI_CONTAINERID of the request (unknown before the sandbox exists).
    #[arg(long, default_value = "<container-id>")]
    pub container_id: String,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files or directories with NADs (and pods); none: the API server's NADs.
    pub paths: Vec<PathBuf>,
    /// From the API server: only this namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// From the API server: also check the pods' selections.
    #[arg(long)]
    pub pods: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    /// Do not run the plugins' VERSION command.
    #[arg(long)]
    pub no_exec: bool,
}

#[derive(Debug, Args)]
pub struct AttachmentsArgs {
    /// The delegate cache directory [default: the config's cniDir, /var/lib/cni/multus].
    #[arg(long, value_name = "DIR")]
    pub cni_dir: Option<PathBuf>,
    /// The node's daemon config (for cniDir).
    #[arg(long, value_name = "FILE")]
    pub daemon_config: Option<PathBuf>,
    /// Do not ask the API server whether the pods still exist.
    #[arg(long)]
    pub no_api: bool,
}

/// Run a parsed command line; prints the result and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return usage_error(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(async {
        match &cli.command {
            Command::Explain(args) => run_explain(&cli, args).await,
            Command::Lint(args) => run_lint(&cli, args).await,
            Command::Attachments(args) => run_attachments(&cli, args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => usage_error(&e),
    }
}

fn usage_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("multusctl: {e:#}");
    ExitCode::from(2)
}

/// Write the result to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    emit(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

fn node_options(args: &NodeArgs, runtime_config: Option<Map<String, Value>>) -> NodeOptions {
    NodeOptions { daemon_config: args.daemon_config.clone(), multus_conf: args.multus_conf.clone(), runtime_config }
}

async fn need_client(cli: &Cli) -> anyhow::Result<kube::Client> {
    match cluster::client(cli.kubeconfig.as_deref()).await? {
        Some(c) => Ok(c),
        None => bail!(
            "no cluster credentials (--kubeconfig, $KUBECONFIG, in-cluster or ~/.kube/config); offline, give -f POD_FILE and --nads DIR"
        ),
    }
}

/// `NAME` or `NAMESPACE/NAME`, and the namespace (`-n`, else `default`).
fn pod_name(arg: &str, namespace: Option<&str>) -> (String, String) {
    match arg.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (namespace.unwrap_or("default").to_string(), arg.to_string()),
    }
}

/// The node's `multusNamespace` (the default without a node config).
fn multus_namespace(node: Option<&NodeConfig>) -> String {
    node.and_then(|n| n.effective.as_ref().ok())
        .map(|c| c.multus_namespace.clone())
        .unwrap_or_else(|| multus::config::DEFAULT_MULTUS_NAMESPACE.to_string())
}

/// The namespaces whose NADs a pod's ADD can read.
fn namespaces_for(pod: &PodInfo, multus_ns: &str) -> BTreeSet<String> {
    let multus_ns = multus_ns.to_string();
    let mut out: BTreeSet<String> = [pod.namespace.clone(), multus_ns.clone()].into();
    if let Ok(elements) =
        multus::selection::parse_network_selection(pod.annotation(NETWORKS_ANNOTATION).unwrap_or(""), &pod.namespace)
    {
        out.extend(elements.into_iter().map(|e| e.namespace));
    }
    if let Some(Ok(el)) =
        pod.annotation(DEFAULT_NETWORK_ANNOTATION).map(|a| multus::selection::parse_default_network(a, &multus_ns))
    {
        out.insert(el.namespace);
    }
    out
}

async fn run_explain(cli: &Cli, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let runtime_config = match &args.runtime_config {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Some(m),
            Ok(_) => bail!("--runtime-config must be a JSON object"),
            Err(e) => bail!("--runtime-config: {e}"),
        },
    };
    let node = NodeConfig::load(&node_options(&args.node, runtime_config))?;
    let devices: Option<BTreeMap<String, Vec<String>>> = match &args.devices {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: expected {{\"resource\": [\"id\", …]}}", path.display()))?,
            )
        }
    };
    let (pod, nads) = if !args.files.is_empty() || !args.nads.is_empty() {
        let mut paths = args.files.clone();
        paths.extend(args.nads.iter().cloned());
        let (pods, nads) = objects::pods_and_nads(&load_paths(&paths)?)?;
        (offline_pod(pods, args)?, nads)
    } else {
        let Some(arg) = &args.pod else { bail!("which pod? give POD (from the API server) or -f POD_FILE") };
        let client = need_client(cli).await?;
        let (ns, name) = pod_name(arg, args.namespace.as_deref());
        let Some(pod) = cluster::get_pod(&client, &ns, &name).await? else {
            bail!(
                "pod {ns}/{name} not found (the daemon answers the ADD of a pod it cannot find with an empty success result)"
            )
        };
        let nads = cluster::nads_of(&client, &namespaces_for(&pod, &multus_namespace(Some(&node)))).await?;
        (pod, nads)
    };
    let plugin_dirs = node.plugin_dirs(&args.node.bin_dir);
    let ex: Explanation = explain(&ExplainRequest {
        pod: &pod,
        nads: &nads,
        node: &node,
        devices: devices.as_ref(),
        plugin_dirs: plugin_dirs.as_deref(),
        ifname: &args.ifname,
        container_id: &args.container_id,
    });
    match cli.output {
        Output::Json => print_json(&ex)?,
        Output::Table => emit(&render::explanation(&ex))?,
    }
    Ok(if ex.fails() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The pod to explain among those read from files.
fn offline_pod(pods: Vec<PodInfo>, args: &ExplainArgs) -> anyhow::Result<PodInfo> {
    let wanted = args.pod.as_deref().map(|p| pod_name(p, args.namespace.as_deref()));
    let names = || pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect::<Vec<_>>().join(", ");
    match &wanted {
        Some((ns, name)) => {
            let explicit_ns = args.namespace.is_some() || args.pod.as_deref().is_some_and(|p| p.contains('/'));
            let hit = pods.iter().find(|p| &p.name == name && (!explicit_ns || &p.namespace == ns));
            match hit {
                Some(p) => Ok(p.clone()),
                None => bail!("no pod {name} in the files (pods there: {})", names()),
            }
        }
        None => match pods.len() {
            1 => Ok(pods.into_iter().next().unwrap_or_default()),
            0 => bail!("no pod in the files given with -f"),
            _ => bail!("several pods in the files ({}): name one", names()),
        },
    }
}

/// The node config for lint: when given, or when the daemon's default file exists.
fn lint_node(args: &NodeArgs) -> anyhow::Result<Option<NodeConfig>> {
    let default_exists = Path::new(multus::config::DEFAULT_DAEMON_CONFIG_PATH).is_file();
    if args.daemon_config.is_none() && args.multus_conf.is_none() && !default_exists {
        return Ok(None);
    }
    Ok(Some(NodeConfig::load(&node_options(args, None))?))
}

async fn run_lint(cli: &Cli, args: &LintArgs) -> anyhow::Result<ExitCode> {
    let node = lint_node(&args.node)?;
    let plugin_dirs = match &node {
        Some(n) => n.plugin_dirs(&args.node.bin_dir),
        None => (!args.node.bin_dir.is_empty()).then(|| args.node.bin_dir.clone()),
    };
    let mut invalid = Vec::new();
    let (nads, pods, pod_nads) = if args.paths.is_empty() {
        let client = need_client(cli).await?;
        let nads = cluster::list_nads(&client, args.namespace.as_deref()).await?;
        let pods = if args.pods { cluster::list_pods(&client, args.namespace.as_deref()).await? } else { Vec::new() };
        // The pods' networks may live outside the namespace linted (multusNamespace, others).
        let multus_ns = multus_namespace(node.as_ref());
        let mut wanted: BTreeSet<String> = pods.iter().flat_map(|p| namespaces_for(p, &multus_ns)).collect();
        wanted.retain(|ns| args.namespace.as_deref().is_some_and(|linted| linted != ns));
        let mut pod_nads = nads.clone();
        pod_nads.extend(cluster::nads_of(&client, &wanted).await?);
        (nads, pods, pod_nads)
    } else {
        let mut nads = NadSet::new();
        let mut pods = Vec::new();
        for o in load_paths(&args.paths)? {
            let bad = |kind: &str, message: String| Finding {
                severity: crate::explain::Severity::Error,
                object: format!("{kind} {} ({})", o.display_name(), o.path.display()),
                code: "invalid-object",
                message,
            };
            match o.kind() {
                NAD_KIND => match objects::nad_from_value(&o.object) {
                    Ok(n) => {
                        nads.insert((n.namespace.clone(), n.name.clone()), n);
                    }
                    Err(e) => invalid.push(bad(NAD_KIND, e)),
                },
                "Pod" => match objects::pod_from_value(&o.object) {
                    Ok(p) => pods.push(p),
                    Err(e) => invalid.push(bad("Pod", e)),
                },
                _ => {}
            }
        }
        let pod_nads = nads.clone();
        (nads, pods, pod_nads)
    };
    let mut report: LintReport = lint(
        &nads,
        &pods,
        &pod_nads,
        &LintOptions { node: node.as_ref(), plugin_dirs: plugin_dirs.as_deref(), exec_version: !args.no_exec },
    );
    report.findings.splice(0..0, invalid);
    match cli.output {
        Output::Json => print_json(&report)?,
        Output::Table => emit(&render::lint(&report))?,
    }
    Ok(if report.fails() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn run_attachments(cli: &Cli, args: &AttachmentsArgs) -> anyhow::Result<ExitCode> {
    let cni_dir = match &args.cni_dir {
        Some(d) => d.clone(),
        None => {
            let node =
                NodeConfig::load(&NodeOptions { daemon_config: args.daemon_config.clone(), ..Default::default() })?;
            let from_config = node.effective.as_ref().map(|c| c.cni_dir.clone()).ok().or_else(|| {
                node.daemon.raw.get("cniDir").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
            });
            PathBuf::from(from_config.unwrap_or_else(|| multus::config::DEFAULT_CNI_DIR.to_string()))
        }
    };
    let mut report: AttachmentReport = attachments::scan(&cni_dir, std::time::SystemTime::now())
        .with_context(|| format!("reading the delegate cache {}", cni_dir.display()))?;
    if args.no_api {
        report.notes.push("pods not checked (--no-api)".into());
    } else {
        match cluster::client(cli.kubeconfig.as_deref()).await {
            Ok(None) => report.notes.push("pods not checked: no cluster credentials".into()),
            Ok(Some(client)) => match cluster::pod_uids(&client, &report.pods()).await {
                Ok(found) => report.apply_pod_lookups(&found),
                Err(e) => report.notes.push(format!("pods not checked: {e}")),
            },
            Err(e) => report.notes.push(format!("pods not checked: {e}")),
        }
    }
    match cli.output {
        Output::Json => print_json(&report)?,
        Output::Table => emit(&render::attachments(&report))?,
    }
    Ok(if report.attachments.iter().any(|a| a.orphaned) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
