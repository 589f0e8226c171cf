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
    /// For consent changes: whether this issuer may change the vCon's
    /// consent state ([`Authority`]), as of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_authority: Option<Authority>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<DerivedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_entry: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
}

/// Who, besides a vCon's controller, may change its consent state: the
/// registration policy's `consent_delegates`, controller issuer → delegate
/// issuers; the key `"*"` names delegates for every controller (a consent
/// management platform acting for all of them).
pub type Delegates = BTreeMap<String, Vec<String>>;

/// The purpose a consent change applies to when it names none (a hash
/// registration whose `vcon_operation` is a consent operation): all of them.
pub const ALL_PURPOSES: &str = "*";

/// Whether an issuer's consent statement changes a vCon's consent state.
///
/// The **controller** of a vCon is the issuer of its first registered
/// `vcon_created` (by log index): whoever registers a vCon first owns its
/// consent record. Only the controller and the delegates the policy names
/// for it change the state; anyone else's consent statement is recorded and
/// listed, flagged, and changes nothing. A vCon with no `vcon_created` has
/// no controller yet: its consent statements count once one is registered
/// (and only if their issuer is that controller or its delegate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    Controller,
    Delegate,
    /// Another issuer: recorded, flagged, state unchanged.
    NotAuthorized,
    /// No `vcon_created` registered yet: no one's change counts.
    NoController,
}

impl Authority {
    pub fn of(iss: &str, controller: Option<&str>, delegates: &Delegates) -> Authority {
        let Some(controller) = controller else {
            return Authority::NoController;
        };
        if iss == controller {
            return Authority::Controller;
        }
        let named = delegates
            .get(controller)
            .into_iter()
            .chain(delegates.get("*"))
            .flatten()
            .any(|d| d == iss);
        if named {
            Authority::Delegate
        } else {
            Authority::NotAuthorized
        }
    }

    /// Does a consent change by this issuer move the state?
    pub fn counts(self) -> bool {
        matches!(self, Authority::Controller | Authority::Delegate)
    }

    /// The issuers whose changes count for a vCon with this controller, in
    /// a fixed order (the server reads exactly these issuers' rows).
    pub fn issuers(controller: &str, delegates: &Delegates) -> Vec<String> {
        let mut out = vec![controller.to_owned()];
        for d in delegates
            .get(controller)
            .into_iter()
            .chain(delegates.get("*"))
            .flatten()
        {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }
}

/// What precedes what on one purpose: the later `occurred_at` wins; at the
/// same millisecond a revocation beats a grant (when two authorized
/// statements disagree about one instant, the service does not assume
/// consent); then the later registration. Total, so every order of
/// arrival gives one answer.
pub type Precedence = (i64, u8, u64);

pub fn precedence(occurred_at_ms: i64, revoked: bool, index: u64) -> Precedence {
    (occurred_at_ms, u8::from(revoked), index)
}

/// One consent change as the state machine reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    pub index: u64,
    pub entry_id: String,
    pub iss: String,
    pub occurred_at_ms: i64,
    pub occurred_at: Option<String>,
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
}

impl ConsentEvent {
    /// The consent change a history item carries (None: not one, or no
    /// time, which the profile does not admit for consent changes).
    pub fn from_item(it: &HistoryItem) -> Option<ConsentEvent> {
        let c = it.consent.as_ref()?;
        Some(ConsentEvent {
            index: it.index,
            entry_id: it.entry_id.clone(),
            iss: it.iss.clone(),
            occurred_at_ms: it.occurred_at.as_deref().and_then(parse_rfc3339_ms)?,
            occurred_at: it.occurred_at.clone(),
            granted: c.granted.clone(),
            revoked: c.revoked.clone(),
        })
    }
}

/// The controller: the issuer of the first `vcon_created` in the items
/// (which must be in registration order, as the history lists them).
pub fn controller(items: &[HistoryItem]) -> Option<&str> {
    items
        .iter()
        .find(|i| i.event == Event::Created)
        .map(|i| i.iss.as_str())
}

/// What a history view must know about the entries before its first item
/// to flag that item exactly as the whole history would. Empty for a
/// history read from its start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryCarry {
    /// Index of the first `vcon_deleted` before the page.
    pub deleted_at: Option<u64>,
    /// A consent grant was registered before the page.
    pub granted_before: bool,
    /// The newest content hashes registered before the page.
    pub last_hash: Option<Vec<String>>,
}

