//! What proves a vCon's answer (issue 14, spec-notes/vcon-map.md): the
//! map-root entry the service appends to every batch, and the proof bundle
//! a relying party checks offline — "these are *all* of vCon X's entries
//! as of log size p" (or "vCon X has none"), and the consent state they
//! give. One implementation for the service (which builds them), the
//! verifier and the auditor.

use ciborium::value::Value;

use super::consent::{ConsentEvent, ConsentState, Delegates};
use super::profile::{LifecycleRecord, Profile};
use super::state::{VconState, map_key, state_value};
use crate::cbor::{self, int};
use crate::keys::KeySet;
use crate::merkle::{Hash, LeafRule};
use crate::statement::{IdentityRule, SignedStatement};

/// Subject of the map-root entries.
pub const MAP_ROOT_SUBJECT: &str = "urn:vcon-scitt:map-root";
/// Content type of their payload (`proto/vcon-map.cddl`, `map-root`).
pub const MAP_ROOT_CONTENT_TYPE: &str = "application/vnd.vcon-scitt.map-root+cbor";
/// The map's profile: tree format (torchwood mpt, SHA-256) and MapFn v1.
pub const MAP_PROFILE: &str = "vcon-scitt/map/v1";
/// Key function 1: [`map_key`].
pub const KEYFN_SHA256: u64 = 1;
/// Most entries one bundle lists.
pub const MAX_BUNDLE_ENTRIES: u64 = 10_000;

/// The payload of a map-root entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRootPayload {
    /// The entry's own index: the map is of `[0, p)`.
    pub p: u64,
    pub root: Hash,
    pub prev: Option<u64>,
    pub time_ms: u64,
    pub vcons: u64,
}

impl MapRootPayload {
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (int(1), Value::Text(MAP_PROFILE.into())),
            (int(2), Value::Integer(self.p.into())),
            (int(3), Value::Bytes(self.root.to_vec())),
            (int(4), Value::Integer(KEYFN_SHA256.into())),
            (
                int(5),
                self.prev.map_or(Value::Null, |i| Value::Integer(i.into())),
            ),
            (int(6), Value::Integer(self.time_ms.into())),
            (int(7), Value::Integer(self.vcons.into())),
        ]))
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<MapRootPayload, ProofError> {
        let bad = |m: &str| ProofError::Malformed(format!("map-root payload: {m}"));
        let Value::Map(m) = cbor::decode(bytes).map_err(|e| bad(&e.to_string()))? else {
            return Err(bad("not a map"));
        };
        let get = |k| cbor::map_get(&m, k).ok_or_else(|| bad(&format!("no field {k}")));
        if get(1)?.as_text() != Some(MAP_PROFILE) {
            return Err(bad("unknown profile"));
        }
        if cbor::as_u64(get(4)?) != Some(KEYFN_SHA256) {
            return Err(bad("unknown key function"));
        }
        let u = |k| get(k).and_then(|v| cbor::as_u64(v).ok_or_else(|| bad(&format!("field {k}"))));
        Ok(MapRootPayload {
            p: u(2)?,
            root: get(3)?
                .as_bytes()
                .and_then(|b| b.as_slice().try_into().ok())
                .ok_or_else(|| bad("root is not 32 bytes"))?,
            prev: match get(5)? {
                Value::Null => None,
                v => Some(cbor::as_u64(v).ok_or_else(|| bad("prev"))?),
            },
            time_ms: u(6)?,
            vcons: u(7)?,
        })
    }
}

/// Why a bundle does not prove its answer. Each is "history incomplete or
/// map proof invalid" to the verifier (one exit class).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("malformed bundle: {0}")]
    Malformed(String),
    #[error("the map-root entry does not verify: {0}")]
    MapRoot(String),
    #[error("the map proof does not verify: {0}")]
    MapProof(String),
    #[error("the history is not the one the map commits to: {0}")]
    History(String),
}

/// One entry a bundle lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntry {
    pub index: u64,
    /// The entry as stored (the registered statement).
    pub statement: Vec<u8>,
    pub receipt: Vec<u8>,
}

/// `GET /vcons/{uuid}/proof` (`proto/vcon-map.cddl`, `vcon-proof`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub uuid: String,
    pub map_root_entry: Vec<u8>,
    pub map_root_receipt: Vec<u8>,
    /// The vCon's state record; None when the map proves it absent.
    pub state: Option<Vec<u8>>,
    pub map_proof: Vec<u8>,
    pub entries: Vec<BundleEntry>,
}

