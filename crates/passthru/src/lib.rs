//! `passthru`: the CNI plugin Multus puts first in the auxiliary CNI chain
//! (`auxiliaryCNIChainName`, multus spec §5.11). The chain is the conflist
//! `[passthru, <plugins from the chain's directory>…]`; its head creates nothing, so the
//! plugins after it (tuning, sbr, …) act on the pod's existing interface.
//!
//! - ADD: `prevResult`, converted to the config's `cniVersion`; without one, an empty result of
//!   that version.
//! - DEL, CHECK, STATUS, GC: nothing to do; success.
//! - VERSION: 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0, as the Go plugin.
//!
//! Differences from the Go plugin (`cmd/passthru-cni`), on purpose: Go's ADD always prints an
//! empty result and drops a `prevResult` it is given (harmless only while it is the head of a
//! chain: it then never gets one); this one passes it through, as its name says. Go's CHECK is
//! unimplemented; this one succeeds. An empty result is printed without Go's `"dns": {}`
//! (the same result to every reader).

#![warn(missing_docs)]

use cni::skel::{Plugin, Request};
use cni::{CniError, CniResult};

/// The versions the Go plugin declares.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The banner printed when the binary runs without `CNI_COMMAND` (the Go plugin's words).
pub const ABOUT: &str = "Passthrough CNI Plugin v1.0";

/// The plugin; run it with [`cni::skel::run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Passthru;

impl Plugin for Passthru {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        // skel converts whatever is returned to the config's version.
        req.prev_result().unwrap_or_else(|| Ok(CniResult::empty(req.cni_version)))
    }

    fn del(&self, _req: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn supported_versions(&self) -> Vec<String> {
        SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect()
    }

    fn about(&self) -> String {
        ABOUT.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::collections::HashMap;

    /// Run the plugin as skel would; returns (exit status, stdout as JSON or Null, stderr).
    fn call(command: &str, stdin: &Value) -> (i32, Value, String) {
        let env: HashMap<String, String> = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "ctr1"),
            ("CNI_NETNS", "/var/run/netns/pod"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let input = serde_json::to_vec(stdin).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = cni::skel::run_with(&Passthru, &env, &mut input.as_slice(), &mut out, &mut err);
        let out = if out.is_empty() { Value::Null } else { serde_json::from_slice(&out).unwrap() };
        (status, out, String::from_utf8(err).unwrap())
    }

    fn prev_1_0_0() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "0a:58:0a:f4:00:05", "sandbox": "/var/run/netns/pod"}],
            "ips": [{"address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 0}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.0.1"}],
            "dns": {"nameservers": ["10.96.0.10"]}
        })
    }

    #[test]
    fn add_without_prev_result_answers_an_empty_result_of_the_config_version() {
        for version in SUPPORTED_VERSIONS {
            let (status, out, _) = call("ADD", &json!({"cniVersion": version, "name": "aux", "type": "passthru"}));
            assert_eq!((status, out), (0, json!({"cniVersion": version})), "{version}");
        }
    }

    #[test]
    fn add_passes_prev_result_through() {
        let conf = json!({"cniVersion": "1.0.0", "name": "aux", "type": "passthru", "prevResult": prev_1_0_0()});
        assert_eq!(call("ADD", &conf), (0, prev_1_0_0(), String::new()));
    }

    #[test]
    fn add_converts_prev_result_to_the_config_version() {
        let conf = json!({"cniVersion": "0.3.1", "name": "aux", "type": "passthru", "prevResult": prev_1_0_0()});
        let (status, out, _) = call("ADD", &conf);
        assert_eq!(status, 0);
        assert_eq!(out["cniVersion"], "0.3.1");
        assert_eq!(
            out["ips"],
            json!([{"version": "4", "address": "10.244.0.5/24", "gateway": "10.244.0.1", "interface": 0}])
        );
        assert_eq!(out["interfaces"], prev_1_0_0()["interfaces"]);

        // Up as well: a 0.3.1 prevResult in a 1.1.0 config.
        let conf = json!({"cniVersion": "1.1.0", "name": "aux", "type": "passthru", "prevResult": out});
        let (status, up, _) = call("ADD", &conf);
        assert_eq!(status, 0);
        assert_eq!(up["cniVersion"], "1.1.0");
        assert_eq!(up["ips"], prev_1_0_0()["ips"]);
    }

    #[test]
    fn a_malformed_prev_result_is_a_decoding_error() {
        let conf = json!({"cniVersion": "1.0.0", "name": "aux", "type": "passthru", "prevResult": {"ips": "nope"}});
        let (status, out, _) = call("ADD", &conf);
        assert_eq!(status, 1);
        assert_eq!(out["code"], 6, "{out}");
    }

    #[test]
    fn del_check_status_and_gc_succeed_silently() {
        for (command, version) in
            [("DEL", "1.0.0"), ("DEL", "0.3.0"), ("CHECK", "1.0.0"), ("STATUS", "1.1.0"), ("GC", "1.1.0")]
        {
            let conf = json!({"cniVersion": version, "name": "aux", "type": "passthru", "prevResult": prev_1_0_0()});
            assert_eq!(call(command, &conf), (0, Value::Null, String::new()), "{command} {version}");
        }
    }

    #[test]
    fn versions_before_0_3_0_are_refused_as_go_does() {
        let (status, out, _) = call("ADD", &json!({"cniVersion": "0.2.0", "name": "aux", "type": "passthru"}));
        assert_eq!(status, 1);
        assert_eq!(out["code"], 1);
        assert_eq!(out["msg"], "incompatible CNI versions");
        assert_eq!(out["details"], r#"config is "0.2.0", plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#);
    }

    #[test]
    fn version_answers_the_supported_versions() {
        let (status, out, _) = call("VERSION", &json!({}));
        assert_eq!(status, 0);
        assert_eq!(out, json!({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS}));
    }
}
