//! Helpers that announce themselves on their first line of stdout (`listening on …`):
//! kube-mock's binary and the fake kubelet.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cleanup::stop_child;

/// Start `command` (stdin closed, stderr to `stderr`) and read its first line of stdout; the
/// rest of its stdout is drained in a thread, so that it never blocks or fails on the pipe.
/// The process is stopped again when its stdout cannot be read.
pub fn spawn_announcing(command: &mut Command, stderr: Stdio) -> std::io::Result<(Child, String)> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let mut reader = BufReader::new(out);
        if let Err(e) = reader.read_line(&mut line) {
            stop_child(&mut child, Duration::from_secs(5));
            return Err(e);
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
    }
    Ok((child, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_and_the_rest_drained() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'listening on http://127.0.0.1:9'; echo more; echo more"]);
        let (mut child, line) = spawn_announcing(&mut cmd, Stdio::null()).unwrap();
        assert_eq!(crate::api_binary::listening_url(&line).unwrap(), "http://127.0.0.1:9");
        assert!(child.wait().unwrap().success());
    }
}
