//! The process a CRI runtime keeps in a pod sandbox: it holds the pod's namespaces and does
//! nothing. e2e builds it static and imports it as the runtime's sandbox image (nothing is
//! pulled on these machines).
//!
//! It runs as PID 1 of its PID namespace, where signals without a handler are ignored, so it
//! never exits on SIGTERM; runtimes stop sandboxes with SIGKILL (containerd does).

fn main() {
    loop {
        std::thread::park();
    }
}
