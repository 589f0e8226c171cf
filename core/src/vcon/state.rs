//! The per-vCon state a verifiable map commits to (issue 14,
//! spec-notes/vcon-map.md): the map function folds each lifecycle entry of
//! a vCon, in log order, into one [`VconState`]; the map's value for the vCon
//! is SHA-256 of the state's deterministic CBOR. The same fold runs in the
//! sequencer (one entry at a time), in `fsck` and a monitor (the whole log),
//! and in `vcon-verify` (over a bundle's complete history), so a server that
//! shows a history other than the one it committed to is caught by anyone.
//!
//! What the state holds, and why each part:
//! - `entries` and `chain`: a hash chain over the vCon's entries
//!   (`chain' = SHA-256(tag ‖ chain ‖ u64be(index) ‖ leaf)`, from 32 zero
//!   bytes). The leaf binds the whole statement (event, issuer, occurred_at,
//!   payload), so the chain commits to the exact ordered history: one
//!   omitted, added or reordered entry changes it. Histories are short (tens
//!   of entries), so a chain is enough: a verifier is given all of them.
//! - `controller`, `deleted_at`: the two facts the lifecycle rules need.
//! - `consent`: per issuer whose changes can count, per purpose, its latest
//!   change by [`precedence`]: exactly the input [`consent_state`] accepts
//!   ("each (issuer, purpose)'s latest change"), so the consent answer read
//!   from a state is the state machine's, not a second implementation.
//!   Until the controller is known every issuer's changes are kept (they
//!   count once their issuer turns out to be the controller or its
//!   delegate); once it is, only the controller's and its delegates'.
//! - `derived_from`: the lineage edges this vCon's statements declare.

use std::collections::{BTreeMap, BTreeSet};

use ciborium::value::Value;

use super::consent::{
    ConsentEvent, ConsentState, Delegates, Precedence, consent_state, precedence,
};
use super::profile::{Event, LifecycleRecord};
use crate::cbor::{self, int};
use crate::merkle::{Hash, sha256};

/// Domain tag of the history chain.
const CHAIN_TAG: &[u8] = b"vcon-scitt/map/history/v1";
/// Domain tag of the map key (key function 1).
const KEY_TAG: &[u8] = b"vcon-scitt/map/key/v1";

/// The map key of a vCon (key function 1): `SHA-256(tag ‖ uuid as 16
/// bytes)`. Anyone who knows the uuid computes it, which is what lets a
/// verifier check an absence proof; it hides nothing (statements carry the
/// uuid in clear). None for a string that is not a uuid.
pub fn map_key(uuid: &str) -> Option<Hash> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || uuid.len() != 36 {
        return None;
    }
    let bytes = hex::decode(hex.to_ascii_lowercase()).ok()?;
    Some(sha256(&[KEY_TAG, &bytes]))
}

/// The map value of an encoded state record: its SHA-256.
pub fn state_value(encoded: &[u8]) -> Hash {
    sha256(&[encoded])
}

/// One link of the history chain.
pub fn chain_link(chain: &Hash, index: u64, leaf: &Hash) -> Hash {
    sha256(&[CHAIN_TAG, chain, &index.to_be_bytes(), leaf])
}

/// One consent change as the state keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub occurred_at_ms: i64,
    pub revoked: bool,
    pub index: u64,
    /// The entry's leaf hash (its entry id).
    pub leaf: Hash,
}

impl Change {
    fn precedence(&self) -> Precedence {
        precedence(self.occurred_at_ms, self.revoked, self.index)
    }
}

/// The state of one vCon after a prefix of the log (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VconState {
    pub entries: u64,
    pub chain: Hash,
    pub first_index: u64,
    pub last_index: u64,
    pub controller: Option<String>,
    pub deleted_at: Option<u64>,
    /// issuer → purpose → latest change.
    pub consent: BTreeMap<String, BTreeMap<String, Change>>,
    /// (relation, uuid) edges, each once.
    pub derived_from: BTreeSet<(String, String)>,
}

/// Why stored or received state bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vCon state record: {0}")]
pub struct StateError(pub String);

