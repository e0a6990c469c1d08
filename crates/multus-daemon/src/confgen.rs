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
//! - on shutdown the file is kept across restarts and removed on an uninstall or with
//!   `cleanupConfigOnExit: true` ([`crate::uninstall`]).
//!
//! Kept from the Go daemon: removal of the readiness indicator file deletes `00-multus.conf`
//! and ends the daemon with exit code 2, so the node reports the network as not ready.

use cni::runtime::{AtomicWrite, write_atomic_with};
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

/// Why `00-multus.conf` could not be generated or kept current.
#[derive(Debug, thiserror::Error)]
pub enum ConfgenError {
    /// The generator settings, the primary search or the rendering failed.
    #[error("{0}")]
    Generate(#[from] generate::GenerateError),
    /// The chosen primary config is unreadable or not a valid delegate.
    #[error("failed to load the primary CNI configuration as a multus delegate with error '{0}'")]
    LoadPrimary(generate::GenerateError),
    /// A fixed `multusConfigFile` whose path ends in no file name, so there is nothing to copy to.
    #[error("multusConfigFile has no file name")]
    NoFileName,
    /// A fixed `multusConfigFile` could not be read.
    #[error("reading multusConfigFile {path}: {source}")]
    ReadUserConfig {
        /// `multusConfigFile` as configured.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The atomic write of a config file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file being written.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No primary config appeared in `multusAutoconfigDir` within the discovery
    /// attempts.
    #[error("failed to find the cluster master CNI plugin: could not find a plugin configuration in {0}")]
    NoPrimary(String),
    /// The directory watch could not be set up; without it the file would go stale.
    #[error("watching {path}: {source}")]
    Watch {
        /// The watched directory (empty when creating the watcher itself failed).
        path: String,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Write a config file atomically and durably (see [`AtomicWrite::CONFIG`]).
pub fn write_config(path: &Path, contents: &[u8]) -> Result<(), ConfgenError> {
    write_atomic_with(path, contents, AtomicWrite::CONFIG)
        .map_err(|source| ConfgenError::Write { path: path.display().to_string(), source })
}

/// Render `00-multus.conf` for the current primary; `Ok(None)` when there is no primary yet.
fn render_current(generator: &GeneratorConfig) -> Result<Option<(PathBuf, String)>, ConfgenError> {
    let Some(primary_path) = generator.find_primary()? else {
        return Ok(None);
    };
    let primary =
        generate::load_primary_file(&primary_path, &generator.cni_version).map_err(ConfgenError::LoadPrimary)?;
    let rendered = generate::render_multus_conf(generator, &primary)?;
    Ok(Some((primary_path, rendered)))
}

fn write_if_changed(path: &Path, rendered: &str) -> Result<bool, ConfgenError> {
    // An unreadable current file is rewritten (needs_rewrite treats it as absent).
    let current = std::fs::read(path).ok();
    if !generate::needs_rewrite(current.as_deref(), rendered) {
        return Ok(false);
    }
    write_config(path, rendered.as_bytes())?;
    Ok(true)
}

/// Generate the config (auto mode) or copy the user's file, and in auto mode keep watching.
/// Returns the watch task, which ends with an exit code on a fatal condition or shutdown.
pub async fn start(
    config: &DaemonConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<JoinHandle<u8>>, ConfgenError> {
    let generator = GeneratorConfig::from_map(&config.raw)?;
    if !generator.is_auto_mode() {
        let target = generator.user_config_target().ok_or(ConfgenError::NoFileName)?;
        let bytes = std::fs::read(&generator.multus_config_file)
            .map_err(|source| ConfgenError::ReadUserConfig { path: generator.multus_config_file.clone(), source })?;
        write_config(&target, &bytes)?;
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
                return Err(ConfgenError::NoPrimary(generator.multus_autoconfig_dir.clone()));
            }
            None => {
                attempts += 1;
                tokio::time::sleep(generate::PRIMARY_DISCOVERY_INTERVAL).await;
            }
        }
    };
    if generator.force_cni_version {
        generate::force_cni_version_file(&primary_path, &generator.cni_version)?;
    }
    write_if_changed(&conf_path, &rendered)?;
    tracing::info!("wrote {} (primary {})", conf_path.display(), primary_path.display());

    let (tx, rx) = mpsc::unbounded_channel();
    fn watch_error(path: &str) -> impl FnOnce(notify::Error) -> ConfgenError + '_ {
        move |source| ConfgenError::Watch { path: path.to_string(), source }
    }
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            // The receiver is gone only after the watch loop ended; nothing left to notify.
            let _ = tx.send(());
        }
    })
    .map_err(watch_error(""))?;
    watcher
        .watch(Path::new(&generator.multus_autoconfig_dir), notify::RecursiveMode::NonRecursive)
        .map_err(watch_error(&generator.multus_autoconfig_dir))?;
    let readiness = Some(PathBuf::from(&generator.readiness_indicator_file)).filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = readiness.as_ref().and_then(|p| p.parent())
        && dir != Path::new(&generator.multus_autoconfig_dir)
        && let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive)
    {
        // The file is still checked after every change of the config directory.
        tracing::warn!("cannot watch {} for the readiness indicator file: {e}", dir.display());
    }
    Ok(Some(tokio::spawn(watch_loop(generator, watcher, rx, shutdown, readiness))))
}

