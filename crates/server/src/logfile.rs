//! `quarry.log` in `log-dir`, rotated when it passes `log-max-size-mb` (to
//! `quarry.log.<UTC date-time>`), with rotated files older than `log-retention-days` removed,
//! as Kvrocks' log cleaner does (-1 keeps them all).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

pub const FILE_NAME: &str = "quarry.log";

struct State {
    file: File,
    size: u64,
}

/// The log file; clones share it.
#[derive(Clone)]
pub struct LogFile {
    dir: PathBuf,
    max_bytes: u64,
    state: Arc<Mutex<State>>,
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl LogFile {
    /// Opens `<dir>/quarry.log`, rotating it first if it is already past the limit.
    pub fn open(dir: &Path, max_mb: u64) -> io::Result<LogFile> {
        std::fs::create_dir_all(dir)?;
        let (file, size) = open(&dir.join(FILE_NAME))?;
        let log = LogFile {
            dir: dir.to_path_buf(),
            max_bytes: max_mb.max(1) * 1024 * 1024,
            state: Arc::new(Mutex::new(State { file, size })),
        };
        if size >= log.max_bytes {
            log.rotate(&mut log.state.lock())?;
        }
        Ok(log)
    }

    fn rotate(&self, state: &mut State) -> io::Result<()> {
        let current = self.dir.join(FILE_NAME);
        let mut target = self
            .dir
            .join(format!("{FILE_NAME}.{}", stamp(SystemTime::now())));
        let mut n = 1;
        while target.exists() {
            target = self
                .dir
                .join(format!("{FILE_NAME}.{}.{n}", stamp(SystemTime::now())));
            n += 1;
        }
        state.file.flush()?;
        std::fs::rename(&current, &target)?;
        let (file, size) = open(&current)?;
        state.file = file;
        state.size = size;
        Ok(())
    }

    /// A writer for tracing: each event is one write.
    pub fn writer(&self) -> LogWriter {
        LogWriter(self.clone())
    }
}

pub struct LogWriter(LogFile);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let log = &self.0;
        let mut state = log.state.lock();
        if state.size > 0 && state.size + buf.len() as u64 > log.max_bytes {
            // A failed rotation keeps writing to the current file.
            let _ = log.rotate(&mut state);
        }
        state.file.write_all(buf)?;
        state.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.state.lock().file.flush()
    }
}

/// Removes rotated log files (`quarry.log.*`) in `dir` last written more than `days` days
/// ago; `days` < 0 keeps them. Returns how many went.
pub fn purge(dir: &Path, days: i64) -> usize {
    if days < 0 {
        return 0;
    }
    let keep = Duration::from_secs(days as u64 * 86_400);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let prefix = format!("{FILE_NAME}.");
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > keep)
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_civil_time() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_441_445);
        assert_eq!(stamp(t), "20261205-033045");
        assert_eq!(stamp(SystemTime::UNIX_EPOCH), "19700101-000000");
    }

    #[test]
    fn rotates_past_the_limit_and_purges_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::open(dir.path(), 1).unwrap();
        let mut w = log.writer();
        let line = vec![b'x'; 100 * 1024];
        for _ in 0..15 {
            w.write_all(&line).unwrap();
        }
        let rotated: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("quarry.log."))
            .collect();
        assert_eq!(rotated.len(), 1);
        let current = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert!(current < 1024 * 1024 && current > 0);
        // Only files older than the retention go.
        assert_eq!(purge(dir.path(), 1), 0);
        let old = File::options().write(true).open(rotated[0].path()).unwrap();
        old.set_modified(SystemTime::now() - Duration::from_secs(3 * 86_400))
            .unwrap();
        assert_eq!(purge(dir.path(), -1), 0);
        assert_eq!(purge(dir.path(), 2), 1);
        assert!(dir.path().join(FILE_NAME).exists());
    }
}
