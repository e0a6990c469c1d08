//! Measurements: sequential, concurrent, storms, growth, the per-pod profile.

use serde_json::Value;
use serde_json::json;
use std::path::Path;
use std::sync::Barrier;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use crate::args::Args;
use crate::host::{Cleanup, drop_netns, netns_many, shim_run};
use crate::node::{Bare, Node, histogram_mean_ms};
use crate::numbers::{Cpu, median, ms, proc_status_kib, round, rss_kib, stats};

pub static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn cid(tag: &str) -> String {
    format!("{tag}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Sequential ADD+DEL, bare and through multus, interleaved (alternating which goes first).
pub fn sequential(args: &Args, node: &Node, cleanup: &Cleanup, shape: &str, nads: usize) -> Value {
    let bare = node.bare(nads);
    let ns = netns_many(cleanup, &format!("s{shape}"), 2);
    let pod = Node::pod_name(shape, 0);
    let (mut b_add, mut b_pair, mut m_add, mut m_pair) = (vec![], vec![], vec![], vec![]);
    for i in 0..args.iterations + 3 {
        let run_bare = || bare.pod(&cid("bare"), &ns[0]).expect("bare pod");
        let run_multus = || node.multus_pod(&args.shim, &cid("thick"), &ns[1], &pod).expect("multus pod");
        let (b, m) = if i % 2 == 0 {
            let b = run_bare();
            (b, run_multus())
        } else {
            let m = run_multus();
            (run_bare(), m)
        };
        // The first rounds warm the page cache and the daemon's caches.
        if i >= 3 {
            b_add.push(b.0);
            b_pair.push(b.1);
            m_add.push(m.0);
            m_pair.push(m.1);
        }
    }
    drop_netns(cleanup, &ns);
    let (ba, bp, ma, mp) = (median(&b_add), median(&b_pair), median(&m_add), median(&m_pair));
    json!({"nads": nads, "bare_add_del": stats(b_pair), "multus_add_del": stats(m_pair), "bare_add": stats(b_add), "multus_add": stats(m_add),
           "add_del_p50_ratio": round(mp / bp), "add_p50_ratio": round(ma / ba), "add_p50_extra_ms": round(ma - ba),
           "add_del_p50_extra_ms": round(mp - bp)})
}

/// `pods` pods through `concurrency` workers; each worker has its own namespace.
pub fn concurrent(
    concurrency: usize,
    pods: usize,
    netns: &[String],
    work: impl Fn(usize, &str) -> Result<(), String> + Sync,
) -> (f64, usize, Vec<String>) {
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for (w, ns) in netns.iter().enumerate().take(concurrency) {
            let (next, errors, work) = (&next, &errors, &work);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= pods {
                        return;
                    }
                    if let Err(e) = work(w, ns) {
                        errors.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let errors = errors.into_inner().unwrap();
    (elapsed, errors.len(), errors)
}

/// Throughput at `concurrency` ways, bare and through multus, two alternating rounds each.
pub fn throughput(args: &Args, node: &Node, cleanup: &Cleanup, shape: &str, nads: usize) -> Value {
    let c = args.concurrency;
    let ns = netns_many(cleanup, &format!("t{shape}"), c);
    let per_round = (args.pods / 2).max(c);
    let bares: Vec<Bare> = (0..c).map(|_| node.bare(nads)).collect();
    let (mut b_time, mut m_time, mut b_err, mut m_err) = (0.0, 0.0, 0, 0);
    let mut first_errors = Vec::new();
    let (mut b_cpu, mut m_cpu) = (None, None);
    for _round in 0..2 {
        let before = Cpu::now(Some(node.pid));
        let (t, e, errs) = concurrent(c, per_round, &ns, |w, ns| bares[w].pod(&cid("tb"), ns).map(|_| ()));
        b_cpu.get_or_insert_with(|| Cpu::now(Some(node.pid)).since(before, per_round));
        (b_time, b_err) = (b_time + t, b_err + e);
        first_errors.extend(errs.into_iter().take(2));
        let before = Cpu::now(Some(node.pid));
        let (t, e, errs) = concurrent(c, per_round, &ns, |w, ns| {
            node.multus_pod(&args.shim, &cid("tm"), ns, &Node::pod_name(shape, w)).map(|_| ())
        });
        m_cpu.get_or_insert_with(|| Cpu::now(Some(node.pid)).since(before, per_round));
        (m_time, m_err) = (m_time + t, m_err + e);
        first_errors.extend(errs.into_iter().take(2));
    }
    drop_netns(cleanup, &ns);
    let pods = (per_round * 2) as f64;
    let (b, m) = (pods / b_time, pods / m_time);
    json!({"nads": nads, "concurrency": c, "pods_per_side": pods, "bare_pods_per_s": round(b), "multus_pods_per_s": round(m),
           "ratio": round(m / b), "bare_errors": b_err, "multus_errors": m_err, "first_errors": first_errors,
           "cpu_per_pod_bare": b_cpu, "cpu_per_pod_multus": m_cpu})
}

/// `n` ADDs at once, then `n` DELs at once; errors and the daemon's peak RSS (sampled).
pub fn storm(args: &Args, node: &Node, cleanup: &Cleanup, n: usize) -> Value {
    let ns = netns_many(cleanup, &format!("x{n}x"), n);
    let cids: Vec<String> = (0..n).map(|_| cid("storm")).collect();
    let peak = AtomicU64::new(rss_kib(node.pid));
    let done = AtomicBool::new(false);
    let phase = |cmd: &'static str| -> (f64, usize, Vec<String>) {
        let barrier = Barrier::new(n);
        let errors = Mutex::new(Vec::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            for i in 0..n {
                let (barrier, errors, ns, cid) = (&barrier, &errors, &ns[i], &cids[i]);
                s.spawn(move || {
                    barrier.wait();
                    let (code, out) =
                        shim_run(&args.shim, &node.env(cmd, cid, ns, &Node::pod_name("plain", i)), &node.stdin);
                    if code != 0 {
                        errors.lock().unwrap().push(out);
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap();
        (started.elapsed().as_secs_f64(), errors.len(), errors.into_iter().take(3).collect())
    };
    let ((add_s, add_err, add_first), (del_s, del_err_exit, _)) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(node.pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let add = phase("ADD");
        let del = phase("DEL");
        done.store(true, Ordering::SeqCst);
        (add, del)
    });
    // DEL always exits 0 (as Go's shim): a DEL that failed leaves its delegate cache behind.
    let cni_dir = node.base.path("cni");
    let del_left = cids.iter().filter(|c| multus::cache::cache_path(&cni_dir, c).exists()).count();
    let right_after = rss_kib(node.pid);
    // What the burst took should go back once the daemon is idle.
    std::thread::sleep(Duration::from_secs(3));
    let idle_after = rss_kib(node.pid);
    drop_netns(cleanup, &ns);
    json!({"pods": n, "add_errors": add_err, "del_errors": del_err_exit + del_left, "add_s": round(add_s), "del_s": round(del_s),
           "add_pods_per_s": round(n as f64 / add_s), "first_errors": add_first,
           "daemon_peak_rss_kib": peak.load(Ordering::SeqCst), "daemon_hwm_kib": proc_status_kib(node.pid, "VmHWM:"),
           "daemon_rss_right_after_kib": right_after, "daemon_rss_idle_after_kib": idle_after})
}

/// RSS before and after `cycles` sequential ADD/DEL cycles of a cluster-network-only pod.
pub fn growth(args: &Args, node: &Node, cleanup: &Cleanup) -> Value {
    let ns = netns_many(cleanup, "g", 1);
    let pod = Node::pod_name("plain", 0);
    let before = rss_kib(node.pid);
    let started = Instant::now();
    let mut errors = 0;
    for _ in 0..args.cycles {
        if node.multus_pod(&args.shim, &cid("cycle"), &ns[0], &pod).is_err() {
            errors += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = rss_kib(node.pid);
    drop_netns(cleanup, &ns);
    let growth = after as i64 - before as i64;
    json!({"cycles": args.cycles, "errors": errors, "rss_before_kib": before, "rss_after_kib": after, "growth_kib": growth,
           "growth_kib_per_1000": round(growth as f64 * 1000.0 / args.cycles.max(1) as f64), "elapsed_s": round(elapsed)})
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Where the fixed per-pod cost goes (cluster network only, sequential). Means throughout, so
/// that the bench's timings and the daemon's histograms (sum/count) subtract cleanly.
pub fn profile(args: &Args, node: &Node, cleanup: &Cleanup, shim_exec_ms: f64) -> Value {
    let ns = netns_many(cleanup, "p", 2);
    let pod = Node::pod_name("plain", 0);
    let socket = node.socket();
    let bare = node.bare(0);
    let before = node.metrics();
    let (mut shim_add, mut shim_del, mut direct_add, mut direct_del, mut readyz, mut bare_add, mut bare_del) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..args.iterations * 2 {
        let t = Instant::now();
        let _ = multus_api::client::post(&socket, multus_api::path::READYZ, b"null", Some(Duration::from_secs(5)));
        readyz.push(ms(t.elapsed()));
        let (add, pair) = node.multus_pod(&args.shim, &cid("ps"), &ns[0], &pod).expect("profile pod");
        shim_add.push(add);
        shim_del.push(pair - add);
        let c = cid("pd");
        direct_add.push(node.direct("ADD", &c, &ns[0], &pod).expect("direct ADD"));
        direct_del.push(node.direct("DEL", &c, &ns[0], &pod).expect("direct DEL"));
        let (add, pair) = bare.pod(&cid("pb"), &ns[1]).expect("bare pod");
        bare_add.push(add);
        bare_del.push(pair - add);
    }
    let after = node.metrics();
    drop_netns(cleanup, &ns);
    let hist = |name: &str, filter: &[&str]| histogram_mean_ms(&before, &after, name, filter);
    let command =
        |verb: &str| hist("multus_command_duration_seconds", &["outcome=\"success\"", &format!("command=\"{verb}\"")]);
    let delegate = |verb: &str| hist("multus_delegate_duration_seconds", &[&format!("verb=\"{verb}\"")]);
    let status = hist("multus_apiserver_write_duration_seconds", &["kind=\"network_status\""]);
    let (sa, da, ba) = (mean(&shim_add), mean(&direct_add), mean(&bare_add));
    let (sd, dd, bd) = (mean(&shim_del), mean(&direct_del), mean(&bare_del));
    let (ca, cd, ga, gd) = (command("ADD"), command("DEL"), delegate("ADD"), delegate("DEL"));
    json!({
        "rounds": args.iterations * 2,
        "add_mean_ms": {"via_shim": round(sa), "direct_post": round(da), "daemon_command": ca, "delegate_in_daemon": ga, "bare": round(ba)},
        "del_mean_ms": {"via_shim": round(sd), "direct_post": round(dd), "daemon_command": cd, "delegate_in_daemon": gd, "bare": round(bd)},
        "add_breakdown_ms": {
            "shim_process_and_gate": round(sa - da),
            "shim_exec_version_alone": round(shim_exec_ms),
            "readyz_round_trip": round(mean(&readyz)),
            "socket_http_parse_handoff": round(da - ca),
            "daemon_besides_delegates_and_status": round(ca - ga - status),
            "status_write": status,
            "delegate_in_daemon_minus_bare": round(ga - ba),
            "total_over_bare": round(sa - ba),
        },
        "del_breakdown_ms": {
            "shim_process": round(sd - dd),
            "socket_http_parse_handoff": round(dd - cd),
            "daemon_besides_delegates": round(cd - gd),
            "delegate_in_daemon_minus_bare": round(gd - bd),
            "total_over_bare": round(sd - bd),
        },
    })
}

/// `--compare-shim`: ADD+DEL of a cluster-network-only pod through the shim and through the
/// other shim, interleaved with the bare delegates, against the same daemon.
pub fn compare_shims(args: &Args, other: &Path, node: &Node, cleanup: &Cleanup) -> Value {
    let ns = netns_many(cleanup, "c", 3);
    let pod = Node::pod_name("plain", 0);
    let bare = node.bare(0);
    let (mut a, mut b, mut z) = ((vec![], vec![]), (vec![], vec![]), (vec![], vec![]));
    for i in 0..args.iterations * 2 + 3 {
        let ra = node.multus_pod(&args.shim, &cid("ca"), &ns[0], &pod).expect("shim");
        let rb = node.multus_pod(other, &cid("cb"), &ns[1], &pod).expect("other shim");
        let rz = bare.pod(&cid("cz"), &ns[2]).expect("bare");
        if i >= 3 {
            for (v, r) in [(&mut a, ra), (&mut b, rb), (&mut z, rz)] {
                v.0.push(r.0);
                v.1.push(r.1);
            }
        }
    }
    drop_netns(cleanup, &ns);
    let side = |v: &(Vec<f64>, Vec<f64>)| {
        json!({"add_p50_ms": round(median(&v.0)), "add_mean_ms": round(mean(&v.0)),
               "add_del_p50_ms": round(median(&v.1)), "add_del_mean_ms": round(mean(&v.1))})
    };
    json!({"shim": args.shim, "other_shim": other, "rounds": args.iterations * 2,
           "this_shim": side(&a), "other": side(&b), "bare": side(&z),
           "add_del_p50_ratio_this": round(median(&a.1) / median(&z.1)), "add_del_p50_ratio_other": round(median(&b.1) / median(&z.1))})
}

/// ADD and ADD+DEL of pods with several NADs on the sequential daemon and on one with
/// `parallelDelegates`.
pub fn parallel_delegates(args: &Args, seq: &Node, par: &Node, cleanup: &Cleanup) -> Value {
    let mut out = serde_json::Map::new();
    for (shape, nads) in [("nad2", 2), ("nad4", 4)] {
        let ns = netns_many(cleanup, &format!("q{shape}"), 3);
        let bare = seq.bare(nads);
        let pod = Node::pod_name(shape, 0);
        let (mut s_add, mut p_add, mut s_pair, mut p_pair, mut b_add) = (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..args.iterations + 2 {
            let s = seq.multus_pod(&args.shim, &cid("qs"), &ns[0], &pod).expect("sequential daemon");
            let p = par.multus_pod(&args.shim, &cid("qp"), &ns[1], &pod).expect("parallel daemon");
            let b = bare.pod(&cid("qb"), &ns[2]).expect("bare");
            if i >= 2 {
                s_add.push(s.0);
                s_pair.push(s.1);
                p_add.push(p.0);
                p_pair.push(p.1);
                b_add.push(b.0);
            }
        }
        drop_netns(cleanup, &ns);
        let (sa, pa) = (median(&s_add), median(&p_add));
        out.insert(
            shape.into(),
            json!({"nads": nads, "sequential_add_p50_ms": round(sa), "parallel_add_p50_ms": round(pa),
                   "bare_sequential_add_p50_ms": round(median(&b_add)),
                   "sequential_add_del_p50_ms": round(median(&s_pair)), "parallel_add_del_p50_ms": round(median(&p_pair)),
                   "add_p50_ratio": round(pa / sa)}),
        );
    }
    Value::Object(out)
}
