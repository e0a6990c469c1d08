//! What a node created on the host, removed again whatever happens.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Things created on the host that must go away again: processes (stopped by PID, the ones
/// we started and nothing else), network namespaces and links (by the names we gave them).
/// Shared by reference across threads (a storm of pods records its namespaces at once).
#[derive(Default)]
pub struct Cleanup {
    netns: Mutex<Vec<String>>,
    links: Mutex<Vec<String>>,
    pub children: Vec<Child>,
}

impl Cleanup {
    /// Delete network namespace `name` at drop.
    pub fn record_netns(&self, name: &str) {
        self.netns.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_string());
    }

    /// Delete link `name` at drop (deleting one end of a veth pair deletes both).
    pub fn record_link(&self, name: &str) {
        self.links.lock().unwrap_or_else(|e| e.into_inner()).push(name.to_string());
    }

    /// Create network namespace `name` (deleted at drop); its path.
    pub fn new_netns(&self, name: &str) -> String {
        assert!(quiet_ip(&["netns", "add", name]), "ip netns add {name}");
        self.record_netns(name);
        format!("/var/run/netns/{name}")
    }

    /// Delete network namespace `name` now.
    pub fn remove_netns(&self, name: &str) {
        quiet_ip(&["netns", "del", name]);
        self.netns.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| n != name);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            stop_child(child, Duration::from_secs(5));
        }
        for ns in self.netns.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            quiet_ip(&["netns", "del", ns]);
        }
        for link in self.links.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            quiet_ip(&["link", "del", link]);
        }
    }
}

fn quiet_ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// SIGTERM to `child` by its PID, up to `grace` to exit, then SIGKILL; reaped either way.
pub fn stop_child(child: &mut Child, grace: Duration) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
