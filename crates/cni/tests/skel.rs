//! `skel::run_with` against every row of the skel error table (cni.md §1.3) and the
//! per-command output rules.

use cni::result::{Interface, IpConfig, Route};
use cni::skel::{self, Plugin, Request, ValidAttachment};
use cni::{CniError, CniResult, Command, PluginEnv, Version};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;

const ALL_JSON: &str = r#"["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#;

/// A plugin that records which callback ran and answers ADD with a fixed 1.1.0 result.
#[derive(Default)]
struct TestPlugin {
    calls: RefCell<Vec<&'static str>>,
    versions: Option<Vec<String>>,
    about: String,
    fail_with: Option<CniError>,
    add_result: Option<CniResult>,
    panic_on_add: bool,
}

fn sample_result() -> CniResult {
    let mut r = CniResult::empty(Version::V1_1_0);
    r.interfaces.push(Interface {
        name: "eth0".into(),
        mac: "02:00:00:00:00:01".into(),
        mtu: Some(1400),
        sandbox: "/var/run/netns/x".into(),
        ..Default::default()
    });
    r.ips.push(IpConfig {
        interface: Some(0),
        address: "10.1.0.5/24".parse().unwrap(),
        gateway: Some("10.1.0.1".parse().unwrap()),
    });
    r.routes.push(Route::new("0.0.0.0/0".parse().unwrap(), Some("10.1.0.1".parse().unwrap())));
    r
}

