//! Writing and maintaining `<cniConfigDir>/00-multus.conf` (spec §3).
//!
//! multus-rs fixes the Go generator's quirks (§3.3, §13 items 1–5):
//! - the file is written atomically (temporary file in the same directory, then rename), so a
//!   runtime never reads a half-written or empty config;
//! - a primary that cannot be loaded never produces an empty file: the last good file stays
//!   and the error is logged;
//! - the primary is re-chosen on every change of the directory (a new, earlier-sorting file or
//!   a renamed primary is followed), and capabilities are recomputed from scratch;
//! - a fixed `multusConfigFile` is copied (atomically) and the daemon keeps serving;
//! - on shutdown the file is kept unless `cleanupConfigOnExit: true`.
//!
//! Kept from the Go daemon: removal of the readiness indicator file deletes `00-multus.conf`
//! and ends the daemon with exit code 2, so the node reports the network as not ready.

use anyhow::{Context, Result, anyhow};
use multus::config::DaemonConfig;
use multus::generate::{self, GeneratorConfig};
use notify::Watcher;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Wait for a file to exist, checking every second (the Go daemon's readiness wait).
pub async fn wait_for_file(path: &Path, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if path.exists() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1).min(timeout)).await;
    }
}

/// Write `contents` to `path` atomically with the given mode.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("00-multus.conf");
    // Same directory (rename is atomic only within a filesystem); the suffix keeps runtimes
    // and our own discovery from ever reading it as a config.
    let tmp = dir.join(format!("{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Render `00-multus.conf` for the current primary; `Ok(None)` when there is no primary yet.
fn render_current(generator: &GeneratorConfig) -> Result<Option<(PathBuf, String)>> {
    let Some(primary_path) = generator.find_primary().map_err(|e| anyhow!(e.to_string()))? else {
        return Ok(None);
    };
    let primary = generate::load_primary_file(&primary_path, &generator.cni_version)
        .map_err(|e| anyhow!("failed to load the primary CNI configuration as a multus delegate with error '{e}'"))?;
    let rendered = generate::render_multus_conf(generator, &primary).map_err(|e| anyhow!(e.to_string()))?;
    Ok(Some((primary_path, rendered)))
}

fn write_if_changed(path: &Path, rendered: &str) -> Result<bool> {
    let current = std::fs::read(path).ok();
    if !generate::needs_rewrite(current.as_deref(), rendered) {
        return Ok(false);
    }
    write_atomic(path, rendered.as_bytes(), 0o600).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Generate the config (auto mode) or copy the user's file, and in auto mode keep watching.
/// Returns the watch task, which ends with an exit code on a fatal condition or shutdown.
pub async fn start(config: &DaemonConfig, shutdown: watch::Receiver<bool>) -> Result<Option<JoinHandle<u8>>> {
    let generator = GeneratorConfig::from_map(&config.raw).map_err(|e| anyhow!(e.to_string()))?;
    let cleanup_on_exit = config.raw.get("cleanupConfigOnExit").and_then(|v| v.as_bool()).unwrap_or(false);
    if !generator.is_auto_mode() {
        let target = generator.user_config_target().ok_or_else(|| anyhow!("multusConfigFile has no file name"))?;
        let bytes = std::fs::read(&generator.multus_config_file)
            .with_context(|| format!("reading multusConfigFile {}", generator.multus_config_file))?;
        write_atomic(&target, &bytes, 0o600).with_context(|| format!("copying the config to {}", target.display()))?;
        tracing::info!("copied {} to {}", generator.multus_config_file, target.display());
        return Ok(None);
    }
    if generator.cni_version.is_empty() {
        tracing::error!("the daemon config has no cniVersion; 00-multus.conf cannot be generated");
    }
    let conf_path = generator.multus_conf_path();
    let mut attempts = 0;
    let (primary_path, rendered) = loop {
        match render_current(&generator)? {
            Some(found) => break found,
            None if attempts + 1 >= generate::PRIMARY_DISCOVERY_ATTEMPTS => {
                return Err(anyhow!(
                    "failed to find the cluster master CNI plugin: could not find a plugin configuration in {}",
                    generator.multus_autoconfig_dir
                ));
            }
            None => {
                attempts += 1;
                tokio::time::sleep(generate::PRIMARY_DISCOVERY_INTERVAL).await;
            }
        }
    };
    if generator.force_cni_version {
        generate::force_cni_version_file(&primary_path, &generator.cni_version).map_err(|e| anyhow!(e.to_string()))?;
    }
    write_if_changed(&conf_path, &rendered)?;
    tracing::info!("wrote {} (primary {})", conf_path.display(), primary_path.display());

    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = tx.send(());
        }
    })
    .context("creating the config directory watcher")?;
    watcher
        .watch(Path::new(&generator.multus_autoconfig_dir), notify::RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", generator.multus_autoconfig_dir))?;
    let readiness = Some(PathBuf::from(&generator.readiness_indicator_file)).filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = readiness.as_ref().and_then(|p| p.parent())
        && dir != Path::new(&generator.multus_autoconfig_dir)
    {
        let _ = watcher.watch(dir, notify::RecursiveMode::NonRecursive);
    }
    Ok(Some(tokio::spawn(watch_loop(generator, watcher, rx, shutdown, readiness, cleanup_on_exit))))
}

async fn watch_loop(
    generator: GeneratorConfig,
    _watcher: notify::RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
    readiness: Option<PathBuf>,
    cleanup_on_exit: bool,
) -> u8 {
    let conf_path = generator.multus_conf_path();
    loop {
        tokio::select! {
            got = events.recv() => if got.is_none() { return 2 },
            _ = shutdown_requested(&mut shutdown) => {
                if cleanup_on_exit {
                    let _ = std::fs::remove_file(&conf_path);
                }
                return 0;
            }
        }
        // Editors and package managers write in several steps: settle, then look once.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while events.try_recv().is_ok() {}
        if let Some(r) = &readiness
            && !r.exists()
        {
            tracing::error!("readiness indicator file {} is gone; removing {}", r.display(), conf_path.display());
            let _ = std::fs::remove_file(&conf_path);
            return 2;
        }
        match render_current(&generator) {
            Ok(Some((primary, rendered))) => match write_if_changed(&conf_path, &rendered) {
                Ok(true) => tracing::info!("regenerated {} (primary {})", conf_path.display(), primary.display()),
                Ok(false) => {}
                Err(e) => tracing::error!("{e:#}"),
            },
            Ok(None) => tracing::warn!(
                "no primary CNI config in {}; keeping {}",
                generator.multus_autoconfig_dir,
                conf_path.display()
            ),
            Err(e) => tracing::error!("{e:#}; keeping the previous {}", conf_path.display()),
        }
    }
}

/// Resolves once shutdown was requested (the watch guard is dropped before returning, so the
/// future stays `Send`).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00-multus.conf");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
