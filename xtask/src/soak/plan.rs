//! The soak's operation sequence: a seeded RNG and a planner whose choices depend only on the
//! seed and on earlier choices, never on what the daemon answered, so a seed and an operation
//! count (or the recorded sequence) replay a run exactly.

use serde::{Deserialize, Serialize};

pub use super::rng::Rng;

/// A CNI command the runtime sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    Add,
    Check,
    Del,
    /// Several operations on distinct pods at once ([`Op::parallel`]).
    Burst,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
            Command::Burst => "BURST",
        }
    }
}

/// One injected fault, active for the duration of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// A delegate (fake-cni) killed by SIGKILL during ADD.
    DelegateCrash,
    /// A delegate that sleeps past the daemon's delegate timeout.
    DelegateHang,
    /// A delegate that prints garbage and exits 0.
    DelegateGarbage,
    /// A delegate that returns a CNI error.
    DelegateError,
    /// kube-mock stops listening for this long.
    ApiDown { millis: u64 },
    /// Every API request is delayed this long.
    ApiSlow { millis: u64 },
    /// The next `count` API requests answer 500.
    Api500 { count: u32 },
    /// Open watches are closed.
    WatchDrop,
    /// Open watches get 410 Expired (history compacted: clients relist).
    Watch410,
    /// `kill -9` of the daemon `after_ms` into the operation, then a restart.
    KillDaemon { after_ms: u64 },
    /// The daemon's cniDir (delegate and result caches) is remounted read-only.
    CacheReadOnly,
    /// The daemon's cniDir is full.
    CacheFull,
    /// The shim is killed (SIGKILL) `after_ms` into an ADD through `slower-net`; the runtime
    /// then sends DEL (`send_del`) or forgets the sandbox. The daemon must undo the ADD.
    ClientDisconnect { after_ms: u64, send_del: bool },
    /// A delegate starts a child (`setsid` or not) that writes a marker later, then the
    /// delegate hangs past the timeout or the daemon is killed (`via`).
    Grandchild { setsid: bool, via: Via },
    /// A delegate answers and exits, but its child holds its stdout open past the timeout.
    StdoutHolder,
    /// The DEL's `CNI_ARGS` carries invalid UTF-8 (in an extra key, or in the pod name).
    NonUtf8Del { in_pod_name: bool },
    /// Slow ADDs in flight (`extra` more pods besides this one) while a second daemon starts
    /// with the same config: it must refuse, the first keeps its socket and answers probes.
    SaturationTakeover { extra: u32 },
    /// The runtime's CNI GC lists the sandboxes of these slots (always this op's) as valid:
    /// every other sandbox is deleted by the daemon and forgotten by the runtime.
    Gc { listed: Vec<usize> },
    /// Before the operation: the DaemonSet is deleted (or not: `delete` false) and the daemon
    /// gets SIGTERM; 00-multus.conf must be removed (kept), then Multus is reinstalled.
    DaemonsetDelete { delete: bool },
    /// As [`Fault::DaemonsetDelete`] with every API request delayed `millis` (past the
    /// daemon's 3 s decision window) at the SIGTERM.
    SlowApiAtStop { delete: bool, millis: u64 },
}

/// How the delegate of a [`Fault::Grandchild`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// It sleeps past the delegate timeout (the daemon kills its process group).
    Timeout,
    /// `kill -9` of the daemon once the child runs (the delegate dies by its parent-death signal).
    KillDaemon,
}

