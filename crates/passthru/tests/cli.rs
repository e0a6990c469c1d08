//! The `passthru` binary as a runtime executes it.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::{Value, json};

fn passthru(command: &str) -> Command {
    let mut cmd = Command::cargo_bin("passthru").unwrap();
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "ctr1")
        .env("CNI_NETNS", "/var/run/netns/pod")
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", "/opt/cni/bin");
    cmd
}

#[test]
fn add_prints_the_prev_result_in_the_config_version() {
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]});
    let conf = json!({"cniVersion": "0.4.0", "name": "aux", "type": "passthru", "prevResult": prev});
    let out = passthru("ADD").write_stdin(conf.to_string()).assert().success().get_output().stdout.clone();
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out, json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.2/24"}]}));
}

#[test]
fn add_without_prev_result_prints_an_empty_result() {
    let conf = json!({"cniVersion": "1.0.0", "name": "aux", "type": "passthru"});
    passthru("ADD").write_stdin(conf.to_string()).assert().success().stdout("{\n    \"cniVersion\": \"1.0.0\"\n}");
}

#[test]
fn del_prints_nothing() {
    let conf = json!({"cniVersion": "1.0.0", "name": "aux", "type": "passthru"});
    passthru("DEL").write_stdin(conf.to_string()).assert().success().stdout("");
}

#[test]
fn version_and_about() {
    passthru("VERSION").assert().success().stdout(
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n",
    );
    Command::cargo_bin("passthru")
        .unwrap()
        .env_clear()
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::starts_with("Passthrough CNI Plugin v1.0\n"));
}
