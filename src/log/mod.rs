//! The append-only log: RFC 9162 tree over RocksDB, fed by one sequencer.
//!
//! Lifecycle: [`Log::open`] recovers from the last durable state (signing a
//! head for durable-but-unsigned data), [`Log::submit`] hands an entry to the
//! sequencer and returns a [`Pending`] that resolves only once the entry is
//! fsync'd *and* covered by a signed, persisted tree head. Reads (entries,
//! proofs, heads) go straight to RocksDB and never wait for the sequencer.

pub mod closer;
mod faults;
pub mod follower;
mod frontier;
mod fsck;
pub mod guard;
pub mod metrics;
mod sequencer;
pub mod store;

use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

pub use closer::{BatchCloser, CloserInput, Closing, Fresh};
pub use faults::Faults;
pub use fsck::{FsckReport, fsck};
pub use store::Store;

use crate::merkle::{self, Hash};
use crate::sync::read;
use store::StoreNodes;

pub use crate::tree_head::{SignedTreeHead, TreeHead, TreeHeadSigner, TreeHeadVerifier};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the sequencer queue is full")]
    QueueFull,
    #[error("the log is shutting down")]
    Closed,
    #[error("rollback refused: {0}")]
    RolledBack(String),
    #[error("the log halted after an integrity alarm: {0}")]
    Halted(String),
    #[error("signing the tree head failed: {0}")]
    Signing(String),
    #[error("the batch holding this entry failed: {0}")]
    BatchFailed(String),
    #[error("{0}")]
    InvalidRequest(String),
}

/// Tuning for the sequencer; defaults come from the measurements in
/// BENCHMARKS.md.
#[derive(Clone)]
pub struct LogConfig {
    /// Most entries in one commit.
    pub max_batch: usize,
    /// How long the sequencer lingers for more entries after the queue ran
    /// dry (0 = commit what is there at once: the lowest latency; the batch
    /// still grows under load because entries queue during each fsync).
    pub max_delay: Duration,
    /// Bounded queue in front of the sequencer; a full queue is back-pressure.
    pub queue_capacity: usize,
    pub faults: Arc<Faults>,
    /// Rollback guard file (outside the RocksDB directory); None = off.
    pub rollback_guard: Option<std::path::PathBuf>,
    /// Closes every batch with fresh entries (the vCon map); None = off.
    pub closer: Option<Arc<std::sync::Mutex<dyn BatchCloser>>>,
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConfig")
            .field("max_batch", &self.max_batch)
            .field("max_delay", &self.max_delay)
            .field("queue_capacity", &self.queue_capacity)
            .field("rollback_guard", &self.rollback_guard)
            .field("closer", &self.closer.is_some())
            .finish()
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            max_delay: Duration::from_micros(500),
            queue_capacity: 65_536,
            faults: Arc::new(Faults::default()),
            rollback_guard: None,
            closer: None,
        }
    }
}

/// What an appender gets back: its index and a signed head that covers it.
#[derive(Debug, Clone)]
pub struct Appended {
    pub index: u64,
    /// The leaf of the entry at `index`. For a duplicate found by identity
    /// this is the stored entry's leaf, not the submitted one's.
    pub leaf: Hash,
    pub head: Arc<SignedTreeHead>,
    /// True when the log already held an identical entry, or one with the
    /// same identity (see [`Log::submit_with`]).
    pub duplicate: bool,
    /// The inclusion proof at `head`, computed by the sequencer from the
    /// tiles it holds in memory (None for duplicates): the request path then
    /// builds the receipt without reading storage.
    pub proof: Option<Vec<Hash>>,
}

/// Secondary-index rows written in the same `WriteBatch` as their entry, so
/// they are exactly as durable as it. The caller builds them completely
/// (encoding included) before submitting; the sequencer only appends the
/// index it assigns — it runs no caller code on the one writer thread.
#[derive(Debug, Clone, Default)]
pub struct IndexRows {
    /// (key prefix, value): stored under `prefix ‖ index (u64 BE)`.
    pub by_index: Vec<(Vec<u8>, Vec<u8>)>,
    /// (key, value) under a fixed key; a later entry's row replaces it.
    pub fixed: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) struct Request {
    pub entry: Vec<u8>,
    pub leaf: Hash,
    pub identity: Option<Hash>,
    pub index_rows: IndexRows,
    pub closer_input: Option<CloserInput>,
    pub reply: tokio::sync::oneshot::Sender<Result<Appended, LogError>>,
}

