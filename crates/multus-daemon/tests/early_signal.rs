//! A daemon stopped the moment it is ready (a rolling update that catches a just-started pod,
//! a node drain): it must still stop as a daemon does, through its shutdown (drain, the
//! restart-or-uninstall decision, exit 0), not die by the signal's default action. Until the
//! signal handlers were installed at start, a SIGTERM between readiness and the first wait for
//! it killed the process outright (seen as a flaky uninstall test on a loaded CI machine).

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use test_node::*;

#[test]
fn a_sigterm_right_after_readiness_goes_through_the_shutdown() {
    if !require(missing_bins()) {
        return;
    }
    let mut thick = NodeBuilder::default()
        .fake_delegates(&["fake-cni"])
        .primary("10-primary.conf", serde_json::json!({"cniVersion": "1.0.0", "name": "primary", "type": "fake-cni"}))
        .build();
    for attempt in 0..10 {
        thick.start_daemon_polling(Duration::from_millis(1));
        let mut child = thick.take_daemon().expect("the daemon");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM by PID");
        let status = child.wait().expect("wait for the daemon");
        assert_eq!(
            (status.code(), status.signal()),
            (Some(0), None),
            "attempt {attempt}: the daemon died instead of stopping:\n{}",
            thick.daemon_log()
        );
        assert!(thick.daemon_log().contains("caught a termination signal"), "{}", thick.daemon_log());
    }
}
