//! One representative 1.1.0 result converted to each spec version: what each wire shape looks like.

use cni::result::CniResult;
use cni::version::ALL;

const REPRESENTATIVE: &str = r#"{
  "cniVersion": "1.1.0",
  "interfaces": [
    { "name": "cni0", "mac": "00:11:22:33:44:55" },
    { "name": "veth3243", "mac": "55:44:33:22:11:11", "mtu": 1500 },
    { "name": "eth0", "mac": "99:88:77:66:55:44", "mtu": 1500, "sandbox": "/var/run/netns/blue",
      "socketPath": "/run/x.sock", "pciID": "0000:04:00.5" }
  ],
  "ips": [
    { "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2 },
    { "address": "10.2.0.5/16", "interface": 2 },
    { "address": "2001:db8::5/64", "gateway": "2001:db8::1", "interface": 2 }
  ],
  "routes": [
    { "dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1400, "advmss": 1360, "priority": 100, "table": 254, "scope": 0 },
    { "dst": "::/0", "gw": "2001:db8::1" }
  ],
  "dns": { "nameservers": ["10.1.0.1"], "domain": "example.org", "search": ["example.org"], "options": ["ndots:5"] }
}"#;

#[test]
fn representative_result_in_every_version() {
    let r = CniResult::from_json(REPRESENTATIVE.as_bytes()).unwrap();
    for v in ALL {
        let converted = r.convert_to_str(v).unwrap();
        insta::assert_snapshot!(format!("result_{}", v.replace('.', "_")), converted.to_json_pretty());
    }
}
