//! Judging one CNI invocation: the observation against a step's expectation, plus the checks
//! every invocation gets (error-object shape, silent success) and result schemas per version.
//! Pure functions; the runner feeds them observations.

use crate::model::{ExitExpect, Expect};
use crate::normalize::result_for_compare;
pub use crate::stdout_json::{StdoutJsonError, single_json};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// What one plugin process did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Observation {
    /// Exit status, `None` if killed by a signal or by the harness's timeout.
    pub exit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
}

impl Observation {
    pub fn succeeded(&self) -> bool {
        self.exit == Some(0)
    }
}

/// Context for judging.
#[derive(Debug, Clone, Default)]
pub struct JudgeCtx<'a> {
    /// `CNI_COMMAND` of the invocation.
    pub command: &'a str,
    /// The config version sent (`None` when stdin had no version).
    pub config_version: Option<&'a str>,
    /// What the target's VERSION reported, if probed.
    pub supported: Option<&'a [String]>,
    /// Results saved by earlier steps, as the config version.
    pub equals: Option<&'a Value>,
    pub contains: Option<&'a Value>,
    /// Expected interface name (already templated).
    pub interface: Option<&'a str>,
}

/// The verdict on one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    /// Broken expectations, each with the §5 assertion it concerns when not the case's own.
    pub problems: Vec<String>,
    /// Set when the target answered "verb unsupported" in the way the step allows.
    pub unsupported: Option<String>,
    /// Parsed ADD result on success.
    pub result: Option<Value>,
    /// Parsed error object on failure.
    pub error: Option<ErrorObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: u64,
    pub msg: String,
    #[serde(default)]
    pub details: Option<String>,
}

/// Why stdout is not a well-formed CNI error object (cni.md §5.5).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorObjectProblem {
    #[error(transparent)]
    Stdout(#[from] StdoutJsonError),
    #[error("stdout is JSON but not an object")]
    NotAnObject,
    #[error("error object `{field}` is not {want}: {got}")]
    WrongType { field: &'static str, want: &'static str, got: Value },
    #[error("error object has no `{0}`")]
    Missing(&'static str),
}

/// cni.md §5.5: a failure prints exactly one error object with integer `code`, string `msg`,
/// optional string `details`.
pub fn parse_error_object(stdout: &str) -> Result<ErrorObject, ErrorObjectProblem> {
    let wrong = |field, want, got: &Value| ErrorObjectProblem::WrongType { field, want, got: got.clone() };
    let v = single_json(stdout)?;
    let Value::Object(m) = &v else {
        return Err(ErrorObjectProblem::NotAnObject);
    };
    let code = match m.get("code") {
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or_default(),
        Some(other) => return Err(wrong("code", "an unsigned integer", other)),
        None => return Err(ErrorObjectProblem::Missing("code")),
    };
    let msg = match m.get("msg") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong("msg", "a string", other)),
        None => return Err(ErrorObjectProblem::Missing("msg")),
    };
    let details = match m.get("details") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(wrong("details", "a string", other)),
    };
    Ok(ErrorObject { code, msg, details })
}

/// Judge one invocation.
pub fn judge(expect: &Expect, obs: &Observation, ctx: &JudgeCtx<'_>) -> Verdict {
    let mut v = Verdict::default();
    if obs.timed_out {
        v.problems.push(format!("timed out after {} ms (killed)", obs.duration_ms));
        return v;
    }
    if let Some(sig) = obs.signal {
        v.problems.push(format!("killed by signal {sig}"));
        return v;
    }
    if let Some(limit) = expect.within
        && obs.duration_ms > limit * 1000
    {
        v.problems.push(format!("took {} ms, more than {limit} s", obs.duration_ms));
    }
    if obs.succeeded() {
        judge_success(expect, obs, ctx, &mut v);
    } else {
        judge_failure(expect, obs, ctx, &mut v);
    }
    v
}

