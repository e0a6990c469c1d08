//! Bounding how many delegate processes start at once, so that a burst of pod ADDs cannot take
//! the daemon's cgroup past its memory limit.
//!
//! In the DaemonSet the delegate plugins run inside the daemon's container, so they share its
//! memory limit (50Mi in the manifest). A Go plugin with its IPAM child (bridge → host-local)
//! takes about 4 MiB of anonymous memory while it runs (measured: 9.1 MiB peak for a bridge ADD
//! in a fresh cgroup, 5.5 MiB of it the plugins' page cache, shared by every run). A node
//! rebooting with 110 pods asks for 110 ADDs at once: unbounded, that is 440 MiB of plugins in a
//! 50 MiB cgroup, and the OOM killer takes the daemon with them.
//!
//! So a plugin process starts only with one of `delegateConcurrency` slots (a multus-rs key):
//! - `"auto"` (default): from the cgroup memory limit, `(limit − 24 MiB) / 4 MiB`, between 2 and
//!   64 (50 MiB → 6); 64 without a limit;
//! - a number: that many.
//!
//! A plugin given a big config takes more than one slot: it parses its stdin, so it costs
//! 4 MiB plus 4 bytes per byte of stdin (a 1 MB NAD config: 8 MiB, two slots), and never more
//! than all of them (it then runs alone).
//!
//! A plugin holds its slot until it exits, or for [`HOLD_AT_MOST`] at most: a plugin still running
//! after that is waiting (a hung DHCP request, a slow IPAM server), not allocating, and it must
//! not stop every other pod's networking until `delegateTimeoutSeconds`. Requests beyond the
//! slots wait in memory (a few hundred bytes each); nothing is refused.

use cni::exec::{Exec, ExecError, ExecFuture, PluginRequest};
use multus::config::DaemonConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The daemon-config key.
pub const CONFIG_KEY: &str = "delegateConcurrency";
/// Anonymous memory of one delegate run (a Go plugin and its IPAM child), rounded up.
pub const PER_DELEGATE_BYTES: u64 = 4 << 20;
/// What the daemon itself needs under load (its own peak in a 200-way storm is ~23 MiB).
pub const DAEMON_RESERVE_BYTES: u64 = 24 << 20;
/// Slots without a memory limit, and the most `"auto"` gives.
pub const MAX_AUTO_SLOTS: usize = 64;
/// Fewest slots `"auto"` gives (one pod's delegates must not wait for another's).
pub const MIN_AUTO_SLOTS: usize = 2;
/// The longest a running plugin keeps its slot.
pub const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// Slots for `config` under a memory limit of `limit` bytes (`None`: unlimited).
pub fn slots(config: &DaemonConfig, limit: Option<u64>) -> Result<usize, SlotsError> {
    let auto = || match limit {
        None => MAX_AUTO_SLOTS,
        Some(limit) => {
            let fits = limit.saturating_sub(DAEMON_RESERVE_BYTES) / PER_DELEGATE_BYTES;
            usize::try_from(fits).unwrap_or(usize::MAX).clamp(MIN_AUTO_SLOTS, MAX_AUTO_SLOTS)
        }
    };
    match config.raw.get(CONFIG_KEY) {
        None => Ok(auto()),
        Some(Value::String(s)) if s == "auto" => Ok(auto()),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .and_then(|n| usize::try_from(n).ok())
            .map(|n| n.min(Semaphore::MAX_PERMITS))
            .ok_or_else(|| SlotsError(v.clone())),
    }
}

/// `delegateSlots` is neither `"auto"` nor a number > 0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{CONFIG_KEY} must be \"auto\" or a number > 0, not {0}")]
pub struct SlotsError(pub Value);

/// The memory limit of this process's cgroup (the smallest on the way to the root), if any:
/// cgroup v2 `memory.max`, else v1 `memory.limit_in_bytes`.
pub fn own_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    memory_limit_from(&cgroups, &mounts, |p| std::fs::read_to_string(p).ok())
}

