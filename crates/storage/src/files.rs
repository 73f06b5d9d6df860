//! Small files that must survive a crash at any moment (nodes.conf, the role file, the
//! rewritten config, the migration bookkeeping): written to a temporary file next to the
//! target, synced, renamed over the old file, and the directory synced. A crash leaves the old
//! file or the new one, never a torn one; a leftover temporary file is ignored and replaced.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::failpoint;

/// `<name>.tmp` next to `path`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `data` atomically and durably.
///
/// Failpoints (see [`failpoint`]), with `<file>` the target's file name:
/// `write:<file>:torn` dies with half of the temporary file written, and
/// `write:<file>:before-rename` dies with the temporary file complete but not renamed.
pub fn write_durable(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    {
        let mut f = std::fs::File::create(&tmp)?;
        if failpoint::is_armed(&format!("write:{name}:torn")) {
            f.write_all(&data[..data.len() / 2])?;
            f.sync_all()?;
            failpoint::crash("torn write");
        }
        f.write_all(data)?;
        f.sync_all()?;
    }
    failpoint::crash_at(&format!("write:{name}:before-rename"));
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Makes renames and creations in `dir` durable; best effort (some filesystems refuse).
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.conf");
        write_durable(&path, b"one\n").unwrap();
        write_durable(&path, b"two\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
        assert_eq!(tmp_path(&path), dir.path().join("nodes.conf.tmp"));
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn a_leftover_temporary_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replication-role");
        std::fs::write(tmp_path(&path), b"torn garb").unwrap();
        write_durable(&path, b"master\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"master\n");
        assert!(!tmp_path(&path).exists());
    }
}
