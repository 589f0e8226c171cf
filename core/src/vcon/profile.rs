//! The vCon lifecycle profile: which statements are about a vCon, what their
//! payload must say, and the normalised record the service indexes.
//!
//! Three shapes are recognised (see `spec-notes/vcon-profile.md`):
//! - a lifecycle statement: `sub = vcon://<uuid>`, content type
//!   `application/vcon-lifecycle+json`, a JSON event document;
//! - a hash registration: a hash envelope (258) whose preimage content type is
//!   `application/vcon`, `sub = vcon://<uuid>`, the payload the vCon's digest;
//! - legacy conserver v0.3.0 statements (PII subjects, `"<sha256>:<op>:<tel>"`
//!   payloads), only with the legacy-compat switch on.
//!
//! Before any of that, every statement passes the PII guard
//! ([`super::pii`]) unless legacy-compat is on.

use serde::{Deserialize, Serialize};

use super::hash::{HashAlg, content_hash, parse_content_hash};
use super::policy::{PolicyConfig, PolicyRejection, reject};
use crate::statement::{ContentType, SignedStatement};
use crate::time::{format_ms, parse_rfc3339_ms};

pub const LIFECYCLE_CONTENT_TYPE: &str = "application/vcon-lifecycle+json";
pub const VCON_MEDIA_TYPE: &str = "application/vcon";

/// The event vocabulary: draft-howe-vcon-lifecycle-01 plus `vcon_redacted`
/// and `vcon_accessed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    #[serde(rename = "vcon_created")]
    Created,
    #[serde(rename = "vcon_enhanced")]
    Enhanced,
    #[serde(rename = "vcon_redacted")]
    Redacted,
    #[serde(rename = "vcon_party_redacted")]
    PartyRedacted,
    #[serde(rename = "vcon_consent_accepted")]
    ConsentAccepted,
    #[serde(rename = "vcon_consent_revoked")]
    ConsentRevoked,
    #[serde(rename = "vcon_sent")]
    Sent,
    #[serde(rename = "vcon_received")]
    Received,
    #[serde(rename = "vcon_accessed")]
    Accessed,
    #[serde(rename = "vcon_deleted")]
    Deleted,
    #[serde(rename = "vcon_expired")]
    Expired,
    #[serde(rename = "vcon_rcvr_purged")]
    RcvrPurged,
}

pub const ALL_EVENTS: [Event; 12] = [
    Event::Created,
    Event::Enhanced,
    Event::Redacted,
    Event::PartyRedacted,
    Event::ConsentAccepted,
    Event::ConsentRevoked,
    Event::Sent,
    Event::Received,
    Event::Accessed,
    Event::Deleted,
    Event::Expired,
    Event::RcvrPurged,
];

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Created => "vcon_created",
            Event::Enhanced => "vcon_enhanced",
            Event::Redacted => "vcon_redacted",
            Event::PartyRedacted => "vcon_party_redacted",
            Event::ConsentAccepted => "vcon_consent_accepted",
            Event::ConsentRevoked => "vcon_consent_revoked",
            Event::Sent => "vcon_sent",
            Event::Received => "vcon_received",
            Event::Accessed => "vcon_accessed",
            Event::Deleted => "vcon_deleted",
            Event::Expired => "vcon_expired",
            Event::RcvrPurged => "vcon_rcvr_purged",
        }
    }

    /// Stable one-byte code for index keys.
    pub fn code(self) -> u8 {
        ALL_EVENTS.iter().position(|e| *e == self).unwrap_or(0) as u8 + 1
    }

    /// Normalises names and aliases the way the DataTrails link does:
    /// lowercase, strip `vcon_`/`vcon-`, `-` → `_`, re-prefix; plus synonyms.
    pub fn parse(raw: &str) -> Option<Event> {
        let s = raw.trim().to_ascii_lowercase().replace('-', "_");
        let s = s.strip_prefix("vcon_").unwrap_or(&s).to_owned();
        let e = match s.as_str() {
            "created" | "create" => Event::Created,
            "enhanced" | "enhance" | "updated" | "update" | "amended" | "amend" | "analysed"
            | "analyzed" | "transcribed" | "appended" => Event::Enhanced,
            "redacted" | "redact" => Event::Redacted,
            "party_redacted" => Event::PartyRedacted,
            "consent_accepted" | "consent_granted" | "consent_given" | "consented" => {
                Event::ConsentAccepted
            }
            "consent_revoked" | "consent_withdrawn" | "consent_withdrawal"
            | "consent_revocation" => Event::ConsentRevoked,
            "sent" | "send" | "shared" | "share" => Event::Sent,
            "received" | "receive" => Event::Received,
            "accessed" | "access" | "consumed" => Event::Accessed,
            "deleted" | "delete" | "erased" | "erase" => Event::Deleted,
            "expired" | "expire" => Event::Expired,
            "rcvr_purged" | "receiver_purged" | "purged" => Event::RcvrPurged,
            _ => return None,
        };
        Some(e)
    }

    /// Deletion-type events carry the last known hash only if they have one.
    pub fn hash_required(self) -> bool {
        !matches!(self, Event::Deleted | Event::Expired | Event::RcvrPurged)
    }

    /// Events after which the vCon's bytes (and hash) legitimately change.
    pub fn changes_content(self) -> bool {
        matches!(
            self,
            Event::Created | Event::Enhanced | Event::PartyRedacted
        )
    }
}

