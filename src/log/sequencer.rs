//! The single sequencer. One thread owns the right edge of the tree and is
//! the only writer, so ordering needs no locks. Per batch:
//!
//! 1. take the first queued entry, drain what else is queued (up to
//!    `max_batch`); if the batch is small, sleep `max_delay` once and drain
//!    again;
//! 2. dedup (in-batch map, then the `leaves` column family);
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rocksdb::WriteBatch;

use super::store::{CF_INDEX, Store, StoreNodes};
use super::{
    Appended, LogConfig, LogError, Request, Shared, SignedTreeHead, TreeHead, TreeHeadSigner,
};
use crate::merkle::tile::{HEIGHT, Tile, TileId, width_at};
use crate::merkle::{self, Hash, NodeSource};

pub(crate) enum Msg {
    Append(Request),
    Stop,
}

/// Test hooks for fault injection (issue: reliability). Inert by default.
#[derive(Debug, Default)]
pub struct Faults {
    /// Fail the next data write as if RocksDB returned an I/O error.
    pub fail_next_data_write: AtomicBool,
    /// Fail the next head write.
    pub fail_next_head_write: AtomicBool,
    /// After the next data write, flip a bit in a stored tile before the
    /// verify-before-sign step (simulates a storage or memory fault).
    pub corrupt_next_tile: AtomicBool,
    /// Fail the next read-back of the verify-before-sign step (an I/O error
    /// reading what was just written).
    pub fail_next_verify_read: AtomicBool,
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

fn take(flag: &AtomicBool) -> bool {
    flag.swap(false, Ordering::SeqCst)
}

/// Counters and histograms scraped by `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub queued: AtomicU64,
    pub batches: AtomicU64,
    pub appended: AtomicU64,
    pub duplicates: AtomicU64,
    pub failed_batches: AtomicU64,
    pub batch_sizes: Histogram,
    pub commit_seconds: Histogram,
    pub sign_seconds: Histogram,
}

/// A fixed-bucket histogram (Prometheus style: cumulative on export).
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Mutex<(Vec<u64>, f64, u64)>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ])
    }
}

impl Histogram {
    pub fn with_bounds(bounds: Vec<f64>) -> Self {
        let n = bounds.len();
        Self {
            bounds,
            counts: Mutex::new((vec![0; n + 1], 0.0, 0)),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        if let Ok(mut g) = self.counts.lock() {
            g.0[i] += 1;
            g.1 += v;
            g.2 += 1;
        }
    }

    /// (bucket upper bounds with cumulative counts, sum, count)
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let g = match self.counts.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.bounds.len() + 1);
        for (i, c) in g.0.iter().enumerate() {
            acc += c;
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (out, g.1, g.2)
    }
}

/// The right edge: for each level, the partial tile still growing (maybe
/// empty). Every perfect node on the path to the root lives in one of them.
struct Frontier {
    size: u64,
    tiles: Vec<Tile>,
}

impl Frontier {
    fn tile_id(&self, level: usize) -> TileId {
        TileId {
            level: level as u8,
            index: self.size.checked_shr(HEIGHT * level as u32).unwrap_or(0) >> HEIGHT,
        }
    }

    fn load(store: &Store, size: u64) -> Result<Frontier, LogError> {
        let mut f = Frontier {
            size,
            tiles: Vec::new(),
        };
        let mut level = 0usize;
        while level == 0 || size.checked_shr(HEIGHT * level as u32).unwrap_or(0) > 0 {
            let id = f.tile_id(level);
            let width = width_at(id, size);
            let tile = if width == 0 {
                Tile::new()
            } else {
                let t = store
                    .tile(id)?
                    .ok_or_else(|| LogError::Corrupt(format!("right-edge {id} is missing")))?;
                t.check_interior()
                    .map_err(|e| LogError::Corrupt(format!("{id}: {e}")))?;
                if t.width() < width {
                    return Err(LogError::Corrupt(format!(
                        "{id} has width {}, size {size} needs {width}",
                        t.width()
                    )));
                }
                // A tile may hold more than `size` if a batch was written but the
                // meta size was not; it cannot, since both are in one batch — but
                // trimming keeps the frontier exact either way.
                t.truncated(width)
            };
            f.tiles.push(tile);
            level += 1;
            if level > 8 {
                break;
            }
        }
        Ok(f)
    }