/// A failed invocation: one well-formed error object (§5.5), "verb unsupported" where the
/// step allows it (§5.13), the expected exit, codes and message.
fn judge_failure(expect: &Expect, obs: &Observation, ctx: &JudgeCtx<'_>, v: &mut Verdict) {
    match parse_error_object(&obs.stdout) {
        Ok(e) => v.error = Some(e),
        Err(e) => {
            v.problems.push(format!("§5.5: failed (exit {:?}) without a well-formed error object: {e}", obs.exit))
        }
    }
    // Unsupported verbs (cni.md §5.13): a pre-1.1 plugin answers 3 or 4.
    if let Some(e) = &v.error
        && expect.unsupported_codes.contains(&e.code)
        && ctx.supported.is_some_and(|s| !s.iter().any(|x| x == "1.1.0"))
    {
        v.unsupported = Some(format!(
            "verb {} unsupported: a pre-1.1.0 plugin answered code {} ({:?}) instead of 1",
            ctx.command, e.code, e.msg
        ));
        return;
    }
    if expect.exit == ExitExpect::Success {
        let what = v.error.as_ref().map(|e| format!(": code {} {:?}", e.code, e.msg)).unwrap_or_default();
        v.problems.push(format!("expected success, got exit {:?}{what}", obs.exit));
    }
    if let Some(e) = &v.error {
        if !expect.code.is_empty() && !expect.code.contains(&e.code) {
            v.problems.push(format!("expected error code {}, got {} ({:?})", codes(&expect.code), e.code, e.msg));
        }
        let text = format!("{} {}", e.msg, e.details.clone().unwrap_or_default()).to_lowercase();
        for needle in &expect.msg_contains {
            if !text.contains(&needle.to_lowercase()) {
                v.problems.push(format!("error message {:?} does not mention {needle:?}", e.msg));
            }
        }
    }
}

/// A successful invocation: silent where the verb must be (§5.6), the expected exit, a
/// version object for VERSION, an ADD result for ADD.
fn judge_success(expect: &Expect, obs: &Observation, ctx: &JudgeCtx<'_>, v: &mut Verdict) {
    let p = &mut v.problems;
    if matches!(ctx.command, "DEL" | "CHECK" | "GC" | "STATUS") && !obs.stdout.trim().is_empty() {
        p.push(format!("§5.6: successful {} printed to stdout", ctx.command));
    }
    if expect.exit == ExitExpect::Failure {
        p.push("expected a failure (non-zero exit), got exit 0".into());
    }
    if ctx.command == "VERSION" && expect.version_info {
        p.extend(check_version_info(&obs.stdout, ctx.config_version, ctx.supported));
    }
    if ctx.command == "ADD" && expect.result.unwrap_or(true) {
        match single_json(&obs.stdout) {
            Err(e) => p.push(format!("§5.20: ADD succeeded but {e}")),
            Ok(result) => {
                p.extend(judge_result(&result, ctx));
                v.result = Some(result);
            }
        }
    }
}

/// An ADD result: valid for the config version, with the expected interface, equal to or
/// keeping what the step names.
fn judge_result(result: &Value, ctx: &JudgeCtx<'_>) -> Vec<String> {
    let mut p = Vec::new();
    if let Some(version) = ctx.config_version {
        p.extend(validate_result(result, version));
    }
    if let Some(name) = ctx.interface
        && !result_interfaces(result).iter().any(|i| i.get("name").and_then(Value::as_str) == Some(name))
    {
        p.push(format!("result has no interface named {name:?}"));
    }
    if let Some(prev) = ctx.equals {
        let (a, b) = (result_for_compare(result), result_for_compare(prev));
        if a != b {
            p.push(format!("§5.26: result differs from prevResult: got {a}, prevResult {b}"));
        }
    }
    if let Some(prev) = ctx.contains {
        p.extend(contains_result(result, prev));
    }
    p
}

fn codes(c: &[u64]) -> String {
    c.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")
}

