//! Discovery: the service's keys (`/.well-known/scitt-keys`, `/jwks`) and
//! `/.well-known/transparency-configuration`.

use hyper::header;
use hyper::{Response, StatusCode};

use super::error::ApiError;
use super::{Body, CBOR, JSON, respond, set};
use crate::keys::{Alg, PublicKey};
use crate::reads::LogReads;

/// Keys change only when the service key is rotated, which takes a restart;
/// retired keys stay listed.
const KEYS_CACHE: &str = "public, max-age=3600";

/// `GET /.well-known/scitt-keys`: every service key, current and retired, as
/// a COSE_KeySet.
pub(super) fn keyset(svc: &dyn LogReads) -> Response<Body> {
    let mut r = respond(StatusCode::OK, CBOR, svc.public_keys().to_cose_keyset());
    set(&mut r, header::CACHE_CONTROL, KEYS_CACHE);
    r
}

/// `GET /.well-known/scitt-keys/{kid}`: one key as a COSE_Key.
pub(super) fn key_by_kid(svc: &dyn LogReads, kid: &str) -> Result<Response<Body>, ApiError> {
    // base64url (always accepted, -11 §2.2), then hex, then the raw bytes.
    let candidates = [
        crate::keys::from_b64url(kid),
        hex::decode(kid).ok(),
        Some(kid.as_bytes().to_vec()),
    ];
    let key = candidates
        .into_iter()
        .flatten()
        .find_map(|c| svc.public_keys().get(&c))
        .ok_or(ApiError::NoSuchKey)?;
    let mut r = respond(
        StatusCode::OK,
        CBOR,
        crate::cbor::encode(&key.to_cose_key()),
    );
    set(&mut r, header::CACHE_CONTROL, KEYS_CACHE);
    Ok(r)
}

/// `GET /.well-known/transparency-configuration` (the writer's, or the
/// copy a replica read from the bucket).
pub(super) fn transparency_configuration(svc: &dyn LogReads) -> Response<Body> {
    respond(StatusCode::OK, CBOR, svc.transparency_configuration())
}

/// `GET /jwks`: the service keys as a JWK Set, each key once.
pub(super) fn jwks(svc: &dyn LogReads) -> Response<Body> {
    // EC P-256 keys first: conserver's link picks the first EC key.
    let mut keys: Vec<&PublicKey> = Vec::new();
    for (_, k) in &svc.public_keys().keys {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by_key(|k| k.alg != Alg::P256);
    let body = serde_json::json!({"keys": keys.iter().map(|k| k.to_jwk()).collect::<Vec<_>>()});
    respond(
        StatusCode::OK,
        JSON,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}