/// `vcon://<uuid>` or `urn:uuid:<uuid>` → the lowercase uuid.
pub fn subject_uuid(sub: &str) -> Option<String> {
    let rest = sub
        .strip_prefix("vcon://")
        .or_else(|| sub.strip_prefix("urn:uuid:"))?;
    normalize_uuid(rest)
}

/// 8-4-4-4-12 hex, lowercased.
pub fn normalize_uuid(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    (groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit())))
    .then_some(s)
}

/// 16 bytes of a normalised uuid (index keys).
pub fn uuid_bytes(uuid: &str) -> Option<[u8; 16]> {
    let hexs: String = uuid.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    hex::decode_to_slice(hexs, &mut out).ok()?;
    Some(out)
}

pub fn uuid_from_bytes(b: &[u8]) -> String {
    let h = hex::encode(b);
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Consent purposes a statement grants or revokes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedFrom {
    pub relation: String,
    pub uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
}

/// What the index keeps about one vCon statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRecord {
    pub vcon_uuid: String,
    pub event: Event,
    pub iss: String,
    /// RFC 3339 as sent; `occurred_at_ms` is its parsed value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcon_hash: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<DerivedFrom>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion: Option<serde_json::Value>,
    /// lifecycle | hash_registration | legacy_conserver
    pub form: String,
}

/// What the policy decided about a statement's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// Not about a vCon.
    Generic,
    Vcon(Box<LifecycleRecord>),
}

/// Subjects of the service's own entries (registration policy, map roots).
pub const RESERVED_SUBJECT_PREFIX: &str = "urn:vcon-scitt:";

/// The signing time (CWT iat), when present, lies between 1970 and `now`
/// plus the allowed skew; checked arithmetic throughout.
fn check_iat(cfg: &PolicyConfig, iat: Option<i64>, now: i64) -> Result<(), PolicyRejection> {
    let Some(iat) = iat else { return Ok(()) };
    if iat < 0 {
        return reject("iat-range", format!("iat {iat} is before 1970"));
    }
    if now
        .checked_add(cfg.max_skew_secs)
        .is_none_or(|limit| iat > limit)
    {
        return reject(
            "iat-future",
            format!(
                "iat {iat} is more than {} s in the future",
                cfg.max_skew_secs
            ),
        );
    }
    Ok(())
}

