//! `CNI_ARGS`: `K1=V1;K2=V2` (cni.md §2.6).

use std::fmt;

/// Ordered `CNI_ARGS` pairs. Duplicates are kept; lookups take the last value, as libcni's
/// loader assigns a key each time it appears.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

/// Why `CNI_ARGS` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// An item without `=`.
    #[error("ARGS: invalid pair {0:?}")]
    InvalidPair(String),
    /// Go formats the list with `%q`: `["A" "B"]`.
    #[error("ARGS: unknown args [{}]", .0.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(" "))]
    UnknownKeys(Vec<String>),
}

impl CniArgs {
    /// No pairs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lenient parse: items split on the first `=` (values may contain `=`); empty items skipped.
    pub fn parse(s: &str) -> Result<Self, ArgsError> {
        let mut pairs = Vec::new();
        for item in s.split(';').filter(|i| !i.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| ArgsError::InvalidPair(item.to_string()))?;
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(Self { pairs })
    }

    /// libcni's `types.LoadArgs`: every item must be exactly `K=V` (a value containing `=` is an
    /// error) and every key must be in `known` unless `IgnoreUnknown` is `1`/`true`/`True`.
    pub fn parse_strict(s: &str, known: &[&str]) -> Result<Self, ArgsError> {
        let mut pairs = Vec::new();
        for item in s.split(';').filter(|i| !i.is_empty()) {
            let parts: Vec<&str> = item.split('=').collect();
            if parts.len() != 2 {
                return Err(ArgsError::InvalidPair(item.to_string()));
            }
            pairs.push((parts[0].to_string(), parts[1].to_string()));
        }
        let args = Self { pairs };
        let ignore_unknown = matches!(args.get("IgnoreUnknown"), Some("1" | "true" | "True"));
        if !ignore_unknown {
            let unknown: Vec<String> = args
                .pairs
                .iter()
                .filter(|(k, _)| k != "IgnoreUnknown" && !known.contains(&k.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            if !unknown.is_empty() {
                return Err(ArgsError::UnknownKeys(unknown));
            }
        }
        Ok(args)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Append a pair, keeping any earlier value of the key (lookups see the new one).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// Set `key` (replacing every earlier occurrence) or append it.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        if self.pairs.iter().any(|(k, _)| k == key) {
            self.pairs.retain(|(k, _)| k != key);
        }
        self.pairs.push((key.to_string(), value));
    }

    /// Every pair, in order, duplicates included.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// No pairs at all (an empty or all-`;` `CNI_ARGS`).
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl fmt::Display for CniArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl From<Vec<(String, String)>> for CniArgs {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_value_wins_and_order_is_kept() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=a;K8S_POD_NAME=b").unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("b"));
        assert_eq!(a.to_string(), "IgnoreUnknown=1;K8S_POD_NAME=a;K8S_POD_NAME=b");
    }

    #[test]
    fn strict_parse_follows_libcni() {
        assert!(CniArgs::parse_strict("A=b=c", &["A"]).is_err());
        assert_eq!(
            CniArgs::parse_strict("FOO=1;BAR=2", &["A"]).unwrap_err().to_string(),
            r#"ARGS: unknown args ["FOO" "BAR"]"#
        );
        assert!(CniArgs::parse_strict("FOO=1;IgnoreUnknown=true", &["A"]).is_ok());
        assert!(CniArgs::parse_strict("", &[]).unwrap().is_empty());
    }

    #[test]
    fn lenient_parse_allows_equals_in_values() {
        assert_eq!(CniArgs::parse("BLAH=foo=bar").unwrap().get("BLAH"), Some("foo=bar"));
        assert!(CniArgs::parse("novalue").is_err());
    }
}
