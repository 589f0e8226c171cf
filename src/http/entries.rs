//! SCRAPI entries: `POST /entries` (register), `GET /entries/{id}` (the
//! receipt) and `GET /entries/{id}/statement` (the transparent statement).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};

use super::error::ApiError;
use super::routes::Query;
use super::{Api, Body, COSE, IMMUTABLE, admission, respond, set};
use crate::merkle;
use crate::reads::LogReads;
use crate::service::{ReceiptLookup, Registered, Service};

/// `POST /entries`: admission, then the body, then registration. Each step
/// can refuse without doing the next one's work.
pub(super) async fn register(
    api: &Api,
    svc: &Arc<Service>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    admission::admit(api, svc, &req, peer)?;
    let receipt_type = receipt_media_type(&req);
    let wait = preferred_wait(&req, svc.config.registration.max_wait_ms);
    let body = read_statement(svc, req).await?;
    let location = |entry_id: &str| format!("/entries/{entry_id}");
    let applied = |r: &mut Response<Body>| {
        if let Some(w) = wait {
            set(r, PREFERENCE_APPLIED, &format!("wait={}", w.as_secs()));
        }
    };
    Ok(match svc.register(&body, wait).await? {
        Registered::Created {
            entry_id, receipt, ..
        } => {
            let mut r = respond(StatusCode::CREATED, receipt_type, receipt);
            set(&mut r, header::LOCATION, &location(&entry_id));
            set(&mut r, header::VARY, "Accept");
            applied(&mut r);
            r
        }
        Registered::Accepted { entry_id } => {
            let mut r = respond(StatusCode::ACCEPTED, COSE, Vec::new());
            applied(&mut r);
            set(&mut r, header::LOCATION, &location(&entry_id));
            set(
                &mut r,
                header::RETRY_AFTER,
                &svc.config.registration.retry_after_secs.to_string(),
            );
            r
        }
    })
}

/// RFC 9942's receipt media type, for clients that ask for it.
const RECEIPT: &str = "application/scitt-receipt+cose";

/// RFC 7240's response header naming the preferences honoured.
const PREFERENCE_APPLIED: header::HeaderName =
    header::HeaderName::from_static("preference-applied");

/// A receipt is `application/cose` unless the client's `Accept` names
/// `application/scitt-receipt+cose` (same bytes; some SCITT clients match
/// the specific type).
pub(super) fn receipt_media_type<B>(req: &Request<B>) -> &'static str {
    if super::accepts(req, RECEIPT) {
        RECEIPT
    } else {
        COSE
    }
}

/// RFC 7240 `Prefer: wait=N`: how long the client will wait for a
/// synchronous answer (201 with the receipt) before a 202, in seconds,
/// capped at the configured `max_wait_ms`. Malformed preferences are
/// ignored, as RFC 7240 §2 says.
fn preferred_wait<B>(req: &Request<B>, max_wait_ms: u64) -> Option<Duration> {
    let secs = req
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| {
            let (name, value) = p.split(';').next()?.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("wait")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .next()?;
    let ms = secs.saturating_mul(1000).min(max_wait_ms);
    Some(Duration::from_millis(ms))
}

/// The statement bytes: a COSE media type, at most the configured size
/// (refused from `Content-Length` before reading, and enforced while
/// reading, since a chunked body has none), within the body timeout.
async fn read_statement(svc: &Service, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != COSE && media != "application/scitt-statement+cose" {
        let got = if ct.is_empty() { "none" } else { ct };
        return Err(ApiError::UnsupportedMediaType(got.to_owned()));
    }
    let limit = svc.config.registration.max_statement_bytes;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        match len.parse::<u64>() {
            Ok(n) if n > limit as u64 => {
                return Err(ApiError::TooLarge {
                    size: n.to_string(),
                    limit,
                });
            }
            Ok(_) => {}
            Err(_) => return Err(ApiError::malformed("Content-Length is not a number")),
        }
    }
    let timeout = Duration::from_millis(svc.config.limits.body_timeout_ms);
    match tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect()).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge {
            size: format!("more than {limit}"),
            limit,
        }),
        Ok(Err(e)) => Err(ApiError::malformed(format!("reading the body failed: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Entry ids are the leaf hash in lowercase hex (`statement::entry_id`).
fn parse_entry_id(id: &str) -> Result<merkle::Hash, ApiError> {
    merkle::from_hex(id)
        .filter(|_| id.len() == 64)
        .ok_or_else(|| ApiError::InvalidLocator(id.to_owned()))
}

/// `GET /entries/{id}`: the stable receipt, or with `?fresh=true` one at the
/// latest head; `application/cose`, or RFC 9942's receipt type when asked.
pub(super) fn entry(
    svc: &dyn LogReads,
    id: &str,
    q: &Query,
    receipt_type: &'static str,
) -> Result<Response<Body>, ApiError> {
    let leaf = parse_entry_id(id)?;
    let fresh = q.bool("fresh")?;
    match svc.lookup_receipt(&leaf, fresh)? {
        ReceiptLookup::Ready(receipt) => {
            let mut r = respond(StatusCode::OK, receipt_type, receipt);
            set(&mut r, header::VARY, "Accept");
            set(&mut r, header::LOCATION, &format!("/entries/{id}"));
            // The stable receipt never changes; a fresh one does.
            let cc = if fresh { "no-cache" } else { IMMUTABLE };
            set(&mut r, header::CACHE_CONTROL, cc);
            Ok(r)
        }
        ReceiptLookup::Pending => {
            let mut r = respond(StatusCode::NO_CONTENT, COSE, Vec::new());
            r.headers_mut().remove(header::CONTENT_TYPE);
            set(
                &mut r,
                header::RETRY_AFTER,
                &svc.retry_after_secs().to_string(),
            );
            set(&mut r, header::CACHE_CONTROL, "no-store");
            Ok(r)
        }
        ReceiptLookup::Failed(why) => Err(ApiError::RegistrationFailed {
            id: id.to_owned(),
            why,
        }),
        ReceiptLookup::Unknown => Err(ApiError::NotFound(format!(
            "Receipt with entry ID {id} not known to this Transparency Service"
        ))),
    }
}

/// `GET /entries/{id}/statement`: the entry with its stable receipt.
pub(super) fn statement(svc: &dyn LogReads, id: &str) -> Result<Response<Body>, ApiError> {
    let leaf = parse_entry_id(id)?;
    match svc.transparent_statement(&leaf)? {
        Some(ts) => {
            let mut r = respond(StatusCode::OK, COSE, ts);
            set(&mut r, header::CACHE_CONTROL, IMMUTABLE);
            Ok(r)
        }
        None => Err(ApiError::NotFound(format!(
            "no registered statement with entry ID {id} (or its receipt is not signed yet)"
        ))),
    }
}

/// `GET /signed-statements/{id}`: the Signed Statement as registered, for
/// clients written against SCRAPI's optional "resolve Signed Statement"
/// (scittles' example fetches it and compares it with what it sent; the
/// bytes are the entry: the statement with its unprotected header emptied).
pub(super) fn signed_statement(svc: &dyn LogReads, id: &str) -> Result<Response<Body>, ApiError> {
    let leaf = parse_entry_id(id)?;
    match svc.signed_statement(&leaf)? {
        Some(st) => {
            let mut r = respond(StatusCode::OK, COSE, st);
            set(&mut r, header::CACHE_CONTROL, IMMUTABLE);
            Ok(r)
        }
        None => Err(ApiError::NotFound(format!(
            "no registered statement with entry ID {id} (or it is not covered by a signed head yet)"
        ))),
    }
}