fn is_version_string(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// cni.md §5.1, 2, 4: one object, non-empty `cniVersion`, non-empty `supportedVersions` of
/// three-part versions; `cniVersion` echoes the input or is the highest supported.
pub fn check_version_info(stdout: &str, input: Option<&str>, _supported: Option<&[String]>) -> Vec<String> {
    let mut p = Vec::new();
    let v = match single_json(stdout) {
        Ok(v) => v,
        Err(e) => return vec![format!("§5.1: VERSION {e}")],
    };
    let cv = v.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    if cv.is_empty() {
        p.push("§5.1: VERSION answer has no non-empty string cniVersion".into());
    }
    let list: Vec<String> = match v.get("supportedVersions") {
        Some(Value::Array(a)) if !a.is_empty() => {
            a.iter().map(|x| x.as_str().unwrap_or("<not a string>").to_string()).collect()
        }
        _ => {
            p.push("§5.1: VERSION answer has no non-empty supportedVersions array".into());
            Vec::new()
        }
    };
    for s in &list {
        if !is_version_string(s) {
            p.push(format!("§5.2: supportedVersions entry {s:?} is not a three-part version"));
        }
    }
    if !cv.is_empty() && !list.is_empty() {
        let highest =
            list.iter().filter_map(|s| cni::Version::parse(s).ok()).max().map(|v| v.to_string()).unwrap_or_default();
        let echo = input.is_some_and(|i| i == cv);
        if !echo && cv != highest {
            p.push(format!(
                "§5.4: VERSION cniVersion {cv:?} is neither the input ({input:?}) nor the highest supported ({highest})"
            ));
        }
    }
    p
}

fn result_interfaces(r: &Value) -> Vec<Map<String, Value>> {
    r.get("interfaces")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| i.as_object().cloned()).collect())
        .unwrap_or_default()
}

fn is_cidr(s: &str) -> bool {
    s.parse::<IpNet>().is_ok()
}

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn check_str(
    m: &Map<String, Value>,
    key: &str,
    required: bool,
    what: &str,
    pred: fn(&str) -> bool,
    p: &mut Vec<String>,
) {
    match m.get(key) {
        None | Some(Value::Null) if !required => {}
        None | Some(Value::Null) => p.push(format!("§5.21: {what} lacks required `{key}`")),
        Some(Value::String(s)) if pred(s) => {}
        Some(other) => p.push(format!("§5.21: {what}.{key} is invalid: {other}")),
    }
}

fn check_uint(m: &Map<String, Value>, key: &str, what: &str, p: &mut Vec<String>) {
    if let Some(v) = m.get(key)
        && !v.is_null()
        && v.as_u64().is_none()
    {
        p.push(format!("§5.21: {what}.{key} is not an unsigned integer: {v}"));
    }
}

fn check_routes(routes: Option<&Value>, what: &str, v11: bool, p: &mut Vec<String>) {
    let Some(routes) = routes else { return };
    let Some(a) = routes.as_array() else {
        p.push(format!("§5.21: {what}.routes is not an array"));
        return;
    };
    for (i, r) in a.iter().enumerate() {
        let Some(m) = r.as_object() else {
            p.push(format!("§5.21: {what}.routes[{i}] is not an object"));
            continue;
        };
        let w = format!("{what}.routes[{i}]");
        check_str(m, "dst", true, &w, is_cidr, p);
        check_str(m, "gw", false, &w, is_ip, p);
        if v11 {
            for k in ["mtu", "advmss", "priority", "table", "scope"] {
                check_uint(m, k, &w, p);
            }
        }
    }
}

fn check_dns(dns: Option<&Value>, p: &mut Vec<String>) {
    match dns {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for k in ["nameservers", "search", "options"] {
                if let Some(v) = m.get(k)
                    && !v.is_null()
                    && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                {
                    p.push(format!("§5.21: dns.{k} is not a list of strings"));
                }
            }
        }
        Some(other) => p.push(format!("§5.21: dns is not an object: {other}")),
    }
}

/// cni.md §5.20–22: the ADD result matches the request version's schema.
pub fn validate_result(r: &Value, version: &str) -> Vec<String> {
    let mut p = Vec::new();
    let Some(m) = r.as_object() else {
        return vec!["§5.21: result is not a JSON object".into()];
    };
    match m.get("cniVersion").and_then(Value::as_str) {
        Some(v) if v == version => {}
        Some(v) => p.push(format!("§5.20: result cniVersion is {v:?}, the request's is {version:?}")),
        None => p.push(format!("§5.20: result has no cniVersion (request {version:?})")),
    }
    let Ok(ver) = cni::Version::parse(version) else {
        return p;
    };
    check_dns(m.get("dns"), &mut p);
    if ver < cni::Version::V0_3_0 {
        check_legacy_result(m, version, &mut p);
        return p;
    }
    for k in ["ip4", "ip6"] {
        if m.contains_key(k) {
            p.push(format!("§5.21: a {version} result must use `ips`, not `{k}`"));
        }
    }
    let v11 = ver >= cni::Version::V1_1_0;
    let interfaces = check_interfaces(m, v11, &mut p);
    check_ips(m, &ver, interfaces, &mut p);
    check_routes(m.get("routes"), "result", v11, &mut p);
    p
}

