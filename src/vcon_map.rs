//! The verifiable vCon map, kept by the sequencer (issue 14,
//! spec-notes/vcon-map.md). Every batch with fresh entries is closed by a
//! **map-root entry**: a COSE_Sign1 the service signs, appended as the
//! batch's last leaf, whose payload says "the map of everything before my
//! own index has this root". So every head the sequencer signs commits to
//! an exact map of a prefix of itself, and a 201 means "in the log and in
//! the map".
//!
//! State: the map tree in memory (core `map::MapTree`, rebuilt at start
//! from the state rows), one state row per vCon in the `index` column family
//! (`M` ‖ key → the deterministic CBOR of its `VconState`), and the last
//! map root (`m/map-last` → index ‖ root ‖ vCon count), all written in the
//! batch's one `WriteBatch`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::keys::KeySet;
use crate::log::{BatchCloser, Closing, Fresh, LogError, Store};
use crate::map::{Key, MapTree, Undo};
use crate::merkle::Hash;
use crate::receipt::CoseTreeHeadSigner;
use crate::statement::{self, SignedStatement};
use crate::vcon::LifecycleRecord;
use crate::vcon::consent::Delegates;
use crate::vcon::replay::{Finding, InMemory, MapReplay};
use crate::vcon::state::{VconState, map_key};

pub use crate::vcon::proof::{MAP_PROFILE, MAP_ROOT_CONTENT_TYPE, MAP_ROOT_SUBJECT};

const STATE_PREFIX: &[u8] = b"M";
const LAST_ROW: &[u8] = b"m/map-last";
/// Present once the state rows of a database older than the map were
/// derived (written after the last of them, so an interrupted derivation
/// runs again and rewrites the same rows).
const DERIVED_ROW: &[u8] = b"m/map-derived";

/// What an appender attaches to a vCon statement for the map.
pub struct MapInput {
    pub key: Key,
    pub record: LifecycleRecord,
}

impl MapInput {
    /// Takes the record the request thread already derived (no copy).
    pub fn new(record: LifecycleRecord) -> Option<MapInput> {
        Some(MapInput {
            key: map_key(&record.vcon_uuid)?,
            record,
        })
    }
}

fn state_row_key(key: &Key) -> Vec<u8> {
    [STATE_PREFIX, key.as_slice()].concat()
}

/// One state row: (map key, the state's CBOR).
type StateRow = (Key, Box<[u8]>);

/// Every state row in key order.
fn state_rows(
    store: &Store,
) -> Result<impl Iterator<Item = Result<StateRow, LogError>> + '_, LogError> {
    Ok(store
        .iter_from(crate::log::store::CF_INDEX, STATE_PREFIX)?
        .take_while(|row| {
            row.as_ref()
                .map_or(true, |(k, _)| k.starts_with(STATE_PREFIX))
        })
        .map(|row| {
            let (k, v) = row?;
            let key: Key = k[STATE_PREFIX.len()..]
                .try_into()
                .map_err(|_| LogError::Corrupt("a map state row key is not 32 bytes".into()))?;
            Ok((key, v))
        }))
}

/// The last map root: (its entry's index, root, number of vCons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRoot {
    pub index: u64,
    pub root: Hash,
    pub vcons: u64,
}

impl MapRoot {
    fn to_row(self) -> Vec<u8> {
        [
            self.index.to_be_bytes().as_slice(),
            &self.root,
            &self.vcons.to_be_bytes(),
        ]
        .concat()
    }

    fn from_row(v: &[u8]) -> Option<MapRoot> {
        if v.len() != 48 {
            return None;
        }
        Some(MapRoot {
            index: u64::from_be_bytes(v[..8].try_into().ok()?),
            root: v[8..40].try_into().ok()?,
            vcons: u64::from_be_bytes(v[40..].try_into().ok()?),
        })
    }
}

struct Staged {
    undo: Undo,
    last: MapRoot,
}

pub struct VconMap {
    tree: MapTree,
    last: Option<MapRoot>,
    staged: Option<Staged>,
    signer: Arc<CoseTreeHeadSigner>,
    delegates: Delegates,
}

