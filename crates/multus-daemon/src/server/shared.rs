//! What every connection task shares, and the connections waiting for their request head.

use super::api::*;
use super::limits::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// What every connection task shares.
pub(super) struct Shared {
    pub(super) api: Arc<dyn Api>,
    pub(super) health: Arc<Health>,
    pub(super) limits: Limits,
    /// `connectionLimit` slots.
    pub(super) slots: Option<Arc<Semaphore>>,
    /// Request-body bytes, one permit per byte.
    pub(super) budget: Arc<Semaphore>,
    /// Connections still waiting for their request head, oldest first.
    pub(super) pending: PendingHeads,
    /// Places among the open connections ([`Limits::max_connections`]).
    pub(super) connections: Arc<Semaphore>,
    /// Places in the probe lane ([`PROBE_LANE_CONNECTIONS`]).
    pub(super) probe_lane: Arc<Semaphore>,
}

/// Where an accepted connection holds its place.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Lane {
    /// One of [`Limits::max_connections`] (or none, for the backlog drained at shutdown).
    Regular,
    /// The probe lane: probes are served here, anything else first waits for a regular place.
    Probe,
}

/// One connection as the eviction sees it.
pub(super) struct ConnState {
    /// The request head has been read (the connection is serving a request, not idle).
    pub(super) head_read: AtomicBool,
    /// Close the connection if its head has not been read yet.
    pub(super) evict: Notify,
    /// Its place among the open connections, held until it closes.
    pub(super) place: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    /// Whether that place is in the probe lane.
    pub(super) in_probe_lane: AtomicBool,
    /// When it was accepted.
    pub(super) accepted: std::time::Instant,
}

impl Default for ConnState {
    fn default() -> Self {
        Self {
            head_read: AtomicBool::default(),
            evict: Notify::default(),
            place: std::sync::Mutex::default(),
            in_probe_lane: AtomicBool::default(),
            accepted: std::time::Instant::now(),
        }
    }
}

/// Connections that have not sent their request head yet, oldest first. When every connection
/// slot is taken, the oldest of them is closed to make room: a real client writes its request
/// right after connecting, so a connection still silent after hundreds of newer ones were
/// accepted is idle or stalled, and the client behind it in the backlog must not wait for its
/// header timeout (2,000 idle connections would otherwise delay a DEL by 4 × 10 s).
#[derive(Default)]
pub(super) struct PendingHeads(pub(super) std::sync::Mutex<std::collections::VecDeque<std::sync::Weak<ConnState>>>);

impl PendingHeads {
    pub(super) fn push(&self, conn: &Arc<ConnState>, cap: usize) {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= cap.saturating_mul(2).max(64) {
            queue.retain(|w| w.upgrade().is_some_and(|c| !c.head_read.load(Ordering::SeqCst)));
        }
        queue.push_back(Arc::downgrade(conn));
    }

    /// Close the oldest connection still waiting for its head; false if there is none.
    pub(super) fn evict_oldest(&self) -> bool {
        self.evict_oldest_where(|_| true)
    }

    /// Close the oldest connection still waiting for its head that holds a regular place.
    pub(super) fn evict_oldest_regular(&self) -> bool {
        self.evict_oldest_where(|c| !c.in_probe_lane.load(Ordering::SeqCst))
    }

    pub(super) fn evict_oldest_where(&self, which: impl Fn(&ConnState) -> bool) -> bool {
        let mut queue = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = std::collections::VecDeque::new();
        let mut evicted = false;
        while let Some(weak) = queue.pop_front() {
            let Some(conn) = weak.upgrade() else { continue };
            if conn.head_read.load(Ordering::SeqCst) {
                continue;
            }
            if which(&conn) && conn.accepted.elapsed() >= IDLE_BEFORE_EVICTION {
                conn.evict.notify_one();
                evicted = true;
                break;
            }
            kept.push_back(weak);
        }
        // Those skipped stay first in line, in their order.
        kept.append(&mut queue);
        *queue = kept;
        evicted
    }
}
