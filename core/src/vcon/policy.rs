//! Registration policy: what may enter the log beyond a valid signature.
//! This module holds the switches and the rejection type; the rules that read
//! them are [`super::profile::check`]. The two live side by side so that the
//! profile depends on its configuration and nothing depends back on the
//! profile (they used to import each other across the crate).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Accept statements that are not vCon lifecycle or vCon hash statements
    /// (on by default, so that generic SCITT clients keep working). They pass
    /// the same PII guard as vCon statements.
    pub allow_generic: bool,
    /// Skip the PII guard ([`super::pii`]), the only way to: accept legacy
    /// conserver encodings with contact-URI subjects (`tel:`, `mailto:`,
    /// `sip:`, `sips:`) and payloads with contact keys or values. Off (the
    /// default), every statement, generic or vCon, is refused when its
    /// subject, a protected-header text value or its JSON/CBOR/text payload
    /// holds a contact URI, an e-mail address, an international phone
    /// number, or a contact key name (rules `pii-subject`, `pii-header`,
    /// `pii-payload-key`, `pii-payload-value`). Hash-envelope payloads (a
    /// digest) and other binary payloads are not inspected.
    pub legacy_compat: bool,
    /// Allowed clock skew between `occurred_at` and the issuer's `iat`, and
    /// between `iat` and the registration time.
    pub max_skew_secs: i64,
    /// Who may change a vCon's consent state besides its controller (the
    /// issuer of its first `vcon_created`): controller issuer → delegate
    /// issuers; the key `"*"` names delegates for every controller. Any
    /// other issuer's consent statement is recorded, flagged, and changes
    /// nothing (see `consent::Authority`). Part of the registration policy
    /// document, so an auditor computes the same answer.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub consent_delegates: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            allow_generic: true,
            legacy_compat: false,
            max_skew_secs: 300,
            consent_delegates: std::collections::BTreeMap::new(),
        }
    }
}

/// A rejection names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registration policy rule {rule:?}: {detail}")]
pub struct PolicyRejection {
    pub rule: &'static str,
    pub detail: String,
}

/// `Err` of a [`PolicyRejection`]: the rules return early with it, and naming
/// the rule on every return keeps each rejection traceable to its rule.
pub fn reject<T>(rule: &'static str, detail: impl Into<String>) -> Result<T, PolicyRejection> {
    Err(PolicyRejection {
        rule,
        detail: detail.into(),
    })
}

/// Subject of the registration policy entries the service registers
/// (RFC 9943 §5.1.1: the policy in force is itself a log entry).
pub const POLICY_SUBJECT: &str = "urn:vcon-scitt:registration-policy";
/// Content type of their JSON payload.
pub const POLICY_CONTENT_TYPE: &str = "application/vcon-scitt-policy+json";
