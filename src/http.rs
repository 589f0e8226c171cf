//! The HTTP API (SCRAPI draft -11 plus read APIs) on hyper 1.x.
//!
//! Guards: a connection cap (excess connections get a 503 and are closed), a
//! header-read timeout (slowloris), a head-size cap, a body cap enforced from
//! `Content-Length` before reading and while reading, and a body-read
//! timeout. Every error body is RFC 9290 CBOR.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::merkle;
use crate::problem::{self, Problem};
use crate::service::{ReceiptLookup, Registered, Service};

pub type Body = Full<Bytes>;

const COSE: &str = "application/cose";
const CBOR: &str = "application/cbor";

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (bounded), and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = service.config.limits.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let conn = graceful.watch(connection(service.clone(), TokioIo::new(stream), peer));
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    Ok(())
}

/// One HTTP/1.1 connection over any byte stream, with the configured head
/// timeout and size cap: the accept loop uses it for TCP, the HTTP fuzz target
/// for in-memory pipes.
pub fn connection<IO>(
    svc: Arc<Service>,
    io: IO,
    peer: SocketAddr,
) -> hyper::server::conn::http1::Connection<
    IO,
    impl hyper::service::HttpService<Incoming, ResBody = Body, Error = Infallible, Future: Send> + Send,
>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = &svc.config.limits;
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(
            io,
            hyper::service::service_fn(move |req| {
                let svc = svc.clone();
                async move { Ok::<_, Infallible>(handle(svc, peer, req).await) }
            }),
        )
}

/// Over the connection cap: a minimal 503 and close.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let p = Problem::new(503, "Service Unavailable", "too many connections").to_cbor();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        problem::CONTENT_TYPE,
        p.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&p).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