impl VconState {
    /// Folds the entry at `index` (leaf `leaf`, lifecycle record `record`)
    /// into the state. Entries must come in log order; `delegates` is the
    /// registration policy's `consent_delegates`.
    pub fn fold(
        &mut self,
        index: u64,
        leaf: &Hash,
        record: &LifecycleRecord,
        delegates: &Delegates,
    ) {
        if self.entries == 0 {
            self.first_index = index;
        }
        self.entries = self.entries.saturating_add(1);
        self.chain = chain_link(&self.chain, index, leaf);
        self.last_index = index;
        if record.event == Event::Created && self.controller.is_none() {
            self.controller = Some(record.iss.clone());
            // From now on only the controller's and its delegates' changes
            // can count: drop everyone else's (they never will).
            let keep = super::consent::Authority::issuers(&record.iss, delegates);
            self.consent.retain(|iss, _| keep.contains(iss));
        }
        if record.event == Event::Deleted && self.deleted_at.is_none() {
            self.deleted_at = Some(index);
        }
        if let Some(d) = &record.derived_from {
            self.derived_from
                .insert((d.relation.clone(), d.uuid.to_ascii_lowercase()));
        }
        let (Some(c), Some(at)) = (&record.consent, record.occurred_at_ms) else {
            return;
        };
        if let Some(controller) = &self.controller
            && !super::consent::Authority::of(&record.iss, Some(controller), delegates).counts()
        {
            return;
        }
        let by_purpose = self.consent.entry(record.iss.clone()).or_default();
        for (list, revoked) in [(&c.granted, false), (&c.revoked, true)] {
            for purpose in list {
                let change = Change {
                    occurred_at_ms: at,
                    revoked,
                    index,
                    leaf: *leaf,
                };
                if by_purpose
                    .get(purpose)
                    .is_some_and(|old| old.precedence() >= change.precedence())
                {
                    continue;
                }
                by_purpose.insert(purpose.clone(), change);
            }
        }
    }

    /// The consent state machine's answer over this state (latest; an
    /// `as_of` answer needs the history itself).
    pub fn consent_state(&self, uuid: &str, delegates: &Delegates) -> ConsentState {
        let events: Vec<ConsentEvent> = self
            .consent
            .iter()
            .flat_map(|(iss, purposes)| {
                purposes.iter().map(move |(purpose, c)| ConsentEvent {
                    index: c.index,
                    entry_id: hex::encode(c.leaf),
                    iss: iss.clone(),
                    occurred_at_ms: c.occurred_at_ms,
                    occurred_at: Some(crate::time::format_ms(c.occurred_at_ms)),
                    granted: if c.revoked {
                        vec![]
                    } else {
                        vec![purpose.clone()]
                    },
                    revoked: if c.revoked {
                        vec![purpose.clone()]
                    } else {
                        vec![]
                    },
                })
            })
            .collect();
        consent_state(&events, uuid, self.controller.as_deref(), delegates, None)
    }

    /// Deterministic CBOR (`proto/vcon-map.cddl`): integer keys in order,
    /// maps and sets in their sorted order, shortest integer forms.
    pub fn to_cbor(&self) -> Vec<u8> {
        let text = |s: &str| Value::Text(s.to_owned());
        let opt_u64 = |v: Option<u64>| v.map_or(Value::Null, |i| int(i as i64));
        let consent = self
            .consent
            .iter()
            .map(|(iss, purposes)| {
                let ps = purposes
                    .iter()
                    .map(|(p, c)| {
                        (
                            text(p),
                            Value::Array(vec![
                                int(c.occurred_at_ms),
                                Value::Bool(c.revoked),
                                Value::Integer(c.index.into()),
                                Value::Bytes(c.leaf.to_vec()),
                            ]),
                        )
                    })
                    .collect();
                (text(iss), Value::Map(ps))
            })
            .collect();
        let lineage = self
            .derived_from
            .iter()
            .map(|(r, u)| Value::Array(vec![text(r), text(u)]))
            .collect();
        cbor::encode(&Value::Map(vec![
            (int(1), Value::Integer(self.entries.into())),
            (int(2), Value::Bytes(self.chain.to_vec())),
            (int(3), Value::Integer(self.first_index.into())),
            (int(4), Value::Integer(self.last_index.into())),
            (int(5), self.controller.as_deref().map_or(Value::Null, text)),
            (int(6), opt_u64(self.deleted_at)),
            (int(7), Value::Map(consent)),
            (int(8), Value::Array(lineage)),
        ]))
    }

    /// The map value: `SHA-256(to_cbor())`.
    pub fn value(&self) -> Hash {
        state_value(&self.to_cbor())
    }

