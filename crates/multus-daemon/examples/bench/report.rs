//! The report's table.

use serde_json::Value;
use serde_json::json;

use crate::numbers::mb;

/// The memory-bounded section's rows.
pub fn memory_rows(m: &Value, rows: &mut Vec<Value>) {
    let rss = |p: &str| mb(f(m, &format!("{p}/rss_kib")) as u64);
    let peak = |p: &str| mb(f(m, &format!("{p}/hwm_kib")) as u64);
    let na = || "—".to_string();
    rows.push(row(
        "daemon RSS after start, 110 pods, no other NADs",
        na(),
        format!("{} (peak {})", rss("/no_nads"), peak("/no_nads")),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row(
        "daemon RSS after start, + 10,000 NADs of 1 KB in 1,000 namespaces",
        na(),
        format!("{} (peak {})", rss("/nads_10k_1kb"), peak("/nads_10k_1kb")),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row(
        "daemon ready, 10,000 NADs in the cluster",
        na(),
        format!("{:.0} ms", f(m, "/nads_10k_1kb/ready_ms")),
        na(),
        "≤ 1 s",
    ));
    rows.push(row(
        "daemon RSS after start, + 40 NADs of 1 MB in one namespace",
        na(),
        format!("{} (peak {})", rss("/nads_40_1mb"), peak("/nads_40_1mb")),
        na(),
        "≤ 20 MB",
    ));
    let u = &m["pod_using_4_big_nads"];
    rows.push(row(
        "ADD+DEL of a pod using 4 of the 1 MB NADs",
        na(),
        format!(
            "{}; RSS {} before, {} right after, {} 3 s later (peak {})",
            if u["ok"].as_bool() == Some(true) { "ok".to_string() } else { format!("failed: {}", u["error"]) },
            mb(f(u, "/rss_before_kib") as u64),
            mb(f(u, "/rss_right_after_kib") as u64),
            mb(f(u, "/rss_idle_after_kib") as u64),
            mb(f(u, "/hwm_kib") as u64)
        ),
        na(),
        "≤ 20 MB",
    ));
    rows.push(row("daemon RSS after deleting the 40 NADs of 1 MB", na(), rss("/nads_40_1mb_deleted"), na(), "≤ 20 MB"));
    let s = &m["storm"];
    rows.push(row(
        &format!("{}-way storm on that node (ADD then DEL), then idle", f(s, "/pods")),
        na(),
        format!(
            "{} errors; RSS peak {}, {} right after, {} 3 s later",
            f(s, "/add_errors") + f(s, "/del_errors"),
            mb(f(s, "/daemon_peak_rss_kib") as u64),
            mb(f(s, "/daemon_rss_right_after_kib") as u64),
            mb(f(s, "/daemon_rss_idle_after_kib") as u64)
        ),
        na(),
        "≤ 20 MB",
    ));
    for (key, label) in [
        ("nad2_first_add", "ADD, +2 NADs, first use on the node"),
        ("nad2_next_add", "ADD, +2 NADs, again"),
        ("nad2_first_del", "DEL, +2 NADs"),
        ("plain_first_add", "ADD, cluster network only"),
        ("plain_first_del", "DEL, cluster network only"),
    ] {
        let r = &m["requests"][key];
        rows.push(row(
            &format!("API requests: {label}"),
            na(),
            format!(
                "{} ({} reads, {} status writes, {} events)",
                f(r, "/total"),
                f(r, "/reads"),
                f(r, "/status_writes"),
                f(r, "/events")
            ),
            na(),
            "no more than before",
        ));
    }
}

// Report

pub fn row(measure: &str, bare: String, multus: String, ratio: String, target: &str) -> Value {
    json!({"measure": measure, "bare": bare, "multus": multus, "ratio": ratio, "target": target})
}

pub fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The throughput rows (both shapes).
pub fn throughput_rows(r: &Value, rows: &mut Vec<Value>) {
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let t = &r["throughput"][shape];
        rows.push(row(
            &format!("{}-way throughput, {label}", f(t, "/concurrency")),
            format!("{:.1} pods/s", f(t, "/bare_pods_per_s")),
            format!("{:.1} pods/s", f(t, "/multus_pods_per_s")),
            format!("{:.2}×", f(t, "/ratio")),
            "≥ 0.9×",
        ));
        rows.push(row(
            &format!("CPU per pod at {}-way, {label}", f(t, "/concurrency")),
            format!("{:.1} ms", f(t, "/cpu_per_pod_bare/total_ms")),
            format!("{:.1} ms", f(t, "/cpu_per_pod_multus/total_ms")),
            format!("{:.2}×", f(t, "/cpu_per_pod_multus/total_ms") / f(t, "/cpu_per_pod_bare/total_ms")),
            "—",
        ));
    }
}

pub fn table(r: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    if r["sequential"].is_null() && !r["memory_bounded"].is_null() {
        // `--only memory`
        memory_rows(&r["memory_bounded"], &mut rows);
        return rows;
    }
    if r["sequential"].is_null() && !r["throughput"].is_null() {
        // `--only throughput`
        throughput_rows(r, &mut rows);
        return rows;
    }
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let s = &r["sequential"][shape];
        rows.push(row(
            &format!("ADD+DEL, {label} (median)"),
            format!("{:.1} ms", f(s, "/bare_add_del/p50_ms")),
            format!("{:.1} ms", f(s, "/multus_add_del/p50_ms")),
            format!("{:.2}×", f(s, "/add_del_p50_ratio")),
            "≤ 1.10×",
        ));
    }
    for (shape, label) in [("plain", "cluster network only"), ("nad2", "+2 NADs")] {
        let s = &r["sequential"][shape];
        rows.push(row(
            &format!("ADD only, {label} (median)"),
            format!("{:.1} ms", f(s, "/bare_add/p50_ms")),
            format!("{:.1} ms", f(s, "/multus_add/p50_ms")),
            format!("{:.2}× (+{:.1} ms)", f(s, "/add_p50_ratio"), f(s, "/add_p50_extra_ms")),
            "—",
        ));
    }
    throughput_rows(r, &mut rows);
    if let Some(storms) = r["storms"].as_array() {
        for s in storms {
            rows.push(row(
                &format!("{}-way storm (ADD then DEL)", f(s, "/pods")),
                "—".into(),
                format!(
                    "{} errors, daemon peak {}, {} 3 s later, ADDs in {:.1} s",
                    f(s, "/add_errors") + f(s, "/del_errors"),
                    mb(f(s, "/daemon_peak_rss_kib") as u64),
                    mb(f(s, "/daemon_rss_idle_after_kib") as u64),
                    f(s, "/add_s")
                ),
                "—".into(),
                "0 errors, ≤ 20 MB",
            ));
        }
    }
    let c = &r["shim_comparison"];
    if !c.is_null() {
        rows.push(row(
            "ADD+DEL, cluster network only, this shim vs --compare-shim (median)",
            format!("{:.1} ms", f(c, "/bare/add_del_p50_ms")),
            format!("{:.1} ms this, {:.1} ms other", f(c, "/this_shim/add_del_p50_ms"), f(c, "/other/add_del_p50_ms")),
            format!("{:.2}× this, {:.2}× other", f(c, "/add_del_p50_ratio_this"), f(c, "/add_del_p50_ratio_other")),
            "—",
        ));
    }
    rows.push(row("daemon idle RSS", "—".into(), mb(f(r, "/daemon/idle_rss_kib") as u64), "—".into(), "≤ 10 MB"));
    let g = &r["growth"];
    rows.push(row(
        &format!("daemon RSS growth over {} ADD/DEL cycles", f(g, "/cycles")),
        "—".into(),
        format!(
            "{:+} KiB ({:+.0} KiB per 1,000; {} errors)",
            f(g, "/growth_kib"),
            f(g, "/growth_kib_per_1000"),
            f(g, "/errors")
        ),
        "—".into(),
        "≤ 1 MB / 1,000",
    ));
    rows.push(row(
        "shim exec (VERSION, mean)",
        "—".into(),
        format!("{:.2} ms", f(r, "/shim/exec/mean_ms")),
        "—".into(),
        "≤ 2 ms",
    ));
    rows.push(row("shim peak RSS", "—".into(), mb(f(r, "/shim/peak_rss_kib") as u64), "—".into(), "≤ 3 MB"));
    if !r["memory_bounded"].is_null() {
        memory_rows(&r["memory_bounded"], &mut rows);
    }
    for shape in ["nad2", "nad4"] {
        let p = &r["parallel_delegates"][shape];
        if p.is_null() {
            continue;
        }
        rows.push(row(
            &format!("ADD with +{} NADs: parallelDelegates vs sequential (median)", f(p, "/nads")),
            format!("{:.1} ms (sequential daemon)", f(p, "/sequential_add_p50_ms")),
            format!("{:.1} ms (parallel daemon)", f(p, "/parallel_add_p50_ms")),
            format!("{:.2}×", f(p, "/add_p50_ratio")),
            "—",
        ));
    }
    rows
}