/// The NADs (fake-cni) behind the delegate faults.
pub const CRASH_NAD: &str = "fault-crash";
pub const HANG_NAD: &str = "fault-hang";
pub const GARBAGE_NAD: &str = "fault-garbage";
pub const ERROR_NAD: &str = "fault-error";
/// A fake-cni delegate that takes 300 ms on ADD and DEL: a daemon kill lands mid-operation.
pub const SLOW_NAD: &str = "slow-net";
/// A fake-cni delegate that takes 1.5 s on ADD (under the 2 s delegate timeout): client
/// disconnects and the takeover attempt land while ADDs are in flight.
pub const SLOWER_NAD: &str = "slower-net";
/// fake-cni answering ADD while a child holds its stdout open for 6 s.
pub const STDOUT_NAD: &str = "fault-stdout";
/// fake-cni leaving a child on ADD, then hanging past the timeout: plain child, setsid child.
pub const SPAWN_HANG_NAD: &str = "fault-spawn-hang";
pub const SPAWN_HANG_SETSID_NAD: &str = "fault-spawn-hang-setsid";
/// fake-cni leaving a child on ADD, then taking 1.5 s (the daemon is killed meanwhile).
pub const SPAWN_SLOW_NAD: &str = "fault-spawn-slow";
pub const SPAWN_SLOW_SETSID_NAD: &str = "fault-spawn-slow-setsid";
/// A second bridge with host-local.
pub const BRIDGE_NAD: &str = "bridge-net";
/// macvlan with host-local.
pub const MACVLAN_NAD: &str = "macvlan-net";
/// A healthy fake-cni delegate (no host side effects).
pub const FAKE_NAD: &str = "fake-net";

/// The selections a pod is made with (the cluster network always comes first).
const NETWORK_SETS: &[&[&str]] = &[
    &[],
    &[BRIDGE_NAD],
    &[MACVLAN_NAD],
    &[BRIDGE_NAD, MACVLAN_NAD],
    &[FAKE_NAD],
    &[MACVLAN_NAD, FAKE_NAD],
    &[BRIDGE_NAD, FAKE_NAD, MACVLAN_NAD],
];

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::DelegateCrash => "delegate-crash",
            Fault::DelegateHang => "delegate-hang",
            Fault::DelegateGarbage => "delegate-garbage",
            Fault::DelegateError => "delegate-error",
            Fault::ApiDown { .. } => "api-down",
            Fault::ApiSlow { .. } => "api-slow",
            Fault::Api500 { .. } => "api-500",
            Fault::WatchDrop => "watch-drop",
            Fault::Watch410 => "watch-410",
            Fault::KillDaemon { .. } => "kill-daemon",
            Fault::CacheReadOnly => "cache-read-only",
            Fault::CacheFull => "cache-full",
            Fault::ClientDisconnect { .. } => "client-disconnect",
            Fault::Grandchild { .. } => "grandchild",
            Fault::StdoutHolder => "stdout-holder",
            Fault::NonUtf8Del { .. } => "non-utf8-del",
            Fault::SaturationTakeover { .. } => "saturation-takeover",
            Fault::Gc { .. } => "gc",
            Fault::DaemonsetDelete { .. } => "daemonset-delete",
            Fault::SlowApiAtStop { .. } => "slow-api-at-stop",
        }
    }

    /// May the operation fail under this fault? The faults of issue 21 that the daemon now
    /// handles (a busy daemon, GC, an uninstall, a helper holding stdout) excuse nothing.
    pub fn excuses_failure(&self) -> bool {
        !matches!(
            self,
            Fault::StdoutHolder
                | Fault::SaturationTakeover { .. }
                | Fault::Gc { .. }
                | Fault::DaemonsetDelete { .. }
                | Fault::SlowApiAtStop { .. }
                | Fault::NonUtf8Del { .. }
        )
    }

    /// Is the daemon killed (`kill -9`) during the operation? (It cannot roll back then.)
    pub fn kills_daemon(&self) -> bool {
        matches!(self, Fault::KillDaemon { .. } | Fault::Grandchild { via: Via::KillDaemon, .. })
    }

    /// The NAD that carries a delegate fault.
    pub fn delegate_nad(&self) -> Option<&'static str> {
        match self {
            Fault::DelegateCrash => Some(CRASH_NAD),
            Fault::DelegateHang => Some(HANG_NAD),
            Fault::DelegateGarbage => Some(GARBAGE_NAD),
            Fault::DelegateError => Some(ERROR_NAD),
            Fault::Grandchild { setsid: false, via: Via::Timeout } => Some(SPAWN_HANG_NAD),
            Fault::Grandchild { setsid: true, via: Via::Timeout } => Some(SPAWN_HANG_SETSID_NAD),
            Fault::Grandchild { setsid: false, via: Via::KillDaemon } => Some(SPAWN_SLOW_NAD),
            Fault::Grandchild { setsid: true, via: Via::KillDaemon } => Some(SPAWN_SLOW_SETSID_NAD),
            _ => None,
        }
    }

    /// The NAD the pod gets besides its selection (at a random position) for this fault.
    pub fn extra_nad(&self) -> Option<&'static str> {
        match self {
            Fault::StdoutHolder => Some(STDOUT_NAD),
            Fault::ClientDisconnect { .. } | Fault::SaturationTakeover { .. } => Some(SLOWER_NAD),
            _ => self.delegate_nad(),
        }
    }

    /// Faults carried out on the node before the operation, which then runs as usual.
    pub fn before_operation(&self) -> bool {
        matches!(self, Fault::DaemonsetDelete { .. } | Fault::SlowApiAtStop { .. } | Fault::Gc { .. })
    }

    /// Faults after which a DEL may leave files that a second DEL (fault cleared) removes: the
    /// cache could not be rewritten or removed.
    pub fn blocks_cache_writes(&self) -> bool {
        matches!(self, Fault::CacheReadOnly | Fault::CacheFull)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Crash,
    Hang,
    Garbage,
    Error,
    Down,
    Slow,
    Err500,
    Drop,
    Expire,
    Kill,
    ReadOnly,
    Full,
    Disconnect,
    Grandchild,
    StdoutHolder,
    NonUtf8,
    Takeover,
    Gc,
    DsDelete,
    SlowStop,
}