/// [`own_memory_limit`] from the two files' contents, reading limit files with `read`.
fn memory_limit_from(cgroups: &str, mountinfo: &str, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mut candidates: Vec<(PathBuf, &str)> = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if controllers.is_empty() {
            if let Some(mount) = mount_point(mountinfo, |fstype, _| fstype == "cgroup2") {
                candidates.push((join_cgroup(&mount, path), "memory.max"));
            }
        } else if controllers.split(',').any(|c| c == "memory")
            && let Some(mount) =
                mount_point(mountinfo, |fstype, opts| fstype == "cgroup" && opts.split(',').any(|o| o == "memory"))
        {
            candidates.push((join_cgroup(&mount, path), "memory.limit_in_bytes"));
        }
    }
    candidates.into_iter().find_map(|(dir, file)| smallest_limit_up(&dir, file, &read))
}

fn join_cgroup(mount: &Path, cgroup_path: &str) -> PathBuf {
    mount.join(cgroup_path.trim_start_matches('/'))
}

/// The mount point of the first mount whose file-system type and super options match.
fn mount_point(mountinfo: &str, matches: impl Fn(&str, &str) -> bool) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut fields = right.split_whitespace();
        let (fstype, _source, opts) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
        let mount = left.split_whitespace().nth(4)?;
        matches(fstype, opts).then(|| PathBuf::from(mount))
    })
}

/// The smallest limit in `file` from `dir` up to the hierarchy's root ("max" or ≥ 2^60: none).
fn smallest_limit_up(dir: &Path, file: &str, read: &impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mut smallest: Option<u64> = None;
    let mut found_any = false;
    for ancestor in dir.ancestors() {
        let Some(text) = read(&ancestor.join(file)) else { continue };
        found_any = true;
        if let Ok(limit) = text.trim().parse::<u64>()
            && limit < 1 << 60
        {
            smallest = Some(smallest.map_or(limit, |s| s.min(limit)));
        }
    }
    if found_any { smallest } else { None }
}

/// An executor that starts a plugin only with a slot (module docs).
pub struct Admitted<E> {
    inner: E,
    /// KiB of plugin memory: `slots × 4 MiB`.
    budget: Arc<Semaphore>,
    total_kib: usize,
    hold_at_most: Duration,
}

/// What a plugin with `stdin_len` bytes of stdin costs, in KiB (module docs).
fn cost_kib(stdin_len: usize) -> usize {
    (PER_DELEGATE_BYTES as usize).saturating_add(stdin_len.saturating_mul(4)).div_ceil(1024)
}

impl<E> Admitted<E> {
    /// `inner`, at most `slots` plugins at once.
    pub fn new(inner: E, slots: usize) -> Self {
        Self::with_hold(inner, slots, HOLD_AT_MOST)
    }

    /// As [`Admitted::new`], a plugin keeping its slot for at most `hold_at_most` (tests).
    pub fn with_hold(inner: E, slots: usize, hold_at_most: Duration) -> Self {
        let total_kib = slots.clamp(1, 1 << 16) * cost_kib(0);
        Self { inner, budget: Arc::new(Semaphore::new(total_kib)), total_kib, hold_at_most }
    }

    /// Slots free now (of plugins with a small config).
    pub fn available(&self) -> usize {
        self.budget.available_permits() / cost_kib(0)
    }
}

impl<E: Exec> Exec for Admitted<E> {
    fn exec<'a>(&'a self, req: PluginRequest<'a>) -> ExecFuture<'a> {
        Box::pin(async move {
            let kib = cost_kib(req.stdin.len()).min(self.total_kib);
            let slot = self.budget.clone().acquire_many_owned(u32::try_from(kib).unwrap_or(u32::MAX)).await.ok();
            let run = self.inner.exec(req);
            tokio::pin!(run);
            tokio::select! {
                out = &mut run => out,
                () = tokio::time::sleep(self.hold_at_most) => {
                    drop(slot);
                    run.await
                }
            }
        })
    }

