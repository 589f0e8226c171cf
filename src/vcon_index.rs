//! Per-vCon secondary indexes, written in the same WriteBatch as the entry
//! (so they are exactly as durable as it), and the views built on them.
//!
//! Keys in the `index` column family (index = the entry's log index, u64 BE;
//! uuid = 16 bytes; every row but `p` ends in the index):
//! | prefix | key | value |
//! |---|---|---|
//! | `h` | uuid ‖ index | JSON [`Indexed`]: the vCon's history |
//! | `v` | uuid ‖ fact (1) ‖ index | per-vCon facts a history page needs: `c` vcon_created (issuer), `d` vcon_deleted, `g` consent grant, `k` carries content hashes (they are in its `h` row) |
//! | `c` | uuid ‖ SHA-256(iss) ‖ len (1) ‖ purpose ‖ occurred_at ms (8, sign-flipped BE) ‖ revoked (1) ‖ index | JSON [`ConsentRow`]: one consent change of one purpose |
//! | `e` | event code (1) ‖ index | uuid: the per-event feed (withdrawals) |
//! | `a` | index | uuid: every vCon event |
//! | `i` | SHA-256(iss)[..8] ‖ index | uuid: per-issuer feed |
//! | `l` | uuid ‖ other uuid ‖ index | JSON edge: lineage, both directions |
//! | `p` | `p/policy` | JSON: the registration policy entry in force |
//! | `m` | `m/…` | index-migration markers |
//!
//! The `c` rows sort each (vCon, issuer, purpose)'s changes by the consent
//! state machine's own precedence (`consent::precedence`: occurred_at, then
//! revocation over grant, then index), so the change in force at any time is
//! one reverse seek, however long the history: the consent answer costs
//! O(issuers × purposes) seeks and never reads the rest of the history. A
//! flood of other events (the "hidden revocation" attack) does not touch it.

use serde::{Deserialize, Serialize};

use crate::log::store::{CF_INDEX, KeyValue, Store, be_u64};
use crate::log::{IndexRows, LogError};
use crate::merkle::sha256;
use crate::time::format_ms;
use crate::vcon::consent::{
    Authority, ConsentEvent, ConsentState, Delegates, HistoryCarry, HistoryItem, consent_state,
    flag_anomalies,
};
use crate::vcon::profile::{Event, LifecycleRecord, uuid_bytes, uuid_from_bytes};

/// What the history row stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Indexed {
    #[serde(flatten)]
    pub record: LifecycleRecord,
    pub entry_id: String,
    /// Entry id of the registration policy that admitted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_entry: Option<String>,
}

/// What a `c` row stores besides its key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentRow {
    pub entry_id: String,
    pub iss: String,
    pub occurred_at: Option<String>,
}

/// The fixed key of the registration policy row.
const POLICY_KEY: &[u8] = b"p/policy";

/// Marks a database whose `v` and `c` rows were derived from its `h` rows
/// (databases written before those rows existed are migrated once).
pub(crate) const FACTS_MIGRATED: &[u8] = b"m/vcon-facts-v1";

/// Per-vCon facts (the byte after the uuid in a `v` key).
const FACT_CREATED: u8 = b'c';
const FACT_DELETED: u8 = b'd';
const FACT_GRANTED: u8 = b'g';
const FACT_HASH: u8 = b'k';

/// Most purposes one consent answer reads (over the controller and its
/// delegates). Beyond it the answer is an explicit error, never a cut.
pub const MAX_CONSENT_PURPOSES: usize = 4096;

/// Most rows one page returns (history, lineage).
pub const MAX_PAGE: usize = 1000;

/// A history page ends once its items reach this many bytes of JSON (after
/// at least one), with a cursor for the rest: one statement may carry up to
/// 64 KiB of text, so a count alone does not bound a response.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