pub fn problem_response(p: &Problem) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(p.to_cbor())));
    *r.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(problem::CONTENT_TYPE),
    );
    if let Some(s) = p.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn handle(svc: Arc<Service>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let resp = match (method.clone(), segments.as_slice()) {
        (Method::POST, ["entries"]) => post_entries(&svc, peer, req).await,
        (Method::GET, ["entries", id]) => get_entry(&svc, id, &query(&req)),
        (Method::GET, ["entries", id, "statement"]) => get_statement(&svc, id),
        (Method::GET, [".well-known", "scitt-keys"]) => keyset(&svc),
        (Method::GET, [".well-known", "scitt-keys", kid]) => key_by_kid(&svc, kid),
        (Method::GET, [".well-known", "transparency-configuration"]) => {
            transparency_configuration(&svc)
        }
        (Method::GET, ["jwks"]) => jwks(&svc),
        (Method::GET, ["checkpoint"]) => checkpoint(&svc),
        (Method::GET, ["consistency"]) => consistency(&svc, &query(&req)),
        (Method::GET, ["vcons", uuid, "entries"]) => vcon_history(&svc, uuid, &query(&req)),
        (Method::GET, ["vcons", uuid, "consent"]) => vcon_consent(&svc, uuid, &query(&req)),
        (Method::GET, ["vcons", uuid, "lineage"]) => vcon_lineage(&svc, uuid),
        (Method::GET, ["events"]) => events(&svc, &query(&req)),
        (Method::GET, ["policy"]) => policy(&svc),
        (Method::POST, ["admin", "backup"]) => admin_backup(&svc, &req),
        (Method::GET, ["tile", rest @ ..]) => tile(&svc, rest),
        (Method::GET, ["healthz"]) => healthz(&svc),
        (Method::GET, ["metrics"]) => metrics(&svc),
        (_, route) => {
            let known = matches!(
                route,
                ["entries"]
                    | ["entries", _]
                    | ["entries", _, "statement"]
                    | [".well-known", "scitt-keys"]
                    | [".well-known", "scitt-keys", _]
                    | [".well-known", "transparency-configuration"]
                    | ["jwks"]
                    | ["checkpoint"]
                    | ["consistency"]
                    | ["healthz"]
                    | ["metrics"]
                    | ["vcons", _, "entries" | "consent" | "lineage"]
                    | ["events"]
                    | ["policy"]
                    | ["tile", ..]
            );
            if known {
                let mut r = problem_response(&Problem::new(
                    405,
                    "Method Not Allowed",
                    format!("{method} is not allowed on {path}"),
                ));
                set(
                    &mut r,
                    header::ALLOW,
                    if route == ["entries"] { "POST" } else { "GET" },
                );
                r
            } else {
                problem_response(&Problem::new(
                    404,
                    "Not Found",
                    format!("no resource at {path}"),
                ))
            }
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn post_entries(
    svc: &Arc<Service>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // Authentication and rate limiting come first: they are not registration
    // inputs, only admission control.
    let client = match authorize(svc, &req, peer) {
        Ok(c) => c,
        Err(p) => return problem_response(&p),
    };
    if let Err(wait) = svc.rate.check(&client) {
        svc.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        let rl = &svc.config.rate_limit;
        return problem_response(
            &Problem::new(
                429,
                "Too Many Requests",
                format!(
                    "Only {} requests per second are allowed (burst {}).",
                    rl.per_client_per_sec, rl.burst
                ),
            )
            .retry_after(wait),
        );
    }
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
        return problem_response(&Problem::new(
            415,
            "Unsupported Media Type",
            format!(
                "POST /entries takes Content-Type: application/cose (got {:?})",
                if ct.is_empty() { "none" } else { ct }
            ),
        ));
    }
    let max = svc.config.registration.max_statement_bytes;
    let too_large = |n: String| {
        Problem::new(
            413,
            "Payload Too Large",
            format!("the statement is {n} bytes, the limit is {max}"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
    {
        match len.parse::<u64>() {
            Ok(n) if n > max as u64 => return problem_response(&too_large(n.to_string())),
            Ok(_) => {}
            Err(_) => {
                return problem_response(&Problem::malformed("Content-Length is not a number"));
            }
        }
    }
    let timeout = Duration::from_millis(svc.config.limits.body_timeout_ms);
    let body = match tokio::time::timeout(timeout, Limited::new(req.into_body(), max).collect())
        .await
    {
        Err(_) => {
            return problem_response(&Problem::new(
                408,
                "Request Timeout",
                "the body did not arrive in time",
            ));
        }
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return problem_response(&too_large(format!("more than {max}")));
            }
            return problem_response(&Problem::malformed(format!("reading the body failed: {e}")));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    match svc.register(&body).await {
        Ok(Registered::Created {
            entry_id, receipt, ..
        }) => {
            let mut r = respond(StatusCode::CREATED, COSE, receipt);
            set(&mut r, header::LOCATION, &format!("/entries/{entry_id}"));
            r
        }
        Ok(Registered::Accepted { entry_id }) => {
            let mut r = respond(StatusCode::ACCEPTED, COSE, Vec::new());
            set(&mut r, header::LOCATION, &format!("/entries/{entry_id}"));
            set(
                &mut r,
                header::RETRY_AFTER,
                &svc.config.registration.retry_after_secs.to_string(),
            );
            r
        }
        Err(e) => problem_response(&Problem::from(&e)),
    }
}

/// SHA-256 (hex) of the `Authorization: Bearer` token, if any: tokens are
/// configured, compared and logged only as hashes.
fn presented_token_hash(req: &Request<Incoming>) -> Option<String> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    Some(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.trim().as_bytes(),
    )))
}

/// Returns the rate-limit key: the token's hash, or the client address.
fn authorize(svc: &Service, req: &Request<Incoming>, peer: SocketAddr) -> Result<String, Problem> {
    let tokens = &svc.config.auth.bearer_token_sha256;
    if tokens.is_empty() {
        return Ok(peer.ip().to_string());
    }
    let Some(hash) = presented_token_hash(req) else {
        svc.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        return Err(Problem::new(
            401,
            "Unauthorized",
            "POST /entries needs Authorization: Bearer <token>",
        ));
    };
    if tokens.iter().any(|t| t.eq_ignore_ascii_case(&hash)) {
        Ok(format!("token:{}", &hash[..16]))
    } else {
        svc.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        Err(Problem::new(
            401,
            "Unauthorized",
            "the bearer token is not accepted",
        ))
    }
}

fn parse_entry_id(id: &str) -> Result<merkle::Hash, Problem> {
    merkle::from_hex(id)
        .filter(|_| id.len() == 64)
        .ok_or_else(|| {
            Problem::new(
                400,
                "Invalid locator",
                format!("entry id {id:?} is not 64 lowercase hex characters"),
            )
        })
}

fn get_entry(svc: &Service, id: &str, q: &[(String, String)]) -> Response<Body> {
    let leaf = match parse_entry_id(id) {
        Ok(l) => l,
        Err(p) => return problem_response(&p),
    };
    let fresh = matches!(param(q, "fresh"), Some("1" | "true" | "yes"));
    match svc.lookup_receipt(&leaf, fresh) {
        Ok(ReceiptLookup::Ready(receipt)) => {
            let mut r = respond(StatusCode::OK, COSE, receipt);
            set(&mut r, header::LOCATION, &format!("/entries/{id}"));
            // The stable receipt never changes; a fresh one does.
            let cc = if fresh {
                "no-cache"
            } else {
                "public, max-age=31536000, immutable"
            };
            set(&mut r, header::CACHE_CONTROL, cc);
            r
        }
        Ok(ReceiptLookup::Pending) => {
            let mut r = respond(StatusCode::NO_CONTENT, COSE, Vec::new());
            r.headers_mut().remove(header::CONTENT_TYPE);
            set(
                &mut r,
                header::RETRY_AFTER,
                &svc.config.registration.retry_after_secs.to_string(),
            );
            set(&mut r, header::CACHE_CONTROL, "no-store");
            r
        }
        Ok(ReceiptLookup::Failed(why)) => problem_response(&Problem::new(
            404,
            "Registration Failed",
            format!("Signed Statement with entry ID {id} could not be persisted to the log: {why}"),
        )),
        Ok(ReceiptLookup::Unknown) => problem_response(&Problem::new(
            404,
            "Not Found",
            format!("Receipt with entry ID {id} not known to this Transparency Service"),
        )),
        Err(e) => problem_response(&Problem::from(&e)),
    }
}

fn get_statement(svc: &Service, id: &str) -> Response<Body> {
    let leaf = match parse_entry_id(id) {
        Ok(l) => l,
        Err(p) => return problem_response(&p),
    };
    match svc.transparent_statement(&leaf) {
        Ok(Some(ts)) => {
            let mut r = respond(StatusCode::OK, COSE, ts);
            set(
                &mut r,
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            );
            r
        }
        Ok(None) => problem_response(&Problem::new(
            404,
            "Not Found",
            format!(
                "no registered statement with entry ID {id} (or its receipt is not signed yet)"
            ),
        )),
        Err(e) => problem_response(&Problem::from(&e)),
    }
}

fn keyset(svc: &Service) -> Response<Body> {
    let mut r = respond(StatusCode::OK, CBOR, svc.public_keys.to_cose_keyset());
    set(&mut r, header::CACHE_CONTROL, "public, max-age=3600");
    r
}

fn key_by_kid(svc: &Service, kid: &str) -> Response<Body> {
    // base64url (always accepted, -11 §2.2), then hex, then the raw bytes.
    let candidates = [
        crate::keys::from_b64url(kid),
        hex::decode(kid).ok(),
        Some(kid.as_bytes().to_vec()),
    ];
    for c in candidates.into_iter().flatten() {
        if let Some(key) = svc.public_keys.get(&c) {
            let mut r = respond(
                StatusCode::OK,
                CBOR,
                crate::cbor::encode(&key.to_cose_key()),
            );
            set(&mut r, header::CACHE_CONTROL, "public, max-age=3600");
            return r;
        }
    }
    problem_response(&Problem::new(
        404,
        "No such key",
        "No key could be found for this kid value",
    ))
}

fn transparency_configuration(svc: &Service) -> Response<Body> {
    use ciborium::value::Value;
    let url = svc.identity.issuer.trim_end_matches('/').to_owned();
    let body = crate::cbor::encode(&Value::Map(vec![
        (Value::Text("issuer".into()), Value::Text(url.clone())),
        (
            Value::Text("jwks_uri".into()),
            Value::Text(format!("{url}/jwks")),
        ),
    ]));
    respond(StatusCode::OK, CBOR, body)
}

fn jwks(svc: &Service) -> Response<Body> {
    // EC P-256 keys first: conserver's link picks the first EC key.
    let mut keys: Vec<&crate::keys::PublicKey> = Vec::new();
    for (_, k) in &svc.public_keys.keys {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by_key(|k| k.alg != crate::keys::Alg::P256);
    let body = serde_json::json!({"keys": keys.iter().map(|k| k.to_jwk()).collect::<Vec<_>>()});
    respond(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

fn checkpoint(svc: &Service) -> Response<Body> {
    use ciborium::value::Value;
    let h = svc.log.latest();
    let body = crate::cbor::encode(&Value::Map(vec![
        (
            Value::Text("tree_size".into()),
            Value::Integer(h.head.size.into()),
        ),
        (
            Value::Text("root".into()),
            Value::Bytes(h.head.root.to_vec()),
        ),
        (
            Value::Text("timestamp_ms".into()),
            Value::Integer(h.head.timestamp_ms.into()),
        ),
        (
            Value::Text("signed_tree_head".into()),
            Value::Bytes(h.signature.clone()),
        ),
    ]));
    let mut r = respond(StatusCode::OK, CBOR, body);
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    r
}

fn consistency(svc: &Service, q: &[(String, String)]) -> Response<Body> {
    let parse = |name| {
        param(q, name).map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}={v:?} is not a tree size"))
        })
    };
    let from = match parse("from") {
        Some(Ok(v)) => v,
        Some(Err(m)) => return problem_response(&Problem::malformed(m)),
        None => {
            return problem_response(&Problem::malformed(
                "GET /consistency needs ?from=<size>[&to=<size>]",
            ));
        }
    };
    let to = match parse("to") {
        Some(Ok(v)) => Some(v),
        Some(Err(m)) => return problem_response(&Problem::malformed(m)),
        None => None,
    };
    match svc.consistency_receipt(from, to) {
        Ok(Some(r)) => respond(StatusCode::OK, COSE, r),
        Ok(None) => problem_response(&Problem::new(
            404,
            "Not Found",
            format!(
                "no consistency proof from size {from} to {}: sizes must satisfy 0 < from <= to and `to` must be a signed tree size",
                to.map(|t| t.to_string())
                    .unwrap_or_else(|| "the latest".into())
            ),
        )),
        Err(e) => problem_response(&Problem::from(&e)),
    }
}

fn healthz(svc: &Service) -> Response<Body> {
    // Ready only when the log is open, not halted, and its last batch committed.
    if let Some(why) = svc.log.last_batch_error() {
        return problem_response(
            &Problem::new(
                503,
                "Service Unavailable",
                format!("the last batch failed: {why}"),
            )
            .retry_after(5),
        );
    }
    match svc.log.halted() {
        None => respond(
            StatusCode::OK,
            "text/plain",
            format!("ok tree_size={}\n", svc.log.latest().head.size).into_bytes(),
        ),
        Some(why) => problem_response(&Problem::new(
            503,
            "Service Unavailable",
            format!("log halted: {why}"),
        )),
    }
}

fn metrics(svc: &Service) -> Response<Body> {
    let mut r = respond(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        crate::metrics::render(svc).into_bytes(),
    );
    set(&mut r, header::CACHE_CONTROL, "no-store");
    r
}

/// A running server: its address, the service, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub service: Arc<Service>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: no new connections, in-flight requests finish, the
    /// sequencer completes its batch, RocksDB is flushed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
        let svc = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || svc.shutdown()).await;
    }

    /// Waits until the server task ends (after `stop` was signalled).
    pub async fn wait(mut self) -> std::io::Result<()> {
        let r = (&mut self.task).await.unwrap_or(Ok(()));
        let svc = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || svc.shutdown()).await;
        r
    }
}