impl FaultKind {
    /// The name [`Fault::kind`] gives it.
    fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "delegate-crash",
            FaultKind::Hang => "delegate-hang",
            FaultKind::Garbage => "delegate-garbage",
            FaultKind::Error => "delegate-error",
            FaultKind::Down => "api-down",
            FaultKind::Slow => "api-slow",
            FaultKind::Err500 => "api-500",
            FaultKind::Drop => "watch-drop",
            FaultKind::Expire => "watch-410",
            FaultKind::Kill => "kill-daemon",
            FaultKind::ReadOnly => "cache-read-only",
            FaultKind::Full => "cache-full",
            FaultKind::Disconnect => "client-disconnect",
            FaultKind::Grandchild => "grandchild",
            FaultKind::StdoutHolder => "stdout-holder",
            FaultKind::NonUtf8 => "non-utf8-del",
            FaultKind::Takeover => "saturation-takeover",
            FaultKind::Gc => "gc",
            FaultKind::DsDelete => "daemonset-delete",
            FaultKind::SlowStop => "slow-api-at-stop",
        }
    }
}

/// The fault kinds before issue 21.
pub const CLASSIC_KINDS: &[&str] = &[
    "delegate-crash",
    "delegate-hang",
    "delegate-garbage",
    "delegate-error",
    "api-down",
    "api-slow",
    "api-500",
    "watch-drop",
    "watch-410",
    "kill-daemon",
    "cache-read-only",
    "cache-full",
];
/// The leak paths of issue 21.
pub const ISSUE21_KINDS: &[&str] = &[
    "client-disconnect",
    "grandchild",
    "stdout-holder",
    "non-utf8-del",
    "saturation-takeover",
    "gc",
    "daemonset-delete",
    "slow-api-at-stop",
];