fn iss_key(iss: &str) -> [u8; 8] {
    let mut k = [0u8; 8];
    k.copy_from_slice(&sha256(&[iss.as_bytes()])[..8]);
    k
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// An i64 as 8 bytes that sort like the number (sign bit flipped).
fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered_i64(b: &[u8]) -> Option<i64> {
    Some((be_u64(b)? ^ (1 << 63)) as i64)
}

/// `c` ‖ uuid ‖ SHA-256(iss): one issuer's consent rows for one vCon.
fn consent_issuer_prefix(uuid: &[u8; 16], iss: &str) -> Vec<u8> {
    key(&[b"c", uuid, &sha256(&[iss.as_bytes()])])
}

/// ... ‖ len ‖ purpose: one purpose's rows. The length byte keeps the
/// purposes prefix-free (profile caps names at 128 bytes).
fn consent_purpose_prefix(issuer_prefix: &[u8], purpose: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(purpose.len()).ok()?;
    Some(key(&[issuer_prefix, &[len], purpose.as_bytes()]))
}

/// The rows for one record, built on the request's thread; the sequencer
/// appends the log index to each key (every row here ends in it).
pub fn rows(record: &LifecycleRecord, entry_id: &str, policy_entry: Option<&str>) -> IndexRows {
    let Some(uuid) = uuid_bytes(&record.vcon_uuid) else {
        return IndexRows::default();
    };
    let row = Indexed {
        record: record.clone(),
        entry_id: entry_id.to_owned(),
        policy_entry: policy_entry.map(str::to_owned),
    };
    let mut by_index = vec![
        (
            key(&[b"h", &uuid]),
            serde_json::to_vec(&row).unwrap_or_default(),
        ),
        (key(&[b"e", &[record.event.code()]]), uuid.to_vec()),
        (b"a".to_vec(), uuid.to_vec()),
        (key(&[b"i", &iss_key(&record.iss)]), uuid.to_vec()),
    ];
    by_index.extend(derived_rows(record, entry_id, &uuid));
    IndexRows {
        by_index,
        fixed: Vec::new(),
    }
}

/// The `v`, `c` and `l` rows of a record (prefixes; the index is appended):
/// everything the views derive from the history row, so the migration of
/// an older database writes exactly what a fresh registration does.
fn derived_rows(
    record: &LifecycleRecord,
    entry_id: &str,
    uuid: &[u8; 16],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let fact = |f: u8, v: Vec<u8>| (key(&[b"v", uuid, &[f]]), v);
    match record.event {
        Event::Created => out.push(fact(FACT_CREATED, record.iss.as_bytes().to_vec())),
        Event::Deleted => out.push(fact(FACT_DELETED, Vec::new())),
        Event::ConsentAccepted => out.push(fact(FACT_GRANTED, Vec::new())),
        _ => {}
    }
    // The hashes themselves are in the `h` row at the same index; this row
    // only finds it (a page's carry reads the newest one before the page).
    if !record.vcon_hash.is_empty() {
        out.push(fact(FACT_HASH, Vec::new()));
    }
    if let (Some(c), Some(at)) = (&record.consent, record.occurred_at_ms) {
        let issuer = consent_issuer_prefix(uuid, &record.iss);
        let value = serde_json::to_vec(&ConsentRow {
            entry_id: entry_id.to_owned(),
            iss: record.iss.clone(),
            occurred_at: record.occurred_at.clone(),
        })
        .unwrap_or_default();
        for (list, revoked) in [(&c.granted, 0u8), (&c.revoked, 1u8)] {
            for p in list {
                if let Some(pp) = consent_purpose_prefix(&issuer, p) {
                    out.push((key(&[&pp, &ordered_i64(at), &[revoked]]), value.clone()));
                }
            }
        }
    }
    if let Some(d) = &record.derived_from
        && let Some(parent) = uuid_bytes(&d.uuid)
    {
        let down = serde_json::json!({"relation": d.relation, "direction": "derived_from", "entry_id": entry_id});
        let up = serde_json::json!({"relation": d.relation, "direction": "derivative", "entry_id": entry_id});
        out.push((key(&[b"l", uuid, &parent]), down.to_string().into_bytes()));
        out.push((key(&[b"l", &parent, uuid]), up.to_string().into_bytes()));
    }
    out
}

/// Derives the `v` and `c` rows of a database written before they existed
/// from its `h` rows, once (a marker row records it). `l` rows existed
/// already and are rewritten with the same bytes. Returns the rows written.
pub fn migrate(store: &Store) -> Result<u64, LogError> {
    if store.get_index(FACTS_MIGRATED)?.is_some() {
        return Ok(0);
    }
    let mut pending: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut written = 0u64;
    for row in store.iter_from(CF_INDEX, b"h")? {
        let (k, v) = row?;
        if !k.starts_with(b"h") {
            break;
        }
        let (Some(uuid), Some(index)) = (
            k.get(1..17).and_then(|u| <[u8; 16]>::try_from(u).ok()),
            k.get(17..).and_then(be_u64),
        ) else {
            continue;
        };
        let Ok(row) = serde_json::from_slice::<Indexed>(&v) else {
            continue;
        };
        for (prefix, value) in derived_rows(&row.record, &row.entry_id, &uuid) {
            pending.push((key(&[&prefix, &index.to_be_bytes()]), value));
        }
        if pending.len() >= 10_000 {
            written += pending.len() as u64;
            store.put_index_rows(&std::mem::take(&mut pending))?;
        }
    }
    written += pending.len() as u64;
    pending.push((FACTS_MIGRATED.to_vec(), Vec::new()));
    store.put_index_rows(&pending)?;
    Ok(written)
}

/// The (index, entry id) of a vCon's history rows below `below`, in log
/// order; None when there are more than `max`.
pub fn history_below(
    store: &Store,
    uuid: &[u8; 16],
    below: u64,
    max: u64,
) -> Result<Option<Vec<(u64, String)>>, LogError> {
    let prefix = key(&[b"h", uuid]);
    let mut out = Vec::new();
    for row in store.iter_from(CF_INDEX, &prefix)? {
        let (k, v) = row?;
        if !k.starts_with(&prefix) {
            break;
        }
        let Some(index) = row_index(&k) else { continue };
        if index >= below {
            break;
        }
        let Ok(row) = serde_json::from_slice::<Indexed>(&v) else {
            continue;
        };
        if out.len() as u64 >= max {
            return Ok(None);
        }
        out.push((index, row.entry_id));
    }
    Ok(Some(out))
}

/// Every history row in (uuid, index) order: (index, record, entry id).
/// Rows that do not decode are skipped, as the views skip them.
pub fn history_rows(
    store: &Store,
) -> Result<impl Iterator<Item = Result<(u64, LifecycleRecord, String), LogError>> + '_, LogError> {
    Ok(store
        .iter_from(CF_INDEX, b"h")?
        .map_while(|row| match row {
            Ok((k, v)) if k.starts_with(b"h") => Some(Ok((k, v))),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .filter_map(|row| match row {
            Err(e) => Some(Err(e)),
            Ok((k, v)) => {
                let index = k.get(17..).and_then(be_u64)?;
                let row = serde_json::from_slice::<Indexed>(&v).ok()?;
                Some(Ok((index, row.record, row.entry_id)))
            }
        }))
}

fn first_fact(store: &Store, uuid: &[u8; 16], fact: u8) -> Result<Option<KeyValue>, LogError> {
    let prefix = key(&[b"v", uuid, &[fact]]);
    store.first_index_row(&prefix, &prefix)
}

fn row_index(k: &[u8]) -> Option<u64> {
    k.len().checked_sub(8).and_then(|at| be_u64(&k[at..]))
}

/// The vCon's controller: the issuer of its first `vcon_created`.
pub fn controller(store: &Store, uuid: &[u8; 16]) -> Result<Option<String>, LogError> {
    Ok(first_fact(store, uuid, FACT_CREATED)?
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned()))
}

/// What a page starting at log index `start` needs to know about the
/// entries before it (point lookups, whatever the history's length).
fn carry_before(store: &Store, uuid: &[u8; 16], start: u64) -> Result<HistoryCarry, LogError> {
    let before = |kv: Option<KeyValue>| kv.and_then(|(k, _)| row_index(&k)).filter(|i| *i < start);
    let hash_prefix = key(&[b"v", uuid, &[FACT_HASH]]);
    let last_hash_at = match start.checked_sub(1) {
        None => None,
        Some(prev) => store
            .last_index_row(&hash_prefix, &key(&[&hash_prefix, &prev.to_be_bytes()]))?
            .and_then(|(k, _)| row_index(&k)),
    };
    let last_hash = match last_hash_at {
        None => None,
        Some(at) => {
            let row = store
                .get_index(&key(&[b"h", uuid, &at.to_be_bytes()]))?
                .ok_or_else(|| LogError::Corrupt(format!("no history row at index {at}")))?;
            let row: Indexed = serde_json::from_slice(&row)
                .map_err(|e| LogError::Corrupt(format!("history row at index {at}: {e}")))?;
            Some(row.record.vcon_hash)
        }
    };
    Ok(HistoryCarry {
        deleted_at: before(first_fact(store, uuid, FACT_DELETED)?),
        granted_before: before(first_fact(store, uuid, FACT_GRANTED)?).is_some(),
        last_hash,
    })
}

/// One page of a vCon's history in registration order: the entries after
/// log index `after` (from the start when None), at most `limit`, flagged
/// exactly as the whole history would flag them, and the cursor of the next
/// page when there is one. Every row is reachable by following the cursor:
/// pages are complete and, the log being append-only, stable.
pub fn history_page(
    store: &Store,
    uuid: &str,
    after: Option<u64>,
    limit: usize,
    delegates: &Delegates,
) -> Result<(Vec<HistoryItem>, Option<u64>), LogError> {
    let Some(u) = uuid_bytes(uuid) else {
        return Ok((Vec::new(), None));
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let prefix = key(&[b"h", &u]);
    let start = after.map_or(0, |a| a.saturating_add(1));
    let mut items = Vec::new();
    let mut more = false;
    let mut bytes = 0usize;
    for row in store.iter_from(CF_INDEX, &key(&[&prefix, &start.to_be_bytes()]))? {
        let (k, v) = row?;
        if !k.starts_with(&prefix) {
            break;
        }
        if items.len() == limit || bytes >= MAX_PAGE_BYTES {
            more = true;
            break;
        }
        bytes = bytes.saturating_add(v.len());
        let Some(index) = be_u64(&k[prefix.len()..]) else {
            continue;
        };
        let row = serde_json::from_slice::<Indexed>(&v)
            .map_err(|e| LogError::Corrupt(format!("history row at index {index}: {e}")))?;
        let registered_at = store
            .first_head_covering(index)?
            .map(|h| format_ms(h.head.timestamp_ms as i64));
        let r = row.record;
        items.push(HistoryItem {
            index,
            receipt: format!("/entries/{}", row.entry_id),
            entry_id: row.entry_id,
            event: r.event,
            iss: r.iss,
            occurred_at: r.occurred_at,
            registered_at,
            vcon_hash: r.vcon_hash,
            form: r.form,
            consent: r.consent,
            consent_authority: None,
            derived_from: r.derived_from,
            counterparty: r.counterparty,
            policy_entry: row.policy_entry,
            anomalies: Vec::new(),
        });
    }
    let first = items.first().map_or(start, |i| i.index);
    let carry = carry_before(store, &u, first)?;
    let controller = controller(store, &u)?;
    flag_anomalies(&mut items, &carry, controller.as_deref(), delegates);
    let next = if more {
        items.last().map(|i| i.index)
    } else {
        None
    };
    Ok((items, next))
}

/// Why a consent answer could not be given.
#[derive(Debug, thiserror::Error)]
pub enum ConsentReadError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(
        "the consent record of this vCon names more than {MAX_CONSENT_PURPOSES} purposes; ask for its history instead"
    )]
    TooManyPurposes,
}