/// Classifies and checks a statement against the vCon profile. `now` is the
/// registration time (Unix seconds).
pub fn check(
    cfg: &PolicyConfig,
    st: &SignedStatement,
    now: i64,
) -> Result<Profile, PolicyRejection> {
    // The PII guard runs on every statement, generic ones included: the
    // ledger cannot erase what it admits. legacy_compat is its only bypass.
    if !cfg.legacy_compat {
        super::pii::check(st)?;
    }
    let sub = st.subject.as_str();
    let lower = sub.to_ascii_lowercase();
    // The service's own entries (the registration policy, the map roots)
    // use these subjects; a registered statement that did would look like
    // one to a careless reader (verifiers also require the service's key).
    // Checked before any profile branch, the compatibility ones included.
    if lower.starts_with(RESERVED_SUBJECT_PREFIX) {
        return reject(
            "reserved-subject",
            format!(
                "subjects starting {RESERVED_SUBJECT_PREFIX:?} are the service's own; got {sub:?}"
            ),
        );
    }
    // The conserver link v0.3.0 signs the text `<hex>:<op>[:<tel>]` under
    // the legacy hash-envelope labels: not a digest, so not a hash
    // registration. Logged as generic in the compatibility profile, refused
    // otherwise with what a digest would have been.
    if let Some(env) = &st.hash_envelope
        && env.text_payload
    {
        if !cfg.legacy_compat {
            return reject(
                "hash-envelope-length",
                format!(
                    "the hash-envelope payload is {} bytes but payload-hash-alg {} makes {} (conserver v0.3.0's text payload is admitted only with policy.legacy_compat)",
                    st.payload().len(),
                    env.payload_hash_alg,
                    crate::statement::HashEnvelope::digest_len(env.payload_hash_alg).unwrap_or(0)
                ),
            );
        }
        return legacy_conserver(st);
    }
    if ["tel:", "mailto:", "sip:", "sips:"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        if !cfg.legacy_compat {
            // The guard above refuses these first; this keeps the legacy
            // path unreachable with compat off even if the guard changes.
            return reject(
                "pii-subject",
                "the subject is a contact URI; use sub = vcon://<uuid> (legacy_compat is off)",
            );
        }
        return legacy_conserver(st);
    }
    let Some(uuid) = subject_uuid(sub) else {
        if lower.starts_with("vcon://") || lower.starts_with("urn:uuid:") {
            return reject(
                "subject-uuid",
                format!("subject {sub:?} does not hold a valid uuid (8-4-4-4-12 hex)"),
            );
        }
        if !cfg.allow_generic {
            return reject(
                "generic-statements",
                format!("only vCon statements are accepted; subject {sub:?} is not vcon://<uuid>"),
            );
        }
        return Ok(Profile::Generic);
    };
    // Every vCon statement, hash registrations included, is signed at a
    // time that is neither before 1970 nor beyond the skew (a wildly
    // negative iat once wrapped the occurred_at check below).
    check_iat(cfg, st.issued_at, now)?;
    if let Some(env) = &st.hash_envelope {
        return hash_registration(st, env, uuid);
    }
    match st.content_type.as_ref().and_then(ContentType::as_text) {
        Some(ct) if ct.split(';').next().map(str::trim) == Some(LIFECYCLE_CONTENT_TYPE) => {}
        other => {
            return reject(
                "vcon-content-type",
                format!(
                    "a statement about vcon://{uuid} must be {LIFECYCLE_CONTENT_TYPE} or a hash envelope of {VCON_MEDIA_TYPE}; content type is {}",
                    other
                        .map(|c| format!("{c:?}"))
                        .unwrap_or_else(|| "absent".into())
                ),
            );
        }
    }
    lifecycle(cfg, st, uuid, now).map(|r| Profile::Vcon(Box::new(r)))
}

