//! The vCon read views (history, consent, lineage), the lifecycle event
//! feed, and the registration policy in force. All JSON, all `no-cache`:
//! each new registration can change them. Served alike by the writer and a
//! read replica (`&dyn VconReads`): the same rows, the same code.

use hyper::Response;

use super::error::ApiError;
use super::routes::Query;
use super::{Body, CBOR, json_response, respond};
use crate::reads::{VconReads, internal};
use crate::vcon_index::FeedQuery;

/// Page sizes: 100 unless asked; more than the view's maximum is refused
/// (400), never quietly cut.
fn page_limit(q: &Query, max: usize) -> Result<usize, ApiError> {
    match q.u64("limit")? {
        None => Ok(100.min(max)),
        Some(0) => Err(ApiError::malformed(
            "limit=0: a page holds at least one item",
        )),
        Some(n) if n > max as u64 => Err(ApiError::malformed(format!(
            "limit={n} is more than the {max} items a page holds; follow next_after for more"
        ))),
        Some(n) => Ok(n as usize),
    }
}

/// vCon uuids are compared in their normalized (lowercase, hyphenated) form.
fn parse_uuid(uuid: &str) -> Result<String, ApiError> {
    crate::vcon::profile::normalize_uuid(uuid)
        .ok_or_else(|| ApiError::malformed(format!("{uuid:?} is not a vCon uuid (8-4-4-4-12 hex)")))
}

/// `GET /vcons/{uuid}/entries[?after=&limit=]`: one page of a vCon's
/// history; `next_after` is the cursor of the next page (absent on the last).
pub(super) fn history(
    svc: &dyn VconReads,
    uuid: &str,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    let uuid = parse_uuid(uuid)?;
    let after = q.u64("after")?;
    let limit = page_limit(q, crate::vcon_index::MAX_PAGE)?;
    let (items, next_after) =
        crate::vcon_index::history_page(svc.vcon_store(), &uuid, after, limit, &svc.delegates())
            .map_err(internal)?;
    Ok(json_response(
        &serde_json::json!({"vcon_uuid": uuid, "items": items, "next_after": next_after}),
    ))
}

/// `GET /vcons/{uuid}/consent[?as_of=<RFC 3339>]`.
/// The consent state as of a time (default: now): the changes in force of
/// the controller and its delegates, read from the index the way the auditor
/// computes it from the whole history.
pub(super) fn consent(
    svc: &dyn VconReads,
    uuid: &str,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    use crate::reads::ServiceError;
    use crate::vcon_index::ConsentReadError;
    let uuid = parse_uuid(uuid)?;
    let as_of = q.time_ms("as_of")?;
    let state = crate::vcon_index::consent(svc.vcon_store(), &uuid, &svc.delegates(), as_of)
        .map_err(|e| match e {
            ConsentReadError::Log(e) => internal(e),
            too_many @ ConsentReadError::TooManyPurposes => {
                ServiceError::TooLarge(too_many.to_string())
            }
        })?;
    Ok(json_response(&state))
}

/// `GET /vcons/{uuid}/lineage[?after=&limit=]`: one page of edges.
pub(super) fn lineage(
    svc: &dyn VconReads,
    uuid: &str,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    let uuid = parse_uuid(uuid)?;
    let after = q
        .get("after")
        .map(|a| {
            hex::decode(a)
                .ok()
                .filter(|b| b.len() == 24)
                .ok_or_else(|| {
                    ApiError::malformed(format!(
                        "after={a:?} is not a lineage cursor (next_after of a previous page)"
                    ))
                })
        })
        .transpose()?;
    let limit = page_limit(q, crate::vcon_index::MAX_PAGE)?;
    let lineage = crate::vcon_index::lineage(svc.vcon_store(), &uuid, after.as_deref(), limit)
        .map_err(internal)?;
    Ok(json_response(&lineage))
}

/// `GET /events[?type=&iss=&after=&limit=&since=&until=]`: the lifecycle
/// event feed.
pub(super) fn events(svc: &dyn VconReads, q: &Query) -> Result<Response<Body>, ApiError> {
    // An empty filter (`type=&iss=`, as forms send) is no filter.
    let event = q
        .get("type")
        .filter(|t| !t.is_empty())
        .map(|t| {
            crate::vcon::Event::parse(t)
                .ok_or_else(|| ApiError::malformed(format!("type={t:?} is not a lifecycle event")))
        })
        .transpose()?;
    let fq = FeedQuery {
        event,
        iss: q.get("iss").filter(|i| !i.is_empty()).map(str::to_owned),
        after: q.u64("after")?,
        limit: page_limit(q, 1000)?,
        since_ms: q.time_ms("since")?,
        until_ms: q.time_ms("until")?,
    };
    let (items, last) =
        crate::vcon_index::feed(svc.vcon_store(), &fq, &svc.delegates()).map_err(internal)?;
    // Poll again with after=next_after; it moves past filtered rows too.
    Ok(json_response(
        &serde_json::json!({"items": items, "next_after": last.or(fq.after)}),
    ))
}

/// `GET /policy`: the registration policy in force and its log entry
/// (RFC 9943 §5.1.1).
pub(super) fn policy(svc: &dyn VconReads) -> Result<Response<Body>, ApiError> {
    Ok(json_response(&svc.policy()?))
}

/// `GET /vcons/{uuid}/proof`: the proof bundle (`proto/vcon-map.cddl`,
/// `vcon-proof`): the vCon's complete history as of the last map root, or
/// the proof that it has none, checkable offline (`vcon-verify --bundle`).
pub(super) async fn proof(svc: &dyn VconReads, uuid: &str) -> Result<Response<Body>, ApiError> {
    let uuid = parse_uuid(uuid)?;
    let bundle = crate::reads::vcon_proof(svc, &uuid).await?;
    let mut r = respond(hyper::StatusCode::OK, CBOR, bundle.to_cbor());
    super::set(&mut r, hyper::header::CACHE_CONTROL, "no-cache");
    Ok(r)
}
