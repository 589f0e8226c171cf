//! The single sequencer. One thread owns the right edge of the tree and is
//! the only writer, so ordering needs no locks. Per batch:
//!
//! 1. take the first queued entry, drain what else is queued (up to
//!    `max_batch`); if the batch is small, sleep `max_delay` once and drain
//!    again;
//! 2. dedup on the caller's identity, if given, and on the leaf (in-batch
//!    maps, then one point read each in storage: the identity row, and the
//!    `leaves` column family only when the identity is not found);
//! 3. assign indices and push leaf hashes into the in-memory right-edge tiles;
//! 4. write entries, leaf index, touched tiles, secondary rows and the new size
//!    in ONE `WriteBatch`, WAL fsync'd — after a crash the batch is all there
//!    or not at all;
//! 5. verify before sign: read the touched tiles back, recheck their interior
//!    nodes, rehash every new entry against the stored leaf, recompute the root
//!    from stored tiles and prove it consistent with the previous signed head.
//!    Any mismatch halts the log (an alarm, never a signature);
//! 6. sign the head, persist it (second synced write) and only then answer the
//!    appenders. A crash between 4 and 6 leaves durable data with no head;
//!    recovery verifies and signs it, since no signature for that size was
//!    ever released.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use rocksdb::WriteBatch;

use super::frontier::{Frontier, MAX_LEVELS, MemoryNodes};
use super::store::{CF_INDEX, Store, StoreNodes};
use super::{
    Appended, Fresh, LogConfig, LogError, Request, Shared, SignedTreeHead, TreeHead, TreeHeadSigner,
};
use crate::merkle::tile::{Tile, TileId};
use crate::merkle::{self, Hash, NodeSource};
use crate::sync::write;

pub(crate) enum Msg {
    Append(Request),
    Stop,
}

/// Moves queued requests into `batch` without blocking, up to `max`.
/// Returns true when a stop was requested or every sender is gone.
fn drain(rx: &Receiver<Msg>, batch: &mut Vec<Request>, max: usize) -> bool {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(Msg::Append(r)) => batch.push(r),
            Ok(Msg::Stop) | Err(TryRecvError::Disconnected) => return true,
            Err(TryRecvError::Empty) => return false,
        }
    }
    false
}

/// What one request of a batch resolves to.
enum Slot {
    New(u64),
    /// Already in the log (or earlier in this batch): that entry's index and
    /// leaf, which is not the request's when its identity matched.
    Existing(u64, Hash),
    Failed(LogError),
}

pub(crate) struct Sequencer {
    store: Arc<Store>,
    config: LogConfig,
    signer: Arc<dyn TreeHeadSigner>,
    frontier: Frontier,
    latest: SignedTreeHead,
    last_sign_secs: f64,
    /// Tiles completed by the last batch (for in-memory proofs).
    last_done: Vec<(TileId, Tile)>,
    guard: Option<super::guard::RollbackGuard>,
}

impl Sequencer {
    /// Rebuilds the sequencer state from storage: loads the right edge, checks
    /// the latest signed head against the stored tree, and signs a head for
    /// durable data that has none yet.
    pub fn recover(
        store: Arc<Store>,
        config: LogConfig,
        signer: Arc<dyn TreeHeadSigner>,
    ) -> Result<(Sequencer, SignedTreeHead), LogError> {
        let size = store.data_size()?;
        let frontier = Frontier::load(&store, size)?;
        let latest = store.latest_head()?;
        let (guard, guarded) = match &config.rollback_guard {
            Some(p) => {
                let (g, last) = super::guard::RollbackGuard::open(p)?;
                (Some(g), last)
            }
            None => (None, None),
        };
        let mut seq = Sequencer {
            store: store.clone(),
            config,
            signer,
            frontier,
            last_sign_secs: 0.0,
            last_done: Vec::new(),
            guard,
            latest: SignedTreeHead {
                head: TreeHead {
                    size: 0,
                    root: merkle::EMPTY_ROOT,
                    timestamp_ms: 0,
                },
                signature: Vec::new(),
            },
        };
        match latest {
            Some(head) => {
                if head.head.size > size {
                    return Err(LogError::Corrupt(format!(
                        "signed head at size {} but only {size} leaves are stored",
                        head.head.size
                    )));
                }
                let stored_root = merkle::root(&mut StoreNodes::new(&store), head.head.size)?;
                if stored_root != head.head.root {
                    return Err(LogError::Corrupt(format!(
                        "latest signed head (size {}) does not match the stored tree",
                        head.head.size
                    )));
                }
                seq.latest = head;
                check_rollback(&store, &seq.latest, guarded)?;
                if size > seq.latest.head.size {
                    tracing::warn!(
                        signed = seq.latest.head.size,
                        durable = size,
                        "durable entries without a signed head (crash before signing); verifying and signing"
                    );
                    seq.verify_and_sign()?;
                }
            }
            None => {
                // A fresh log (or one that crashed before its first head).
                if let Some(g) = guarded.filter(|g| g.size > 0) {
                    return Err(LogError::RolledBack(format!(
                        "this store is empty but a head at size {} was published from this data dir (rollback guard); refusing to start a second log under the same identity",
                        g.size
                    )));
                }
                seq.verify_and_sign()?;
            }
        }
        let latest = seq.latest.clone();
        Ok((seq, latest))
    }

