//! Signed Statements (RFC 9943 §6): parse, check the header rules, define the
//! logged entry byte-exactly, and verify the issuer signature.
//!
//! Entry = deterministic CBOR of `#6.18([protected bstr as received, {},
//! payload bstr, signature bstr])`: the unprotected header emptied as RFC 9943
//! requires, everything else byte-identical to what the issuer signed. The
//! leaf hash is `SHA-256(0x00 ‖ entry)` or `SHA-256(0x00 ‖ SHA-256(entry))`,
//! by the log's [`LeafRule`], fixed when the log is created; the entry id is
//! the leaf hash's lowercase hex. A verifier recomputes all three from a
//! Transparent Statement alone. [`LeafRule`] is every rule a verifier can
//! apply.

use std::borrow::Cow;

use ciborium::value::Value;

use crate::cbor::{self, as_i64, map_get};
use crate::cose::{self, Sign1Parts, SplitError};
use crate::keys::{Alg, PublicKey, cose_alg_name};
use crate::merkle::{self, Hash};

pub const LABEL_ALG: i64 = 1;
pub const LABEL_CRIT: i64 = 2;
pub const LABEL_CONTENT_TYPE: i64 = 3;
pub const LABEL_KID: i64 = 4;
/// conserver v0.3.0 put CWT claims under 13 (legacy, accepted on input).
pub const LABEL_CWT_CLAIMS_LEGACY: i64 = 13;
pub const LABEL_CWT_CLAIMS: i64 = 15;
pub const LABEL_TYP: i64 = 16;
pub const LABEL_X5CHAIN: i64 = 33;
pub const LABEL_X5T: i64 = 34;
pub const LABEL_PAYLOAD_HASH_ALG: i64 = 258;
pub const LABEL_PREIMAGE_CONTENT_TYPE: i64 = 259;
pub const LABEL_PAYLOAD_LOCATION: i64 = 260;
pub const LABEL_RECEIPTS: i64 = 394;
/// Pre-assignment hash-envelope labels (legacy, accepted on input).
pub const LEGACY_PAYLOAD_HASH_ALG: i64 = -6800;
pub const LEGACY_PAYLOAD_LOCATION: i64 = -6801;
pub const LEGACY_PREIMAGE_CONTENT_TYPE: i64 = -6802;
pub const LEGACY_META_MAP: i64 = -6804;

/// Labels a registration understands when listed in `crit`.
const UNDERSTOOD: [i64; 14] = [
    LABEL_ALG,
    LABEL_CONTENT_TYPE,
    LABEL_KID,
    LABEL_CWT_CLAIMS_LEGACY,
    LABEL_CWT_CLAIMS,
    LABEL_TYP,
    LABEL_X5CHAIN,
    LABEL_X5T,
    LABEL_PAYLOAD_HASH_ALG,
    LABEL_PREIMAGE_CONTENT_TYPE,
    LABEL_PAYLOAD_LOCATION,
    LEGACY_PAYLOAD_HASH_ALG,
    LEGACY_PAYLOAD_LOCATION,
    LEGACY_PREIMAGE_CONTENT_TYPE,
];

/// Default (and largest) cap on a statement's size: 64 KiB less one byte,
/// the most a C2SP entry bundle's u16 length prefix can carry
/// (`merkle::bundle`).
pub const DEFAULT_MAX_BYTES: usize = 65_535;

/// Why a statement was refused. The HTTP layer maps each to a SCRAPI title.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("the statement is {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    BadAlgorithm(String),
    #[error("the payload is detached (nil); this service needs it attached")]
    PayloadMissing,
    #[error("{0}")]
    Rejected(String),
}

impl From<SplitError> for StatementError {
    fn from(e: SplitError) -> Self {
        StatementError::Malformed(e.to_string())
    }
}

fn malformed<T>(m: impl Into<String>) -> Result<T, StatementError> {
    Err(StatementError::Malformed(m.into()))
}

/// Content type (label 3 or 259): a media type or a CoAP content format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum ContentType {
    Text(String),
    Format(u64),
}