impl VconMap {
    /// Rebuilds the tree from the state rows (deriving them once from the
    /// per-vCon history rows of a database written before the map) and
    /// checks it against the last map root the store recorded.
    pub fn open(
        store: &Store,
        signer: Arc<CoseTreeHeadSigner>,
        delegates: Delegates,
    ) -> Result<VconMap, LogError> {
        if last_root(store)?.is_none() && store.get_index(DERIVED_ROW)?.is_none() {
            let rows = derive_states(store, &delegates)?;
            store.put_index_rows(&[(DERIVED_ROW.to_vec(), rows.to_be_bytes().to_vec())])?;
            if rows > 0 {
                tracing::info!(
                    vcons = rows,
                    "derived the vCon map's state rows of an older database"
                );
            }
        }
        let (tree, last) = load(store, true)?;
        Ok(VconMap {
            tree,
            last,
            staged: None,
            signer,
            delegates,
        })
    }

    pub fn tree(&self) -> &MapTree {
        &self.tree
    }

    /// The last committed map root.
    pub fn last(&self) -> Option<MapRoot> {
        self.last
    }

    /// True between a batch's `close` and its `committed`/`rolled_back`:
    /// the tree is then ahead of the stored rows and of any signed head.
    pub fn is_staged(&self) -> bool {
        self.staged.is_some()
    }

    /// The stored state record of a vCon (None: not in the map). Consistent
    /// with [`Self::last`] and the tree when read while not staged.
    pub fn state_row(store: &Store, key: &Key) -> Result<Option<Vec<u8>>, LogError> {
        store.get_index(&state_row_key(key))
    }

    fn state(
        &self,
        store: &Store,
        overlay: &BTreeMap<Key, VconState>,
        key: &Key,
    ) -> Result<VconState, String> {
        if let Some(s) = overlay.get(key) {
            return Ok(s.clone());
        }
        // A vCon the tree does not hold has no row: no read (most
        // `vcon_created` statements name a new vCon).
        if self.tree.get(key).is_none() {
            return Ok(VconState::default());
        }
        match store
            .get_index(&state_row_key(key))
            .map_err(|e| e.to_string())?
        {
            Some(v) => VconState::from_cbor(&v).map_err(|e| e.to_string()),
            None => Ok(VconState::default()),
        }
    }

    /// The signed map-root entry, in the stored (entry) form.
    fn map_root_entry(&self, p: u64, root: &Hash, vcons: u64) -> Result<Vec<u8>, String> {
        let now = crate::time::now_ms();
        let payload = crate::vcon::proof::MapRootPayload {
            p,
            root: *root,
            prev: self.last.map(|l| l.index),
            time_ms: now,
            vcons,
        }
        .to_cbor();
        let id = &self.signer.identity;
        let mut b = statement::Builder::new(&self.signer.key, &id.issuer, MAP_ROOT_SUBJECT);
        b.content_type = Some(MAP_ROOT_CONTENT_TYPE.into());
        b.issued_at = i64::try_from(now / 1000).ok();
        let st = b.sign(&payload)?;
        let parsed = SignedStatement::parse(&st, usize::MAX).map_err(|e| e.to_string())?;
        Ok(parsed.entry_bytes())
    }
}