async fn watch_loop(
    generator: GeneratorConfig,
    _watcher: notify::RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<()>,
    mut shutdown: watch::Receiver<bool>,
    readiness: Option<PathBuf>,
) -> u8 {
    let conf_path = generator.multus_conf_path();
    loop {
        tokio::select! {
            got = events.recv() => if got.is_none() { return 2 },
            _ = shutdown_requested(&mut shutdown) => return 0,
        }
        // Editors and package managers write in several steps: settle, then look once.
        tokio::time::sleep(Duration::from_millis(100)).await;
        while events.try_recv().is_ok() {}
        if let Some(r) = &readiness
            && !r.exists()
        {
            tracing::error!("readiness indicator file {} is gone; removing {}", r.display(), conf_path.display());
            remove_conf(&conf_path);
            return 2;
        }
        match render_current(&generator) {
            Ok(Some((primary, rendered))) => match write_if_changed(&conf_path, &rendered) {
                Ok(true) => tracing::info!("regenerated {} (primary {})", conf_path.display(), primary.display()),
                Ok(false) => {}
                Err(e) => tracing::error!("{e}"),
            },
            Ok(None) => tracing::warn!(
                "no primary CNI config in {}; keeping {}",
                generator.multus_autoconfig_dir,
                conf_path.display()
            ),
            Err(e) => tracing::error!("{e}; keeping the previous {}", conf_path.display()),
        }
    }
}

/// `cleanupConfigOnExit: true`: remove `00-multus.conf` on every stop, as the Go daemon does.
pub fn cleanup_on_exit(config: &DaemonConfig) -> bool {
    config.raw.get("cleanupConfigOnExit").and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Remove the generated `00-multus.conf` (auto mode; a user-provided file copy is removed too),
/// so the runtime uses the node's primary configuration again.
pub fn remove_multus_conf(config: &DaemonConfig) {
    let Ok(generator) = GeneratorConfig::from_map(&config.raw) else { return };
    let path = match generator.is_auto_mode() {
        true => Some(generator.multus_conf_path()),
        false => generator.user_config_target(),
    };
    if let Some(path) = path {
        tracing::warn!("removing {}: the runtime uses the node's primary CNI configuration again", path.display());
        remove_conf(&path);
    }
}

fn remove_conf(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::error!("cannot remove {}: {e}", path.display()),
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
        write_config(&path, b"one").unwrap();
        write_config(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