impl Bundle {
    pub fn to_cbor(&self) -> Vec<u8> {
        let entries = self
            .entries
            .iter()
            .map(|e| {
                Value::Array(vec![
                    Value::Integer(e.index.into()),
                    Value::Bytes(e.statement.clone()),
                    Value::Bytes(e.receipt.clone()),
                ])
            })
            .collect();
        cbor::encode(&Value::Map(vec![
            (int(1), Value::Text(self.uuid.clone())),
            (int(2), Value::Bytes(self.map_root_entry.clone())),
            (int(3), Value::Bytes(self.map_root_receipt.clone())),
            (int(4), self.state.clone().map_or(Value::Null, Value::Bytes)),
            (int(5), Value::Bytes(self.map_proof.clone())),
            (int(6), Value::Array(entries)),
        ]))
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Bundle, ProofError> {
        let bad = |m: &str| ProofError::Malformed(m.to_owned());
        let Value::Map(m) = cbor::decode(bytes).map_err(|e| bad(&e.to_string()))? else {
            return Err(bad("not a map"));
        };
        let get = |k| cbor::map_get(&m, k).ok_or_else(|| bad(&format!("no field {k}")));
        let bytes_of = |k| {
            get(k).and_then(|v| {
                v.as_bytes()
                    .cloned()
                    .ok_or_else(|| bad(&format!("field {k} is not bytes")))
            })
        };
        let Value::Array(list) = get(6)? else {
            return Err(bad("entries is not an array"));
        };
        if list.len() as u64 > MAX_BUNDLE_ENTRIES {
            return Err(bad("too many entries"));
        }
        let mut entries = Vec::with_capacity(list.len());
        for e in list {
            let Some([index, st, r]) = e
                .as_array()
                .map(Vec::as_slice)
                .and_then(|a| <&[Value; 3]>::try_from(a).ok())
            else {
                return Err(bad("an entry is not [index, statement, receipt]"));
            };
            entries.push(BundleEntry {
                index: cbor::as_u64(index).ok_or_else(|| bad("entry index"))?,
                statement: st
                    .as_bytes()
                    .cloned()
                    .ok_or_else(|| bad("entry statement"))?,
                receipt: r.as_bytes().cloned().ok_or_else(|| bad("entry receipt"))?,
            });
        }
        Ok(Bundle {
            uuid: get(1)?
                .as_text()
                .ok_or_else(|| bad("uuid is not text"))?
                .to_owned(),
            map_root_entry: bytes_of(2)?,
            map_root_receipt: bytes_of(3)?,
            state: match get(4)? {
                Value::Null => None,
                Value::Bytes(b) => Some(b.clone()),
                _ => return Err(bad("state is not bytes or null")),
            },
            map_proof: bytes_of(5)?,
            entries,
        })
    }
}

/// What a verified bundle proves.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleReport {
    pub uuid: String,
    /// The map is of the log prefix `[0, as_of_size)`.
    pub as_of_size: u64,
    /// The signed tree size every receipt in the bundle is for.
    pub tree_size: u64,
    /// False: the map proves the vCon has no entry in the prefix.
    pub present: bool,
    /// The complete history's indices, in log order.
    pub indices: Vec<u64>,
    pub consent: ConsentState,
    pub deleted_at: Option<u64>,
    /// The complete history's consent changes (for answers as of an event
    /// time, [`BundleReport::consent_as_of`]).
    #[serde(skip)]
    pub consent_events: Vec<ConsentEvent>,
    #[serde(skip)]
    pub controller: Option<String>,
}

impl BundleReport {
    /// The consent state as of an event time (`occurred_at` ≤ `as_of_ms`),
    /// folded from the complete history the bundle proved. The other time,
    /// "as registered", is [`BundleReport::consent`]: the log's order up to
    /// the map root, which a late, back-dated registration cannot rewrite;
    /// this one answers "what had the parties said by time T", and a
    /// change registered later that claims an earlier time counts.
    pub fn consent_as_of(&self, as_of_ms: i64, delegates: &Delegates) -> ConsentState {
        super::consent::consent_state(
            &self.consent_events,
            &self.uuid,
            self.controller.as_deref(),
            delegates,
            Some(as_of_ms),
        )
    }
}

