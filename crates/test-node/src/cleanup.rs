//! What a node created on the host, removed again whatever happens.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Things created on the host that must go away again: processes (stopped by PID, the ones
/// we started and nothing else), network namespaces and links (by the names we gave them).
#[derive(Default)]
pub struct Cleanup {
    pub netns: Vec<String>,
    pub links: Vec<String>,
    pub children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            stop_child(child, Duration::from_secs(5));
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
    }
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