fn hash_registration(
    st: &SignedStatement,
    env: &crate::statement::HashEnvelope,
    uuid: String,
) -> Result<Profile, PolicyRejection> {
    let pre = env
        .preimage_content_type
        .as_ref()
        .and_then(ContentType::as_text)
        .unwrap_or("");
    let pre_base = pre.split(';').next().unwrap_or("").trim();
    if !matches!(
        pre_base,
        VCON_MEDIA_TYPE | "application/vcon+json" | "application/vcon+gzip"
    ) {
        return reject(
            "vcon-hash-preimage",
            format!(
                "a hash envelope about vcon://{uuid} must have preimage content type (259) {VCON_MEDIA_TYPE}; got {pre:?}"
            ),
        );
    }
    let alg = match env.payload_hash_alg {
        -16 => HashAlg::Sha256,
        -44 => HashAlg::Sha512,
        other => {
            return reject(
                "vcon-hash-format",
                format!("vCon hashes are SHA-256 (-16) or SHA-512 (-44); got {other}"),
            );
        }
    };
    // The ContentHash form of the registered digest.
    let digest = st.payload();
    let name = alg.name();
    let vcon_hash = format!("{name}-{}", crate::keys::b64url(digest));
    debug_assert!(content_hash(alg, b"").starts_with(name));
    let event = match meta_operation(st) {
        Some(op) => Event::parse(&op).ok_or_else(|| PolicyRejection {
            rule: "unknown-event",
            detail: format!("meta-map vcon_operation {op:?} is not a vCon lifecycle event"),
        })?,
        None => Event::Created,
    };
    // Checked: iat is input (check_iat bounds it, this keeps the bound local).
    let occurred_at_ms = st.issued_at.and_then(|s| s.checked_mul(1000));
    // A consent operation names no purposes here: it applies to all of them
    // (consent::ALL_PURPOSES), so the feed and the consent state agree. It
    // needs a time to be ordered by: the issuer's iat.
    let consent = match event {
        Event::ConsentAccepted | Event::ConsentRevoked => {
            if occurred_at_ms.is_none() {
                return reject(
                    "consent-time",
                    format!(
                        "a hash registration with vcon_operation {} needs an issued-at time (CWT iat) to order it",
                        event.name()
                    ),
                );
            }
            let all = vec![super::consent::ALL_PURPOSES.to_owned()];
            Some(if event == Event::ConsentAccepted {
                ConsentChange {
                    granted: all,
                    ..ConsentChange::default()
                }
            } else {
                ConsentChange {
                    revoked: all,
                    ..ConsentChange::default()
                }
            })
        }
        _ => None,
    };
    Ok(Profile::Vcon(Box::new(LifecycleRecord {
        vcon_uuid: uuid,
        event,
        iss: st.issuer.clone(),
        occurred_at: consent
            .as_ref()
            .and(occurred_at_ms)
            .map(crate::time::format_ms),
        occurred_at_ms,
        vcon_hash: vec![vcon_hash],
        consent,
        derived_from: None,
        counterparty: None,
        deletion: None,
        form: "hash_registration".into(),
    })))
}

/// `vcon_operation` from the -6804 meta-map (text keys).
fn meta_operation(st: &SignedStatement) -> Option<String> {
    let ciborium::value::Value::Map(m) = st.meta.as_ref()? else {
        return None;
    };
    m.iter()
        .find_map(|(k, v)| match (k.as_text(), v.as_text()) {
            (Some("vcon_operation"), Some(op)) => Some(op.to_owned()),
            _ => None,
        })
}

fn legacy_conserver(st: &SignedStatement) -> Result<Profile, PolicyRejection> {
    // "<sha256 hex>:<operation>:<tel>" — index nothing personal: the subject
    // is a phone number, so the statement is logged but not tied to a vCon.
    let text = std::str::from_utf8(st.payload()).unwrap_or("");
    let mut parts = text.splitn(3, ':');
    let (hash, op) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !op.is_empty()
        && Event::parse(op).is_none()
    {
        return reject(
            "unknown-event",
            format!("legacy vcon_operation {op:?} is not a lifecycle event"),
        );
    }
    Ok(Profile::Generic)
}

