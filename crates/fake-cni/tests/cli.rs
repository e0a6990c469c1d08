//! The built `fake-cni` binary, driven as a runtime drives a plugin.

use assert_cmd::Command;
use fake_cni::{Call, read_calls};
use predicates::prelude::*;
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fake-cni");
const NETNS: &str = "/var/run/netns/pod1";

/// A clean environment (nothing inherited) with the ADD variables set.
fn plugin(command: &str) -> Command {
    plugin_at(Path::new(BIN), command)
}

fn plugin_at(bin: &Path, command: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "ctr-1")
        .env("CNI_NETNS", NETNS)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=pod1")
        .env("CNI_PATH", "/opt/cni/bin")
        .timeout(Duration::from_secs(20));
    c
}

fn conf(version: &str, fake: Value) -> String {
    json!({"cniVersion": version, "name": "net-a", "type": "fake-cni", "fake": fake}).to_string()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn all_versions() -> String {
    r#"["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]"#.to_string()
}

#[test]
fn version_lists_every_version() {
    plugin("VERSION")
        .assert()
        .success()
        .stdout(format!("{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":{}}}\n", all_versions()));
    // libcni's probe: dummy env and a bare config on stdin.
    Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .env("CNI_NETNS", "dummy")
        .env("CNI_IFNAME", "dummy")
        .env("CNI_PATH", "dummy")
        .env("CNI_CONTAINERID", "")
        .write_stdin(r#"{"cniVersion":"1.1.0"}"#)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"1.1.0\""));
    plugin("VERSION")
        .env("FAKE_CNI_SUPPORTED_VERSIONS", "0.3.1,1.0.0")
        .assert()
        .success()
        .stdout("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.1\",\"1.0.0\"]}\n");
}

#[test]
fn add_031_answers_a_031_result() {
    let out = plugin("ADD").write_stdin(conf("0.3.1", json!({"subnet": "10.10.0.0/24"}))).output().unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["cniVersion"], "0.3.1");
    assert_eq!(r["ips"][0]["version"], "4");
    assert_eq!(r["ips"][0]["interface"], 0);
    assert_eq!(r["ips"][0]["gateway"], "10.10.0.1");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(r["interfaces"][0]["sandbox"], NETNS);
    assert!(r["interfaces"][0]["mac"].as_str().unwrap().starts_with("02:"));
    insta::assert_snapshot!("add_0.3.1", stdout_of(&out));
}

#[test]
fn add_answers_in_every_version() {
    let mut all = String::new();
    for v in cni::version::ALL {
        let out = plugin("ADD").write_stdin(conf(v, json!({"subnet": "10.10.0.0/24", "mtu": 1400}))).output().unwrap();
        assert!(out.status.success(), "{v}");
        let r = cni::CniResult::from_json(&out.stdout).unwrap();
        assert_eq!(r.cni_version.to_string(), v);
        all.push_str(&format!("--- {v}\n{}\n", stdout_of(&out)));
    }
    insta::assert_snapshot!("add_every_version", all);
}

#[test]
fn same_attachment_same_answer_other_attachment_other_answer() {
    let run = |cid: &str, ifname: &str| {
        let out = plugin("ADD")
            .env("CNI_CONTAINERID", cid)
            .env("CNI_IFNAME", ifname)
            .write_stdin(conf("1.0.0", json!({})))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(run("a", "eth0"), run("a", "eth0"));
    let (x, y) = (run("a", "eth0"), run("b", "eth0"));
    assert_ne!(x["interfaces"][0]["mac"], y["interfaces"][0]["mac"]);
    assert_ne!(x["ips"][0]["address"], y["ips"][0]["address"]);
}

#[test]
fn literal_result_is_converted_to_the_config_version() {
    let literal = json!({"cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 9000, "sandbox": NETNS}],
        "ips": [{"address": "192.168.5.5/24", "gateway": "192.168.5.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.5.1"}]});
    let out = plugin("ADD").write_stdin(conf("0.4.0", json!({"result": literal}))).output().unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["address"], "192.168.5.5/24");
    assert_eq!(r["ips"][0]["version"], "4");
    assert!(r["interfaces"][0].get("mtu").is_none());
    insta::assert_snapshot!("add_literal_0.4.0", stdout_of(&out));
    // A versionless literal takes the config's version.
    let out = plugin("ADD")
        .write_stdin(conf("1.0.0", json!({"result": {"ips": [{"address": "10.0.0.9/8"}]}})))
        .output()
        .unwrap();
    assert_eq!(
        stdout_of(&out),
        "{\n    \"cniVersion\": \"1.0.0\",\n    \"ips\": [\n        {\n            \"address\": \"10.0.0.9/8\"\n        }\n    ]\n}"
    );
}

#[test]
fn chained_add_appends_to_prev_result() {
    let prev = json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "br0", "mac": "00:11:22:33:44:55"}, {"name": "eth0", "sandbox": NETNS}],
        "ips": [{"address": "10.1.0.5/16", "interface": 1}]});
    let mut config: Value = serde_json::from_str(&conf("1.0.0", json!({"subnet": "10.20.0.0/24"}))).unwrap();
    config["prevResult"] = prev;
    let out = plugin("ADD").env("CNI_IFNAME", "net1").write_stdin(config.to_string()).output().unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
    assert_eq!(r["interfaces"][0]["name"], "br0");
    assert_eq!(r["interfaces"][2]["name"], "net1");
    assert_eq!(r["ips"][0]["address"], "10.1.0.5/16");
    assert_eq!(r["ips"][1]["interface"], 2);
    insta::assert_snapshot!("add_chained", stdout_of(&out));
}

