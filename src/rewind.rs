//! Rewinding a deposed writer's store to the log's published history.
//!
//! A fenced writer signs each batch when it sequences it, before the
//! publisher's round puts the batch in the bucket and advances the
//! checkpoint in etcd (`crate::publish`, `crate::fence`). So its store can
//! hold signed heads above the last checkpoint its lease advanced: never
//! acknowledged (in `replicated` durability a 201 waits for that
//! checkpoint), never served (a GET receipt waits for it too), but signed.
//! Once another writer holds the lease it signs those sizes over other
//! entries, and the deposed node's disk would hold a second head for each.
//!
//! A node rewinds before it does anything else with the log when it knows
//! that its unpublished heads can never be published: when the lease is
//! held by another writer (a refused `serve`), when it starts as a standby,
//! and when it won the lease but its store does not hold etcd's checkpoint.
//! The published size is the larger of the store's own record
//! (`Store::published_size`, which may lag) and etcd's checkpoint when the
//! store holds it; a store with neither is refused, never rewound to 0.
//! The store is rebuilt from its own entries up to that size, through the
//! same path a follower appends by
//! (`log::follower::append_verified`: the tree rebuilt and checked against
//! every head's root, the vCon index and map derived again, the map
//! replayed), and swapped in for the old one, which is deleted.
//!
//! A rebuild rather than a truncation: the rows a writer derives beside
//! each entry are not reversible one entry at a time (a consent
//! withdrawal rewrites the vCon's map row), and a rebuild through the
//! follower path yields exactly the store a replica or `restore` makes,
//! which a writer is known to continue from. Its cost is one pass over the
//! local log (no network): issuer signatures verified again by the map's
//! replay, ~35 µs per entry on one core.
//!
//! Crash safety: the new store is built in `db.rewind`; the rollback guard
//! (which records every head this node signed) is set back to the
//! published head first; then `db` becomes `db.deposed`, `db.rewind`
//! becomes `db`, and `db.deposed` is deleted, each rename synced. Every
//! process that opens the store for writing ([`store_dir`]) first finishes
//! (or undoes) an interrupted swap, under the lock a rewind holds
//! throughout (`rewind.lock`), so none creates an empty store mid-swap.
//! The rollback guard's head must be in the store rewound (else it is not
//! this node's store, and is refused).

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::fence::FencedCheckpoint;
use crate::keys::KeySet;
use crate::log::{LogError, SignedTreeHead, Store};

/// Entries per append while rebuilding: bounds the memory held at once.
const CHUNK_ENTRIES: u64 = 4_096;

/// What a rewind discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rewound {
    /// The published size the store now ends at.
    pub published: u64,
    /// Entries stored above it.
    pub discarded_entries: u64,
    /// Signed heads above it.
    pub discarded_heads: u64,
    /// True when `published` is (at least) etcd's checkpoint, which this
    /// store held: then nothing discarded was acknowledged (a 201 waits for
    /// that checkpoint). Else the store's own record of its published size
    /// was the bound; it may lag (`Store::published_size`), and anything
    /// acknowledged above it is in the bucket, where catch-up finds it.
    pub to_etcd_checkpoint: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RewindError {
    #[error("rewinding {dir}: {why}")]
    Store { dir: PathBuf, why: LogError },
    #[error("rewinding {dir}: {why}")]
    Files { dir: PathBuf, why: String },
    /// `rewind.lock` is held: by an open store (a rewind waits for it to
    /// close) or by a rewind (an opener waits for it to end).
    #[error("{dir}/rewind.lock is locked: {why}")]
    Busy { dir: PathBuf, why: &'static str },
    /// Nothing says which of the store's heads were published: it was
    /// written by no publisher or follower of this version, and does not
    /// hold etcd's checkpoint. Rewinding it to 0 could discard a whole log.
    #[error(
        "{dir} holds a log up to size {size} but records no published size, and does not hold the checkpoint etcd records: which of its heads were published is unknown, so it is not rewound. Move it aside and start again (an empty data dir catches up from the bucket), or `vcon-scitt restore --from <bucket>` into a fresh data dir"
    )]
    Unknown { dir: PathBuf, size: u64 },
}

