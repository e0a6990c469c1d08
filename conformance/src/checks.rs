//! Rust-coded checks and actions that case files name (`check: …`, `action: …`).

use crate::model::{Case, Step};
use crate::runner::{CaseEnv, Runner, StepOutcome};
use crate::sys;
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;

/// Checks a case may name.
pub const KNOWN_CHECKS: &[&str] = &[
    // the attachment's interface exists in its netns with the result's MAC and addresses (§5.23)
    "interface-matches-result",
    // the attachment's interface is gone from its netns (or the netns is gone)
    "no-interface",
    // the scratch host netns holds no veth (no host-side leftover)
    "no-host-veth",
    // the IPAM directory holds no reservation
    "ipam-released",
    // the IPAM directory holds the reservations of `result`
    "ipam-holds",
    // saved results `p0..p<count-1>` have pairwise distinct addresses
    "distinct-addresses",
    // fake-cni delegates recorded calls matching `command`, `count`, `ifname`, `type`, …
    "delegate-calls",
    // the pod's annotation `key` exists / contains / is JSON with entries
    "annotation",
    // Multus' delegate cache file `<cniDir>/<cid>` exists (`exists: true`) or not
    "cache-file",
    // the daemon wrote `00-multus.conf` with the given keys
    "multus-conf",
];

/// Actions a case may name.
pub const KNOWN_ACTIONS: &[&str] = &[
    // `ip` with templated `args` (e.g. `[-n, "{{netns_name}}", link, del, eth0]`)
    "ip",
    // delete the attachment's netns (its path stops existing)
    "delete-netns",
    // create a veth pair inside the attachment's netns named `ifname`
    "make-link",
    // `count` concurrent ADDs (or `command: DEL`) on attachments p0..p<count-1>
    "parallel",
    // thick: stop / start the daemon
    "stop-daemon",
    "start-daemon",
    // thick: delete the attachment's pod from the API server
    "delete-pod",
    // thick: delete the delegate record (calls.jsonl)
    "clear-records",
    "sleep",
];

fn fail(s: impl Into<String>) -> StepOutcome {
    StepOutcome::Fail(s.into())
}

fn with_str(step: &Step, k: &str) -> Option<String> {
    step.with.get(k).and_then(|v| v.as_str().map(String::from))
}

fn links(netns: &str) -> Result<Vec<Value>, String> {
    sys::ip_json(netns, &["addr", "show"]).map(|v| v.as_array().cloned().unwrap_or_default())
}

pub fn run_check(r: &mut Runner, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    let att_name = step.attachment.clone();
    let att = match env.attachments.get(&att_name) {
        Some(a) => a,
        None if matches!(
            name,
            "no-host-veth" | "ipam-released" | "distinct-addresses" | "delegate-calls" | "multus-conf"
        ) =>
        {
            return check_global(r, name, step, env);
        }
        None => return fail(format!("unknown attachment {att_name}")),
    };
    let ns = att.netns.as_ref().map(|n| n.name.clone());
    let ifname = with_str(step, "ifname").map(|i| r.render(env, &i)).unwrap_or_else(|| att.ifname.clone());
    match name {
        "interface-matches-result" => {
            let Some(ns) = ns else { return StepOutcome::Skip("needs a real netns".into()) };
            let Some(res) = with_str(step, "result").and_then(|n| env.saved.get(&n).cloned()) else {
                return fail("no saved result");
            };
            let res = crate::runner::convert(&res, Some("1.0.0"));
            let ifaces = res.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
            let Some((idx, itf)) = ifaces.iter().enumerate().find(|(_, i)| {
                i.get("name").and_then(Value::as_str) == Some(&ifname)
                    && i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
            }) else {
                return fail(format!("§5.23: result lists no sandbox interface {ifname:?}"));
            };
            let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or_default();
            if sandbox != att.netns_path {
                return fail(format!("§5.23: result sandbox {sandbox:?} is not CNI_NETNS {:?}", att.netns_path));
            }
            let all = match links(&ns) {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            let Some(link) = all.iter().find(|l| l.get("ifname").and_then(Value::as_str) == Some(&ifname)) else {
                return fail(format!("§5.23: no interface {ifname:?} in the netns"));
            };
            if let Some(mac) = itf.get("mac").and_then(Value::as_str)
                && !link.get("address").and_then(Value::as_str).is_some_and(|a| a.eq_ignore_ascii_case(mac))
            {
                return fail(format!("§5.23: MAC {mac} in result, {:?} on the link", link.get("address")));
            }
            let have: Vec<String> = link
                .get("addr_info")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| {
                            Some(format!("{}/{}", x.get("local")?.as_str()?, x.get("prefixlen")?.as_u64()?))
                        })
                        .collect()
                })
                .unwrap_or_default();
            for ip in res.get("ips").and_then(Value::as_array).cloned().unwrap_or_default() {
                if ip.get("interface").and_then(Value::as_u64) != Some(idx as u64) {
                    continue;
                }
                let addr = ip.get("address").and_then(Value::as_str).unwrap_or_default();
                let norm = addr
                    .parse::<ipnet::IpNet>()
                    .map(|n| format!("{}/{}", n.addr(), n.prefix_len()))
                    .unwrap_or_default();
                if !have.contains(&norm) {
                    return fail(format!("§5.23: address {addr} of the result is not on {ifname} (has {have:?})"));
                }
            }
            StepOutcome::Ok
        }
        "no-interface" => {
            let Some(ns) = ns else { return StepOutcome::Skip("needs a real netns".into()) };
            if !Path::new(&att.netns_path).exists() {
                return StepOutcome::Ok;
            }
            match links(&ns) {
                Ok(l) if l.iter().any(|x| x.get("ifname").and_then(Value::as_str) == Some(&ifname)) => {
                    fail(format!("interface {ifname} still exists in the netns"))
                }
                Ok(_) => StepOutcome::Ok,
                Err(e) => fail(e),
            }
        }
        "ipam-holds" => {
            let Some(res) = with_str(step, "result").and_then(|n| env.saved.get(&n).cloned()) else {
                return fail("no saved result");
            };
            let dir = match ipam_dir(r, env) {
                Ok(d) => d,
                Err(o) => return o,
            };
            let held = reservations(Path::new(&dir));
            for ip in addresses(&res) {
                if !held.contains(&ip) {
                    return fail(format!("address {ip} is not reserved in {dir} (reserved: {held:?})"));
                }
            }
            StepOutcome::Ok
        }
        _ => check_global(r, name, step, env),
    }
}