impl ContentType {
    fn parse(v: &Value, what: &str) -> Result<ContentType, StatementError> {
        match v {
            Value::Text(t) => Ok(ContentType::Text(t.clone())),
            Value::Integer(_) => cbor::as_u64(v)
                .map(ContentType::Format)
                .ok_or_else(|| StatementError::Malformed(format!("{what} is a negative integer"))),
            _ => malformed(format!(
                "{what} must be a text string or an unsigned integer"
            )),
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentType::Text(t) => Some(t),
            ContentType::Format(_) => None,
        }
    }
}

/// The hash-envelope parameters (draft-ietf-cose-hash-envelope).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HashEnvelope {
    /// COSE hash algorithm id (-16 SHA-256, -43 SHA-384, -44 SHA-512).
    pub payload_hash_alg: i64,
    pub preimage_content_type: Option<ContentType>,
    pub payload_location: Option<String>,
    /// True when the private pre-assignment labels -6800.. were used.
    pub legacy_labels: bool,
    /// The conserver SCITT link v0.3.0's shape: under the legacy labels, a
    /// payload that is not a digest of the algorithm's length but the text
    /// `<sha256 hex>:<operation>[:<tel>]`. Parsed (so the policy can name
    /// it), admitted only by `policy.legacy_compat` (vcon/profile.rs);
    /// under the standard labels the same mismatch is malformed.
    pub text_payload: bool,
}

impl HashEnvelope {
    /// Digest length for the hash algorithm, if we support it.
    pub fn digest_len(alg: i64) -> Option<usize> {
        match alg {
            -16 => Some(32),
            -43 => Some(48),
            -44 => Some(64),
            _ => None,
        }
    }
}

/// A parsed, structurally valid Signed Statement (signature not yet checked).
#[derive(Debug, Clone)]
pub struct SignedStatement {
    pub parts: Sign1Parts,
    pub alg_id: i64,
    pub alg: Alg,
    pub issuer: String,
    pub subject: String,
    pub issued_at: Option<i64>,
    pub kid: Option<Vec<u8>>,
    /// DER certificates, leaf first (protected x5chain, or unprotected when
    /// a protected x5t pins its leaf).
    pub x5chain: Vec<Vec<u8>>,
    pub x5t: Option<(i64, Vec<u8>)>,
    pub content_type: Option<ContentType>,
    pub typ: Option<String>,
    pub hash_envelope: Option<HashEnvelope>,
    /// The -6804 meta-map (conserver/DataTrails), if present.
    pub meta: Option<Value>,
    /// Legacy encodings accepted for interop (recorded, never produced).
    pub legacy: Vec<&'static str>,
    /// The identity parameters RFC 9943 §6 requires that this statement
    /// lacks. Always empty under [`IdentityRule::Required`]; under
    /// [`IdentityRule::Optional`] it names what is missing, and `issuer` /
    /// `subject` are empty strings when the claims are.
    pub missing_identity: Vec<&'static str>,
}

/// Whether [`SignedStatement::parse_with`] insists on the issuer identity
/// RFC 9943 §6 requires (CWT claims with `iss` and `sub`, and `kid` unless
/// `x5chain`/`x5t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityRule {
    /// Registration and everything else that acts on the issuer's name.
    Required,
    /// Offline receipt checks only. Another log's statements need not follow
    /// our profile (the SCITT WG's vds-1 vectors carry no `kid`, pyscitt's
    /// no `sub`), yet their receipts can still be checked: what is missing
    /// is recorded in `missing_identity`, and the issuer signature can then
    /// only be checked against a key the relying party pins itself. Every
    /// other rule (alg, crit, claim types, hash envelope) still applies.
    Optional,
}

impl SignedStatement {
    /// Parses and checks every header rule that needs no key.
    pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<SignedStatement, StatementError> {
        Self::parse_with(bytes, max_bytes, IdentityRule::Required)
    }

