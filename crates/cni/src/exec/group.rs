//! Killing a plugin's process group (plugins lead a group of their own).

/// SIGKILL the process group a started (and not yet reaped) plugin leads. After the leader has
/// been reaped its pid, and so the group id, may belong to someone else: then nothing is sent.
pub(super) fn kill_process_group(child: &tokio::process::Child) {
    kill_group_of(child.id());
}

/// SIGKILL the process group led by `pid`.
pub(super) fn kill_group_of(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // ESRCH (already gone) is fine: nothing left to stop.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}
