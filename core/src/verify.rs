//! Offline verification of a registration: everything a relying party needs,
//! with no network. Used by `vcon-verify` and by `vcon-scitt audit`.
//!
//! Steps: parse the statement (a Transparent Statement, or a Signed Statement
//! plus receipt files); recompute the leaf entry under the log's leaf rule
//! ([`LeafRule`]: ours by default) and its leaf hash; verify each receipt
//! whose kid is a trusted service key (at least one must, and none of those
//! may fail); optionally the issuer signature, the held vCon's hash and a
//! consistency receipt to a newer tree head.
//!
//! Receipt-only mode: a statement without the identity our profile requires
//! (no `kid`/`x5chain`/`x5t`, no CWT `iss`/`sub`: other logs' statements,
//! like the SCITT WG's vectors) is still checked for its receipts. Its issuer
//! signature is then checked only against issuer keys the relying party
//! pinned (`--issuer-key`); without them the report says, in so many words,
//! that the issuer signature was not checked.

use serde::Serialize;

use crate::issuers::{IssuerTrust, KeySource};
use crate::keys::KeySet;
use crate::merkle::Hash;
use crate::receipt::{self, ReceiptError, ReceiptInfo};
use crate::statement::{IdentityRule, LeafRule, SignedStatement, StatementError, entry_id};
use crate::vcon;

/// Failure classes; each has its own process exit code.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("input: {0}")]
    Input(String),
    #[error("statement: {0}")]
    Statement(String),
    #[error("no receipt: {0}")]
    NoReceipt(String),
    #[error("receipt malformed: {0}")]
    ReceiptMalformed(String),
    #[error("receipt key: {0}")]
    UnknownKey(String),
    #[error("receipt proof: {0}")]
    Proof(String),
    #[error("receipt signature: {0}")]
    Signature(String),
    #[error("issuer signature: {0}")]
    Issuer(String),
    #[error("vCon: {0}")]
    Vcon(String),
    #[error("consistency: {0}")]
    Consistency(String),
}

impl VerifyError {
    /// Process exit code (documented in README and `vcon-verify --help`).
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyError::Input(_) => 2,
            VerifyError::Statement(_) => 3,
            VerifyError::NoReceipt(_) => 4,
            VerifyError::ReceiptMalformed(_) => 5,
            VerifyError::UnknownKey(_) => 6,
            VerifyError::Proof(_) => 7,
            VerifyError::Signature(_) => 8,
            VerifyError::Issuer(_) => 9,
            VerifyError::Vcon(_) => 10,
            VerifyError::Consistency(_) => 11,
        }
    }

    pub fn class(&self) -> &'static str {
        match self {
            VerifyError::Input(_) => "input",
            VerifyError::Statement(_) => "statement",
            VerifyError::NoReceipt(_) => "no-receipt",
            VerifyError::ReceiptMalformed(_) => "receipt-malformed",
            VerifyError::UnknownKey(_) => "unknown-key",
            VerifyError::Proof(_) => "proof",
            VerifyError::Signature(_) => "signature",
            VerifyError::Issuer(_) => "issuer",
            VerifyError::Vcon(_) => "vcon",
            VerifyError::Consistency(_) => "consistency",
        }
    }
}

impl From<ReceiptError> for VerifyError {
    fn from(e: ReceiptError) -> Self {
        let m = e.to_string();
        match e {
            ReceiptError::Malformed(_)
            | ReceiptError::Header(_)
            | ReceiptError::UnsupportedVds(_)
            | ReceiptError::UnsupportedAlg(_)
            | ReceiptError::UnknownCritical(_) => VerifyError::ReceiptMalformed(m),
            ReceiptError::UnknownKey(_) | ReceiptError::NoKeyForAlg(_) => {
                VerifyError::UnknownKey(m)
            }
            ReceiptError::Proof(_)
            | ReceiptError::SizeMismatch { .. }
            | ReceiptError::PayloadMismatch => VerifyError::Proof(m),
            ReceiptError::BadSignature | ReceiptError::NoKeyVerifies { .. } => {
                VerifyError::Signature(m)
            }
        }
    }
}

