//! The writer's per-entry rows, derived again by a follower (a read replica
//! now, a standby or a restore later) from the entries alone: the vCon index
//! (`vcon_index::rows`), the registration policy row, registration
//! identities, and the vCon map's state rows and map root. With them a
//! follower answers the vCon views (history, consent, lineage, events,
//! proof bundles) from the same rows and code as the writer, and its store
//! is a writer's store.
//!
//! The map is not taken on trust: the entries are replayed through the
//! monitor's map function (core `vcon::replay`), which checks every
//! map-root entry the writer signed against the map of the log before it,
//! every policy entry's signature, and every statement's issuer signature
//! against the policy in force. A finding about the log refuses the append
//! (the follower's caller raises an alarm): a follower never serves a map
//! the writer's own entries contradict. Lifecycle findings (an issuer's
//! conduct, not the log's) are the monitor's to report.
//!
//! Every row goes into the append's one `WriteBatch` (`log::follower`), with
//! the replay's position (`m/follow-replay`), so a restart resumes exactly
//! where the last synced append ended.

use std::collections::HashSet;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::keys::KeySet;
use crate::log::follower::Beside;
use crate::log::store::CF_INDEX;
use crate::log::{LogError, Store};
use crate::map::{Key, MapTree};
use crate::merkle::Hash;
use crate::statement::{self, IdentityRule, SignedStatement};
use crate::vcon::consent::Delegates;
use crate::vcon::policy::POLICY_SUBJECT;
use crate::vcon::proof::{MAP_ROOT_SUBJECT, record_of};
use crate::vcon::replay::{Finding, MapReplay, ReplayPosition, StateSource};
use crate::vcon::state::VconState;
use crate::vcon_map::MapRoot;

/// Where the replay stands, written with every append.
const POSITION_ROW: &[u8] = b"m/follow-replay";

/// Entries replayed per write when catching up over entries already stored.
const CATCH_UP_CHUNK: u64 = 4096;

#[derive(Serialize, Deserialize)]
struct Saved {
    pos: ReplayPosition,
    /// True when the append ended right after a map-root entry: the stored
    /// states are then exactly the tree of the last map root.
    at_map_root: bool,
    policy_entry: Option<String>,
}

/// The vCon states the store holds (the replay's [`StateSource`]).
struct StoredStates<'a>(&'a Store);

impl StateSource for StoredStates<'_> {
    fn state(&mut self, key: &Key) -> Result<Option<VconState>, String> {
        crate::vcon_map::VconMap::state_row(self.0, key)
            .map_err(|e| e.to_string())?
            .map(|v| VconState::from_cbor(&v).map_err(|e| e.to_string()))
            .transpose()
    }
}

pub struct VconFollower {
    replay: MapReplay,
    /// The entry id of the registration policy in force (what the writer
    /// records in each history row).
    policy_entry: Option<String>,
    /// The last map root, as stored after the last append.
    last: Option<MapRoot>,
    /// The map root met during the current append, stored at its end.
    staged_last: Option<MapRoot>,
    /// Identities written by the current append (the first entry with an
    /// identity owns it, as in the writer).
    identities: HashSet<Hash>,
}