/// The consent state of a vCon as of a time, from the `c` rows of its
/// controller and the controller's delegates: for each of their purposes,
/// the change in force (one reverse seek), fed to the same state machine
/// the auditor runs over the whole history.
pub fn consent(
    store: &Store,
    uuid: &str,
    delegates: &Delegates,
    as_of_ms: Option<i64>,
) -> Result<ConsentState, ConsentReadError> {
    let Some(u) = uuid_bytes(uuid) else {
        return Ok(consent_state(&[], uuid, None, delegates, as_of_ms));
    };
    let Some(controller) = controller(store, &u)? else {
        return Ok(consent_state(&[], uuid, None, delegates, as_of_ms));
    };
    let mut events = Vec::new();
    for iss in Authority::issuers(&controller, delegates) {
        let issuer = consent_issuer_prefix(&u, &iss);
        let mut cursor = issuer.clone();
        // Skip-scan: one seek to find each purpose, one reverse seek for its
        // change in force.
        while let Some((k, _)) = store.first_index_row(&issuer, &cursor)? {
            if events.len() >= MAX_CONSENT_PURPOSES {
                return Err(ConsentReadError::TooManyPurposes);
            }
            let rest = &k[issuer.len()..];
            let Some((&len, rest)) = rest.split_first() else {
                break;
            };
            let Some(name) = rest.get(..usize::from(len)) else {
                break;
            };
            let purpose = String::from_utf8_lossy(name).into_owned();
            let pp = key(&[&issuer, &[len], name]);
            let upto = key(&[&pp, &ordered_i64(as_of_ms.unwrap_or(i64::MAX)), &[0xff; 9]]);
            if let Some((k, v)) = store.last_index_row(&pp, &upto)?
                && let Some(ev) = consent_event(&k[pp.len()..], &v, purpose)
            {
                events.push(ev);
            }
            cursor = key(&[&pp, &[0xff; 17]]);
        }
    }
    Ok(consent_state(
        &events,
        uuid,
        Some(&controller),
        delegates,
        as_of_ms,
    ))
}