/// What etcd says about the log, for a rewind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This node holds the lease, and etcd records this checkpoint: a store
    /// holding it keeps everything (its heads above are its own to publish).
    Ours(FencedCheckpoint),
    /// Another writer holds the lease (or none does, for a standby): etcd's
    /// checkpoint, if any, is published; this node's heads above are not.
    Another(Option<FencedCheckpoint>),
}

/// What [`to_published`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewind {
    /// The store holds the checkpoint of the lease this node holds: nothing
    /// was touched.
    Holds,
    /// No store yet, or nothing above its published size.
    Nothing,
    /// The store was rebuilt to its published size.
    Discarded(Rewound),
}

/// Rewinds `config.data_dir`'s store to the log's published size if it
/// holds anything above it. The published size is the larger of the
/// store's record ([`Store::published_size`]) and etcd's checkpoint when
/// the store holds it (same size, same root).
pub fn to_published(config: &Config, lease: Lease) -> Result<Rewind, RewindError> {
    let dir = config.data_dir.clone();
    let files = |why: String| RewindError::Files {
        dir: dir.clone(),
        why,
    };
    let store_err = |why: LogError| RewindError::Store {
        dir: dir.clone(),
        why,
    };
    let (db, building, deposed) = paths(&dir);
    if !dir.exists() {
        return Ok(Rewind::Nothing);
    }
    // Held to the end: no other process opens a store here mid-swap.
    let _lock = lock(&dir, Mode::Exclusive)?;
    finish_interrupted(&dir).map_err(files)?;
    if !db.exists() {
        return Ok(Rewind::Nothing);
    }
    let old = Store::open(&db).map_err(store_err)?;
    let (checkpoint, ours) = match lease {
        Lease::Ours(c) => (Some(c), true),
        Lease::Another(c) => (c, false),
    };
    let mut held = None;
    if let Some((size, root)) = checkpoint
        && old.head(size).map_err(store_err)?.map(|h| h.head.root) == Some(root)
    {
        held = Some(size);
    }
    if ours && held.is_some() {
        return Ok(Rewind::Holds);
    }
    let latest = old.latest_head().map_err(store_err)?;
    let latest_size = latest.as_ref().map_or(0, |h| h.head.size);
    let stored = old.data_size().map_err(store_err)?;
    let recorded = old.published_size().map_err(store_err)?;
    let published = match (recorded, held) {
        (Some(r), Some(h)) => r.max(h),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) if latest_size == 0 && stored == 0 => return Ok(Rewind::Nothing),
        (None, None) => {
            return Err(RewindError::Unknown {
                dir: db.clone(),
                size: latest_size.max(stored),
            });
        }
    };
    if latest_size <= published && stored <= published {
        return Ok(Rewind::Nothing);
    }
    let keys = match std::fs::read(config.keyset_file()) {
        Ok(b) => KeySet::parse_any(&b)
            .map_err(|e| files(format!("{}: {e}", config.keyset_file().display())))?,
        Err(e) => {
            return Err(files(format!(
                "{} (the service keys the vCon map is checked with): {e}",
                config.keyset_file().display()
            )));
        }
    };
    let published_head = match published {
        0 => None,
        size => Some(old.head(size).map_err(store_err)?.ok_or_else(|| {
            store_err(LogError::Corrupt(format!(
                "the published size {size} has no signed head in this store"
            )))
        })?),
    };
    check_guard(&config.rollback_guard(), &old).map_err(store_err)?;
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| files(e.to_string()))?;
    }
    let discarded_heads = old.heads_after(published).map_err(store_err)?.count() as u64;
    rebuild(&old, &building, published, keys).map_err(store_err)?;
    drop(old);
    // The guard first: a crash after it leaves the old store, which the
    // next start rewinds again; the guard's head is in both.
    reset_guard(&config.rollback_guard(), published_head.as_ref()).map_err(store_err)?;
    std::fs::rename(&db, &deposed).map_err(|e| files(e.to_string()))?;
    crate::durable::sync_dir(&dir).map_err(|e| files(e.to_string()))?;
    std::fs::rename(&building, &db).map_err(|e| files(e.to_string()))?;
    crate::durable::sync_dir(&dir).map_err(|e| files(e.to_string()))?;
    std::fs::remove_dir_all(&deposed).map_err(|e| files(e.to_string()))?;
    crate::durable::sync_dir(&dir).map_err(|e| files(e.to_string()))?;
    let rewound = Rewound {
        published,
        discarded_entries: stored.saturating_sub(published),
        discarded_heads,
        // `published` is at least the held checkpoint's size.
        to_etcd_checkpoint: held.is_some(),
    };
    tracing::warn!(
        published,
        discarded_entries = rewound.discarded_entries,
        discarded_heads,
        to_etcd_checkpoint = rewound.to_etcd_checkpoint,
        "rewound the store to the published log: its heads above it were never published, and another writer signs those sizes"
    );
    Ok(Rewind::Discarded(rewound))
}

