//! Logging: the Go daemon's settings (`logLevel`, `logFile`, `logToStderr`, `logOptions`)
//! mapped onto `tracing`, plus the multus-rs key `logFormat`.
//!
//! - **Line format** (`logFormat` absent or `"text"`): Go's `<RFC3339> [<level>] <message>`, with
//!   microseconds in the timestamp (`2026-07-27T21:58:38.123456Z [verbose] …`), followed by the
//!   event's own fields and the fields of the spans it happened in as `key=value` (every request
//!   line carries `command=ADD container=… pod=<namespace>/<name>`). Go's level names: `error`,
//!   warnings as `[error] warning: …`, `verbose` (info), `debug`.
//! - **JSON** (`logFormat: "json"`): one object per line, `{"time", "level", "msg", <span
//!   fields>, <event fields>, "target"}`, levels `error`, `warning`, `verbose`, `debug`.
//! - **Colour** only on a terminal: the stderr sink colours the level when stderr is a TTY (and
//!   `NO_COLOR` is unset); the log file and piped stderr never carry escape sequences.
//! - **Levels**: `logLevel` applies to multus-rs's own crates; every other target (hyper, h2,
//!   kube, tower, rustls, …) logs at `warn` or less, so `logLevel: debug` is not flooded by
//!   HTTP internals. `RUST_LOG`, when set, replaces the whole filter (a development aid).
//! - **Rotation** (`logOptions`, as lumberjack, the Go daemon's logger): a new file when the
//!   next line would pass `maxSize` MB (0 or unset: 100); the old one becomes
//!   `<name>-<UTC time>.<ext>`, gzipped to `….gz` with `compress` (default true); at start-up
//!   and after each rotation, backups beyond `maxBackups` (default 5; 0: keep all) and older
//!   than `maxAge` days (default 5; 0: no age limit) are removed. Compression and removal run on
//!   a background thread, never in the logging path.
//! - A `logFile` that cannot be opened does not silence the daemon: it logs to stderr (even
//!   with `logToStderr: false`) and says why.
//!
//! Differences from the Go daemon, on purpose: logging is configured once at startup (the Go
//! daemon reconfigures the global logger on every request, racing with itself and leaking a
//! file handle per request); the log file is opened once.

use chrono::{DateTime, NaiveDateTime, Utc};
use multus::config::{DaemonConfig, EffectiveLogOptions};
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The daemon-config key choosing the log line format (multus-rs only): `"text"` or `"json"`.
pub(crate) const LOG_FORMAT_KEY: &str = "logFormat";

/// The crates whose events `logLevel` governs; every other target is capped at `warn`.
pub(crate) const OWN_TARGETS: [&str; 5] = ["multus_daemon", "multus", "multus_api", "multus_devices", "cni"];

const MEGABYTE: u64 = 1024 * 1024;
const DAY: Duration = Duration::from_secs(24 * 3600);
/// lumberjack's backup time stamp (`2006-01-02T15-04-05.000`), always UTC here.
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";
const COMPRESSED_SUFFIX: &str = ".gz";

/// The shape of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// Go's `<time> [<level>] <message>` (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Format {
    /// `"text"` / `"json"`, any case; empty means text.
    pub fn parse(name: &str) -> Result<Self, UnknownFormat> {
        match name.to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(UnknownFormat(other.to_string())),
        }
    }
}

/// A `logFormat` that is neither text nor JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{LOG_FORMAT_KEY} {0:?} is neither \"text\" nor \"json\"; using text")]
pub(crate) struct UnknownFormat(String);

/// Rotation settings of the log file, with lumberjack's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would make the file larger than this.
    pub max_size_bytes: u64,
    /// Remove backups older than this (by the time in their name); `None`: no age limit.
    pub max_age: Option<Duration>,
    /// Keep at most this many backups; `None`: keep all.
    pub max_backups: Option<usize>,
    /// Gzip the backups.
    pub compress: bool,
}

impl Default for Rotation {
    /// The Go daemon's defaults: 100 MB, 5 days, 5 backups, compressed.
    fn default() -> Self {
        Self::from_options(&multus::config::LogOptions::default().effective())
    }
}

