//! Containment of plugin invocations in cgroups (v2, and the v1 freezer fallback), with real
//! processes: nothing a plugin starts outlives its invocation, `setsid` and a killed daemon
//! included. Needs root and the hierarchies: `#[ignore = "needs root (cgroups)"]`, run by CI
//! with `--include-ignored`; there, a missing prerequisite fails the test (never a silent pass).

mod support;

use cni::exec::Containment;
use support::contain::*;

/// Not a test on its own: the executor process the scenarios kill (see `start_helper`).
#[test]
#[ignore = "entry point of the helper executor process, started by the scenarios"]
fn helper_executor() {
    helper_executor_body();
}

macro_rules! per_mechanism {
    ($modname:ident, $mechanism:expr) => {
        mod $modname {
            use super::*;

            fn exec(test: &str) -> cni::exec::RawExec {
                executor(&format!("{}-{test}", stringify!($modname)), $mechanism)
            }

            fn test_name(test: &str) -> String {
                format!("{}-{test}", stringify!($modname))
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn setsid_child_dies_on_timeout() {
                let e = exec("timeout");
                support::contain::setsid_child_dies_on_timeout(e.clone()).await;
                e.reap_leftovers();
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn setsid_child_dies_on_cancellation() {
                let e = exec("cancel");
                support::contain::setsid_child_dies_on_cancellation(e.clone()).await;
                // The cancelled invocation is finished in the background: give it a moment.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                e.reap_leftovers();
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn child_holding_stdout_does_not_hold_the_result() {
                let e = exec("stdout");
                support::contain::child_holding_stdout_does_not_hold_the_result(e.clone()).await;
                e.reap_leftovers();
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn detached_child_is_killed_at_exit() {
                let e = exec("detached");
                support::contain::detached_child_is_killed_at_exit(e.clone()).await;
                e.reap_leftovers();
            }

            #[test]
            #[ignore = "needs root (cgroups)"]
            fn leftovers_of_a_killed_executor_are_reaped() {
                support::contain::leftovers_of_a_killed_executor_are_reaped($mechanism, &test_name("killed"));
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn scopes_do_not_touch_each_other() {
                support::contain::scopes_do_not_touch_each_other($mechanism, &test_name("scopes")).await;
            }

            #[tokio::test]
            #[ignore = "needs root (cgroups)"]
            async fn nothing_is_left_behind() {
                let e = exec("clean");
                let dir = e.scope_dir().expect("a cgroup mechanism has a scope directory");
                support::contain::nothing_is_left_behind(e.clone(), &dir).await;
                e.reap_leftovers();
                assert!(!dir.exists(), "reap_leftovers removes an idle scope directory");
            }
        }
    };
}

per_mechanism!(v2, Containment::CgroupV2);
per_mechanism!(v1_freezer, Containment::CgroupV1Freezer);