/// `--faults`: comma-separated kinds, or `all`, `classic` (the kinds before issue 21),
/// `issue21`, `none`. The kinds named, sorted.
pub fn parse_fault_kinds(s: &str) -> Result<Vec<String>, String> {
    let mut out = std::collections::BTreeSet::new();
    for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        match word {
            "all" => out.extend(CLASSIC_KINDS.iter().chain(ISSUE21_KINDS).map(|k| k.to_string())),
            "classic" => out.extend(CLASSIC_KINDS.iter().map(|k| k.to_string())),
            "issue21" => out.extend(ISSUE21_KINDS.iter().map(|k| k.to_string())),
            "none" => {}
            k if CLASSIC_KINDS.contains(&k) || ISSUE21_KINDS.contains(&k) => {
                out.insert(k.to_string());
            }
            k => {
                return Err(format!(
                    "unknown fault kind {k:?} (all, classic, issue21, none, or: {}, {})",
                    CLASSIC_KINDS.join(", "),
                    ISSUE21_KINDS.join(", ")
                ));
            }
        }
    }
    Ok(out.into_iter().collect())
}

const ADD_FAULTS: &[(FaultKind, u32)] = &[
    (FaultKind::Crash, 3),
    (FaultKind::Hang, 1),
    (FaultKind::Garbage, 3),
    (FaultKind::Error, 3),
    (FaultKind::Down, 2),
    (FaultKind::Slow, 2),
    (FaultKind::Err500, 3),
    (FaultKind::Drop, 2),
    (FaultKind::Expire, 2),
    (FaultKind::Kill, 4),
    (FaultKind::ReadOnly, 2),
    (FaultKind::Full, 2),
    (FaultKind::Disconnect, 3),
    (FaultKind::Grandchild, 3),
    (FaultKind::StdoutHolder, 2),
    (FaultKind::Takeover, 1),
    (FaultKind::DsDelete, 1),
    (FaultKind::SlowStop, 1),
];
const DELEGATE_FAULTS: &[(FaultKind, u32)] =
    &[(FaultKind::Crash, 1), (FaultKind::Hang, 1), (FaultKind::Garbage, 1), (FaultKind::Error, 1)];
const CHECK_FAULTS: &[(FaultKind, u32)] = &[
    (FaultKind::Down, 1),
    (FaultKind::Slow, 1),
    (FaultKind::Err500, 1),
    (FaultKind::Drop, 1),
    (FaultKind::Expire, 1),
    (FaultKind::ReadOnly, 1),
    (FaultKind::Gc, 2),
    (FaultKind::DsDelete, 1),
    (FaultKind::SlowStop, 1),
];
const DEL_FAULTS: &[(FaultKind, u32)] = &[
    (FaultKind::Down, 2),
    (FaultKind::Slow, 2),
    (FaultKind::Err500, 3),
    (FaultKind::Drop, 1),
    (FaultKind::Expire, 1),
    (FaultKind::Kill, 4),
    (FaultKind::ReadOnly, 2),
    (FaultKind::Full, 2),
    (FaultKind::NonUtf8, 3),
    (FaultKind::DsDelete, 1),
    (FaultKind::SlowStop, 1),
];

/// One step of the sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    pub index: u64,
    pub command: Command,
    /// Which pod slot (a slot holds at most one sandbox at a time).
    pub slot: usize,
    /// ADD only: the networks the new pod selects, in order (net1, net2, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// BURST only: the operations run at the same time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parallel: Vec<Op>,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.command == Command::Burst {
            let parts: Vec<String> = self.parallel.iter().map(|o| o.to_string()).collect();
            return write!(f, "#{} BURST [{}]", self.index, parts.join(" | "));
        }
        write!(f, "#{} {} slot {}", self.index, self.command.as_str(), self.slot)?;
        if self.command == Command::Add {
            write!(f, " networks [{}]", self.networks.join(","))?;
        }
        if let Some(fault) = &self.fault {
            write!(f, " fault {}", serde_json::to_string(fault).unwrap_or_default())?;
        }
        Ok(())
    }
}

/// How often an operation is a burst of parallel operations.
const BURST_RATE: f64 = 0.1;