    /// [`SignedStatement::parse`], with the identity parameters required or
    /// only recorded (see [`IdentityRule`]).
    pub fn parse_with(
        bytes: &[u8],
        max_bytes: usize,
        identity: IdentityRule,
    ) -> Result<SignedStatement, StatementError> {
        let optional = identity == IdentityRule::Optional;
        let mut missing_identity = Vec::new();
        if bytes.len() > max_bytes {
            return Err(StatementError::TooLarge {
                size: bytes.len(),
                max: max_bytes,
            });
        }
        if bytes.is_empty() {
            return malformed("the body is empty; expected a COSE_Sign1 (CBOR tag 18)");
        }
        let parts = cose::split(bytes)?;
        let h = &parts.protected_map;
        let mut legacy = Vec::new();

        // alg first: a client with the wrong algorithm deserves that answer.
        let alg_id = match map_get(h, LABEL_ALG) {
            Some(v) => match as_i64(v) {
                Some(i) => i,
                None => {
                    return Err(StatementError::BadAlgorithm(
                        "alg (1) must be an integer COSE algorithm id".into(),
                    ));
                }
            },
            None => {
                let hint = if map_get(&parts.unprotected, LABEL_ALG).is_some() {
                    " (it is only in the unprotected header)"
                } else {
                    ""
                };
                return Err(StatementError::BadAlgorithm(format!(
                    "the protected header has no alg (1){hint}"
                )));
            }
        };
        let alg = Alg::from_cose(alg_id).ok_or_else(|| {
            StatementError::BadAlgorithm(format!(
                "{} is not supported; use {}",
                cose_alg_name(alg_id),
                crate::keys::supported_algs_text()
            ))
        })?;

        if let Some(crit) = map_get(h, LABEL_CRIT) {
            let Value::Array(labels) = crit else {
                return malformed("crit (2) must be an array of labels");
            };
            if labels.is_empty() {
                return malformed("crit (2) must not be empty");
            }
            if labels.len() > cose::MAX_HEADER_LABELS {
                return malformed(format!(
                    "crit (2) lists {} labels; the header holds at most {}",
                    labels.len(),
                    cose::MAX_HEADER_LABELS
                ));
            }
            for l in labels {
                match as_i64(l) {
                    Some(i) if UNDERSTOOD.contains(&i) => {
                        if map_get(h, i).is_none() {
                            return malformed(format!(
                                "crit lists label {i}, which is not in the protected header"
                            ));
                        }
                    }
                    _ => {
                        return malformed(format!(
                            "crit lists {}, which this service does not understand",
                            label_name(l)
                        ));
                    }
                }
            }
        }

        // CWT claims: 15, or legacy 13.
        let claims = match (
            map_get(h, LABEL_CWT_CLAIMS),
            map_get(h, LABEL_CWT_CLAIMS_LEGACY),
        ) {
            (Some(c), _) => Some(c),
            (None, Some(c)) => {
                legacy.push("CWT claims under label 13 (conserver v0.3.0)");
                Some(c)
            }
            (None, None) if optional => {
                missing_identity.push("CWT claims (15)");
                None
            }
            (None, None) => {
                return malformed("the protected header has no CWT claims (15) with iss and sub");
            }
        };
        let claims: &[(Value, Value)] = match claims {
            Some(Value::Map(m)) => m,
            Some(_) => return malformed("CWT claims (15) must be a map"),
            None => &[],
        };
        // Absent claims are recorded once, as the map, not claim by claim.
        let claims_absent = !missing_identity.is_empty();
        let issuer = match map_get(claims, 1) {
            Some(Value::Text(t)) if !t.is_empty() => t.clone(),
            Some(Value::Text(_)) => return malformed("CWT iss (1) is empty"),
            Some(_) => return malformed("CWT iss (1) must be a text string"),
            None if optional => {
                if !claims_absent {
                    missing_identity.push("CWT iss (1)");
                }
                String::new()
            }
            None => return malformed("CWT claims have no iss (1)"),
        };
        let subject = match map_get(claims, 2) {
            Some(Value::Text(t)) if !t.is_empty() => t.clone(),
            Some(Value::Text(_)) => return malformed("CWT sub (2) is empty"),
            Some(_) => return malformed("CWT sub (2) must be a text string"),
            None if optional => {
                if !claims_absent {
                    missing_identity.push("CWT sub (2)");
                }
                String::new()
            }
            None => return malformed("CWT claims have no sub (2)"),
        };
        let issued_at = match map_get(claims, 6) {
            None => None,
            Some(Value::Float(f)) if f.is_finite() => Some(*f as i64),
            Some(v) => Some(as_i64(v).ok_or_else(|| {
                StatementError::Malformed("CWT iat (6) must be a NumericDate".into())
            })?),
        };

        let kid = match map_get(h, LABEL_KID) {
            None => None,
            Some(Value::Bytes(b)) => Some(b.clone()),
            Some(Value::Text(t)) => {
                legacy.push("kid as a text string");
                Some(t.as_bytes().to_vec())
            }
            Some(_) => return malformed("kid (4) must be a byte string"),
        };
        let x5t = match map_get(h, LABEL_X5T) {
            None => None,
            Some(Value::Array(a)) if a.len() == 2 => match (&a[0], &a[1]) {
                (alg, Value::Bytes(hash)) => Some((
                    as_i64(alg).ok_or_else(|| {
                        StatementError::Malformed("x5t hash algorithm must be an integer".into())
                    })?,
                    hash.clone(),
                )),
                _ => return malformed("x5t (34) must be [hashAlg, hashValue]"),
            },
            Some(_) => return malformed("x5t (34) must be [hashAlg, hashValue]"),
        };
        let x5chain = match (
            map_get(h, LABEL_X5CHAIN),
            map_get(&parts.unprotected, LABEL_X5CHAIN),
        ) {
            (Some(c), _) => parse_x5chain(c)?,
            // RFC 9360 allows an unprotected x5chain under a protected x5t,
            // but the logged entry keeps only what the issuer signed: the
            // chain would be dropped, and the stored statement could no
            // longer be checked against the anchor.
            (None, Some(_)) => {
                return malformed(
                    "x5chain (33) must be in the protected header: the log keeps only the signed headers, so an unprotected chain would be lost from the entry",
                );
            }
            (None, None) => Vec::new(),
        };
        if kid.is_none() && x5chain.is_empty() && x5t.is_none() {
            if !optional {
                return malformed(
                    "the protected header has neither kid (4) nor x5chain (33) / x5t (34)",
                );
            }
            missing_identity.push("kid (4), x5chain (33) or x5t (34)");
        }
        // A missing iss is recorded above; the URI rule applies to one present.
        if (!x5chain.is_empty() || x5t.is_some()) && !issuer.is_empty() {
            if issuer.chars().count() > 8192 {
                return malformed("iss is longer than 8192 characters");
            }
            if !looks_like_uri(&issuer) {
                return malformed(format!(
                    "with x5chain/x5t, iss must be a URI (RFC 9943 §6); got {issuer:?}"
                ));
            }
        }

        let content_type = map_get(h, LABEL_CONTENT_TYPE)
            .map(|v| ContentType::parse(v, "content type (3)"))
            .transpose()?;
        let typ = match map_get(h, LABEL_TYP) {
            None => None,
            Some(Value::Text(t)) => Some(t.clone()),
            Some(_) => None,
        };

        // Hash envelope: standard labels, or the legacy private ones.
        for label in [
            LABEL_PAYLOAD_HASH_ALG,
            LABEL_PREIMAGE_CONTENT_TYPE,
            LABEL_PAYLOAD_LOCATION,
        ] {
            if map_get(&parts.unprotected, label).is_some() {
                return malformed(format!(
                    "hash-envelope label {label} must not be in the unprotected header"
                ));
            }
        }
        let std_alg = map_get(h, LABEL_PAYLOAD_HASH_ALG);
        let legacy_alg = map_get(h, LEGACY_PAYLOAD_HASH_ALG);
        let hash_envelope = match (std_alg, legacy_alg) {
            (Some(a), _) | (None, Some(a)) => {
                let legacy_labels = std_alg.is_none();
                if legacy_labels {
                    legacy.push("hash-envelope labels -6800/-6801/-6802");
                }
                let payload_hash_alg = as_i64(a).ok_or_else(|| {
                    StatementError::Malformed("payload-hash-alg (258) must be an integer".into())
                })?;
                if content_type.is_some() {
                    return malformed("a hash envelope must not carry content type (3); use 259");
                }
                let (ct_label, loc_label) = if legacy_labels {
                    (LEGACY_PREIMAGE_CONTENT_TYPE, LEGACY_PAYLOAD_LOCATION)
                } else {
                    (LABEL_PREIMAGE_CONTENT_TYPE, LABEL_PAYLOAD_LOCATION)
                };
                let preimage_content_type = map_get(h, ct_label)
                    .map(|v| ContentType::parse(v, "preimage content type"))
                    .transpose()?;
                // A null location is "absent": the conserver SCITT link's
                // statement tool sends -6801: null (issue 13, interop).
                let payload_location = match map_get(h, loc_label) {
                    None | Some(Value::Null) => None,
                    Some(Value::Text(t)) => Some(t.clone()),
                    Some(_) => return malformed("payload-location must be a text string or null"),
                };
                Some(HashEnvelope {
                    payload_hash_alg,
                    preimage_content_type,
                    payload_location,
                    legacy_labels,
                    text_payload: false,
                })
            }
            (None, None) => None,
        };
        let meta = map_get(h, LEGACY_META_MAP).cloned();
        if meta.is_some() {
            legacy.push("meta-map -6804");
        }

        let Some(payload) = parts.payload.as_ref() else {
            return Err(StatementError::PayloadMissing);
        };
        let mut hash_envelope = hash_envelope;
        if let Some(env) = &mut hash_envelope {
            match HashEnvelope::digest_len(env.payload_hash_alg) {
                None => {
                    return Err(StatementError::Rejected(format!(
                        "payload-hash-alg {} is not supported (use SHA-256 -16, SHA-384 -43 or SHA-512 -44)",
                        env.payload_hash_alg
                    )));
                }
                Some(n) if n != payload.len() && env.legacy_labels => {
                    env.text_payload = true;
                    legacy.push("conserver v0.3.0 text payload under hash-envelope labels");
                }
                Some(n) if n != payload.len() => {
                    return malformed(format!(
                        "the hash-envelope payload is {} bytes but payload-hash-alg {} makes {n}",
                        payload.len(),
                        env.payload_hash_alg
                    ));
                }
                Some(_) => {}
            }
        }

        Ok(SignedStatement {
            alg_id,
            alg,
            issuer,
            subject,
            issued_at,
            kid,
            x5chain,
            x5t,
            content_type,
            typ,
            hash_envelope,
            meta,
            legacy,
            missing_identity,
            parts,
        })
    }

