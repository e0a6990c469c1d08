//! Processes, namespaces and links on the host; the shim alone.

use serde_json::Value;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::process::Stdio;
use std::time::Instant;
use test_node::ShimCall;

use crate::numbers::{ms, stats};

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

pub fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Namespaces and links made by the bench, removed when dropped (also on a panic).
pub use test_node::Cleanup;

/// `n` new network namespaces named after `tag`; their paths.
pub fn netns_many(cleanup: &Cleanup, tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| cleanup.new_netns(&format!("mb{}{tag}{i}", std::process::id() % 100_000))).collect()
}

/// Delete the namespaces at `paths` now.
pub fn drop_netns(cleanup: &Cleanup, paths: &[String]) {
    for p in paths {
        cleanup.remove_netns(p.rsplit('/').next().unwrap_or_default());
    }
}

/// The shim with exactly `env` and `stdin`, through the one shim caller: exit code, stdout.
pub fn shim_run(shim: &Path, env: &[(&str, String)], stdin: &[u8]) -> (i32, String) {
    let call = env.iter().fold(ShimCall::default().stdin(stdin), |c, (k, v)| c.env(k, v));
    match call.run(shim) {
        Ok(run) => (run.code, run.stdout),
        Err(_) => (-1, "cannot spawn the shim".into()),
    }
}

pub fn bench_shim_exec(shim: &Path, n: usize) -> Value {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (code, _) = shim_run(shim, &[("CNI_COMMAND", "VERSION".into())], b"");
        samples.push(ms(t.elapsed()));
        assert_eq!(code, 0, "shim VERSION failed");
    }
    // Peak RSS of the shim alone: a child's rusage also counts the pages it shared with this
    // (much larger) parent before exec, so measure through GNU time's small process instead.
    let peak_rss_kib = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(shim)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdout(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stderr).trim().lines().last().and_then(|l| l.trim().parse::<u64>().ok())
        });
    let size = std::fs::metadata(shim).map(|m| m.len()).unwrap_or(0);
    let linked = Command::new("ldd").arg(shim).output().map(|o| o.stdout).unwrap_or_default();
    json!({"exec": stats(samples), "peak_rss_kib": peak_rss_kib.map_or(json!("needs /usr/bin/time (apt-get install time)"), |k| json!(k)),
           "binary_bytes": size, "static": !String::from_utf8_lossy(&linked).contains("=>")})
}
