//! `--output table`: readable text for each command. `--output json` is the serde form of the
//! same structures.

use crate::attachments::{AttachmentReport, NetnsState};
use crate::explain::{Binary, DeviceState, Explanation, NetworkState, Role};
use crate::lint::LintReport;
use std::fmt::Write as _;

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

fn binary_text(b: &Binary) -> &'static str {
    match b {
        Binary::Found { .. } => "found",
        Binary::Missing { .. } => "MISSING",
        Binary::NotChecked => "not checked",
    }
}

/// `multusctl explain` as text.
pub fn explanation(ex: &Explanation) -> String {
    let mut out = String::new();
    let p = &ex.pod;
    let _ = writeln!(out, "Pod {}/{} (uid {}, node {})", p.namespace, p.name, or_dash(&p.uid), or_dash(&p.node));
    let _ = writeln!(out, "Config");
    let _ = writeln!(out, "  daemon config   {}", ex.config.daemon_config);
    let _ = writeln!(out, "  shim config     {}", ex.config.request_config);
    if let Some(s) = &ex.config.settings {
        let _ = writeln!(
            out,
            "  clusterNetwork  {}   defaultNetworks {}   multusNamespace {}",
            or_dash(&s.cluster_network),
            if s.default_networks.is_empty() { "-".to_string() } else { s.default_networks.join(",") },
            s.multus_namespace
        );
        let isolation = if s.namespace_isolation {
            format!("on (global namespaces: {})", s.global_namespaces.join(","))
        } else {
            "off".into()
        };
        let _ = writeln!(out, "  namespaceIsolation {isolation}   binDir {}   confDir {}", s.bin_dir, s.conf_dir);
        if let Some(rc) = &s.runtime_config {
            let _ = writeln!(out, "  runtimeConfig   {rc}");
        }
    }
    let _ = writeln!(
        out,
        "  plugins looked for in {}",
        ex.config.plugin_dirs.as_ref().map(|d| d.join(":")).unwrap_or_else(|| "(not checked: give --bin-dir)".into())
    );
    for note in &ex.config.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    if let Some(e) = &ex.config.error {
        let _ = writeln!(out, "  ERROR: {e}");
    }
    let _ = writeln!(out, "Annotations");
    let _ = writeln!(
        out,
        "  k8s.v1.cni.cncf.io/networks       {}",
        ex.annotations.networks.as_deref().map(or_dash).unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "  v1.multus-cni.io/default-network  {}",
        ex.annotations.default_network.as_deref().map(or_dash).unwrap_or("(none)")
    );
    let _ = writeln!(out);
    let verdict = if ex.fails() { "FAILS" } else { "OK" };
    let _ = writeln!(out, "Result: {verdict} — {}", ex.outcome.summary);
    if let Some(e) = &ex.outcome.error {
        let _ = writeln!(out, "  error the runtime gets: {e}");
    }
    if !ex.networks.is_empty() {
        let _ = writeln!(out);
        let rows: Vec<Vec<String>> = ex
            .networks
            .iter()
            .map(|n| {
                let state = match n.state {
                    NetworkState::Planned => "planned".to_string(),
                    NetworkState::Resolves => "resolves".to_string(),
                    NetworkState::Failed => "FAILED".to_string(),
                    NetworkState::NotChecked => "not checked".to_string(),
                };
                let what = match (&n.reason, n.plugins.is_empty()) {
                    (Some(r), _) => r.clone(),
                    (None, false) => n
                        .plugins
                        .iter()
                        .map(|p| match &p.ipam {
                            Some(i) => format!("{}(ipam {i})", p.plugin_type),
                            None => p.plugin_type.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(" → "),
                    (None, true) => String::new(),
                };
                vec![
                    n.index.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                    n.interface.clone().unwrap_or_else(|| "-".into()),
                    n.role.describe().to_string(),
                    n.reference.clone(),
                    state,
                    what,
                ]
            })
            .collect();
        out.push_str(&table(&["#", "IFNAME", "ROLE", "NETWORK", "STATE", "PLUGINS / REASON"], &rows));
        let _ = writeln!(out, "\nDetails");
        for n in &ex.networks {
            let own_error = n.error.as_ref().filter(|e| Some(*e) != ex.outcome.error.as_ref());
            if n.plugins.is_empty() && own_error.is_none() {
                continue;
            }
            let role = if n.role == Role::Selected { "selected network" } else { n.role.describe() };
            match &n.interface {
                Some(i) => {
                    let _ = writeln!(out, "  {i}: {} ({role})", n.reference);
                }
                None => {
                    let _ = writeln!(out, "  {} ({role})", n.reference);
                }
            }
            if let Some(s) = &n.source {
                let _ = writeln!(out, "    from          {s}");
            }
            if let Some(name) = &n.network_name {
                let _ = writeln!(out, "    CNI network   {name}");
            }
            for p in &n.plugins {
                let mut line = format!("{} [{}]", p.plugin_type, binary_text(&p.binary));
                if let (Some(ipam), Some(b)) = (&p.ipam, &p.ipam_binary) {
                    let _ = write!(line, ", ipam {ipam} [{}]", binary_text(b));
                }
                if !p.capabilities.is_empty() {
                    let _ = write!(line, ", capabilities {}", p.capabilities.join(","));
                }
                if !p.runtime_config.is_empty() {
                    let _ = write!(line, ", runtimeConfig {}", serde_json::Value::Object(p.runtime_config.clone()));
                }
                let _ = writeln!(out, "    plugin        {line}");
            }
            if let Some(args) = &n.cni_args {
                let _ = writeln!(out, "    CNI_ARGS      {args}");
            }
            if !n.capability_args.is_empty() {
                let _ = writeln!(
                    out,
                    "    capability args {} (each plugin gets those it declares)",
                    serde_json::Value::Object(n.capability_args.clone())
                );
            }
            if let Some(d) = &n.device {
                let text = match d.state {
                    DeviceState::Allocated => format!("{} of {}", d.device_id, d.resource_name),
                    DeviceState::NoneLeft => format!("none left of {}", d.resource_name),
                    DeviceState::NotLookedUp => format!("a device of {}: not looked up offline", d.resource_name),
                    DeviceState::Requested => format!("{} (from the selection's deviceID)", d.device_id),
                };
                let _ = writeln!(out, "    device        {text}");
            }
            if let Some(r) = &n.default_route {
                let mut parts = Vec::new();
                match (r.removes_default_v4, r.removes_default_v6) {
                    (true, true) => parts.push("removes the IPv4 and IPv6 default routes".to_string()),
                    (true, false) => parts.push("removes the IPv4 default route".to_string()),
                    (false, true) => parts.push("removes the IPv6 default route".to_string()),
                    (false, false) => {}
                }
                if !r.adds_default_via.is_empty() {
                    parts.push(format!("adds the default route via {}", r.adds_default_via.join(", ")));
                }
                let _ = writeln!(
                    out,
                    "    default-route {} on {}",
                    parts.join(", then "),
                    n.interface.as_deref().unwrap_or("?")
                );
            }
            if let Some(e) = own_error {
                let _ = writeln!(out, "    error         {e}");
            }
        }
    }
    if !ex.problems.is_empty() {
        let _ = writeln!(out, "\nProblems");
        for p in &ex.problems {
            match &p.network {
                Some(n) => {
                    let _ = writeln!(out, "  {:<8} {n}: {}", p.severity.as_str(), p.message);
                }
                None => {
                    let _ = writeln!(out, "  {:<8} {}", p.severity.as_str(), p.message);
                }
            }
        }
    }
    if !ex.events.is_empty() {
        let _ = writeln!(out, "\nEvents and log lines of the daemon");
        for e in &ex.events {
            let _ = writeln!(out, "  {} {}: {}", e.kind, e.reason, e.message);
        }
    }
    if let Some(status) = &ex.current_status {
        let _ = writeln!(out, "\nCurrent network-status (written by the last ADD)");
        let rows: Vec<Vec<String>> = status
            .iter()
            .map(|s| {
                vec![
                    or_dash(&s.interface).to_string(),
                    s.name.clone(),
                    if s.ips.is_empty() { "-".into() } else { s.ips.join(",") },
                    if s.default { "default".into() } else { String::new() },
                ]
            })
            .collect();
        for line in table(&["IFNAME", "NETWORK", "IPS", ""], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// `multusctl lint` as text.
pub fn lint(report: &LintReport) -> String {
    let mut out = String::new();
    if report.findings.is_empty() {
        let _ = writeln!(out, "{} object(s) checked: no findings", report.checked.len());
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| vec![f.severity.as_str().to_string(), f.object.clone(), f.code.to_string(), f.message.clone()])
        .collect();
    out.push_str(&table(&["SEVERITY", "OBJECT", "CHECK", "MESSAGE"], &rows));
    let count = |s| report.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} object(s) checked: {} error(s), {} warning(s), {} info",
        report.checked.len(),
        count(crate::explain::Severity::Error),
        count(crate::explain::Severity::Warning),
        count(crate::explain::Severity::Info)
    );
    out
}

/// A duration in the largest two units (`3d4h`, `5m12s`).
pub fn age(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, name) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.concat()
}

/// `multusctl attachments` as text.
pub fn attachments(report: &AttachmentReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Delegate cache {}", report.cni_dir);
    if report.attachments.is_empty() {
        let _ = writeln!(out, "no attachments");
    } else {
        let rows: Vec<Vec<String>> = report
            .attachments
            .iter()
            .map(|a| {
                let pod = a.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)).unwrap_or_else(|| "?".into());
                let nets = a
                    .networks
                    .iter()
                    .map(|n| {
                        let hot = if n.hotplugged { " (hot-plugged)" } else { "" };
                        match &n.interface {
                            Some(i) => format!("{i}={}{hot}", n.name),
                            None => format!("{}{hot}", n.name),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                let state =
                    if a.orphaned { format!("ORPHANED: {}", a.orphan_reasons.join("; ")) } else { a.state_text() };
                vec![
                    short_id(&a.container_id),
                    pod,
                    a.age_seconds.map(age).unwrap_or_else(|| "?".into()),
                    if nets.is_empty() { "-".into() } else { nets },
                    state,
                ]
            })
            .collect();
        out.push_str(&table(&["CONTAINER", "POD", "AGE", "NETWORKS", "STATE"], &rows));
    }
    if !report.results_without_cache.is_empty() {
        let _ = writeln!(
            out,
            "\nlibcni result caches without a delegate cache (a DEL that never finished: the addresses may still be allocated)"
        );
        let rows: Vec<Vec<String>> = report
            .results_without_cache
            .iter()
            .map(|r| {
                vec![
                    short_id(&r.container_id),
                    r.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)).unwrap_or_else(|| "?".into()),
                    r.network_name.clone(),
                    r.interface.clone(),
                    r.ips.join(","),
                ]
            })
            .collect();
        out.push_str(&table(&["CONTAINER", "POD", "NETWORK", "IFNAME", "IPS"], &rows));
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let orphaned = report.attachments.iter().filter(|a| a.orphaned).count();
    let _ = writeln!(out, "\n{} attachment(s), {orphaned} orphaned", report.attachments.len());
    if report.attachments.iter().any(|a| a.netns_state == NetnsState::Absent) {
        let _ = writeln!(
            out,
            "network namespace gone: the daemon's orphan reconciler DELs these (unless orphanReconcile is off or the runtime's last GC listed them)"
        );
    }
    if report.attachments.iter().any(|a| a.cache_error.is_some()) {
        let _ = writeln!(
            out,
            "delegate cache unreadable: nothing can DEL these; release their IPAM leases and interfaces by hand (docs/troubleshooting.md)"
        );
    }
    out
}

/// The first 12 characters of a container ID, as runtimes print it.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_tables() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(61), "1m1s");
        assert_eq!(age(3_600), "1h");
        assert_eq!(age(90_061), "1d1h");
        assert_eq!(table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]), "A    BB\nxxx  y\n");
    }
}