/// A submitted entry, waiting for durability.
pub struct Pending {
    rx: tokio::sync::oneshot::Receiver<Result<Appended, LogError>>,
}

impl Pending {
    pub async fn wait(self) -> Result<Appended, LogError> {
        self.rx.await.unwrap_or(Err(LogError::Closed))
    }

    pub fn wait_blocking(self) -> Result<Appended, LogError> {
        self.rx.blocking_recv().unwrap_or(Err(LogError::Closed))
    }
}

/// Shared state readers use without touching the sequencer.
pub(crate) struct Shared {
    pub latest: RwLock<Arc<SignedTreeHead>>,
    pub halted: RwLock<Option<String>>,
    /// Why the most recent batch failed, if it did (cleared by the next
    /// successful one): readiness, and the disk-full signal.
    pub last_batch_error: RwLock<Option<String>>,
    pub metrics: metrics::Metrics,
}

impl Shared {
    pub fn halted(&self) -> Option<String> {
        read(&self.halted).clone()
    }
}

/// The log handle. Cheap to clone; the sequencer stops when the last handle
/// is dropped or on [`Log::shutdown`].
#[derive(Clone)]
pub struct Log {
    store: Arc<Store>,
    faults: Arc<Faults>,
    // Field order matters: `tx` is dropped before `thread`, so when the last
    // handle goes the sequencer sees the channel close and `thread`'s drop
    // can wait for it to finish.
    tx: SyncSender<sequencer::Msg>,
    shared: Arc<Shared>,
    thread: Arc<SequencerThread>,
}

/// The sequencer's join handle, shared by every [`Log`] handle. Dropping the
/// last one waits for the sequencer to finish its batch and close the store:
/// without the wait, a process could exit (running RocksDB's static
/// destructors) while the sequencer thread was still closing the database —
/// a segfault at exit that a test binary hit about once in seven runs.
struct SequencerThread(std::sync::Mutex<Option<JoinHandle<()>>>);

impl SequencerThread {
    fn join(&self) {
        let handle = crate::sync::lock(&self.0).take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
    }
}

impl Drop for SequencerThread {
    fn drop(&mut self) {
        self.join();
    }
}

