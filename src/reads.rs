//! The reads a writer and a read replica serve alike: receipts, statements,
//! hash tiles and entry bundles, from a store in the log's format and the
//! newest head the reader may show (`published`). One implementation, so a
//! replica's answers are the writer's bytes.
//!
//! Every read is limited to `published`: the writer stores a head a moment
//! before it publishes it, and a replica stores what it has verified; a
//! reader never shows more than its newest head covers.

use crate::log::LogError;
use crate::log::store::StoreNodes;
use crate::log::{SignedTreeHead, Store};
use crate::merkle::tile::{self, TileId};
use crate::merkle::{self, Hash};
use crate::receipt;
use crate::statement;
use crate::statement::StatementError;
use crate::vcon::policy::PolicyRejection;

/// Why the service could not answer: one type for the writer and for
/// replicas, so the HTTP layer maps it to a problem in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Policy(#[from] PolicyRejection),
    #[error("the log is full; retry later")]
    Overloaded,
    #[error("the log is not accepting writes: {0}")]
    Unavailable(String),
    /// A view whose answer would exceed its stated bound (never cut short).
    #[error("{0}")]
    TooLarge(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// How a log failure reads to a registrant: the one mapping for everything
/// `Log::submit_with` and `Pending::wait` return. A full queue is
/// back-pressure (`Overloaded`, retry soon); anything else means the log is
/// not taking writes now (halted, closing, a batch that did not commit, a
/// storage error while deduplicating), and the registrant may retry later
/// (`Unavailable`). Reads do not use this: a failed read is our fault, not a
/// reason to retry, and maps to `Internal` through [`internal`].
impl From<LogError> for ServiceError {
    fn from(e: LogError) -> ServiceError {
        match e {
            LogError::QueueFull => ServiceError::Overloaded,
            LogError::Halted(why) => ServiceError::Unavailable(why),
            other => ServiceError::Unavailable(other.to_string()),
        }
    }
}

/// GET /entries/{id}.
#[derive(Debug)]
pub enum ReceiptLookup {
    Ready(Vec<u8>),
    Pending,
    Failed(String),
    Unknown,
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// A hash tile or entry bundle read.
#[derive(Debug)]
pub enum TileRead {
    /// The body: row 0's requested hashes, or the entry bundle.
    Body(Vec<u8>),
    /// The newest head covers only `signed` hashes of the tile.
    Unsigned { signed: usize },
}

/// What an entry bundle holds per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    /// The C2SP log entry: the leaf rule's leaf input.
    Leaves,
    /// The stored statement (equal to `Leaves` under the `entry` rule).
    Statements,
}

/// The head of the batch that included `index` (its receipts are stable),
/// if `published` covers it.
pub fn stable_head(
    store: &Store,
    index: u64,
    published: u64,
) -> Result<Option<SignedTreeHead>, ServiceError> {
    Ok(store
        .first_head_covering(index)
        .map_err(internal)?
        .filter(|h| h.head.size <= published))
}

/// Inclusion receipt for `index` at `head` (which must cover it). Never
/// hands out a receipt that does not verify: the proof read from storage is
/// checked against the signed root first (≈ 2 µs), so storage corruption
/// surfaces as an honest 500 and an alarm, not a bad receipt.
pub fn receipt_at(
    store: &Store,
    index: u64,
    head: &SignedTreeHead,
    leaf: &Hash,
) -> Result<Vec<u8>, ServiceError> {
    let size = head.head.size;
    if index >= size {
        return Err(internal(format!("index {index} is not below size {size}")));
    }
    let proof =
        merkle::inclusion_proof(&mut StoreNodes::new(store), index, size).map_err(internal)?;
    if let Err(e) = merkle::verify_inclusion(index, size, leaf, &proof, &head.head.root) {
        tracing::error!(alarm = true, index, size, error = %e, "stored tree does not match a signed head");
        return Err(ServiceError::Internal(format!(
            "storage corruption detected: the stored proof for index {index} does not match the signed root at size {size} ({e}); run vcon-scitt fsck"
        )));
    }
    receipt::inclusion_receipt(&head.signature, size, index, &proof).map_err(internal)
}

/// `GET /entries/{id}` as far as the store knows: `None` when `leaf` is
/// not stored, `Ready` with the stable receipt (or, `fresh`, one at
/// `latest`), `Pending` while no published head covers it yet.
pub fn stored_receipt(
    store: &Store,
    leaf: &Hash,
    fresh: bool,
    latest: &SignedTreeHead,
) -> Result<Option<ReceiptLookup>, ServiceError> {
    let Some(index) = store.index_of(leaf).map_err(internal)? else {
        return Ok(None);
    };
    let head = if fresh {
        (latest.head.size > index).then(|| latest.clone())
    } else {
        stable_head(store, index, latest.head.size)?
    };
    Ok(Some(match head {
        Some(h) => ReceiptLookup::Ready(receipt_at(store, index, &h, leaf)?),
        None => ReceiptLookup::Pending,
    }))
}

/// The stored entry of `leaf` and its stable head, once `published` covers it.
fn covered_entry(
    store: &Store,
    leaf: &Hash,
    published: u64,
) -> Result<Option<(u64, Vec<u8>, SignedTreeHead)>, ServiceError> {
    let Some(index) = store.index_of(leaf).map_err(internal)? else {
        return Ok(None);
    };
    let Some(head) = stable_head(store, index, published)? else {
        return Ok(None);
    };
    let entry = store
        .entry(index)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("entry {index} vanished")))?;
    Ok(Some((index, entry, head)))
}