    /// Reads a state record; only the exact encoding [`Self::to_cbor`]
    /// writes is accepted (re-encoded and compared), so one state has one
    /// value.
    pub fn from_cbor(bytes: &[u8]) -> Result<VconState, StateError> {
        let bad = |m: &str| StateError(m.to_owned());
        let v = cbor::decode(bytes).map_err(|e| StateError(e.to_string()))?;
        let Value::Map(m) = v else {
            return Err(bad("not a map"));
        };
        let get = |k: i64| cbor::map_get(&m, k).ok_or_else(|| StateError(format!("no field {k}")));
        let u = |k: i64| {
            get(k).and_then(|v| {
                cbor::as_u64(v).ok_or_else(|| StateError(format!("field {k} is not a uint")))
            })
        };
        let hash = |v: &Value| -> Result<Hash, StateError> {
            v.as_bytes()
                .and_then(|b| b.as_slice().try_into().ok())
                .ok_or_else(|| bad("a hash is not 32 bytes"))
        };
        let mut s = VconState {
            entries: u(1)?,
            chain: hash(get(2)?)?,
            first_index: u(3)?,
            last_index: u(4)?,
            ..VconState::default()
        };
        s.controller = match get(5)? {
            Value::Null => None,
            Value::Text(t) => Some(t.clone()),
            _ => return Err(bad("controller is not text or null")),
        };
        s.deleted_at = match get(6)? {
            Value::Null => None,
            v => Some(cbor::as_u64(v).ok_or_else(|| bad("deleted_at is not a uint"))?),
        };
        let Value::Map(consent) = get(7)? else {
            return Err(bad("consent is not a map"));
        };
        for (iss, purposes) in consent {
            let (Value::Text(iss), Value::Map(purposes)) = (iss, purposes) else {
                return Err(bad("consent is not issuer → purposes"));
            };
            let mut out = BTreeMap::new();
            for (p, c) in purposes {
                let (Value::Text(p), Value::Array(c)) = (p, c) else {
                    return Err(bad("a purpose is not text → change"));
                };
                let [at, revoked, index, leaf] = c.as_slice() else {
                    return Err(bad(
                        "a change is not [occurred_at_ms, revoked, index, leaf]",
                    ));
                };
                let change = Change {
                    occurred_at_ms: cbor::as_i64(at).ok_or_else(|| bad("occurred_at_ms"))?,
                    revoked: revoked.as_bool().ok_or_else(|| bad("revoked"))?,
                    index: cbor::as_u64(index).ok_or_else(|| bad("index"))?,
                    leaf: hash(leaf)?,
                };
                out.insert(p.clone(), change);
            }
            s.consent.insert(iss.clone(), out);
        }
        let Value::Array(lineage) = get(8)? else {
            return Err(bad("lineage is not an array"));
        };
        for e in lineage {
            let Value::Array(e) = e else {
                return Err(bad("a lineage edge is not an array"));
            };
            let [Value::Text(r), Value::Text(u)] = e.as_slice() else {
                return Err(bad("a lineage edge is not [relation, uuid]"));
            };
            s.derived_from.insert((r.clone(), u.clone()));
        }
        if s.to_cbor() != bytes {
            return Err(bad("not in the one deterministic encoding"));
        }
        Ok(s)
    }
}