impl Log {
    /// Opens (or creates) the log in `dir` and starts the sequencer.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        signer: Arc<dyn TreeHeadSigner>,
    ) -> Result<Log, LogError> {
        let store = Store::open(dir)?;
        Self::with_store(store, config, signer)
    }

    pub fn with_store(
        store: Arc<Store>,
        config: LogConfig,
        signer: Arc<dyn TreeHeadSigner>,
    ) -> Result<Log, LogError> {
        let (seq, latest) = sequencer::Sequencer::recover(store.clone(), config.clone(), signer)?;
        let shared = Arc::new(Shared {
            latest: RwLock::new(Arc::new(latest)),
            halted: RwLock::new(None),
            last_batch_error: RwLock::new(None),
            metrics: metrics::Metrics::default(),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_capacity.max(1));
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || seq.run(rx, sh))
            .map_err(|e| LogError::Storage(format!("spawning the sequencer: {e}")))?;
        Ok(Log {
            store,
            faults: config.faults.clone(),
            tx,
            shared,
            thread: Arc::new(SequencerThread(std::sync::Mutex::new(Some(thread)))),
        })
    }

    /// Hands an entry to the sequencer. Fails at once with
    /// [`LogError::QueueFull`] when the queue is full (back-pressure).
    pub fn submit(&self, entry: Vec<u8>) -> Result<Pending, LogError> {
        let leaf = self.store.leaf_hash(&entry);
        self.submit_with(entry, leaf, None, IndexRows::default())
    }

    /// As [`Log::submit`], with a precomputed leaf hash (the sequencer checks
    /// it again before signing), an optional identity, and secondary-index
    /// rows to write atomically.
    ///
    /// The identity is the caller's choice of what makes two entries the
    /// same registration: an entry whose identity is already in the log (or
    /// earlier in its batch) is not appended, and is answered as a duplicate
    /// with the *stored* entry's index and leaf. Entries are always deduped
    /// on their exact bytes too; without an identity, that is all.
    pub fn submit_with(
        &self,
        entry: Vec<u8>,
        leaf: Hash,
        identity: Option<Hash>,
        index_rows: IndexRows,
    ) -> Result<Pending, LogError> {
        self.submit_for_closer(entry, leaf, identity, index_rows, None)
    }

    /// As [`Log::submit_with`], with an input for the log's
    /// [`BatchCloser`] (ignored when there is none).
    pub fn submit_for_closer(
        &self,
        entry: Vec<u8>,
        leaf: Hash,
        identity: Option<Hash>,
        index_rows: IndexRows,
        closer_input: Option<CloserInput>,
    ) -> Result<Pending, LogError> {
        if let Some(why) = self.halted() {
            return Err(LogError::Halted(why));
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        let req = Request {
            entry,
            leaf,
            identity,
            index_rows,
            closer_input,
            reply,
        };
        match self.tx.try_send(sequencer::Msg::Append(req)) {
            Ok(()) => {
                self.shared
                    .metrics
                    .queued
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(Pending { rx })
            }
            Err(TrySendError::Full(_)) => Err(LogError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(LogError::Closed),
        }
    }

    /// Appends and waits (blocking); for tools and tests.
    pub fn append_blocking(&self, entry: Vec<u8>) -> Result<Appended, LogError> {
        self.submit(entry)?.wait_blocking()
    }

    /// Fault-injection hooks (tests); inert unless a test sets them.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The latest signed tree head.
    pub fn latest(&self) -> Arc<SignedTreeHead> {
        read(&self.shared.latest).clone()
    }

    /// Why the log stopped accepting writes, if it did.
    pub fn halted(&self) -> Option<String> {
        self.shared.halted()
    }

    /// Why the last batch failed, if it did (e.g. no space left on device).
    pub fn last_batch_error(&self) -> Option<String> {
        read(&self.shared.last_batch_error).clone()
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    pub fn queue_depth(&self) -> u64 {
        self.shared
            .metrics
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        self.store.entry(index)
    }

    pub fn index_of(&self, leaf: &Hash) -> Result<Option<u64>, LogError> {
        self.store.index_of(leaf)
    }

    /// The head of the batch that included `index` (stable receipts), once
    /// it is published.
    ///
    /// Reads see only published heads. The sequencer stores a head (step 6)
    /// a moment before it publishes it; a reader that took a stored but
    /// unpublished head would then ask for proofs beyond the published size
    /// and fail. The published size is read *before* storage, so whatever
    /// head passes the filter stays within what every later check sees.
    pub fn first_head_covering(&self, index: u64) -> Result<Option<SignedTreeHead>, LogError> {
        let published = self.latest().head.size;
        Ok(self
            .store
            .first_head_covering(index)?
            .filter(|h| h.head.size <= published))
    }

    /// The signed head at `size`, if one is published (see
    /// [`Log::first_head_covering`]).
    pub fn head(&self, size: u64) -> Result<Option<SignedTreeHead>, LogError> {
        if size > self.latest().head.size {
            return Ok(None);
        }
        self.store.head(size)
    }

    /// Inclusion proof of `index` in the tree of `size`, which must not exceed
    /// the latest signed size.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size)?;
        if index >= size {
            return Err(LogError::InvalidRequest(format!(
                "index {index} is not below size {size}"
            )));
        }
        merkle::inclusion_proof(&mut StoreNodes::new(&self.store), index, size)
    }

    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LogError> {
        self.check_size(size2)?;
        if size1 > size2 {
            return Err(LogError::InvalidRequest(format!(
                "size {size1} is above size {size2}"
            )));
        }
        merkle::consistency_proof(&mut StoreNodes::new(&self.store), size1, size2)
    }

    /// Root of the tree at any signed size, recomputed from storage.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        self.check_size(size)?;
        merkle::root(&mut StoreNodes::new(&self.store), size)
    }

    fn check_size(&self, size: u64) -> Result<(), LogError> {
        let latest = self.latest().head.size;
        if size > latest {
            return Err(LogError::InvalidRequest(format!(
                "size {size} is beyond the latest signed size {latest}"
            )));
        }
        Ok(())
    }

    /// Stops the sequencer after it finishes the batch in hand. Entries still
    /// queued are answered with [`LogError::Closed`].
    pub fn shutdown(&self) {
        let _ = self.tx.send(sequencer::Msg::Stop);
        self.thread.join();
    }
}