/// `GET /signed-statements/{id}`: the Signed Statement as registered (the
/// entry bytes: its unprotected header emptied), once a head covers it.
pub fn signed_statement(
    store: &Store,
    leaf: &Hash,
    published: u64,
) -> Result<Option<Vec<u8>>, ServiceError> {
    Ok(covered_entry(store, leaf, published)?.map(|(_, entry, _)| entry))
}

/// `GET /entries/{id}/statement`: the entry with its stable receipt in 394.
pub fn transparent_statement(
    store: &Store,
    leaf: &Hash,
    published: u64,
) -> Result<Option<Vec<u8>>, ServiceError> {
    let Some((index, entry, head)) = covered_entry(store, leaf, published)? else {
        return Ok(None);
    };
    let receipt = receipt_at(store, index, &head, leaf)?;
    statement::transparent_statement(&entry, &[receipt])
        .map(Some)
        .map_err(internal)
}

/// A consistency receipt from `size1` to the signed head at `size2`
/// (`None`: `latest`).
pub fn consistency_receipt(
    store: &Store,
    latest: &SignedTreeHead,
    size1: u64,
    size2: Option<u64>,
) -> Result<Option<Vec<u8>>, ServiceError> {
    let head = match size2 {
        None => Some(latest.clone()),
        Some(s) if s > latest.head.size => None,
        Some(s) => store.head(s).map_err(internal)?,
    };
    let Some(head) = head else { return Ok(None) };
    if size1 == 0 || size1 > head.head.size {
        return Ok(None);
    }
    let proof = merkle::consistency_proof(&mut StoreNodes::new(store), size1, head.head.size)
        .map_err(internal)?;
    receipt::consistency_receipt(&head.signature, size1, head.head.size, &proof)
        .map(Some)
        .map_err(internal)
}

/// How many hashes of tile `id` a reader shows at `published`: `want`
/// (`None`: the full tile) if the head covers that many.
fn width(id: TileId, want: Option<usize>, published: u64) -> Result<usize, TileRead> {
    let signed = tile::width_at(id, published);
    match want {
        None if signed == tile::WIDTH => Ok(tile::WIDTH),
        Some(w) if w <= signed => Ok(w),
        _ => Err(TileRead::Unsigned { signed }),
    }
}

