//! Per-vCon secondary indexes, written in the same WriteBatch as the entry
//! (so they are exactly as durable as it), and the views built on them.
//!
//! Keys in the `index` column family (index = the entry's log index, u64 BE):
//! | prefix | key | value |
//! |---|---|---|
//! | `h` | uuid (16) ‖ index | JSON [`Indexed`]: the vCon's history |
//! | `e` | event code (1) ‖ index | uuid: the per-event feed (withdrawals) |
//! | `a` | index | uuid: every vCon event |
//! | `i` | SHA-256(iss)[..8] ‖ index | uuid: per-issuer feed |
//! | `l` | uuid ‖ other uuid ‖ index | JSON edge: lineage, both directions |
//! | `p` | `p/policy` | JSON: the registration policy entry in force |
//!
//! Keys starting with a zero byte belong to the log (its identity rows,
//! `src/log/store.rs`); every prefix here is an ASCII letter.

use serde::{Deserialize, Serialize};

use crate::log::store::{CF_INDEX, Store};
use crate::log::{IndexRows, LogError};
use crate::time::format_ms;
use crate::vcon::consent::{HistoryItem, flag_anomalies};
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

/// The fixed key of the registration policy row.
const POLICY_KEY: &[u8] = b"p/policy";

fn iss_key(iss: &str) -> [u8; 8] {
    let d = ring::digest::digest(&ring::digest::SHA256, iss.as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&d.as_ref()[..8]);
    k
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
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
    if let Some(d) = &record.derived_from
        && let Some(parent) = uuid_bytes(&d.uuid)
    {
        let down = serde_json::json!({"relation": d.relation, "direction": "derived_from", "entry_id": entry_id});
        let up = serde_json::json!({"relation": d.relation, "direction": "derivative", "entry_id": entry_id});
        by_index.push((key(&[b"l", &uuid, &parent]), down.to_string().into_bytes()));
        by_index.push((key(&[b"l", &parent, &uuid]), up.to_string().into_bytes()));
    }
    IndexRows {
        by_index,
        fixed: Vec::new(),
    }
}

/// Most history rows read for one vCon.
pub const MAX_HISTORY: usize = 10_000;

/// The whole history of a vCon in registration order, with anomalies flagged.
pub fn history(store: &Store, uuid: &str) -> Result<Vec<HistoryItem>, LogError> {
    let Some(u) = uuid_bytes(uuid) else {
        return Ok(Vec::new());
    };
    let prefix = key(&[b"h", &u]);
    let mut items = Vec::new();
    for row in store.iter_from(CF_INDEX, &prefix)? {
        let (k, v) = row?;
        if !k.starts_with(&prefix) || items.len() >= MAX_HISTORY {
            break;
        }
        let index = crate::log::store::be_u64(&k[prefix.len()..]).unwrap_or_default();
        let Ok(row) = serde_json::from_slice::<Indexed>(&v) else {
            continue;
        };
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
            derived_from: r.derived_from,
            counterparty: r.counterparty,
            policy_entry: row.policy_entry,
            anomalies: Vec::new(),
        });
    }
    flag_anomalies(&mut items);
    Ok(items)
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
pub fn feed(store: &Store, q: &FeedQuery) -> Result<(Vec<FeedItem>, Option<u64>), LogError> {
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
        out.push(FeedItem {
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
}

pub fn lineage(store: &Store, uuid: &str) -> Result<Lineage, LogError> {
    let mut l = Lineage {
        vcon_uuid: uuid.to_owned(),
        derived_from: Vec::new(),
        derivatives: Vec::new(),
    };
    let Some(u) = uuid_bytes(uuid) else {
        return Ok(l);
    };
    let prefix = key(&[b"l", &u]);
    for row in store.iter_from(CF_INDEX, &prefix)? {
        let (k, v) = row?;
        if !k.starts_with(&prefix) || k.len() < prefix.len() + 16 {
            break;
        }
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
