//! The checks every kind of target shares (`check: …` in case files): interfaces against
//! results, IPAM reservations, host-side leftovers, fake-cni's recorded calls, the runtime's
//! result cache. A check that belongs to one kind of target (the thick one's API objects) is
//! handed back as `Checked::ForDriver`.

use crate::case_env::{Attachment, CaseEnv, StepOutcome};
use crate::invocation::{Scope, convert};
use crate::model::Step;
use crate::records::{pointer_matches, recorded_calls, short_call};
use crate::sys::{self, SysError};
use crate::template::merge_patch;
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;

/// A shared check's verdict, or the driver's turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Done(StepOutcome),
    /// Not a shared check (or not here): ask the target's driver; `otherwise` is why it is
    /// skipped when the driver has no such check.
    ForDriver {
        otherwise: String,
    },
}

impl From<StepOutcome> for Checked {
    fn from(o: StepOutcome) -> Checked {
        Checked::Done(o)
    }
}

fn with_str(step: &Step, k: &str) -> Option<String> {
    step.with.get(k).and_then(|v| v.as_str().map(String::from))
}

fn links(netns: &str) -> Result<Vec<Value>, SysError> {
    sys::ip_json(netns, &["addr", "show"]).map(|v| v.as_array().cloned().unwrap_or_default())
}

/// Run the shared check `name` of `step`.
pub fn run(r: &Scope<'_>, name: &str, step: &Step, env: &CaseEnv) -> Checked {
    match name {
        "delegate-calls" => return delegate_calls(r, step, env).into(),
        "result-cache" => return result_cache(r, step, env).into(),
        _ => {}
    }
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
        None => return StepOutcome::fail(format!("unknown attachment {att_name}")).into(),
    };
    match name {
        "interface-matches-result" => interface_matches_result(r, step, env, att).into(),
        "no-interface" => no_interface(r, step, env, att).into(),
        "ipam-holds" => ipam_holds(r, step, env).into(),
        _ => check_global(r, name, step, env),
    }
}

/// The step's interface name (`with.ifname`, templated) or the attachment's.
fn ifname_of(r: &Scope<'_>, step: &Step, env: &CaseEnv, att: &Attachment) -> String {
    with_str(step, "ifname").map(|i| r.render(env, &i)).unwrap_or_else(|| att.ifname.clone())
}

