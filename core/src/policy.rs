//! Registration policy: what may enter the log beyond a valid signature.
//! The vCon lifecycle rules live in [`crate::vcon::profile`]; this module is
//! the configuration and the single entry point the service calls.

use serde::{Deserialize, Serialize};

use crate::statement::SignedStatement;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Accept statements that are not vCon lifecycle or vCon hash statements.
    pub allow_generic: bool,
    /// Accept legacy conserver encodings with PII subjects (`tel:`, `mailto:`,
    /// `sip:`) and raw PII keys in payloads. Off: no PII on the ledger.
    pub legacy_compat: bool,
    /// Allowed clock skew between `occurred_at` and the issuer's `iat`, and
    /// between `iat` and the registration time.
    pub max_skew_secs: i64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            allow_generic: true,
            legacy_compat: false,
            max_skew_secs: 300,
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

pub fn reject<T>(rule: &'static str, detail: impl Into<String>) -> Result<T, PolicyRejection> {
    Err(PolicyRejection {
        rule,
        detail: detail.into(),
    })
}

/// Applies the policy; `Ok` says what was admitted (a generic statement or
/// a vCon record to index). The rules themselves live in
/// [`crate::vcon::profile`].
pub fn check(
    config: &PolicyConfig,
    st: &SignedStatement,
    now: i64,
) -> Result<crate::vcon::Profile, PolicyRejection> {
    crate::vcon::profile::check(config, st, now)
}
