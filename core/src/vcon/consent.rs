//! A vCon's history as a relying party reads it: compliance anomalies and
//! the consent state per purpose. Pure functions over [`HistoryItem`]s, with
//! no storage, because two parties compute them: the service answers
//! `/vcons/{uuid}/consent` from its index, and the auditor recomputes the
//! same answer from the statements it verified itself. One implementation
//! means a disagreement between them is about the data, never the code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::profile::{ConsentChange, DerivedFrom, Event};
use crate::time::{format_ms, parse_rfc3339_ms};

/// One history item as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryItem {
    pub index: u64,
    pub entry_id: String,
    pub event: Event,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcon_hash: Vec<String>,
    pub receipt: String,
    pub form: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<DerivedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_entry: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
}

/// Compliance anomalies: events after deletion, revocation without a grant,
/// a hash that breaks the chain of registered hashes.
pub fn flag_anomalies(items: &mut [HistoryItem]) {
    let mut deleted_at: Option<u64> = None;
    let mut granted_any = false;
    let mut known: Option<Vec<String>> = None;
    for it in items.iter_mut() {
        if let Some(d) = deleted_at
            && !matches!(it.event, Event::RcvrPurged | Event::Deleted)
        {
            it.anomalies.push(format!(
                "{} after vcon_deleted (index {d})",
                it.event.name()
            ));
        }
        match it.event {
            Event::ConsentAccepted => granted_any = true,
            Event::ConsentRevoked if !granted_any => it
                .anomalies
                .push("revocation with no prior consent grant".into()),
            _ => {}
        }
        if !it.vcon_hash.is_empty() {
            match &known {
                Some(prev)
                    if !it.event.changes_content()
                        && !it.vcon_hash.iter().any(|h| prev.contains(h)) =>
                {
                    it.anomalies.push(format!(
                        "vcon_hash {} does not match the previously registered hash {}",
                        it.vcon_hash.join(","),
                        prev.join(",")
                    ));
                }
                _ => {}
            }
            known = Some(it.vcon_hash.clone());
        }
        if it.event == Event::Deleted && deleted_at.is_none() {
            deleted_at = Some(it.index);
        }
    }
}

/// The consent state of a vCon over all its purposes. Serialized as the
/// snake_case strings the API has always published ("granted", "revoked",
/// "partially_revoked", "none").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Every purpose with a statement is granted.
    Granted,
    /// Every purpose with a statement is revoked.
    Revoked,
    /// Some purposes are granted and some revoked.
    PartiallyRevoked,
    /// No consent statement applies.
    None,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Revoked => "revoked",
            ConsentStatus::PartiallyRevoked => "partially_revoked",
            ConsentStatus::None => "none",
        }
    }
}

impl std::fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one purpose stands; serialized as "granted" or "revoked".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurposeStatus {
    Granted,
    Revoked,
}