/// Binds `config.listen` (port 0 picks a free port; the service URL then
/// uses the real one), opens the service and starts serving.
pub async fn start(
    mut config: crate::config::Config,
    shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<Running, String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    config.listen = addr;
    let service = tokio::task::spawn_blocking(move || Service::open(config))
        .await
        .map_err(|e| e.to_string())??;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let external = shutdown;
    let svc = service.clone();
    let task = tokio::spawn(async move {
        let signal = async move {
            match external {
                Some(ext) => {
                    tokio::select! {
                        _ = rx => {}
                        _ = ext => {}
                    }
                }
                None => {
                    let _ = rx.await;
                }
            }
        };
        serve(svc, listener, signal).await
    });
    Ok(Running {
        addr,
        service,
        stop: Some(tx),
        task,
    })
}

fn json_response(v: &impl serde::Serialize) -> Response<Body> {
    let mut r = respond(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec_pretty(v).unwrap_or_default(),
    );
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    r
}

fn parse_uuid(uuid: &str) -> Result<String, Problem> {
    crate::vcon::profile::normalize_uuid(uuid)
        .ok_or_else(|| Problem::malformed(format!("{uuid:?} is not a vCon uuid (8-4-4-4-12 hex)")))
}

fn parse_time_param(q: &[(String, String)], name: &str) -> Result<Option<i64>, Problem> {
    match param(q, name) {
        None => Ok(None),
        Some(v) => crate::time::parse_rfc3339_ms(v)
            .map(Some)
            .ok_or_else(|| Problem::malformed(format!("{name}={v:?} is not an RFC 3339 time"))),
    }
}

