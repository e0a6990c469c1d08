//! Containment of plugin invocations in process-group mode (the fallback when no cgroup is
//! writable: process group, child subreaper, `/proc` walk), with real processes. Needs no
//! root. Forcing the mode makes this test process a child subreaper, so these scenarios live
//! in their own test binary.

mod support;

use cni::exec::Containment;
use support::contain::*;

const PG: Containment = Containment::ProcessGroup;

/// Not a test on its own: the executor process the scenarios kill (see `start_helper`).
#[test]
#[ignore = "entry point of the helper executor process, started by the scenarios"]
fn helper_executor() {
    helper_executor_body();
}

#[tokio::test]
async fn setsid_child_dies_on_timeout() {
    support::contain::setsid_child_dies_on_timeout(executor("pg-timeout", PG)).await;
}

#[tokio::test]
async fn setsid_child_dies_on_cancellation() {
    support::contain::setsid_child_dies_on_cancellation(executor("pg-cancel", PG)).await;
}

#[tokio::test]
async fn child_holding_stdout_does_not_hold_the_result() {
    support::contain::child_holding_stdout_does_not_hold_the_result(executor("pg-stdout", PG)).await;
}

#[tokio::test]
async fn detached_child_is_killed_at_exit() {
    support::contain::detached_child_is_killed_at_exit(executor("pg-detached", PG)).await;
}

#[test]
fn leftovers_of_a_killed_executor_are_reaped() {
    support::contain::leftovers_of_a_killed_executor_are_reaped(PG, "pg-killed");
}

#[tokio::test]
async fn scopes_do_not_touch_each_other() {
    support::contain::scopes_do_not_touch_each_other(PG, "pg-scopes").await;
}

#[tokio::test]
async fn the_plugin_environment_carries_the_invocation_tag() {
    let exec = executor("pg-env", PG);
    let dir = tempfile::tempdir().unwrap();
    let p = write_script(dir.path(), "env", &format!("printf %s \"${}\"", cni::exec::INVOCATION_ENV));
    let out = exec.run(cni::exec::PluginRequest::new(&p, env(), b"{}")).await.unwrap();
    let tag = String::from_utf8(out).unwrap();
    assert!(tag.starts_with(&format!("multus-delegates-{}/", scope_for("pg-env"))), "{tag}");
}