fn lifecycle(
    cfg: &PolicyConfig,
    st: &SignedStatement,
    uuid: String,
    now: i64,
) -> Result<LifecycleRecord, PolicyRejection> {
    let doc: serde_json::Value =
        serde_json::from_slice(st.payload()).map_err(|e| PolicyRejection {
            rule: "payload-json",
            detail: format!("the lifecycle payload is not JSON: {e}"),
        })?;
    let Some(obj) = doc.as_object() else {
        return reject(
            "payload-json",
            "the lifecycle payload must be a JSON object",
        );
    };
    let raw_event = obj
        .get("event")
        .and_then(|v| v.as_str())
        .ok_or_else(|| PolicyRejection {
            rule: "event-required",
            detail: "the payload has no \"event\" string".into(),
        })?;
    let event = Event::parse(raw_event).ok_or_else(|| PolicyRejection {
        rule: "unknown-event",
        detail: format!(
            "event {raw_event:?} is not in the vocabulary ({})",
            ALL_EVENTS.map(Event::name).join(", ")
        ),
    })?;
    let payload_uuid = obj
        .get("vcon_uuid")
        .and_then(|v| v.as_str())
        .ok_or_else(|| PolicyRejection {
            rule: "vcon-uuid-required",
            detail: "the payload has no \"vcon_uuid\"".into(),
        })?;
    if normalize_uuid(payload_uuid).as_deref() != Some(uuid.as_str()) {
        return reject(
            "subject-uuid-mismatch",
            format!("vcon_uuid {payload_uuid:?} is not the subject's uuid {uuid}"),
        );
    }
    let vcon_hash: Vec<String> = match obj.get("vcon_hash") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PolicyRejection {
                rule: "vcon-hash-format",
                detail: "vcon_hash must be a ContentHash string or an array of them".into(),
            })?,
        Some(_) => {
            return reject(
                "vcon-hash-format",
                "vcon_hash must be a ContentHash string or an array of them",
            );
        }
    };
    for h in &vcon_hash {
        if parse_content_hash(h).is_none() {
            return reject(
                "vcon-hash-format",
                format!(
                    "vcon_hash {h:?} is not sha512-<base64url> (or sha256-) of the right length"
                ),
            );
        }
    }
    if vcon_hash.is_empty() && event.hash_required() {
        return reject(
            "vcon-hash-required",
            format!("{} needs vcon_hash", event.name()),
        );
    }
    let occurred_at = obj
        .get("occurred_at")
        .and_then(|v| v.as_str())
        .ok_or_else(|| PolicyRejection {
            rule: "occurred-at-required",
            detail: "the payload has no \"occurred_at\" (RFC 3339)".into(),
        })?;
    let occurred_ms = parse_rfc3339_ms(occurred_at).ok_or_else(|| PolicyRejection {
        rule: "occurred-at-format",
        detail: format!("occurred_at {occurred_at:?} is not RFC 3339"),
    })?;
    let signed_at = st.issued_at.unwrap_or(now);
    // Checked: iat and the skew come from input and config.
    let latest_ms = signed_at
        .checked_add(cfg.max_skew_secs)
        .and_then(|s| s.checked_mul(1000));
    if latest_ms.is_none_or(|latest| occurred_ms > latest) {
        return reject(
            "occurred-at-future",
            format!(
                "occurred_at {occurred_at} is after the issuer's signing time (iat) plus {} s",
                cfg.max_skew_secs
            ),
        );
    }
    if occurred_ms < 0 {
        return reject(
            "occurred-at-range",
            format!("occurred_at {occurred_at} is before 1970"),
        );
    }

    let consent = match event {
        Event::ConsentAccepted | Event::ConsentRevoked => Some(consent_block(obj, event)?),
        _ => None,
    };
    let derived_from = match obj.get("derived_from") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(derived(v)?),
    };
    if event == Event::Redacted && derived_from.is_none() {
        return reject(
            "derived-from",
            "vcon_redacted needs derived_from {relation, uuid, content_hash}",
        );
    }
    let counterparty = match obj.get("counterparty") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.get("id")
                .and_then(|i| i.as_str())
                .filter(|s| crate::statement::looks_like_uri(s))
                .map(str::to_owned)
                .ok_or_else(|| PolicyRejection {
                    rule: "counterparty",
                    detail: "counterparty.id must be a URI".into(),
                })?,
        ),
    };
    if matches!(event, Event::Sent | Event::Received) && counterparty.is_none() {
        return reject(
            "counterparty",
            format!("{} needs counterparty {{id: <URI>}}", event.name()),
        );
    }
    if let Some(party) = obj.get("party")
        && let Some(r) = party.get("ref").and_then(|r| r.as_str())
        && !r.starts_with("hmac-sha256:")
    {
        return reject(
            "party-ref",
            "party.ref must be hmac-sha256:<base64url>, never a raw identifier",
        );
    }
    let deletion = obj.get("deletion").filter(|v| !v.is_null()).cloned();
    Ok(LifecycleRecord {
        vcon_uuid: uuid,
        event,
        iss: st.issuer.clone(),
        occurred_at: Some(occurred_at.to_owned()),
        occurred_at_ms: Some(occurred_ms),
        vcon_hash,
        consent,
        derived_from,
        counterparty,
        deletion,
        form: "lifecycle".into(),
    })
}

