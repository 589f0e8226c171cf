//! The map function replayed over a log, entry by entry: what a monitor and
//! `fsck` run to recompute the vCon map from the log alone and hold every
//! map root the service signed against it (issue 14, spec-notes/vcon-map.md,
//! "Anyone can recompute the map").
//!
//! Sans-IO: the caller feeds entries in log order with their leaf hashes
//! (it knows the log's leaf rule and keeps the Merkle tree itself) and
//! supplies the vCon states it persisted ([`StateSource`]); the replay
//! returns what it found wrong, each finding with its leaf index.
//!
//! What the replay decides per entry:
//! - a **map-root entry** (subject [`MAP_ROOT_SUBJECT`]): signed by a service
//!   key, its payload names its own index, chains to the previous map root,
//!   and its root and vCon count equal the map the replay computed over
//!   everything before it. A mismatch is a [`Finding::Log`]: the service
//!   signed a map that is not the log's.
//! - a **policy entry** ([`POLICY_SUBJECT`]): signed by a service key; its
//!   `consent_delegates` apply from the next entry on (the sequencer folds
//!   with the delegates of the policy registered at its start).
//! - a **vCon lifecycle entry** (what [`record_of`] derives, as the bundle
//!   verifier does): the lifecycle rules are checked against the vCon's
//!   state *before* it ([`Finding::Lifecycle`]), then it is folded.
//! - anything else is not part of the map.

use std::collections::{BTreeSet, HashMap};

use super::consent::{ConsentStatus, Delegates, PurposeStatus};
use super::policy::POLICY_SUBJECT;
use super::profile::{Event, LifecycleRecord};
use super::proof::{MAP_ROOT_SUBJECT, MapRootPayload, record_of};
use super::state::{VconState, map_key};
use crate::issuers::IssuerTrust;
use crate::keys::KeySet;
use crate::map::{Key, MapTree};
use crate::merkle::Hash;
use crate::statement::{IdentityRule, SignedStatement};

/// Something the replay found wrong, with the leaf index of the entry that
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// The log contradicts itself: a map root that is not the map of the
    /// log before it, or a service entry not signed by the service. Only the
    /// service can cause these.
    Log { index: u64, detail: String },
    /// An issuer broke a lifecycle rule the log makes visible (an event
    /// after deletion, processing after consent was withdrawn). The log is
    /// honest about it; the issuer's conduct is the finding.
    Lifecycle {
        index: u64,
        vcon: String,
        event: String,
        detail: String,
    },
}

impl Finding {
    pub fn index(&self) -> u64 {
        match self {
            Finding::Log { index, .. } | Finding::Lifecycle { index, .. } => *index,
        }
    }

    pub fn is_log(&self) -> bool {
        matches!(self, Finding::Log { .. })
    }
}

/// The caller's misuse or its storage failing (not a finding about the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("entry {got} fed to the replay, which expects entry {want} next")]
    OutOfOrder { got: u64, want: u64 },
    #[error("reading a vCon state: {0}")]
    State(String),
}

/// Where the replay reads the state of a vCon it does not hold in memory
/// (the caller's persisted states).
pub trait StateSource {
    fn state(&mut self, key: &Key) -> Result<Option<VconState>, String>;
}

/// No persisted states: everything the replay has seen is in memory.
pub struct InMemory;

impl StateSource for InMemory {
    fn state(&mut self, _: &Key) -> Result<Option<VconState>, String> {
        Ok(None)
    }
}

/// Where a replay stands between map-root entries: enough, with the vCon
/// states, to resume it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReplayPosition {
    /// The next entry the replay expects.
    pub next_index: u64,
    /// Index of the last map-root entry seen.
    pub last_map_root: Option<u64>,
    pub delegates: Delegates,
    /// Map-root entries checked so far.
    pub map_roots: u64,
    /// vCon lifecycle entries folded so far.
    pub vcon_entries: u64,
    /// The issuers and their keys (JWK) of the policy in force: what every
    /// later statement's signature is checked against. None before the
    /// first policy entry.
    pub issuers: Option<Vec<(String, Vec<serde_json::Value>)>>,
    /// Statements whose issuer signature was checked against the policy's
    /// keys, and those that could not be (an X.509 chain: the policy
    /// publishes only its anchors' fingerprints; or no policy yet).
    pub issuer_signatures_checked: u64,
    pub issuer_signatures_unchecked: u64,
}

