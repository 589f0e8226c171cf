//! Every failure the API reports, and the one place it becomes an RFC 9290
//! problem response.
//!
//! Handlers return [`ApiError`]; [`ApiError::into_response`] is the only
//! conversion to a response. The status and title of each kind of problem
//! are written once, in [`ProblemKind`]; statement errors keep the mapping
//! beside their type in core (`From<&StatementError> for Problem`).
//! Internal failures are logged with their detail and answered with a
//! generic one: storage paths, proof mismatches and operator hints are for
//! the operator, not for whoever sent the request.

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use super::{Body, set};
use crate::problem::{self, Problem};
use crate::service::ServiceError;

/// What a client is told about a 500, whatever happened.
pub const INTERNAL_DETAIL: &str = "internal error; see server log";

/// The problems this API sends, each with its status and SCRAPI title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Malformed,
    InvalidLocator,
    Rejected,
    Unauthorized,
    Forbidden,
    NotFound,
    NoSuchKey,
    RegistrationFailed,
    MethodNotAllowed,
    RequestTimeout,
    /// A read replica asked to do what only the writer does.
    Misdirected,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A view whose complete answer exceeds its stated bound.
    ResultTooLarge,
    TooManyRequests,
    Internal,
    ServiceUnavailable,
}

impl ProblemKind {
    pub const fn status(self) -> u16 {
        match self {
            ProblemKind::Malformed | ProblemKind::InvalidLocator | ProblemKind::Rejected => 400,
            ProblemKind::Unauthorized => 401,
            ProblemKind::Forbidden => 403,
            ProblemKind::NotFound | ProblemKind::NoSuchKey | ProblemKind::RegistrationFailed => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::RequestTimeout => 408,
            ProblemKind::Misdirected => 421,
            ProblemKind::PayloadTooLarge => 413,
            ProblemKind::UnsupportedMediaType => 415,
            ProblemKind::ResultTooLarge => 422,
            ProblemKind::TooManyRequests => 429,
            ProblemKind::Internal => 500,
            ProblemKind::ServiceUnavailable => 503,
        }
    }

    pub const fn title(self) -> &'static str {
        match self {
            ProblemKind::Malformed => "Malformed request",
            ProblemKind::InvalidLocator => "Invalid locator",
            ProblemKind::Rejected => "Rejected",
            ProblemKind::Unauthorized => "Unauthorized",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::NotFound => "Not Found",
            ProblemKind::NoSuchKey => "No such key",
            ProblemKind::RegistrationFailed => "Registration Failed",
            ProblemKind::MethodNotAllowed => "Method Not Allowed",
            ProblemKind::RequestTimeout => "Request Timeout",
            ProblemKind::Misdirected => "Misdirected Request",
            ProblemKind::PayloadTooLarge => "Payload Too Large",
            ProblemKind::UnsupportedMediaType => "Unsupported Media Type",
            ProblemKind::ResultTooLarge => "Result Too Large",
            ProblemKind::TooManyRequests => "Too Many Requests",
            ProblemKind::Internal => "Internal Server Error",
            ProblemKind::ServiceUnavailable => "Service Unavailable",
        }
    }

    pub fn problem(self, detail: impl Into<String>) -> Problem {
        Problem::new(self.status(), self.title(), detail)
    }
}

