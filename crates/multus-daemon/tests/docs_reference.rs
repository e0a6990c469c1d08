//! `docs/configuration.md` against the code, both ways: every key the parsers read, every
//! daemon flag, environment variable, annotation, selection field and metric is documented, and
//! nothing documented is unknown to the code.
//!
//! Where the keys come from:
//! - `multus::config::{DAEMON_CONFIG_KEYS, NETCONF_KEYS, LOG_OPTIONS_KEYS,
//!   PER_NODE_CERTIFICATE_KEYS}` and `multus::generate::GENERATOR_KEYS` (each checked against
//!   its parser by a unit test in `multus`);
//! - the daemon's own keys: `raw.get("…")` and `const …KEY: &str = "…"` in
//!   `crates/multus-daemon/src` and `crates/multus-node/src` (non-test code);
//! - flags: `multus_daemon::flags::{help_text, CONFIG_FLAGS, NOT_FOR_THICK}`;
//! - environment variables: `env::var("…")`/`var_os("…")` in those sources;
//! - annotations: `multus::model`'s constants; selection fields: the serde names of
//!   `NetworkSelectionElement`; metrics: the `multus_*` names in the daemon's `metrics.rs`.

use multus::model::{Bandwidth, NetworkSelectionElement, PortMapping};
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc() -> String {
    std::fs::read_to_string(repo().join("docs/configuration.md")).expect("docs/configuration.md")
}

/// The text of the `## <heading>` section (up to the next `## `).
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("no section ## {heading}"));
    let body = &doc[start + 1..];
    let end = body[3..].find("\n## ").map(|i| i + 3).unwrap_or(body.len());
    &body[..end]
}

/// The code spans of the first cell of every table row of a section.
fn documented(section: &str) -> BTreeSet<String> {
    let code = Regex::new(r"`([^`]+)`").expect("regex");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            code.captures_iter(first).map(|c| c[1].to_string()).collect::<Vec<_>>()
        })
        .collect()
}

/// Non-test source of every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            out.push((path, code));
        }
    }
    out
}

fn captures(pattern: &str, texts: &[(PathBuf, String)]) -> BTreeSet<String> {
    let re = Regex::new(pattern).expect("regex");
    texts.iter().flat_map(|(_, t)| re.captures_iter(t).map(|c| c[1].to_string()).collect::<Vec<_>>()).collect()
}

/// The daemon's sources, with what it shares with multusctl (`multus-node`: the kube client's
/// environment).
fn daemon_sources() -> Vec<(PathBuf, String)> {
    let mut texts = sources(&repo().join("crates/multus-daemon/src"));
    texts.extend(sources(&repo().join("crates/multus-node/src")));
    texts
}

fn set(items: impl IntoIterator<Item = impl Into<String>>) -> BTreeSet<String> {
    items.into_iter().map(Into::into).collect()
}

/// Compare, naming what is missing on each side.
fn check(what: &str, known: &BTreeSet<String>, documented: &BTreeSet<String>) {
    let undocumented: Vec<&String> = known.difference(documented).collect();
    let unknown: Vec<&String> = documented.difference(known).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "{what}: in the code but not in docs/configuration.md: {undocumented:?}; documented but unknown to the code: {unknown:?}"
    );
}