/// Most purposes one consent statement may name, and the longest name:
/// each (vCon, issuer, purpose) is an index row the consent answer reads.
pub const MAX_PURPOSES: usize = 64;
pub const MAX_PURPOSE_BYTES: usize = 128;

fn consent_block(
    obj: &serde_json::Map<String, serde_json::Value>,
    event: Event,
) -> Result<ConsentChange, PolicyRejection> {
    let err = |d: &str| PolicyRejection {
        rule: "consent-block",
        detail: d.to_owned(),
    };
    let c = obj
        .get("consent")
        .and_then(|c| c.as_object())
        .ok_or_else(|| err("consent events need a \"consent\" object with \"purposes\""))?;
    let purposes = c
        .get("purposes")
        .and_then(|p| p.as_array())
        .ok_or_else(|| err("consent.purposes must be an array"))?;
    if purposes.is_empty() {
        return Err(err("consent.purposes is empty"));
    }
    if purposes.len() > MAX_PURPOSES {
        return Err(err(&format!(
            "consent.purposes lists {} purposes; at most {MAX_PURPOSES}",
            purposes.len()
        )));
    }
    let mut change = ConsentChange::default();
    for p in purposes {
        // Either {"purpose": "recording", "granted": true} or "recording".
        let (name, granted) = match p {
            serde_json::Value::String(s) => (s.clone(), event == Event::ConsentAccepted),
            serde_json::Value::Object(o) => (
                o.get("purpose")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| err("each purpose needs a \"purpose\" name"))?
                    .to_owned(),
                o.get("granted")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(event == Event::ConsentAccepted),
            ),
            _ => return Err(err("each purpose is a name or {purpose, granted}")),
        };
        if event == Event::ConsentRevoked && granted {
            return Err(err(
                "a vcon_consent_revoked statement cannot grant a purpose",
            ));
        }
        // Symmetric: every statement that revokes is a vcon_consent_revoked,
        // so the withdrawal feed (by event) lists exactly the statements
        // that withdraw something.
        if event == Event::ConsentAccepted && !granted {
            return Err(err(&format!(
                "a vcon_consent_accepted statement cannot revoke a purpose ({name:?} has granted: false); register a vcon_consent_revoked"
            )));
        }
        if name.is_empty() || name.len() > MAX_PURPOSE_BYTES {
            return Err(err(&format!(
                "a purpose name is 1 to {MAX_PURPOSE_BYTES} bytes"
            )));
        }
        if granted {
            change.granted.push(name)
        } else {
            change.revoked.push(name)
        }
    }
    change.supersedes = c
        .get("supersedes")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    change.reason = c.get("reason").and_then(|v| v.as_str()).map(str::to_owned);
    Ok(change)
}

fn derived(v: &serde_json::Value) -> Result<DerivedFrom, PolicyRejection> {
    let err = |d: String| PolicyRejection {
        rule: "derived-from",
        detail: d,
    };
    let relation = v.get("relation").and_then(|r| r.as_str()).unwrap_or("");
    if !matches!(relation, "redacted" | "amended") {
        return Err(err(format!(
            "derived_from.relation must be \"redacted\" or \"amended\", got {relation:?}"
        )));
    }
    let uuid = v
        .get("uuid")
        .and_then(|u| u.as_str())
        .and_then(normalize_uuid)
        .ok_or_else(|| err("derived_from.uuid must be a uuid".into()))?;
    let content_hash = v
        .get("content_hash")
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    if let Some(h) = &content_hash
        && parse_content_hash(h).is_none()
    {
        return Err(err(format!(
            "derived_from.content_hash {h:?} is not a ContentHash"
        )));
    }
    Ok(DerivedFrom {
        relation: relation.to_owned(),
        uuid,
        content_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalise_like_the_datatrails_link() {
        assert_eq!(
            Event::parse("consent_withdrawn"),
            Some(Event::ConsentRevoked)
        );
        assert_eq!(Event::parse("vcon-create"), Some(Event::Created));
        assert_eq!(Event::parse("create"), Some(Event::Created));
        assert_eq!(
            Event::parse("VCON_CONSENT_ACCEPTED"),
            Some(Event::ConsentAccepted)
        );
        assert_eq!(Event::parse("vcon-rcvr-purged"), Some(Event::RcvrPurged));
        assert_eq!(Event::parse("vcon_exploded"), None);
        for e in ALL_EVENTS {
            assert_eq!(Event::parse(e.name()), Some(e));
        }
        // Index keys hold the code: each event needs its own, never 0.
        let codes: std::collections::BTreeSet<u8> = ALL_EVENTS.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), ALL_EVENTS.len());
        assert!(!codes.contains(&0));
    }

    #[test]
    fn subjects_normalise() {
        let u = "019F15A6-A752-826F-B9A2-279E0D16BC46";
        assert_eq!(
            subject_uuid(&format!("vcon://{u}")).as_deref(),
            Some("019f15a6-a752-826f-b9a2-279e0d16bc46")
        );
        assert_eq!(
            subject_uuid(&format!("urn:uuid:{u}")).as_deref(),
            Some("019f15a6-a752-826f-b9a2-279e0d16bc46")
        );
        assert_eq!(subject_uuid("vcon://not-a-uuid"), None);
        let b = uuid_bytes("019f15a6-a752-826f-b9a2-279e0d16bc46").unwrap();
        assert_eq!(uuid_from_bytes(&b), "019f15a6-a752-826f-b9a2-279e0d16bc46");
    }
}