/// What to verify.
#[derive(Default)]
pub struct Request {
    /// A Transparent Statement, or a Signed Statement with `receipts`.
    pub statement: Vec<u8>,
    pub receipts: Vec<Vec<u8>>,
    pub service_keys: KeySet,
    /// When set, the issuer signature is verified too.
    pub issuer_trust: Option<IssuerTrust>,
    pub vcon: Option<Vec<u8>>,
    /// A consistency receipt from the inclusion receipt's tree size onwards.
    pub consistency: Option<Vec<u8>>,
    /// Registration-time clock for certificate validity (Unix seconds).
    pub now: i64,
    /// How the log that issued the receipts hashed the statement into its
    /// leaf (a receipt verifies only under its log's rule). None: each rule
    /// in [`LeafRule::BINDING_THE_STATEMENT`] is tried, per receipt (sound:
    /// see `verify_under_rules`), and the report names the one that
    /// verified; `payload-sha256` only when asked for.
    pub leaf_rule: Option<LeafRule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: &'static str,
    /// The statement's CWT iss and sub; None when it has none.
    pub issuer: Option<String>,
    pub subject: Option<String>,
    /// The leaf rule the receipts were checked under.
    pub leaf_rule: LeafRule,
    /// Lowercase hex of the leaf hash (our entry id under our rule).
    pub entry_id: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    pub root: String,
    /// The kid the verified receipt names; empty when it names none.
    pub kid: String,
    /// RFC 9679 thumbprint of the service key the receipt verified under.
    pub service_key: String,
    pub service: Option<String>,
    pub log: Option<String>,
    /// Tree-head time (CWT iat of the receipt), Unix seconds.
    pub time: Option<i64>,
    pub receipts_verified: usize,
    pub receipts_skipped: usize,
    /// True when the issuer signature was verified; false when it was not
    /// checked (receipt-only). A bad issuer signature is an error, not a
    /// report.
    pub issuer_verified: bool,
    pub issuer_signature: String,
    /// What the statement lacks of the identity RFC 9943 §6 requires (kid or
    /// x5chain/x5t, CWT iss and sub); empty for a statement of our profile.
    pub missing_identity: Vec<&'static str>,
    pub vcon: Option<String>,
    pub consistent_to: Option<ConsistencyReport>,
    pub legacy: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyReport {
    pub tree_size: u64,
    pub root: String,
}

/// Runs every requested check; `Ok` only if all of them pass.
pub fn verify(req: &Request) -> Result<Report, VerifyError> {
    let st = SignedStatement::parse_with(&req.statement, usize::MAX, IdentityRule::Optional)
        .map_err(|e| match e {
            StatementError::PayloadMissing => {
                VerifyError::Statement("the payload is detached".into())
            }
            other => VerifyError::Statement(other.to_string()),
        })?;
    let rules: &[LeafRule] = match &req.leaf_rule {
        Some(rule) => std::slice::from_ref(rule),
        None => &LeafRule::BINDING_THE_STATEMENT,
    };
    let leaves: Vec<(LeafRule, Hash)> = rules
        .iter()
        .map(|r| (*r, r.leaf_hash(&req.statement, &st.parts)))
        .collect();
    let mut receipts = st.embedded_receipts();
    receipts.extend(req.receipts.iter().cloned());
    if receipts.is_empty() {
        return Err(VerifyError::NoReceipt(
            "the statement carries no receipt (394) and none was given".into(),
        ));
    }
    if req.service_keys.is_empty() {
        return Err(VerifyError::Input("no service keys given".into()));
    }
    let (mut verified, mut skipped) = (Vec::<(ReceiptInfo, LeafRule, Hash)>::new(), 0usize);
    let (mut untrusted, mut unattributed) = (None, None);
    for r in &receipts {
        match verify_under_rules(r, &leaves, &req.service_keys) {
            Ok(found) => verified.push(found),
            // A receipt from a service we do not trust is skipped (RFC 9943 §7.1).
            Err(e) if e.is_untrusted_key() => {
                skipped += 1;
                untrusted.get_or_insert(e);
            }
            // A receipt that names no kid and verifies under none of our keys
            // cannot be told apart from another service's receipt, so it is
            // skipped like one; one that names a trusted kid and fails is an
            // error. If nothing verifies, this is the failure reported: it
            // says more than "no trusted key".
            Err(e @ ReceiptError::NoKeyVerifies { .. }) => {
                skipped += 1;
                unattributed.get_or_insert(e);
            }
            Err(e) => return Err(with_rules(e.into(), rules)),
        }
    }
    let Some((first, leaf_rule, leaf)) = verified.first().cloned() else {
        return Err(match unattributed.or(untrusted) {
            Some(e) => with_rules(e.into(), rules),
            None => VerifyError::NoReceipt("no receipt verified".into()),
        });
    };

    let (issuer_verified, issuer_signature) = issuer_check(&st, req)?;

    let vcon = match &req.vcon {
        None => None,
        Some(bytes) => Some(vcon_link(&st, bytes).map_err(VerifyError::Vcon)?),
    };

    let consistent_to = match &req.consistency {
        None => None,
        Some(c) => {
            let root1: Hash = first
                .root
                .as_slice()
                .try_into()
                .map_err(|_| VerifyError::Proof("bad root".into()))?;
            let info =
                receipt::verify_consistency_receipt(c, first.tree_size, &root1, &req.service_keys)
                    .map_err(|e| VerifyError::Consistency(e.to_string()))?;
            Some(ConsistencyReport {
                tree_size: info.tree_size,
                root: hex::encode(&info.root),
            })
        }
    };

    let present = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(Report {
        verdict: "OK",
        issuer: present(&st.issuer),
        subject: present(&st.subject),
        leaf_rule,
        entry_id: entry_id(&leaf),
        leaf_index: first.leaf_index,
        tree_size: first.tree_size,
        root: hex::encode(&first.root),
        kid: hex::encode(&first.kid),
        service_key: hex::encode(&first.key_thumbprint),
        service: first.issuer.clone(),
        log: first.subject.clone(),
        time: first.issued_at,
        receipts_verified: verified.len(),
        receipts_skipped: skipped,
        issuer_verified,
        issuer_signature,
        missing_identity: st.missing_identity.clone(),
        vcon,
        consistent_to,
        legacy: st.legacy.clone(),
    })
}

/// Verifies one receipt under each candidate leaf rule in turn; the first
/// that verifies wins. Trying both rules is sound: a leaf under `entry`
/// hashes a COSE_Sign1 (it parsed), a leaf under `statement-sha256` hashes
/// 32 bytes, which no COSE_Sign1 is, so one leaf hash cannot stand for two
/// statements across the rules without a SHA-256 collision. Only a failure
/// that depends on the leaf (the signature over the recomputed root) moves
/// on to the next rule; anything else about the receipt (its kid, vds,
/// proof shape) is the same under every rule and is returned at once.
pub fn verify_under_rules(
    receipt_bytes: &[u8],
    leaves: &[(LeafRule, Hash)],
    keys: &KeySet,
) -> Result<(ReceiptInfo, LeafRule, Hash), ReceiptError> {
    let mut last = None;
    for (rule, leaf) in leaves {
        match receipt::verify_inclusion_receipt(receipt_bytes, leaf, keys) {
            Ok(info) => return Ok((info, *rule, *leaf)),
            Err(e @ (ReceiptError::BadSignature | ReceiptError::NoKeyVerifies { .. })) => {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ReceiptError::BadSignature))
}

/// A receipt signature that fails under the wrong leaf rule looks exactly
/// like a forged one (the root is detached), so the failure names the
/// rule(s) it was checked under.
fn with_rules(e: VerifyError, rules: &[LeafRule]) -> VerifyError {
    match e {
        VerifyError::Signature(m) => {
            let names: Vec<&str> = rules.iter().map(|r| r.name()).collect();
            let hint = if rules.len() == 1 {
                "; a receipt from a log with another rule fails here too: see --leaf-rule"
            } else {
                ""
            };
            VerifyError::Signature(format!(
                "{m} (checked under leaf rule {}{hint})",
                names.join(" and ")
            ))
        }
        other => other,
    }
}

/// The issuer signature: (verified?, what the report says about it).
///
/// - No issuer trust given: not checked (receipt-only).
/// - A statement naming a kid or carrying x5chain/x5t: as the service
///   checks it ([`IssuerTrust::verify`]), unchanged.
/// - A statement naming none of them (receipt-only mode): checked against
///   the pinned issuer keys of its algorithm, any of which may verify it, as
///   for a receipt without a kid (see `receipt::candidate_keys`). Keys given
///   on the command line are pinned for whatever issuer the statement
///   names, so the one `--issuer-key` of the WG vectors is simply tried.
fn issuer_check(st: &SignedStatement, req: &Request) -> Result<(bool, String), VerifyError> {
    let Some(trust) = &req.issuer_trust else {
        let why = if st.missing_identity.is_empty() {
            "no issuer key or trust anchor was given".to_string()
        } else {
            format!(
                "the statement has no {}, and no issuer key was given",
                st.missing_identity.join(", no ")
            )
        };
        return Ok((false, format!("not checked (receipt only: {why})")));
    };
    let names_a_key = st.kid.is_some() || !st.x5chain.is_empty() || st.x5t.is_some();
    if names_a_key {
        return match trust.verify(st, req.now) {
            Ok(KeySource::Registry { kid }) => Ok((true, format!("verified (issuer key {kid})"))),
            Ok(KeySource::X509 {
                leaf_subject,
                anchor_subject,
            }) => Ok((
                true,
                format!("verified (certificate {leaf_subject} under {anchor_subject})"),
            )),
            Err(e) => Err(VerifyError::Issuer(e.to_string())),
        };
    }
    let keys = trust.keys_for(&st.issuer).ok_or_else(|| {
        VerifyError::Issuer(
            "the statement names no kid, x5chain or x5t, and no issuer key was pinned for it"
                .into(),
        )
    })?;
    let mut tried = 0usize;
    for (_, key) in &keys.keys {
        if key.alg != st.alg {
            continue;
        }
        tried += 1;
        if st.verify_signature(key).is_ok() {
            return Ok((
                true,
                format!(
                    "verified (pinned issuer key {}; the statement names no kid)",
                    hex::encode(key.thumbprint())
                ),
            ));
        }
    }
    Err(VerifyError::Issuer(if tried == 0 {
        format!(
            "the statement names no kid and no given issuer key is an {} key",
            st.alg.name()
        )
    } else {
        format!(
            "the issuer signature verifies under none of the {tried} given {} issuer key(s) (the statement names no kid)",
            st.alg.name()
        )
    }))
}

/// Checks that a held vCon file is the one a statement registered. Returns
/// how it matched.
pub fn vcon_link(st: &SignedStatement, bytes: &[u8]) -> Result<String, String> {
    if let Some(env) = &st.hash_envelope {
        let alg = vcon::HashAlg::from_cose(env.payload_hash_alg)
            .ok_or_else(|| format!("hash envelope uses hash algorithm {}", env.payload_hash_alg))?;
        return if alg.digest(bytes) == st.payload() {
            Ok(format!(
                "hash envelope {} digest matches the vCon file",
                alg.name()
            ))
        } else {
            Err(format!(
                "the vCon file's {} digest is not the registered one",
                alg.name()
            ))
        };
    }
    let payload = st.payload();
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(payload) {
        let hashes: Vec<String> = match &json["vcon_hash"] {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        if hashes.is_empty() {
            return Err("the statement names no vcon_hash".into());
        }
        let Some(matched) = hashes.iter().find(|h| vcon::content_hash_matches(h, bytes)) else {
            return Err(format!(
                "the vCon file's hash is not {}",
                hashes.join(" or ")
            ));
        };
        if let (Some(want), Ok(file)) = (
            json["vcon_uuid"].as_str(),
            serde_json::from_slice::<serde_json::Value>(bytes),
        ) && let Some(got) = file["uuid"].as_str()
            && !got.eq_ignore_ascii_case(want)
        {
            return Err(format!(
                "the vCon file's uuid {got} is not the statement's {want}"
            ));
        }
        return Ok(format!("vcon_hash {matched} matches the vCon file"));
    }
    // conserver v0.3.0: "<sha256 hex>:<operation>:<tel>"
    if let Ok(text) = std::str::from_utf8(payload)
        && let Some(hex_hash) = text.split(':').next().filter(|h| h.len() == 64)
    {
        let got = hex::encode(vcon::HashAlg::Sha256.digest(bytes));
        return if got.eq_ignore_ascii_case(hex_hash) {
            Ok("legacy conserver sha256 hex matches the vCon file".into())
        } else {
            Err("the vCon file's sha256 is not the one in the legacy payload".into())
        };
    }
    Err("the statement does not reference a vCon hash this verifier understands".into())
}

/// The first 16 hex digits (8 bytes) of an id, or all of a shorter one.
/// A kid is whatever bytes the service chose: never slice it blindly (a
/// receipt with a 4-byte kid once made the verifier panic).
fn short_hex(hex: &str) -> &str {
    hex.get(..16).unwrap_or(hex)
}

/// One verdict line for humans.
pub fn verdict_line(r: &Result<Report, VerifyError>) -> String {
    match r {
        Ok(rep) => format!(
            "OK: entry {} (index {}) is in log {} at tree size {} (root {}), receipt signed by {}{}{}; issuer {} (signature {}){}{}",
            rep.entry_id,
            rep.leaf_index,
            rep.log.as_deref().unwrap_or("?"),
            rep.tree_size,
            short_hex(&rep.root),
            if rep.kid.is_empty() {
                format!(
                    "key {} (the receipt names no kid)",
                    short_hex(&rep.service_key)
                )
            } else {
                format!("kid {}", short_hex(&rep.kid))
            },
            rep.time
                .map(|t| format!(" at {}", crate::time::format_secs(t)))
                .unwrap_or_default(),
            if rep.leaf_rule.binds_the_statement() {
                format!(", leaf rule {}", rep.leaf_rule)
            } else {
                format!(
                    ", leaf rule {} (WEAK: the receipt proves the payload only, not the issuer's header or signature)",
                    rep.leaf_rule
                )
            },
            rep.issuer.as_deref().unwrap_or("?"),
            rep.issuer_signature,
            rep.vcon
                .as_ref()
                .map(|v| format!("; {v}"))
                .unwrap_or_default(),
            rep.consistent_to
                .as_ref()
                .map(|c| format!("; consistent with tree size {}", c.tree_size))
                .unwrap_or_default(),
        ),
        Err(e) => format!("FAIL ({}): {e}", e.class()),
    }
}

#[cfg(test)]
mod short_id_tests {
    #[test]
    fn short_ids_print_whole_and_long_ones_shortened() {
        assert_eq!(super::short_hex("0a0b"), "0a0b");
        assert_eq!(super::short_hex(""), "");
        assert_eq!(super::short_hex(&"ab".repeat(32)), "abababababababab");
    }
}
