//! `/debug/pprof/*` on the metrics listener (`enablePprof`, spec §10): CPU profiles in the pprof
//! format that `go tool pprof` reads, sampled by the `pprof` crate (SIGPROF at 100 Hz, Go's
//! rate), gzipped protobuf `perftools.profiles.Profile` as Go's `net/http/pprof` serves them;
//! `/debug/pprof/cmdline` as Go's. What Go's runtime has and this process has not (heap and
//! allocation profiles: the C library's allocator records no allocation sites; goroutines,
//! threads, blocking, mutexes, execution traces, symbol look-ups) answers 501 with what to use
//! instead.

use std::io::Write as _;
use std::time::Duration;

/// Go's default for `/debug/pprof/profile` without `seconds`.
pub const DEFAULT_SECONDS: u64 = 30;
/// The longest profile served (a request above it is a 400).
pub const MAX_SECONDS: u64 = 600;
/// Samples per second (Go's CPU profiler rate).
pub const FREQUENCY: i32 = 100;

/// One answer of the profiling endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Served as a download named `profile` (Go's Content-Disposition).
    pub attachment: bool,
    /// The body.
    pub body: Vec<u8>,
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: u16, body: impl Into<String>) -> Answer {
    Answer { status, content_type: TEXT, attachment: false, body: body.into().into_bytes() }
}

/// Why no profile was taken.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Another profile is being taken (one at a time, process-wide).
    #[error("Could not enable CPU profiling: cpu profiling already in use")]
    Busy,
    /// The profiler failed.
    #[error("CPU profiling failed: {0}")]
    Profiler(#[from] pprof::Error),
    /// The profile could not be encoded.
    #[error("encoding the profile: {0}")]
    Encode(String),
}

/// `seconds` of the query: Go's rule (absent, unparsable or not positive: the default),
/// bounded by [`MAX_SECONDS`].
pub fn profile_seconds(query: Option<&str>) -> Result<u64, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("seconds="))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_SECONDS, |s| s.unsigned_abs());
    if value > MAX_SECONDS {
        return Err(format!("profile duration {value}s exceeds the maximum of {MAX_SECONDS}s"));
    }
    Ok(value)
}

/// A CPU profile of the whole process over `duration`: gzipped `perftools.profiles.Profile`.
pub async fn cpu_profile(duration: Duration) -> Result<Vec<u8>, ProfileError> {
    let guard = pprof::ProfilerGuardBuilder::default()
        .frequency(FREQUENCY)
        // Unwinding inside these from a signal handler can deadlock (pprof's advice).
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
        .map_err(|e| match e {
            pprof::Error::Running => ProfileError::Busy,
            other => ProfileError::Profiler(other),
        })?;
    tokio::time::sleep(duration).await;
    // Symbolizing the samples is CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let report = guard.report().build()?;
        drop(guard);
        let profile = report.pprof()?;
        let raw = pprof::protos::Message::write_to_bytes(&profile).map_err(|e| ProfileError::Encode(e.to_string()))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).map_err(|e| ProfileError::Encode(e.to_string()))?;
        gz.finish().map_err(|e| ProfileError::Encode(e.to_string()))
    })
    .await
    .map_err(|e| ProfileError::Encode(e.to_string()))?
}

const INDEX: &str = "multus-rs /debug/pprof/\n\n\
profile   CPU profile (pprof format, gzipped protobuf): /debug/pprof/profile?seconds=N (default 30)\n\
cmdline   the daemon's command line\n\n\
Not available (501): heap, allocs, goroutine, threadcreate, block, mutex, trace, symbol.\n\
Memory: /debug/state (resident and peak memory, threads, descriptors), /metrics (process_* metrics).\n";

/// The answer for `path` (under `/debug/pprof`) with `query`.
pub async fn answer(path: &str, query: Option<&str>) -> Answer {
    match path.trim_start_matches("/debug/pprof").trim_start_matches('/') {
        "" => text(200, INDEX),
        "cmdline" => text(200, std::env::args().collect::<Vec<_>>().join("\0")),
        "profile" => {
            let seconds = match profile_seconds(query) {
                Ok(s) => s,
                Err(message) => return text(400, message + "\n"),
            };
            match cpu_profile(Duration::from_secs(seconds)).await {
                Ok(body) => Answer { status: 200, content_type: "application/octet-stream", attachment: true, body },
                Err(e) => text(500, format!("{e}\n")),
            }
        }
        "heap" | "allocs" => text(
            501,
            "heap profiles are not available: multus-rs uses the C library's allocator, which records no \
             allocation sites. Use /debug/state (resident and peak memory) or /metrics \
             (process_resident_memory_bytes); CPU profiles: /debug/pprof/profile\n",
        ),
        other @ ("goroutine" | "threadcreate" | "block" | "mutex" | "trace" | "symbol") => text(
            501,
            format!(
                "{other}: a Go runtime profile, which multus-rs has no equivalent of. Available: \
                 /debug/pprof/profile (CPU), /debug/pprof/cmdline, /debug/state (tasks, threads, descriptors, memory)\n"
            ),
        ),
        _ => text(404, "404 page not found\n"),
    }
}

#[cfg(test)]
mod tests;