/// A result before 0.3.0: `ip4` / `ip6` objects, no `interfaces` or `ips`.
fn check_legacy_result(m: &Map<String, Value>, version: &str, p: &mut Vec<String>) {
    for k in ["interfaces", "ips"] {
        if m.contains_key(k) {
            p.push(format!("§5.21: a {version} result must use ip4/ip6, not `{k}`"));
        }
    }
    if !m.contains_key("ip4") && !m.contains_key("ip6") {
        p.push(format!("§5.21: a {version} result has neither ip4 nor ip6"));
    }
    for fam in ["ip4", "ip6"] {
        if let Some(x) = m.get(fam) {
            let Some(o) = x.as_object() else {
                p.push(format!("§5.21: {fam} is not an object"));
                continue;
            };
            check_str(o, "ip", true, fam, is_cidr, p);
            check_str(o, "gateway", false, fam, is_ip, p);
            check_routes(o.get("routes"), fam, false, p);
        }
    }
}

/// The result's `interfaces` (1.1.0 adds `mtu`, `socketPath`, `pciID`); how many there are.
fn check_interfaces(m: &Map<String, Value>, v11: bool, p: &mut Vec<String>) -> usize {
    let ifaces = match m.get("interfaces") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            p.push("§5.21: interfaces is not an array".into());
            Vec::new()
        }
    };
    for (i, itf) in ifaces.iter().enumerate() {
        let Some(o) = itf.as_object() else {
            p.push(format!("§5.21: interfaces[{i}] is not an object"));
            continue;
        };
        let w = format!("interfaces[{i}]");
        check_str(o, "name", true, &w, |s| !s.is_empty(), p);
        check_str(o, "mac", false, &w, |_| true, p);
        check_str(o, "sandbox", false, &w, |_| true, p);
        if v11 {
            check_uint(o, "mtu", &w, p);
            check_str(o, "socketPath", false, &w, |_| true, p);
            check_str(o, "pciID", false, &w, |_| true, p);
        }
    }
    ifaces.len()
}

/// The result's `ips`: addresses, gateways, `version` before 1.0.0, `interface` indexes (§5.22).
fn check_ips(m: &Map<String, Value>, ver: &cni::Version, interfaces: usize, p: &mut Vec<String>) {
    let a = match m.get("ips") {
        None | Some(Value::Null) => return,
        Some(Value::Array(a)) => a,
        Some(_) => {
            p.push("§5.21: ips is not an array".into());
            return;
        }
    };
    for (i, ip) in a.iter().enumerate() {
        let Some(o) = ip.as_object() else {
            p.push(format!("§5.21: ips[{i}] is not an object"));
            continue;
        };
        let w = format!("ips[{i}]");
        check_str(o, "address", true, &w, is_cidr, p);
        check_str(o, "gateway", false, &w, is_ip, p);
        if *ver < cni::Version::V1_0_0 {
            let fam = o.get("address").and_then(Value::as_str).and_then(|a| a.parse::<IpNet>().ok()).map(|n| match n {
                IpNet::V4(_) => "4",
                IpNet::V6(_) => "6",
            });
            match o.get("version").and_then(Value::as_str) {
                Some(v) if Some(v) == fam || fam.is_none() => {}
                Some(v) => p.push(format!("§5.21: {w}.version {v:?} does not match the address family")),
                None => p.push(format!("§5.21: {w} lacks `version` (required before 1.0.0)")),
            }
        }
        match o.get("interface") {
            None | Some(Value::Null) => {}
            Some(x) => match x.as_u64() {
                Some(n) if (n as usize) < interfaces => {}
                _ => p.push(format!("§5.22: {w}.interface {x} is not a valid index into {interfaces} interfaces")),
            },
        }
    }
}