impl VconFollower {
    /// Resumes at the stored position, first replaying any entries stored
    /// without their rows (a cache made before followers derived them).
    pub fn open(store: &Store, service_keys: KeySet) -> Result<VconFollower, LogError> {
        let saved: Option<Saved> = store
            .get_index(POSITION_ROW)?
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| LogError::Corrupt(format!("m/follow-replay: {e}")))
            })
            .transpose()?;
        let (pos, at_map_root, policy_entry) = match saved {
            Some(s) => (s.pos, s.at_map_root, s.policy_entry),
            None => (ReplayPosition::default(), true, None),
        };
        let (tree, last) = crate::vcon_map::load(store, at_map_root)?;
        let mut follower = VconFollower {
            replay: MapReplay::resume(Some(service_keys), pos, tree),
            policy_entry,
            last,
            staged_last: None,
            identities: HashSet::new(),
        };
        follower.catch_up(store)?;
        Ok(follower)
    }

    /// Replays the stored entries the position has not reached.
    fn catch_up(&mut self, store: &Store) -> Result<(), LogError> {
        let size = store.data_size()?;
        while self.replay.position().next_index < size {
            let from = self.replay.position().next_index;
            let to = size.min(from.saturating_add(CATCH_UP_CHUNK));
            let mut wb = WriteBatch::default();
            for index in from..to {
                let entry = store
                    .entry(index)?
                    .ok_or_else(|| LogError::Corrupt(format!("entry {index} is missing")))?;
                let leaf = store.leaf_hash(&entry);
                self.entry(store, &mut wb, index, &leaf, &entry)?;
            }
            self.finish(store, &mut wb)?;
            store.write_synced(wb)?;
        }
        Ok(())
    }

    /// The consent delegates of the policy in force.
    pub fn delegates(&self) -> &Delegates {
        &self.replay.position().delegates
    }

    pub fn policy_entry(&self) -> Option<&str> {
        self.policy_entry.as_deref()
    }

    /// The map as of the last map root (between appends).
    pub fn tree(&self) -> &MapTree {
        self.replay.tree()
    }

    pub fn last(&self) -> Option<MapRoot> {
        self.last
    }

    fn put_index(
        store: &Store,
        wb: &mut WriteBatch,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), LogError> {
        wb.put_cf(store.cf(CF_INDEX)?, key, value);
        Ok(())
    }

    fn put_identity(
        &mut self,
        store: &Store,
        wb: &mut WriteBatch,
        index: u64,
        leaf: &Hash,
        entry: &[u8],
    ) -> Result<(), LogError> {
        let Some(id) = statement::entry_registration_identity(entry) else {
            return Ok(());
        };
        if self.identities.contains(&id) || store.identity(&id)?.is_some() {
            return Ok(());
        }
        self.identities.insert(id);
        store.put_identity(wb, &id, index, leaf)
    }
}

impl Beside for VconFollower {
    fn entry(
        &mut self,
        store: &Store,
        wb: &mut WriteBatch,
        index: u64,
        leaf: &Hash,
        entry: &[u8],
    ) -> Result<(), LogError> {
        let findings = self
            .replay
            .push(index, leaf, entry, &mut StoredStates(store))
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        if let Some(Finding::Log { index, detail }) = findings.into_iter().find(Finding::is_log) {
            return Err(LogError::Corrupt(format!(
                "entry {index} contradicts the log: {detail}"
            )));
        }
        let Ok(st) = SignedStatement::parse_with(entry, usize::MAX, IdentityRule::Optional) else {
            return Ok(());
        };
        let entry_id = statement::entry_id(leaf);
        if st.subject == MAP_ROOT_SUBJECT {
            // Checked by the replay: the service signed this very map.
            self.staged_last = Some(MapRoot {
                index,
                root: self.replay.tree().root(),
                vcons: self.replay.tree().len() as u64,
            });
            return Ok(());
        }
        self.put_identity(store, wb, index, leaf, entry)?;
        let rows = if st.subject == POLICY_SUBJECT {
            let hash = hex::encode(crate::merkle::sha256(&[st.payload()]));
            self.policy_entry = Some(entry_id.clone());
            crate::vcon_index::policy_row(&hash, &entry_id)
        } else {
            match record_of(entry) {
                Ok(record) => {
                    crate::vcon_index::rows(&record, &entry_id, self.policy_entry.as_deref())
                }
                Err(_) => return Ok(()),
            }
        };
        for (prefix, value) in &rows.by_index {
            let key = [prefix.as_slice(), &index.to_be_bytes()].concat();
            Self::put_index(store, wb, &key, value)?;
        }
        for (key, value) in &rows.fixed {
            Self::put_index(store, wb, key, value)?;
        }
        Ok(())
    }

    fn finish(&mut self, store: &Store, wb: &mut WriteBatch) -> Result<(), LogError> {
        let states: Vec<(Key, Vec<u8>)> = self
            .replay
            .take_changed()
            .into_iter()
            .map(|(k, _, s)| (k, s.to_cbor()))
            .collect();
        let rows = match self.staged_last.take() {
            Some(last) => {
                self.last = Some(last);
                crate::vcon_map::closing_rows(states, last)
            }
            None => crate::vcon_map::state_rows_of(states),
        };
        for (k, v) in &rows {
            Self::put_index(store, wb, k, v)?;
        }
        let saved = Saved {
            pos: self.replay.position().clone(),
            at_map_root: self.replay.at_map_root(),
            policy_entry: self.policy_entry.clone(),
        };
        let v = serde_json::to_vec(&saved).map_err(|e| LogError::Corrupt(e.to_string()))?;
        Self::put_index(store, wb, POSITION_ROW, &v)?;
        // Its rows are the current kind: nothing for a writer to migrate.
        Self::put_index(store, wb, crate::vcon_index::FACTS_MIGRATED, &[])?;
        self.identities.clear();
        Ok(())
    }
}