impl BatchCloser for VconMap {
    fn close(
        &mut self,
        store: &Store,
        fresh: &[Fresh<'_>],
        next_index: u64,
    ) -> Result<Closing, String> {
        if self.staged.is_some() {
            // A batch must be committed or rolled back before the next.
            self.rolled_back();
        }
        let mut overlay: BTreeMap<Key, VconState> = BTreeMap::new();
        for f in fresh {
            let Some(input) = f.input.and_then(|i| i.downcast_ref::<MapInput>()) else {
                continue;
            };
            let mut state = self.state(store, &overlay, &input.key)?;
            state.fold(f.index, &f.leaf, &input.record, &self.delegates);
            overlay.insert(input.key, state);
        }
        // Each changed state encoded once: its row, and the hash of it the
        // tree holds.
        let encoded: Vec<(Key, Vec<u8>)> = overlay.iter().map(|(k, s)| (*k, s.to_cbor())).collect();
        let items: Vec<(Key, Hash)> = encoded
            .iter()
            .map(|(k, cbor)| (*k, crate::vcon::state::state_value(cbor)))
            .collect();
        let undo = self.tree.apply_batch(&items).map_err(|e| e.to_string())?;
        let root = self.tree.root();
        let vcons = self.tree.len() as u64;
        let last = MapRoot {
            index: next_index,
            root,
            vcons,
        };
        let entry = match self.map_root_entry(next_index, &root, vcons) {
            Ok(e) => e,
            Err(e) => {
                let _ = self.tree.rollback(undo);
                return Err(e);
            }
        };
        let rows = closing_rows(encoded, last);
        self.staged = Some(Staged { undo, last });
        Ok(Closing {
            rows,
            entry: Some(entry),
        })
    }

    fn committed(&mut self) {
        if let Some(s) = self.staged.take() {
            self.last = Some(s.last);
        }
    }

    fn rolled_back(&mut self) {
        if let Some(s) = self.staged.take()
            && let Err(e) = self.tree.rollback(s.undo)
        {
            // Cannot happen (the undo is the tree's own, taken just now);
            // if it did, the next batch's map root would be wrong, which
            // verify-before-sign cannot see, so say so loudly.
            tracing::error!(alarm = true, error = %e, "rolling back the vCon map failed");
        }
    }
}

/// The map tree rebuilt from the stored state rows and the last map root,
/// checked against each other (the writer at start, a follower at open)
/// unless `check` is false: a follower whose last append ended between
/// map roots (a log older than the map) stores states the tree will only
/// take at the next map root.
pub(crate) fn load(store: &Store, check: bool) -> Result<(MapTree, Option<MapRoot>), LogError> {
    let last = last_root(store)?;
    let mut items: Vec<(Key, Hash)> = Vec::new();
    for row in state_rows(store)? {
        let (key, v) = row?;
        let state = VconState::from_cbor(&v).map_err(|e| LogError::Corrupt(e.to_string()))?;
        items.push((key, state.value()));
    }
    let mut tree = MapTree::with_capacity(items.len());
    tree.apply_batch(&items)
        .map_err(|e| LogError::Corrupt(format!("rebuilding the vCon map: {e}")))?;
    if let Some(l) = last
        && check
        && l.root != tree.root()
    {
        return Err(LogError::Corrupt(format!(
            "the vCon map rebuilt from its state rows has root {}, but the map-root entry at index {} says {}",
            hex::encode(tree.root()),
            l.index,
            hex::encode(l.root)
        )));
    }
    Ok((tree, last))
}

/// The last map root the store recorded.
fn last_root(store: &Store) -> Result<Option<MapRoot>, LogError> {
    match store.get_index(LAST_ROW)? {
        Some(v) => Ok(Some(MapRoot::from_row(&v).ok_or_else(|| {
            LogError::Corrupt("m/map-last is not index ‖ root ‖ count".into())
        })?)),
        None => Ok(None),
    }
}

/// The rows the writer stores when a batch closes: each changed vCon's
/// state, and the map root (what a follower writes at each map-root entry).
pub(crate) fn closing_rows(
    states: impl IntoIterator<Item = (Key, Vec<u8>)>,
    last: MapRoot,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows = state_rows_of(states);
    rows.push((LAST_ROW.to_vec(), last.to_row()));
    rows
}

/// The state rows of (key, state CBOR) pairs.
pub(crate) fn state_rows_of(
    states: impl IntoIterator<Item = (Key, Vec<u8>)>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    states
        .into_iter()
        .map(|(k, cbor)| (state_row_key(&k), cbor))
        .collect()
}

/// Derives the state rows of a database written before the map existed,
/// once, from its per-vCon history rows (`h`: uuid ‖ index → the record and
/// entry id), which are in (uuid, index) order: each vCon is folded in log
/// order, as the sequencer would have.
fn derive_states(store: &Store, delegates: &Delegates) -> Result<u64, LogError> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut current: Option<(Key, VconState)> = None;
    let mut written = 0u64;
    let mut flush = |rows: &mut Vec<(Vec<u8>, Vec<u8>)>, force: bool| -> Result<(), LogError> {
        if force || rows.len() >= 10_000 {
            written += rows.len() as u64;
            store.put_index_rows(&std::mem::take(rows))?;
        }
        Ok(())
    };
    for item in crate::vcon_index::history_rows(store)? {
        let (index, record, entry_id) = item?;
        let Some(key) = map_key(&record.vcon_uuid) else {
            continue;
        };
        let Some(leaf) = crate::merkle::from_hex(&entry_id) else {
            continue;
        };
        match &mut current {
            Some((k, s)) if *k == key => s.fold(index, &leaf, &record, delegates),
            _ => {
                if let Some((k, s)) = current.take() {
                    rows.push((state_row_key(&k), s.to_cbor()));
                    flush(&mut rows, false)?;
                }
                let mut s = VconState::default();
                s.fold(index, &leaf, &record, delegates);
                current = Some((key, s));
            }
        }
    }
    if let Some((k, s)) = current {
        rows.push((state_row_key(&k), s.to_cbor()));
    }
    flush(&mut rows, true)?;
    Ok(written)
}