    /// Appends a leaf; full tiles are moved into `done`, partial ones marked.
    fn push(&mut self, leaf: Hash, done: &mut Vec<(TileId, Tile)>, touched: &mut [bool; 9]) {
        let mut node = leaf;
        let mut level = 0usize;
        loop {
            if self.tiles.len() <= level {
                self.tiles.push(Tile::new());
            }
            let id = TileId {
                level: level as u8,
                index: self.size.checked_shr(HEIGHT * level as u32).unwrap_or(0) >> HEIGHT,
            };
            touched[level] = true;
            match self.tiles[level].push(node) {
                None => break,
                Some(root) => {
                    done.push((id, std::mem::take(&mut self.tiles[level])));
                    node = root;
                    level += 1;
                }
            }
        }
        self.size += 1;
    }

    fn root(&self) -> Hash {
        let mut src = FrontierNodes(self);
        merkle::root(&mut src, self.size).unwrap_or([0; 32])
    }
}

/// The right edge plus the tiles completed in the last batch: every sibling
/// on the path of a leaf from that batch is in one of them.
struct MemoryNodes<'a> {
    frontier: &'a Frontier,
    done: &'a [(TileId, Tile)],
}

impl NodeSource for MemoryNodes<'_> {
    type Error = ();
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, ()> {
        if let Ok(h) = FrontierNodes(self.frontier).perfect_node(height, index) {
            return Ok(h);
        }
        let (id, row, offset) = TileId::locate(height, index);
        self.done
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, t)| t.node(row, offset))
            .copied()
            .ok_or(())
    }
}

struct FrontierNodes<'a>(&'a Frontier);

