use super::*;
use crate::model::{Bandwidth, PortMapping};
use serde_json::json;

fn sel(s: &str) -> Result<Vec<NetworkSelectionElement>, SelectionError> {
    parse_network_selection(s, "podns")
}

fn err(s: &str) -> String {
    sel(s).unwrap_err().to_string()
}

fn el(ns: &str, name: &str, ifname: &str) -> NetworkSelectionElement {
    NetworkSelectionElement { namespace: ns.into(), name: name.into(), interface: ifname.into(), ..Default::default() }
}

#[test]
fn a_pod_may_request_at_most_max_networks() {
    let list = |n: usize| (0..n).map(|i| format!("net{i}")).collect::<Vec<_>>().join(",");
    assert_eq!(parse_network_selection(&list(MAX_NETWORKS_PER_POD), "default").unwrap().len(), MAX_NETWORKS_PER_POD);
    let e = parse_network_selection(&list(MAX_NETWORKS_PER_POD + 1), "default").unwrap_err();
    assert!(e.to_string().contains("at most 128"), "{e}");
}

#[test]
fn empty_annotation_selects_nothing() {
    assert_eq!(sel("").unwrap(), vec![]);
    // No `[`, `{` or `"`: the comma form, so this names a network "null".
    assert_eq!(sel("null").unwrap(), vec![el("podns", "null", "")]);
    assert!(sel("[null][").unwrap_err().to_string().contains("JSON"));
    assert_eq!(sel("[]").unwrap(), vec![]);
}

// §12.4 item 57 (accepted forms) and §5.8 examples
#[test]
fn comma_form_accepts() {
    assert_eq!(sel("net1").unwrap(), vec![el("podns", "net1", "")]);
    assert_eq!(sel("default/net1").unwrap(), vec![el("default", "net1", "")]);
    assert_eq!(sel("net1@my_interface").unwrap(), vec![el("podns", "net1", "my_interface")]);
    assert_eq!(sel("default/net1@my_interface").unwrap(), vec![el("default", "net1", "my_interface")]);
    assert_eq!(
        sel(" macvlan-conf , kube-system/sriov@net5,a-b-1 @ x ").unwrap(),
        vec![el("podns", "macvlan-conf", ""), el("kube-system", "sriov", "net5"), el("podns", "a-b-1", "x")]
    );
    // Exactly 15 bytes is fine.
    assert_eq!(sel("n@abcdefghijklmno").unwrap()[0].interface, "abcdefghijklmno");
}

// §5.8: an empty item is kept (the NAD lookup fails later)
#[test]
fn comma_form_empty_items() {
    assert_eq!(sel("net1,").unwrap(), vec![el("podns", "net1", ""), el("podns", "", "")]);
    assert_eq!(sel(" ").unwrap(), vec![el("podns", "", "")]);
    assert_eq!(sel("/net1").unwrap(), vec![el("podns", "net1", "")]);
    assert_eq!(sel("net1@").unwrap(), vec![el("podns", "net1", "")]);
}

// §12.4 item 57 (rejected forms)
#[test]
fn comma_form_rejects() {
    assert_eq!(
        err("ns/net1/foo"),
        "parsePodNetworkAnnotation: parsePodNetworkObjectName: Invalid network object \
             (failed at '/')"
    );
    assert_eq!(
        err("net1@eth0@eth1"),
        "parsePodNetworkAnnotation: parsePodNetworkObjectName: Invalid network object \
             (failed at '@')"
    );
    assert_eq!(
        err("ns@x/net1"),
        "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match ns@x with \
             regex '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"
    );
    assert_eq!(
        err("net1@my interface"),
        "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match interface \
             name my interface"
    );
    assert_eq!(
        err("net1@abcdefghijklmnop"),
        "parsePodNetworkAnnotation: parsePodNetworkObjectName: Failed to match interface \
             name abcdefghijklmnop"
    );
    for bad in ["Net1", "-net", "net-", "net_1", "ns./net", "net1@a\tb", "ok,BAD"] {
        assert!(sel(bad).is_err(), "{bad:?} should be rejected");
    }
}