/// A `c` row (key after the purpose: occurred_at ‖ revoked ‖ index) as the
/// state machine's event for that one purpose.
fn consent_event(tail: &[u8], value: &[u8], purpose: String) -> Option<ConsentEvent> {
    let occurred_at_ms = from_ordered_i64(tail.get(..8)?)?;
    let revoked = *tail.get(8)? == 1;
    let index = be_u64(tail.get(9..17)?)?;
    let row: ConsentRow = serde_json::from_slice(value).ok()?;
    let (granted, revoked) = if revoked {
        (Vec::new(), vec![purpose])
    } else {
        (vec![purpose], Vec::new())
    };
    Some(ConsentEvent {
        index,
        entry_id: row.entry_id,
        iss: row.iss,
        occurred_at_ms,
        occurred_at: row.occurred_at,
        granted,
        revoked,
    })
}

/// One feed item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedItem {
    pub index: u64,
    pub vcon_uuid: String,
    pub entry_id: String,
    pub event: Event,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    pub receipt: String,
    /// For consent changes: whether it changes the vCon's consent state
    /// (the same [`Authority`] `/vcons/{uuid}/consent` applies), so a
    /// withdrawal feed and the consent answer never disagree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_authority: Option<Authority>,
}

pub struct FeedQuery {
    pub event: Option<Event>,
    pub iss: Option<String>,
    pub after: Option<u64>,
    pub limit: usize,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// The event feed downstream holders poll: registration order, cursor
/// `after` (an index), filters by event, issuer and occurred_at range.
pub fn feed(
    store: &Store,
    q: &FeedQuery,
    delegates: &Delegates,
) -> Result<(Vec<FeedItem>, Option<u64>), LogError> {
    let mut controllers: std::collections::HashMap<Vec<u8>, Option<String>> =
        std::collections::HashMap::new();
    let start = q
        .after
        .map(|a| a.saturating_add(1))
        .unwrap_or(0)
        .to_be_bytes();
    let prefix: Vec<u8> = match (&q.event, &q.iss) {
        (Some(e), _) => vec![b'e', e.code()],
        (None, Some(iss)) => key(&[b"i", &iss_key(iss)]),
        (None, None) => vec![b'a'],
    };
    let mut out = Vec::new();
    let mut scanned = 0usize;
    let mut last = None;
    for row in store.iter_from(CF_INDEX, &key(&[&prefix, &start]))? {
        let (k, v) = row?;
        if !k.starts_with(&prefix) {
            break;
        }
        scanned += 1;
        let index = crate::log::store::be_u64(&k[prefix.len()..]).unwrap_or_default();
        last = Some(index);
        let Some(h) = store.get_index(&key(&[b"h", &v, &index.to_be_bytes()]))? else {
            continue;
        };
        let Ok(row) = serde_json::from_slice::<Indexed>(&h) else {
            continue;
        };
        let r = &row.record;
        if q.iss.as_ref().is_some_and(|i| *i != r.iss) {
            continue;
        }
        if let Some(t) = r.occurred_at_ms
            && (q.since_ms.is_some_and(|s| t < s) || q.until_ms.is_some_and(|u| t > u))
        {
            continue;
        }
        let consent_authority = match (&r.consent, <[u8; 16]>::try_from(&v[..])) {
            (Some(_), Ok(u)) => {
                let c = match controllers.get(&v[..]) {
                    Some(c) => c.clone(),
                    None => {
                        let c = controller(store, &u)?;
                        controllers.insert(v.to_vec(), c.clone());
                        c
                    }
                };
                Some(Authority::of(&r.iss, c.as_deref(), delegates))
            }
            _ => None,
        };
        out.push(FeedItem {
            consent_authority,
            index,
            vcon_uuid: uuid_from_bytes(&v),
            receipt: format!("/entries/{}", row.entry_id),
            entry_id: row.entry_id,
            event: r.event,
            iss: r.iss.clone(),
            occurred_at: r.occurred_at.clone(),
        });
        if out.len() >= q.limit || scanned >= q.limit * 20 {
            break;
        }
    }
    Ok((out, last))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Edge {
    pub vcon_uuid: String,
    pub relation: String,
    pub entry_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lineage {
    pub vcon_uuid: String,
    /// vCons this one was derived from (its parents).
    pub derived_from: Vec<Edge>,
    /// vCons derived from this one (redacted/amended versions).
    pub derivatives: Vec<Edge>,
    /// Cursor of the next page (hex of the last edge's key), when there is
    /// one: anyone may derive vCons from a uuid, so its edges are paged,
    /// never cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// One page of a vCon's lineage edges (both directions), at most `limit`,
/// after the cursor a previous page returned.
pub fn lineage(
    store: &Store,
    uuid: &str,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Lineage, LogError> {
    let mut l = Lineage {
        vcon_uuid: uuid.to_owned(),
        derived_from: Vec::new(),
        derivatives: Vec::new(),
        next_after: None,
    };
    let Some(u) = uuid_bytes(uuid) else {
        return Ok(l);
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let prefix = key(&[b"l", &u]);
    // Just past the cursor's key (keys are prefix ‖ other uuid ‖ index).
    let from = match after {
        Some(a) => key(&[&prefix, a, &[0]]),
        None => prefix.clone(),
    };
    let mut last: Option<Vec<u8>> = None;
    for (n, row) in store.iter_from(CF_INDEX, &from)?.enumerate() {
        let (k, v) = row?;
        if !k.starts_with(&prefix) || k.len() < prefix.len() + 16 {
            break;
        }
        if n == limit {
            l.next_after = last.as_deref().map(hex::encode);
            break;
        }
        last = Some(k[prefix.len()..].to_vec());
        let other = uuid_from_bytes(&k[prefix.len()..prefix.len() + 16]);
        let Ok(j) = serde_json::from_slice::<serde_json::Value>(&v) else {
            continue;
        };
        let edge = Edge {
            vcon_uuid: other,
            relation: j["relation"].as_str().unwrap_or("").to_owned(),
            entry_id: j["entry_id"].as_str().unwrap_or("").to_owned(),
        };
        if j["direction"] == "derived_from" {
            l.derived_from.push(edge);
        } else {
            l.derivatives.push(edge);
        }
    }
    Ok(l)
}

/// The policy entry in force, if one was registered.
pub fn current_policy(store: &Store) -> Result<Option<(String, String)>, LogError> {
    Ok(store.get_index(POLICY_KEY)?.and_then(|v| {
        let j: serde_json::Value = serde_json::from_slice(&v).ok()?;
        Some((
            j["hash"].as_str()?.to_owned(),
            j["entry_id"].as_str()?.to_owned(),
        ))
    }))
}

pub fn policy_row(hash: &str, entry_id: &str) -> IndexRows {
    IndexRows {
        by_index: Vec::new(),
        fixed: vec![(
            POLICY_KEY.to_vec(),
            serde_json::json!({"hash": hash, "entry_id": entry_id})
                .to_string()
                .into_bytes(),
        )],
    }
}