/// Inputs for a lifecycle event document (issuer side).
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    pub event: Option<Event>,
    pub vcon_uuid: String,
    /// ContentHash of the vCon's exact bytes.
    pub vcon_hash: Option<String>,
    /// RFC 3339; default now.
    pub occurred_at: Option<String>,
    pub purposes: Vec<String>,
    pub counterparty: Option<String>,
    pub derived_from: Option<DerivedFrom>,
    pub reason: Option<String>,
    pub supersedes: Option<String>,
}

/// Builds the JSON event document of a lifecycle statement.
pub fn event_document(input: &EventInput) -> serde_json::Value {
    let event = input.event.unwrap_or(Event::Created);
    let occurred_at = input
        .occurred_at
        .clone()
        .unwrap_or_else(|| format_ms(crate::time::now_secs() * 1000));
    let mut doc = serde_json::json!({
        "lifecycle_version": "0.1",
        "event": event.name(),
        "vcon_uuid": input.vcon_uuid,
        "occurred_at": occurred_at,
    });
    if let Some(h) = &input.vcon_hash {
        doc["vcon_hash"] = serde_json::json!(h);
    }
    if matches!(event, Event::ConsentAccepted | Event::ConsentRevoked) {
        let granted = event == Event::ConsentAccepted;
        let purposes: Vec<serde_json::Value> = input
            .purposes
            .iter()
            .map(|p| serde_json::json!({"purpose": p, "granted": granted}))
            .collect();
        let mut consent = serde_json::json!({"lawful_basis": "consent", "purposes": purposes});
        if let Some(s) = &input.supersedes {
            consent["supersedes"] = serde_json::json!(s);
        }
        if let Some(r) = &input.reason {
            consent["reason"] = serde_json::json!(r);
        }
        doc["consent"] = consent;
    }
    if let Some(c) = &input.counterparty {
        doc["counterparty"] = serde_json::json!({"id": c, "role": "controller"});
    }
    if let Some(d) = &input.derived_from {
        doc["derived_from"] = serde_json::to_value(d).unwrap_or_default();
    }
    if event == Event::Deleted {
        doc["deletion"] = serde_json::json!({"scope": "vcon", "reason": input.reason.clone().unwrap_or_else(|| "erasure_request".into())});
    }
    doc
}

/// Reads what a vCon file says about itself: its uuid and, for a redacted or
/// amended vCon, the version it derives from.
pub fn describe_vcon(bytes: &[u8]) -> (Option<String>, Option<DerivedFrom>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return (None, None);
    };
    let uuid = v["uuid"].as_str().and_then(normalize_uuid);
    let derived = ["redacted", "amended"].iter().find_map(|rel| {
        let o = v.get(*rel)?;
        Some(DerivedFrom {
            relation: (*rel).to_owned(),
            uuid: o.get("uuid")?.as_str().and_then(normalize_uuid)?,
            content_hash: o
                .get("content_hash")
                .and_then(|h| h.as_str())
                .map(str::to_owned),
        })
    });
    (uuid, derived)
}
