//! The daemon binary's command line: `-help`, refused flags, and thin-entrypoint flags winning
//! over the config file (logged before the daemon goes on to build its kube client).

use std::process::Command;

fn daemon() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_multus-daemon"));
    c.env_remove("KUBECONFIG").env_remove("KUBERNETES_SERVICE_HOST").env_remove("KUBERNETES_SERVICE_PORT");
    c
}

#[test]
fn help_lists_the_flags_with_their_keys_and_exits_0() {
    for arg in ["-help", "--help", "-h"] {
        let out = daemon().arg(arg).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{arg}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("-additional-bin-dir VALUE\n        key binDir: "), "{text}");
        assert!(text.contains("-multus-log-level LEVEL\n        key logLevel: "), "{text}");
    }
}

#[test]
fn unknown_and_excluded_flags_exit_2_naming_the_flag() {
    let out = daemon().arg("-no-such-flag=1").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -no-such-flag"));
    let out = daemon().arg("--rename-conf-file").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("flag -rename-conf-file is a thin-plugin entrypoint parameter"), "{err}");
}

#[test]
fn flags_win_over_the_file_and_the_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daemon-config.json");
    let socket_dir = dir.path().join("run");
    std::fs::write(
        &config,
        serde_json::json!({
            "logToStderr": true,
            "logLevel": "error",
            "binDir": "/opt/cni/bin",
            "socketDir": socket_dir.display().to_string(),
        })
        .to_string(),
    )
    .unwrap();
    // No kubeconfig and no in-cluster environment: the daemon stops at the kube client (exit 3),
    // after logging what the flags did.
    let out = daemon()
        .arg("-config")
        .arg(&config)
        .args(["-multus-log-level=VERBOSE", "-additional-bin-dir=/opt/multus/bin", "-cni-version", "0.3.1"])
        .args(["-cni-bin-dir=/host/opt/cni/bin", "-kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for line in [
        "[error] warning: flag -multus-log-level=verbose overrides \"logLevel\": \"error\" from the config file",
        "[error] warning: flag -additional-bin-dir=/opt/multus/bin overrides \"binDir\": \"/opt/cni/bin\" from the config file",
        "[verbose] flag -cni-version=0.3.1 sets \"cniVersion\" (absent from the config file)",
        "[error] warning: flag -cni-bin-dir has no effect in the thick plugin: ",
    ] {
        assert!(err.contains(line), "{line:?} not in:\n{err}");
    }
}
