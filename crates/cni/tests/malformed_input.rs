//! Parsers never panic, whatever they are given: arbitrary bytes, and arbitrary JSON built from
//! the keys the parsers look at (so the deep paths are reached too).

use cni::runtime::CacheEntry;
use cni::{CniArgs, CniError, CniResult, NetworkConfig, VersionInfo};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "plugins",
    "capabilities",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "supportedVersions",
    "interfaces",
    "ips",
    "ip4",
    "ip6",
    "ip",
    "routes",
    "dns",
    "address",
    "gateway",
    "interface",
    "version",
    "dst",
    "gw",
    "mtu",
    "table",
    "scope",
    "mac",
    "sandbox",
    "nameservers",
    "code",
    "msg",
    "kind",
    "config",
    "result",
    "cniArgs",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        prop_oneof![
            Just("1.0.0"),
            Just("0.2.0"),
            Just("0.4.0"),
            Just("1.1.0"),
            Just(""),
            Just("10.0.0.1/24"),
            Just("::/0"),
            Just("10.0.0.1"),
            Just("cniCacheV1"),
            Just("eyJ9"),
            Just("true"),
        ]
        .prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn feed(bytes: &[u8]) {
    let _ = CniResult::from_json(bytes);
    if let Ok(r) = CniResult::from_json(bytes) {
        for v in cni::version::ALL {
            let _ = r.convert_to_str(v).map(|c| c.to_json());
        }
    }
    let _ = NetworkConfig::from_bytes(bytes);
    let _ = VersionInfo::decode(bytes);
    let _ = CniError::from_json(bytes);
    let _ = CacheEntry::parse(bytes);
    let s = String::from_utf8_lossy(bytes);
    let _ = CniArgs::parse(&s);
    let _ = CniArgs::parse_strict(&s, &["IP", "MAC"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        feed(&bytes);
    }

    #[test]
    fn arbitrary_json(v in json()) {
        feed(v.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_cni_args(s in "[A-Za-z=;0-9 ]{0,40}") {
        let _ = CniArgs::parse(&s);
        let _ = CniArgs::parse_strict(&s, &["IP"]);
    }
}