#[test]
fn configured_failure_prints_the_error_object() {
    let fake = json!({"failOn": ["ADD"], "failCode": 11, "failMsg": "boom", "failDetails": "try later"});
    let out = plugin("ADD").write_stdin(conf("1.0.0", fake.clone())).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e, json!({"code": 11, "msg": "boom", "details": "try later"}));
    insta::assert_snapshot!("add_failure", stdout_of(&out));
    // Other commands are unaffected.
    plugin("DEL").write_stdin(conf("1.0.0", fake)).assert().success().stdout("");
    // Defaults.
    let out = plugin("DEL").write_stdin(conf("1.0.0", json!({"failOn": ["*"]}))).output().unwrap();
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e, json!({"code": 100, "msg": "fake-cni: configured failure"}));
}

#[test]
fn del_check_gc_status_succeed_silently() {
    plugin("DEL").write_stdin(conf("1.1.0", json!({}))).assert().success().stdout("");
    plugin("CHECK").write_stdin(conf("1.1.0", json!({}))).assert().success().stdout("");
    let gc = json!({"cniVersion": "1.1.0", "name": "net-a", "type": "fake-cni",
        "cni.dev/valid-attachments": null, "cni.dev/attachments": null});
    Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "GC")
        .env("CNI_PATH", "/opt/cni/bin")
        .write_stdin(gc.to_string())
        .assert()
        .success()
        .stdout("");
    Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .env("CNI_PATH", "/opt/cni/bin")
        .write_stdin(conf("1.1.0", json!({})))
        .assert()
        .success()
        .stdout("");
}

#[test]
fn status_answers_the_configured_code() {
    for code in [50u64, 51] {
        let out = Command::new(BIN)
            .env_clear()
            .env("CNI_COMMAND", "STATUS")
            .env("CNI_PATH", "/x")
            .write_stdin(conf("1.1.0", json!({"statusCode": code})))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let e: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["code"], code);
    }
    // STATUS is gated by the config version, as skel does.
    let out = Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .env("CNI_PATH", "/x")
        .write_stdin(conf("1.0.0", json!({"statusCode": 50})))
        .output()
        .unwrap();
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["code"], 1);
}

#[test]
fn garbage_and_empty_modes() {
    plugin("ADD")
        .write_stdin(conf("1.0.0", json!({"garbageOn": ["ADD"]})))
        .assert()
        .success()
        .stdout("fake-cni: this is not JSON {");
    plugin("ADD")
        .write_stdin(conf("1.0.0", json!({"garbageOn": ["ADD"], "garbage": "<html>", "exitCode": 1})))
        .assert()
        .code(1)
        .stdout("<html>");
    plugin("ADD").write_stdin(conf("1.0.0", json!({"emptyOn": ["ADD"]}))).assert().success().stdout("");
    plugin("DEL").write_stdin(conf("1.0.0", json!({"emptyOn": ["DEL"], "exitCode": 3}))).assert().code(3).stdout("");
    // Not listed: normal behaviour.
    plugin("DEL").write_stdin(conf("1.0.0", json!({"garbageOn": ["ADD"]}))).assert().success().stdout("");
}

#[test]
fn dies_by_the_configured_signal() {
    for (name, number) in [("KILL", 9), ("TERM", 15), ("SEGV", 11), ("SIGABRT", 6)] {
        let out =
            plugin("DEL").write_stdin(conf("1.0.0", json!({"signalOn": ["DEL"], "signal": name}))).output().unwrap();
        assert_eq!(out.status.signal(), Some(number), "{name}: {:?}", out.status);
        assert_eq!(stdout_of(&out), "");
    }
    // Default signal is KILL; other commands are unaffected.
    let out = plugin("ADD").write_stdin(conf("1.0.0", json!({"signalOn": ["ADD"]}))).output().unwrap();
    assert_eq!(out.status.signal(), Some(9));
    plugin("DEL").write_stdin(conf("1.0.0", json!({"signalOn": ["ADD"]}))).assert().success();
}

