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

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date library (the shim stays tiny).
fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