// §12.4 items 45, 46
#[test]
fn json_form() {
    let got = sel(r#"[{"name":"macvlan-conf","ips":["10.1.1.11/24"],
            "default-route":["10.1.1.254"]},
            {"name":"sriov","namespace":"other","interface":"net5","mac":"c2:b0:57:49:47:f1",
             "infiniband-guid":"c2:b0:57:49:47:f1:00:01","deviceID":"0000:03:00.1",
             "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
             "bandwidth":{"ingressRate":1000,"ingressBurst":10,"egressRate":2000,"egressBurst":20},
             "cni-args":{"foo":"bar"}}]"#)
    .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].namespace, "podns");
    assert_eq!(got[0].ips, vec!["10.1.1.11/24"]);
    assert_eq!(got[0].default_route, Some(vec!["10.1.1.254".parse::<IpAddr>().unwrap()]));
    let e = &got[1];
    assert_eq!((e.namespace.as_str(), e.interface.as_str()), ("other", "net5"));
    assert_eq!(e.mac, "c2:b0:57:49:47:f1");
    assert_eq!(e.device_id, "0000:03:00.1");
    assert_eq!(
        e.port_mappings,
        vec![PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() }]
    );
    assert_eq!(
        e.bandwidth,
        Some(Bandwidth { ingress_rate: 1000, ingress_burst: 10, egress_rate: 2000, egress_burst: 20 })
    );
    assert_eq!(e.cni_args.as_ref().unwrap()["foo"], json!("bar"));
    assert_eq!(e.default_route, None);
    // An empty default-route list is kept as present.
    assert_eq!(sel(r#"[{"name":"a","default-route":[]}]"#).unwrap()[0].default_route, Some(vec![]));
}

#[test]
fn json_form_go_decoding_rules() {
    // interfaceRequest alias, case-insensitive keys, null = absent, unknown keys ignored,
    // last duplicate wins.
    let got = sel(r#"[{"Name":"a","NAMESPACE":"ns","interfaceRequest":"eth9","ips":null,
                 "ipam-claim-reference":"x","name":"b",
                 "PortMappings":[{"HostPort":1,"containerport":2}]}]"#)
    .unwrap();
    assert_eq!(got[0].name, "b");
    assert_eq!(got[0].namespace, "ns");
    assert_eq!(got[0].interface, "eth9");
    assert_eq!(got[0].requested_interface(), "eth9");
    assert_eq!(got[0].port_mappings[0].host_port, 1);
    assert_eq!(got[0].port_mappings[0].container_port, 2);
    let got = sel(r#"[{"name":"a","interface":"e1","interfaceRequest":"e2"}]"#).unwrap();
    assert_eq!(got[0].interface, "e1");
    // Names are not validated in the JSON form.
    assert_eq!(sel(r#"[{"name":"Not_Valid"}]"#).unwrap()[0].name, "Not_Valid");
}

#[test]
fn json_form_errors() {
    const JSON_PREFIX: &str = "parsePodNetworkAnnotation: failed to parse pod Network \
                                   Attachment Selection Annotation JSON format: ";
    for bad in [
        "[{\"name\":",
        "{\"name\":\"a\"}",
        "\"a\"",
        "[1]",
        "[null]",
        r#"[{"name":1}]"#,
        r#"[{"name":"a","ips":"10.0.0.1"}]"#,
        r#"[{"name":"a","default-route":["nope"]}]"#,
        r#"[{"name":"a","bandwidth":{"ingressRate":1.5}}]"#,
        "[{\"name\":\"a\"}] trailing",
    ] {
        let e = err(bad);
        assert!(e.starts_with(JSON_PREFIX), "{bad}: {e}");
    }
    assert_eq!(
        err(r#"[{"name":"a","ips":["10.0.0.1/33"]}]"#),
        "failed to parse CIDR \"10.0.0.1/33\": invalid CIDR address: 10.0.0.1/33"
    );
    assert_eq!(err(r#"[{"name":"a","ips":["10.0.0.300"]}]"#), "failed to parse IP address \"10.0.0.300\"");
    assert_eq!(
        err(r#"[{"name":"a","mac":"c2:b0:57:49:47"}]"#),
        "parsePodNetworkAnnotation: failed to mac: address c2:b0:57:49:47: invalid MAC address"
    );
    assert_eq!(
        err(r#"[{"name":"a","infiniband-guid":"zz"}]"#),
        "parsePodNetworkAnnotation: failed to validate infiniband GUID: address zz: invalid \
             MAC address"
    );
}

#[test]
fn hardware_addresses_like_go() {
    for ok in [
        "00:00:5e:00:53:01",
        "02:00:5e:10:00:00:00:01",
        "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
        "00-00-5e-00-53-01",
        "0000.5e00.5301",
        "0200.5e10.0000.0001",
        "0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001",
        "AB:cd:EF:01:02:03",
    ] {
        assert!(parse_hardware_addr(ok).is_ok(), "{ok}");
    }
    assert_eq!(parse_hardware_addr("0000.5e00.5301").unwrap(), vec![0, 0, 0x5e, 0, 0x53, 1]);
    for bad in [
        "",
        "00:00:5e:00:53",
        "00:00:5e:00:53:01:02",
        "00-00:5e:00:53:01",
        "00:00:5e:00:53:0g",
        "0000.5e00.53011",
        "0000:5e00:5301",
        "00:00:5e:00:53:1",
        "é0:00:5e:00:53:01",
    ] {
        assert!(parse_hardware_addr(bad).is_err(), "{bad}");
    }
}

#[test]
fn ip_requests() {
    for ok in ["10.1.1.1", "10.1.1.1/24", "2001:db8::1", "2001:db8::1/64", "::ffff:1.2.3.4"] {
        assert!(validate_ip_request(ok).is_ok(), "{ok}");
    }
    for bad in ["", "10.1.1", "10.1.1.1/", "10.1.1.1/40", "fe80::1%eth0", "01.1.1.1", "x/8"] {
        assert!(validate_ip_request(bad).is_err(), "{bad}");
    }
}

// §5.7, §13 item 25
#[test]
fn default_network() {
    let d = parse_default_network("openshift-sdn", "kube-system").unwrap();
    assert_eq!(d, el("kube-system", "openshift-sdn", ""));
    let d = parse_default_network("ns/net@eth1", "kube-system").unwrap();
    assert_eq!(d, el("ns", "net", "eth1"));
    let d = parse_default_network(r#"[{"name":"x","mac":"02:00:00:00:00:01"}]"#, "m").unwrap();
    assert_eq!((d.namespace.as_str(), d.mac.as_str()), ("m", "02:00:00:00:00:01"));
    assert_eq!(
        parse_default_network("a,b", "m").unwrap_err().to_string(),
        "tryLoadK8sPodDefaultNetwork: more than one default network is specified: a,b"
    );
    let e = parse_default_network("", "m").unwrap_err().to_string();
    assert!(e.contains("pod annotation does not have \"network\" as key"), "{e}");
    let e = parse_default_network("[]", "m").unwrap_err().to_string();
    assert!(e.contains("no default network is specified"), "{e}");
    let e = parse_default_network("A/b", "m").unwrap_err().to_string();
    assert!(e.starts_with("tryLoadK8sPodDefaultNetwork: failed to parse CRD object: "), "{e}");
}

// §12.4 item 54
#[test]
fn namespace_isolation() {
    let elements = sel("kube-system/net1").unwrap();
    let default_only = vec!["default".to_string()];
    assert_eq!(
        check_namespace_isolation("test", &elements, &default_only).unwrap_err().to_string(),
        "GetNetworkDelegates: namespace isolation enabled, annotation violates permission, \
             pod is in namespace test but refers to target namespace kube-system"
    );
    let global: Vec<String> = "kube-system,donkey-kong".split(',').map(String::from).collect();
    assert!(check_namespace_isolation("test", &elements, &global).is_ok());
    // Same namespace is always allowed; "default" is allowed by the default list.
    let elements = parse_network_selection("net1,default/net2", "test").unwrap();
    assert!(check_namespace_isolation("test", &elements, &default_only).is_ok());
    assert!(check_namespace_isolation("test", &elements, &global).is_err());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    const LABEL: &str = "[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?";

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            let _ = parse_network_selection(&s, "ns");
            let _ = parse_default_network(&s, "ns");
        }

        #[test]
        fn never_panics_on_annotation_like_input(s in "[\\[\\]{}\",:a-z0-9/@. -]{0,40}") {
            let _ = parse_network_selection(&s, "ns");
        }

        #[test]
        fn json_elements_never_panic(v in prop::collection::vec(
            prop::collection::btree_map(
                prop::sample::select(ELEMENT_FIELDS.to_vec()),
                prop_oneof![
                    Just(Value::Null),
                    any::<i64>().prop_map(|n| json!(n)),
                    ".{0,20}".prop_map(Value::String),
                    prop::collection::vec(".{0,20}".prop_map(Value::String), 0..3)
                        .prop_map(Value::Array),
                    Just(json!({"ingressRate": 1, "hostPort": "x"})),
                ],
                0..5,
            ),
            0..3,
        )) {
            let s = serde_json::to_string(&v).unwrap();
            let _ = parse_network_selection(&s, "ns");
        }

        #[test]
        fn mac_parser_never_panics(s in any::<String>()) {
            let _ = parse_hardware_addr(&s);
        }

        #[test]
        fn comma_form_round_trips(
            items in prop::collection::vec(
                (prop::option::of(LABEL), LABEL, prop::option::of("[a-zA-Z0-9_.-]{1,15}")),
                1..4,
            ),
        ) {
            let annotation = items
                .iter()
                .map(|(ns, name, ifname)| {
                    let mut s = String::new();
                    if let Some(ns) = ns {
                        s.push_str(ns);
                        s.push('/');
                    }
                    s.push_str(name);
                    if let Some(ifname) = ifname {
                        s.push('@');
                        s.push_str(ifname);
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join(" , ");
            let got = parse_network_selection(&annotation, "dflt").unwrap();
            prop_assert_eq!(got.len(), items.len());
            for (e, (ns, name, ifname)) in got.iter().zip(&items) {
                prop_assert_eq!(&e.namespace, ns.as_deref().unwrap_or("dflt"));
                prop_assert_eq!(&e.name, name);
                prop_assert_eq!(&e.interface, ifname.as_deref().unwrap_or(""));
            }
        }
    }
}
