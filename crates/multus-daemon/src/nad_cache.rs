//! The NetworkAttachmentDefinitions this node uses: a bounded, byte-budgeted LRU cache.
//!
//! The Go daemon (and multus-rs before it) kept an informer of every NAD of the cluster on
//! every node, so one tenant creating NADs in its own namespace raised the memory of every
//! node's daemon. This cache holds only what this node's pods asked for: full NADs (filled by
//! one GET on first use, see [`crate::kube_nads`]), negative answers ("no such NAD") and
//! "too large" markers, within [`NadCache::budget`] bytes of config text. A metadata-only watch
//! of the NAD collection keeps it right: an event for a cached key invalidates it, a gap in the
//! watch (410 Gone, relist) clears everything.
//!
//! Rules:
//! - a found NAD costs its config text, its kept annotation, its name, namespace and
//!   resourceVersion, plus [`ENTRY_OVERHEAD`]; a negative or "too large" entry costs its key
//!   plus [`ENTRY_OVERHEAD`]. The sum never exceeds the budget: the least recently used entries
//!   go first, and an entry that alone exceeds the budget is answered but not kept;
//! - a NAD whose config is larger than [`MAX_NAD_BYTES`] is never kept: the cache remembers
//!   only that it is too large (until the watch says it changed);
//! - negative answers are trusted only while the watch is connected: while it is down, a NAD
//!   created meanwhile would still look missing (they are kept, since the watch resumes where it
//!   stopped and replays the ADDED that drops them; a gap clears them with everything else);
//! - an answer fetched from the API server is stored only if no watch event for the same key
//!   (nor a gap) came while the GET was in flight: the event may be newer than the answer.
//!
//! Pure and synchronous (one mutex, no I/O), so that every rule is unit- and property-tested.

use multus::model::Nad;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// A NAD's `(namespace, name)`.
pub type Key = (String, String);

/// Default budget of the cache: bytes of config text (and the little kept with it) of the NADs
/// this node's pods use. A typical NAD is well under 1 KiB, so this holds thousands; a few
/// NADs near the API server's object size limit still fit.
pub const DEFAULT_BUDGET_BYTES: usize = 4 << 20;

/// The largest NAD config (bytes of `spec.config`, plus its resourceName annotation) the daemon
/// accepts. The API server refuses objects larger than about 1.5 MB (etcd's request limit), so a
/// larger NAD cannot come from a real cluster; one that does is refused with a clear error.
pub const MAX_NAD_BYTES: usize = 3 << 19;

/// Bookkeeping cost counted per entry besides its strings (map slots, LRU node, Arc).
pub const ENTRY_OVERHEAD: usize = 160;

/// Watch events remembered to tell whether a GET in flight raced one for its key.
const RECENT_EVENTS: usize = 512;

/// What is known about one NAD.
#[derive(Debug, Clone, PartialEq)]
pub enum NadAnswer {
    /// The NAD.
    Found(Arc<Nad>),
    /// The API server has no such NAD.
    NotFound,
    /// The NAD exists but is larger than [`MAX_NAD_BYTES`]: refused, never parsed.
    TooLarge {
        /// Its size as measured (config text and kept annotation), or the response size at
        /// which reading it stopped.
        bytes: usize,
    },
    /// The API server could not be asked (down, timed out, forbidden…): nothing is cached.
    Unavailable(String),
}

impl NadAnswer {
    /// Why a NAD cannot be used, in the words that follow the reference's
    /// `cannot find a network-attachment-definition (<name>) in namespace (<ns>): ` (`None`
    /// for a found NAD).
    pub fn reason(&self, name: &str) -> Option<String> {
        match self {
            Self::Found(_) => None,
            Self::NotFound => Some(format!("networkattachmentdefinition.k8s.cni.cncf.io \"{name}\" not found")),
            Self::TooLarge { bytes } => Some(format!(
                "networkattachmentdefinition.k8s.cni.cncf.io \"{name}\" is refused: its config is {}, more than the {} \
                 multus-rs accepts (an API server stores no object that large)",
                human_bytes(*bytes),
                human_bytes(MAX_NAD_BYTES)
            )),
            Self::Unavailable(e) => Some(format!("networkattachmentdefinition.k8s.cni.cncf.io \"{name}\": {e}")),
        }
    }
}

pub use multus_node::human_bytes;

/// The size a found NAD is measured by: its config text and its kept annotations.
pub fn nad_bytes(nad: &Nad) -> usize {
    nad.config.len() + nad.annotations.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// A watch event's kind, as far as the cache cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `ADDED`: a NAD now exists under the key.
    Added,
    /// `MODIFIED`: it changed (compared by resourceVersion).
    Modified,
    /// `DELETED`: it is gone.
    Deleted,
}

/// Taken when a GET starts; [`NadCache::store`] keeps its answer only if nothing about the key
/// changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchToken {
    generation: u64,
    seq: u64,
}