impl Rotation {
    /// From `logOptions` (with the defaults applied). As lumberjack: `maxSize` 0 means 100 MB,
    /// `maxAge` 0 no age limit, `maxBackups` 0 keep every backup; negative values count as 0.
    pub fn from_options(options: &EffectiveLogOptions) -> Self {
        let max_size_mb = if options.max_size > 0 { options.max_size as u64 } else { 100 };
        Self {
            max_size_bytes: max_size_mb.saturating_mul(MEGABYTE),
            max_age: (options.max_age > 0).then(|| DAY.saturating_mul(options.max_age.min(u32::MAX as i64) as u32)),
            max_backups: (options.max_backups > 0).then_some(options.max_backups as usize),
            compress: options.compress,
        }
    }
}

/// Everything logging is configured from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// `logLevel` (`debug`, `verbose`, `error`, `panic`; empty or unknown: `panic`).
    pub level: String,
    /// `logFile`; `None` or empty: no file.
    pub file: Option<PathBuf>,
    /// `logToStderr`.
    pub to_stderr: bool,
    /// `logOptions`: rotation of the log file.
    pub rotation: Rotation,
    /// `logFormat`: text (Go's line) or JSON.
    pub format: Format,
}

impl Settings {
    /// The daemon config's logging keys; the second value lists what was not understood (each
    /// message says what is used instead).
    pub fn from_config(config: &DaemonConfig) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let format = match config.raw.get(LOG_FORMAT_KEY) {
            None | Some(Value::Null) => Format::Text,
            Some(Value::String(s)) => Format::parse(s).unwrap_or_else(|e| {
                problems.push(e.to_string());
                Format::Text
            }),
            Some(other) => {
                problems
                    .push(format!("{LOG_FORMAT_KEY} must be a string (\"text\" or \"json\"), not {other}; using text"));
                Format::Text
            }
        };
        if !config.log_level.is_empty() && level_by_name(&config.log_level).is_none() {
            problems.push(format!(
                "cannot set logging level to {:?} (not one of debug, verbose, error, panic); using panic",
                config.log_level
            ));
        }
        let options = config.log_options.clone().unwrap_or_default().effective();
        let settings = Self {
            level: config.log_level.clone(),
            file: Some(PathBuf::from(&config.log_file)).filter(|p| !p.as_os_str().is_empty()),
            to_stderr: config.log_to_stderr,
            rotation: Rotation::from_options(&options),
            format,
        };
        (settings, problems)
    }
}

fn level_by_name(name: &str) -> Option<Level> {
    match name.to_ascii_lowercase().as_str() {
        "debug" => Some(Level::DEBUG),
        "verbose" => Some(Level::INFO),
        // Go prints warnings at error level.
        "error" => Some(Level::WARN),
        "panic" => Some(Level::ERROR),
        _ => None,
    }
}

/// Map a Multus level name to a tracing level. Unknown names keep the default (`panic`).
pub(crate) fn level_filter(name: &str) -> Level {
    level_by_name(name).unwrap_or(Level::ERROR)
}

/// The filter: `level` for [`OWN_TARGETS`], at most `warn` for everything else; `rust_log`
/// (the `RUST_LOG` variable), when non-empty, instead.
pub(crate) fn filter_directives(level: &str, rust_log: Option<&str>) -> String {
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        return spec.to_string();
    }
    let own = level_filter(level);
    // A more verbose level is "greater" in tracing; third parties never go past warn.
    let others = own.min(Level::WARN);
    let mut directives = others.as_str().to_ascii_lowercase();
    for target in OWN_TARGETS {
        let _ = write!(directives, ",{target}={}", own.as_str().to_ascii_lowercase());
    }
    directives
}

/// Install the global subscriber from the daemon config and log, as warnings, whatever in the
/// logging settings could not be honoured (an unknown `logFormat`, a log file that cannot be
/// opened, …). Never fails: logging falls back to stderr.
pub fn init_from_config(config: &DaemonConfig) {
    let (settings, problems) = Settings::from_config(config);
    init(&settings, problems);
}

/// Install the global subscriber; `problems` are logged once it is in place.
pub(crate) fn init(settings: &Settings, mut problems: Vec<String>) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let colour = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (subscriber, open_problems) = build(settings, rust_log.as_deref(), io::stderr, colour);
    problems.extend(open_problems);
    if subscriber.try_init().is_err() {
        // Already installed (a second call in one process): keep the first.
        return;
    }
    for problem in problems {
        tracing::warn!("{problem}");
    }
}