/// What `fsck` found re-deriving the map.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MapFsckReport {
    /// vCons in the map (state rows, each equal to the re-derived state).
    pub vcons: u64,
    /// vCon lifecycle entries folded.
    pub vcon_entries: u64,
    /// Map-root entries, each recomputed from the log before it.
    pub map_roots: u64,
    pub last_map_root: Option<u64>,
    /// Lifecycle-rule findings (issuers' conduct the log shows; not damage).
    pub lifecycle_findings: u64,
    pub signatures_checked: bool,
    /// Statements whose issuer signature was checked against the policy in
    /// force, and those that could not be (X.509, or no policy yet).
    pub issuer_signatures_checked: u64,
    pub issuer_signatures_unchecked: u64,
}

/// Re-derives the vCon map from the stored entries alone (core's
/// `MapReplay`, the monitor's code) and checks the store against it: every
/// map-root entry's root, count, index and chain (and its signature, given
/// the keys); every statement's issuer signature against the policy in
/// force; every state row equals the re-derived state and none is
/// missing or extra; `m/map-last` is the last map root; and no entry lies
/// after the last map root (each batch ends with one, so every entry the
/// log holds is in a signed map). `Err` names the first inconsistency.
pub fn fsck(store: &Store, keys: Option<&KeySet>) -> Result<MapFsckReport, LogError> {
    let corrupt = |m: String| LogError::Corrupt(format!("vCon map: {m}"));
    let size = store.data_size()?;
    let mut replay = MapReplay::new(keys.cloned());
    let mut lifecycle = 0u64;
    for index in 0..size {
        let entry = store
            .entry(index)?
            .ok_or_else(|| corrupt(format!("entry {index} is missing")))?;
        let leaf = store.leaf_hash(&entry);
        let findings = replay
            .push(index, &leaf, &entry, &mut InMemory)
            .map_err(|e| corrupt(e.to_string()))?;
        for f in findings {
            match f {
                Finding::Log { index, detail } => {
                    return Err(corrupt(format!("entry {index}: {detail}")));
                }
                Finding::Lifecycle { .. } => lifecycle += 1,
            }
        }
    }
    let pos = replay.position().clone();
    if let Some(l) = pos.last_map_root
        && l + 1 != size
    {
        return Err(corrupt(format!(
            "entries {}..{size} come after the last map-root entry ({l}): they are in no signed map",
            l + 1
        )));
    }
    let stored_last = match store.get_index(LAST_ROW)? {
        Some(v) => Some(
            MapRoot::from_row(&v)
                .ok_or_else(|| corrupt("m/map-last is not index ‖ root ‖ count".into()))?,
        ),
        None => None,
    };
    let derived_last = pos.last_map_root.map(|index| MapRoot {
        index,
        root: replay.tree().root(),
        vcons: replay.tree().len() as u64,
    });
    if stored_last != derived_last {
        return Err(corrupt(format!(
            "m/map-last is {stored_last:?}; the log's last map root is {derived_last:?}"
        )));
    }
    let mut want: std::collections::HashMap<Key, Vec<u8>> = replay
        .held_states()
        .map(|(k, _, s)| (*k, s.to_cbor()))
        .collect();
    let mut rows = 0u64;
    for row in state_rows(store)? {
        let (key, v) = row?;
        match want.remove(&key) {
            Some(w) if w == *v => rows += 1,
            Some(_) => {
                return Err(corrupt(format!(
                    "the state row of key {} differs from the state the log gives",
                    hex::encode(key)
                )));
            }
            None => {
                return Err(corrupt(format!(
                    "a state row for key {} names a vCon the log has no entry for",
                    hex::encode(key)
                )));
            }
        }
    }
    if let Some(key) = want.keys().next() {
        return Err(corrupt(format!(
            "{} vCon(s) of the log have no state row (key {} among them)",
            want.len(),
            hex::encode(key)
        )));
    }
    Ok(MapFsckReport {
        vcons: rows,
        vcon_entries: pos.vcon_entries,
        map_roots: pos.map_roots,
        last_map_root: pos.last_map_root,
        lifecycle_findings: lifecycle,
        signatures_checked: keys.is_some(),
        issuer_signatures_checked: pos.issuer_signatures_checked,
        issuer_signatures_unchecked: pos.issuer_signatures_unchecked,
    })
}