/// Row 0 of a hash tile, cut to `want` hashes. A partial tile is a prefix
/// of every later version, so any width up to the published one is correct.
pub fn tile(
    store: &Store,
    published: u64,
    id: TileId,
    want: Option<usize>,
) -> Result<TileRead, ServiceError> {
    let width = match width(id, want, published) {
        Ok(w) => w,
        Err(unsigned) => return Ok(unsigned),
    };
    match store.tile(id).map_err(internal)? {
        Some(t) if t.width() >= width => Ok(TileRead::Body(
            t.row(0)
                .iter()
                .take(width)
                .flat_map(|h| h.iter().copied())
                .collect(),
        )),
        // The head covers it, so storage must hold it.
        _ => Err(internal(format!("{id} is missing from storage"))),
    }
}

/// A C2SP entry bundle (`Leaves`: each entry's leaf input, what
/// `tile/entries/N` serves) or the same bundle of the stored statements
/// (`tile/statements/N`), limited like tiles to what `published` covers.
pub fn bundle(
    store: &Store,
    published: u64,
    index: u64,
    want: Option<usize>,
    kind: BundleKind,
) -> Result<TileRead, ServiceError> {
    let width = match width(TileId { level: 0, index }, want, published) {
        Ok(w) => w,
        Err(unsigned) => return Ok(unsigned),
    };
    let rule = store.leaf_rule();
    let start = index.saturating_mul(tile::WIDTH as u64);
    let mut entries = Vec::with_capacity(width);
    for i in start..start.saturating_add(width as u64) {
        // The head covers it, so storage must hold it.
        let e = store
            .entry(i)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("entry {i} is missing from storage")))?;
        entries.push(match kind {
            BundleKind::Leaves => rule.leaf_input(&e).into_owned(),
            BundleKind::Statements => e,
        });
    }
    crate::merkle::bundle::encode(entries.iter().map(Vec::as_slice))
        .map(TileRead::Body)
        .map_err(internal)
}