fn parse_u64_param(q: &[(String, String)], name: &str) -> Result<Option<u64>, Problem> {
    match param(q, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Problem::malformed(format!("{name}={v:?} is not a number"))),
    }
}

fn vcon_history(svc: &Service, uuid: &str, q: &[(String, String)]) -> Response<Body> {
    let run = || -> Result<Response<Body>, Problem> {
        let uuid = parse_uuid(uuid)?;
        let after = parse_u64_param(q, "after")?;
        let limit = parse_u64_param(q, "limit")?.unwrap_or(100).clamp(1, 1000) as usize;
        let all = crate::vcon_index::history(svc.log.store(), &uuid)
            .map_err(|e| Problem::new(500, "Internal Server Error", e.to_string()))?;
        let items: Vec<_> = all
            .into_iter()
            .filter(|i| after.is_none_or(|a| i.index > a))
            .take(limit)
            .collect();
        let next_after = if items.len() == limit {
            items.last().map(|i| i.index)
        } else {
            None
        };
        Ok(json_response(
            &serde_json::json!({"vcon_uuid": uuid, "items": items, "next_after": next_after}),
        ))
    };
    run().unwrap_or_else(|p| problem_response(&p))
}

fn vcon_consent(svc: &Service, uuid: &str, q: &[(String, String)]) -> Response<Body> {
    let run = || -> Result<Response<Body>, Problem> {
        let uuid = parse_uuid(uuid)?;
        let as_of = parse_time_param(q, "as_of")?;
        let all = crate::vcon_index::history(svc.log.store(), &uuid)
            .map_err(|e| Problem::new(500, "Internal Server Error", e.to_string()))?;
        Ok(json_response(&crate::vcon::consent::consent(
            &all, &uuid, as_of,
        )))
    };
    run().unwrap_or_else(|p| problem_response(&p))
}