/// Compliance anomalies: events after deletion, revocation without a grant,
/// a hash that breaks the chain of registered hashes, a second creator, and
/// consent changes by an issuer that may not make them (those are marked
/// with their [`Authority`] too). `controller` is the vCon's controller as
/// the whole history defines it (see [`controller`]).
pub fn flag_anomalies(
    items: &mut [HistoryItem],
    carry: &HistoryCarry,
    controller: Option<&str>,
    delegates: &Delegates,
) {
    let mut deleted_at = carry.deleted_at;
    let mut granted_any = carry.granted_before;
    let mut known = carry.last_hash.clone();
    for it in items.iter_mut() {
        if let Some(d) = deleted_at
            && !matches!(it.event, Event::RcvrPurged | Event::Deleted)
        {
            it.anomalies.push(format!(
                "{} after vcon_deleted (index {d})",
                it.event.name()
            ));
        }
        if it.event == Event::Created
            && let Some(c) = controller
            && it.iss != c
        {
            it.anomalies.push(format!(
                "vcon_created by {}, but the vCon was first created by {c} (its controller)",
                it.iss
            ));
        }
        if it.consent.is_some() {
            let a = Authority::of(&it.iss, controller, delegates);
            it.consent_authority = Some(a);
            match a {
                Authority::NotAuthorized => it.anomalies.push(format!(
                    "consent change by {}, which is neither the controller ({}) nor its delegate: recorded, consent state unchanged",
                    it.iss,
                    controller.unwrap_or("-")
                )),
                Authority::NoController => it.anomalies.push(
                    "consent change before any vcon_created: no controller, consent state unchanged"
                        .into(),
                ),
                Authority::Controller | Authority::Delegate => {}
            }
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

/// Consent state per purpose as of a time (by `occurred_at`), counting only
/// changes by the controller and its delegates ([`Authority`]), each purpose
/// decided by [`precedence`]. A change to [`ALL_PURPOSES`] applies to every
/// purpose it precedes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentState {
    pub vcon_uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    pub state: ConsentStatus,
    /// The issuer whose `vcon_created` came first; None: no consent change
    /// counts yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    pub purposes: BTreeMap<String, PurposeState>,
    /// Entry ids of the statements the answer rests on.
    pub proofs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurposeState {
    pub status: PurposeStatus,
    pub entry_id: String,
    pub occurred_at: Option<String>,
    pub iss: String,
}

/// The consent state machine: one pure function that the service, the
/// auditor and (later) the offline verifier all run. `events` may come in
/// any order and may be the whole history or only each (issuer, purpose)'s
/// latest change (what the service's index keeps): the answer is the same,
/// because each purpose takes the maximum [`precedence`] over the changes
/// that count.
pub fn consent_state(
    events: &[ConsentEvent],
    uuid: &str,
    controller: Option<&str>,
    delegates: &Delegates,
    as_of_ms: Option<i64>,
) -> ConsentState {
    let mut winners: BTreeMap<String, (Precedence, PurposeState)> = BTreeMap::new();
    for ev in events {
        if !Authority::of(&ev.iss, controller, delegates).counts()
            || as_of_ms.is_some_and(|limit| ev.occurred_at_ms > limit)
        {
            continue;
        }
        for (list, status) in [
            (&ev.granted, PurposeStatus::Granted),
            (&ev.revoked, PurposeStatus::Revoked),
        ] {
            let p = precedence(
                ev.occurred_at_ms,
                status == PurposeStatus::Revoked,
                ev.index,
            );
            for purpose in list {
                if winners.get(purpose).is_some_and(|(q, _)| *q >= p) {
                    continue;
                }
                let state = PurposeState {
                    status,
                    entry_id: ev.entry_id.clone(),
                    occurred_at: ev.occurred_at.clone(),
                    iss: ev.iss.clone(),
                };
                winners.insert(purpose.clone(), (p, state));
            }
        }
    }
    // A change to every purpose overrides each purpose it precedes.
    if let Some((all_p, all_state)) = winners.get(ALL_PURPOSES).cloned() {
        for (name, (p, state)) in winners.iter_mut() {
            if name != ALL_PURPOSES && *p < all_p {
                *state = all_state.clone();
            }
        }
    }
    let purposes: BTreeMap<String, PurposeState> =
        winners.into_iter().map(|(k, (_, s))| (k, s)).collect();
    let granted = purposes
        .values()
        .filter(|p| p.status == PurposeStatus::Granted)
        .count();
    let revoked = purposes.len() - granted;
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
        controller: controller.map(str::to_owned),
        purposes,
        proofs,
    }
}

/// [`consent_state`] over a complete history (registration order): the
/// controller and the changes are read from the items themselves.
pub fn consent(
    items: &[HistoryItem],
    uuid: &str,
    delegates: &Delegates,
    as_of_ms: Option<i64>,
) -> ConsentState {
    let events: Vec<ConsentEvent> = items.iter().filter_map(ConsentEvent::from_item).collect();
    consent_state(&events, uuid, controller(items), delegates, as_of_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vcon::profile::ConsentChange;
    use proptest::prelude::*;

    const CONTROLLER: &str = "https://conserver.test.example";
    const OTHER: &str = "https://other.test.example";

    fn item(index: u64, event: Event, at: &str, granted: &[&str], revoked: &[&str]) -> HistoryItem {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let is_consent = matches!(event, Event::ConsentAccepted | Event::ConsentRevoked);
        HistoryItem {
            index,
            entry_id: format!("e{index}"),
            event,
            iss: CONTROLLER.into(),
            occurred_at: Some(at.into()),
            registered_at: None,
            vcon_hash: Vec::new(),
            receipt: format!("/entries/e{index}"),
            form: "lifecycle".into(),
            consent: is_consent.then(|| ConsentChange {
                granted: v(granted),
                revoked: v(revoked),
                ..ConsentChange::default()
            }),
            consent_authority: None,
            derived_from: None,
            counterparty: None,
            policy_entry: None,
            anomalies: Vec::new(),
        }
    }

    fn by(mut it: HistoryItem, iss: &str) -> HistoryItem {
        it.iss = iss.into();
        it
    }

    fn created(index: u64) -> HistoryItem {
        item(index, Event::Created, "2025-12-31T00:00:00Z", &[], &[])
    }

    const U: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";

    /// The API and the auditor's report publish these strings; the enums
    /// must serialize to exactly what the string fields held.
    #[test]
    fn states_serialize_to_the_published_strings() {
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
        let all = [created(0), grant.clone(), revoke];
        let none = Delegates::new();
        let json = serde_json::to_string(&consent(&all, U, &none, None)).unwrap();
        assert_eq!(
            json,
            r#"{"vcon_uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","state":"partially_revoked","controller":"https://conserver.test.example","purposes":{"a":{"status":"granted","entry_id":"e1","occurred_at":"2026-01-01T00:00:00Z","iss":"https://conserver.test.example"},"b":{"status":"revoked","entry_id":"e2","occurred_at":"2026-02-01T00:00:00Z","iss":"https://conserver.test.example"}},"proofs":["e1","e2"]}"#
        );
        let as_of = consent(&all, U, &none, Some(1_767_225_600_000 + 86_400_000));
        assert_eq!(as_of.state, ConsentStatus::Granted);
        assert_eq!(serde_json::to_value(as_of.state).unwrap(), "granted");
        assert_eq!(
            serde_json::to_value(consent(&[], U, &none, None).state).unwrap(),
            "none"
        );
        let only_revoke = item(
            3,
            Event::ConsentRevoked,
            "2026-02-01T00:00:00Z",
            &[],
            &["a"],
        );
        let c = consent(&[created(0), only_revoke], U, &none, None);
        assert_eq!(
            (c.state.to_string(), c.purposes["a"].status.to_string()),
            ("revoked".into(), "revoked".into())
        );
        let back: ConsentState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state, ConsentStatus::PartiallyRevoked);
    }

    #[test]
    fn revocation_without_a_grant_is_an_anomaly() {
        let mut items = [
            created(0),
            item(
                1,
                Event::ConsentRevoked,
                "2026-01-01T00:00:00Z",
                &[],
                &["a"],
            ),
        ];
        flag_anomalies(
            &mut items,
            &HistoryCarry::default(),
            Some(CONTROLLER),
            &Delegates::new(),
        );
        assert_eq!(
            items[1].anomalies,
            ["revocation with no prior consent grant"]
        );
        assert_eq!(items[1].consent_authority, Some(Authority::Controller));
    }

    /// Finding 3 of the security issue: after the controller revokes, another
    /// registered issuer's later grant turned the answer back to "granted".
    #[test]
    fn only_the_controller_and_its_delegates_change_the_state() {
        let mut items = vec![
            created(0),
            item(
                1,
                Event::ConsentAccepted,
                "2026-01-01T00:00:00Z",
                &["a"],
                &[],
            ),
            item(
                2,
                Event::ConsentRevoked,
                "2026-02-01T00:00:00Z",
                &[],
                &["a"],
            ),
            by(
                item(
                    3,
                    Event::ConsentAccepted,
                    "2026-03-01T00:00:00Z",
                    &["a"],
                    &[],
                ),
                OTHER,
            ),
        ];
        let none = Delegates::new();
        let c = consent(&items, U, &none, None);
        assert_eq!(c.state, ConsentStatus::Revoked);
        assert_eq!(c.purposes["a"].entry_id, "e2");
        flag_anomalies(
            &mut items,
            &HistoryCarry::default(),
            Some(CONTROLLER),
            &none,
        );
        assert_eq!(items[3].consent_authority, Some(Authority::NotAuthorized));
        assert!(items[3].anomalies[0].contains("consent state unchanged"));

        // Named as the controller's delegate, the same grant counts.
        let delegates = Delegates::from([(CONTROLLER.to_owned(), vec![OTHER.to_owned()])]);
        assert_eq!(
            consent(&items, U, &delegates, None).state,
            ConsentStatus::Granted
        );
        // ...and as everyone's delegate.
        let everyone = Delegates::from([("*".to_owned(), vec![OTHER.to_owned()])]);
        assert_eq!(
            consent(&items, U, &everyone, None).state,
            ConsentStatus::Granted
        );

        // A hostile issuer that registers vcon_created second is not the controller.
        let mut second = items.clone();
        second.push(by(created(4), OTHER));
        assert_eq!(
            consent(&second, U, &none, None).state,
            ConsentStatus::Revoked
        );
        flag_anomalies(
            &mut second,
            &HistoryCarry::default(),
            Some(CONTROLLER),
            &none,
        );
        assert!(second[4].anomalies[0].contains("first created by"));
    }

    #[test]
    fn without_a_vcon_created_no_change_counts_until_one_is_registered() {
        let grant = item(
            5,
            Event::ConsentAccepted,
            "2026-01-01T00:00:00Z",
            &["a"],
            &[],
        );
        let none = Delegates::new();
        let c = consent(std::slice::from_ref(&grant), U, &none, None);
        assert_eq!((c.state, c.controller), (ConsentStatus::None, None));
        // Created later (registration order), by the same issuer: it counts.
        let c = consent(&[grant, created(9)], U, &none, None);
        assert_eq!(c.state, ConsentStatus::Granted);
    }

    /// Finding 3: a grant and a revocation of one purpose at the same
    /// instant resolved by arrival order. A revocation wins, either way round.
    #[test]
    fn ties_resolve_to_revoked_whatever_the_order() {
        let t = "2026-01-01T00:00:00Z";
        let g = item(1, Event::ConsentAccepted, t, &["a"], &[]);
        let r = item(2, Event::ConsentRevoked, t, &[], &["a"]);
        let none = Delegates::new();
        for order in [
            vec![created(0), g.clone(), r.clone()],
            vec![created(0), r.clone(), g.clone()],
        ] {
            let c = consent(&order, U, &none, None);
            assert_eq!(
                (c.state, c.purposes["a"].entry_id.as_str()),
                (ConsentStatus::Revoked, "e2")
            );
        }
        let mut g_later = g.clone();
        g_later.index = 3;
        assert_eq!(
            consent(&[created(0), r, g_later], U, &none, None).state,
            ConsentStatus::Revoked
        );
    }

    #[test]
    fn a_change_to_every_purpose_overrides_the_earlier_ones() {
        let none = Delegates::new();
        let items = [
            created(0),
            item(
                1,
                Event::ConsentAccepted,
                "2026-01-01T00:00:00Z",
                &["a", "b"],
                &[],
            ),
            item(
                2,
                Event::ConsentRevoked,
                "2026-02-01T00:00:00Z",
                &[],
                &[ALL_PURPOSES],
            ),
            item(
                3,
                Event::ConsentAccepted,
                "2026-03-01T00:00:00Z",
                &["b"],
                &[],
            ),
        ];
        let c = consent(&items, U, &none, None);
        assert_eq!(c.purposes["a"].status, PurposeStatus::Revoked);
        assert_eq!(c.purposes["a"].entry_id, "e2");
        assert_eq!(c.purposes["b"].status, PurposeStatus::Granted);
        assert_eq!(c.purposes[ALL_PURPOSES].status, PurposeStatus::Revoked);
        assert_eq!(c.state, ConsentStatus::PartiallyRevoked);
        let before = consent(&items, U, &none, Some(1_767_225_600_000 + 86_400_000));
        assert_eq!(before.state, ConsentStatus::Granted);
    }

    fn arb_history() -> impl Strategy<Value = Vec<HistoryItem>> {
        let one = (
            0usize..6,
            0u8..4,
            0i64..5,
            proptest::collection::vec(0usize..4, 1..3),
        );
        proptest::collection::vec(one, 0..40).prop_map(|raw| {
            let issuers = [CONTROLLER, OTHER, "https://delegate.test.example"];
            let purposes = ["a", "b", "c", ALL_PURPOSES];
            raw.into_iter()
                .enumerate()
                .map(|(i, (kind, who, day, ps))| {
                    let at = format!("2026-01-0{}T00:00:00Z", day + 1);
                    let names: Vec<&str> = ps.iter().map(|p| purposes[*p]).collect();
                    let mut it = match kind {
                        0 => item(i as u64, Event::Created, &at, &[], &[]),
                        1 | 2 => item(i as u64, Event::ConsentAccepted, &at, &names, &[]),
                        3 | 4 => item(i as u64, Event::ConsentRevoked, &at, &[], &names),
                        _ => item(i as u64, Event::Deleted, &at, &[], &[]),
                    };
                    // Hashes that sometimes break the chain.
                    if kind < 3 {
                        it.vcon_hash = vec![format!("sha256-h{}", day % 2)];
                    }
                    by(it, issuers[usize::from(who) % 3])
                })
                .collect()
        })
    }

    proptest! {
        /// The service answers from each (issuer, purpose)'s latest change,
        /// in whatever order its index yields them; the auditor from the
        /// whole history. Both must give the same state.
        #[test]
        fn latest_changes_only_and_any_order_give_the_same_state(
            items in arb_history(),
            as_of_day in proptest::option::of(0i64..6),
            seed in any::<u64>(),
        ) {
            let delegates = Delegates::from([(
                CONTROLLER.to_owned(),
                vec!["https://delegate.test.example".to_owned()],
            )]);
            let as_of = as_of_day.map(|d| 1_767_225_600_000 + d * 86_400_000);
            let whole = consent(&items, U, &delegates, as_of);
            // Split each event per purpose, keep the maximum per (issuer,
            // purpose) at or before as_of, shuffle.
            let mut latest: BTreeMap<(String, String), (Precedence, ConsentEvent)> = BTreeMap::new();
            for ev in items.iter().filter_map(ConsentEvent::from_item) {
                if as_of.is_some_and(|t| ev.occurred_at_ms > t) {
                    continue;
                }
                for (list, revoked) in [(&ev.granted, false), (&ev.revoked, true)] {
                    for p in list {
                        let key = (ev.iss.clone(), p.clone());
                        let prec = precedence(ev.occurred_at_ms, revoked, ev.index);
                        if latest.get(&key).is_some_and(|(q, _)| *q >= prec) {
                            continue;
                        }
                        let one = ConsentEvent {
                            granted: if revoked { vec![] } else { vec![p.clone()] },
                            revoked: if revoked { vec![p.clone()] } else { vec![] },
                            ..ev.clone()
                        };
                        latest.insert(key, (prec, one));
                    }
                }
            }
            let mut events: Vec<ConsentEvent> = latest.into_values().map(|(_, e)| e).collect();
            let n = events.len();
            if n > 1 {
                for i in 0..n {
                    let j = (seed.wrapping_mul(i as u64 + 7) % n as u64) as usize;
                    events.swap(i, j);
                }
            }
            let from_rows = consent_state(&events, U, controller(&items), &delegates, as_of);
            prop_assert_eq!(from_rows.state, whole.state);
            prop_assert_eq!(from_rows.purposes, whole.purposes);
            prop_assert_eq!(from_rows.proofs, whole.proofs);
        }

        /// A history read in pages, each flagged with the carry of the
        /// entries before it, is flagged exactly as the whole history.
        #[test]
        fn pages_with_their_carry_flag_like_the_whole(
            items in arb_history(),
            page in 1usize..7,
        ) {
            let none = Delegates::new();
            let c = controller(&items).map(str::to_owned);
            let mut whole = items.clone();
            flag_anomalies(&mut whole, &HistoryCarry::default(), c.as_deref(), &none);
            let mut paged: Vec<HistoryItem> = Vec::new();
            for chunk in items.chunks(page) {
                let before = &items[..paged.len()];
                let carry = HistoryCarry {
                    deleted_at: before.iter().find(|i| i.event == Event::Deleted).map(|i| i.index),
                    granted_before: before.iter().any(|i| i.event == Event::ConsentAccepted),
                    last_hash: before.iter().rev().find(|i| !i.vcon_hash.is_empty()).map(|i| i.vcon_hash.clone()),
                };
                let mut p = chunk.to_vec();
                flag_anomalies(&mut p, &carry, c.as_deref(), &none);
                paged.extend(p);
            }
            let a: Vec<_> = whole.iter().map(|i| (&i.anomalies, i.consent_authority)).collect();
            let b: Vec<_> = paged.iter().map(|i| (&i.anomalies, i.consent_authority)).collect();
            prop_assert_eq!(a, b);
        }
    }
}