    /// Main loop: batch, commit, answer. Exits on `Stop` or when every handle
    /// is dropped.
    pub fn run(mut self, rx: Receiver<Msg>, shared: Arc<Shared>) {
        let mut stop = false;
        while !stop {
            let first = match rx.recv() {
                Ok(Msg::Append(r)) => r,
                Ok(Msg::Stop) | Err(_) => break,
            };
            let mut batch = vec![first];
            // Drain what queued up during the last commit; if the batch is
            // still small, linger ONCE by sleeping, then drain again. Sleeping
            // rather than waiting on the channel matters: a sender only pays
            // for a futex wake-up when the sequencer is blocked in `recv`, so
            // a sleeping linger costs one wake-up per batch instead of one per
            // queued entry (measured: 16 context switches per batch before).
            stop = drain(&rx, &mut batch, self.config.max_batch);
            if !stop && batch.len() < self.config.max_batch && !self.config.max_delay.is_zero() {
                std::thread::sleep(self.config.max_delay);
                stop = drain(&rx, &mut batch, self.config.max_batch);
            }
            shared
                .metrics
                .queued
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            if let Some(why) = shared.halted() {
                for r in batch {
                    let _ = r.reply.send(Err(LogError::Halted(why.clone())));
                }
                continue;
            }
            self.commit_batch(batch, &shared);
        }
        // Answer anything still queued: those entries were never written.
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Append(r) = msg {
                let _ = r.reply.send(Err(LogError::Closed));
            }
        }
    }

    /// One batch: dedup (step 2), commit (steps 3-6), publish, answer.
    fn commit_batch(&mut self, batch: Vec<Request>, shared: &Arc<Shared>) {
        let started = Instant::now();
        let base_size = self.frontier.size;
        let (slots, fresh) = self.dedup(&batch, base_size);
        let result = if !fresh.is_empty() {
            self.write_and_sign(&batch, &fresh)
        } else if self.frontier.size > self.latest.head.size {
            // Durable entries still lack a head (an earlier head write failed):
            // duplicates of them must not be answered before one is signed.
            self.verify_and_sign()
        } else {
            Ok(())
        };
        let head = Arc::new(self.latest.clone());
        let mut proofs = match &result {
            Ok(()) => self.fresh_proofs(base_size),
            Err(_) => HashMap::new(),
        };
        self.publish(shared, &head, &result, fresh.len(), started);
        for (req, slot) in batch.into_iter().zip(slots) {
            let answer = match (slot, &result) {
                (Slot::Failed(e), _) => Err(e),
                (Slot::Existing(index, leaf), _) => {
                    shared.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
                    // An entry found in storage is covered by the latest head
                    // (batches complete one at a time); one found earlier in
                    // this batch shares the batch's fate.
                    if index >= base_size && result.is_err() {
                        Err(LogError::BatchFailed("its batch was not committed".into()))
                    } else {
                        Ok(Appended {
                            index,
                            leaf,
                            head: head.clone(),
                            duplicate: true,
                            proof: None,
                        })
                    }
                }
                (Slot::New(index), Ok(())) => Ok(Appended {
                    index,
                    leaf: req.leaf,
                    head: head.clone(),
                    duplicate: false,
                    proof: proofs.remove(&index),
                }),
                (Slot::New(_), Err(e)) => Err(match e {
                    LogError::Halted(w) => LogError::Halted(w.clone()),
                    other => LogError::BatchFailed(other.to_string()),
                }),
            };
            let _ = req.reply.send(answer);
        }
    }

    /// Step 2: what each request resolves to — a new index, an entry already
    /// in the log (or earlier in this batch), or a failed lookup — and the
    /// positions of the new ones in `batch`, in index order.
    fn dedup(&self, batch: &[Request], base_size: u64) -> (Vec<Slot>, Vec<usize>) {
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut identities: HashMap<Hash, (u64, Hash)> = HashMap::new();
        let mut slots = Vec::with_capacity(batch.len());
        let mut fresh: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, req) in batch.iter().enumerate() {
            if let Some(&idx) = in_batch.get(&req.leaf) {
                slots.push(Slot::Existing(idx, req.leaf));
                continue;
            }
            if let Some(&(idx, leaf)) = req.identity.as_ref().and_then(|id| identities.get(id)) {
                slots.push(Slot::Existing(idx, leaf));
                continue;
            }
            match self.stored(req) {
                Ok(Some((idx, leaf))) => slots.push(Slot::Existing(idx, leaf)),
                Ok(None) => {
                    let idx = base_size + fresh.len() as u64;
                    in_batch.insert(req.leaf, idx);
                    if let Some(id) = req.identity {
                        identities.insert(id, (idx, req.leaf));
                    }
                    fresh.push(i);
                    slots.push(Slot::New(idx));
                }
                Err(e) => slots.push(Slot::Failed(e)),
            }
        }
        (slots, fresh)
    }

    /// The stored entry a request duplicates, if any: (index, leaf). The
    /// identity row is read first; the leaf index only when it is absent,
    /// so a request costs at most one read more than a leaf-only dedup, and
    /// a duplicate by identity one read. The leaf read stays because an
    /// entry appended without an identity (`Log::submit`) has no identity
    /// row, and a second copy of its bytes would give one leaf two indices.
    fn stored(&self, req: &Request) -> Result<Option<(u64, Hash)>, LogError> {
        if let Some(id) = &req.identity
            && let Some(found) = self.store.identity(id)?
        {
            return Ok(Some(found));
        }
        Ok(self.store.index_of(&req.leaf)?.map(|idx| (idx, req.leaf)))
    }

    /// Inclusion proofs of the entries `base_size..` at the head just signed,
    /// from the tiles in memory: answering needs no storage read.
    fn fresh_proofs(&self, base_size: u64) -> HashMap<u64, Vec<Hash>> {
        let size = self.frontier.size;
        if base_size == size || self.latest.head.size != size {
            return HashMap::new();
        }
        let mut nodes = MemoryNodes {
            frontier: &self.frontier,
            done: &self.last_done,
        };
        (base_size..size)
            .filter_map(|idx| Some((idx, merkle::inclusion_proof(&mut nodes, idx, size).ok()?)))
            .collect()
    }

    /// Makes the batch's outcome visible to readers before anyone is
    /// answered: the new head, the batch error (readiness), a halt, metrics.
    fn publish(
        &self,
        shared: &Shared,
        head: &Arc<SignedTreeHead>,
        result: &Result<(), LogError>,
        fresh: usize,
        started: Instant,
    ) {
        self.config.faults.before_publish();
        match result {
            Ok(()) => {
                *write(&shared.last_batch_error) = None;
                // Publish whenever the signed head advanced, including a
                // batch of duplicates that signed a head a failed write left
                // missing: readers must see every head we answer with.
                let mut latest = write(&shared.latest);
                if latest.head.size < head.head.size {
                    *latest = head.clone();
                }
                drop(latest);
                let m = &shared.metrics;
                if fresh > 0 {
                    m.batches.fetch_add(1, Ordering::Relaxed);
                    m.batch_sizes.observe(fresh as f64);
                    m.commit_seconds.observe(started.elapsed().as_secs_f64());
                    m.sign_seconds.observe(self.last_sign_secs);
                }
                m.appended.fetch_add(fresh as u64, Ordering::Relaxed);
            }
            Err(e) => {
                shared
                    .metrics
                    .failed_batches
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = fresh, "batch failed");
                *write(&shared.last_batch_error) = Some(e.to_string());
                if let LogError::Halted(why) = e {
                    *write(&shared.halted) = Some(why.clone());
                }
            }
        }
    }

    /// Steps 3–6 for the fresh entries of a batch. On any error before the
    /// data is durable the frontier is reloaded from storage.
    fn write_and_sign(&mut self, batch: &[Request], fresh: &[usize]) -> Result<(), LogError> {
        let base_size = self.frontier.size;
        let mut wb = WriteBatch::default();
        let mut done: Vec<(TileId, Tile)> = Vec::new();
        let mut touched = [false; MAX_LEVELS];
        let index_cf = self.store.cf(CF_INDEX)?;
        for &i in fresh {
            let req = &batch[i];
            let index = self.frontier.size;
            self.store
                .put_entry(&mut wb, index, &req.leaf, &req.entry)?;
            if let Some(id) = &req.identity {
                self.store.put_identity(&mut wb, id, index, &req.leaf)?;
            }
            for (prefix, value) in &req.index_rows.by_index {
                let mut key = Vec::with_capacity(prefix.len() + 8);
                key.extend_from_slice(prefix);
                key.extend_from_slice(&index.to_be_bytes());
                wb.put_cf(index_cf, key, value);
            }
            for (key, value) in &req.index_rows.fixed {
                wb.put_cf(index_cf, key, value);
            }
            self.frontier.push(req.leaf, &mut done, &mut touched);
        }
        // The closer (the vCon map) sees the batch's fresh entries and adds
        // its rows and the batch's last entry (closer.rs).
        let closing_entry = match self.close_batch(batch, fresh, base_size, &mut wb, index_cf) {
            Ok(e) => e,
            Err(e) => {
                self.closer_done(false);
                self.frontier = Frontier::load(&self.store, base_size)?;
                return Err(e);
            }
        };
        if let Some(entry) = &closing_entry {
            let index = self.frontier.size;
            let leaf = self.store.leaf_hash(entry);
            self.store.put_entry(&mut wb, index, &leaf, entry)?;
            self.frontier.push(leaf, &mut done, &mut touched);
        }
        let new_size = self.frontier.size;
        let written = self
            .frontier
            .put_tiles(&self.store, &mut wb, &done, &touched)?;
        self.store.put_data_size(&mut wb, new_size)?;
        // Kept for the in-memory proofs of this batch (not read after here).
        self.last_done = done;

        let write = self
            .config
            .faults
            .before_data_write()
            .and_then(|()| self.store.write_synced(wb));
        if let Err(e) = write {
            // Nothing of this batch is durable: forget it.
            self.closer_done(false);
            self.frontier = Frontier::load(&self.store, base_size)?;
            return Err(e);
        }
        self.closer_done(true);
        self.config
            .faults
            .after_data_write(&self.store, self.frontier.size)?;
        let mut entries: Vec<(u64, &[u8])> = fresh
            .iter()
            .enumerate()
            .map(|(k, &i)| (base_size + k as u64, batch[i].entry.as_slice()))
            .collect();
        if let Some(entry) = &closing_entry {
            entries.push((base_size + fresh.len() as u64, entry.as_slice()));
        }
        self.verify_and_sign_written(&entries, &written)
    }

    /// Step 3b: the closer's rows and closing entry for this batch (None
    /// without a closer).
    fn close_batch(
        &self,
        batch: &[Request],
        fresh: &[usize],
        base_size: u64,
        wb: &mut WriteBatch,
        index_cf: &rocksdb::ColumnFamily,
    ) -> Result<Option<Vec<u8>>, LogError> {
        let Some(closer) = self.config.closer.clone() else {
            return Ok(None);
        };
        let items: Vec<Fresh<'_>> = fresh
            .iter()
            .enumerate()
            .map(|(k, &i)| Fresh {
                index: base_size + k as u64,
                leaf: batch[i].leaf,
                input: batch[i].closer_input.as_ref(),
            })
            .collect();
        let next_index = base_size + fresh.len() as u64;
        let closing = crate::sync::lock(&closer)
            .close(&self.store, &items, next_index)
            .map_err(|e| LogError::BatchFailed(format!("closing the batch: {e}")))?;
        for (key, value) in &closing.rows {
            wb.put_cf(index_cf, key, value);
        }
        Ok(closing.entry)
    }

    /// Tells the closer whether its staged batch became durable.
    fn closer_done(&self, committed: bool) {
        if let Some(closer) = &self.config.closer {
            let mut c = crate::sync::lock(closer);
            if committed {
                c.committed();
            } else {
                c.rolled_back();
            }
        }
    }

    /// Recovery path: verify the stored right edge and sign the durable size.
    /// Signs durable entries that have no head yet (recovery, or after a
    /// failed head write). Every entry beyond the last signed head is re-read
    /// and re-hashed against its stored leaf first: nothing unsigned is
    /// trusted because it is on disk.
    fn verify_and_sign(&mut self) -> Result<(), LogError> {
        let ids: Vec<TileId> = (0..self.frontier.tiles.len())
            .filter(|&l| self.frontier.tiles[l].width() > 0)
            .map(|l| self.frontier.tile_id(l))
            .collect();
        let mut owned = Vec::new();
        for index in self.latest.head.size..self.frontier.size {
            let entry = self
                .store
                .entry(index)?
                .ok_or_else(|| LogError::Corrupt(format!("entry {index} is missing")))?;
            owned.push((index, entry));
        }
        let entries: Vec<(u64, &[u8])> = owned.iter().map(|(i, e)| (*i, e.as_slice())).collect();
        self.verify_and_sign_written(&entries, &ids)
    }

    fn verify_and_sign_written(
        &mut self,
        entries: &[(u64, &[u8])],
        tiles: &[TileId],
    ) -> Result<(), LogError> {
        let size = self.frontier.size;
        let expected_root = self.frontier.root();
        if let Err(why) = self.verify_stored(entries, tiles, size, &expected_root) {
            let msg = format!("refusing to sign size {size}: {why}");
            tracing::error!(alarm = true, "{msg}");
            return Err(LogError::Halted(msg));
        }
        let sign_started = Instant::now();
        let head = TreeHead {
            size,
            root: expected_root,
            timestamp_ms: crate::time::now_ms().max(self.latest.head.timestamp_ms),
        };
        // Never sign a second root for a size that already has a head.
        if let Some(existing) = self.store.head(size)? {
            if existing.head.root != head.root {
                let msg = format!("a different root is already signed for size {size}");
                tracing::error!(alarm = true, "{msg}");
                return Err(LogError::Halted(msg));
            }
            self.latest = existing;
            return Ok(());
        }
        let signature = self.signer.sign(&head).map_err(LogError::Signing)?;
        let signed = SignedTreeHead { head, signature };
        let mut wb = WriteBatch::default();
        self.store.put_head(&mut wb, &signed)?;
        self.config.faults.before_head_write()?;
        self.store.write_synced(wb)?;
        // Record the head outside the store before anyone sees it.
        if let Some(g) = self.guard.as_mut() {
            g.record(super::guard::Guarded {
                size: signed.head.size,
                root: signed.head.root,
            })?;
        }
        self.last_sign_secs = sign_started.elapsed().as_secs_f64();
        self.latest = signed;
        Ok(())
    }

    /// Step 5: everything the new head commits to, re-read from storage.
    fn verify_stored(
        &self,
        entries: &[(u64, &[u8])],
        tiles: &[TileId],
        size: u64,
        expected_root: &Hash,
    ) -> Result<(), String> {
        self.config.faults.before_verify_read()?;
        let mut nodes = StoreNodes::new(&self.store);
        for id in tiles {
            let t = self
                .store
                .tile(*id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{id} vanished"))?;
            t.check_interior().map_err(|e| format!("{id}: {e}"))?;
        }
        for (index, entry) in entries {
            let stored = nodes.perfect_node(0, *index).map_err(|e| e.to_string())?;
            if stored != self.store.leaf_hash(entry) {
                return Err(format!("stored leaf {index} does not hash its entry"));
            }
        }
        let root = merkle::root(&mut nodes, size).map_err(|e| e.to_string())?;
        if root != *expected_root {
            return Err("root recomputed from storage differs from the sequencer's".into());
        }
        let prev = &self.latest.head;
        if prev.size > 0 && prev.size < size {
            let proof = merkle::consistency_proof(&mut nodes, prev.size, size)
                .map_err(|e| e.to_string())?;
            merkle::verify_consistency(prev.size, size, &prev.root, &root, &proof)
                .map_err(|e| format!("not consistent with the previous head: {e}"))?;
        }
        Ok(())
    }
}

