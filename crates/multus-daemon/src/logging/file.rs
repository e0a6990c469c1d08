//! The size-rotated log file and the background thread that compresses and prunes backups.

use super::*;

/// A size-rotated log file shared by every writer (lumberjack's behaviour, see the module docs).
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<FileState>>,
    mill: mpsc::Sender<MillRequest>,
}

pub(super) struct FileState {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    rotation: Rotation,
    /// The newest backup's time stamp: the next one is later even when the clock is not (two
    /// rotations in one millisecond, a clock stepped back).
    last_backup: Option<DateTime<Utc>>,
}

pub(super) enum MillRequest {
    /// Remove and compress backups.
    Run,
    /// Answer once every earlier request is done.
    Sync(mpsc::Sender<()>),
}

impl RotatingFile {
    /// Open (append) or create `path` (0600, its directory created), start the thread that
    /// compresses and prunes backups, and prune once.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (to_mill, requests) = mpsc::channel();
        let mill_path = path.to_path_buf();
        std::thread::Builder::new().name("log-mill".into()).spawn(move || {
            for request in requests {
                match request {
                    MillRequest::Run => {
                        // Best effort, as lumberjack: a backup that cannot be removed or
                        // compressed now is tried again after the next rotation.
                        let _ = mill(&mill_path, &rotation, Utc::now());
                    }
                    MillRequest::Sync(done) => {
                        let _ = done.send(());
                    }
                }
            }
        })?;
        let _ = to_mill.send(MillRequest::Run);
        Ok(Self {
            inner: Arc::new(Mutex::new(FileState {
                path: path.to_path_buf(),
                file: Some(file),
                written,
                rotation,
                last_backup: None,
            })),
            mill: to_mill,
        })
    }

    /// Wait until the background compression and pruning requested so far are done.
    pub fn wait_for_maintenance(&self) {
        let (done, wait) = mpsc::channel();
        if self.mill.send(MillRequest::Sync(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

impl FileState {
    /// Rename the file to its backup name and start a new one with the same permissions.
    fn rotate(&mut self) -> io::Result<()> {
        let mode = self.file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.permissions().mode() & 0o7777);
        self.file = None;
        let (dir, stem, ext) = split_name(&self.path);
        // Names must sort as the backups were made: the mill keeps the newest by name. A stamp
        // only "free on disk" was not enough: within one millisecond, a backup the mill had just
        // pruned freed its stamp for the next rotation, which then sorted before an older one.
        let mut stamp = match self.last_backup {
            Some(last) => Utc::now().max(last + chrono::Duration::milliseconds(1)),
            None => Utc::now(),
        };
        let backup = loop {
            // Nor may a backup overwrite one another process (or run) left.
            let name = format!("{stem}-{}{ext}", stamp.format(BACKUP_TIME_FORMAT));
            let candidate = dir.join(&name);
            let compressed = dir.join(format!("{name}{COMPRESSED_SUFFIX}"));
            if !candidate.exists() && !compressed.exists() {
                break candidate;
            }
            stamp += chrono::Duration::milliseconds(1);
        };
        self.last_backup = Some(stamp);
        // Renamed or not, logging goes on in a file at `path` (the old one when renaming failed).
        let renamed = std::fs::rename(&self.path, &backup);
        let file = OpenOptions::new().create(true).append(true).mode(mode.unwrap_or(0o600)).open(&self.path)?;
        self.written = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        renamed
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let rotate = state.file.is_none()
            || (state.written > 0 && state.written.saturating_add(buf.len() as u64) > state.rotation.max_size_bytes);
        if rotate && state.rotate().is_ok() {
            let _ = self.mill.send(MillRequest::Run);
        }
        let n = match state.file.as_mut() {
            Some(f) => f.write(buf)?,
            None => return Err(io::Error::other("the log file could not be reopened after rotation")),
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

/// Directory, name without extension, extension with its dot (lumberjack's prefix and ext).
pub(super) fn split_name(path: &Path) -> (PathBuf, String, String) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("multus.log");
    match name.rfind('.').filter(|&i| i > 0) {
        Some(i) => (dir, name[..i].to_string(), name[i..].to_string()),
        None => (dir, name.to_string(), String::new()),
    }
}

/// One backup of the log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Backup {
    pub(super) path: PathBuf,
    /// Its name without [`COMPRESSED_SUFFIX`] (a backup and its compressed copy are one).
    pub(super) base: String,
    pub(super) time: DateTime<Utc>,
    pub(super) compressed: bool,
}

/// The backups of the log file at `path`, newest first.
pub(super) fn backups(path: &Path) -> io::Result<Vec<Backup>> {
    let (dir, stem, ext) = split_name(path);
    let prefix = format!("{stem}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let (base, compressed) = match name.strip_suffix(COMPRESSED_SUFFIX) {
            Some(b) => (b.to_string(), true),
            None => (name.clone(), false),
        };
        let Some(stamp) = base.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(ext.as_str())) else {
            continue;
        };
        let Ok(time) = NaiveDateTime::parse_from_str(stamp, BACKUP_TIME_FORMAT) else { continue };
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push(Backup { path: entry.path(), base, time: time.and_utc(), compressed });
        }
    }
    found.sort_by(|a, b| b.time.cmp(&a.time).then(a.compressed.cmp(&b.compressed)));
    Ok(found)
}