pub struct MapReplay {
    /// None: signatures are not checked (an `fsck` without the key set).
    service_keys: Option<KeySet>,
    /// The issuer keys of the policy in force (built from `pos.issuers`).
    trust: Option<IssuerTrust>,
    tree: MapTree,
    pos: ReplayPosition,
    /// States changed since the caller last took them ([`Self::take_changed`]).
    changed: HashMap<Key, (String, VconState)>,
    /// Keys changed since the last map-root entry (not yet in the tree).
    pending: BTreeSet<Key>,
}

impl MapReplay {
    /// A replay from entry 0; with no keys, service signatures are not
    /// checked.
    pub fn new(service_keys: Option<KeySet>) -> MapReplay {
        Self::resume(service_keys, ReplayPosition::default(), MapTree::new())
    }

    /// A replay resumed at `pos` with the tree rebuilt from the persisted
    /// states (the caller checks its root against the last map root).
    pub fn resume(service_keys: Option<KeySet>, pos: ReplayPosition, tree: MapTree) -> MapReplay {
        MapReplay {
            trust: pos.issuers.as_deref().map(issuer_trust),
            service_keys,
            tree,
            pos,
            changed: HashMap::new(),
            pending: BTreeSet::new(),
        }
    }

    pub fn position(&self) -> &ReplayPosition {
        &self.pos
    }

    pub fn tree(&self) -> &MapTree {
        &self.tree
    }

    /// True right after a map-root entry: every folded state is in the
    /// tree, so persisted states and the tree agree.
    pub fn at_map_root(&self) -> bool {
        self.pending.is_empty()
    }

    /// The states changed since the last call, each with its vCon uuid.
    pub fn take_changed(&mut self) -> Vec<(Key, String, VconState)> {
        self.changed.drain().map(|(k, (u, s))| (k, u, s)).collect()
    }

    /// Every state the replay holds in memory (all of them when nothing was
    /// taken and the source is [`InMemory`]).
    pub fn held_states(&self) -> impl Iterator<Item = (&Key, &str, &VconState)> {
        self.changed.iter().map(|(k, (u, s))| (k, u.as_str(), s))
    }

    /// Feeds entry `index` (its stored bytes and leaf hash).
    pub fn push(
        &mut self,
        index: u64,
        leaf: &Hash,
        entry: &[u8],
        src: &mut dyn StateSource,
    ) -> Result<Vec<Finding>, ReplayError> {
        if index != self.pos.next_index {
            return Err(ReplayError::OutOfOrder {
                got: index,
                want: self.pos.next_index,
            });
        }
        self.pos.next_index = index.saturating_add(1);
        let mut findings = Vec::new();
        let Ok(st) = SignedStatement::parse_with(entry, usize::MAX, IdentityRule::Optional) else {
            return Ok(findings);
        };
        if st.subject == MAP_ROOT_SUBJECT {
            self.map_root(index, &st, &mut findings);
            return Ok(findings);
        }
        if st.subject == POLICY_SUBJECT {
            self.policy(index, &st, &mut findings);
            return Ok(findings);
        }
        self.issuer_signature(index, &st, &mut findings);
        if let Ok(record) = record_of(entry) {
            self.vcon(index, leaf, &record, src, &mut findings)?;
        }
        Ok(findings)
    }

    /// Every statement's issuer signature, against the keys the policy in
    /// force registered for its issuer (what the service checked when it
    /// accepted it). A statement whose key is not there, or whose signature
    /// fails, is a log finding: the service admitted what its own policy
    /// refuses.
    fn issuer_signature(&mut self, index: u64, st: &SignedStatement, findings: &mut Vec<Finding>) {
        let Some(trust) = &self.trust else {
            self.pos.issuer_signatures_unchecked += 1;
            return;
        };
        if !st.x5chain.is_empty() {
            self.pos.issuer_signatures_unchecked += 1;
            return;
        }
        let key = st
            .kid
            .as_deref()
            .and_then(|kid| trust.keys_for(&st.issuer).and_then(|ks| ks.get(kid)));
        let verdict = match key {
            None => Err(format!(
                "issuer {:?} has no key {} in the registration policy in force",
                st.issuer,
                st.kid.as_deref().map(hex::encode).unwrap_or_default()
            )),
            Some(k) => st.verify_signature(k).map_err(|e| {
                format!(
                    "the issuer signature of {:?} does not verify: {e}",
                    st.issuer
                )
            }),
        };
        match verdict {
            Ok(()) => self.pos.issuer_signatures_checked += 1,
            Err(detail) => findings.push(Finding::Log { index, detail }),
        }
    }

    /// True when a service key made the statement's signature.
    fn signed_by_service(&self, st: &SignedStatement) -> Result<(), String> {
        let Some(keys) = &self.service_keys else {
            return Ok(());
        };
        let kid = st.kid.as_deref().ok_or("it names no kid")?;
        let key = keys
            .get(kid)
            .ok_or_else(|| format!("kid {} is not a service key", hex::encode(kid)))?;
        st.verify_signature(key).map_err(|e| e.to_string())
    }

