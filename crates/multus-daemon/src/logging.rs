//! Logging: the Go daemon's settings (`logLevel`, `logFile`, `logToStderr`, `logOptions`)
//! mapped onto `tracing`, with the Go line format `<RFC3339> [<level>] <message>`.
//!
//! Differences from the Go daemon, on purpose: logging is configured once at startup (the Go
//! daemon reconfigures the global logger on every request, racing with itself and leaking a
//! file handle per request); the log file is opened once and rotated by size.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Rotation settings (`logOptions`); unset fields keep the Go defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size_mb: u64,
    pub max_backups: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self { max_size_mb: 100, max_backups: 5 }
    }
}

/// Map a Multus level name to a tracing filter level. Unknown names keep the default (`panic`).
pub fn level_filter(name: &str) -> Level {
    match name.to_ascii_lowercase().as_str() {
        "debug" => Level::DEBUG,
        "verbose" => Level::INFO,
        // Go prints warnings at error level.
        "error" => Level::WARN,
        _ => Level::ERROR,
    }
}

/// `<RFC3339> [<level>] <message>` with Go's level names.
struct GoFormat;

impl<S, N> FormatEvent<S, N> for GoFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let (name, prefix) = match *event.metadata().level() {
            Level::ERROR => ("error", ""),
            Level::WARN => ("error", "warning: "),
            Level::INFO => ("verbose", ""),
            _ => ("debug", ""),
        };
        write!(writer, "{} [{name}] {prefix}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// A size-rotated log file shared by every writer.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<FileState>>,
}

struct FileState {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    rotation: Rotation,
}

impl RotatingFile {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            inner: Arc::new(Mutex::new(FileState { path: path.to_path_buf(), file: Some(file), written, rotation })),
        })
    }
}

impl FileState {
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H-%M-%S%.3f");
        let stem = self.path.file_stem().and_then(|s| s.to_str()).unwrap_or("multus");
        let ext = self.path.extension().and_then(|s| s.to_str()).map(|e| format!(".{e}")).unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::rename(&self.path, dir.join(format!("{stem}-{stamp}{ext}")))?;
        let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(&ext))
            })
            .collect();
        backups.sort();
        while backups.len() > self.rotation.max_backups {
            let _ = std::fs::remove_file(backups.remove(0));
        }
        self.file = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        self.written = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if state.written + buf.len() as u64 > state.rotation.max_size_mb.saturating_mul(1024 * 1024) {
            let _ = state.rotate();
        }
        let n = match state.file.as_mut() {
            Some(f) => f.write(buf)?,
            None => buf.len(),
        };
        state.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Where log lines go.
#[derive(Clone)]
struct Sinks {
    stderr: bool,
    file: Option<RotatingFile>,
}

struct SinkWriter(Sinks);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.stderr {
            let _ = io::stderr().write_all(buf);
        }
        if let Some(f) = self.0.file.as_mut() {
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sinks {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self.clone())
    }
}

/// Install the global subscriber. `RUST_LOG`, when set, overrides the level (development aid).
pub fn init(level: &str, file: Option<&Path>, to_stderr: bool, rotation: Rotation) -> io::Result<()> {
    let file = match file {
        Some(p) if !p.as_os_str().is_empty() => Some(RotatingFile::open(p, rotation)?),
        _ => None,
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => tracing_subscriber::EnvFilter::new(spec),
        _ => tracing_subscriber::EnvFilter::new(level_filter(level).as_str()),
    };
    let _ = tracing_subscriber::fmt()
        .event_format(GoFormat)
        .with_env_filter(filter)
        .with_writer(Sinks { stderr: to_stderr, file })
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_filter("DEBUG"), Level::DEBUG);
        assert_eq!(level_filter("verbose"), Level::INFO);
        assert_eq!(level_filter("error"), Level::WARN);
        assert_eq!(level_filter("panic"), Level::ERROR);
        assert_eq!(level_filter("nonsense"), Level::ERROR);
    }

    #[test]
    fn rotates_by_size_and_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let mut f = RotatingFile::open(&path, Rotation { max_size_mb: 0, max_backups: 2 }).unwrap();
        for _ in 0..5 {
            f.write_all(b"line\n").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let count = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(count <= 3, "current file plus at most two backups, found {count}");
        assert!(path.exists());
    }
}
