//! RFC 9290 Concise Problem Details: the only error body the HTTP API sends.
//! The server maps every error to one in one place (its `http/error.rs`).

use ciborium::value::Value;

use crate::cbor;
use crate::statement::StatementError;

pub const CONTENT_TYPE: &str = "application/concise-problem-details+cbor";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// SCRAPI title (-1).
    pub title: String,
    /// What exactly was wrong (-2).
    pub detail: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title: title.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after = Some(secs);
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Problem {
        Problem::new(400, "Malformed request", detail)
    }

    /// `{-1: title, -2: detail}`.
    pub fn to_cbor(&self) -> Vec<u8> {
        cbor::encode(&Value::Map(vec![
            (cbor::int(-1), Value::Text(self.title.clone())),
            (cbor::int(-2), Value::Text(self.detail.clone())),
        ]))
    }

    /// Parses a problem-details body (clients, tests).
    pub fn from_cbor(status: u16, body: &[u8]) -> Option<Problem> {
        let Value::Map(m) = cbor::decode(body).ok()? else {
            return None;
        };
        let text = |l| {
            cbor::map_get(&m, l)
                .and_then(|v| v.as_text())
                .map(str::to_owned)
        };
        Some(Problem {
            status,
            title: text(-1)?,
            detail: text(-2).unwrap_or_default(),
            retry_after: None,
        })
    }
}

impl From<&StatementError> for Problem {
    fn from(e: &StatementError) -> Problem {
        match e {
            StatementError::TooLarge { .. } => {
                Problem::new(413, "Payload Too Large", e.to_string())
            }
            StatementError::Malformed(_) => Problem::malformed(e.to_string()),
            StatementError::BadAlgorithm(_) => {
                Problem::new(400, "Bad Signature Algorithm", e.to_string())
            }
            StatementError::PayloadMissing => Problem::new(
                400,
                "Payload Missing",
                "Signed Statement payload must be present: this service does not accept detached payloads (use a hash envelope, labels 258/259, to register a digest)",
            ),
            StatementError::Rejected(_) => Problem::new(400, "Rejected", e.to_string()),
        }
    }
}
