//! How a log turns an entry into its RFC 9162 leaf hash. Two vds-1
//! conventions are in use for SCITT logs and one leaf can satisfy only one
//! of them (spec-notes/interop.md, "Leaf rules"); this is the rule as the log
//! layer sees it (entries are opaque bytes here). What each rule means for a
//! Signed Statement is in `crate::statement`.

use super::{Hash, sha256};

/// How a log turns a registered Signed Statement into its Merkle leaf entry
/// (the leaf hash is then RFC 9162's `SHA-256(0x00 ‖ entry)` under either
/// rule). RFC 9942 leaves the entry to the log ("a possible entry (set
/// member) bytes") and a receipt carries nothing that names it, so a
/// verifier must be told which rule the log used: under the wrong one every
/// receipt fails its signature (the detached root differs). This is the one
/// implementation of both. A log of this service chooses one when it is
/// created and keeps it (`meta` `leaf_rule`, published in
/// transparency-configuration); `vcon-verify --leaf-rule` names one, or
/// tries both. Byte-exact definitions: `proto/entry.cddl` and
/// spec-notes/scitt-cose.md.
///
/// Under either rule the log stores the same entry bytes (the statement
/// with its unprotected header emptied, `statement::entry_bytes`) and the entry id is
/// the leaf hash in hex; only [`LeafRule::hash_entry`] differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LeafRule {
    /// `entry` (@transmute/cose's, and this service's before logs chose):
    /// `#6.18([protected, {}, payload, signature])` with the three byte
    /// strings as the issuer signed them and preferred (shortest) argument
    /// encodings: the statement with its unprotected header emptied, as
    /// RFC 9943 §6 requires before inclusion.
    #[serde(rename = "entry")]
    Entry,
    /// `statement-sha256` (the SCITT WG's vds-1 vectors, scitt-cose
    /// test-vectors v1): the 32-byte SHA-256 of the complete COSE_Sign1
    /// statement bytes as registered (see `statement::registered_statement_bytes`).
    #[serde(rename = "statement-sha256")]
    StatementSha256,
    /// `payload-sha256` (scittles, and the vCon conserver SCITT link
    /// v0.3.0's own receipt check): the 32-byte SHA-256 of the statement's
    /// payload alone. It binds neither the issuer's protected header nor its
    /// signature: a receipt under it proves only that *some* statement with
    /// this payload was logged. Only for the conserver compatibility profile
    /// (spec-notes/interop.md); never tried by `vcon-verify --leaf-rule any`.
    #[serde(rename = "payload-sha256")]
    PayloadSha256,
}

impl LeafRule {
    pub const ALL: [LeafRule; 3] = [
        LeafRule::Entry,
        LeafRule::StatementSha256,
        LeafRule::PayloadSha256,
    ];

    /// The rules whose leaf binds the whole statement (issuer header,
    /// payload and signature): what a verifier may try without being told.
    pub const BINDING_THE_STATEMENT: [LeafRule; 2] = [LeafRule::Entry, LeafRule::StatementSha256];

    /// False for a rule whose leaf leaves part of the statement unbound.
    pub fn binds_the_statement(self) -> bool {
        self != LeafRule::PayloadSha256
    }

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            LeafRule::Entry => "entry",
            LeafRule::StatementSha256 => "statement-sha256",
            LeafRule::PayloadSha256 => "payload-sha256",
        }
    }

    /// The leaf of an entry as the log stores it (`statement::entry_bytes`): what the
    /// sequencer, fsck and every reader of stored entries apply. Equal to
    /// `LeafRule::leaf_hash` of the registered statement, because the
    /// registered statement *is* the entry: the service registers a
    /// statement with its unprotected header emptied and re-encoded in
    /// preferred form, which are the bytes a Transparent Statement gives
    /// back once 394 is removed (`statement::registered_statement_bytes`).
    pub fn hash_entry(self, entry: &[u8]) -> Hash {
        super::leaf_hash(&self.leaf_input(entry))
    }

    /// The RFC 9162 / C2SP log entry of a stored entry: the bytes whose
    /// `SHA-256(0x00 ‖ ·)` is the leaf, and what a C2SP entry bundle carries
    /// (`tile/entries/N`): the stored entry itself under `entry`, its
    /// 32-byte digest under `statement-sha256`, the payload's digest under
    /// `payload-sha256`.
    pub fn leaf_input(self, entry: &[u8]) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            LeafRule::Entry => Cow::Borrowed(entry),
            LeafRule::StatementSha256 => Cow::Owned(sha256(&[entry]).to_vec()),
            // An entry that is not a COSE_Sign1 with an attached payload
            // (raw bytes a tool appended) is its own payload.
            LeafRule::PayloadSha256 => {
                let parts = crate::cose::split(entry).ok();
                let payload = parts
                    .as_ref()
                    .and_then(|p| p.payload.as_deref())
                    .unwrap_or(entry);
                Cow::Owned(sha256(&[payload]).to_vec())
            }
        }
    }
}

impl std::fmt::Display for LeafRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown leaf rule {0:?}: use statement-sha256, entry or payload-sha256")]
pub struct UnknownLeafRule(pub String);

impl std::str::FromStr for LeafRule {
    type Err = UnknownLeafRule;

    fn from_str(s: &str) -> Result<LeafRule, UnknownLeafRule> {
        LeafRule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownLeafRule(s.to_owned()))
    }
}
