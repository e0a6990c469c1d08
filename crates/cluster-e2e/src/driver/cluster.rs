//! The containers: one kube-mock and N nodes on a private Docker network, through testcontainers
//! (removed when dropped, also on SIGINT/SIGTERM with its watchdog). A node's container is its
//! machine: stopping and starting it again is a reboot with the same disk (`/run` is a tmpfs).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use testcontainers::core::{ContainerPort, ExecCommand, Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::plan::{self, Generation, PodRef, node_paths};

pub type Container = ContainerAsync<GenericImage>;

/// What a node container runs with: everything `--privileged` gives but CAP_SYS_RESOURCE, which
/// nested machines like this one lack ("unable to apply caps"), and writable /proc/sys for the
/// bridge plugin.
fn node_request(image: &GenericImage) -> testcontainers::ContainerRequest<GenericImage> {
    image
        .clone()
        .with_cap_add("ALL")
        .with_cap_drop("SYS_RESOURCE")
        .with_security_opt("seccomp=unconfined")
        .with_security_opt("apparmor=unconfined")
        .with_host_config_modifier(|h| {
            h.masked_paths = Some(vec![]);
            h.readonly_paths = Some(vec![]);
        })
}

pub struct ApiServer {
    pub container: Container,
    /// The kube client of the driver (through the published port).
    pub client: kube::Client,
    /// The name the nodes reach it by, on the cluster network.
    pub host: String,
}

pub struct Node {
    pub name: String,
    pub container: Container,
}

pub struct Cluster {
    pub run: String,
    pub network: String,
    pub api: Arc<ApiServer>,
    pub nodes: Vec<Arc<Node>>,
}

fn image(tag: &str) -> GenericImage {
    let (name, version) = tag.split_once(':').unwrap_or((tag, "latest"));
    GenericImage::new(name, version).with_wait_for(WaitFor::Nothing)
}

impl Cluster {
    /// kube-mock, then the nodes: each with its kubeconfig (a client certificate for
    /// `system:node:<node>`, so the API server's counts tell the nodes apart), both daemon configs
    /// and its primary network; then every node installs the shim and starts the "old" daemon.
    pub async fn start(tag: &str, nodes: usize, run: &str) -> Result<Self> {
        let network = format!("{run}-net");
        let api_host = format!("{run}-kube-mock");
        let api_container = image(tag)
            .with_entrypoint(crate::driver::image::KUBE_MOCK)
            .with_exposed_port(ContainerPort::Tcp(plan::API_PORT))
            .with_wait_for(WaitFor::message_on_stdout("listening on"))
            .with_network(&network)
            .with_container_name(&api_host)
            .with_cmd([
                "--listen".to_string(),
                format!("0.0.0.0:{}", plan::API_PORT),
                "--tls".into(),
                "--san".into(),
                api_host.clone(),
                "--san".into(),
                "127.0.0.1".into(),
                "--kubeconfig-out".into(),
                "/tmp/kubeconfig".into(),
            ])
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .await
            .context("starting kube-mock's container")?;
        let port = api_container.get_host_port_ipv4(plan::API_PORT).await?;
        let mut raw = Vec::new();
        api_container.copy_file_from("/tmp/kubeconfig", &mut raw).await.context("reading kube-mock's kubeconfig")?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let admin_kubeconfig = plan::with_server(&raw, &format!("https://127.0.0.1:{port}"));
        let client = kube_client(&admin_kubeconfig).await?;
        let api = Arc::new(ApiServer { container: api_container, client, host: api_host });
        for object in plan::cluster_objects() {
            api.put_object(&object).await?;
        }

        let mut started = Vec::new();
        for index in 0..nodes {
            started.push(Arc::new(Node::start(tag, &network, &api, run, index).await?));
        }
        let cluster = Self { run: run.into(), network, api, nodes: started };
        // Each node as the Go DaemonSet left it: Go's 00-multus.conf (its pods' cache files are
        // seeded by the scenario), then the old daemon.
        for n in &cluster.nodes {
            n.agent(&["seed-go-config"]).await?;
        }
        let boots = cluster.nodes.iter().map(|n| n.boot(Generation::Old));
        for r in futures::future::join_all(boots).await {
            r?;
        }
        Ok(cluster)
    }

