//! Rollback protection: the latest *published* tree head, kept in a small
//! file outside the RocksDB directory (default: next to the data dir), so
//! restoring an old backup cannot silently rewind the log. On open, a store
//! whose latest head is older than the guard's — or whose head at the guard's
//! size has another root — is refused: signing on from there would put two
//! roots on one size (a fork).
//!
//! The file holds two fixed 64-byte slots written alternately, each with a
//! checksum, and synced before the head is released to anyone: a torn write
//! can only damage the slot being written, the other still holds the previous
//! head.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::LogError;
use crate::merkle::Hash;

const SLOT: usize = 64;

/// (size, root) of a published head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarded {
    pub size: u64,
    pub root: Hash,
}

pub struct RollbackGuard {
    path: PathBuf,
    file: File,
    next_slot: u64,
}

fn encode(g: &Guarded, seq: u64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(&seq.to_be_bytes());
    b[8..16].copy_from_slice(&g.size.to_be_bytes());
    b[16..48].copy_from_slice(&g.root);
    let sum = ring::digest::digest(&ring::digest::SHA256, &b[..48]);
    b[48..64].copy_from_slice(&sum.as_ref()[..16]);
    b
}

fn decode(b: &[u8]) -> Option<(u64, Guarded)> {
    if b.len() < SLOT {
        return None;
    }
    let sum = ring::digest::digest(&ring::digest::SHA256, &b[..48]);
    if sum.as_ref()[..16] != b[48..64] {
        return None;
    }
    let seq = u64::from_be_bytes(b[0..8].try_into().ok()?);
    let size = u64::from_be_bytes(b[8..16].try_into().ok()?);
    let root: Hash = b[16..48].try_into().ok()?;
    Some((seq, Guarded { size, root }))
}

impl RollbackGuard {
    /// Opens (creating if absent) the guard and returns the newest valid slot.
    pub fn open(path: &Path) -> Result<(RollbackGuard, Option<Guarded>), LogError> {
        let io = |e: std::io::Error| {
            LogError::Storage(format!("rollback guard {}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Fail closed: a guard that exists but cannot be read, or holds no
        // valid slot, could be hiding a newer published head; starting as if
        // it were empty would disarm the very check it exists for.
        let existing = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let created = !path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        if created && let Some(dir) = path.parent() {
            // The guard's own syncs (fdatasync) cover its data, not its
            // directory entry: without this a crash could lose the file
            // itself, and with it every head it guards.
            crate::durable::sync_dir(dir)
                .map_err(|e| LogError::Storage(format!("rollback guard: {e}")))?;
        }
        let slots: Vec<(u64, Guarded)> = existing.chunks(SLOT).take(2).filter_map(decode).collect();
        if slots.is_empty() && existing.len() >= SLOT {
            return Err(LogError::RolledBack(format!(
                "rollback guard {} holds {} bytes but no valid slot: it is damaged, and the head it guarded is unknown. Restore it from where it was kept, or remove it only if this data dir never published a head",
                path.display(),
                existing.len()
            )));
        }
        let newest = slots.iter().max_by_key(|(seq, _)| *seq).copied();
        let next_slot = newest.map(|(s, _)| s + 1).unwrap_or(0);
        Ok((
            RollbackGuard {
                path: path.to_owned(),
                file,
                next_slot,
            },
            newest.map(|(_, g)| g),
        ))
    }

    /// Records a head; durable (fdatasync) when it returns.
    pub fn record(&mut self, g: Guarded) -> Result<(), LogError> {
        use std::os::unix::fs::FileExt;
        let seq = self.next_slot;
        let offset = (seq % 2) * SLOT as u64;
        let io = |e: std::io::Error| {
            LogError::Storage(format!("rollback guard {}: {e}", self.path.display()))
        };
        self.file
            .write_all_at(&encode(&g, seq), offset)
            .map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_slot += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g");
        let (mut g, none) = RollbackGuard::open(&p).unwrap();
        assert!(none.is_none());
        g.record(Guarded {
            size: 1,
            root: [1; 32],
        })
        .unwrap();
        g.record(Guarded {
            size: 2,
            root: [2; 32],
        })
        .unwrap();
        g.record(Guarded {
            size: 3,
            root: [3; 32],
        })
        .unwrap();
        drop(g);
        assert_eq!(
            RollbackGuard::open(&p).unwrap().1,
            Some(Guarded {
                size: 3,
                root: [3; 32]
            })
        );
        // Tear the newest slot (slot 0 holds seq 2 = size 3).
        let mut b = std::fs::read(&p).unwrap();
        b[20] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        assert_eq!(
            RollbackGuard::open(&p).unwrap().1,
            Some(Guarded {
                size: 2,
                root: [2; 32]
            })
        );
    }

    /// Security issue, finding 9: a guard whose every slot is damaged (or
    /// that cannot be read) was taken for an empty one, disarming rollback
    /// protection. It now refuses to open.
    #[test]
    fn a_guard_with_no_valid_slot_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g");
        std::fs::write(&p, [0x5a; 2 * SLOT]).unwrap();
        let e = RollbackGuard::open(&p).err().unwrap();
        assert!(matches!(e, LogError::RolledBack(_)), "{e:?}");
        assert!(e.to_string().contains("no valid slot"), "{e}");
        // Unreadable: a directory where the file should be.
        let d = dir.path().join("dir");
        std::fs::create_dir(&d).unwrap();
        assert!(RollbackGuard::open(&d).is_err());
    }
}
