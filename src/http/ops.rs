//! Operations: readiness, Prometheus metrics, and the online backup.

use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, Response, StatusCode};

use super::error::ApiError;
use super::{Body, admission, json_response, respond, set};
use crate::replica::Replica;
use crate::service::{Health, Service};

/// `GET /healthz`: 200 only when the log is open, not halted, and its last
/// batch committed; otherwise 503 with the reason, for the operator.
pub(super) fn healthz(svc: &Service) -> Result<Response<Body>, ApiError> {
    match svc.health() {
        Health::Ready { tree_size } => Ok(respond(
            StatusCode::OK,
            "text/plain",
            format!("ok tree_size={tree_size}\n").into_bytes(),
        )),
        // May clear with the next batch: worth a retry soon.
        Health::BatchFailed(why) => Err(ApiError::NotReady {
            detail: format!("the last batch failed: {why}"),
            retry_after: Some(5),
        }),
        // Needs the operator: no retry hint.
        Health::Halted(why) => Err(ApiError::NotReady {
            detail: format!("log halted: {why}"),
            retry_after: None,
        }),
    }
}

/// `GET /healthz` on a read replica: 200 with the verified size while it
/// follows the bucket; 503 with the reason when a round failed (it may
/// clear) or following stopped at an alarm (it needs the operator).
pub(super) fn replica_healthz(r: &Replica) -> Result<Response<Body>, ApiError> {
    use crate::reads::LogReads;
    match r.trouble() {
        None => Ok(respond(
            StatusCode::OK,
            "text/plain",
            format!("ok replica tree_size={}\n", r.latest_head().head.size).into_bytes(),
        )),
        Some(why) => Err(ApiError::NotReady {
            detail: format!("replica of {}: {why}", r.bucket_url()),
            retry_after: Some(5),
        }),
    }
}

/// `GET /metrics`: Prometheus text; `no-store`, a scrape must never see a
/// cached one.
pub(super) fn metrics(svc: &Service) -> Response<Body> {
    let mut r = respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        crate::metrics::render(svc).into_bytes(),
    );
    set(&mut r, header::CACHE_CONTROL, "no-store");
    r
}

/// `POST /admin/backup`: an online backup, for holders of an admin token.
pub(super) fn admin_backup(
    svc: &Service,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if svc.config.auth.admin_token_sha256.is_empty() {
        return Err(ApiError::Forbidden(
            "the admin API is disabled (no auth.admin_token_sha256 configured)",
        ));
    }
    if !admission::is_admin(svc, req) {
        return Err(ApiError::Unauthorized(
            "POST /admin/backup needs an admin bearer token",
        ));
    }
    let (dir, size) = svc.backup()?;
    Ok(json_response(
        &serde_json::json!({"path": dir, "tree_size": size}),
    ))
}
