//! Transparency-log reads: the checkpoint, consistency receipts and C2SP
//! tlog-tiles hash tiles.

use hyper::header;
use hyper::{Response, StatusCode};

use super::error::ApiError;
use super::routes::Query;
use super::{Body, CBOR, COSE, IMMUTABLE, respond, set};
use crate::reads::{BundleKind, LogReads, TileRead};

/// True when the client's `Accept` names `text/plain` (the C2SP form).
pub(super) fn wants_note<B>(req: &hyper::Request<B>) -> bool {
    super::accepts(req, "text/plain")
}

/// `GET /checkpoint`: the latest signed tree head, as CBOR with the COSE
/// signature, or with `Accept: text/plain` as a C2SP tlog-checkpoint signed
/// note (Ed25519; the same head). `no-cache`: it moves with every batch.
pub(super) fn checkpoint(svc: &dyn LogReads, note: bool) -> Result<Response<Body>, ApiError> {
    if note {
        let body = svc.checkpoint_note()?.as_bytes().to_vec();
        let mut r = respond(StatusCode::OK, "text/plain; charset=utf-8", body);
        set(&mut r, header::CACHE_CONTROL, "no-cache");
        return Ok(r);
    }
    let body = crate::head_document::HeadDocument {
        head: (*svc.latest_head()).clone(),
    }
    .encode();
    let mut r = respond(StatusCode::OK, CBOR, body);
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    Ok(r)
}

/// `GET /consistency?from=<size>[&to=<size>]`: a consistency receipt to the
/// signed head at `to` (default: the latest).
pub(super) fn consistency(svc: &dyn LogReads, q: &Query) -> Result<Response<Body>, ApiError> {
    let size = |name| {
        q.get(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::malformed(format!("{name}={v:?} is not a tree size")))
            })
            .transpose()
    };
    let from = size("from")?
        .ok_or_else(|| ApiError::malformed("GET /consistency needs ?from=<size>[&to=<size>]"))?;
    let to = size("to")?;
    match svc.consistency_receipt(from, to)? {
        Some(r) => Ok(respond(StatusCode::OK, COSE, r)),
        None => Err(ApiError::NotFound(format!(
            "no consistency proof from size {from} to {}: sizes must satisfy 0 < from <= to and `to` must be a signed tree size",
            to.map(|t| t.to_string())
                .unwrap_or_else(|| "the latest".into())
        ))),
    }
}

/// `GET /tile/<level>/<index>[.p/<width>]`: row 0 of the stored tile, limited
/// to what the latest signed head covers. Full tiles never change, and a
/// partial tile of width W is a prefix of every later version, so both are
/// cached as immutable.
pub(super) fn tile(svc: &dyn LogReads, rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let kind = match rest.first() {
        Some(&"entries") => Some(BundleKind::Leaves),
        Some(&"statements") => Some(BundleKind::Statements),
        _ => None,
    };
    if let Some(kind) = kind {
        return bundle(svc, kind, rest);
    }
    let Some((id, want)) = crate::merkle::tile::parse_c2sp_path(rest) else {
        return Err(ApiError::malformed(format!(
            "/tile/{} is not a C2SP tile path",
            rest.join("/")
        )));
    };
    immutable(svc.tile(id, want)?, |signed| {
        format!("{id} has {signed} signed nodes")
    })
}

/// A tile or bundle read: immutable bytes, or a 404 saying how much of it
/// the latest signed head covers.
fn immutable(
    read: TileRead,
    unsigned: impl FnOnce(usize) -> String,
) -> Result<Response<Body>, ApiError> {
    match read {
        TileRead::Body(body) => {
            let mut r = respond(StatusCode::OK, "application/octet-stream", body);
            set(&mut r, header::CACHE_CONTROL, IMMUTABLE);
            Ok(r)
        }
        TileRead::Unsigned { signed } => Err(ApiError::NotFound(unsigned(signed))),
    }
}

/// `GET /tile/entries/<N>[.p/<W>]`: the C2SP entry bundle (each entry's
/// leaf input under the log's leaf rule); `GET /tile/statements/<N>[.p/<W>]`:
/// the same entries as the stored statements, which a monitor folds (equal
/// to the entry bundle under the `entry` rule). Immutable, like tiles.
fn bundle(svc: &dyn LogReads, kind: BundleKind, rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let Some((index, want)) = crate::merkle::bundle::parse_path(&rest[1..]) else {
        return Err(ApiError::malformed(format!(
            "/tile/{} is not a C2SP entry bundle path",
            rest.join("/")
        )));
    };
    immutable(svc.bundle(index, want, kind)?, |signed| {
        format!("entry bundle {index} has {signed} signed entries")
    })
}