fn ipam_dir(r: &Runner, env: &CaseEnv) -> Result<String, StepOutcome> {
    match r.var(env, "ipam_dir").and_then(|v| v.as_str().map(String::from)) {
        Some(d) => Ok(d),
        None => Err(StepOutcome::Skip("target declares no ipam_dir".into())),
    }
}

/// IP addresses (no prefix) of a result of any version.
pub fn addresses(res: &Value) -> Vec<IpAddr> {
    let res = crate::runner::convert(res, Some("1.0.0"));
    res.get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("address")?.as_str()?.parse::<ipnet::IpNet>().ok().map(|n| n.addr()))
                .collect()
        })
        .unwrap_or_default()
}

/// host-local style reservations: files named by an IP address, anywhere under `dir`.
pub fn reservations(dir: &Path) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(reservations(&p));
        } else if let Some(ip) = p.file_name().and_then(|f| f.to_str()).and_then(|f| f.parse::<IpAddr>().ok()) {
            out.push(ip);
        }
    }
    out.sort();
    out
}

fn check_global(r: &mut Runner, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    match name {
        "no-host-veth" => {
            let Some(host) = &env.host else {
                return match &r.thick {
                    Some(t) => t.check(name, step, env, r),
                    None => StepOutcome::Skip("no scratch host netns (not root, or host_netns: false)".into()),
                };
            };
            match sys::ip_json(&host.name, &["link", "show"]) {
                Ok(Value::Array(l)) => {
                    let veths: Vec<String> = l
                        .iter()
                        .filter(|x| x.pointer("/linkinfo/info_kind").and_then(Value::as_str) == Some("veth"))
                        .filter_map(|x| x.get("ifname").and_then(Value::as_str).map(String::from))
                        .collect();
                    if veths.is_empty() {
                        StepOutcome::Ok
                    } else {
                        fail(format!("host-side veth(s) left behind: {veths:?}"))
                    }
                }
                Ok(_) => StepOutcome::Ok,
                Err(e) => fail(e),
            }
        }
        "ipam-released" => {
            let dir = match ipam_dir(r, env) {
                Ok(d) => d,
                Err(o) => return o,
            };
            let held = reservations(Path::new(&dir));
            if held.is_empty() { StepOutcome::Ok } else { fail(format!("IPAM reservations left in {dir}: {held:?}")) }
        }
        "distinct-addresses" => {
            let count = step.with.get("count").and_then(Value::as_u64).unwrap_or(0);
            let mut seen = Vec::new();
            for i in 0..count {
                let Some(res) = env.saved.get(&format!("p{i}")) else {
                    return fail(format!("no result saved for p{i}"));
                };
                for a in addresses(res) {
                    if seen.contains(&a) {
                        return fail(format!("§5.29: address {a} handed out twice"));
                    }
                    seen.push(a);
                }
            }
            StepOutcome::Ok
        }
        _ => match &r.thick {
            Some(t) => t.check(name, step, env, r),
            None => StepOutcome::Skip(format!("check {name} needs a thick target")),
        },
    }
}