/// Why a request failed. The `Display` text is the problem detail sent to
/// the client, except for internal errors (see [`ApiError::into_response`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no resource at {0}")]
    NoRoute(String),
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: &'static str,
    },
    #[error("{0}")]
    Malformed(String),
    #[error("entry id {0:?} is not 64 lowercase hex characters")]
    InvalidLocator(String),
    #[error("{0}")]
    NotFound(String),
    #[error("No key could be found for this kid value")]
    NoSuchKey,
    #[error("Signed Statement with entry ID {id} could not be persisted to the log: {why}")]
    RegistrationFailed { id: String, why: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The `Content-Type` as sent (`"none"` when absent).
    #[error("POST /entries takes Content-Type: application/cose (got {0:?})")]
    UnsupportedMediaType(String),
    /// `size` is a number, or "more than N" when the body was cut off.
    #[error("the statement is {size} bytes, the limit is {limit}")]
    TooLarge { size: String, limit: usize },
    #[error("the body did not arrive in time")]
    BodyTimeout,
    #[error("Only {per_sec} requests per second are allowed (burst {burst}).")]
    RateLimited {
        per_sec: f64,
        burst: f64,
        retry_after: u64,
    },
    /// Not ready (`/healthz`): the reason is the operator's readiness signal.
    #[error("{detail}")]
    NotReady {
        detail: String,
        retry_after: Option<u64>,
    },
    /// A read replica answers only reads of the log; `writer` is where
    /// the rest goes.
    #[error("this is a read replica of {bucket}: {what} is served by the writer, {writer}")]
    Misdirected {
        what: String,
        bucket: String,
        writer: String,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// A malformed request, with what was wrong.
    pub fn malformed(detail: impl Into<String>) -> ApiError {
        ApiError::Malformed(detail.into())
    }

    /// The only way an error leaves the API. Internal errors are logged
    /// here, with their detail, since the client gets none of it.
    pub fn into_response(self) -> Response<Body> {
        if let ApiError::Service(ServiceError::Internal(detail)) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut r = problem_response(&Problem::from(&self));
        if let ApiError::MethodNotAllowed { allow, .. } = &self {
            set(&mut r, header::ALLOW, allow);
        }
        r
    }
}

impl From<&ServiceError> for Problem {
    fn from(e: &ServiceError) -> Problem {
        match e {
            ServiceError::Statement(s) => Problem::from(s),
            ServiceError::Policy(p) => ProblemKind::Rejected.problem(p.to_string()),
            // The queue is full now; it drains within a batch or two.
            ServiceError::Overloaded => ProblemKind::ServiceUnavailable
                .problem(e.to_string())
                .retry_after(1),
            ServiceError::Unavailable(_) => ProblemKind::ServiceUnavailable
                .problem(e.to_string())
                .retry_after(5),
            ServiceError::TooLarge(why) => ProblemKind::ResultTooLarge.problem(why.clone()),
            ServiceError::Internal(_) => ProblemKind::Internal.problem(INTERNAL_DETAIL),
        }
    }
}

impl From<&ApiError> for Problem {
    fn from(e: &ApiError) -> Problem {
        let kind = match e {
            ApiError::Service(s) => return Problem::from(s),
            ApiError::RateLimited { retry_after, .. } => {
                return ProblemKind::TooManyRequests
                    .problem(e.to_string())
                    .retry_after(*retry_after);
            }
            ApiError::NotReady {
                retry_after: Some(secs),
                ..
            } => {
                return ProblemKind::ServiceUnavailable
                    .problem(e.to_string())
                    .retry_after(*secs);
            }
            ApiError::NotReady { .. } => ProblemKind::ServiceUnavailable,
            ApiError::NoRoute(_) | ApiError::NotFound(_) => ProblemKind::NotFound,
            ApiError::MethodNotAllowed { .. } => ProblemKind::MethodNotAllowed,
            ApiError::Malformed(_) => ProblemKind::Malformed,
            ApiError::InvalidLocator(_) => ProblemKind::InvalidLocator,
            ApiError::NoSuchKey => ProblemKind::NoSuchKey,
            ApiError::RegistrationFailed { .. } => ProblemKind::RegistrationFailed,
            ApiError::Unauthorized(_) => ProblemKind::Unauthorized,
            ApiError::Forbidden(_) => ProblemKind::Forbidden,
            ApiError::UnsupportedMediaType(_) => ProblemKind::UnsupportedMediaType,
            ApiError::TooLarge { .. } => ProblemKind::PayloadTooLarge,
            ApiError::BodyTimeout => ProblemKind::RequestTimeout,
            ApiError::Misdirected { .. } => ProblemKind::Misdirected,
        };
        kind.problem(e.to_string())
    }
}

/// A problem as a response: its status, the CBOR body, the problem content
/// type and, if set, `Retry-After`.
pub fn problem_response(p: &Problem) -> Response<Body> {
    let mut r = super::respond(
        StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        problem::CONTENT_TYPE,
        p.to_cbor(),
    );
    if let Some(s) = p.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}