#[derive(Debug, Clone)]
enum Slot {
    Found { nad: Arc<Nad>, resource_version: String },
    NotFound,
    TooLarge { bytes: usize, resource_version: String },
}

#[derive(Debug)]
struct Entry {
    slot: Slot,
    cost: usize,
    used: u64,
}

/// A watch event as remembered: its number, key, kind and resourceVersion.
#[derive(Debug)]
struct Seen {
    seq: u64,
    key: Key,
    change: Change,
    resource_version: String,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Last use → key: the first is the least recently used.
    order: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
    /// The watch is connected: negative answers are trusted and kept.
    healthy: bool,
    /// Bumped at every gap: a GET started before stores nothing.
    generation: u64,
    /// Watch events seen, and the last [`RECENT_EVENTS`] of them.
    seq: u64,
    recent: VecDeque<Seen>,
    hits: u64,
    misses: u64,
    evictions: u64,
}

/// What the cache holds, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Entries (found, negative and too-large).
    pub entries: usize,
    /// Their cost, never above the budget.
    pub bytes: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that needed the API server.
    pub misses: u64,
    /// Entries removed to stay within the budget.
    pub evictions: u64,
}

/// The node's NAD cache. See the module documentation for the rules.
#[derive(Debug)]
pub struct NadCache {
    state: Mutex<State>,
    budget: usize,
    synced: watch::Sender<bool>,
}

impl NadCache {
    /// An empty cache keeping at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self { state: Mutex::new(State::default()), budget, synced: watch::channel(false).0 }
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached answer for `key`, if it can be trusted now (a hit also marks the entry as
    /// recently used). `None`: ask the API server.
    pub fn lookup(&self, key: &Key) -> Option<NadAnswer> {
        let mut s = self.lock();
        let healthy = s.healthy;
        let answer = s.entries.get(key).and_then(|e| match &e.slot {
            Slot::Found { nad, .. } => Some(NadAnswer::Found(nad.clone())),
            Slot::TooLarge { bytes, .. } => Some(NadAnswer::TooLarge { bytes: *bytes }),
            Slot::NotFound => healthy.then_some(NadAnswer::NotFound),
        });
        if answer.is_some() {
            s.hits += 1;
            s.touch(key);
        } else {
            s.misses += 1;
        }
        answer
    }

    /// The cached answer without counting a lookup or changing the LRU order.
    pub fn peek(&self, key: &Key) -> Option<NadAnswer> {
        let s = self.lock();
        s.entries.get(key).map(|e| match &e.slot {
            Slot::Found { nad, .. } => NadAnswer::Found(nad.clone()),
            Slot::TooLarge { bytes, .. } => NadAnswer::TooLarge { bytes: *bytes },
            Slot::NotFound => NadAnswer::NotFound,
        })
    }

    /// Call before a GET; hand the token to [`NadCache::store`].
    pub fn begin_fetch(&self) -> FetchToken {
        let s = self.lock();
        FetchToken { generation: s.generation, seq: s.seq }
    }

    /// Keep what a GET answered for `key` (with the object's resourceVersion for a found or
    /// too-large NAD). Returns whether it was kept: not when the key changed or the watch had a
    /// gap since `token`, not for [`NadAnswer::Unavailable`], not for an entry that alone exceeds
    /// the budget.
    pub fn store(&self, key: &Key, answer: &NadAnswer, resource_version: &str, token: FetchToken) -> bool {
        let mut s = self.lock();
        if token.generation != s.generation || s.contradicted_since(key, answer, resource_version, token.seq) {
            return false;
        }
        let slot = match answer {
            NadAnswer::Found(nad) => Slot::Found { nad: nad.clone(), resource_version: resource_version.to_string() },
            NadAnswer::NotFound => Slot::NotFound,
            NadAnswer::TooLarge { bytes } => {
                Slot::TooLarge { bytes: *bytes, resource_version: resource_version.to_string() }
            }
            NadAnswer::Unavailable(_) => return false,
        };
        let cost = entry_cost(key, &slot);
        if cost > self.budget {
            s.remove(key);
            return false;
        }
        s.remove(key);
        while s.bytes + cost > self.budget {
            if !s.evict_oldest() {
                break;
            }
        }
        s.tick += 1;
        let used = s.tick;
        s.order.insert(used, key.clone());
        s.entries.insert(key.clone(), Entry { slot, cost, used });
        s.bytes += cost;
        true
    }

    /// A watch event for `key` (`resource_version`: the object's, as the event carries it).
    /// Drops whatever the event makes stale: an ADDED or MODIFIED drops a negative answer and a
    /// cached NAD of another resourceVersion, a DELETED turns a cached NAD into a negative
    /// answer.
    pub fn on_event(&self, change: Change, key: &Key, resource_version: &str) {
        let mut s = self.lock();
        s.seq += 1;
        let seq = s.seq;
        if s.recent.len() == RECENT_EVENTS {
            s.recent.pop_front();
        }
        s.recent.push_back(Seen { seq, key: key.clone(), change, resource_version: resource_version.to_string() });
        let Some(entry) = s.entries.get(key) else { return };
        // An ADDED or MODIFIED that carries the resourceVersion already cached is the event of
        // the very state a GET fetched (the watch can lag behind a GET): nothing is stale.
        let stale = match (&entry.slot, change) {
            (_, Change::Deleted) | (Slot::NotFound, _) => true,
            (Slot::Found { resource_version: rv, .. } | Slot::TooLarge { resource_version: rv, .. }, _) => {
                rv != resource_version || rv.is_empty()
            }
        };
        if !stale {
            return;
        }
        let was_cached = !matches!(entry.slot, Slot::NotFound);
        s.remove(key);
        if change == Change::Deleted && was_cached {
            let cost = entry_cost(key, &Slot::NotFound);
            if s.bytes + cost <= self.budget {
                s.tick += 1;
                let used = s.tick;
                s.order.insert(used, key.clone());
                s.entries.insert(key.clone(), Entry { slot: Slot::NotFound, cost, used });
                s.bytes += cost;
            }
        }
    }

    /// The watch is connected and delivering events: negative answers can be trusted. The
    /// first time, the cache is synced (the daemon may become ready).
    pub fn connected(&self) {
        self.lock().healthy = true;
        self.synced.send_if_modified(|synced| !std::mem::replace(synced, true));
    }

    /// The watch broke: negative answers are not trusted until it is back (a NAD created
    /// meanwhile must not look missing). Everything stays cached: found NADs are served as an
    /// informer serves stale data, and the watch replays what changed when it resumes (a gap
    /// clears everything, see [`NadCache::relisted`]).
    pub fn disconnected(&self) {
        self.lock().healthy = false;
    }

    /// A gap: the watch starts again from a new list, so events were lost. Everything cached
    /// goes; a GET in flight stores nothing.
    pub fn relisted(&self) {
        let mut s = self.lock();
        s.generation += 1;
        s.entries.clear();
        s.order.clear();
        s.bytes = 0;
        s.recent.clear();
    }

    /// The watch of the NAD collection has been connected once (after a list of one item).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Wait until the watch has been connected once, or `timeout` passes.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| *s)).await.is_ok()
    }