/// Refuses a store older than (or forked from) the last published head.
fn check_rollback(
    store: &Store,
    latest: &SignedTreeHead,
    guarded: Option<super::guard::Guarded>,
) -> Result<(), LogError> {
    let Some(g) = guarded else { return Ok(()) };
    if g.size > latest.head.size {
        return Err(LogError::RolledBack(format!(
            "a head at size {} was published, but this store's latest head is at size {}: it was restored from an older backup or lost data. Signing on would fork the log; recover the newer data (or start a new log with a new identity)",
            g.size, latest.head.size
        )));
    }
    if g.size > 0 {
        match store.head(g.size)? {
            Some(h) if h.head.root == g.root => {}
            _ => {
                return Err(LogError::RolledBack(format!(
                    "the head published at size {} is not in this store: a different log, or a forked one",
                    g.size
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::metrics::Metrics;
    use crate::log::{IndexRows, TreeHeadVerifier};
    use std::sync::RwLock;

    /// Signs nothing real: the dedup under test does not look at heads.
    struct NullSigner;

    impl TreeHeadVerifier for NullSigner {
        fn verify(&self, _: &TreeHead, _: &[u8]) -> Result<(), String> {
            Ok(())
        }
    }

    impl TreeHeadSigner for NullSigner {
        fn sign(&self, _: &TreeHead) -> Result<Vec<u8>, String> {
            Ok(b"unsigned".to_vec())
        }
    }

    type Reply = tokio::sync::oneshot::Receiver<Result<Appended, LogError>>;

    fn request(entry: &[u8], identity: Option<Hash>) -> (Request, Reply) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = Request {
            entry: entry.to_vec(),
            leaf: merkle::leaf_hash(entry),
            identity,
            index_rows: IndexRows::default(),
            closer_input: None,
            reply,
        };
        (req, rx)
    }

    fn answer(rx: Reply) -> Appended {
        rx.blocking_recv().unwrap().unwrap()
    }

    #[test]
    fn two_entries_with_one_identity_are_one_registration_in_a_batch_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (mut seq, latest) =
            Sequencer::recover(store.clone(), LogConfig::default(), Arc::new(NullSigner)).unwrap();
        let shared = Arc::new(Shared {
            latest: RwLock::new(Arc::new(latest)),
            halted: RwLock::new(None),
            last_batch_error: RwLock::new(None),
            metrics: Metrics::default(),
        });
        let id = [9u8; 32];
        let first = merkle::leaf_hash(b"first");

        // One batch: the second entry carries the first one's identity.
        let (a, ra) = request(b"first", Some(id));
        let (b, rb) = request(b"second", Some(id));
        let (c, rc) = request(b"other", None);
        seq.commit_batch(vec![a, b, c], &shared);
        let (a, b, c) = (answer(ra), answer(rb), answer(rc));
        assert!(!a.duplicate && !c.duplicate);
        assert!(b.duplicate, "same identity, different bytes: a duplicate");
        assert_eq!(
            (b.index, b.leaf),
            (0, first),
            "answered with the stored entry"
        );
        assert_eq!(c.index, 1);
        assert_eq!(store.data_size().unwrap(), 2, "one appended, not two");
        assert_eq!(store.identity(&id).unwrap(), Some((0, first)));
        assert_eq!(store.index_of(&merkle::leaf_hash(b"second")).unwrap(), None);

        // A later batch finds it in storage.
        let (d, rd) = request(b"third", Some(id));
        seq.commit_batch(vec![d], &shared);
        let d = answer(rd);
        assert!(d.duplicate);
        assert_eq!((d.index, d.leaf), (0, first));
        assert_eq!(store.data_size().unwrap(), 2);

        // Exact bytes are still deduped when the identity is new or absent.
        let (e, re) = request(b"other", Some([1u8; 32]));
        seq.commit_batch(vec![e], &shared);
        let e = answer(re);
        assert!(e.duplicate);
        assert_eq!(e.index, 1);
        assert_eq!(store.data_size().unwrap(), 2);
    }
}
