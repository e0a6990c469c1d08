//! The CNI versions a target speaks: what its VERSION answered (or, for the harness's own
//! runtime, every version the `cni` crate knows) and the version cases use by default.

use crate::expect::Observation;
use crate::stdout_json::single_json;
use crate::sys;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The version a target is judged at when nothing else says.
const FALLBACK: &str = "1.0.0";

#[derive(Debug, Clone, PartialEq)]
pub struct Versions {
    /// `supportedVersions` of the target's VERSION answer (`None`: not probed or no answer).
    pub supported: Option<Vec<String>>,
    /// The version of cases that do not choose one.
    pub default: String,
}

impl Default for Versions {
    fn default() -> Self {
        Versions { supported: None, default: FALLBACK.into() }
    }
}

impl Versions {
    /// Ask `binary` for VERSION; the default is `configured` or the highest supported version
    /// the `cni` crate knows.
    pub fn probe(binary: &Path, configured: Option<&String>) -> Versions {
        let obs = sys::run_process(binary, &[], &Self::probe_env(), b"", Self::PROBE_TIMEOUT);
        Self::from_answer(&obs, configured)
    }

    /// The environment of the VERSION probe (no stdin).
    pub fn probe_env() -> Vec<(String, String)> {
        vec![("CNI_COMMAND".to_string(), "VERSION".to_string()), ("PATH".to_string(), sys::PLUGIN_PATH.to_string())]
    }

    pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

    /// The versions from a plugin's answer to the VERSION probe (see [`Versions::probe`]).
    pub fn from_answer(obs: &Observation, configured: Option<&String>) -> Versions {
        let mut supported = None;
        if obs.succeeded()
            && let Ok(v) = single_json(&obs.stdout)
            && let Some(list) = v.get("supportedVersions").and_then(Value::as_array)
        {
            supported = Some(list.iter().filter_map(|x| x.as_str().map(String::from)).collect::<Vec<String>>());
        }
        let default = match (configured, &supported) {
            (Some(v), _) => v.clone(),
            (None, Some(list)) => cni::version::ALL
                .iter()
                .rev()
                .find(|v| list.iter().any(|x| x == *v))
                .map(|v| v.to_string())
                .unwrap_or_else(|| FALLBACK.into()),
            (None, None) => FALLBACK.into(),
        };
        Versions { supported, default }
    }

    /// The harness's runtime: every version the `cni` crate knows; default `configured` or 1.1.0.
    pub fn runtime(configured: Option<&String>) -> Versions {
        Versions {
            supported: Some(cni::version::ALL.iter().map(|v| v.to_string()).collect()),
            default: configured.cloned().unwrap_or_else(|| "1.1.0".into()),
        }
    }

    pub fn supports(&self, v: &str) -> bool {
        self.supported.as_ref().is_some_and(|s| s.iter().any(|x| x == v))
    }

    /// A version the target does not support (for cni.md §5.11, 37).
    pub fn unsupported(&self) -> String {
        cni::version::ALL
            .iter()
            .rev()
            .find(|v| !self.supports(v))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "0.9.9".into())
    }

    /// A case's version word (`default`, `unsupported`, `none`, or a version) as sent.
    pub fn resolve(&self, word: &str) -> Option<String> {
        match word {
            "default" => Some(self.default.clone()),
            "unsupported" => Some(self.unsupported()),
            "none" => None,
            v => Some(v.to_string()),
        }
    }
}
