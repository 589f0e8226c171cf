//! Backups of a data dir, online (through a running service) and offline
//! (server stopped) alike: a RocksDB checkpoint — hard links to immutable
//! SST files plus a consistent copy of the rest, so it is a state the log
//! really had — and the public key set. The service's private key is never
//! copied: back it up separately, as the secret it is.
//!
//! Layout of a backup directory: `db/` (the checkpoint), `scitt-keys.cbor`.

use std::path::Path;

use crate::durable::{self, FileError};
use crate::log::{FsckReport, LogError, Store};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0} is not a backup (no db/CURRENT)")]
    NotABackup(String),
    #[error("{0} exists; move it away first (restore never overwrites a store)")]
    WouldOverwrite(String),
    #[error("the restored store fails fsck: {0}")]
    Fsck(LogError),
    #[error(transparent)]
    Rewind(#[from] crate::rewind::RewindError),
}

/// Writes a backup of `store` (and the public key set, when known) into
/// `out`; returns the tree size of the newest signed head it holds, read
/// from the checkpoint itself: a live log keeps committing while the
/// checkpoint is taken, so the store's size before or after may differ.
pub fn write(store: &Store, keyset: Option<&[u8]>, out: &Path) -> Result<u64, BackupError> {
    durable::create_private_dir_all(out)?;
    let db = out.join("db");
    store.checkpoint(&db)?;
    if let Some(k) = keyset {
        durable::write_atomically(&out.join("scitt-keys.cbor"), k)?;
    }
    let size = Store::open_read_only(&db)?
        .latest_head()?
        .map(|h| h.head.size)
        .unwrap_or(0);
    Ok(size)
}

/// Restores a backup into a data dir whose `db/` does not exist yet, then
/// runs fsck on the result. The data dir's rollback guard (kept outside
/// `db/`) still refuses to start the service if the backup is older than a
/// head this data dir already published.
pub fn restore(from: &Path, data_dir: &Path) -> Result<FsckReport, BackupError> {
    let src = from.join("db");
    if !src.join("CURRENT").exists() {
        return Err(BackupError::NotABackup(from.display().to_string()));
    }
    let (dst, _hold) = crate::rewind::store_dir(data_dir)?;
    if dst.exists() {
        return Err(BackupError::WouldOverwrite(dst.display().to_string()));
    }
    durable::create_private_dir_all(&dst)?;
    for e in std::fs::read_dir(&src).map_err(durable::at(&src))? {
        let e = e.map_err(durable::at(&src))?;
        let to = dst.join(e.file_name());
        std::fs::copy(e.path(), &to).map_err(durable::at(&to))?;
        std::fs::File::open(&to)
            .and_then(|f| f.sync_all())
            .map_err(durable::at(&to))?;
    }
    durable::sync_dir(&dst)?;
    let keys = crate::config::Config::keyset_file_in(data_dir);
    if !keys.exists()
        && let Ok(k) = std::fs::read(from.join("scitt-keys.cbor"))
    {
        durable::write_atomically(&keys, &k)?;
    }
    let store = Store::open(&dst)?;
    crate::log::fsck(&store, None).map_err(BackupError::Fsck)
}
