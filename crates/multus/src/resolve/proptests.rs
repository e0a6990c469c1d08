use super::*;
use crate::delegate::config_from_nad;
use crate::model::Nad;
use crate::model::NetworkSelectionElement;
use crate::plan::{Operation, PlanContext, RuntimeConfig, plan_invocation};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const KEYS: &[&str] = &[
    "type",
    "name",
    "plugins",
    "args",
    "cni",
    "capabilities",
    "cniVersion",
    "ipam",
    "dns",
    "deviceID",
    "ips",
    "mac",
    "portMappings",
    "bandwidth",
    "routes",
    "dst",
    "gw",
    "ip4",
    "ip6",
    "interfaces",
    "sandbox",
    "interface",
    "address",
    "gateway",
    "default-route",
    "namespace",
    "cni-args",
    "x",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("".to_string()),
            Just("bridge".to_string()),
            Just("0.0.0.0/0".to_string()),
            Just("::/0".to_string()),
            Just("10.1.1.254".to_string()),
            Just("1.0.0".to_string()),
            Just("0.2.0".to_string()),
            "[a-z0-9./:@,-]{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn element() -> impl Strategy<Value = Option<NetworkSelectionElement>> {
    json_value().prop_map(|v| serde_json::from_value(v).ok())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn loaders_and_planner_never_panic(conf in json_value(), el in element(), rc in json_value(), dev in "[a-z0-9:]{0,6}") {
        let bytes = serde_json::to_vec(&conf).unwrap();
        let _ = config_from_nad("nad", &String::from_utf8_lossy(&bytes), Path::new("/nonexistent"));
        if let Ok(mut d) = load_delegate(&bytes, el.as_ref(), &dev, "res") {
            let rc = RuntimeConfig::from_value(&rc);
            let ctx = PlanContext { ifname: "eth0", runtime_config: Some(&rc), process_cni_args: Some("A=b;c;=d=e"), ..Default::default() };
            for op in [Operation::Add, Operation::Del] {
                let _ = plan_invocation(&d, 3, &ctx, op);
            }
            d.is_master = true;
            let _ = plan_invocation(&d, 0, &ctx, Operation::Add);
            let _ = d.inject_cni_version_if_missing("1.0.0");
            let cached = crate::cache::parse_cache(&crate::cache::serialize_delegates(std::slice::from_ref(&d))).unwrap();
            prop_assert_eq!(cached[0].bytes(), d.bytes());
        }
    }

    #[test]
    fn cache_and_results_never_panic(v in json_value(), v4: bool, v6: bool) {
        let _ = crate::cache::parse_cache(&serde_json::to_vec(&v).unwrap());
        let _ = crate::cache::parse_cache(&serde_json::to_vec(&json!([v])).unwrap());
        let mut r = v.clone();
        let _ = crate::default_route::remove_default_routes(&mut r, v4, v6);
        let mut r = v.clone();
        let _ = crate::default_route::add_default_routes(&mut r, &["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()]);
        let _ = crate::status::network_statuses_from_json(&v, "n", v4, None);
    }

    #[test]
    fn resolver_never_panics(nets in "[a-z0-9/@, \\[\\]{}\":-]{0,40}", default_net in proptest::option::of("[a-z0-9/@,]{0,12}"), conf in json_value(), isolation: bool) {
        let nad_conf = serde_json::to_string(&conf).unwrap();
        let nads: BTreeMap<(String, String), Nad> = ["a", "b", "net1"].iter().map(|n| (
            ("default".to_string(), n.to_string()),
            Nad { namespace: "default".into(), name: n.to_string(), config: nad_conf.clone(), ..Default::default() },
        )).collect();
        let mut annotations = BTreeMap::new();
        annotations.insert(NETWORKS_ANNOTATION.to_string(), nets);
        if let Some(d) = default_net {
            annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
        }
        let pod = PodInfo { namespace: "default".into(), name: "p".into(), annotations, ..Default::default() };
        let settings = ResolveSettings {
            static_delegates: vec![json!({"name":"s","type":"bridge"})],
            namespace_isolation: isolation,
            ..Default::default()
        };
        let mut devices: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let _ = resolve_add_delegates(&settings, None, Some(&pod), &nads, &mut devices);
        let _ = resolve_del_delegates(&settings, None, &pod, &nads, &mut devices);
    }

    /// The daemon fetches `nad_keys` before resolving: resolution never asks for another.
    #[test]
    fn resolution_looks_up_only_the_keys_named_beforehand(
        nets in "(([a-z]{1,3}/)?[a-z]{1,3}(@n[0-9])?,){0,4}|\\[(\\{\"name\":\"[a-z]{1,3}\"(,\"namespace\":\"[a-z]{1,3}\")?\\},?){0,3}\\]",
        default_net in proptest::option::of("([a-z]{1,2}/)?[a-z]{1,3}"),
        cluster in "[a-z]{1,3}|/no/such/path",
        defaults in proptest::collection::vec("[a-z]{1,2}", 0..3),
        pod_ns in "default|kube-system|[a-z]{1,3}",
        isolation: bool,
        present in proptest::collection::vec(("[a-z]{1,3}", "[a-z]{1,3}"), 0..6),
    ) {
        let mut nads: BTreeMap<(String, String), Nad> = BTreeMap::new();
        for (ns, name) in present.iter().chain([("kube-system".to_string(), cluster.clone())].iter()) {
            nads.insert((ns.clone(), name.clone()), Nad { namespace: ns.clone(), name: name.clone(),
                config: r#"{"cniVersion":"1.0.0","type":"bridge"}"#.into(), ..Default::default() });
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(NETWORKS_ANNOTATION.to_string(), nets);
        if let Some(d) = default_net {
            annotations.insert(DEFAULT_NETWORK_ANNOTATION.to_string(), d);
        }
        let pod = PodInfo { namespace: pod_ns, name: "p".into(), annotations, ..Default::default() };
        let settings = ResolveSettings {
            cluster_network: cluster,
            default_networks: defaults,
            namespace_isolation: isolation,
            ..Default::default()
        };
        struct Recording<'a>(&'a BTreeMap<(String, String), Nad>, std::cell::RefCell<Vec<(String, String)>>);
        impl NadLookup for Recording<'_> {
            fn get_nad(&self, namespace: &str, name: &str) -> Option<Nad> {
                self.1.borrow_mut().push((namespace.to_string(), name.to_string()));
                self.0.get_nad(namespace, name)
            }
        }
        let keys = nad_keys(&settings, Some(&pod));
        let recording = Recording(&nads, Default::default());
        let _ = resolve_add_delegates(&settings, None, Some(&pod), &recording, &mut NoDevices);
        let _ = resolve_del_delegates(&settings, None, &pod, &recording, &mut NoDevices);
        for asked in recording.1.borrow().iter() {
            prop_assert!(keys.contains(asked), "{asked:?} was looked up but not in {keys:?}");
        }
    }
}