/// The state of one vCon over its complete history, folded from scratch:
/// what a verifier recomputes from a bundle and compares with the map.
pub fn fold_history<'a>(
    history: impl IntoIterator<Item = (u64, &'a Hash, &'a LifecycleRecord)>,
    delegates: &Delegates,
) -> VconState {
    let mut s = VconState::default();
    for (index, leaf, record) in history {
        s.fold(index, leaf, record, delegates);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcon::consent::{HistoryItem, consent};
    use crate::vcon::profile::ConsentChange;
    use proptest::prelude::*;

    const ISSUERS: [&str; 3] = [
        "https://a.test.example",
        "https://b.test.example",
        "https://c.test.example",
    ];
    const PURPOSES: [&str; 3] = ["analysis", "training", "*"];

    /// (event kind, issuer, minute, purposes bitmask)
    fn step() -> impl Strategy<Value = (u8, usize, i64, u8)> {
        (0u8..5, 0usize..3, 0i64..20, 1u8..8)
    }

    fn record(kind: u8, iss: &str, minute: i64, mask: u8) -> LifecycleRecord {
        let purposes: Vec<String> = (0..3)
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| PURPOSES[b].to_owned())
            .collect();
        let at = format!("2026-11-30T10:{minute:02}:00Z");
        let (event, consent) = match kind {
            0 => (Event::Created, None),
            1 => (
                Event::ConsentAccepted,
                Some(ConsentChange {
                    granted: purposes,
                    ..ConsentChange::default()
                }),
            ),
            2 => (
                Event::ConsentRevoked,
                Some(ConsentChange {
                    revoked: purposes,
                    ..ConsentChange::default()
                }),
            ),
            3 => (Event::Deleted, None),
            _ => (Event::Accessed, None),
        };
        LifecycleRecord {
            vcon_uuid: "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11".into(),
            event,
            iss: iss.into(),
            occurred_at_ms: crate::time::parse_rfc3339_ms(&at),
            occurred_at: Some(at),
            vcon_hash: Vec::new(),
            consent,
            derived_from: None,
            counterparty: None,
            deletion: None,
            form: "lifecycle".into(),
        }
    }

    fn item(index: u64, leaf: &Hash, r: &LifecycleRecord) -> HistoryItem {
        HistoryItem {
            index,
            entry_id: hex::encode(leaf),
            event: r.event,
            iss: r.iss.clone(),
            occurred_at: r.occurred_at.clone(),
            registered_at: None,
            vcon_hash: Vec::new(),
            receipt: String::new(),
            form: r.form.clone(),
            consent: r.consent.clone(),
            consent_authority: None,
            derived_from: None,
            counterparty: None,
            policy_entry: None,
            anomalies: Vec::new(),
        }
    }

    fn delegates() -> Delegates {
        let mut d = Delegates::new();
        d.insert(ISSUERS[0].into(), vec![ISSUERS[1].into()]);
        d
    }

    proptest! {
        /// The consent answer read from the incrementally folded state is
        /// the state machine's answer over the whole history, whatever the
        /// order of creation, consent changes by authorized and other
        /// issuers, ties and "*" changes.
        #[test]
        fn the_state_answers_consent_as_the_whole_history_does(steps in proptest::collection::vec(step(), 0..40)) {
            let d = delegates();
            let records: Vec<LifecycleRecord> = steps
                .iter()
                .map(|&(k, i, m, p)| record(k, ISSUERS[i], m, p))
                .collect();
            let leaves: Vec<Hash> = (0..records.len()).map(|i| sha256(&[&(i as u64).to_be_bytes()])).collect();
            let mut state = VconState::default();
            let mut items = Vec::new();
            for (i, r) in records.iter().enumerate() {
                let index = 10 + 3 * i as u64;
                state.fold(index, &leaves[i], r, &d);
                items.push(item(index, &leaves[i], r));
            }
            let uuid = "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11";
            let from_state = state.consent_state(uuid, &d);
            let from_history = consent(&items, uuid, &d, None);
            prop_assert_eq!(from_state.state, from_history.state);
            prop_assert_eq!(&from_state.controller, &from_history.controller);
            prop_assert_eq!(from_state.purposes.len(), from_history.purposes.len());
            for (p, s) in &from_history.purposes {
                let t = &from_state.purposes[p];
                prop_assert_eq!((t.status, &t.entry_id, &t.iss), (s.status, &s.entry_id, &s.iss));
            }
            // The record round-trips through its one encoding.
            prop_assert_eq!(VconState::from_cbor(&state.to_cbor()).unwrap(), state.clone());
            // Omitting any one entry changes the committed value.
            for skip in 0..records.len() {
                let mut other = VconState::default();
                for (i, r) in records.iter().enumerate().filter(|(i, _)| *i != skip) {
                    other.fold(10 + 3 * i as u64, &leaves[i], r, &d);
                }
                prop_assert_ne!(other.value(), state.value());
            }
        }
    }

    #[test]
    fn map_keys_are_for_uuids_only_and_case_blind() {
        let a = map_key("0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11").unwrap();
        assert_eq!(map_key("0190C2F2-6D4E-7A45-9B1E-2F0D7C9E4A11"), Some(a));
        assert_eq!(map_key("0190c2f26d4e7a459b1e2f0d7c9e4a11"), None);
        assert_eq!(map_key("not-a-uuid"), None);
        // Known answer: SHA-256("vcon-scitt/map/key/v1" ‖ the 16 bytes).
        let mut raw = b"vcon-scitt/map/key/v1".to_vec();
        raw.extend(hex::decode("0190c2f26d4e7a459b1e2f0d7c9e4a11").unwrap());
        assert_eq!(a, sha256(&[&raw]));
    }

    #[test]
    fn only_the_one_encoding_is_a_state() {
        let mut s = VconState::default();
        s.fold(5, &[7; 32], &record(0, ISSUERS[0], 1, 1), &delegates());
        let good = s.to_cbor();
        assert_eq!(VconState::from_cbor(&good).unwrap(), s);
        // The same map with a non-shortest integer for field 1.
        let mut long = good.clone();
        let at = long.iter().position(|&b| b == 0x01).unwrap();
        long.splice(at + 1..at + 2, [0x18, 0x01]);
        assert!(VconState::from_cbor(&long).is_err());
        assert!(VconState::from_cbor(&good[..good.len() - 1]).is_err());
        assert!(VconState::from_cbor(b"\xa0").is_err());
    }
}
