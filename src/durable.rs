//! Small files that must be whole and durable once written: key sets,
//! private keys, backups' key sets. A crash at any point leaves either the
//! old file or the new one, never a mix, and once a write returns the new
//! file survives power loss.
//!
//! The steps, and why each is there (as Sunlight's `internal/durable`):
//! 1. write a temporary file *in the same directory* (a rename is atomic
//!    only within one file system), named uniquely so two writers never
//!    share one;
//! 2. fsync it, so the rename below can never expose a file whose data is
//!    still only in the page cache;
//! 3. rename it over the target (atomic replace);
//! 4. fsync the directory: the rename is a change to the directory, and
//!    until the directory is synced a crash can bring the old entry back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Attaches the path to an I/O error.
pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically and durably (steps 1-4 above),
/// creating the parent directory if needed. `mode` sets the Unix
/// permissions of the new file before any byte is written (0o600 for
/// private keys).
pub fn write_atomically_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    create_dir_all_durably(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(at(&tmp)(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(at(path)(e));
    }
    sync_dir(dir)
}

/// [`write_atomically_mode`] for public files (0o644).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomically_mode(path, bytes, 0o644)
}

/// `create_dir_all`, then fsyncs the parent of every directory it created,
/// so the new directories survive power loss with the file written in them.
pub fn create_dir_all_durably(dir: &Path) -> Result<(), FileError> {
    create_dirs(dir, 0o755)
}

/// [`create_dir_all_durably`] with mode 0700 for every directory created:
/// data dirs and backups hold the whole log and its index, readable by the
/// service's user only. An existing directory keeps its mode.
pub fn create_private_dir_all(dir: &Path) -> Result<(), FileError> {
    create_dirs(dir, 0o700)
}

fn create_dirs(dir: &Path, mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d);
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => d = p,
            _ => break,
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(at(dir))?;
    for created in missing {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// fsyncs a directory, making the creation, rename or removal of its
/// entries durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/keys.cbor");
        write_atomically(&p, b"first").unwrap();
        write_atomically(&p, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keys.cbor"], "no temporary file left behind");
    }

    #[test]
    fn private_files_are_created_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pk8");
        write_atomically_mode(&p, b"secret", 0o600).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// The old code used one fixed `<name>.tmp`: two concurrent writers
    /// wrote into the same temporary file. Now each write has its own.
    #[test]
    fn concurrent_writers_never_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("set.cbor");
        let bodies: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for b in &bodies {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(p, b).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&p).unwrap();
        assert!(bodies.contains(&got), "the file is one writer's whole body");
    }

    /// Security issue, finding 9: data dirs and backups were created
    /// world-readable (0755), exposing every statement and index row.
    #[test]
    fn private_directories_are_0700_all_the_way_down() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_private_dir_all(&deep).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(dir.path().join(d))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700, "{d}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let e = sync_dir(Path::new("/nonexistent/vcon-scitt")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/vcon-scitt: "),
            "{e}"
        );
    }
}