    pub fn node(&self, name: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Cut a node off the cluster network (it keeps its own pods' networks).
    pub fn disconnect(&self, node: &Node) -> Result<()> {
        docker(&["network", "disconnect", &self.network, node.container.id()])
    }

    pub fn connect(&self, node: &Node) -> Result<()> {
        docker(&["network", "connect", &self.network, node.container.id()])
    }
}

impl ApiServer {
    /// Create or replace an object through kube-mock's admin API.
    pub async fn put_object(&self, object: &Value) -> Result<()> {
        self.admin("PUT", "objects", Some(object)).await.map(|_| ())
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("/_mock/{path}"))
            .header("content-type", "application/json")
            .body(body.map(|b| serde_json::to_vec(b).unwrap_or_default()).unwrap_or_default())?;
        let text = self.client.request_text(request).await.with_context(|| format!("{method} /_mock/{path}"))?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn create_pod(&self, pod: &PodRef) -> Result<()> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), &pod.namespace);
        let object = serde_json::from_value(pod.object())?;
        api.create(&kube::api::PostParams::default(), &object)
            .await
            .with_context(|| format!("creating pod {}", pod.name))?;
        Ok(())
    }

    /// Delete a pod object (grace period 0: kube-mock's kubelet stand-in removes it at once).
    pub async fn delete_pod(&self, pod: &PodRef) -> Result<()> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(self.client.clone(), &pod.namespace);
        match api.delete(&pod.name, &kube::api::DeleteParams::default().grace_period(0)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting pod {}", pod.name)),
        }
    }
}

impl Node {
    async fn start(tag: &str, network: &str, api: &ApiServer, run: &str, index: usize) -> Result<Self> {
        let name = plan::node_name(index);
        let issued = api
            .admin(
                "POST",
                "client-certificates",
                Some(&serde_json::json!({"commonName": plan::node_user(&name), "organization": "system:nodes"})),
            )
            .await?;
        let kubeconfig = issued["kubeconfig"].as_str().context("kube-mock issued no kubeconfig")?;
        let kubeconfig = plan::with_server(kubeconfig, &format!("https://{}:{}", api.host, plan::API_PORT));
        let config = |g: Generation| serde_json::to_vec_pretty(&plan::daemon_config(g)).unwrap_or_default();
        let container = node_request(&image(tag))
            .with_network(network)
            .with_container_name(format!("{run}-{name}"))
            .with_hostname(&name)
            .with_mount(Mount::tmpfs_mount("/run"))
            .with_copy_to(node_paths::KUBECONFIG, kubeconfig.into_bytes())
            .with_copy_to(plan::daemon_config_path(Generation::Old), config(Generation::Old))
            .with_copy_to(plan::daemon_config_path(Generation::New), config(Generation::New))
            .with_copy_to(plan::cluster_network_path(), plan::cluster_network(index).to_string().into_bytes())
            .start()
            .await
            .with_context(|| format!("starting {name}'s container"))?;
        Ok(Self { name, container })
    }

    /// What the kubelet does when the node (re)starts: the DaemonSet's init container, then its
    /// daemon; returns once the daemon is ready.
    pub async fn boot(&self, generation: Generation) -> Result<Value> {
        self.agent(&["install"]).await?;
        self.agent(&["daemon-start", "--generation", generation.as_str()]).await
    }

    /// One `cluster-node` command; its JSON line (an `{"error"}` line is an error).
    pub async fn agent(&self, args: &[&str]) -> Result<Value> {
        let mut argv = vec![node_paths::AGENT];
        argv.extend_from_slice(args);
        let text = exec_text(&self.container, &argv)
            .await
            .with_context(|| format!("{}: cluster-node {}", self.name, args.join(" ")))?;
        let line = text.lines().last().unwrap_or_default();
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("{}: cluster-node answered {text:?}", self.name))?;
        if let Some(e) = v.get("error") {
            bail!(
                "{}: cluster-node {}: {}",
                self.name,
                args.first().copied().unwrap_or_default(),
                e.as_str().unwrap_or_default()
            );
        }
        Ok(v)
    }

    pub async fn pod_call(&self, command: &str, pod: &PodRef) -> Result<crate::agent::CallOutcome> {
        let v = self
            .agent(&[
                command,
                "--name",
                &pod.name,
                "--uid",
                &pod.uid,
                "--container-id",
                &pod.container_id,
                "--namespace",
                &pod.namespace,
            ])
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    pub async fn state(&self) -> Result<Value> {
        self.agent(&["state"]).await
    }

    /// The node dies: its container is killed (SIGKILL, no shutdown).
    pub fn kill(&self) -> Result<()> {
        docker(&["kill", self.container.id()])
    }

    /// The node comes back with the same disk.
    pub async fn power_on(&self) -> Result<()> {
        self.container.start().await.with_context(|| format!("starting {} again", self.name))
    }
}

async fn exec_text(container: &Container, argv: &[&str]) -> Result<String> {
    let mut result = container.exec(ExecCommand::new(argv.iter().map(|s| s.to_string()))).await?;
    let stdout = result.stdout_to_vec().await?;
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

fn docker(args: &[&str]) -> Result<()> {
    let out = Command::new("docker").args(args).output().context("running docker")?;
    if !out.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

pub async fn kube_client(kubeconfig: &str) -> Result<kube::Client> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
