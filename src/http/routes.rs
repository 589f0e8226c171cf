//! The route table, written once: [`Route::parse`] matches a path to a
//! resource, the resource knows the one method it answers (and so the
//! `Allow` header of a 405), and [`dispatch`] calls its handler.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::error::ApiError;
use super::{Api, Backend, Body, discovery, entries, ops, tlog, vcon};
use crate::reads::VconReads;
use crate::replica::Replica;
use crate::service::Service;

/// Every resource of the API, with the path segments its handler needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Register,
    Entry(&'a str),
    Statement(&'a str),
    /// scittles' path for the registered Signed Statement.
    SignedStatement(&'a str),
    Keys,
    Key(&'a str),
    TransparencyConfiguration,
    Jwks,
    Checkpoint,
    Consistency,
    Tile(&'a [&'a str]),
    VconEntries(&'a str),
    VconConsent(&'a str),
    VconLineage(&'a str),
    VconProof(&'a str),
    Events,
    Policy,
    Healthz,
    Metrics,
    AdminBackup,
}

impl<'a> Route<'a> {
    fn parse(segments: &'a [&'a str]) -> Option<Route<'a>> {
        Some(match segments {
            ["entries"] => Route::Register,
            ["entries", id] => Route::Entry(id),
            ["signed-statements", id] => Route::SignedStatement(id),
            ["entries", id, "statement"] => Route::Statement(id),
            [".well-known", "scitt-keys"] => Route::Keys,
            [".well-known", "scitt-keys", kid] => Route::Key(kid),
            [".well-known", "transparency-configuration"] => Route::TransparencyConfiguration,
            ["jwks"] => Route::Jwks,
            ["checkpoint"] => Route::Checkpoint,
            ["consistency"] => Route::Consistency,
            ["tile", rest @ ..] => Route::Tile(rest),
            ["vcons", uuid, "entries"] => Route::VconEntries(uuid),
            ["vcons", uuid, "consent"] => Route::VconConsent(uuid),
            ["vcons", uuid, "lineage"] => Route::VconLineage(uuid),
            ["vcons", uuid, "proof"] => Route::VconProof(uuid),
            ["events"] => Route::Events,
            ["policy"] => Route::Policy,
            ["healthz"] => Route::Healthz,
            ["metrics"] => Route::Metrics,
            ["admin", "backup"] => Route::AdminBackup,
            _ => return None,
        })
    }

    /// The one method each resource answers: the two writes are POST, every
    /// read is GET.
    fn method(self) -> Method {
        match self {
            Route::Register | Route::AdminBackup => Method::POST,
            _ => Method::GET,
        }
    }

    /// The `Allow` header for a 405, or `None` to answer 404 as for an
    /// unknown path. The admin API is left out: it was never listed for 405,
    /// and keeping it so keeps the wire unchanged.
    fn allow(self) -> Option<&'static str> {
        match self {
            Route::AdminBackup => None,
            Route::Register => Some("POST"),
            _ => Some("GET"),
        }
    }
}

pub(super) async fn dispatch(
    api: &Api,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let Some(route) = Route::parse(&segments) else {
        return Err(ApiError::NoRoute(path));
    };
    if *req.method() != route.method() {
        return Err(match route.allow() {
            Some(allow) => ApiError::MethodNotAllowed {
                method: req.method().clone(),
                path,
                allow,
            },
            None => ApiError::NoRoute(path),
        });
    }
    let q = Query::of(&req);
    let (reads, svc): (&dyn VconReads, &Arc<Service>) = match &api.backend {
        Backend::Writer(svc) => (&**svc, svc),
        Backend::Replica(r) => return replica(r, route, &req, &q).await,
    };
    if let Some(r) = read(reads, route, &req, &q).await {
        return r;
    }
    match route {
        Route::Register => entries::register(api, svc, peer, req).await,
        Route::Healthz => ops::healthz(svc),
        Route::Metrics => Ok(ops::metrics(svc)),
        Route::AdminBackup => ops::admin_backup(svc, &req),
        _ => Err(ApiError::NoRoute(path)),
    }
}

/// The reads of the log and the vCon views, which the writer and a replica
/// answer with the same handlers; `None` for every other route.
async fn read(
    svc: &dyn VconReads,
    route: Route<'_>,
    req: &Request<Incoming>,
    q: &Query,
) -> Option<Result<Response<Body>, ApiError>> {
    Some(match route {
        Route::Entry(id) => entries::entry(svc, id, q, entries::receipt_media_type(req)),
        Route::Statement(id) => entries::statement(svc, id),
        Route::SignedStatement(id) => entries::signed_statement(svc, id),
        Route::Keys => Ok(discovery::keyset(svc)),
        Route::Key(kid) => discovery::key_by_kid(svc, kid),
        Route::TransparencyConfiguration => Ok(discovery::transparency_configuration(svc)),
        Route::Jwks => Ok(discovery::jwks(svc)),
        Route::Checkpoint => tlog::checkpoint(svc, tlog::wants_note(req)),
        Route::Consistency => tlog::consistency(svc, q),
        Route::Tile(rest) => tlog::tile(svc, rest),
        Route::VconEntries(uuid) => vcon::history(svc, uuid, q),
        Route::VconConsent(uuid) => vcon::consent(svc, uuid, q),
        Route::VconLineage(uuid) => vcon::lineage(svc, uuid, q),
        Route::VconProof(uuid) => vcon::proof(svc, uuid).await,
        Route::Events => vcon::events(svc, q),
        Route::Policy => vcon::policy(svc),
        _ => return None,
    })
}

/// A read replica: the log's reads and the vCon views, its own readiness,
/// and 421 (with the writer's URL) for everything only the writer does:
/// registration, metrics and the admin API.
async fn replica(
    r: &Replica,
    route: Route<'_>,
    req: &Request<Incoming>,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    if let Some(answer) = read(r, route, req, q).await {
        return answer;
    }
    if route == Route::Healthz {
        return ops::replica_healthz(r);
    }
    Err(ApiError::Misdirected {
        what: format!("{} {}", req.method(), req.uri().path()),
        bucket: r.bucket_url().to_owned(),
        writer: r.writer().to_owned(),
    })
}

/// The query string, decoded; the first value of a repeated name wins.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &Request<Incoming>) -> Query {
        Query(
            req.uri()
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An optional number.
    pub(super) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::malformed(format!("{name}={v:?} is not a number")))
            })
            .transpose()
    }

    /// An optional boolean: `true` or `false` (the contract's `boolean`),
    /// anything else a 400 like every other malformed parameter.
    pub(super) fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::malformed(format!(
                "{name}={v:?} is not a boolean (true or false)"
            ))),
        }
    }

    /// An optional RFC 3339 time, as Unix milliseconds.
    pub(super) fn time_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                crate::time::parse_rfc3339_ms(v).ok_or_else(|| {
                    ApiError::malformed(format!("{name}={v:?} is not an RFC 3339 time"))
                })
            })
            .transpose()
    }
}