pub fn run_action(r: &mut Runner, case: &Case, name: &str, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    match name {
        "ip" => {
            let args: Vec<String> = step
                .with
                .get("args")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str()).map(|x| r.render(env, x)).collect())
                .unwrap_or_default();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            match sys::cmd("ip", &refs) {
                Ok(_) => StepOutcome::Ok,
                Err(e) => fail(e),
            }
        }
        "delete-netns" => match env.attachments.get_mut(&step.attachment).and_then(|a| a.netns.as_mut()) {
            Some(ns) => ns.delete().map(|_| StepOutcome::Ok).unwrap_or_else(fail),
            None => StepOutcome::Skip("needs a real netns".into()),
        },
        "make-link" => {
            let Some(att) = env.attachments.get(&step.attachment) else { return fail("no attachment") };
            let Some(ns) = att.netns.as_ref().map(|n| n.name.clone()) else {
                return StepOutcome::Skip("needs a real netns".into());
            };
            let ifname = with_str(step, "ifname").map(|i| r.render(env, &i)).unwrap_or_else(|| att.ifname.clone());
            match sys::cmd("ip", &["-n", &ns, "link", "add", &ifname, "type", "veth", "peer", "name", "ccpeer0"]) {
                Ok(_) => {
                    let _ = sys::cmd("ip", &["-n", &ns, "link", "set", &ifname, "up"]);
                    StepOutcome::Ok
                }
                Err(e) => fail(e),
            }
        }
        "sleep" => {
            let ms = step.with.get("ms").and_then(Value::as_u64).unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            StepOutcome::Ok
        }
        "parallel" => parallel(r, case, step, env),
        _ => {
            let Some(mut t) = r.thick.take() else {
                return StepOutcome::Skip(format!("action {name} needs a thick target"));
            };
            let o = t.action(name, step, env, r);
            r.thick = Some(t);
            o
        }
    }
}

/// cni.md §5.29: N concurrent ADDs (distinct container ids), then N concurrent DELs.
fn parallel(r: &mut Runner, case: &Case, step: &Step, env: &mut CaseEnv) -> StepOutcome {
    let count = step.with.get("count").and_then(Value::as_u64).unwrap_or(4) as usize;
    let command = with_str(step, "command").unwrap_or_else(|| "ADD".into());
    for i in 0..count {
        if let Err(e) = env.attachment(&format!("p{i}")) {
            return fail(e);
        }
    }
    if let Some(t) = &mut r.thick
        && command == "ADD"
    {
        for i in 0..count {
            if let Err(e) = t.ensure_pod(
                env,
                &format!("p{i}"),
                &crate::model::PodSpec {
                    attachment: format!("p{i}"),
                    namespace: None,
                    annotations: Default::default(),
                },
            ) {
                return fail(e);
            }
        }
    }
    // Build every invocation first (rendering needs the env), then run them concurrently.
    let mut jobs = Vec::new();
    for i in 0..count {
        let mut s: Step = match serde_json::from_value(serde_json::json!({})) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        s.cni = Some(command.clone());
        s.attachment = format!("p{i}");
        s.save_as = (command == "ADD").then(|| format!("p{i}"));
        jobs.push(s);
    }
    let runner: &Runner = r;
    type Prepared = (Vec<u8>, Vec<(String, String)>, Option<String>, Step);
    let prepared: Vec<Prepared> = jobs
        .into_iter()
        .map(|s| {
            let (stdin, ver, vars) = runner.prepare_invocation(case, &s, env);
            (stdin, vars, ver, s)
        })
        .collect();
    let plugin = runner.plugin_path();
    let outs: Vec<crate::expect::Observation> = std::thread::scope(|sc| {
        let hs: Vec<_> = prepared
            .iter()
            .map(|(stdin, vars, _, _)| {
                let plugin = plugin.clone();
                sc.spawn(move || sys::run_process(&plugin, &[], vars, stdin, std::time::Duration::from_secs(60)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut problems = Vec::new();
    for ((_, _, ver, s), obs) in prepared.iter().zip(outs) {
        if command == "ADD" {
            env.added.insert(s.attachment.clone());
        }
        let ctx = crate::expect::JudgeCtx {
            command: &command,
            config_version: ver.as_deref(),
            supported: runner.supported.as_deref(),
            ..Default::default()
        };
        let v = crate::expect::judge(&s.expect, &obs, &ctx);
        if let (Some(n), Some(res)) = (&s.save_as, &v.result) {
            env.saved.insert(n.clone(), res.clone());
        }
        if command == "DEL" && obs.succeeded() {
            env.added.remove(&s.attachment);
        }
        if !v.problems.is_empty() {
            problems.push(format!("{}: {}", s.attachment, v.problems.join("; ")));
        }
    }
    if problems.is_empty() { StepOutcome::Ok } else { fail(format!("§5.29: {}", problems.join(" | "))) }
}