impl PurposeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PurposeStatus::Granted => "granted",
            PurposeStatus::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for PurposeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consent state per purpose as of a time (by `occurred_at`; ties by
/// registration order). Latest statement wins: a revocation supersedes
/// earlier grants and a later grant re-grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentState {
    pub vcon_uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub state: ConsentStatus,
    pub purposes: BTreeMap<String, PurposeState>,
    /// Entry ids of the statements the answer rests on.
    pub proofs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PurposeState {
    pub status: PurposeStatus,
    pub entry_id: String,
    pub occurred_at: Option<String>,
    pub iss: String,
}

/// The [`ConsentState`] of `uuid` from its history, counting only consent
/// statements that occurred at or before `as_of_ms` (all when `None`).
pub fn consent(items: &[HistoryItem], uuid: &str, as_of_ms: Option<i64>) -> ConsentState {
    let mut relevant: Vec<&HistoryItem> = items
        .iter()
        .filter(|i| i.consent.is_some())
        .filter(|i| {
            match (
                as_of_ms,
                i.occurred_at.as_deref().and_then(parse_rfc3339_ms),
            ) {
                (Some(limit), Some(t)) => t <= limit,
                _ => true,
            }
        })
        .collect();
    relevant.sort_by_key(|i| {
        (
            i.occurred_at
                .as_deref()
                .and_then(parse_rfc3339_ms)
                .unwrap_or(0),
            i.index,
        )
    });
    let mut purposes: BTreeMap<String, PurposeState> = BTreeMap::new();
    for it in &relevant {
        let Some(c) = &it.consent else { continue };
        for (list, status) in [
            (&c.granted, PurposeStatus::Granted),
            (&c.revoked, PurposeStatus::Revoked),
        ] {
            for p in list {
                purposes.insert(
                    p.clone(),
                    PurposeState {
                        status,
                        entry_id: it.entry_id.clone(),
                        occurred_at: it.occurred_at.clone(),
                        iss: it.iss.clone(),
                    },
                );
            }
        }
    }
    let granted = purposes
        .values()
        .filter(|p| p.status == PurposeStatus::Granted)
        .count();
    let revoked = purposes
        .values()
        .filter(|p| p.status == PurposeStatus::Revoked)
        .count();
    let state = match (granted, revoked) {
        (0, 0) => ConsentStatus::None,
        (_, 0) => ConsentStatus::Granted,
        (0, _) => ConsentStatus::Revoked,
        _ => ConsentStatus::PartiallyRevoked,
    };
    let mut proofs: Vec<String> = purposes.values().map(|p| p.entry_id.clone()).collect();
    proofs.sort();
    proofs.dedup();
    ConsentState {
        vcon_uuid: uuid.to_owned(),
        as_of: as_of_ms.map(format_ms),
        state,
        purposes,
        proofs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcon::profile::ConsentChange;

    fn item(index: u64, event: Event, at: &str, granted: &[&str], revoked: &[&str]) -> HistoryItem {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        HistoryItem {
            index,
            entry_id: format!("e{index}"),
            event,
            iss: "https://conserver.test.example".into(),
            occurred_at: Some(at.into()),
            registered_at: None,
            vcon_hash: Vec::new(),
            receipt: format!("/entries/e{index}"),
            form: "lifecycle".into(),
            consent: Some(ConsentChange {
                granted: v(granted),
                revoked: v(revoked),
                ..ConsentChange::default()
            }),
            derived_from: None,
            counterparty: None,
            policy_entry: None,
            anomalies: Vec::new(),
        }
    }

    /// The API and the auditor's report publish these strings; the enums
    /// must serialize to exactly what the string fields held.
    #[test]
    fn states_serialize_to_the_published_strings() {
        let u = "019f15a6-a752-826f-b9a2-279e0d16bc46";
        let grant = item(
            1,
            Event::ConsentAccepted,
            "2026-01-01T00:00:00Z",
            &["a", "b"],
            &[],
        );
        let revoke = item(
            2,
            Event::ConsentRevoked,
            "2026-02-01T00:00:00Z",
            &[],
            &["b"],
        );
        let all = [grant.clone(), revoke];
        let json = serde_json::to_string(&consent(&all, u, None)).unwrap();
        assert_eq!(
            json,
            r#"{"vcon_uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","state":"partially_revoked","purposes":{"a":{"status":"granted","entry_id":"e1","occurred_at":"2026-01-01T00:00:00Z","iss":"https://conserver.test.example"},"b":{"status":"revoked","entry_id":"e2","occurred_at":"2026-02-01T00:00:00Z","iss":"https://conserver.test.example"}},"proofs":["e1","e2"]}"#
        );
        let as_of = consent(&all, u, Some(1_767_225_600_000 + 86_400_000));
        assert_eq!(as_of.state, ConsentStatus::Granted);
        assert_eq!(serde_json::to_value(as_of.state).unwrap(), "granted");
        assert_eq!(
            serde_json::to_value(consent(&[], u, None).state).unwrap(),
            "none"
        );
        let only_revoke = item(
            3,
            Event::ConsentRevoked,
            "2026-02-01T00:00:00Z",
            &[],
            &["a"],
        );
        let c = consent(&[only_revoke], u, None);
        assert_eq!(
            (c.state.to_string(), c.purposes["a"].status.to_string()),
            ("revoked".into(), "revoked".into())
        );
        let back: ConsentState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state, ConsentStatus::PartiallyRevoked);
    }

    #[test]
    fn revocation_without_a_grant_is_an_anomaly() {
        let mut items = [item(
            1,
            Event::ConsentRevoked,
            "2026-01-01T00:00:00Z",
            &[],
            &["a"],
        )];
        flag_anomalies(&mut items);
        assert_eq!(
            items[0].anomalies,
            ["revocation with no prior consent grant"]
        );
    }
}