    fn find_plugin(&self, plugin_type: &str, dirs: &[PathBuf]) -> Result<PathBuf, ExecError> {
        self.inner.find_plugin(plugin_type, dirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(json: &str) -> DaemonConfig {
        DaemonConfig::from_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn auto_slots_follow_the_memory_limit() {
        let auto = config("{}");
        assert_eq!(slots(&auto, None).unwrap(), MAX_AUTO_SLOTS);
        assert_eq!(slots(&auto, Some(50 << 20)).unwrap(), 6, "the manifest's 50Mi");
        assert_eq!(slots(&auto, Some(20 << 20)).unwrap(), MIN_AUTO_SLOTS);
        assert_eq!(slots(&auto, Some(1 << 40)).unwrap(), MAX_AUTO_SLOTS);
        assert_eq!(slots(&config(r#"{"delegateConcurrency": "auto"}"#), Some(50 << 20)).unwrap(), 6);
        assert_eq!(slots(&config(r#"{"delegateConcurrency": 3}"#), Some(50 << 20)).unwrap(), 3);
        assert!(slots(&config(r#"{"delegateConcurrency": 0}"#), None).is_err());
        assert!(slots(&config(r#"{"delegateConcurrency": "lots"}"#), None).is_err());
    }

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn the_limit_is_found_in_v1_and_v2_and_the_smallest_ancestor_wins() {
        let files: HashMap<PathBuf, &str> = [
            ("/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes", "9223372036854771712"),
            ("/sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes", "52428800"),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712"),
        ]
        .into_iter()
        .map(|(p, v)| (PathBuf::from(p), v))
        .collect();
        let read = |p: &Path| files.get(p).map(|v| v.to_string());
        let hybrid = "4:memory:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n";
        assert_eq!(memory_limit_from(hybrid, MOUNTINFO, read), Some(52428800));

        let v2_mounts = "40 30 0:36 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n";
        let v2 = |max: &'static str| {
            move |p: &Path| (p == Path::new("/sys/fs/cgroup/pod/c/memory.max")).then(|| max.to_string())
        };
        assert_eq!(memory_limit_from("0::/pod/c\n", v2_mounts, v2("52428800\n")), Some(52428800));
        assert_eq!(memory_limit_from("0::/pod/c\n", v2_mounts, v2("max\n")), None);
        assert_eq!(memory_limit_from("0::/\n", "", |_| None), None, "no cgroup file system: no limit");
    }

    struct Sleeper {
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
        each: Duration,
    }

    impl Exec for Sleeper {
        fn exec<'a>(&'a self, _req: PluginRequest<'a>) -> ExecFuture<'a> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let now = self.running.fetch_add(1, SeqCst) + 1;
                self.most.fetch_max(now, SeqCst);
                tokio::time::sleep(self.each).await;
                self.running.fetch_sub(1, SeqCst);
                Ok(Vec::new())
            })
        }
    }

    fn sleeper(each: Duration) -> Sleeper {
        Sleeper { running: Default::default(), most: Default::default(), each }
    }

    #[tokio::test]
    async fn at_most_the_slots_run_at_once_and_a_long_run_gives_its_slot_back() {
        use std::sync::atomic::Ordering::SeqCst;
        let admitted = Arc::new(Admitted::new(sleeper(Duration::from_millis(20)), 3));
        let runs: Vec<_> = (0..12)
            .map(|_| {
                let a = admitted.clone();
                tokio::spawn(async move { a.exec(PluginRequest::new(Path::new("/x"), vec![], b"")).await })
            })
            .collect();
        for r in runs {
            r.await.unwrap().unwrap();
        }
        assert_eq!(admitted.inner.most.load(SeqCst), 3);

        // A plugin with a 1 MB config takes two slots.
        assert!(cost_kib(1_000_000) > cost_kib(0) && cost_kib(1_000_000) <= 2 * cost_kib(0));
        let big = Arc::new(Admitted::new(sleeper(Duration::from_millis(200)), 3));
        let stdin = vec![b' '; 1_000_000];
        let one = {
            let b = big.clone();
            let stdin = stdin.clone();
            tokio::spawn(async move { b.exec(PluginRequest::new(Path::new("/x"), vec![], &stdin)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(big.available(), 1);
        one.await.unwrap().unwrap();

        // Two hung plugins do not hold the only two slots for longer than the hold.
        let hung = Arc::new(Admitted::with_hold(sleeper(Duration::from_secs(3)), 2, Duration::from_millis(100)));
        for _ in 0..2 {
            let h = hung.clone();
            tokio::spawn(async move { h.exec(PluginRequest::new(Path::new("/x"), vec![], b"")).await });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(hung.available(), 0);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(hung.available(), 2, "given back after the hold");
    }
}