/// Verifies a receipt over `statement` under either binding leaf rule, by
/// the verifier's own rule loop (`vcon-verify --leaf-rule any`), returning
/// (tree size, leaf index, leaf).
fn receipt_over(
    statement: &[u8],
    receipt_bytes: &[u8],
    keys: &KeySet,
) -> Result<(u64, u64, Hash), String> {
    let st = SignedStatement::parse_with(statement, usize::MAX, IdentityRule::Optional)
        .map_err(|e| e.to_string())?;
    let leaves: Vec<(LeafRule, Hash)> = LeafRule::BINDING_THE_STATEMENT
        .iter()
        .map(|r| (*r, r.leaf_hash(statement, &st.parts)))
        .collect();
    crate::verify::verify_under_rules(receipt_bytes, &leaves, keys)
        .map(|(info, _, leaf)| (info.tree_size, info.leaf_index, leaf))
        .map_err(|e| e.to_string())
}

/// The lifecycle record of a registered statement, as the profile derives
/// it (the default policy; time checks disabled: the log already accepted
/// it, and a verifier's clock says nothing about registration).
pub fn record_of(statement: &[u8]) -> Result<LifecycleRecord, String> {
    let st = SignedStatement::parse(statement, usize::MAX).map_err(|e| e.to_string())?;
    // A century of skew either way: wide enough to accept whatever the log
    // accepted, small enough that the policy's checked arithmetic holds.
    const CENTURY: i64 = 100 * 366 * 24 * 3600;
    // The PII guard off (`legacy_compat`): the most permissive policy, so
    // a statement a compat-profile log accepted derives the record it was
    // folded with; for a statement the default policy accepts, the result
    // is the same either way.
    let cfg = super::PolicyConfig {
        max_skew_secs: CENTURY,
        legacy_compat: true,
        ..super::PolicyConfig::default()
    };
    let now = crate::time::now_secs().saturating_add(CENTURY);
    match super::profile::check(&cfg, &st, now).map_err(|e| e.to_string())? {
        Profile::Vcon(r) => Ok(*r),
        Profile::Generic => Err("not a vCon statement".into()),
    }
}