/// The subscriber for `settings`, with `stderr` as the stderr sink (coloured with `colour`);
/// the second value lists what could not be set up (a log file that cannot be opened).
pub(crate) fn build<W>(
    settings: &Settings,
    rust_log: Option<&str>,
    stderr: W,
    colour: bool,
) -> (impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>, Vec<String>)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut problems = Vec::new();
    let file = match &settings.file {
        Some(path) => match RotatingFile::open(path, settings.rotation) {
            Ok(f) => Some(f),
            Err(e) => {
                problems.push(format!("cannot open the log file {}: {e}; logging to stderr instead", path.display()));
                None
            }
        },
        None => None,
    };
    let to_stderr = settings.to_stderr || (settings.file.is_some() && file.is_none());
    let format = LineFormat { format: settings.format };
    let stderr_layer =
        to_stderr.then(|| tracing_subscriber::fmt::layer().with_ansi(colour).event_format(format).with_writer(stderr));
    let file_layer =
        file.map(|f| tracing_subscriber::fmt::layer().with_ansi(false).event_format(format).with_writer(f));
    let filter = tracing_subscriber::EnvFilter::new(filter_directives(&settings.level, rust_log));
    let subscriber =
        tracing_subscriber::registry().with(filter).with(SpanFieldsLayer).with(stderr_layer).with(file_layer);
    (subscriber, problems)
}

mod file;
mod format;

