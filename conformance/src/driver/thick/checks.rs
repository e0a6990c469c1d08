//! The thick target's own checks: the pod's annotations, Multus' delegate cache file, the
//! per-attachment device-info file, the generated `00-multus.conf`, host-side leftovers of the
//! cluster network.

use super::node::ThickNode;
use super::objects::kubectl;
use crate::case_env::{Attachment, CaseEnv, StepOutcome};
use crate::invocation::Scope;
use crate::model::Step;
use crate::records::recorded_calls;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a thick check may look at.
pub struct ThickCheck<'a> {
    pub node: &'a ThickNode,
    /// Host-side veths present when the case started (only new ones count as leaks).
    pub veths_before: &'a [String],
    pub r: &'a Scope<'a>,
    pub step: &'a Step,
    pub env: &'a CaseEnv,
}

impl ThickCheck<'_> {
    fn with(&self, k: &str) -> Option<Value> {
        self.step.with.get(k).cloned()
    }

    fn with_str(&self, k: &str) -> Option<String> {
        self.step.with.get(k).and_then(Value::as_str).map(|s| self.r.render(self.env, s))
    }

    fn wants_existence(&self) -> bool {
        self.with("exists").and_then(|v| v.as_bool()).unwrap_or(true)
    }

    pub fn run(&self, name: &str) -> StepOutcome {
        let att = self.env.attachments.get(&self.step.attachment);
        match (name, att) {
            ("annotation" | "cache-file" | "device-info-file" | "events", None) => StepOutcome::fail("no attachment"),
            ("events", Some(att)) => self.events(att),
            ("annotation", Some(att)) => self.annotation(att),
            ("cache-file", Some(att)) => self.cache_file(att),
            ("device-info-file", Some(att)) => self.device_info_file(att),
            ("multus-conf", _) => self.multus_conf(),
            ("no-host-veth", _) => self.no_host_veth(),
            _ => StepOutcome::Skip(format!("unknown check {name}")),
        }
    }

    /// The pod's annotation `key` exists (or not) and, as network-status JSON, has the
    /// expected entries.
    fn annotation(&self, att: &Attachment) -> StepOutcome {
        let key = self.with_str("key").unwrap_or_else(|| "k8s.v1.cni.cncf.io/network-status".into());
        let pod = match kubectl(self.node, &["get", "pod", "-n", &self.env.id, &att.pod, "-o", "json"], None) {
            Ok(s) => serde_json::from_str::<Value>(&s).unwrap_or(Value::Null),
            Err(e) => return StepOutcome::fail(e.to_string()),
        };
        let val =
            pod.pointer("/metadata/annotations").and_then(|a| a.get(&key)).and_then(Value::as_str).map(String::from);
        match (val, self.wants_existence()) {
            (None, false) => StepOutcome::Ok,
            (None, true) => StepOutcome::fail(format!("pod has no annotation {key}")),
            (Some(v), false) => StepOutcome::fail(format!("pod has annotation {key}: {v}")),
            (Some(v), true) => self.network_status(&v),
        }
    }

    /// The network-status entries against `names`, `interfaces`, `device_info`,
    /// `default_first`, `ips`.
    fn network_status(&self, v: &str) -> StepOutcome {
        let parsed: Value = serde_json::from_str(v).unwrap_or(Value::Null);
        let field = |f: &str| -> Vec<String> {
            parsed
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.get(f).and_then(Value::as_str).map(String::from)).collect())
                .unwrap_or_default()
        };
        let rendered = |list: Vec<Value>| -> Vec<String> {
            list.iter().filter_map(|n| n.as_str().map(|n| self.r.render(self.env, n))).collect()
        };
        if let Some(names) = self.with("names").and_then(|x| x.as_array().cloned()) {
            let (got, want) = (field("name"), rendered(names));
            if got != want {
                return StepOutcome::fail(format!("network-status names {got:?}, expected {want:?}"));
            }
        }
        if let Some(ifs) = self.with("interfaces").and_then(|x| x.as_array().cloned()) {
            let (got, want) = (field("interface"), rendered(ifs));
            if got != want {
                return StepOutcome::fail(format!("network-status interfaces {got:?}, expected {want:?}"));
            }
        }
        if let Some(Value::Object(want)) = self.with("device_info") {
            for (iface, want) in want {
                let entry = self.device_info_entry(&parsed, v, &iface, &want);
                if entry != StepOutcome::Ok {
                    return entry;
                }
            }
        }
        if self.with("default_first").and_then(|v| v.as_bool()) == Some(true)
            && parsed.pointer("/0/default").and_then(Value::as_bool) != Some(true)
        {
            return StepOutcome::fail(format!("first network-status entry is not marked default: {v}"));
        }
        if self.with("ips").and_then(|v| v.as_bool()) == Some(true)
            && !parsed.as_array().is_some_and(|a| {
                a.iter().all(|e| e.get("ips").and_then(Value::as_array).is_some_and(|i| !i.is_empty()))
            })
        {
            return StepOutcome::fail(format!("a network-status entry has no ips: {v}"));
        }
        StepOutcome::Ok
    }

    /// The `device-info` of interface `iface`'s entry: a value, `$present` or `$absent`.
    fn device_info_entry(&self, parsed: &Value, v: &str, iface: &str, want: &Value) -> StepOutcome {
        let iface = self.r.render(self.env, iface);
        let want = self.r.render_json(self.env, want);
        let entry = parsed
            .as_array()
            .and_then(|a| a.iter().find(|e| e.get("interface").and_then(Value::as_str) == Some(iface.as_str())));
        let Some(entry) = entry else {
            return StepOutcome::fail(format!("network-status has no entry for {iface}: {v}"));
        };
        let got = entry.get("device-info").filter(|g| !g.is_null());
        let ok = match want.as_str() {
            Some("$present") => got.is_some(),
            Some("$absent") => got.is_none(),
            _ => got == Some(&want),
        };
        if ok {
            StepOutcome::Ok
        } else {
            StepOutcome::fail(format!(
                "network-status device-info of {iface} is {}, expected {want}",
                got.map_or_else(|| "absent".to_string(), Value::to_string)
            ))
        }
    }

    /// Events about the attachment's pod with the step's `reason` (and `type`,
    /// `message_contains`) exist (or not).
    fn events(&self, att: &Attachment) -> StepOutcome {
        let list = match kubectl(self.node, &["get", "events", "-n", &self.env.id, "-o", "json"], None) {
            Ok(s) => serde_json::from_str::<Value>(&s).unwrap_or(Value::Null),
            Err(e) => return StepOutcome::fail(e.to_string()),
        };
        let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        let (reason, kind, needle) =
            (self.with_str("reason"), self.with_str("type"), self.with_str("message_contains"));
        let matching = matching_events(&items, &att.pod, reason.as_deref(), kind.as_deref(), needle.as_deref());
        let seen: Vec<String> = items
            .iter()
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e["type"].as_str().unwrap_or(""),
                    e["reason"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                )
            })
            .collect();
        match (matching, self.wants_existence()) {
            (0, true) => StepOutcome::fail(format!("no matching event about pod {} (events: {seen:?})", att.pod)),
            (n, false) if n > 0 => StepOutcome::fail(format!("{n} matching event(s) about pod {}: {seen:?}", att.pod)),
            _ => StepOutcome::Ok,
        }
    }

    /// Multus' delegate cache file `<cniDir>/<cid>` exists (or not).
    fn cache_file(&self, att: &Attachment) -> StepOutcome {
        let p = Path::new(&self.node.vars["cni_dir"]).join(&att.cid);
        let want = self.wants_existence();
        match (p.exists(), want) {
            (true, true) | (false, false) => StepOutcome::Ok,
            (got, _) => StepOutcome::fail(format!("delegate cache {} exists={got}, expected {want}", p.display())),
        }
    }

    /// The per-attachment file Multus named in the delegate's runtimeConfig.CNIDeviceInfoFile
    /// (from the fake-cni record of its ADD) exists (or not), holding `pci_address`.
    fn device_info_file(&self, att: &Attachment) -> StepOutcome {
        let network = self.with_str("network");
        let calls = recorded_calls(Path::new(&self.node.vars["records"]));
        let file = calls
            .iter()
            .filter(|c| c.get("containerId").and_then(Value::as_str) == Some(att.cid.as_str()))
            .filter(|c| c.get("command").and_then(Value::as_str) == Some("ADD"))
            .filter(|c| network.as_deref().is_none_or(|n| c.get("name").and_then(Value::as_str) == Some(n)))
            .find_map(|c| c.pointer("/stdin/runtimeConfig/CNIDeviceInfoFile").and_then(Value::as_str))
            .map(String::from);
        let Some(file) = file else {
            return StepOutcome::fail(
                "no recorded ADD carries runtimeConfig.CNIDeviceInfoFile (declare the capability)",
            );
        };
        let want = self.wants_existence();
        let exists = Path::new(&file).exists();
        if exists != want {
            return StepOutcome::fail(format!("device-info file {file} exists={exists}, expected {want}"));
        }
        if let (true, Some(id)) = (exists, self.with_str("pci_address")) {
            let content: Value =
                std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
            if content.pointer("/pci/pci-address").and_then(Value::as_str) != Some(id.as_str()) {
                return StepOutcome::fail(format!("device-info file {file} holds {content}, expected PCI {id}"));
            }
        }
        StepOutcome::Ok
    }

    /// The daemon wrote `00-multus.conf` with the given keys.
    fn multus_conf(&self) -> StepOutcome {
        let p = Path::new(&self.node.vars["netd"]).join("00-multus.conf");
        let Ok(text) = std::fs::read_to_string(&p) else {
            return StepOutcome::fail(format!("{} not written", p.display()));
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return StepOutcome::fail(format!("00-multus.conf is not JSON: {text}"));
        };
        for (k, want) in &self.step.with {
            if v.get(k) != Some(want) {
                return StepOutcome::fail(format!("00-multus.conf {k} = {:?}, expected {want}", v.get(k)));
            }
        }
        StepOutcome::Ok
    }

    /// The cluster network's scratch host netns holds no new veth.
    fn no_host_veth(&self) -> StepOutcome {
        if self.node.host.is_none() {
            return StepOutcome::Skip("cluster network is not bridge".into());
        }
        // A deleted netns is torn down asynchronously (its veths with it).
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let new: Vec<String> =
                self.node.host_veths().into_iter().filter(|v| !self.veths_before.contains(v)).collect();
            if new.is_empty() {
                return StepOutcome::Ok;
            }
            if Instant::now() > deadline {
                return StepOutcome::fail(format!("host-side veth(s) left behind: {new:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How many `events` are about pod `pod` with the given reason, type and message part.
fn matching_events(
    events: &[Value],
    pod: &str,
    reason: Option<&str>,
    kind: Option<&str>,
    message_contains: Option<&str>,
) -> usize {
    let field = |e: &Value, p: &str| e.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    events
        .iter()
        .filter(|e| field(e, "/involvedObject/name") == pod)
        .filter(|e| reason.is_none_or(|r| field(e, "/reason") == r))
        .filter(|e| kind.is_none_or(|t| field(e, "/type") == t))
        .filter(|e| message_contains.is_none_or(|m| field(e, "/message").contains(m)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::matching_events;
    use serde_json::json;

    #[test]
    fn events_match_on_pod_reason_type_and_message() {
        let events = [
            json!({"involvedObject": {"name": "p"}, "reason": "DynamicNetworkFailed", "type": "Warning", "message": "net-b: refused"}),
            json!({"involvedObject": {"name": "q"}, "reason": "DynamicNetworkFailed", "type": "Warning", "message": "x"}),
            json!({"involvedObject": {"name": "p"}, "reason": "AddedInterface", "type": "Normal", "message": "net1"}),
        ];
        assert_eq!(matching_events(&events, "p", Some("DynamicNetworkFailed"), Some("Warning"), None), 1);
        assert_eq!(matching_events(&events, "p", Some("DynamicNetworkFailed"), None, Some("net-b")), 1);
        assert_eq!(matching_events(&events, "p", Some("DynamicNetworkFailed"), Some("Normal"), None), 0);
        assert_eq!(matching_events(&events, "p", None, None, None), 2);
        assert_eq!(matching_events(&events, "r", None, None, None), 0);
    }
}
