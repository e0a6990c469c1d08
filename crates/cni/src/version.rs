//! CNI specification versions and the VERSION command's output.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Every spec version this crate understands, oldest first (libcni's `version.All`).
pub const ALL: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest spec version implemented here.
pub const CURRENT: &str = "1.1.0";

/// A three-part spec version such as `0.4.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major part.
    pub major: u32,
    /// Minor part.
    pub minor: u32,
    /// Patch part.
    pub patch: u32,
}

/// A version string that is not `X`, `X.Y` or `X.Y.Z` of numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: the version is empty or has an invalid format")]
pub struct ParseVersionError(pub String);

impl Version {
    /// 0.1.0: the first spec (results with `ip4`/`ip6`).
    pub const V0_1_0: Version = Version::new(0, 1, 0);
    /// 0.2.0 (results shaped as in 0.1.0).
    pub const V0_2_0: Version = Version::new(0, 2, 0);
    /// 0.3.0: `interfaces`, `ips[].interface`.
    pub const V0_3_0: Version = Version::new(0, 3, 0);
    /// 0.3.1 (results shaped as in 0.3.0).
    pub const V0_3_1: Version = Version::new(0, 3, 1);
    /// 0.4.0: CHECK, `prevResult` on DEL.
    pub const V0_4_0: Version = Version::new(0, 4, 0);
    /// 1.0.0: `ips[].version` dropped.
    pub const V1_0_0: Version = Version::new(1, 0, 0);
    /// 1.1.0: STATUS and GC.
    pub const V1_1_0: Version = Version::new(1, 1, 0);

    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }

    /// Parse `X.Y.Z` (libcni also accepts `X` and `X.Y`; so do we). The empty
    /// string is an error here: callers decide whether empty means 0.1.0.
    pub fn parse(s: &str) -> Result<Self, ParseVersionError> {
        let err = || ParseVersionError(s.to_string());
        let mut parts = s.trim().split('.');
        let num = |p: Option<&str>| -> Result<u32, ParseVersionError> {
            match p {
                None => Ok(0),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().map_err(|_| err()),
                Some(_) => Err(err()),
            }
        };
        let first = parts.next().filter(|p| !p.is_empty()).ok_or_else(err)?;
        let v = Version::new(num(Some(first))?, num(parts.next())?, num(parts.next())?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }

    /// Parse a config's `cniVersion`, where an absent or empty value means 0.1.0.
    pub fn parse_or_default(s: Option<&str>) -> Result<Self, ParseVersionError> {
        match s {
            None | Some("") => Ok(Self::V0_1_0),
            Some(s) => Self::parse(s),
        }
    }

    /// True for one of the seven released spec versions.
    pub fn is_known(&self) -> bool {
        ALL.iter().any(|k| Version::parse(k).ok() == Some(*self))
    }

    /// CHECK exists from 0.4.0 on.
    pub fn supports_check(&self) -> bool {
        *self >= Self::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn supports_gc_and_status(&self) -> bool {
        *self >= Self::V1_1_0
    }

    /// DEL carries `prevResult` from 0.4.0 on.
    pub fn supports_prev_result_on_del(&self) -> bool {
        *self >= Self::V0_4_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for Version {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Compare two version strings as libcni's `GreaterThanOrEqualTo` does.
pub fn compare(a: &str, b: &str) -> Result<Ordering, ParseVersionError> {
    Ok(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// The VERSION command's output: `{"cniVersion": "...", "supportedVersions": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The version the answer is written in.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every config version the plugin accepts.
    #[serde(rename = "supportedVersions", default)]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// What a plugin supporting every version of [`ALL`] answers.
    pub fn all() -> Self {
        Self { cni_version: CURRENT.to_string(), supported_versions: ALL.iter().map(|s| s.to_string()).collect() }
    }

    /// Whether `version` is one of the supported versions (exact string match, as libcni).
    pub fn supports(&self, version: &str) -> bool {
        self.supported_versions.iter().any(|v| v == version)
    }

    /// Decode a plugin's VERSION output the way libcni does: a bare
    /// `{"cniVersion":"0.2.0"}` means `0.1.0, 0.2.0`; otherwise both fields must be non-empty.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::CniError> {
        use crate::error::code;
        let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            crate::CniError::with_details(code::DECODING_FAILURE, "decoding version info", e.to_string())
        })?;
        let cni_version = raw.get("cniVersion").and_then(|v| v.as_str()).unwrap_or("").to_string();
        if cni_version.is_empty() {
            return Err(crate::CniError::new(
                code::DECODING_FAILURE,
                "decoding version info: missing field cniVersion",
            ));
        }
        let supported: Vec<String> = match raw.get("supportedVersions") {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
            }
            _ => Vec::new(),
        };
        if supported.is_empty() {
            if cni_version == "0.2.0" {
                return Ok(Self { cni_version, supported_versions: vec!["0.1.0".into(), "0.2.0".into()] });
            }
            return Err(crate::CniError::new(
                code::DECODING_FAILURE,
                "decoding version info: missing field supportedVersions",
            ));
        }
        Ok(Self { cni_version, supported_versions: supported })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert!(Version::parse("0.3.1").unwrap() < Version::parse("0.4.0").unwrap());
        assert_eq!(Version::parse("1").unwrap(), Version::new(1, 0, 0));
        assert!(Version::parse("").is_err());
        assert!(Version::parse("1.x.0").is_err());
        assert!(Version::parse("1.0.0.0").is_err());
        assert_eq!(Version::parse_or_default(Some("")).unwrap(), Version::V0_1_0);
    }

    #[test]
    fn version_info_decoding_follows_libcni() {
        let v = VersionInfo::decode(br#"{"cniVersion":"0.2.0"}"#).unwrap();
        assert_eq!(v.supported_versions, vec!["0.1.0", "0.2.0"]);
        assert!(VersionInfo::decode(br#"{"cniVersion":"0.3.0"}"#).is_err());
        assert!(VersionInfo::decode(b"garbage").is_err());
    }
}
