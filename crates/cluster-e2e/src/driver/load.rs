//! The load generator: on every node, pods keep coming and going as a kubelet would make them
//! (pod object first, then the runtime's ADD; the runtime's DEL, then the object deleted), a
//! few live per node, every call recorded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::driver::cluster::{ApiServer, Node};
use crate::plan::{Generation, PodRef};
use crate::report::{AddedBy, Call, Op};

/// A live pod and who attached it.
#[derive(Debug, Clone)]
pub struct LivePod {
    pub pod: PodRef,
    pub added_by: AddedBy,
}

/// What the load generator and the scenarios share.
pub struct Shared {
    pub started: Instant,
    pub calls: Mutex<Vec<Call>>,
    pub live: Mutex<BTreeMap<String, VecDeque<LivePod>>>,
    /// Nodes whose load is paused (down, cut off).
    pub paused: Mutex<BTreeSet<String>>,
    /// The generation each node's daemon runs (what an ADD there is recorded as).
    pub generation: Mutex<BTreeMap<String, Generation>>,
    pub stop: AtomicBool,
    seq: AtomicUsize,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            calls: Mutex::default(),
            live: Mutex::default(),
            paused: Mutex::default(),
            generation: Mutex::default(),
            stop: AtomicBool::new(false),
            seq: AtomicUsize::new(0),
        })
    }

    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn record(&self, call: Call) {
        lock(&self.calls).push(call);
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    pub fn is_paused(&self, node: &str) -> bool {
        lock(&self.paused).contains(node)
    }

    pub fn pause(&self, node: &str, paused: bool) {
        let mut p = lock(&self.paused);
        if paused {
            p.insert(node.to_string());
        } else {
            p.remove(node);
        }
    }

    pub fn added_by(&self, node: &str) -> AddedBy {
        match lock(&self.generation).get(node) {
            Some(Generation::New) => AddedBy::New,
            _ => AddedBy::Old,
        }
    }

    pub fn push_live(&self, node: &str, pod: LivePod) {
        lock(&self.live).entry(node.to_string()).or_default().push_back(pod);
    }

    pub fn pop_oldest(&self, node: &str) -> Option<LivePod> {
        lock(&self.live).get_mut(node)?.pop_front()
    }

    pub fn take_all(&self, node: &str) -> Vec<LivePod> {
        lock(&self.live).get_mut(node).map(|q| q.drain(..).collect()).unwrap_or_default()
    }

    pub fn live_ids(&self, node: &str) -> BTreeSet<String> {
        lock(&self.live).get(node).map(|q| q.iter().map(|p| p.pod.container_id.clone()).collect()).unwrap_or_default()
    }

    pub fn next_seq(&self) -> usize {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// ADD a new pod on `node`: its object, then the runtime's call. Recorded; live on success.
pub async fn add_one(shared: &Shared, api: &ApiServer, node: &Node, tag: &str) -> bool {
    let pod = PodRef::new(&node.name, tag, shared.next_seq());
    let at_ms = shared.now_ms();
    let added_by = shared.added_by(&node.name);
    let start = Instant::now();
    let outcome = match api.create_pod(&pod).await {
        Ok(()) => node.pod_call("add", &pod).await,
        Err(e) => Err(e),
    };
    let (ok, millis, error) = match outcome {
        Ok(o) => (o.ok, o.millis, o.error),
        Err(e) => (false, u64::try_from(start.elapsed().as_millis()).unwrap_or(0), Some(format!("{e:#}"))),
    };
    shared.record(Call {
        node: node.name.clone(),
        pod: pod.name.clone(),
        op: Op::Add,
        at_ms,
        millis,
        ok,
        error,
        added_by,
    });
    if ok {
        shared.push_live(&node.name, LivePod { pod, added_by });
    } else {
        let _ = api.delete_pod(&pod).await;
    }
    ok
}

/// DEL a live pod: the runtime's call, then its object. Recorded.
pub async fn del_one(shared: &Shared, api: &ApiServer, node: &Node, live: &LivePod) -> bool {
    let at_ms = shared.now_ms();
    let start = Instant::now();
    let (ok, millis, error) = match node.pod_call("del", &live.pod).await {
        Ok(o) => (o.ok, o.millis, o.error),
        Err(e) => (false, u64::try_from(start.elapsed().as_millis()).unwrap_or(0), Some(format!("{e:#}"))),
    };
    shared.record(Call {
        node: node.name.clone(),
        pod: live.pod.name.clone(),
        op: Op::Del,
        at_ms,
        millis,
        ok,
        error,
        added_by: live.added_by,
    });
    let _ = api.delete_pod(&live.pod).await;
    ok
}

/// Keeps `per_node` pods live on `node`, replacing the oldest, until stopped.
pub async fn run_node(shared: Arc<Shared>, api: Arc<ApiServer>, node: Arc<Node>, per_node: usize) {
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.is_paused(&node.name) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        add_one(&shared, &api, &node, "load").await;
        let over = lock(&shared.live).get(&node.name).is_some_and(|q| q.len() > per_node);
        if over && let Some(oldest) = shared.pop_oldest(&node.name) {
            del_one(&shared, &api, &node, &oldest).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