#[test]
fn sleeps_before_answering() {
    let start = Instant::now();
    plugin("ADD").write_stdin(conf("1.0.0", json!({"sleepMs": 400, "sleepOn": ["ADD"]}))).assert().success();
    assert!(start.elapsed() >= Duration::from_millis(400));
    let start = Instant::now();
    plugin("DEL").write_stdin(conf("1.0.0", json!({"sleepMs": 3000, "sleepOn": ["ADD"]}))).assert().success();
    assert!(start.elapsed() < Duration::from_millis(3000));
    // A runtime-side timeout sees a hung plugin.
    plugin("ADD")
        .timeout(Duration::from_millis(300))
        .write_stdin(conf("1.0.0", json!({"sleepMs": 5000})))
        .assert()
        .interrupted();
}

#[test]
fn writes_noise_to_stderr() {
    plugin("ADD")
        .write_stdin(conf("1.0.0", json!({"stderr": "some noise"})))
        .assert()
        .success()
        .stderr("some noise\n")
        .stdout(predicate::str::starts_with("{"));
}

#[test]
fn an_invalid_fake_object_is_code_7() {
    let out = plugin("ADD").write_stdin(conf("1.0.0", json!({"failOnn": ["ADD"]}))).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["code"], 7);
    assert!(e["details"].as_str().unwrap().contains("failOnn"));
}

fn record(dir: &Path) -> Value {
    json!({"recordDir": dir})
}

#[test]
fn records_every_invocation_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("calls");
    plugin("VERSION").env("FAKE_CNI_RECORD_DIR", &dir).write_stdin(r#"{"cniVersion":"1.1.0"}"#).assert().success();
    plugin("ADD").write_stdin(conf("0.3.1", record(&dir))).assert().success();
    let mut failing = record(&dir);
    failing["failOn"] = json!(["DEL"]);
    plugin("DEL").env("CNI_NETNS", "").write_stdin(conf("0.3.1", failing)).assert().code(1);
    // A protocol error (missing variables) is recorded too.
    plugin("ADD").env_remove("CNI_IFNAME").write_stdin(conf("1.0.0", record(&dir))).assert().code(1);
    // Garbage on stdin: recorded as the raw text (record dir from the env).
    plugin("ADD").env("FAKE_CNI_RECORD_DIR", &dir).write_stdin("not json").assert().code(1);

    let calls = read_calls(&dir);
    let commands: Vec<&str> = calls.iter().map(|c| c.command.as_str()).collect();
    assert_eq!(commands, ["VERSION", "ADD", "DEL", "ADD", "ADD"]);

    let add: &Call = &calls[1];
    assert_eq!(add.container_id, "ctr-1");
    assert_eq!(add.netns, NETNS);
    assert_eq!(add.ifname, "eth0");
    assert_eq!(add.args, "IgnoreUnknown=1;K8S_POD_NAME=pod1");
    assert_eq!(add.path, "/opt/cni/bin");
    assert_eq!(add.argv0, "fake-cni");
    assert_eq!(add.plugin_type, "fake-cni");
    assert_eq!(add.name, "net-a");
    assert_eq!(add.cni_version(), Some("0.3.1"));
    assert_eq!(add.stdin["fake"]["recordDir"], json!(dir));
    assert_eq!(add.env.get("CNI_COMMAND").map(String::as_str), Some("ADD"));
    assert_eq!(add.env.len(), 6);
    assert!(add.pid > 0 && add.time > 1_600_000_000_000);

    assert_eq!(calls[0].stdin, json!({"cniVersion": "1.1.0"}));
    assert_eq!(calls[0].plugin_type, "");
    assert_eq!(calls[2].netns, "");
    assert_eq!(calls[2].env.get("CNI_NETNS").map(String::as_str), Some(""));
    assert_eq!(calls[3].ifname, "");
    assert!(!calls[3].env.contains_key("CNI_IFNAME"));
    assert_eq!(calls[4].stdin, json!("not json"));

    // The raw file: one JSON object per line, with the documented keys.
    let text = std::fs::read_to_string(dir.join(fake_cni::CALLS_FILE)).unwrap();
    let first: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let mut keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "args",
            "argv0",
            "command",
            "containerId",
            "env",
            "ifname",
            "name",
            "netns",
            "path",
            "pid",
            "stdin",
            "time",
            "type"
        ]
    );
}