fn vcon_lineage(svc: &Service, uuid: &str) -> Response<Body> {
    let run = || -> Result<Response<Body>, Problem> {
        let uuid = parse_uuid(uuid)?;
        let l = crate::vcon_index::lineage(svc.log.store(), &uuid)
            .map_err(|e| Problem::new(500, "Internal Server Error", e.to_string()))?;
        Ok(json_response(&l))
    };
    run().unwrap_or_else(|p| problem_response(&p))
}

fn events(svc: &Service, q: &[(String, String)]) -> Response<Body> {
    let run = || -> Result<Response<Body>, Problem> {
        let event = match param(q, "type") {
            None => None,
            Some(t) => Some(crate::vcon::Event::parse(t).ok_or_else(|| {
                Problem::malformed(format!("type={t:?} is not a lifecycle event"))
            })?),
        };
        let fq = crate::vcon_index::FeedQuery {
            event,
            iss: param(q, "iss").map(str::to_owned),
            after: parse_u64_param(q, "after")?,
            limit: parse_u64_param(q, "limit")?.unwrap_or(100).clamp(1, 1000) as usize,
            since_ms: parse_time_param(q, "since")?,
            until_ms: parse_time_param(q, "until")?,
        };
        let (items, last) = crate::vcon_index::feed(svc.log.store(), &fq)
            .map_err(|e| Problem::new(500, "Internal Server Error", e.to_string()))?;
        // Poll again with after=next_after; it moves past filtered rows too.
        Ok(json_response(
            &serde_json::json!({"items": items, "next_after": last.or(fq.after)}),
        ))
    };
    run().unwrap_or_else(|p| problem_response(&p))
}