/// §5.23: the attachment's interface exists in its netns with the result's MAC and addresses.
fn interface_matches_result(r: &Scope<'_>, step: &Step, env: &CaseEnv, att: &Attachment) -> StepOutcome {
    let ns = att.netns.as_ref().map(|n| n.name.clone());
    let ifname = ifname_of(r, step, env, att);
    let Some(ns) = ns else { return StepOutcome::Skip("needs a real netns".into()) };
    let Some(res) = with_str(step, "result").and_then(|n| env.saved.get(&n).cloned()) else {
        return StepOutcome::fail("no saved result");
    };
    let res = convert(&res, Some("1.0.0"));
    let ifaces = res.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some((idx, itf)) = ifaces.iter().enumerate().find(|(_, i)| {
        i.get("name").and_then(Value::as_str) == Some(&ifname)
            && i.get("sandbox").and_then(Value::as_str).is_some_and(|s| !s.is_empty())
    }) else {
        return StepOutcome::fail(format!("§5.23: result lists no sandbox interface {ifname:?}"));
    };
    let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or_default();
    if sandbox != att.netns_path {
        return StepOutcome::fail(format!("§5.23: result sandbox {sandbox:?} is not CNI_NETNS {:?}", att.netns_path));
    }
    let all = match links(&ns) {
        Ok(l) => l,
        Err(e) => return StepOutcome::fail(e.to_string()),
    };
    let Some(link) = all.iter().find(|l| l.get("ifname").and_then(Value::as_str) == Some(&ifname)) else {
        return StepOutcome::fail(format!("§5.23: no interface {ifname:?} in the netns"));
    };
    if let Some(mac) = itf.get("mac").and_then(Value::as_str)
        && !link.get("address").and_then(Value::as_str).is_some_and(|a| a.eq_ignore_ascii_case(mac))
    {
        return StepOutcome::fail(format!("§5.23: MAC {mac} in result, {:?} on the link", link.get("address")));
    }
    let have: Vec<String> = link
        .get("addr_info")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some(format!("{}/{}", x.get("local")?.as_str()?, x.get("prefixlen")?.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    for ip in res.get("ips").and_then(Value::as_array).cloned().unwrap_or_default() {
        if ip.get("interface").and_then(Value::as_u64) != Some(idx as u64) {
            continue;
        }
        let addr = ip.get("address").and_then(Value::as_str).unwrap_or_default();
        let norm = addr.parse::<ipnet::IpNet>().map(|n| format!("{}/{}", n.addr(), n.prefix_len())).unwrap_or_default();
        if !have.contains(&norm) {
            return StepOutcome::fail(format!("§5.23: address {addr} of the result is not on {ifname} (has {have:?})"));
        }
    }
    StepOutcome::Ok
}

/// The attachment's interface is gone from its netns (or the netns is gone).
fn no_interface(r: &Scope<'_>, step: &Step, env: &CaseEnv, att: &Attachment) -> StepOutcome {
    let ns = att.netns.as_ref().map(|n| n.name.clone());
    let ifname = ifname_of(r, step, env, att);
    let Some(ns) = ns else { return StepOutcome::Skip("needs a real netns".into()) };
    if !Path::new(&att.netns_path).exists() {
        return StepOutcome::Ok;
    }
    match links(&ns) {
        Ok(l) if l.iter().any(|x| x.get("ifname").and_then(Value::as_str) == Some(&ifname)) => {
            StepOutcome::fail(format!("interface {ifname} still exists in the netns"))
        }
        Ok(_) => StepOutcome::Ok,
        Err(e) => StepOutcome::fail(e.to_string()),
    }
}

/// The IPAM directory holds the reservations of the saved result `with.result`.
fn ipam_holds(r: &Scope<'_>, step: &Step, env: &CaseEnv) -> StepOutcome {
    let Some(res) = with_str(step, "result").and_then(|n| env.saved.get(&n).cloned()) else {
        return StepOutcome::fail("no saved result");
    };
    let dir = match ipam_dir(r, env) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let held = reservations(Path::new(&dir));
    for ip in addresses(&res) {
        if !held.contains(&ip) {
            return StepOutcome::fail(format!("address {ip} is not reserved in {dir} (reserved: {held:?})"));
        }
    }
    StepOutcome::Ok
}

fn ipam_dir(r: &Scope<'_>, env: &CaseEnv) -> Result<String, StepOutcome> {
    match r.var(env, "ipam_dir").and_then(|v| v.as_str().map(String::from)) {
        Some(d) => Ok(d),
        None => Err(StepOutcome::Skip("target declares no ipam_dir".into())),
    }
}

/// IP addresses (no prefix) of a result of any version.
pub fn addresses(res: &Value) -> Vec<IpAddr> {
    let res = convert(res, Some("1.0.0"));
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

fn check_global(r: &Scope<'_>, name: &str, step: &Step, env: &CaseEnv) -> Checked {
    match name {
        "no-host-veth" => match &env.host {
            Some(host) => no_host_veth(r, env, &host.name).into(),
            None => Checked::ForDriver { otherwise: "no scratch host netns (not root, or host_netns: false)".into() },
        },
        "ipam-released" => ipam_released(r, env).into(),
        "distinct-addresses" => distinct_addresses(step, env).into(),
        _ => Checked::ForDriver { otherwise: format!("check {name} needs a thick target") },
    }
}

/// The scratch host netns holds no veth beyond its baseline (no host-side leftover).
fn no_host_veth(r: &Scope<'_>, env: &CaseEnv, host: &str) -> StepOutcome {
    if !r.target.prev_plugins.is_empty() {
        return StepOutcome::Skip("host veths belong to the plugin chained before the target".into());
    }
    // A deleted netns is torn down asynchronously by the kernel (its veths with it):
    // give leftovers a moment to go before calling them leaks.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let left: Vec<String> = sys::veths(host).into_iter().filter(|v| !env.host_baseline.contains(v)).collect();
        if left.is_empty() {
            return StepOutcome::Ok;
        }
        if std::time::Instant::now() > deadline {
            return StepOutcome::fail(format!("host-side veth(s) left behind: {left:?}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The IPAM directory holds no reservation.
fn ipam_released(r: &Scope<'_>, env: &CaseEnv) -> StepOutcome {
    let dir = match ipam_dir(r, env) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let held = reservations(Path::new(&dir));
    if held.is_empty() {
        StepOutcome::Ok
    } else {
        StepOutcome::fail(format!("IPAM reservations left in {dir}: {held:?}"))
    }
}

/// §5.29: saved results `p0..p<count-1>` have pairwise distinct addresses.
fn distinct_addresses(step: &Step, env: &CaseEnv) -> StepOutcome {
    let count = step.with.get("count").and_then(Value::as_u64).unwrap_or(0);
    let mut seen = Vec::new();
    for i in 0..count {
        let Some(res) = env.saved.get(&format!("p{i}")) else {
            return StepOutcome::fail(format!("no result saved for p{i}"));
        };
        for a in addresses(res) {
            if seen.contains(&a) {
                return StepOutcome::fail(format!("§5.29: address {a} handed out twice"));
            }
            seen.push(a);
        }
    }
    StepOutcome::Ok
}

/// The recorded calls of the attachment's container (or, for GC and STATUS, of none) that
/// match the step's `command`, `network` and `match` {JSON pointer: value}.
fn matching_calls<'a>(r: &Scope<'_>, step: &Step, env: &CaseEnv, cid: &str, all: &'a [Value]) -> Vec<&'a Value> {
    let ws = |k: &str| step.with.get(k).and_then(Value::as_str).map(|s| r.render(env, s));
    let command = ws("command");
    let filters: Vec<(String, Value)> = step
        .with
        .get("match")
        .and_then(|m| m.as_object().cloned())
        .map(|m| m.into_iter().map(|(k, v)| (k, r.render_json(env, &v))).collect())
        .unwrap_or_default();
    all.iter()
        .filter(|c| {
            let id = c.get("containerId").and_then(Value::as_str);
            id == Some(cid) || (id == Some("") && command.as_deref().is_some_and(|x| x == "GC" || x == "STATUS"))
        })
        .filter(|c| command.as_ref().is_none_or(|x| c.get("command").and_then(Value::as_str) == Some(x)))
        .filter(|c| ws("network").is_none_or(|x| c.get("name").and_then(Value::as_str) == Some(&x)))
        .filter(|c| filters.iter().all(|(p, v)| pointer_matches(c, p, v)))
        .collect()
}

/// fake-cni recorded calls of the attachment's container match the step's `with`.
fn delegate_calls(r: &Scope<'_>, step: &Step, env: &CaseEnv) -> StepOutcome {
    let w = |k: &str| step.with.get(k).cloned();
    let ws = |k: &str| step.with.get(k).and_then(Value::as_str).map(|s| r.render(env, s));
    let Some(att) = env.attachments.get(&step.attachment) else { return StepOutcome::fail("no attachment") };
    let Some(dir) = r.var(env, "records").and_then(|v| v.as_str().map(String::from)) else {
        return StepOutcome::Skip("target records no calls".into());
    };
    let all = recorded_calls(Path::new(&dir));
    let calls = matching_calls(r, step, env, &att.cid, &all);
    let seen = || -> Vec<String> {
        all.iter().filter(|c| c.get("containerId").and_then(Value::as_str) == Some(&att.cid)).map(short_call).collect()
    };
    if let Some(n) = w("count").and_then(|v| v.as_u64())
        && calls.len() as u64 != n
    {
        return StepOutcome::fail(format!(
            "expected {n} matching call(s), saw {} (all calls of this container: {:?})",
            calls.len(),
            seen()
        ));
    }
    if let Some(ifname) = ws("ifname")
        && let Some(c) = calls.iter().find(|c| c.get("ifname").and_then(Value::as_str) != Some(&ifname))
    {
        return StepOutcome::fail(format!("plugin got CNI_IFNAME {:?}, expected {ifname:?}", c.get("ifname")));
    }
    for needle in step.with.get("args_contains").and_then(Value::as_array).cloned().unwrap_or_default() {
        let needle = r.render(env, needle.as_str().unwrap_or_default());
        if let Some(c) =
            calls.iter().find(|c| !c.get("args").and_then(Value::as_str).unwrap_or_default().contains(&needle))
        {
            return StepOutcome::fail(format!("CNI_ARGS {:?} lacks {needle:?}", c.get("args")));
        }
    }
    if let Some(rc) = w("runtime_config") {
        let rc = r.render_json(env, &rc);
        for c in &calls {
            let got = c.pointer("/stdin/runtimeConfig").cloned().unwrap_or(Value::Null);
            let mut merged = got.clone();
            merge_patch(&mut merged, &rc);
            if merged != got {
                return StepOutcome::fail(format!("runtimeConfig {got} does not contain {rc}"));
            }
        }
    }
    if let Some(Value::Object(expect)) = w("expect") {
        if calls.is_empty() {
            return StepOutcome::fail(format!(
                "no matching call to hold {} (calls of this container: {:?})",
                Value::Object(expect),
                seen()
            ));
        }
        for (pointer, want) in expect {
            let want = r.render_json(env, &want);
            if let Some(c) = calls.iter().find(|c| !pointer_matches(c, &pointer, &want)) {
                return StepOutcome::fail(format!(
                    "{}: {pointer} is {}, expected {want}",
                    short_call(c),
                    c.pointer(&pointer).map_or_else(|| "absent".to_string(), Value::to_string)
                ));
            }
        }
    }
    if let Some(Value::Array(order)) = w("order") {
        let key = ws("order_key").unwrap_or_else(|| "/stdin/x-plugin".into());
        let got: Vec<Value> = calls.iter().map(|c| c.pointer(&key).cloned().unwrap_or(Value::Null)).collect();
        if got != order {
            return StepOutcome::fail(format!("calls in order {got:?} ({key}), expected {order:?}"));
        }
    }
    StepOutcome::Ok
}

/// cni.md §5.59: libcni's result cache file of the case's network and attachment.
fn result_cache(r: &Scope<'_>, step: &Step, env: &CaseEnv) -> StepOutcome {
    let v = |k: &str| r.var(env, k).and_then(|v| v.as_str().map(String::from));
    let (Some(dir), Some(cid), Some(ifname)) = (v("cache_dir"), v("cid"), v("net_ifname")) else {
        return StepOutcome::Skip("target keeps no result cache the harness knows of".into());
    };
    let net = step
        .with
        .get("network")
        .and_then(Value::as_str)
        .map_or_else(|| format!("net-{}", env.id), |n| r.render(env, n));
    let path = Path::new(&dir).join("results").join(format!("{net}-{cid}-{ifname}"));
    let want = step.with.get("exists").and_then(Value::as_bool).unwrap_or(true);
    match (std::fs::read(&path), want) {
        (Err(_), false) => StepOutcome::Ok,
        (Err(e), true) => StepOutcome::fail(format!("§5.59: no result cache {}: {e}", path.display())),
        (Ok(_), false) => StepOutcome::fail(format!("§5.59: result cache {} is still there", path.display())),
        (Ok(bytes), true) => {
            let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let mut problems = Vec::new();
            if parsed.get("kind").and_then(Value::as_str) != Some("cniCacheV1") {
                problems.push(format!("kind is {:?}, expected cniCacheV1", parsed.get("kind")));
            }
            for (key, want) in
                [("containerId", cid.as_str()), ("ifName", ifname.as_str()), ("networkName", net.as_str())]
            {
                if parsed.get(key).and_then(Value::as_str) != Some(want) {
                    problems.push(format!("{key} is {:?}, expected {want:?}", parsed.get(key)));
                }
            }
            if parsed.get("result").is_none_or(Value::is_null) {
                problems.push("no result".into());
            }
            if problems.is_empty() {
                StepOutcome::Ok
            } else {
                StepOutcome::fail(format!("§5.59: {}: {}", path.display(), problems.join("; ")))
            }
        }
    }
}