#[test]
fn daemon_config_keys() {
    let mut known = set(multus::config::DAEMON_CONFIG_KEYS.iter().copied());
    known.extend(set(multus::config::NETCONF_KEYS.iter().copied()));
    known.extend(set(multus::generate::GENERATOR_KEYS.iter().copied()));
    known.extend(multus::config::LOG_OPTIONS_KEYS.iter().map(|k| format!("logOptions.{k}")));
    known.extend(multus::config::PER_NODE_CERTIFICATE_KEYS.iter().map(|k| format!("perNodeCertificate.{k}")));
    let daemon = daemon_sources();
    let extensions = captures(r#"raw\s*\.get\(\s*"([^"]+)""#, &daemon)
        .union(&captures(r#"const\s+[A-Z_]*KEY\s*:\s*&str\s*=\s*"([^"]+)""#, &daemon))
        .cloned()
        .collect::<BTreeSet<_>>();
    assert!(extensions.contains("delegateTimeoutSeconds"), "the scan finds the daemon's keys: {extensions:?}");
    known.extend(extensions.iter().cloned());
    let mut documented = documented(section(&doc(), "`daemon-config.json` keys"));
    // The fields of the daemon's own object keys are parsed by hand-written code: accept the
    // documented ones whose parent is one of its keys.
    documented.retain(|k| !k.split_once('.').is_some_and(|(parent, _)| extensions.contains(parent)));
    check("daemon-config.json keys", &known, &documented);
}

#[test]
fn daemon_flags() {
    let help = multus_daemon::flags::help_text();
    let flag = Regex::new(r"-([a-zA-Z][a-zA-Z-]*)").expect("regex");
    let mut known: BTreeSet<String> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-') && l.starts_with("  "))
        .flat_map(|l| {
            let names = l.trim().split(' ').take_while(|w| w.starts_with('-')).collect::<Vec<_>>().join(" ");
            flag.captures_iter(&names).map(|c| c[1].to_string()).collect::<Vec<_>>()
        })
        .collect();
    for f in multus_daemon::flags::CONFIG_FLAGS {
        known.insert(f.name.to_string());
        known.extend(f.aliases.iter().map(|a| a.to_string()));
    }
    known.extend(multus_daemon::flags::NOT_FOR_THICK.iter().map(|(n, _)| n.to_string()));
    assert!(known.contains("config") && known.contains("h"), "{known:?}");
    let documented: BTreeSet<String> = documented(section(&doc(), "`multus-daemon` command line"))
        .into_iter()
        .filter_map(|c| c.strip_prefix('-').map(str::to_string))
        .collect();
    check("multus-daemon flags", &known, &documented);
}

#[test]
fn daemon_environment() {
    let known = captures(r#"env::var(?:_os)?\(\s*"([A-Z_]+)"\s*\)"#, &daemon_sources());
    assert!(known.contains("MULTUS_NODE_NAME"), "{known:?}");
    check("environment variables", &known, &documented(section(&doc(), "Environment variables of `multus-daemon`")));
}

#[test]
fn annotations() {
    use multus::model::*;
    let known = set([
        NETWORKS_ANNOTATION,
        DEFAULT_NETWORK_ANNOTATION,
        NETWORK_STATUS_ANNOTATION,
        CONFIG_SOURCE_ANNOTATION,
        RESOURCE_NAME_ANNOTATION,
    ]);
    check("annotations", &known, &documented(section(&doc(), "Annotations")));
}

#[test]
fn selection_element_fields() {
    // Every field set, so that serde writes every name.
    let full = NetworkSelectionElement {
        name: "n".into(),
        namespace: "ns".into(),
        interface: "i".into(),
        interface_request: "r".into(),
        ips: vec!["10.0.0.1".into()],
        mac: "m".into(),
        infiniband_guid: "g".into(),
        port_mappings: vec![PortMapping::default()],
        bandwidth: Some(Bandwidth::default()),
        device_id: "d".into(),
        cni_args: Some(Default::default()),
        default_route: Some(vec![]),
    };
    let value = serde_json::to_value(&full).expect("serialise");
    let known: BTreeSet<String> = value.as_object().expect("object").keys().cloned().collect();
    assert_eq!(known.len(), 12, "a field was added to NetworkSelectionElement: set it above too");
    check("selection element fields", &known, &documented(section(&doc(), "Selection element fields")));
}

#[test]
fn metrics() {
    let metrics_rs: Vec<(PathBuf, String)> =
        daemon_sources().into_iter().filter(|(p, _)| p.ends_with("metrics.rs")).collect();
    let known = captures(r#""(multus_[a-z_]+)""#, &metrics_rs);
    assert!(known.contains("multus_server_request_total"), "{known:?}");
    check("metrics", &known, &documented(section(&doc(), "Metrics")));
}
