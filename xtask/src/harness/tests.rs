use super::*;

#[test]
fn parses_ip_json() {
    let addr = r#"[{"ifindex":1,"ifname":"lo","operstate":"UNKNOWN","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"}]},
      {"ifindex":3,"ifname":"net1","operstate":"UP","address":"02:aa:bb:cc:dd:ee","addr_info":[{"family":"inet","local":"10.250.0.10","prefixlen":24,"scope":"global"},{"family":"inet6","local":"fe80::1","prefixlen":64,"scope":"link"}]}]"#;
    let v = parse_ip_addr(addr).unwrap();
    assert_eq!(v[1].addrs, vec!["10.250.0.10/24"]);
    assert_eq!(v[1].mac, "02:aa:bb:cc:dd:ee");
    let routes = parse_ip_route(r#"[{"dst":"default","gateway":"10.248.0.1","dev":"eth0","flags":[]},{"dst":"10.248.0.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"10.248.0.2","flags":[]}]"#).unwrap();
    assert_eq!(routes[0].to_string(), "default via 10.248.0.1 dev eth0");
    assert_eq!(routes[1].to_string(), "10.248.0.0/24 dev eth0");
}

#[test]
fn parses_network_status() {
    let pod = serde_json::json!({"metadata":{"annotations":{NETWORK_STATUS:
        "[{\n    \"name\": \"cluster\",\n    \"interface\": \"eth0\",\n    \"ips\": [\n        \"10.248.0.2\"\n    ],\n    \"mac\": \"aa\",\n    \"default\": true,\n    \"dns\": {},\n    \"gateway\": [\"10.248.0.1\"]\n},{\n    \"name\": \"ns/macvlan-net\",\n    \"interface\": \"net1\",\n    \"ips\": [\"10.250.0.10\"],\n    \"mac\": \"bb\",\n    \"dns\": {}\n}]"}}});
    let st = network_status(&pod).unwrap().unwrap();
    assert_eq!(st.len(), 2);
    assert!(st[0].default && !st[1].default);
    assert_eq!(st[1].interface, "net1");
    assert_eq!(st[0].gateway, vec!["10.248.0.1"]);
    assert!(network_status(&serde_json::json!({"metadata":{}})).unwrap().is_none());
}