/// lumberjack's "mill": remove backups beyond `max_backups`, then those older than `max_age`,
/// then compress what is left (uncompressed) when `compress` is set.
pub(super) fn mill(path: &Path, rotation: &Rotation, now: DateTime<Utc>) -> io::Result<()> {
    let mut files = backups(path)?;
    if let Some(max) = rotation.max_backups {
        let mut kept_bases: Vec<String> = Vec::new();
        files.retain(|b| {
            if !kept_bases.contains(&b.base) {
                kept_bases.push(b.base.clone());
            }
            let keep = kept_bases.len() <= max;
            if !keep {
                let _ = std::fs::remove_file(&b.path);
            }
            keep
        });
    }
    if let Some(age) = rotation.max_age {
        let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        files.retain(|b| {
            let keep = b.time >= cutoff;
            if !keep {
                let _ = std::fs::remove_file(&b.path);
            }
            keep
        });
    }
    if rotation.compress {
        for b in files.iter().filter(|b| !b.compressed) {
            compress(&b.path)?;
        }
    }
    Ok(())
}

/// Gzip `path` to `path.gz` (same permissions) and remove `path`. Interrupted, it leaves the
/// original in place and the next run compresses it again.
pub(super) fn compress(path: &Path) -> io::Result<()> {
    let mut source = File::open(path)?;
    let mode = source.metadata()?.permissions().mode() & 0o7777;
    let mut target_name = path.as_os_str().to_owned();
    target_name.push(COMPRESSED_SUFFIX);
    let target = OpenOptions::new().create(true).write(true).truncate(true).mode(mode).open(&target_name)?;
    let mut encoder = flate2::write::GzEncoder::new(target, flate2::Compression::default());
    io::copy(&mut source, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI saw the newest backup sort second: within one millisecond the mill pruned the oldest
    /// backup, freeing its stamp, and the next rotation took it. Rotations here are microseconds
    /// apart, as in that run, and the oldest backup is removed between them as the mill does.
    #[test]
    fn a_backup_made_after_a_pruned_one_sorts_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multus.log");
        let rotation = Rotation { max_size_bytes: 1, max_age: None, max_backups: None, compress: false };
        let file = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let mut state = FileState { path: path.clone(), file: Some(file), written: 0, rotation, last_backup: None };
        for i in 0..20 {
            std::fs::write(&path, format!("{i}\n")).unwrap();
            state.rotate().unwrap();
            let all = backups(&path).unwrap();
            assert_eq!(
                std::fs::read_to_string(&all[0].path).unwrap(),
                format!("{i}\n"),
                "newest first after rotation {i}"
            );
            if let Some(oldest) = all.last().filter(|_| all.len() > 1) {
                std::fs::remove_file(&oldest.path).unwrap();
            }
        }
    }
}