fn policy(svc: &Service) -> Response<Body> {
    json_response(
        &serde_json::json!({"entry_id": svc.policy_entry(), "policy": svc.policy_document()}),
    )
}

fn admin_backup(svc: &Service, req: &Request<Incoming>) -> Response<Body> {
    let tokens = &svc.config.auth.admin_token_sha256;
    if tokens.is_empty() {
        return problem_response(&Problem::new(
            403,
            "Forbidden",
            "the admin API is disabled (no auth.admin_token_sha256 configured)",
        ));
    }
    if !presented_token_hash(req).is_some_and(|h| tokens.iter().any(|t| t.eq_ignore_ascii_case(&h)))
    {
        return problem_response(&Problem::new(
            401,
            "Unauthorized",
            "POST /admin/backup needs an admin bearer token",
        ));
    }
    match svc.backup() {
        Ok((dir, size)) => json_response(&serde_json::json!({"path": dir, "tree_size": size})),
        Err(e) => problem_response(&Problem::from(&e)),
    }
}

/// C2SP tlog-tiles hash tiles, straight from storage: row 0 of the stored
/// tile, limited to what the latest signed head covers. Full tiles never
/// change (immutable caching); a partial tile of width W is a prefix of every
/// later version, so any W up to the signed width is served.
fn tile(svc: &Service, rest: &[&str]) -> Response<Body> {
    use crate::merkle::tile::{WIDTH, parse_c2sp_path, width_at};
    let Some((id, want)) = parse_c2sp_path(rest) else {
        return problem_response(&Problem::malformed(format!(
            "/tile/{} is not a C2SP tile path",
            rest.join("/")
        )));
    };
    let signed = width_at(id, svc.log.latest().head.size);
    let width = match want {
        None if signed == WIDTH => WIDTH,
        Some(w) if w <= signed => w,
        _ => {
            return problem_response(&Problem::new(
                404,
                "Not Found",
                format!("{id} has {signed} signed nodes"),
            ));
        }
    };
    match svc.log.store().tile(id) {
        Ok(Some(t)) if t.width() >= width => {
            let body: Vec<u8> = t.row(0)[..width]
                .iter()
                .flat_map(|h| h.iter().copied())
                .collect();
            let mut r = respond(StatusCode::OK, "application/octet-stream", body);
            set(
                &mut r,
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            );
            r
        }
        Ok(_) => problem_response(&Problem::new(
            500,
            "Internal Server Error",
            format!("{id} is missing from storage"),
        )),
        Err(e) => problem_response(&Problem::new(500, "Internal Server Error", e.to_string())),
    }
}
