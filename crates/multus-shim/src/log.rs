//! The shim's logging: the Go format `<RFC3339> [<level>] <message>` to stderr and/or a file,
//! configured from `logFile`, `logLevel` and `logToStderr` in the shim's stdin config.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Panic = 0,
    Error = 1,
    Verbose = 2,
    Debug = 3,
}

pub struct Logger {
    level: Level,
    file: String,
    to_stderr: bool,
}

impl Logger {
    pub fn new(file: &str, level: &str, to_stderr: bool) -> Self {
        let level = match level.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "verbose" => Level::Verbose,
            "error" => Level::Error,
            _ => Level::Panic,
        };
        Self { level, file: file.to_string(), to_stderr }
    }

    pub fn error(&self, msg: &str) {
        self.write(Level::Error, "error", msg);
    }

    pub fn verbose(&self, msg: &str) {
        self.write(Level::Verbose, "verbose", msg);
    }

    fn write(&self, level: Level, name: &str, msg: &str) {
        if level > self.level || (!self.to_stderr && self.file.is_empty()) {
            return;
        }
        let line = format!("{} [{name}] {msg}\n", rfc3339_now());
        if self.to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if !self.file.is_empty()
            && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.file)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date library (the shim stays tiny): the same
/// formatter that stamps the build date.
fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    build_info::rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = rfc3339_now();
        assert_eq!((now.len(), &now[4..5], &now[10..11], &now[19..]), (20, "-", "T", "Z"), "{now}");
    }
}