/// A shared hold on a data dir's store, kept for as long as the store is
/// open: no rewind (which takes `rewind.lock` exclusively) starts in a data
/// dir while any process holds one, and none is taken while a rewind runs.
#[derive(Debug)]
pub struct StoreHold {
    _lock: std::fs::File,
}

/// The store directory in `data_dir` and a hold on it, once any rewind
/// interrupted there is finished or undone: every process that opens a data
/// dir's store for writing goes through here and keeps the hold while the
/// store is open, so none opens (or creates) a store mid-swap.
pub fn store_dir(data_dir: &Path) -> Result<(PathBuf, StoreHold), RewindError> {
    let files = |why: String| RewindError::Files {
        dir: data_dir.to_owned(),
        why,
    };
    crate::durable::create_private_dir_all(data_dir).map_err(|e| files(e.to_string()))?;
    let shared = lock(data_dir, Mode::Shared)?;
    let (_, building, deposed) = paths(data_dir);
    if !building.exists() && !deposed.exists() {
        return Ok((paths(data_dir).0, StoreHold { _lock: shared }));
    }
    // A rewind was interrupted: finished (or undone) alone, then held.
    drop(shared);
    let exclusive = lock(data_dir, Mode::Exclusive)?;
    finish_interrupted(data_dir).map_err(files)?;
    drop(exclusive);
    // Between the two a rewind could only start on a settled data dir.
    let shared = lock(data_dir, Mode::Shared)?;
    Ok((paths(data_dir).0, StoreHold { _lock: shared }))
}

enum Mode {
    /// A rewind, or settling an interrupted one.
    Exclusive,
    /// A store open.
    Shared,
}

