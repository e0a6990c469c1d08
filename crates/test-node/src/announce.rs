//! Helpers that announce themselves on their first line of stdout (`listening on …`):
//! kube-mock's binary and the fake kubelet.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use crate::cleanup::stop_child;

/// Start `command` (stdin closed, stderr to `stderr`) and read its first line of stdout; the
/// rest of its stdout is drained in a thread, so that it never blocks or fails on the pipe.
/// The process is stopped again when its stdout cannot be read.
pub fn spawn_announcing(command: &mut Command, stderr: Stdio) -> std::io::Result<(Child, String)> {
    let (mut child, first) = spawn_with_first_line(command, stderr)?;
    // A process that closed its stdout before a whole line announced nothing: "".
    match first.recv().unwrap_or(None).unwrap_or(Ok(String::new())) {
        Ok(line) => Ok((child, line)),
        Err(e) => {
            stop_child(&mut child, Duration::from_secs(5));
            Err(e)
        }
    }
}

/// The first line of a process's stdout, as the reader thread of [`spawn_with_first_line`]
/// sends it: `None` when stdout ended before any line.
pub(crate) type FirstLine = Receiver<Option<std::io::Result<String>>>;

/// Start `command` (stdin closed, stdout piped, stderr to `stderr`) with a thread that sends its
/// first line of stdout and then drains the rest, so that it never blocks or fails on the pipe.
/// The caller waits for the line as long as it chooses.
pub(crate) fn spawn_with_first_line(command: &mut Command, stderr: Stdio) -> std::io::Result<(Child, FirstLine)> {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn()?;
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = match reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(Ok(line)),
            Err(e) => Some(Err(e)),
        };
        let failed = matches!(first, Some(Err(_)));
        let _ = tx.send(first);
        if !failed {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        }
    });
    Ok((child, rx))
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