    fn map_root(&mut self, index: u64, st: &SignedStatement, findings: &mut Vec<Finding>) {
        let mut bad = |detail: String| findings.push(Finding::Log { index, detail });
        if let Err(e) = self.signed_by_service(st) {
            // Not the service's: not a map root, and nothing changes (the
            // finding is that the log admitted it under a reserved subject).
            return bad(format!(
                "an entry with the map-root subject not signed by the service: {e}"
            ));
        }
        // Bring the tree up to the log before this entry, whatever the
        // payload says: the replay's map is the truth it compares against.
        let items: Vec<(Key, Hash)> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter_map(|k| self.changed.get(&k).map(|(_, s)| (k, s.value())))
            .collect();
        if let Err(e) = self.tree.apply_batch(&items) {
            bad(format!("applying the vCon states to the map: {e}"));
        }
        let prev = self.pos.last_map_root.replace(index);
        self.pos.map_roots = self.pos.map_roots.saturating_add(1);
        let p = match MapRootPayload::from_cbor(st.payload()) {
            Ok(p) => p,
            Err(e) => return bad(e.to_string()),
        };
        if p.p != index {
            bad(format!(
                "the map-root entry at index {index} says it is at index {}",
                p.p
            ));
        }
        if p.prev != prev {
            bad(format!(
                "the map-root entry names {:?} as the previous map root; it was {prev:?}",
                p.prev
            ));
        }
        let root = self.tree.root();
        if p.root != root {
            bad(format!(
                "the service signed map root {}, but the map of the log before index {index} is {}",
                hex::encode(p.root),
                hex::encode(root)
            ));
        }
        if p.vcons != self.tree.len() as u64 {
            bad(format!(
                "the service says the map holds {} vCons; it holds {}",
                p.vcons,
                self.tree.len()
            ));
        }
    }