/// cni.md §5.27: every interface, IP and route of `prev` is still in `result`.
pub fn contains_result(result: &Value, prev: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let names = |r: &Value| -> Vec<String> {
        result_interfaces(r).iter().filter_map(|i| i.get("name").and_then(Value::as_str).map(String::from)).collect()
    };
    let field = |r: &Value, list: &str, key: &str| -> Vec<String> {
        r.get(list)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.get(key).and_then(Value::as_str).map(String::from)).collect())
            .unwrap_or_default()
    };
    let have = names(result);
    for n in names(prev) {
        if !have.contains(&n) {
            p.push(format!("§5.27: interface {n:?} of prevResult is missing from the output"));
        }
    }
    let have = field(result, "ips", "address");
    for a in field(prev, "ips", "address") {
        if !have.contains(&a) {
            p.push(format!("§5.27: address {a} of prevResult is missing from the output"));
        }
    }
    let have = field(result, "routes", "dst");
    for d in field(prev, "routes", "dst") {
        if !have.contains(&d) {
            p.push(format!("§5.27: route {d} of prevResult is missing from the output"));
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(exit: i32, stdout: &str) -> Observation {
        Observation { exit: Some(exit), stdout: stdout.into(), ..Default::default() }
    }

    #[test]
    fn error_object_rules() {
        assert!(parse_error_object(r#"{"code":4,"msg":"x"}"#).is_ok());
        assert!(parse_error_object(r#"{"code":4,"msg":"x"} {"code":1,"msg":"y"}"#).is_err());
        assert!(parse_error_object(r#"{"code":"4","msg":"x"}"#).is_err());
        assert!(parse_error_object(r#"{"msg":"x"}"#).is_err());
        assert!(parse_error_object("log line\n{\"code\":4,\"msg\":\"x\"}").is_err());
        assert!(parse_error_object("").is_err());
    }

    #[test]
    fn judge_codes_and_silence() {
        let e = Expect { exit: ExitExpect::Failure, code: vec![4], ..Default::default() };
        let ctx = JudgeCtx { command: "ADD", ..Default::default() };
        assert!(judge(&e, &obs(1, r#"{"code":4,"msg":"m"}"#), &ctx).problems.is_empty());
        assert_eq!(judge(&e, &obs(1, r#"{"code":7,"msg":"m"}"#), &ctx).problems.len(), 1);
        assert_eq!(judge(&e, &obs(0, r#"{"code":4,"msg":"m"}"#), &ctx).problems.len(), 1);
        let del = JudgeCtx { command: "DEL", ..Default::default() };
        assert_eq!(judge(&Expect::default(), &obs(0, "{}"), &del).problems.len(), 1);
        assert!(judge(&Expect::default(), &obs(0, ""), &del).problems.is_empty());
    }

    #[test]
    fn unsupported_verbs_are_recorded() {
        let e =
            Expect { exit: ExitExpect::Failure, code: vec![1], unsupported_codes: vec![3, 4], ..Default::default() };
        let old: Vec<String> = ["0.4.0", "1.0.0"].iter().map(|s| s.to_string()).collect();
        let ctx = JudgeCtx { command: "GC", supported: Some(&old), ..Default::default() };
        let v = judge(&e, &obs(1, r#"{"code":3,"msg":"missing containerID"}"#), &ctx);
        assert!(v.unsupported.is_some() && v.problems.is_empty());
        let new: Vec<String> = vec!["1.1.0".into()];
        let ctx = JudgeCtx { command: "GC", supported: Some(&new), ..Default::default() };
        assert!(judge(&e, &obs(1, r#"{"code":3,"msg":"x"}"#), &ctx).unsupported.is_none());
    }

    #[test]
    fn result_schemas() {
        let r = json!({"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.0.0.2/24","interface":0}],"dns":{}});
        assert!(validate_result(&r, "1.0.0").is_empty());
        assert_eq!(validate_result(&r, "0.4.0").len(), 2); // version mismatch + missing ips[].version
        let bad_index = json!({"cniVersion":"1.0.0","interfaces":[],"ips":[{"address":"10.0.0.2/24","interface":1}]});
        assert_eq!(validate_result(&bad_index, "1.0.0").len(), 1);
        let old = json!({"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24","routes":[{"dst":"0.0.0.0/0"}]}});
        assert!(validate_result(&old, "0.2.0").is_empty());
        assert!(!validate_result(&old, "0.3.1").is_empty());
    }

    #[test]
    fn version_info() {
        let ok = r#"{"cniVersion":"1.0.0","supportedVersions":["0.1.0","1.0.0"]}"#;
        assert!(check_version_info(ok, Some("0.4.0"), None).is_empty());
        assert!(check_version_info(ok, Some("1.0.0"), None).is_empty());
        let odd = r#"{"cniVersion":"0.4.0","supportedVersions":["0.1.0","1.0.0","1.0"]}"#;
        assert_eq!(check_version_info(odd, Some("0.3.1"), None).len(), 2);
    }
}
