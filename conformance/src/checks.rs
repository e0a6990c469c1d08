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
    // fake-cni recorded calls (of the attachment's container) matching `command`, `network`,
    // `match` {JSON pointer: value}; then `count`, `ifname`, `args_contains`, `runtime_config`,
    // `expect` {pointer: value | "$present" | "$absent"} on every one, `order` of `order_key`
    "delegate-calls",
    // the runtime's result cache `<cache_dir>/results/<net>-<cid>-<net_ifname>` exists
    // (`exists: true`, kind cniCacheV1) or not
    "result-cache",
    // the pod's annotation `key` exists / contains / is JSON with entries (`names`,
    // `interfaces`, `ips`, `default_first`, `device_info` {interface: value | "$present" | "$absent"})
    "annotation",
    // Multus' delegate cache file `<cniDir>/<cid>` exists (`exists: true`) or not
    "cache-file",
    // the daemon wrote `00-multus.conf` with the given keys
    "multus-conf",
    // thick: the per-attachment device-info file named in the recorded ADD's
    // runtimeConfig.CNIDeviceInfoFile (`network` filter) exists (`exists`, default true),
    // holding `pci_address`
    "device-info-file",
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
    match name {
        "delegate-calls" => return delegate_calls(r, step, env),
        "result-cache" => return result_cache(r, step, env),
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
            if !r.target.prev_plugins.is_empty() {
                return StepOutcome::Skip("host veths belong to the plugin chained before the target".into());
            }
            // A deleted netns is torn down asynchronously by the kernel (its veths with it):
            // give leftovers a moment to go before calling them leaks.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            loop {
                let left: Vec<String> =
                    sys::veths(&host.name).into_iter().filter(|v| !env.host_baseline.contains(v)).collect();
                if left.is_empty() {
                    return StepOutcome::Ok;
                }
                if std::time::Instant::now() > deadline {
                    return fail(format!("host-side veth(s) left behind: {left:?}"));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
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
        if let Err(e) = r.ensure_attachment(env, &format!("p{i}")) {
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
    if r.target.kind == crate::target::Kind::Conflist {
        // The runtime runs in-process: one after the other.
        let mut problems = Vec::new();
        for s in &jobs {
            if let StepOutcome::Fail(why) = r.cni_step(case, s, env, false) {
                problems.push(format!("{}: {why}", s.attachment));
            }
        }
        return if problems.is_empty() { StepOutcome::Ok } else { fail(format!("§5.29: {}", problems.join(" | "))) };
    }
    type Prepared = (Vec<u8>, Vec<(String, String)>, Option<String>, Step);
    let mut prepared: Vec<Prepared> = Vec::new();
    for s in jobs {
        let (mut stdin, ver, vars) = r.prepare_invocation(case, &s, env);
        // Chained targets: the plugins before them run first, one attachment at a time.
        if command == "ADD" && r.runs_prelude(&s) {
            match r.prelude_add(case, &s, env, ver.as_deref()) {
                Ok(prev) => stdin = crate::runner::with_prev_result(&stdin, prev),
                Err(e) => return fail(format!("the chain before the target (prev_plugins) failed: {e}")),
            }
        }
        prepared.push((stdin, vars, ver, s));
    }
    let runner: &Runner = r;
    let plugin = runner.exec_path(env);
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
        if command == "ADD"
            && obs.succeeded()
            && let Some(res) = &v.result
        {
            env.final_results.insert(s.attachment.clone(), res.clone());
        }
        if !v.problems.is_empty() {
            problems.push(format!("{}: {}", s.attachment, v.problems.join("; ")));
        }
    }
    if command == "DEL" {
        for (_, _, _, s) in &prepared {
            if env.prelude_added.contains(&s.attachment) {
                runner.prelude_del(case, s, env);
            }
        }
    }
    if problems.is_empty() { StepOutcome::Ok } else { fail(format!("§5.29: {}", problems.join(" | "))) }
}

/// Every record of fake-cni's `calls.jsonl` under `{{records}}`, oldest first.
pub fn recorded_calls(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("calls.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `"$present"`, `"$absent"` or an exact value at a JSON pointer.
fn pointer_matches(v: &Value, pointer: &str, want: &Value) -> bool {
    let got = v.pointer(pointer);
    match want.as_str() {
        Some("$present") => got.is_some_and(|g| !g.is_null()),
        Some("$absent") => got.is_none_or(Value::is_null),
        _ => got == Some(want),
    }
}

fn short_call(c: &Value) -> String {
    let plugin =
        c.pointer("/stdin/x-plugin").and_then(Value::as_str).map(|p| format!(" plugin {p}")).unwrap_or_default();
    format!(
        "{} {} {}{plugin}",
        c["command"].as_str().unwrap_or(""),
        c["name"].as_str().unwrap_or(""),
        c["ifname"].as_str().unwrap_or("")
    )
}

fn delegate_calls(r: &Runner, step: &Step, env: &CaseEnv) -> StepOutcome {
    let w = |k: &str| step.with.get(k).cloned();
    let ws = |k: &str| step.with.get(k).and_then(Value::as_str).map(|s| r.render(env, s));
    let Some(att) = env.attachments.get(&step.attachment) else { return fail("no attachment") };
    let Some(dir) = r.var(env, "records").and_then(|v| v.as_str().map(String::from)) else {
        return StepOutcome::Skip("target records no calls".into());
    };
    let all = recorded_calls(Path::new(&dir));
    let command = ws("command");
    let filters: Vec<(String, Value)> = w("match")
        .and_then(|m| m.as_object().cloned())
        .map(|m| m.into_iter().map(|(k, v)| (k, r.render_json(env, &v))).collect())
        .unwrap_or_default();
    let calls: Vec<&Value> = all
        .iter()
        .filter(|c| {
            let cid = c.get("containerId").and_then(Value::as_str);
            cid == Some(&att.cid) || (cid == Some("") && command.as_deref().is_some_and(|x| x == "GC" || x == "STATUS"))
        })
        .filter(|c| command.as_ref().is_none_or(|x| c.get("command").and_then(Value::as_str) == Some(x)))
        .filter(|c| ws("network").is_none_or(|x| c.get("name").and_then(Value::as_str) == Some(&x)))
        .filter(|c| filters.iter().all(|(p, v)| pointer_matches(c, p, v)))
        .collect();
    let seen = || -> Vec<String> {
        all.iter().filter(|c| c.get("containerId").and_then(Value::as_str) == Some(&att.cid)).map(short_call).collect()
    };
    if let Some(n) = w("count").and_then(|v| v.as_u64())
        && calls.len() as u64 != n
    {
        return fail(format!(
            "expected {n} matching call(s), saw {} (all calls of this container: {:?})",
            calls.len(),
            seen()
        ));
    }
    if let Some(ifname) = ws("ifname")
        && let Some(c) = calls.iter().find(|c| c.get("ifname").and_then(Value::as_str) != Some(&ifname))
    {
        return fail(format!("plugin got CNI_IFNAME {:?}, expected {ifname:?}", c.get("ifname")));
    }
    for needle in step.with.get("args_contains").and_then(Value::as_array).cloned().unwrap_or_default() {
        let needle = r.render(env, needle.as_str().unwrap_or_default());
        if let Some(c) =
            calls.iter().find(|c| !c.get("args").and_then(Value::as_str).unwrap_or_default().contains(&needle))
        {
            return fail(format!("CNI_ARGS {:?} lacks {needle:?}", c.get("args")));
        }
    }
    if let Some(rc) = w("runtime_config") {
        let rc = r.render_json(env, &rc);
        for c in &calls {
            let got = c.pointer("/stdin/runtimeConfig").cloned().unwrap_or(Value::Null);
            let mut merged = got.clone();
            crate::target::merge_patch(&mut merged, &rc);
            if merged != got {
                return fail(format!("runtimeConfig {got} does not contain {rc}"));
            }
        }
    }
    if let Some(Value::Object(expect)) = w("expect") {
        if calls.is_empty() {
            return fail(format!(
                "no matching call to hold {} (calls of this container: {:?})",
                Value::Object(expect),
                seen()
            ));
        }
        for (pointer, want) in expect {
            let want = r.render_json(env, &want);
            if let Some(c) = calls.iter().find(|c| !pointer_matches(c, &pointer, &want)) {
                return fail(format!(
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
            return fail(format!("calls in order {got:?} ({key}), expected {order:?}"));
        }
    }
    StepOutcome::Ok
}

/// cni.md §5.59: libcni's result cache file of the case's network and attachment.
fn result_cache(r: &Runner, step: &Step, env: &CaseEnv) -> StepOutcome {
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
        (Err(e), true) => fail(format!("§5.59: no result cache {}: {e}", path.display())),
        (Ok(_), false) => fail(format!("§5.59: result cache {} is still there", path.display())),
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
                fail(format!("§5.59: {}: {}", path.display(), problems.join("; ")))
            }
        }
    }
}