impl NodeSource for FrontierNodes<'_> {
    type Error = ();
    fn perfect_node(&mut self, height: u8, index: u64) -> Result<Hash, ()> {
        let (id, row, offset) = TileId::locate(height, index);
        let level = id.level as usize;
        if self.0.tile_id(level) != id {
            return Err(());
        }
        self.0
            .tiles
            .get(level)
            .and_then(|t| t.node(row, offset))
            .copied()
            .ok_or(())
    }
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
            if let Some(why) = read_halt(&shared) {
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

    fn commit_batch(&mut self, batch: Vec<Request>, shared: &Arc<Shared>) {
        let started = Instant::now();
        let base_size = self.frontier.size;
        // Dedup. `slots[i]` says what request i resolves to.
        enum Slot {
            New(u64),
            Existing(u64),
            Failed(LogError),
        }
        let mut in_batch: HashMap<Hash, u64> = HashMap::new();
        let mut slots = Vec::with_capacity(batch.len());
        let mut fresh: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, req) in batch.iter().enumerate() {
            if let Some(&idx) = in_batch.get(&req.leaf) {
                slots.push(Slot::Existing(idx));
                continue;
            }
            match self.store.index_of(&req.leaf) {
                Ok(Some(idx)) => slots.push(Slot::Existing(idx)),
                Ok(None) => {
                    let idx = base_size + fresh.len() as u64;
                    in_batch.insert(req.leaf, idx);
                    fresh.push(i);
                    slots.push(Slot::New(idx));
                }
                Err(e) => slots.push(Slot::Failed(e)),
            }
        }

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
        // Proofs for the fresh entries, from memory, at the new head.
        let mut proofs: HashMap<u64, Vec<Hash>> = HashMap::new();
        let mut template = None;
        if result.is_ok() && !fresh.is_empty() && self.latest.head.size == self.frontier.size {
            let mut nodes = MemoryNodes {
                frontier: &self.frontier,
                done: &self.last_done,
            };
            for idx in base_size..self.frontier.size {
                if let Ok(p) = merkle::inclusion_proof(&mut nodes, idx, self.frontier.size) {
                    proofs.insert(idx, p);
                }
            }
            template = crate::receipt::ReceiptTemplate::new(&head.signature)
                .ok()
                .map(Arc::new);
        }
        match &result {
            Ok(()) => {
                if let Ok(mut g) = shared.last_batch_error.write() {
                    *g = None;
                }
                // Publish whenever the signed head advanced, including a
                // batch of duplicates that signed a head a failed write left
                // missing: readers must see every head we answer with.
                if let Ok(mut g) = shared.latest.write()
                    && g.head.size < head.head.size
                {
                    *g = head.clone();
                }
                if !fresh.is_empty() {
                    shared.metrics.batches.fetch_add(1, Ordering::Relaxed);
                    shared.metrics.batch_sizes.observe(fresh.len() as f64);
                    shared
                        .metrics
                        .commit_seconds
                        .observe(started.elapsed().as_secs_f64());
                    shared.metrics.sign_seconds.observe(self.last_sign_secs);
                }
                shared
                    .metrics
                    .appended
                    .fetch_add(fresh.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                shared
                    .metrics
                    .failed_batches
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, entries = fresh.len(), "batch failed");
                if let Ok(mut g) = shared.last_batch_error.write() {
                    *g = Some(e.to_string());
                }
                if let LogError::Halted(why) = e
                    && let Ok(mut g) = shared.halted.write()
                {
                    *g = Some(why.clone());
                }
            }
        }
        for (req, slot) in batch.into_iter().zip(slots) {
            let answer = match (slot, &result) {
                (Slot::Failed(e), _) => Err(e),
                (Slot::Existing(index), _) => {
                    shared.metrics.duplicates.fetch_add(1, Ordering::Relaxed);
                    // An entry found in storage is covered by the latest head
                    // (batches complete one at a time); one found earlier in
                    // this batch shares the batch's fate.
                    if index >= base_size && result.is_err() {
                        Err(LogError::BatchFailed("its batch was not committed".into()))
                    } else {
                        Ok(Appended {
                            index,
                            leaf: req.leaf,
                            head: head.clone(),
                            duplicate: true,
                            proof: None,
                            receipt_template: None,
                        })
                    }
                }
                (Slot::New(index), Ok(())) => Ok(Appended {
                    index,
                    leaf: req.leaf,
                    head: head.clone(),
                    duplicate: false,
                    proof: proofs.remove(&index),
                    receipt_template: template.clone(),
                }),
                (Slot::New(_), Err(e)) => Err(match e {
                    LogError::Halted(w) => LogError::Halted(w.clone()),
                    other => LogError::BatchFailed(other.to_string()),
                }),
            };
            let _ = req.reply.send(answer);
        }
    }

    /// Steps 3–6 for the fresh entries of a batch. On any error before the
    /// data is durable the frontier is reloaded from storage.
    fn write_and_sign(&mut self, batch: &[Request], fresh: &[usize]) -> Result<(), LogError> {
        let base_size = self.frontier.size;
        let mut wb = WriteBatch::default();
        let mut done: Vec<(TileId, Tile)> = Vec::new();
        let mut touched = [false; 9];
        for &i in fresh {
            let req = &batch[i];
            let index = self.frontier.size;
            self.store
                .put_entry(&mut wb, index, &req.leaf, &req.entry)?;
            if let Some(f) = &req.index_writes {
                let cf = self.store.cf(CF_INDEX)?;
                for (k, v) in f(index).puts {
                    wb.put_cf(cf, k, v);
                }
            }
            self.frontier.push(req.leaf, &mut done, &mut touched);
        }
        let new_size = self.frontier.size;
        let mut written: Vec<TileId> = Vec::new();
        for (id, tile) in &done {
            self.store.put_tile(&mut wb, *id, tile)?;
            written.push(*id);
        }
        for (level, was) in touched.iter().enumerate() {
            if *was && level < self.frontier.tiles.len() && self.frontier.tiles[level].width() > 0 {
                let id = self.frontier.tile_id(level);
                self.store
                    .put_tile(&mut wb, id, &self.frontier.tiles[level])?;
                written.push(id);
            }
        }
        self.store.put_data_size(&mut wb, new_size)?;
        // Kept for the in-memory proofs of this batch (not read after here).
        self.last_done = done;

        let write = if take(&self.config.faults.fail_next_data_write) {
            Err(LogError::Storage(
                "injected fault: data write failed".into(),
            ))
        } else {
            self.store.write_synced(wb)
        };
        if let Err(e) = write {
            // Nothing of this batch is durable: forget it.
            self.frontier = Frontier::load(&self.store, base_size)?;
            return Err(e);
        }
        // Fault injection: flip a bit of this batch's last stored leaf (a
        // torn or flipped write of the batch itself).
        let last_leaf = TileId::locate(0, self.frontier.size.saturating_sub(1));
        if take(&self.config.faults.corrupt_next_tile)
            && let Ok(Some(t)) = self.store.tile(last_leaf.0)
        {
            let mut b = t.to_bytes();
            if let Some(x) = b.get_mut(2 + last_leaf.2 * 32 + 5) {
                *x ^= 0x01;
            }
            self.store
                .put_raw(super::store::CF_TILES, &last_leaf.0.key(), &b)?;
        }
        let entries: Vec<(u64, &[u8])> = fresh
            .iter()
            .enumerate()
            .map(|(k, &i)| (base_size + k as u64, batch[i].entry.as_slice()))
            .collect();
        self.verify_and_sign_written(&entries, &written)
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
        if take(&self.config.faults.fail_next_head_write) {
            return Err(LogError::Storage(
                "injected fault: head write failed".into(),
            ));
        }
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
        if take(&self.config.faults.fail_next_verify_read) {
            return Err("injected fault: reading back the written tiles failed".into());
        }
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
            if stored != merkle::leaf_hash(entry) {
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

fn read_halt(shared: &Shared) -> Option<String> {
    match shared.halted.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}