/// Locks `dir/rewind.lock`; released when the file is dropped.
fn lock(dir: &Path, mode: Mode) -> Result<std::fs::File, RewindError> {
    let path = dir.join("rewind.lock");
    let failed = |e: std::io::Error| RewindError::Files {
        dir: dir.to_owned(),
        why: format!("{}: {e}", path.display()),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(failed)?;
    let locked = match mode {
        Mode::Exclusive => file.try_lock(),
        Mode::Shared => file.try_lock_shared(),
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RewindError::Busy {
            dir: dir.to_owned(),
            why: match mode {
                Mode::Exclusive => "the store is open, or being rewound, in another process",
                Mode::Shared => "another process is rewinding this data dir",
            },
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(failed(e)),
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        dir.join("db"),
        dir.join("db.rewind"),
        dir.join("db.deposed"),
    )
}

/// After a crash mid-rewind: a `db.deposed` beside a `db` is the old store
/// already replaced (deleted now); without a `db`, the swap stopped between
/// its renames and the old store goes back (the rewind runs again).
fn finish_interrupted(dir: &Path) -> Result<(), String> {
    let (db, building, deposed) = paths(dir);
    if deposed.exists() {
        if db.exists() {
            std::fs::remove_dir_all(&deposed).map_err(|e| e.to_string())?;
        } else {
            std::fs::rename(&deposed, &db).map_err(|e| e.to_string())?;
        }
        crate::durable::sync_dir(dir).map_err(|e| e.to_string())?;
    }
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies entries `[0, published)` and the heads up to `published` from
/// `old` into a new store at `path`, as a follower appends them.
fn rebuild(old: &Store, path: &Path, published: u64, keys: KeySet) -> Result<(), LogError> {
    let new = Store::open_log(path, old.leaf_rule())?;
    let mut follower = crate::vcon_follow::VconFollower::open(&new, keys)?;
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut heads: Vec<SignedTreeHead> = Vec::new();
    let mut next = 0u64;
    for head in old.heads()? {
        let head = head?;
        let size = head.head.size;
        if size > published {
            break;
        }
        if size == 0 {
            // The empty tree's head: a new store signs its own.
            continue;
        }
        while next < size {
            let entry = old
                .entry(next)?
                .ok_or_else(|| LogError::Corrupt(format!("entry {next} is missing")))?;
            entries.push(entry);
            next += 1;
        }
        heads.push(head);
        if entries.len() as u64 >= CHUNK_ENTRIES || size == published {
            crate::log::follower::append_verified(
                &new,
                &std::mem::take(&mut entries),
                &std::mem::take(&mut heads),
                Some(&mut follower),
            )?;
        }
    }
    if new.data_size()? != published {
        return Err(LogError::Corrupt(format!(
            "rebuilt {} entries, not the published {published}",
            new.data_size()?
        )));
    }
    new.flush()
}

/// Refuses a store older than a head this node recorded in its rollback
/// guard (a restored backup, say): the guard's head must be in the store
/// being rewound, or setting the guard back would disarm the check it
/// exists for.
fn check_guard(path: &Path, store: &Store) -> Result<(), LogError> {
    if !path.exists() {
        return Ok(());
    }
    let (_, guarded) = crate::log::guard::RollbackGuard::open(path)?;
    let Some(g) = guarded else {
        return Ok(());
    };
    if store.head(g.size)?.map(|h| h.head.root) != Some(g.root) {
        return Err(LogError::RolledBack(format!(
            "the rollback guard {} records a head at size {} that this store does not hold: the store is not the one this node signed with (an older backup?), so it is not rewound",
            path.display(),
            g.size
        )));
    }
    Ok(())
}

/// Sets the rollback guard back to the published head (or removes it when
/// nothing was published): the heads it recorded above were never
/// published, and the store about to be swapped in ends below them.
fn reset_guard(path: &Path, head: Option<&SignedTreeHead>) -> Result<(), LogError> {
    match head {
        Some(h) => {
            let (mut guard, _) = crate::log::guard::RollbackGuard::open(path)?;
            guard.record(crate::log::guard::Guarded {
                size: h.head.size,
                root: h.head.root,
            })
        }
        None => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LogError::Storage(format!("{}: {e}", path.display()))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(dir: &Path, name: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("marker"), name).unwrap();
    }

    fn marker(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.join("db").join("marker")).ok()
    }

    #[test]
    fn a_swap_interrupted_after_its_second_rename_keeps_the_rebuilt_store() {
        let d = tempfile::tempdir().unwrap();
        mark(d.path(), "db"); // the rebuilt store, already renamed
        mark(d.path(), "db.deposed");
        finish_interrupted(d.path()).unwrap();
        assert_eq!(marker(d.path()).as_deref(), Some("db"));
        assert!(!d.path().join("db.deposed").exists());
    }

    #[test]
    fn a_swap_interrupted_between_its_renames_puts_the_old_store_back() {
        let d = tempfile::tempdir().unwrap();
        mark(d.path(), "db.deposed");
        mark(d.path(), "db.rewind"); // complete or not: built again
        finish_interrupted(d.path()).unwrap();
        assert_eq!(marker(d.path()).as_deref(), Some("db.deposed"));
        assert!(!d.path().join("db.rewind").exists());
        assert!(!d.path().join("db.deposed").exists());
    }

    #[test]
    fn a_rebuild_interrupted_before_the_swap_is_discarded() {
        let d = tempfile::tempdir().unwrap();
        mark(d.path(), "db");
        mark(d.path(), "db.rewind");
        finish_interrupted(d.path()).unwrap();
        assert_eq!(marker(d.path()).as_deref(), Some("db"));
        assert!(!d.path().join("db.rewind").exists());
    }
}