    /// Entries, bytes and counters.
    pub fn stats(&self) -> CacheStats {
        let s = self.lock();
        CacheStats { entries: s.entries.len(), bytes: s.bytes, hits: s.hits, misses: s.misses, evictions: s.evictions }
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// The cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys from least to most recently used (tests, `/debug/state`).
    pub fn keys_by_age(&self) -> Vec<Key> {
        self.lock().order.values().cloned().collect()
    }
}

fn entry_cost(key: &Key, slot: &Slot) -> usize {
    let strings = key.0.len() + key.1.len();
    strings
        + ENTRY_OVERHEAD
        + match slot {
            Slot::Found { nad, resource_version } => nad_bytes(nad) + resource_version.len(),
            Slot::NotFound => 0,
            Slot::TooLarge { resource_version, .. } => resource_version.len(),
        }
}

impl State {
    fn touch(&mut self, key: &Key) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.entries.get_mut(key) {
            let old = std::mem::replace(&mut e.used, tick);
            if let Some(k) = self.order.remove(&old) {
                self.order.insert(tick, k);
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.used);
            self.bytes -= e.cost;
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_first() else { return false };
        if let Some(e) = self.entries.remove(&key) {
            self.bytes -= e.cost;
        }
        self.evictions += 1;
        true
    }

    /// An event for `key` after `seq` says something else than `answer` (of
    /// `resource_version`) — or events were forgotten and that cannot be ruled out. An event of
    /// the very state fetched (the watch lagging behind the GET) does not contradict it.
    fn contradicted_since(&self, key: &Key, answer: &NadAnswer, resource_version: &str, seq: u64) -> bool {
        if self.seq == seq {
            return false;
        }
        // The ring must still reach back to the first event after `seq`.
        let covered = self.recent.front().is_some_and(|first| first.seq <= seq + 1);
        let agrees = |e: &Seen| match (answer, e.change) {
            (NadAnswer::NotFound, Change::Deleted) => true,
            (NadAnswer::Found(_) | NadAnswer::TooLarge { .. }, Change::Added | Change::Modified) => {
                !resource_version.is_empty() && e.resource_version == resource_version
            }
            _ => false,
        };
        !covered || self.recent.iter().rev().take_while(|e| e.seq > seq).any(|e| e.key == *key && !agrees(e))
    }
}

#[cfg(test)]
mod tests;