impl TestPlugin {
    fn called(&self, what: &'static str) -> Result<(), CniError> {
        self.calls.borrow_mut().push(what);
        match &self.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Plugin for TestPlugin {
    fn add(&self, _req: &Request) -> Result<CniResult, CniError> {
        self.called("ADD")?;
        if self.panic_on_add {
            panic!("boom");
        }
        Ok(self.add_result.clone().unwrap_or_else(sample_result))
    }
    fn del(&self, _req: &Request) -> Result<(), CniError> {
        self.called("DEL")
    }
    fn check(&self, _req: &Request) -> Result<(), CniError> {
        self.called("CHECK")
    }
    fn status(&self, _req: &Request) -> Result<(), CniError> {
        self.called("STATUS")
    }
    fn gc(&self, _req: &Request) -> Result<(), CniError> {
        self.called("GC")
    }
    fn supported_versions(&self) -> Vec<String> {
        self.versions.clone().unwrap_or_else(|| cni::version::ALL.iter().map(|s| s.to_string()).collect())
    }
    fn about(&self) -> String {
        self.about.clone()
    }
}

struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The single error object on stdout (fails the test if there is not exactly one).
    fn error(&self) -> CniError {
        assert_eq!(self.status, 1, "expected failure, stdout: {}", self.stdout);
        let values: Vec<Value> =
            serde_json::Deserializer::from_str(&self.stdout).into_iter::<Value>().map(|v| v.unwrap()).collect();
        assert_eq!(values.len(), 1, "exactly one JSON object: {}", self.stdout);
        assert!(self.stdout.starts_with("{\n    \"code\": "), "Go-style indentation: {}", self.stdout);
        CniError::from_json(self.stdout.as_bytes()).expect("an error object")
    }

    fn assert_silent_success(&self) {
        assert_eq!(self.status, 0, "stdout: {}", self.stdout);
        assert_eq!(self.stdout, "");
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A complete ADD-style environment for `command`, with `overrides` applied (empty = unset).
fn full_env(command: &str, overrides: &[(&str, &str)]) -> HashMap<String, String> {
    let mut e = env(&[
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", ""),
        ("CNI_PATH", "/opt/cni/bin"),
    ]);
    for (k, v) in overrides {
        e.insert(k.to_string(), v.to_string());
    }
    e
}

fn conf(version: &str) -> String {
    format!(r#"{{"cniVersion":"{version}","name":"net-a","type":"test"}}"#)
}

fn run_reader(plugin: &TestPlugin, e: &HashMap<String, String>, stdin: &mut dyn Read) -> Outcome {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = skel::run_with(plugin, e, stdin, &mut out, &mut err);
    Outcome { status, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

fn run(plugin: &TestPlugin, e: &HashMap<String, String>, stdin: &str) -> Outcome {
    run_reader(plugin, e, &mut stdin.as_bytes())
}

struct FailingReader;
impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
}

// ---- CNI_COMMAND unset ----

#[test]
fn no_command_prints_the_banner_on_stderr_and_succeeds() {
    let p = TestPlugin { about: "test plugin v1".into(), ..Default::default() };
    for e in [env(&[]), env(&[("CNI_COMMAND", "")])] {
        let o = run(&p, &e, "");
        assert_eq!(o.status, 0);
        assert_eq!(o.stdout, "");
        assert_eq!(
            o.stderr,
            "test plugin v1\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n"
        );
    }
    let o = run(&TestPlugin::default(), &env(&[]), "");
    assert_eq!(o.stderr, "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n");
    assert!(p.calls.borrow().is_empty());
}

// ---- the skel error table ----

#[test]
fn missing_variables_are_all_listed_with_code_4() {
    let p = TestPlugin::default();
    let e = run(&p, &env(&[("CNI_COMMAND", "ADD")]), &conf("1.0.0")).error();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (4, "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing")
    );
    let e = run(&p, &full_env("ADD", &[("CNI_NETNS", ""), ("CNI_PATH", "")]), &conf("1.0.0")).error();
    assert_eq!(e.msg, "required env variables [CNI_NETNS,CNI_PATH] missing");
    let e = run(&p, &env(&[("CNI_COMMAND", "DEL")]), &conf("1.0.0")).error();
    assert_eq!(e.msg, "required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing");
    let e = run(&p, &env(&[("CNI_COMMAND", "GC")]), &conf("1.1.0")).error();
    assert_eq!((e.code, e.msg.as_str()), (4, "required env variables [CNI_PATH] missing"));
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn del_does_not_need_a_netns() {
    let p = TestPlugin::default();
    run(&p, &full_env("DEL", &[("CNI_NETNS", "")]), &conf("1.0.0")).assert_silent_success();
    assert_eq!(*p.calls.borrow(), ["DEL"]);
}

#[test]
fn unknown_command_is_code_4() {
    let e = run(&TestPlugin::default(), &full_env("FOO", &[]), &conf("1.0.0")).error();
    assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: FOO"));
    // Even with garbage on stdin: the command is checked first.
    let e = run(&TestPlugin::default(), &full_env("add", &[]), "garbage").error();
    assert_eq!(e.code, 4);
}

#[test]
fn bad_container_ids_are_code_4() {
    for bad in ["-bad", "a/b", "a b", ".x"] {
        let e = run(&TestPlugin::default(), &full_env("ADD", &[("CNI_CONTAINERID", bad)]), &conf("1.0.0")).error();
        assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (4, "invalid characters in containerID", bad));
    }
}

#[test]
fn bad_interface_names_are_code_4() {
    for bad in ["sixteen-chars-xx", ".", "..", "a/b", "a:b", "a b", "tab\t"] {
        for cmd in ["ADD", "CHECK", "DEL"] {
            let e = run(&TestPlugin::default(), &full_env(cmd, &[("CNI_IFNAME", bad)]), &conf("1.0.0")).error();
            assert_eq!(e.code, 4, "{cmd} {bad:?}");
            assert_eq!(e.details, bad);
        }
    }
}

#[test]
fn unreadable_stdin_is_code_5() {
    let e = run_reader(&TestPlugin::default(), &full_env("ADD", &[]), &mut FailingReader).error();
    assert_eq!(e.code, 5);
    assert!(e.msg.starts_with("error reading from stdin: "), "{}", e.msg);
}

#[test]
fn undecodable_configs_are_code_6() {
    for stdin in [
        "",
        "garbage",
        "{",
        "[]",
        "\"str\"",
        "42",
        r#"{"name":5}"#,
        r#"{"name":"n","cniVersion":1}"#,
        "{\"name\":\"n\"} trailing",
    ] {
        for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            let e = run(&TestPlugin::default(), &full_env(cmd, &[]), stdin).error();
            assert_eq!(e.code, 6, "{cmd} {stdin:?}: {e:?}");
        }
    }
}

#[test]
fn bad_names_are_code_7() {
    for (stdin, msg) in [
        (r#"{"cniVersion":"1.0.0"}"#, "missing network name"),
        (r#"{"cniVersion":"1.0.0","name":""}"#, "missing network name"),
        ("null", "missing network name"),
        (r#"{"cniVersion":"1.0.0","name":"bad/name"}"#, "invalid characters found in network name"),
        (r#"{"cniVersion":"1.0.0","name":"-x"}"#, "invalid characters found in network name"),
    ] {
        let e = run(&TestPlugin::default(), &full_env("ADD", &[]), stdin).error();
        assert_eq!((e.code, e.msg.as_str()), (7, msg), "{stdin}");
    }
}

#[test]
fn unsupported_config_versions_are_code_1_with_go_details() {
    let e = run(&TestPlugin::default(), &full_env("ADD", &[]), &conf("0.9.0")).error();
    assert_eq!(e.code, 1);
    assert_eq!(e.msg, "incompatible CNI versions");
    assert_eq!(
        e.details,
        r#"config is "0.9.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
    );
    let p = TestPlugin { versions: Some(vec!["0.3.1".into(), "0.4.0".into()]), ..Default::default() };
    for cmd in ["ADD", "DEL"] {
        let e = run(&p, &full_env(cmd, &[]), &conf("1.0.0")).error();
        assert_eq!(e.details, r#"config is "1.0.0", plugin supports ["0.3.1" "0.4.0"]"#);
    }
    // Compared as strings, like Go: "1.0" is not "1.0.0"; an unparseable version is just unsupported.
    assert_eq!(run(&TestPlugin::default(), &full_env("ADD", &[]), &conf("1.0")).error().code, 1);
    assert_eq!(run(&TestPlugin::default(), &full_env("ADD", &[]), &conf("banana")).error().code, 1);
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn missing_cni_version_means_0_1_0() {
    let p = TestPlugin::default();
    let o = run(&p, &full_env("ADD", &[]), r#"{"name":"n","type":"t"}"#);
    assert_eq!(o.status, 0);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["cniVersion"], "0.1.0");
    assert_eq!(v["ip4"]["ip"], "10.1.0.5/24");
    let p = TestPlugin { versions: Some(vec!["1.0.0".into()]), ..Default::default() };
    let e = run(&p, &full_env("ADD", &[]), r#"{"name":"n","cniVersion":""}"#).error();
    assert_eq!(e.details, r#"config is "0.1.0", plugin supports ["1.0.0"]"#);
}

#[test]
fn check_needs_0_4_0() {
    for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1"] {
        let e = run(&TestPlugin::default(), &full_env("CHECK", &[]), &conf(v)).error();
        assert_eq!((e.code, e.msg.as_str()), (1, "config version does not allow CHECK"), "{v}");
    }
    let e = run(&TestPlugin::default(), &full_env("CHECK", &[]), &conf("banana")).error();
    assert_eq!(e.code, 6);
    let p = TestPlugin { versions: Some(vec!["0.4.0".into()]), ..Default::default() };
    let e = run(&p, &full_env("CHECK", &[]), &conf("1.0.0")).error();
    assert_eq!((e.code, e.msg.as_str()), (1, "plugin version does not allow CHECK"));
    for v in ["0.4.0", "1.0.0", "1.1.0"] {
        let p = TestPlugin::default();
        run(&p, &full_env("CHECK", &[]), &conf(v)).assert_silent_success();
        assert_eq!(*p.calls.borrow(), ["CHECK"]);
    }
}

#[test]
fn gc_and_status_need_1_1_0() {
    let gc_env =
        env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin"), ("CNI_CONTAINERID", ""), ("CNI_NETNS", "")]);
    let status_env = env(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/opt/cni/bin")]);
    for (e, verb) in [(&gc_env, "GC"), (&status_env, "STATUS")] {
        for v in ["0.1.0", "0.3.1", "0.4.0", "1.0.0"] {
            let p = TestPlugin::default();
            let err = run(&p, e, &conf(v)).error();
            assert_eq!((err.code, err.msg), (1, format!("config version does not allow {verb}")), "{verb} {v}");
            assert!(p.calls.borrow().is_empty());
        }
        let p = TestPlugin::default();
        run(&p, e, &conf("1.1.0")).assert_silent_success();
        assert_eq!(*p.calls.borrow(), [verb]);
        let p = TestPlugin { versions: Some(vec!["1.0.0".into()]), ..Default::default() };
        assert_eq!(run(&p, e, &conf("1.1.0")).error().msg, format!("plugin version does not allow {verb}"));
    }
}

#[test]
fn status_errors_pass_through() {
    let p = TestPlugin { fail_with: Some(CniError::new(50, "daemon down")), ..Default::default() };
    let e = run(&p, &env(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/x")]), &conf("1.1.0")).error();
    assert_eq!((e.code, e.msg.as_str()), (50, "daemon down"));
}

// ---- VERSION ----

#[test]
fn version_ignores_stdin_and_env() {
    let expected = format!("{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":{ALL_JSON}}}\n");
    let probe = env(&[
        ("CNI_COMMAND", "VERSION"),
        ("CNI_NETNS", "dummy"),
        ("CNI_IFNAME", "dummy"),
        ("CNI_PATH", "dummy"),
        ("CNI_CONTAINERID", ""),
    ]);
    for stdin in ["", "{}", r#"{"cniVersion":"0.4.0"}"#, "garbage", r#"{"cniVersion":"9.9.9","name":"bad/name"}"#] {
        for e in [
            env(&[("CNI_COMMAND", "VERSION")]),
            probe.clone(),
            full_env("VERSION", &[("CNI_IFNAME", "way/too/long/ifname")]),
        ] {
            let o = run(&TestPlugin::default(), &e, stdin);
            assert_eq!(o.status, 0);
            assert_eq!(o.stdout, expected, "stdin {stdin:?}");
        }
    }
    let o = run_reader(&TestPlugin::default(), &env(&[("CNI_COMMAND", "VERSION")]), &mut FailingReader);
    assert_eq!((o.status, o.stdout.as_str()), (0, expected.as_str()));
    let p = TestPlugin { versions: Some(vec!["0.3.1".into(), "1.0.0".into()]), ..Default::default() };
    let o = run(&p, &env(&[("CNI_COMMAND", "VERSION")]), "");
    assert_eq!(o.stdout, "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.1\",\"1.0.0\"]}\n");
}

// ---- ADD / DEL output ----

#[test]
fn add_answers_in_every_config_version() {
    for v in cni::version::ALL {
        let p = TestPlugin::default();
        let o = run(&p, &full_env("ADD", &[]), &conf(v));
        assert_eq!(o.status, 0, "{v}: {}", o.stdout);
        let r = CniResult::from_json(o.stdout.as_bytes()).unwrap();
        assert_eq!(r.cni_version.to_string(), v);
        let raw: Value = serde_json::from_str(&o.stdout).unwrap();
        match v {
            "0.1.0" | "0.2.0" => assert_eq!(raw["ip4"]["ip"], "10.1.0.5/24"),
            "0.3.0" | "0.3.1" | "0.4.0" => {
                assert_eq!(raw["ips"][0]["version"], "4");
                assert!(raw["interfaces"][0].get("mtu").is_none());
            }
            _ => {
                assert!(raw["ips"][0].get("version").is_none());
                assert_eq!(raw["interfaces"][0]["mtu"], 1400);
            }
        }
        assert!(o.stdout.starts_with("{\n    \"cniVersion\""), "4-space indent: {}", o.stdout);
        assert_eq!(*p.calls.borrow(), ["ADD"]);
    }
}

#[test]
fn add_result_of_an_older_version_is_converted_up() {
    let mut old = CniResult::empty(Version::V0_2_0);
    old.ips.push(IpConfig { interface: None, address: "10.9.0.2/16".parse().unwrap(), gateway: None });
    let p = TestPlugin { add_result: Some(old), ..Default::default() };
    let o = run(&p, &full_env("ADD", &[]), &conf("1.0.0"));
    assert_eq!(o.status, 0);
    assert_eq!(
        o.stdout,
        "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.9.0.2/16\"\n        }\n    ]\n}"
    );
}

#[test]
fn add_conversion_failure_is_an_error_object() {
    let p = TestPlugin { add_result: Some(CniResult::empty(Version::V1_0_0)), ..Default::default() };
    let e = run(&p, &full_env("ADD", &[]), &conf("0.2.0")).error();
    assert_eq!((e.code, e.msg.as_str()), (999, "cannot convert: no valid IP addresses"));
}

#[test]
fn plugin_errors_pass_through_unchanged() {
    let p = TestPlugin { fail_with: Some(CniError::with_details(11, "try later", "busy")), ..Default::default() };
    for cmd in ["ADD", "DEL", "CHECK"] {
        let o = run(&p, &full_env(cmd, &[]), &conf("1.0.0"));
        assert_eq!(o.error(), CniError::with_details(11, "try later", "busy"));
        assert_eq!(o.stdout, "{\n    \"code\": 11,\n    \"msg\": \"try later\",\n    \"details\": \"busy\"\n}");
    }
}

#[test]
fn a_panicking_plugin_yields_code_999() {
    let p = TestPlugin { panic_on_add: true, ..Default::default() };
    let e = run(&p, &full_env("ADD", &[]), &conf("1.0.0")).error();
    assert_eq!((e.code, e.msg.as_str(), e.details.as_str()), (999, "plugin panicked", "boom"));
}

#[test]
fn del_success_prints_nothing() {
    for v in cni::version::ALL {
        let p = TestPlugin::default();
        run(&p, &full_env("DEL", &[]), &conf(v)).assert_silent_success();
        assert_eq!(*p.calls.borrow(), ["DEL"]);
    }
}

// ---- Request helpers ----

fn request(config: Value, args: &str) -> Request {
    Request {
        env: PluginEnv {
            command: Command::Gc,
            container_id: String::new(),
            netns: String::new(),
            ifname: String::new(),
            args: args.into(),
            path: "/x".into(),
        },
        stdin: serde_json::to_vec(&config).unwrap(),
        config: config.as_object().cloned().unwrap_or_default(),
        cni_version: Version::V1_1_0,
        name: "n".into(),
    }
}

#[test]
fn valid_attachments_accepts_null_empty_and_the_legacy_key() {
    let a = |v: Value| request(v, "").valid_attachments();
    assert_eq!(a(json!({"name": "n"})).unwrap(), None);
    assert_eq!(a(json!({"cni.dev/valid-attachments": null})).unwrap(), Some(vec![]));
    assert_eq!(a(json!({"cni.dev/valid-attachments": [], "cni.dev/attachments": []})).unwrap(), Some(vec![]));
    let one = vec![ValidAttachment { container_id: "c1".into(), ifname: "eth0".into() }];
    assert_eq!(
        a(json!({"cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}]})).unwrap(),
        Some(one.clone())
    );
    assert_eq!(
        a(json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}], "cni.dev/attachments": null}))
            .unwrap(),
        Some(one.clone())
    );
    assert_eq!(a(json!({"cni.dev/valid-attachments": "nope"})).unwrap_err().code, 7);
    assert_eq!(serde_json::to_value(&one[0]).unwrap(), json!({"containerID": "c1", "ifname": "eth0"}));
}

#[test]
fn request_helpers() {
    let r = request(
        json!({"name": "n", "type": "t", "runtimeConfig": {"mac": "x"},
               "prevResult": {"ips": [{"address": "10.0.0.2/24"}]}}),
        "IgnoreUnknown=1;K8S_POD_NAME=a;junk;K8S_POD_NAME=b",
    );
    assert_eq!(r.plugin_type(), "t");
    assert_eq!(r.runtime_config(), Some(&json!({"mac": "x"})));
    assert_eq!(r.args().get("K8S_POD_NAME"), Some("b"));
    let prev = r.prev_result().unwrap().unwrap();
    assert_eq!(prev.cni_version, Version::V1_1_0);
    assert_eq!(prev.ips.len(), 1);
    assert!(request(json!({"prevResult": null}), "").prev_result().is_none());
    assert_eq!(request(json!({"prevResult": 5}), "").prev_result().unwrap().unwrap_err().code, 6);
}

// ---- robustness ----

fn check_outcome(o: &Outcome) {
    if o.status == 0 {
        return;
    }
    assert_eq!(o.status, 1);
    let values: Vec<_> = serde_json::Deserializer::from_str(&o.stdout).into_iter::<Value>().collect();
    assert_eq!(values.len(), 1, "{}", o.stdout);
    let v = values.into_iter().next().unwrap().unwrap();
    assert!(v["code"].is_u64() && v["msg"].is_string(), "{v}");
}

proptest! {
    #[test]
    fn arbitrary_stdin_never_panics(
        cmd in prop::sample::select(vec!["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION", "FOO", ""]),
        stdin in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let o = run_reader(&TestPlugin::default(), &full_env(cmd, &[]), &mut stdin.as_slice());
        check_outcome(&o);
    }

    #[test]
    fn arbitrary_configs_never_panic(
        cmd in prop::sample::select(vec!["ADD", "DEL", "CHECK", "STATUS", "GC"]),
        version in prop_oneof![prop::sample::select(cni::version::ALL.to_vec()).prop_map(String::from), ".{0,8}"],
        name in ".{0,12}",
        extra in prop::collection::hash_map("[a-zA-Z]{1,6}", any::<i64>().prop_map(Value::from), 0..4),
        ifname in ".{0,18}",
        container_id in ".{0,10}",
    ) {
        let mut config = json!({"cniVersion": version, "name": name, "type": "t"});
        for (k, v) in extra {
            config[k] = v;
        }
        let e = full_env(cmd, &[("CNI_IFNAME", &ifname), ("CNI_CONTAINERID", &container_id)]);
        let o = run(&TestPlugin::default(), &e, &config.to_string());
        check_outcome(&o);
    }
}