/// What the read API needs of whoever serves it: the writer (`Service`),
/// or a read replica that follows the bucket (`Replica`). The HTTP
/// handlers of these reads take `&dyn LogReads`, so both answer with the
/// same code and the same bytes.
pub trait LogReads: Send + Sync {
    /// `GET /entries/{id}`: the stable receipt, or one at the newest head.
    fn lookup_receipt(&self, leaf: &Hash, fresh: bool) -> Result<ReceiptLookup, ServiceError>;
    fn signed_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError>;
    fn transparent_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError>;
    fn consistency_receipt(
        &self,
        size1: u64,
        size2: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ServiceError>;
    fn tile(&self, id: TileId, want: Option<usize>) -> Result<TileRead, ServiceError>;
    fn bundle(
        &self,
        index: u64,
        want: Option<usize>,
        kind: BundleKind,
    ) -> Result<TileRead, ServiceError>;
    /// The newest head this reader shows.
    fn latest_head(&self) -> std::sync::Arc<SignedTreeHead>;
    /// The C2SP checkpoint note of [`LogReads::latest_head`].
    fn checkpoint_note(&self) -> Result<std::sync::Arc<str>, ServiceError>;
    /// Every service key, current and retired.
    fn public_keys(&self) -> &crate::keys::KeySet;
    /// `/.well-known/transparency-configuration` (CBOR).
    fn transparency_configuration(&self) -> Vec<u8>;
    /// `Retry-After` for a registration still being sequenced.
    fn retry_after_secs(&self) -> u64;
}

/// One vCon in the map, read consistently: the last committed map root, the
/// map's proof for the vCon under it, and its stored state record.
pub struct MapSnapshot {
    pub last: Option<crate::vcon_map::MapRoot>,
    pub proof: Vec<u8>,
    pub state: Option<Vec<u8>>,
}

/// The vCon views' needs, met by the writer (rows written at registration)
/// and by a replica (the same rows derived again, `vcon_follow`): the
/// handlers take `&dyn VconReads`, so both answer with the same code.
pub trait VconReads: LogReads {
    /// The store holding the vCon index rows.
    fn vcon_store(&self) -> &Store;
    /// The consent delegates of the registration policy in force.
    fn delegates(&self) -> crate::vcon::consent::Delegates;
    /// `None` while the map is between a batch's new states and their
    /// commit (then the stored rows and the tree may disagree).
    fn map_snapshot(&self, key: &crate::map::Key) -> Result<Option<MapSnapshot>, ServiceError>;
    /// `GET /policy`: the registration policy in force and its entry id.
    fn policy(&self) -> Result<serde_json::Value, ServiceError>;
}

/// `GET /vcons/{uuid}/proof`: the proof bundle of a vCon's complete
/// history (or its absence) as of the last map root, every receipt at one
/// signed head (core `vcon::proof`, spec-notes/vcon-map.md).
pub async fn vcon_proof(
    r: &dyn VconReads,
    uuid: &str,
) -> Result<crate::vcon::proof::Bundle, ServiceError> {
    use crate::vcon::proof::{Bundle, BundleEntry, MAX_BUNDLE_ENTRIES};
    use std::time::Duration;
    let key = crate::vcon::state::map_key(uuid)
        .ok_or_else(|| ServiceError::Internal(format!("{uuid:?} is not a uuid")))?;
    // 1. A consistent snapshot: the map between batches (its rows are then
    //    exactly those of its last root). A batch holds the staged state
    //    for one fsync: wait it out, bounded.
    let mut snapshot = None;
    for _ in 0..2_000 {
        snapshot = r.map_snapshot(&key)?;
        if snapshot.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let snapshot =
        snapshot.ok_or_else(|| ServiceError::Unavailable("the vCon map stayed busy".into()))?;
    let last = snapshot
        .last
        .ok_or_else(|| ServiceError::Unavailable("no map root has been committed yet".into()))?;
    // 2. A signed head that covers the map-root entry (one batch away at
    //    most: the entry is signed right after it is written).
    let mut head = r.latest_head();
    for _ in 0..2_000 {
        if head.head.size > last.index {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        head = r.latest_head();
    }
    if head.head.size <= last.index {
        return Err(ServiceError::Unavailable(
            "no signed head covers the last map root yet".into(),
        ));
    }
    // 3. The entries, all at that head.
    let store = r.vcon_store();
    let read = |index: u64| -> Result<(Vec<u8>, Hash), ServiceError> {
        let entry = store
            .entry(index)
            .map_err(internal)?
            .ok_or_else(|| ServiceError::Internal(format!("entry {index} is missing")))?;
        let leaf = store.leaf_hash(&entry);
        Ok((entry, leaf))
    };
    let (map_root_entry, mr_leaf) = read(last.index)?;
    let map_root_receipt = receipt_at(store, last.index, &head, &mr_leaf)?;
    let mut entries = Vec::new();
    if snapshot.state.is_some() {
        let uuid_bytes = crate::vcon::profile::uuid_bytes(uuid)
            .ok_or_else(|| ServiceError::Internal(format!("{uuid:?} is not a uuid")))?;
        let rows =
            crate::vcon_index::history_below(store, &uuid_bytes, last.index, MAX_BUNDLE_ENTRIES)
                .map_err(internal)?
                .ok_or_else(|| {
                    ServiceError::TooLarge(format!(
                        "this vCon has more than {MAX_BUNDLE_ENTRIES} entries; one bundle lists at most that many"
                    ))
                })?;
        for (index, _) in rows {
            let (statement, leaf) = read(index)?;
            let receipt = receipt_at(store, index, &head, &leaf)?;
            entries.push(BundleEntry {
                index,
                statement,
                receipt,
            });
        }
    }
    Ok(Bundle {
        uuid: uuid.to_owned(),
        map_root_entry,
        map_root_receipt,
        state: snapshot.state,
        map_proof: snapshot.proof,
        entries,
    })
}
