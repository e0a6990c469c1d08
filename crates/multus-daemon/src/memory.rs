//! Giving memory back to the operating system after a burst.
//!
//! The daemon uses the C library's allocator (glibc malloc in the shipped static binaries).
//! glibc keeps freed memory for reuse: the main heap is shrunk only from its top, the arenas of
//! other threads rarely, and a freed large block raises the threshold under which later large
//! blocks come from the heap instead of their own mapping. So a burst — a storm of ADDs, a watch
//! relist, one huge object — leaves the daemon's RSS at its peak for good. Two measures:
//!
//! - at start ([`configure_allocator`]): blocks of [`MMAP_THRESHOLD`] bytes and more always get
//!   their own mapping (returned on free), and the heap is trimmed above [`TRIM_THRESHOLD`] of
//!   free space at its top — glibc's dynamic raise of both thresholds is switched off;
//! - after a burst ([`trim`], called by [`trim_when_idle`] once no request is in flight after
//!   some activity, and after a watch relist): `malloc_trim(0)` returns the free pages inside
//!   every arena.
//!
//! Both are no-ops with another C library.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Blocks at least this large get their own mapping (glibc's default before its dynamic raise).
pub const MMAP_THRESHOLD: usize = 128 << 10;
/// Free space at the top of the heap beyond this is returned at once.
pub const TRIM_THRESHOLD: usize = 1 << 20;
/// How often [`trim_when_idle`] looks.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);

static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// Note that the daemon did work that may have left freed memory behind (a command, a relist).
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// Fix glibc's mmap and trim thresholds (see the module documentation). Call once at start,
/// before other threads allocate.
#[allow(unsafe_code)]
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before the runtime's
    // threads start and takes glibc's own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
    }
}

/// Return the free memory of every arena to the operating system.
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the allocator's locks itself; it frees nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trim once the daemon is idle after activity: checked every [`IDLE_CHECK`]; idle means no
/// request in flight (the `multus_requests_in_flight` gauge). Runs until `shutdown` turns true.
pub async fn trim_when_idle(metrics: Arc<crate::metrics::Metrics>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut seen = ACTIVITY.load(Ordering::Relaxed);
    let mut tick = tokio::time::interval(IDLE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let now = ACTIVITY.load(Ordering::Relaxed);
        if now != seen && metrics.requests_in_flight.get() <= 0 {
            seen = now;
            // Walks every arena: off the async workers.
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_is_safe_to_call_any_time() {
        configure_allocator();
        let big: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 64 << 10]).collect();
        drop(big);
        trim();
        note_activity();
    }
}