    pub fn payload(&self) -> &[u8] {
        self.parts.payload.as_deref().unwrap_or_default()
    }

    /// The logged entry: unprotected header emptied, all else as signed.
    pub fn entry_bytes(&self) -> Vec<u8> {
        entry_bytes(&self.parts)
    }

    /// The leaf this statement gets in a log that follows `rule`: the same
    /// function the log applies to its stored entry ([`LeafRule::hash_entry`]).
    pub fn leaf_hash(&self, rule: LeafRule) -> Hash {
        rule.hash_entry(&self.entry_bytes())
    }

    /// The registration identity (see [`registration_identity`]).
    pub fn registration_identity(&self) -> Hash {
        registration_identity(&self.parts.protected, self.payload())
    }

    /// Checks the issuer signature with `key` (whose algorithm must match).
    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), StatementError> {
        if key.alg != self.alg {
            return Err(StatementError::Rejected(format!(
                "the statement says {} but the issuer key is {}",
                cose_alg_name(self.alg_id),
                key.alg.name()
            )));
        }
        let tbs = cose::sig_structure(&self.parts.protected, self.payload());
        if key.verify(&tbs, &self.parts.signature) {
            Ok(())
        } else {
            Err(StatementError::Rejected(
                "the issuer signature does not verify".into(),
            ))
        }
    }

    /// Receipts already embedded under 394 (bstr-wrapped, or bare tag 18 as
    /// RFC 9943's CDDL shows, or a bstr in tag 64 as @transmute/cose writes).
    pub fn embedded_receipts(&self) -> Vec<Vec<u8>> {
        match map_get(&self.parts.unprotected, LABEL_RECEIPTS) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| match r {
                    Value::Bytes(b) => Some(b.clone()),
                    tagged @ Value::Tag(18, _) => Some(cbor::encode(tagged)),
                    // RFC 8746 tag 64 (uint8 typed array) around the bstr:
                    // how @transmute/cose 0.2.11's CBOR library writes a
                    // JavaScript Uint8Array, so its Transparent Statements
                    // carry receipts this way. The bytes are the same.
                    Value::Tag(64, inner) => match inner.as_ref() {
                        Value::Bytes(b) => Some(b.clone()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Entry bytes from split parts (see module docs): [`LeafRule::Entry`].
pub fn entry_bytes(parts: &Sign1Parts) -> Vec<u8> {
    cose::encode_sign1(
        &parts.protected,
        Vec::new(),
        parts.payload.as_deref(),
        &parts.signature,
    )
}

pub use crate::merkle::leaf_rule::{LeafRule, UnknownLeafRule};

/// The statement-level half of [`LeafRule`] (the rule itself, and what
/// the log applies to stored entries, is in [`crate::merkle::leaf_rule`]).
impl LeafRule {
    /// The leaf entry of the statement given as `bytes` (already split into
    /// `parts`; a Transparent Statement is fine under either rule).
    pub fn leaf_entry(self, bytes: &[u8], parts: &Sign1Parts) -> Vec<u8> {
        match self {
            LeafRule::Entry => entry_bytes(parts),
            LeafRule::StatementSha256 => {
                let registered = registered_statement_bytes(bytes, parts);
                ring::digest::digest(&ring::digest::SHA256, &registered)
                    .as_ref()
                    .to_vec()
            }
            LeafRule::PayloadSha256 => ring::digest::digest(
                &ring::digest::SHA256,
                parts.payload.as_deref().unwrap_or_default(),
            )
            .as_ref()
            .to_vec(),
        }
    }

    /// `SHA-256(0x00 ‖ leaf entry)`.
    pub fn leaf_hash(self, bytes: &[u8], parts: &Sign1Parts) -> Hash {
        merkle::leaf_hash(&self.leaf_entry(bytes, parts))
    }
}

/// The statement bytes as they were registered, for
/// [`LeafRule::StatementSha256`]: the bytes given, untouched, unless they
/// carry receipts (394), which a Transparent Statement gained after
/// registration. Then 394 is removed and the envelope re-encoded with the
/// other unprotected parameters in their order and preferred (shortest)
/// lengths, which is byte-exact for every issuer that encodes that way (all
/// we have seen, the WG's vectors included) and cannot be made exact for one
/// that does not: the original bytes are gone once 394 was spliced in.
pub fn registered_statement_bytes<'a>(bytes: &'a [u8], parts: &Sign1Parts) -> Cow<'a, [u8]> {
    if map_get(&parts.unprotected, LABEL_RECEIPTS).is_none() {
        return Cow::Borrowed(bytes);
    }
    let unprotected = parts
        .unprotected
        .iter()
        .filter(|(k, _)| as_i64(k) != Some(LABEL_RECEIPTS))
        .cloned()
        .collect();
    Cow::Owned(cose::encode_sign1(
        &parts.protected,
        unprotected,
        parts.payload.as_deref(),
        &parts.signature,
    ))
}

/// Registration identity: SHA-256 of the `Sig_structure` the issuer signed
/// (RFC 9052 §4.4: "Signature1", the protected header bytes, empty external
/// AAD, the payload), i.e. of everything the signature covers and nothing
/// else. Two statements that differ only in their signature bytes are one
/// registration: an ECDSA signature (r, s) also verifies as (r, n − s), so
/// anyone holding a published ES256/ES384 statement could otherwise mint a
/// second verifying entry the issuer never made; an issuer re-signing the
/// same content (a fresh ECDSA nonce) is the same registration too.
/// The service dedups on this (spec-notes/registration-identity.md).
pub fn registration_identity(protected: &[u8], payload: &[u8]) -> Hash {
    let tbs = cose::sig_structure(protected, payload);
    let d = ring::digest::digest(&ring::digest::SHA256, &tbs);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The registration identity of a stored entry, or None when the entry is
/// not a COSE_Sign1 with an attached payload (tools may log raw bytes).
pub fn entry_registration_identity(entry: &[u8]) -> Option<Hash> {
    let parts = cose::split(entry).ok()?;
    let payload = parts.payload.as_deref()?;
    Some(registration_identity(&parts.protected, payload))
}

/// Entry id: lowercase hex of the leaf hash.
pub fn entry_id(leaf: &Hash) -> String {
    hex::encode(leaf)
}

/// A Transparent Statement: the statement with `receipts` added under 394
/// (each bstr-wrapped, per RFC 9942), keeping other unprotected parameters
/// and any receipts from other services.
pub fn transparent_statement(
    statement: &[u8],
    receipts: &[Vec<u8>],
) -> Result<Vec<u8>, StatementError> {
    let parts = cose::split(statement)?;
    let mut unprotected: Vec<(Value, Value)> = parts
        .unprotected
        .into_iter()
        .filter(|(k, _)| as_i64(k) != Some(LABEL_RECEIPTS))
        .collect();
    let existing = match cose::split(statement)
        .ok()
        .and_then(|p| map_get(&p.unprotected, LABEL_RECEIPTS).cloned())
    {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    let mut all: Vec<Value> = receipts.iter().map(|r| Value::Bytes(r.clone())).collect();
    for r in existing {
        if !all.contains(&r) {
            all.push(r);
        }
    }
    unprotected.push((cbor::int(LABEL_RECEIPTS), Value::Array(all)));
    Ok(cose::encode_sign1(
        &parts.protected,
        unprotected,
        parts.payload.as_deref(),
        &parts.signature,
    ))
}

fn parse_x5chain(v: &Value) -> Result<Vec<Vec<u8>>, StatementError> {
    match v {
        Value::Bytes(b) => Ok(vec![b.clone()]),
        Value::Array(a) if !a.is_empty() && a.len() <= 8 => a
            .iter()
            .map(|c| match c {
                Value::Bytes(b) => Ok(b.clone()),
                _ => malformed("x5chain (33) entries must be byte strings (DER certificates)"),
            })
            .collect(),
        Value::Array(_) => malformed("x5chain (33) must hold 1 to 8 certificates"),
        _ => malformed("x5chain (33) must be a bstr or an array of bstr"),
    }
}

/// RFC 8392 StringOrURI: a value with ':' must be a URI. We require a scheme
/// (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":") and no spaces.
pub fn looks_like_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn label_name(l: &Value) -> String {
    match l {
        Value::Integer(_) => as_i64(l)
            .map(|i| format!("label {i}"))
            .unwrap_or_else(|| "a huge label".into()),
        Value::Text(t) => format!("label {t:?}"),
        _ => "a non-label value".into(),
    }
}

/// Builds and signs a Signed Statement (issuer side: CLI, tests, benches),
/// with coset's builders. Protected header: alg, kid, content type or the
/// hash-envelope labels, CWT claims {iss, sub, iat}, plus `extra` labels.
pub struct Builder<'a> {
    pub key: &'a crate::keys::SigningKey,
    /// kid to send; default the key's RFC 9679 thumbprint.
    pub kid: Option<Vec<u8>>,
    pub issuer: String,
    pub subject: String,
    pub issued_at: Option<i64>,
    pub content_type: Option<String>,
    /// (payload-hash-alg, preimage content type) for a hash envelope.
    pub hash_envelope: Option<(i64, String)>,
    pub extra: Vec<(i64, Value)>,
}

impl<'a> Builder<'a> {
    pub fn new(key: &'a crate::keys::SigningKey, issuer: &str, subject: &str) -> Self {
        Builder {
            key,
            kid: None,
            issuer: issuer.into(),
            subject: subject.into(),
            issued_at: None,
            content_type: None,
            hash_envelope: None,
            extra: Vec::new(),
        }
    }

    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        use coset::{CborSerializable, HeaderBuilder, TaggedCborSerializable, iana};
        let mut claims = vec![
            (cbor::int(1), Value::Text(self.issuer.clone())),
            (cbor::int(2), Value::Text(self.subject.clone())),
        ];
        if let Some(iat) = self.issued_at {
            claims.push((cbor::int(6), cbor::int(iat)));
        }
        let alg = match self.key.alg() {
            Alg::P256 => iana::Algorithm::ES256,
            Alg::P384 => iana::Algorithm::ES384,
            Alg::Ed25519 => iana::Algorithm::EdDSA,
        };
        let mut hb = HeaderBuilder::new()
            .algorithm(alg)
            .key_id(self.kid.clone().unwrap_or_else(|| self.key.kid()));
        if let Some(ct) = &self.content_type {
            hb = hb.content_type(ct.clone());
        }
        hb = hb.value(LABEL_CWT_CLAIMS, Value::Map(claims));
        if let Some((hash_alg, preimage)) = &self.hash_envelope {
            hb = hb
                .value(LABEL_PAYLOAD_HASH_ALG, cbor::int(*hash_alg))
                .value(LABEL_PREIMAGE_CONTENT_TYPE, Value::Text(preimage.clone()));
        }
        for (label, v) in &self.extra {
            hb = hb.value(*label, v.clone());
        }
        let protected = hb.build();
        let mut err = None;
        let msg = coset::CoseSign1Builder::new()
            .protected(protected)
            .payload(payload.to_vec())
            .create_signature(b"", |tbs| match self.key.sign(tbs) {
                Ok(s) => s,
                Err(e) => {
                    err = Some(e.to_string());
                    Vec::new()
                }
            })
            .build();
        if let Some(e) = err {
            return Err(e);
        }
        let bytes = msg.to_tagged_vec().map_err(|e| e.to_string())?;
        // Round-trip through our own parser so a builder bug cannot go unseen.
        let _ = coset::CoseSign1::from_slice(&bytes[1..]).map_err(|e| e.to_string())?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod legacy_label_tests {
    use super::*;
    use crate::keys::{Alg, SigningKey};

    /// The conserver SCITT link's standalone statement tool sends
    /// `-6801: null` (issue 13): a null payload location is absent, not
    /// malformed. Any other non-text value still is.
    #[test]
    fn a_null_legacy_payload_location_is_absent() {
        let (key, _) = SigningKey::generate(Alg::P256).unwrap();
        let sign = |location: Value| {
            let mut b = Builder::new(&key, "https://conserver.test.example", "vcon://x");
            b.extra = vec![
                (LEGACY_PAYLOAD_HASH_ALG, Value::Integer((-16).into())),
                (LEGACY_PAYLOAD_LOCATION, location),
                (
                    LEGACY_PREIMAGE_CONTENT_TYPE,
                    Value::Text("application/vcon+json".into()),
                ),
            ];
            b.sign(&[7u8; 32]).unwrap()
        };
        let st = SignedStatement::parse(&sign(Value::Null), usize::MAX).unwrap();
        let env = st.hash_envelope.unwrap();
        assert!(env.legacy_labels);
        assert_eq!(env.payload_location, None);
        let err = SignedStatement::parse(&sign(Value::Integer(1.into())), usize::MAX).unwrap_err();
        assert!(err.to_string().contains("payload-location"), "{err}");
    }
}