/// Makes the sequence. A slot counts as occupied from its ADD to its DEL whatever the ADD's
/// outcome, which is what keeps the sequence independent of the daemon's answers. Two faults
/// end a sandbox without a DEL op, decided here too: a client disconnect (the runtime gives the
/// sandbox up) and GC (the sandboxes it does not list are gone).
pub struct Planner {
    rng: Rng,
    occupied: Vec<bool>,
    fault_rate: f64,
    index: u64,
    /// The fault kinds that may be drawn (`--faults`).
    enabled: Vec<String>,
}

impl Planner {
    /// A planner drawing from every fault kind.
    #[cfg(test)]
    pub fn new(seed: u64, slots: usize, fault_rate: f64) -> Self {
        Self::with_faults(seed, slots, fault_rate, &parse_fault_kinds("all").unwrap_or_default())
    }

    /// A planner drawing only from the `enabled` kinds (an operation whose table holds none of
    /// them runs without a fault).
    pub fn with_faults(seed: u64, slots: usize, fault_rate: f64, enabled: &[String]) -> Self {
        Self {
            rng: Rng::new(seed),
            occupied: vec![false; slots.max(1)],
            fault_rate,
            index: 0,
            enabled: enabled.to_vec(),
        }
    }

    pub fn next_op(&mut self) -> Op {
        if self.occupied.len() >= 2 && self.rng.chance(BURST_RATE) {
            let index = self.next_index();
            let n = self.rng.between(2, 6);
            let mut parallel: Vec<Op> = Vec::new();
            for _ in 0..n {
                let taken: Vec<usize> = parallel.iter().map(|o| o.slot).collect();
                match self.single(true, &taken) {
                    Some(op) => parallel.push(op),
                    None => break,
                }
            }
            return Op { index, command: Command::Burst, slot: 0, networks: Vec::new(), fault: None, parallel };
        }
        self.single(false, &[]).unwrap_or_else(|| unreachable!("a free or an occupied slot always exists"))
    }

    fn next_index(&mut self) -> u64 {
        self.index += 1;
        self.index - 1
    }

    /// One operation on a slot not in `taken`; in a burst only delegate faults (they concern
    /// one pod), none when every slot is taken.
    fn single(&mut self, in_burst: bool, taken: &[usize]) -> Option<Op> {
        let (busy, free): (Vec<usize>, Vec<usize>) =
            (0..self.occupied.len()).filter(|s| !taken.contains(s)).partition(|&s| self.occupied[s]);
        let command = if busy.is_empty() && free.is_empty() {
            return None;
        } else if busy.is_empty() {
            Command::Add
        } else if free.is_empty() {
            self.rng.weighted(&[(Command::Del, 3), (Command::Check, 1)])
        } else {
            self.rng.weighted(&[(Command::Add, 5), (Command::Del, 3), (Command::Check, 2)])
        };
        let index = self.next_index();
        let mut op = Op { index, command, slot: 0, networks: Vec::new(), fault: None, parallel: Vec::new() };
        let faulty = self.rng.chance(self.fault_rate);
        match command {
            Command::Add => {
                op.slot = *self.rng.pick(&free);
                op.networks = self.rng.pick(NETWORK_SETS).iter().map(|s| s.to_string()).collect();
                if faulty {
                    let fault = self.fault(if in_burst { DELEGATE_FAULTS } else { ADD_FAULTS }, &busy, op.slot);
                    if let Some(nad) = fault.as_ref().and_then(Fault::extra_nad) {
                        let at = self.rng.below(op.networks.len() as u64 + 1) as usize;
                        op.networks.insert(at, nad.to_string());
                    }
                    if matches!(fault, Some(Fault::KillDaemon { .. })) && self.rng.chance(0.7) {
                        let at = self.rng.below(op.networks.len() as u64 + 1) as usize;
                        op.networks.insert(at, SLOW_NAD.to_string());
                    }
                    op.fault = fault;
                }
                // A disconnected ADD is given up by the runtime within its step.
                self.occupied[op.slot] = !matches!(op.fault, Some(Fault::ClientDisconnect { .. }));
            }
            Command::Check => {
                op.slot = *self.rng.pick(&busy);
                if faulty && !in_burst {
                    op.fault = self.fault(CHECK_FAULTS, &busy, op.slot);
                }
                if let Some(Fault::Gc { listed }) = &op.fault {
                    for s in &busy {
                        if !listed.contains(s) {
                            self.occupied[*s] = false;
                        }
                    }
                }
            }
            Command::Del => {
                op.slot = *self.rng.pick(&busy);
                if faulty && !in_burst {
                    op.fault = self.fault(DEL_FAULTS, &busy, op.slot);
                }
                self.occupied[op.slot] = false;
            }
            Command::Burst => unreachable!("not drawn here"),
        }
        Some(op)
    }

