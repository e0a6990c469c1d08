//! As root, against Debian's plugins: the dhcp plugin judged with its daemon and a DHCP server
//! the harness starts per case (and stops by PID, also when the case's setup fails), and the
//! plugins whose link type this kernel may lack (ipvlan, vlan, vrf): judged on the cases that
//! need no working ADD, the others skipped with the reason.

use multus_conformance::report::Outcome;
use multus_conformance::target::Target;
use multus_conformance::{Runner, filter_cases, model};
use std::path::Path;

fn cases(ids: &[&str]) -> Vec<model::Case> {
    let all = model::load_dir(&model::default_scenario_dir()).unwrap();
    let ids: Vec<String> = ids.iter().map(|g| g.to_string()).collect();
    filter_cases(all, &[], &ids).into_iter().filter(|c| ids.contains(&c.id)).collect()
}

/// The tests here count this process's children: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn need_root_and_plugins() {
    assert!(multus_conformance::sys::is_root(), "needs root: run as root with --include-ignored");
    assert!(
        Path::new("/usr/lib/cni/dhcp").is_file(),
        "needs /usr/lib/cni: apt-get install containernetworking-plugins"
    );
}

/// Children of this test process (PID, command name) still alive: daemons a case left behind.
fn live_children() -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let zombie = fields.first() == Some(&"Z");
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) && !zombie {
            out.push((pid, head.split_once('(').map(|(_, c)| c.to_string()).unwrap_or_default()));
        }
    }
    out
}

#[test]
#[ignore = "needs root, /usr/lib/cni and dnsmasq (dnsmasq-base)"]
fn dhcp_gets_a_lease_from_the_server_the_case_starts() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root_and_plugins();
    let target = Target::from_spec("plugin:/usr/lib/cni/dhcp").unwrap();
    let mut runner = Runner::new(target).unwrap();
    if !test_skip::require(runner.unavailable.clone()) {
        return;
    }
    let report = runner.run(&cases(&["add-basic", "versions-add-del-add-1.0.0", "versions-check-1.0.0"]));
    for c in &report.cases {
        assert_eq!(c.outcome, Outcome::Pass, "{}: {:#?}", c.id, c);
    }
    let add = &report.cases[0].steps[0];
    assert!(add.stdout.contains("10.97.0."), "an address of the case's DHCP server: {}", add.stdout);
    assert_eq!(live_children(), vec![], "daemons left running");
}

/// A daemon that dies at once fails the case's setup with its reason, and the daemon started
/// before it (dnsmasq) is stopped all the same.
#[test]
#[ignore = "needs root and dnsmasq (dnsmasq-base)"]
fn a_daemon_that_does_not_start_fails_the_case_and_leaves_nothing_running() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root_and_plugins();
    let mut target = Target::from_spec("plugin:/usr/lib/cni/dhcp").unwrap();
    // The dhcp daemon's program replaced by one that exits at once.
    target.host_daemons[1].argv = vec!["/bin/false".into()];
    let mut runner = Runner::new(target).unwrap();
    if !test_skip::require(runner.unavailable.clone()) {
        return;
    }
    let report = runner.run(&cases(&["add-basic"]));
    let reason = report.cases[0].outcome.reason();
    assert!(report.cases[0].outcome.is_fail() && reason.contains("/bin/false exited"), "{reason}");
    assert_eq!(live_children(), vec![], "daemons left running");
}

/// ipvlan, vlan and vrf: every case either runs or says why not; where the kernel lacks the
/// link type, the cases that need no working ADD are still judged.
#[test]
#[ignore = "needs root and /usr/lib/cni"]
fn plugins_whose_link_type_the_kernel_lacks_are_judged_where_they_can_be() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    need_root_and_plugins();
    let ids = ["unknown-command", "add-missing-netns", "versions-del-never-added-1.0.0", "add-basic"];
    for name in ["ipvlan", "vlan", "vrf"] {
        let mut runner = Runner::new(Target::from_spec(&format!("plugin:/usr/lib/cni/{name}")).unwrap()).unwrap();
        assert_eq!(runner.unavailable, None, "{name}");
        let report = runner.run(&cases(&ids));
        let by_id = |id: &str| report.cases.iter().find(|c| c.id == id).unwrap();
        for id in &ids[..3] {
            assert_eq!(by_id(id).outcome, Outcome::Pass, "{name} {id}: {:#?}", by_id(id));
        }
        let add = &by_id("add-basic").outcome;
        match &runner.kernel_gap {
            Some(gap) => {
                assert!(gap.contains(&format!("lacks link type \"{name}\"")), "{gap}");
                let why = add.reason();
                assert!(matches!(add, Outcome::Skipped { .. }) && why.contains("needs a successful ADD"), "{why}");
                assert!(!why.contains("cck"), "the probe's netns name stays out of reports: {why}");
            }
            None => assert_eq!(*add, Outcome::Pass, "{name} add-basic"),
        }
    }
}