/// Checks a bundle offline: the map-root entry is signed by the service and
/// included at the index its payload names, in a head the service signed;
/// the map proof shows the vCon's value (or its absence) under that root;
/// every listed entry is included in the same head, is a statement about
/// this vCon, lies before the map-root entry, in strictly increasing log
/// order; and folding them gives exactly the committed state — so no entry
/// was left out, added or reordered. `delegates` is the registration
/// policy's `consent_delegates` (none by default).
pub fn verify_bundle(
    bundle: &Bundle,
    uuid: &str,
    keys: &KeySet,
    delegates: &Delegates,
) -> Result<BundleReport, ProofError> {
    let uuid = uuid.to_ascii_lowercase();
    if bundle.uuid.to_ascii_lowercase() != uuid {
        return Err(ProofError::Malformed(format!(
            "the bundle is for {}, not {uuid}",
            bundle.uuid
        )));
    }
    let key =
        map_key(&uuid).ok_or_else(|| ProofError::Malformed(format!("{uuid:?} is not a uuid")))?;

    // 1. The map-root entry: the service's, included where it says.
    let mr = SignedStatement::parse(&bundle.map_root_entry, usize::MAX)
        .map_err(|e| ProofError::MapRoot(e.to_string()))?;
    if mr.subject != MAP_ROOT_SUBJECT {
        return Err(ProofError::MapRoot(format!(
            "its subject is {:?}",
            mr.subject
        )));
    }
    let signer = mr
        .kid
        .as_deref()
        .and_then(|k| keys.get(k))
        .ok_or_else(|| ProofError::MapRoot("not signed by a service key".into()))?;
    mr.verify_signature(signer)
        .map_err(|e| ProofError::MapRoot(e.to_string()))?;
    let payload = MapRootPayload::from_cbor(mr.payload())?;
    let (size, index, _) = receipt_over(&bundle.map_root_entry, &bundle.map_root_receipt, keys)
        .map_err(|e| ProofError::MapRoot(format!("its receipt: {e}")))?;
    if index != payload.p || payload.p >= size {
        return Err(ProofError::MapRoot(format!(
            "it says it is at index {} but its receipt puts it at {index} of {size}",
            payload.p
        )));
    }

    // 2. The map proof.
    let state = match &bundle.state {
        None => {
            crate::map::verify_absence(&payload.root, &key, &bundle.map_proof)
                .map_err(|e| ProofError::MapProof(e.to_string()))?;
            if !bundle.entries.is_empty() {
                return Err(ProofError::History(
                    "entries listed for a vCon the map proves absent".into(),
                ));
            }
            None
        }
        Some(bytes) => {
            crate::map::verify_inclusion(
                &payload.root,
                &key,
                &state_value(bytes),
                &bundle.map_proof,
            )
            .map_err(|e| ProofError::MapProof(e.to_string()))?;
            Some(VconState::from_cbor(bytes).map_err(|e| ProofError::Malformed(e.to_string()))?)
        }
    };

    // 3. The history: complete, in order, folded to the committed state.
    let mut folded = VconState::default();
    let mut previous: Option<u64> = None;
    let mut indices = Vec::with_capacity(bundle.entries.len());
    let mut consent_events = Vec::new();
    for e in &bundle.entries {
        if previous.is_some_and(|p| e.index <= p) || e.index >= payload.p {
            return Err(ProofError::History(format!(
                "entry {} is out of order or not before the map root at {}",
                e.index, payload.p
            )));
        }
        previous = Some(e.index);
        let (esize, eindex, leaf) = receipt_over(&e.statement, &e.receipt, keys)
            .map_err(|err| ProofError::History(format!("entry {}: {err}", e.index)))?;
        if esize != size || eindex != e.index {
            return Err(ProofError::History(format!(
                "entry {}'s receipt is for index {eindex} of {esize}, not of the map root's head {size}",
                e.index
            )));
        }
        let record = record_of(&e.statement)
            .map_err(|err| ProofError::History(format!("entry {}: {err}", e.index)))?;
        if record.vcon_uuid.to_ascii_lowercase() != uuid {
            return Err(ProofError::History(format!(
                "entry {} is about vCon {}",
                e.index, record.vcon_uuid
            )));
        }
        if let (Some(c), Some(at)) = (&record.consent, record.occurred_at_ms) {
            consent_events.push(ConsentEvent {
                index: e.index,
                entry_id: hex::encode(leaf),
                iss: record.iss.clone(),
                occurred_at_ms: at,
                occurred_at: record.occurred_at.clone(),
                granted: c.granted.clone(),
                revoked: c.revoked.clone(),
            });
        }
        folded.fold(e.index, &leaf, &record, delegates);
        indices.push(e.index);
    }
    if let Some(committed) = &state
        && *committed != folded
    {
        return Err(ProofError::History(format!(
            "the {} entries listed fold to another state than the map commits to ({} entries): an entry was left out, added or changed",
            folded.entries, committed.entries
        )));
    }
    Ok(BundleReport {
        present: state.is_some(),
        consent: folded.consent_state(&uuid, delegates),
        deleted_at: folded.deleted_at,
        controller: folded.controller.clone(),
        consent_events,
        uuid,
        as_of_size: payload.p,
        tree_size: size,
        indices,
    })
}

/// A holder's own Transparent Statement held against a verified bundle. If
/// its receipt (checked with the same service keys) proves an entry about
/// this vCon at an index before the bundle's map root that the bundle does
/// not list, the signed map is not the map of the log: the bundle verified
/// only because the service signed a lie. Returns that index; None when
/// the statement is about another vCon, comes after the map root, or is
/// listed. `Err`: the held statement or its receipt does not verify.
pub fn held_entry_contradicts(
    report: &BundleReport,
    transparent_statement: &[u8],
    keys: &KeySet,
) -> Result<Option<u64>, String> {
    let r = crate::verify::verify(&crate::verify::Request {
        statement: transparent_statement.to_vec(),
        service_keys: keys.clone(),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let Ok(record) = record_of(transparent_statement) else {
        return Ok(None);
    };
    if record.vcon_uuid.to_ascii_lowercase() != report.uuid
        || r.leaf_index >= report.as_of_size
        || report.indices.contains(&r.leaf_index)
    {
        return Ok(None);
    }
    Ok(Some(r.leaf_index))
}