    /// A fault of `table`'s enabled kinds (`None` when it has none), as likely as its weight.
    /// `busy` and `slot`: the occupied slots and the operation's (for GC's list).
    fn fault(&mut self, table: &[(FaultKind, u32)], busy: &[usize], slot: usize) -> Option<Fault> {
        let table: Vec<(FaultKind, u32)> =
            table.iter().copied().filter(|(k, _)| self.enabled.iter().any(|e| e == k.name())).collect();
        if table.is_empty() {
            return None;
        }
        let kind = self.rng.weighted(&table);
        let fault = match kind {
            FaultKind::Crash => Fault::DelegateCrash,
            FaultKind::Hang => Fault::DelegateHang,
            FaultKind::Garbage => Fault::DelegateGarbage,
            FaultKind::Error => Fault::DelegateError,
            FaultKind::Down => Fault::ApiDown { millis: self.rng.between(300, 3000) },
            FaultKind::Slow => Fault::ApiSlow { millis: self.rng.between(100, 2000) },
            FaultKind::Err500 => Fault::Api500 { count: self.rng.between(1, 10) as u32 },
            FaultKind::Drop => Fault::WatchDrop,
            FaultKind::Expire => Fault::Watch410,
            FaultKind::Kill => Fault::KillDaemon { after_ms: self.rng.between(0, 200) },
            FaultKind::ReadOnly => Fault::CacheReadOnly,
            FaultKind::Full => Fault::CacheFull,
            FaultKind::Disconnect => {
                Fault::ClientDisconnect { after_ms: self.rng.between(200, 1500), send_del: self.rng.chance(0.5) }
            }
            FaultKind::Grandchild => Fault::Grandchild {
                setsid: self.rng.chance(0.5),
                via: if self.rng.chance(0.5) { Via::Timeout } else { Via::KillDaemon },
            },
            FaultKind::StdoutHolder => Fault::StdoutHolder,
            FaultKind::NonUtf8 => Fault::NonUtf8Del { in_pod_name: self.rng.chance(0.5) },
            FaultKind::Takeover => Fault::SaturationTakeover { extra: self.rng.between(3, 5) as u32 },
            FaultKind::Gc => {
                let mut listed: Vec<usize> =
                    busy.iter().copied().filter(|&s| s == slot || self.rng.chance(0.5)).collect();
                if !listed.contains(&slot) {
                    listed.push(slot);
                }
                listed.sort_unstable();
                Fault::Gc { listed }
            }
            FaultKind::DsDelete => Fault::DaemonsetDelete { delete: self.rng.chance(0.6) },
            FaultKind::SlowStop => {
                Fault::SlowApiAtStop { delete: self.rng.chance(0.5), millis: self.rng.between(3500, 4500) }
            }
        };
        Some(fault)
    }
}

/// What `--replay` reads: the run's settings and the exact operations.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplayFile {
    pub seed: u64,
    pub pods: usize,
    pub fault_rate: f64,
    /// The kinds `--faults` enabled (absent in files of older runs: the classic ones).
    #[serde(default = "classic_kinds")]
    pub faults: Vec<String>,
    pub ops: Vec<Op>,
}

fn classic_kinds() -> Vec<String> {
    CLASSIC_KINDS.iter().map(|k| k.to_string()).collect()
}

#[cfg(test)]
mod tests;