    fn policy(&mut self, index: u64, st: &SignedStatement, findings: &mut Vec<Finding>) {
        if let Err(e) = self.signed_by_service(st) {
            findings.push(Finding::Log {
                index,
                detail: format!(
                    "an entry with the policy subject not signed by the service (ignored): {e}"
                ),
            });
            return;
        }
        let doc = serde_json::from_slice::<serde_json::Value>(st.payload()).ok();
        let delegates = doc
            .as_ref()
            .and_then(|doc| match doc["rules"].get("consent_delegates") {
                None => Some(Delegates::new()),
                Some(d) => serde_json::from_value(d.clone()).ok(),
            });
        match delegates {
            Some(d) => self.pos.delegates = d,
            None => findings.push(Finding::Log {
                index,
                detail: "the policy entry's payload is not a policy document with readable consent_delegates".into(),
            }),
        }
        let issuers: Vec<(String, Vec<serde_json::Value>)> = doc
            .as_ref()
            .and_then(|d| d["issuers"].as_array())
            .map(|list| {
                list.iter()
                    .map(|i| {
                        (
                            i["iss"].as_str().unwrap_or_default().to_owned(),
                            i["keys"].as_array().cloned().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.trust = Some(issuer_trust(&issuers));
        self.pos.issuers = Some(issuers);
    }

    fn vcon(
        &mut self,
        index: u64,
        leaf: &Hash,
        record: &LifecycleRecord,
        src: &mut dyn StateSource,
        findings: &mut Vec<Finding>,
    ) -> Result<(), ReplayError> {
        let Some(key) = map_key(&record.vcon_uuid) else {
            return Ok(());
        };
        let mut state = match self.changed.remove(&key) {
            Some((_, s)) => s,
            None if self.tree.get(&key).is_none() => VconState::default(),
            None => src
                .state(&key)
                .map_err(ReplayError::State)?
                .unwrap_or_default(),
        };
        for detail in lifecycle_rules(&state, record, &self.pos.delegates) {
            findings.push(Finding::Lifecycle {
                index,
                vcon: record.vcon_uuid.clone(),
                event: record.event.name().into(),
                detail,
            });
        }
        state.fold(index, leaf, record, &self.pos.delegates);
        self.pos.vcon_entries = self.pos.vcon_entries.saturating_add(1);
        self.changed
            .insert(key, (record.vcon_uuid.to_ascii_lowercase(), state));
        self.pending.insert(key);
        Ok(())
    }
}

/// The issuer keys a policy document lists (a key that does not parse is
/// left out: statements signed with it then fail their check, visibly).
fn issuer_trust(issuers: &[(String, Vec<serde_json::Value>)]) -> IssuerTrust {
    let mut t = IssuerTrust::default();
    for (iss, keys) in issuers {
        for jwk in keys {
            if let Ok(k) = crate::keys::PublicKey::from_jwk(jwk) {
                t.add_issuer_key(iss, k, None);
            }
        }
    }
    t
}

/// Events that process a vCon's content: what consent governs.
fn is_processing(e: Event) -> bool {
    matches!(e, Event::Enhanced | Event::Sent | Event::Accessed)
}

/// The lifecycle rules, checked against the state before the entry:
/// - deleted is terminal: after the first `vcon_deleted`, only another
///   deletion or a receiver's purge may follow;
/// - no processing (`vcon_enhanced`, `vcon_sent`, `vcon_accessed`) after
///   consent was withdrawn for every purpose, when the processing says it
///   happened at or after the latest of those withdrawals. Lifecycle events
///   name no purpose, so a withdrawal of some purposes only cannot be
///   tied to a processing event; and an access registered late that says
///   it happened *before* the withdrawal is not flagged (the issuer's
///   `occurred_at` is all there is to judge by).
pub fn lifecycle_rules(
    before: &VconState,
    record: &LifecycleRecord,
    delegates: &Delegates,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(d) = before.deleted_at
        && !matches!(record.event, Event::Deleted | Event::RcvrPurged)
    {
        out.push(format!(
            "{} after vcon_deleted (index {d}): deleted is terminal",
            record.event.name()
        ));
    }
    if is_processing(record.event) && !before.consent.is_empty() {
        let c = before.consent_state(&record.vcon_uuid, delegates);
        if c.state == ConsentStatus::Revoked {
            let withdrawn_at = c
                .purposes
                .values()
                .filter(|p| p.status == PurposeStatus::Revoked)
                .filter_map(|p| p.occurred_at.as_deref())
                .filter_map(crate::time::parse_rfc3339_ms)
                .max();
            if let (Some(w), Some(at)) = (withdrawn_at, record.occurred_at_ms)
                && at >= w
            {
                out.push(format!(
                    "{} at {} after consent was withdrawn for every purpose (at {})",
                    record.event.name(),
                    record.occurred_at.as_deref().unwrap_or("?"),
                    crate::time::format_ms(w)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};
    use crate::statement::Builder;

    fn map_root_entry(key: &SigningKey, p: u64, root: Hash, prev: Option<u64>) -> Vec<u8> {
        let payload = MapRootPayload {
            p,
            root,
            prev,
            time_ms: 1,
            vcons: 0,
        }
        .to_cbor();
        let mut b = Builder::new(key, "https://service.example", MAP_ROOT_SUBJECT);
        b.issued_at = Some(1);
        let st = b.sign(&payload).unwrap();
        SignedStatement::parse(&st, usize::MAX)
            .unwrap()
            .entry_bytes()
    }

    /// Only the service's map roots move the replay: one signed by anyone
    /// else is a finding and changes nothing, so the service's next map
    /// root still chains (a forged one cannot derail a monitor).
    #[test]
    fn a_map_root_not_signed_by_the_service_changes_nothing() {
        let (service, _) = SigningKey::generate(Alg::Ed25519).unwrap();
        let (other, _) = SigningKey::generate(Alg::Ed25519).unwrap();
        let mut keys = KeySet::new();
        keys.insert(service.public(), None);
        let mut r = MapReplay::new(Some(keys));
        let empty = crate::map::EMPTY_ROOT;
        let forged = map_root_entry(&other, 0, [7; 32], None);
        let f = r.push(0, &[0; 32], &forged, &mut InMemory).unwrap();
        assert!(f.len() == 1 && f[0].is_log() && f[0].index() == 0, "{f:?}");
        assert_eq!(r.position().last_map_root, None);
        assert_eq!(r.position().map_roots, 0);
        let honest = map_root_entry(&service, 1, empty, None);
        assert_eq!(r.push(1, &[1; 32], &honest, &mut InMemory).unwrap(), vec![]);
        assert_eq!(r.position().last_map_root, Some(1));
        // The next one must chain to 1 and carry the replay's root.
        let wrong = map_root_entry(&service, 2, [9; 32], Some(1));
        let f = r.push(2, &[2; 32], &wrong, &mut InMemory).unwrap();
        assert!(
            f.len() == 1
                && matches!(&f[0], Finding::Log { detail, .. } if detail.contains("signed map root")),
            "{f:?}"
        );
        assert_eq!(
            r.push(5, &[0; 32], &honest, &mut InMemory),
            Err(ReplayError::OutOfOrder { got: 5, want: 3 })
        );
    }
}
