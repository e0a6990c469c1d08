//! A node driven through CRI, as the kubelet drives one: a private containerd whose CRI plugin
//! loads the run's `00-multus.conf` and executes `multus-shim`, and the kubelet's calls
//! ([`cri_client`]) on its socket.

pub mod containerd;
pub mod sandbox_image;

use anyhow::{Context, Result};
use cri_client::{CriClient, CriError, NetworkCondition, SandboxSpec, SandboxView};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::util::{Cmd, defer};
use containerd::{Containerd, ContainerdPaths, mounts_under, own_shims};

/// The kubelet's default `--runtime-request-timeout`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// containerd + the kubelet's CRI client. Blocking methods (the e2e cases are threads).
pub struct CriNode {
    containerd: Mutex<Containerd>,
    client: Mutex<CriClient>,
    rt: tokio::runtime::Runtime,
    /// Every sandbox network namespace seen, removed at cleanup if containerd left one.
    netns_seen: Arc<Mutex<Vec<String>>>,
}

impl CriNode {
    /// Start containerd with `paths`, import the sandbox image, connect. Registers the run's
    /// cleanup: stop and remove every sandbox (CNI DEL by containerd), stop containerd, then stop
    /// the shims it left and unmount what is left under its directory.
    pub fn start(paths: ContainerdPaths, image_archive: &Path) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let mut containerd = Containerd::new(paths.clone())?;
        let netns_seen = Arc::new(Mutex::new(Vec::new()));
        {
            let process = containerd.process.clone();
            let paths = paths.clone();
            let netns_seen = netns_seen.clone();
            let _ = defer(format!("remove the sandboxes and stop containerd ({})", paths.dir.display()), move || {
                cleanup(&paths, &process, &netns_seen)
            });
        }
        containerd.start()?;
        containerd.import_image(image_archive)?;
        let client = rt.block_on(CriClient::connect(paths.socket(), REQUEST_TIMEOUT))?;
        rt.block_on(wait_initialized(&client))?;
        Ok(Self { containerd: Mutex::new(containerd), client: Mutex::new(client), rt, netns_seen })
    }

    fn client(&self) -> CriClient {
        self.client.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `containerd v1.6.20~ds1 (CRI v1)`.
    pub fn version(&self) -> Result<String, CriError> {
        let v = self.rt.block_on(self.client().version())?;
        Ok(format!("{} {} (CRI {})", v.runtime_name, v.runtime_version, v.runtime_api_version))
    }

    pub fn network_ready(&self) -> Result<NetworkCondition, CriError> {
        self.rt.block_on(self.client().network_ready())
    }

    /// The CNI networks containerd has loaded (its verbose status `cniconfig`, JSON).
    pub fn loaded_cni_config(&self) -> Result<String, CriError> {
        let info = self.rt.block_on(self.client().status_info())?;
        Ok(info.get("cniconfig").cloned().unwrap_or_default())
    }

    /// RunPodSandbox (containerd runs CNI ADD through the shim before it answers).
    pub fn run_pod(&self, spec: &SandboxSpec) -> Result<String, CriError> {
        self.rt.block_on(self.client().run_pod_sandbox(spec))
    }

    pub fn status(&self, id: &str) -> Result<SandboxView, CriError> {
        let view = self.rt.block_on(self.client().sandbox_status(id))?;
        if let Some(path) = &view.netns_path {
            let mut seen = self.netns_seen.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.contains(path) {
                seen.push(path.clone());
            }
        }
        Ok(view)
    }

    /// What the kubelet does when a pod goes: StopPodSandbox (CNI DEL), then RemovePodSandbox.
    pub fn stop_and_remove(&self, id: &str) -> Result<(), CriError> {
        self.rt.block_on(async {
            let client = self.client();
            client.stop_pod_sandbox(id).await?;
            client.remove_pod_sandbox(id).await
        })
    }

    /// The IDs of the sandboxes containerd knows for a pod.
    pub fn sandboxes_of(&self, namespace: &str, name: &str) -> Result<Vec<String>, CriError> {
        let all = self.rt.block_on(self.client().list_pod_sandboxes())?;
        Ok(all
            .into_iter()
            .filter(|s| s.metadata.as_ref().is_some_and(|m| m.namespace == namespace && m.name == name))
            .map(|s| s.id)
            .collect())
    }

    /// Restart containerd (SIGTERM; its sandboxes keep running under their shims), reconnect.
    pub fn restart(&self) -> Result<()> {
        let mut containerd = self.containerd.lock().unwrap_or_else(|e| e.into_inner());
        containerd.stop(Duration::from_secs(10));
        containerd.start()?;
        let client = self.rt.block_on(CriClient::connect(containerd.paths.socket(), REQUEST_TIMEOUT))?;
        self.rt.block_on(wait_initialized(&client))?;
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = client;
        Ok(())
    }
}

/// Wait (30 s at most) until the CRI service has loaded its state: a containerd that just
/// started answers "server is not initialized yet" until then (the kubelet retries too).
async fn wait_initialized(client: &CriClient) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client.list_pod_sandboxes().await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(anyhow::anyhow!("containerd's CRI service did not come up within 30 s: {e}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The bin_dir containerd executes from: `multus-shim` and every plugin of `plugin_dir` (its
/// built-in loopback network needs `loopback`), as symlinks in `dir`.
pub fn make_bin_dir(dir: &Path, shim: &Path, plugin_dir: &Path, extra: &[(&str, PathBuf)]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, dir.join(name))
            .with_context(|| format!("linking {} into {}", target.display(), dir.display()))
    };
    link(shim, "multus-shim")?;
    for entry in std::fs::read_dir(plugin_dir).with_context(|| format!("reading {}", plugin_dir.display()))? {
        let entry = entry?;
        if let Some(name) = entry.file_name().to_str() {
            link(&entry.path(), name)?;
        }
    }
    for (name, target) in extra {
        link(target, name)?;
    }
    Ok(())
}

fn cleanup(paths: &ContainerdPaths, process: &Mutex<Option<crate::util::Proc>>, netns_seen: &Mutex<Vec<String>>) {
    let running = process.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|p| p.running());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    if let (true, Ok(rt)) = (running, rt) {
        rt.block_on(async {
            let Ok(client) = CriClient::connect(paths.socket(), Duration::from_secs(30)).await else { return };
            for sandbox in client.list_pod_sandboxes().await.unwrap_or_default() {
                let _ = client.stop_pod_sandbox(&sandbox.id).await;
                let _ = client.remove_pod_sandbox(&sandbox.id).await;
            }
        });
    }
    if let Some(proc) = process.lock().unwrap_or_else(|e| e.into_inner()).take() {
        proc.stop(Duration::from_secs(10));
    }
    for pid in own_shims(&paths.socket()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    for mount in mounts_under(&paths.dir) {
        Cmd::new("umount").args(["-l", &mount.display().to_string()]).run_quiet();
    }
    for path in netns_seen.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if Path::new(path).exists() {
            Cmd::new("umount").arg(path.clone()).run_quiet();
            let _ = std::fs::remove_file(path);
        }
    }
}