pub use file::*;
use format::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn levels() {
        assert_eq!(level_filter("DEBUG"), Level::DEBUG);
        assert_eq!(level_filter("verbose"), Level::INFO);
        assert_eq!(level_filter("error"), Level::WARN);
        assert_eq!(level_filter("panic"), Level::ERROR);
        assert_eq!(level_filter("nonsense"), Level::ERROR);
    }

    #[test]
    fn third_party_targets_are_capped_at_warn_unless_rust_log_says_otherwise() {
        let d = filter_directives("debug", None);
        assert!(d.starts_with("warn,"), "{d}");
        assert!(d.contains("multus_daemon=debug") && d.contains(",cni=debug"), "{d}");
        // A stricter own level is stricter for everyone.
        assert!(filter_directives("panic", None).starts_with("error,"));
        assert_eq!(filter_directives("debug", Some("hyper=trace")), "hyper=trace");
        assert!(filter_directives("debug", Some(" ")).starts_with("warn,"));
    }

    #[test]
    fn lumberjack_meaning_of_the_options() {
        let r = Rotation::default();
        assert_eq!(
            r,
            Rotation { max_size_bytes: 100 * MEGABYTE, max_age: Some(DAY * 5), max_backups: Some(5), compress: true }
        );
        let zero = EffectiveLogOptions { max_age: 0, max_size: 0, max_backups: 0, compress: false };
        assert_eq!(
            Rotation::from_options(&zero),
            Rotation { max_size_bytes: 100 * MEGABYTE, max_age: None, max_backups: None, compress: false }
        );
        let negative = EffectiveLogOptions { max_age: -1, max_size: -3, max_backups: -2, compress: true };
        assert_eq!(Rotation::from_options(&negative), Rotation { compress: true, ..Rotation::from_options(&zero) });
        let set = EffectiveLogOptions { max_age: 2, max_size: 7, max_backups: 3, compress: true };
        assert_eq!(
            Rotation::from_options(&set),
            Rotation { max_size_bytes: 7 * MEGABYTE, max_age: Some(DAY * 2), max_backups: Some(3), compress: true }
        );
    }

    fn config(v: Value) -> DaemonConfig {
        DaemonConfig::from_bytes(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn settings_from_the_daemon_config() {
        let (s, problems) = Settings::from_config(&config(serde_json::json!({
            "logLevel": "debug", "logFile": "/var/log/multus.log", "logToStderr": true,
            "logFormat": "JSON", "logOptions": {"maxSize": 1, "maxBackups": 0}
        })));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.format, Format::Json);
        assert_eq!(s.file.as_deref(), Some(Path::new("/var/log/multus.log")));
        assert_eq!(s.rotation.max_size_bytes, MEGABYTE);
        assert_eq!(s.rotation.max_backups, None);
        assert_eq!(s.rotation.max_age, Some(DAY * 5));
        let (s, problems) =
            Settings::from_config(&config(serde_json::json!({"logFormat": "yaml", "logLevel": "loud"})));
        assert_eq!((s.format, s.file), (Format::Text, None));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("\"yaml\" is neither"), "{problems:?}");
        assert!(problems[1].contains("cannot set logging level to \"loud\""), "{problems:?}");
        let (_, problems) = Settings::from_config(&config(serde_json::json!({"logFormat": 1})));
        assert!(problems[0].contains("must be a string"), "{problems:?}");
    }

    /// A stderr stand-in: everything written, shared.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn settings(file: Option<PathBuf>, format: Format) -> Settings {
        Settings { level: "debug".into(), file, to_stderr: true, rotation: Rotation::default(), format }
    }

    /// Logs one request's worth of events through a subscriber built from `settings`.
    fn log_a_request(settings: &Settings, colour: bool) -> (Captured, Vec<String>) {
        let stderr = Captured::default();
        let (subscriber, problems) = build(settings, None, stderr.clone(), colour);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", command = "ADD", container = "c0ffee", pod = "ns1/pod-a");
            let _entered = span.enter();
            tracing::info!("ADD starting CNI request");
            tracing::warn!(attempt = 2_u64, "slow delegate");
            tracing::error!("failed: \"quoted\"");
            tracing::debug!(target: "hyper::proto", "hyper internals");
            tracing::warn!(target: "kube_client", "kube warning");
        });
        (stderr, problems)
    }

    #[test]
    fn text_lines_are_gos_with_microseconds_and_the_request_fields() {
        let (stderr, problems) = log_a_request(&settings(None, Format::Text), false);
        assert!(problems.is_empty());
        let text = stderr.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let (time, rest) = lines[0].split_once(' ').unwrap();
        assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert_eq!(time.len(), "2026-07-27T21:58:38.123456Z".len(), "{time}");
        assert_eq!(rest, "[verbose] ADD starting CNI request command=ADD container=c0ffee pod=ns1/pod-a");
        assert!(
            lines[1].ends_with("[error] warning: slow delegate attempt=2 command=ADD container=c0ffee pod=ns1/pod-a")
        );
        assert!(lines[2].ends_with("[error] failed: \"quoted\" command=ADD container=c0ffee pod=ns1/pod-a"));
        // hyper at debug is filtered out; a third party's warning is kept.
        assert!(!text.contains("hyper internals"));
        assert!(lines[3].contains("[error] warning: kube warning"));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn json_lines_parse_and_carry_the_request_fields() {
        let (stderr, _) = log_a_request(&settings(None, Format::Json), true);
        let lines: Vec<Value> = stderr.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        let first = &lines[0];
        assert_eq!(first["level"], "verbose");
        assert_eq!(first["msg"], "ADD starting CNI request");
        assert_eq!(
            (&first["command"], &first["container"], &first["pod"]),
            (&"ADD".into(), &"c0ffee".into(), &"ns1/pod-a".into())
        );
        assert_eq!(first["target"], module_path!());
        assert!(DateTime::parse_from_rfc3339(first["time"].as_str().unwrap()).is_ok());
        assert_eq!((&lines[1]["level"], &lines[1]["attempt"]), (&"warning".into(), &2.into()));
        assert_eq!(lines[2]["msg"], "failed: \"quoted\"");
        assert_eq!(lines[3]["target"], "kube_client");
        // JSON is never coloured, even on a terminal.
        assert!(!stderr.text().contains('\x1b'));
    }

    #[test]
    fn colour_only_on_the_terminal_sink_never_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let (stderr, problems) = log_a_request(&settings(Some(path.clone()), Format::Text), true);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(stderr.text().contains("\x1b[32m[verbose]\x1b[0m ADD starting"), "{}", stderr.text());
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(file.lines().count(), 4, "{file}");
        assert!(!file.contains('\x1b'), "{file:?}");
        assert!(file.contains("[verbose] ADD starting CNI request command=ADD"));
        // Created private: logs name pods and containers.
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_log_file_that_cannot_be_opened_keeps_stderr_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, "").unwrap();
        let mut s = settings(Some(blocker.join("multus.log")), Format::Text);
        s.to_stderr = false;
        let (stderr, problems) = log_a_request(&s, false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with(&format!("cannot open the log file {}/multus.log: ", blocker.display())));
        assert!(problems[0].ends_with("logging to stderr instead"), "{problems:?}");
        assert!(stderr.text().contains("[verbose] ADD starting CNI request"), "{}", stderr.text());
    }

    fn small(max_size_bytes: u64, max_backups: Option<usize>, compress: bool) -> Rotation {
        Rotation { max_size_bytes, max_age: None, max_backups, compress }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_by_size_without_splitting_lines_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let mut f = RotatingFile::open(&path, small(20, Some(2), false)).unwrap();
        for i in 0..6 {
            f.write_all(format!("line {i} 123456789\n").as_bytes()).unwrap(); // 17 bytes
        }
        f.wait_for_maintenance();
        let names = names(dir.path());
        assert_eq!(names.len(), 3, "current file plus two backups: {names:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 5 123456789\n");
        let backups = backups(&path).unwrap();
        assert!(backups.iter().all(|b| !b.compressed && b.base.starts_with("multus-") && b.base.ends_with(".log")));
        // Newest first: lines 4 and 3 were kept, 0-2 pruned.
        assert_eq!(std::fs::read_to_string(&backups[0].path).unwrap(), "line 4 123456789\n");
        assert_eq!(std::fs::read_to_string(&backups[1].path).unwrap(), "line 3 123456789\n");
    }

    #[test]
    fn zero_backups_keeps_every_backup_and_compress_gzips_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut f = RotatingFile::open(&path, small(10, None, true)).unwrap();
        for i in 0..8 {
            f.write_all(format!("entry {i:03}\n").as_bytes()).unwrap(); // 10 bytes
        }
        f.wait_for_maintenance();
        let backups = backups(&path).unwrap();
        assert_eq!(backups.len(), 7, "{:?}", names(dir.path()));
        assert!(backups.iter().all(|b| b.compressed && b.path.to_string_lossy().ends_with(".log.gz")));
        let mut newest = String::new();
        flate2::read::GzDecoder::new(File::open(&backups[0].path).unwrap()).read_to_string(&mut newest).unwrap();
        assert_eq!(newest, "entry 006\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "entry 007\n");
    }

    #[test]
    fn max_age_removes_old_backups_by_the_time_in_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let now = Utc::now();
        let backup = |days: i64, suffix: &str| {
            let t = now - chrono::Duration::days(days) - chrono::Duration::minutes(1);
            let p = dir.path().join(format!("multus-{}.log{suffix}", t.format(BACKUP_TIME_FORMAT)));
            std::fs::write(&p, "old\n").unwrap();
            p
        };
        let fresh = backup(0, "");
        let two_days = backup(2, ".gz");
        let ten_days = backup(10, "");
        let unrelated = dir.path().join("other-2020-01-01T00-00-00.000.log");
        std::fs::write(&unrelated, "").unwrap();
        let rotation =
            Rotation { max_size_bytes: MEGABYTE, max_age: Some(DAY * 3), max_backups: None, compress: false };
        // Pruned when the file is opened (as lumberjack does), in the background.
        let f = RotatingFile::open(&path, rotation).unwrap();
        f.wait_for_maintenance();
        assert!(fresh.exists() && two_days.exists() && unrelated.exists());
        assert!(!ten_days.exists());
        mill(&path, &Rotation { max_age: Some(DAY), ..rotation }, now).unwrap();
        assert!(fresh.exists() && !two_days.exists());
    }

    #[test]
    fn a_compressed_backup_and_its_leftover_original_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let now = Utc::now();
        let name = |minutes: i64| {
            format!("multus-{}.log", (now - chrono::Duration::minutes(minutes)).format(BACKUP_TIME_FORMAT))
        };
        for (file, body) in [(name(1), "a"), (format!("{}.gz", name(1)), "stale"), (name(2), "b"), (name(3), "c")] {
            std::fs::write(dir.path().join(file), body).unwrap();
        }
        mill(&path, &small(MEGABYTE, Some(2), true), now).unwrap();
        let expect = vec![format!("{}.gz", name(1)), format!("{}.gz", name(2))];
        let mut sorted = expect.clone();
        sorted.sort();
        assert_eq!(names(dir.path()), sorted);
        let mut text = String::new();
        let gz = File::open(dir.path().join(&expect[0])).unwrap();
        flate2::read::GzDecoder::new(gz).read_to_string(&mut text).unwrap();
        assert_eq!(text, "a", "the interrupted compression was redone from the original");
    }

    #[test]
    fn name_parts_as_lumberjack() {
        assert_eq!(split_name(Path::new("/var/log/multus.log")), ("/var/log".into(), "multus".into(), ".log".into()));
        assert_eq!(split_name(Path::new("multus")), (".".into(), "multus".into(), String::new()));
        assert_eq!(split_name(Path::new("/l/.hidden")), ("/l".into(), ".hidden".into(), String::new()));
    }
}