#[test]
fn concurrent_invocations_do_not_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let big = "x".repeat(20_000);
    let children: Vec<_> = (0..16)
        .map(|i| {
            let config = json!({"cniVersion": "1.0.0", "name": "net-a", "type": "fake-cni",
                "padding": big, "fake": {"recordDir": dir}});
            let mut child = std::process::Command::new(BIN)
                .env_clear()
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", format!("ctr-{i}"))
                .env("CNI_NETNS", NETNS)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/x")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(config.to_string().as_bytes()).unwrap();
            child
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let calls = read_calls(&dir);
    assert_eq!(calls.len(), 16);
    let mut ids: Vec<String> = calls.iter().map(|c| c.container_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16);
}

#[test]
fn one_binary_plays_several_types_through_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let link: PathBuf = bin_dir.join("macvlan");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let dir = tmp.path().join("calls");
    let config = json!({"cniVersion": "1.0.0", "name": "macvlan-net", "type": "macvlan",
        "master": "eth0", "fake": {"recordDir": dir}});
    plugin_at(&link, "ADD").write_stdin(config.to_string()).assert().success();
    let calls = read_calls(&dir);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].argv0, "macvlan");
    assert_eq!(calls[0].plugin_type, "macvlan");
    assert_eq!(calls[0].config_value("master"), Some(&json!("eth0")));
}

#[test]
fn no_record_dir_means_no_file_and_missing_file_means_no_calls() {
    let tmp = tempfile::tempdir().unwrap();
    plugin("ADD").current_dir(tmp.path()).write_stdin(conf("1.0.0", json!({}))).assert().success();
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert!(read_calls(tmp.path()).is_empty());
}

#[test]
fn without_a_command_it_prints_the_banner() {
    Command::new(BIN)
        .env_clear()
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("CNI protocol versions supported: 0.1.0, 0.2.0"));
}

/// The plugin, in a process group of its own, with `fake` as its config; its pid and output.
fn run_in_own_group(command: &str, fake: Value) -> (u32, std::process::Child) {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "ctr-1")
        .env("CNI_NETNS", NETNS)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/opt/cni/bin")
        .process_group(0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(conf("1.0.0", fake).as_bytes()).unwrap();
    (child.id(), child)
}

fn wait_for_file(dir: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let files: Vec<PathBuf> =
            std::fs::read_dir(dir).map(|rd| rd.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        if let Some(f) = files.first() {
            let text = std::fs::read_to_string(f).unwrap();
            if text.ends_with('\n') {
                let mut v: Value = serde_json::from_str(&text).unwrap();
                v["file"] = json!(f.file_name().unwrap().to_string_lossy());
                return v;
            }
        }
        assert!(Instant::now() < deadline, "no marker in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn spawn_leaves_a_child_that_writes_its_marker_later() {
    for setsid in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let markers = tmp.path().join("markers");
        let touch = format!("{}/{{containerId}}-{{command}}-{{pid}}", markers.display());
        let (pid, child) = run_in_own_group(
            "ADD",
            json!({"spawn": {"on": ["ADD"], "setsid": setsid, "sleepMs": 400, "touch": touch}}),
        );
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["interfaces"][0]["name"], "eth0", "the plugin answers as usual");
        assert!(!markers.exists() || std::fs::read_dir(&markers).unwrap().count() == 0, "the marker comes later");
        let marker = wait_for_file(&markers);
        assert_eq!(marker["file"], format!("ctr-1-ADD-{pid}"));
        assert_eq!(marker["by"]["containerId"], "ctr-1");
        assert_eq!(marker["by"]["pluginPid"], pid);
        if setsid {
            assert_eq!(marker["sid"], marker["pid"], "a session of its own: {marker}");
            assert_eq!(marker["pgid"], marker["pid"], "{marker}");
        } else {
            assert_eq!(marker["pgid"], pid, "in the plugin's process group: {marker}");
        }
    }
}

#[test]
fn spawn_only_on_the_listed_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let markers = tmp.path().join("markers");
    let touch = format!("{}/{{containerId}}", markers.display());
    let (_, child) = run_in_own_group("DEL", json!({"spawn": {"on": ["ADD"], "touch": touch}}));
    assert!(child.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!markers.exists());
}

#[test]
fn hold_stdout_keeps_the_pipe_open_after_the_plugin_exits() {
    use std::io::Read;
    let (_, mut child) = run_in_own_group("ADD", json!({"holdStdout": {"on": ["ADD"], "ms": 1200}}));
    let started = Instant::now();
    let status = child.wait().unwrap();
    let exited = started.elapsed();
    assert!(status.success());
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    let eof = started.elapsed();
    assert!(exited < Duration::from_millis(1000), "the plugin itself exits at once: {exited:?}");
    assert!(eof >= Duration::from_millis(1100), "EOF only when the child is done: {eof:?}");
    let result: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0", "a valid result: {result}");
}
