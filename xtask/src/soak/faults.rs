//! Faults injected into the node (delegates, API server, cache directory) and cleared again.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::node::Node;
use super::plan::*;
use crate::util::{Cmd, wait_for};
use std::io::Write;
use std::time::Duration;

impl Node {
    /// Turn the fault on (delegate faults are in the pod's selection already; a daemon kill is
    /// done by the step).
    pub fn inject(&self, fault: &Fault) -> Result<()> {
        match fault {
            Fault::ApiDown { millis } => {
                self.admin("POST", "/listening/stop", &json!({"millis": millis}))?;
                std::thread::sleep(Duration::from_millis(100)); // it stops 50 ms after answering
            }
            Fault::ApiSlow { millis } => {
                self.admin("POST", "/faults", &json!({"type": "latency", "matcher": {}, "millis": millis}))?;
            }
            Fault::Api500 { count } => {
                self.admin(
                    "POST",
                    "/faults",
                    &json!({"type": "fail", "matcher": {}, "remaining": count, "code": 500, "message": "soak: injected"}),
                )?;
            }
            Fault::WatchDrop => {
                self.admin("POST", "/watches/close", &json!({}))?;
            }
            Fault::Watch410 => {
                self.admin("POST", "/watches/expire", &json!({}))?;
            }
            Fault::CacheReadOnly => {
                Cmd::new("mount")
                    .args(["-o", "remount,ro"])
                    .arg(self.env.cni_dir_host.display().to_string())
                    .output()?;
            }
            Fault::CacheFull => self.fill_cache()?,
            _ => {}
        }
        Ok(())
    }

    /// Turn the fault off and wait until what it broke is back.
    pub fn clear(&self, fault: &Fault) -> Result<()> {
        match fault {
            Fault::ApiDown { .. } => {
                wait_for("kube-mock to listen again", Duration::from_secs(20), || {
                    Ok(self.admin("GET", "/healthz", &Value::Null).ok().map(|_| ()))
                })?;
            }
            Fault::ApiSlow { .. } | Fault::Api500 { .. } => {
                self.admin("DELETE", "/faults", &Value::Null)?;
            }
            Fault::CacheReadOnly => {
                Cmd::new("mount")
                    .args(["-o", "remount,rw"])
                    .arg(self.env.cni_dir_host.display().to_string())
                    .output()?;
            }
            Fault::CacheFull => {
                std::fs::remove_file(&self.filler).with_context(|| format!("removing {}", self.filler.display()))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Fill the cniDir tmpfs to the last byte.
    fn fill_cache(&self) -> Result<()> {
        let mut f = std::fs::File::create(&self.filler)?;
        let chunk = vec![0u8; 64 * 1024];
        for size in [chunk.len(), 4096, 512, 1] {
            while f.write_all(&chunk[..size]).is_ok() {}
        }
        let _ = f.sync_all();
        // A new file must not fit any more.
        let probe = self.env.cni_dir_host.join(".soak-probe");
        let fits = std::fs::write(&probe, b"x").is_ok();
        let _ = std::fs::remove_file(&probe);
        if fits {
            bail!("the cniDir tmpfs still takes new files after filling it");
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // kube-mock's admin API (plain HTTP on loopback; never subject to its faults)
}
