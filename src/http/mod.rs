//! The HTTP API (SCRAPI draft -11 plus read APIs) on hyper 1.x.
//!
//! Guards: a connection cap (excess connections get a 503 and are closed), a
//! header-read timeout (slowloris), a head-size cap, a body cap enforced from
//! `Content-Length` before reading and while reading, and a body-read
//! timeout. Every error body is RFC 9290 CBOR, built in one place
//! ([`error`]).
//!
//! Layout: this file holds the accept loop, one connection, the server
//! lifecycle and the response builders; [`routes`] the route table;
//! [`admission`] bearer tokens and rate limits; one file per resource family
//! ([`entries`], [`discovery`], [`tlog`], [`vcon`], [`ops`]). Handlers return
//! `Result<Response<Body>, ApiError>` and reach the log only through
//! [`Service`] methods.

mod admission;
mod discovery;
mod entries;
pub mod error;
mod ops;
mod routes;
mod tlog;
mod vcon;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::{Config, Limits};
use crate::problem;
use crate::replica::{Replica, ReplicaConfig};
use crate::service::Service;
use admission::RateLimiter;
use error::ProblemKind;

pub use error::ApiError;

pub type Body = Full<Bytes>;

const COSE: &str = "application/cose";
const CBOR: &str = "application/cbor";
const JSON: &str = "application/json";

/// For responses that can never change: a stable receipt, a registered
/// statement, a full or partial hash tile (a partial tile of width W is a
/// prefix of every later version).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Who answers the requests: the writer, or a read replica (which serves
/// the log's reads through the same handlers, [`crate::reads::LogReads`]).
enum Backend {
    Writer(Arc<Service>),
    Replica(Arc<Replica>),
}

/// What every connection of one server shares: the backend, its limits and
/// the rate-limit buckets (which must outlive any one connection).
struct Api {
    backend: Backend,
    limits: Limits,
    rate: RateLimiter,
}

impl Api {
    fn new(svc: Arc<Service>) -> Arc<Api> {
        let rl = &svc.config.rate_limit;
        let rate = RateLimiter::new(rl.per_client_per_sec, rl.burst);
        let limits = svc.config.limits.clone();
        Arc::new(Api {
            backend: Backend::Writer(svc),
            limits,
            rate,
        })
    }

    fn replica(replica: Arc<Replica>, config: &Config) -> Arc<Api> {
        let rl = &config.rate_limit;
        Arc::new(Api {
            backend: Backend::Replica(replica),
            limits: config.limits.clone(),
            rate: RateLimiter::new(rl.per_client_per_sec, rl.burst),
        })
    }
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish (bounded), and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_api(Api::new(service), listener, shutdown).await
}

async fn serve_api(
    api: Arc<Api>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = api.limits.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Every connection's task, so that none outlives the server (each
    // holds the backend, whose store a demoted writer's rewind reopens).
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
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
        let conn = graceful.watch(api_connection(api.clone(), TokioIo::new(stream), peer));
        conns.spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => tracing::warn!("connections still open after 10 s; closing"),
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// One HTTP/1.1 connection over any byte stream, with the configured head
/// timeout and size cap: the HTTP fuzz target drives it over in-memory pipes.
/// A connection made here has rate-limit buckets of its own; [`serve`] shares
/// one set across all its connections.
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
    api_connection(Api::new(svc), io, peer)
}

fn api_connection<IO>(
    api: Arc<Api>,
    io: IO,
    peer: SocketAddr,
) -> hyper::server::conn::http1::Connection<
    IO,
    impl hyper::service::HttpService<Incoming, ResBody = Body, Error = Infallible, Future: Send> + Send,
>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = &api.limits;
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(
            io,
            hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, peer, req).await) }
            }),
        )
}

/// Over the connection cap: a minimal 503 and close, written by hand because
/// no hyper connection exists for it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let p = ProblemKind::ServiceUnavailable
        .problem("too many connections")
        .to_cbor();
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

async fn handle(api: &Api, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = routes::dispatch(api, peer, req)
        .await
        .unwrap_or_else(ApiError::into_response);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// True when the request's `Accept` names `media` (parameters and case
/// ignored): the one content negotiation the API does.
fn accepts<B>(req: &Request<B>, media: &str) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(media)
        })
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The read APIs' JSON: pretty, and revalidated on every use because a new
/// registration can change it.
fn json_response(v: &impl serde::Serialize) -> Response<Body> {
    let mut r = respond(
        StatusCode::OK,
        JSON,
        serde_json::to_vec_pretty(v).unwrap_or_default(),
    );
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    r
}

/// What a running server stops when it ends: the writer (its sequencer,
/// then RocksDB) or a replica (its cache).
pub trait Backed: Send + Sync + 'static {
    fn shutdown(&self);
}

impl Backed for Service {
    fn shutdown(&self) {
        Service::shutdown(self)
    }
}

impl Backed for Replica {
    fn shutdown(&self) {
        Replica::shutdown(self)
    }
}

/// A background task of a running server (the publisher, a replica's
/// follower) and how to tell it to stop.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A running server: its address, the writer service (or the replica), and
/// how to stop it.
pub struct Running<B: Backed = Service> {
    pub addr: SocketAddr,
    pub service: Arc<B>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Option<Background>,
}

impl<B: Backed> Running<B> {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop: no new connections, in-flight requests finish, the
    /// background task ends (the publisher after a last round), the
    /// sequencer completes its batch, RocksDB is flushed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.finish().await;
    }

    /// Waits until the server task ends (after `stop` was signalled).
    pub async fn wait(mut self) -> std::io::Result<()> {
        self.finish().await
    }

    /// The shutdown both ways of ending share: the accept loop has ended (or
    /// ends now), the background task is told to stop and given 15 s, then
    /// the backend stops (on a blocking thread: the writer waits on its
    /// sequencer thread). A panicked server task counts as ended.
    async fn finish(&mut self) -> std::io::Result<()> {
        let r = (&mut self.task).await.unwrap_or(Ok(()));
        if let Some(b) = self.background.take() {
            let _ = b.stop.send(true);
            let mut task = b.task;
            if tokio::time::timeout(Duration::from_secs(15), &mut task)
                .await
                .is_err()
            {
                tracing::warn!("background task still running after 15 s; stopping it");
                task.abort();
                let _ = task.await;
            }
        }
        let svc = self.service.clone();
        let _ = tokio::task::spawn_blocking(move || svc.shutdown()).await;
        r
    }
}

/// Binds `config.listen` (port 0 picks a free one), then returns the
/// listener, the address and the config with the real address.
async fn bind(mut config: Config) -> Result<(TcpListener, SocketAddr, Config), String> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    config.listen = addr;
    Ok((listener, addr, config))
}

/// Serves `api` until the returned sender fires or `external` does.
fn spawn_server(
    api: Arc<Api>,
    listener: TcpListener,
    external: Option<tokio::sync::oneshot::Receiver<()>>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
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
        serve_api(api, listener, signal).await
    });
    (tx, task)
}

/// Binds `config.listen` (port 0 picks a free port; the service URL then
/// uses the real one), opens the service and starts serving; with
/// `publish.bucket` set, also the publisher.
pub async fn start(
    config: Config,
    shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<Running, String> {
    start_with(config, shutdown, None).await
}

/// [`start`], with the log's lease already won (a standby taking over).
async fn start_with(
    config: Config,
    shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
    won: Option<Arc<crate::fence::Fence>>,
) -> Result<Running, String> {
    if config.registration.durability == crate::config::Durability::Replicated
        && config.publish.bucket.is_none()
    {
        return Err("registration.durability = replicated needs a bucket to replicate to: set publish.bucket (--publish-to)".into());
    }
    let (listener, addr, config) = bind(config).await?;
    let bucket = match &config.publish.bucket {
        Some(url) => Some(
            crate::bucket::Bucket::open(
                url,
                Duration::from_millis(config.publish.request_timeout_ms),
            )
            .map_err(|e| format!("publish.bucket: {e}"))?,
        ),
        None => None,
    };
    let fence = if let Some(f) = won {
        Some(f)
    } else if config.fence.etcd.is_empty() {
        None
    } else {
        if config.registration.durability != crate::config::Durability::Replicated {
            return Err("fence.etcd (--etcd) fences the bucket's checkpoint: it needs registration.durability = replicated (--durability replicated), so that no 201 precedes the checkpoint the lease guards".into());
        }
        match crate::fence::Fence::acquire(&config.fence, &config.log_id(), &node_name(&config))
            .await
        {
            Ok(f) => Some(f),
            // Another writer holds the log: this node's unpublished heads
            // can never be published, and that writer signs those sizes.
            Err(held @ crate::fence::FenceError::Held { checkpoint, .. }) => {
                let rewound = rewind(&config, crate::rewind::Lease::Another(checkpoint)).await;
                return Err(match rewound {
                    Ok(crate::rewind::Rewind::Discarded(r)) => format!(
                        "{held}. This data dir held {} entries above the published log ({}); it was rewound to size {}. Start it with --standby to follow the writer",
                        r.discarded_entries,
                        if r.to_etcd_checkpoint {
                            "all above etcd's checkpoint: none acknowledged"
                        } else {
                            "above its recorded published size: any acknowledged are in the bucket"
                        },
                        r.published
                    ),
                    Ok(_) => held.to_string(),
                    Err(e) => format!("{held}; and {e}"),
                });
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    // A writer that won the lease continues from the checkpoint etcd
    // records: a store that does not hold it is rewound to what it
    // published (its heads above were never published, and another writer
    // may have signed those sizes), then caught up from the bucket.
    if let (Some(f), Some(url)) = (&fence, &config.publish.bucket)
        && let Some(at) = f.at_start
    {
        let caught_up = match rewind(&config, crate::rewind::Lease::Ours(at)).await {
            Ok(crate::rewind::Rewind::Holds) => Ok(None),
            Ok(_) => crate::replica::catch_up(
                url,
                config.data_dir.clone(),
                Duration::from_millis(config.publish.request_timeout_ms),
                Some(at),
            )
            .await
            .map(Some)
            .map_err(|e| format!("catching up from {url}: {e}")),
            Err(e) => Err(e.to_string()),
        };
        match caught_up {
            Ok(Some(size)) => {
                tracing::info!(size, "caught up from the bucket to the fenced checkpoint")
            }
            Ok(None) => {}
            Err(e) => {
                f.release().await;
                return Err(e);
            }
        }
    }
    let opened = tokio::task::spawn_blocking(move || Service::open(config))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    let service = match (opened, &fence) {
        (Ok(s), _) => s,
        (Err(e), Some(f)) => {
            f.release().await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    if let Some(f) = &fence {
        if let Err(e) = check_fenced_checkpoint(&service, f) {
            f.release().await;
            return Err(e);
        }
        let _ = service.fence.set(f.clone());
    }
    let background = bucket.map(|bucket| {
        let (stop, rx) = tokio::sync::watch::channel(false);
        if let Some(f) = &fence {
            tokio::spawn(f.clone().keep_alive(rx.clone()));
        }
        let (status, task) = crate::publish::start(service.clone(), bucket, rx);
        let _ = service.publishing.set(status);
        Background { stop, task }
    });
    // `replicated`: a GET must know what the bucket holds before it answers
    // (else every receipt reads "pending" for a moment). Bounded: a bucket
    // that is down leaves them pending until it answers.
    if let Some(status) = service.replication() {
        let deadline = std::time::Instant::now()
            + Duration::from_millis(service.config.publish.request_timeout_ms);
        while !status.resumed.load(std::sync::atomic::Ordering::Relaxed)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (stop, task) = spawn_server(Api::new(service.clone()), listener, shutdown);
    Ok(Running {
        addr,
        service,
        stop: Some(stop),
        task,
        background,
    })
}

/// [`crate::rewind::to_published`] off the async threads.
async fn rewind(
    config: &Config,
    lease: crate::rewind::Lease,
) -> Result<crate::rewind::Rewind, crate::rewind::RewindError> {
    let dir = config.data_dir.clone();
    let config = config.clone();
    tokio::task::spawn_blocking(move || crate::rewind::to_published(&config, lease))
        .await
        .map_err(|e| crate::rewind::RewindError::Files {
            dir,
            why: e.to_string(),
        })?
}

/// A writer that won the lease continues the log etcd records: its store
/// must hold that checkpoint's size, with that root (else it would fork
/// the log, or publish over entries it does not have).
fn check_fenced_checkpoint(svc: &Service, fence: &crate::fence::Fence) -> Result<(), String> {
    let Some((size, root)) = fence.at_start else {
        return Ok(());
    };
    let local = svc.latest_head().head.size;
    if local < size {
        return Err(format!(
            "the log's fenced checkpoint (etcd) is at size {size}, this data dir at {local}: restore it first (vcon-scitt restore --from <bucket> into a fresh data dir)"
        ));
    }
    let ours = svc
        .log
        .store()
        .head(size)
        .map_err(|e| e.to_string())?
        .map(|h| h.head.root);
    if ours != Some(root) {
        return Err(format!(
            "the log's fenced checkpoint (etcd) at size {size} has root {}, which this data dir never signed: it holds another history; restore it from the bucket",
            hex::encode(root)
        ));
    }
    Ok(())
}
/// Starts a read replica of `config.replica.of`: opens the bucket and the
/// cache, catches up once (so it starts serving what is published), then
/// follows the bucket in the background.
pub async fn start_replica(
    config: Config,
    shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Result<Running<Replica>, String> {
    let cache = config.data_dir.join("replica");
    start_replica_in(config, shutdown, cache).await
}

/// This writer's name in the leader key.
fn node_name(config: &Config) -> String {
    config
        .fence
        .node
        .clone()
        .unwrap_or_else(|| format!("{} pid {}", config.service_url(), std::process::id()))
}

/// Ends a term (its shutdown sender, taken once).
fn fire(tx: &std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>) {
    if let Some(t) = crate::sync::lock(tx).take() {
        let _ = t.send(());
    }
}

/// What a `serve --standby` node is, each time that changes.
pub enum NodeTerm<'a> {
    /// Listening (the standby's replica, or a writer that won at once).
    Listening(&'a str),
    /// The writer, having won the lease.
    Writer(&'a Running),
    /// The writer was fenced at run time (its lease lost to another): it
    /// stopped, and the node rejoins as the standby on the same address.
    Demoted(&'a str),
}

/// `serve --standby` for the life of the process: the standby until it
/// wins the lease ([`run_standby`]), then the writer until `shutdown` fires
/// or it is fenced for good. A writer fenced at run time (cut off from etcd
/// while its lease expired and another writer took it) already acknowledges
/// nothing; it then stops cleanly and rejoins as the standby on the same
/// address, rewinding the heads it signed that were never published, and
/// follows the new writer: a partition heals into two nodes again, not a
/// writer answering 503 until someone restarts it.
pub async fn run_standby_node(
    mut config: Config,
    shutdown: tokio::sync::oneshot::Receiver<()>,
    mut tell: impl FnMut(NodeTerm<'_>),
) -> Result<(), String> {
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
    let forward_stop = tokio::spawn(async move {
        if shutdown.await.is_ok() {
            let _ = stopping.send(true);
        }
    });
    let result = loop {
        // Each term's shutdown: the process's, or the fence's.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let on_stop = {
            let (tx, mut stop_rx) = (tx.clone(), stop_rx.clone());
            tokio::spawn(async move {
                if stop_rx.wait_for(|s| *s).await.is_ok() {
                    fire(&tx);
                }
            })
        };
        let running =
            match run_standby(config.clone(), rx, |url| tell(NodeTerm::Listening(url))).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    on_stop.abort();
                    break Ok(());
                }
                Err(e) => {
                    on_stop.abort();
                    break Err(e);
                }
            };
        tell(NodeTerm::Writer(&running));
        let fence = running.service.fence.get().cloned();
        let on_fenced = fence.clone().map(|fence| {
            let tx = tx.clone();
            tokio::spawn(async move {
                while fence.fenced_for_good().is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                fire(&tx);
            })
        });
        let addr = running.addr;
        let ended = running.wait().await;
        on_stop.abort();
        if let Some(t) = on_fenced {
            t.abort();
        }
        match fence.and_then(|f| f.fenced_for_good()) {
            Some(why) if !*stop_rx.borrow() => {
                tell(NodeTerm::Demoted(&why));
                config.listen = addr;
            }
            _ => break ended.map_err(|e| e.to_string()),
        }
    };
    forward_stop.abort();
    result
}

/// `serve --standby`: a read replica of the bucket whose cache is the data
/// dir's own store, until the log's lease is free; then, on the same
/// address, the writer (which first catches up from the bucket to the
/// checkpoint etcd records, verifying as a replica does). Before any
/// writer has published it only campaigns (so with a free lease and an
/// empty bucket it starts the log). `listening` is told the address once.
/// Returns the writer once it has taken over, or `None` if `shutdown`
/// fired first.
pub async fn run_standby(
    config: Config,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    listening: impl FnOnce(&str),
) -> Result<Option<Running>, String> {
    if config.fence.etcd.is_empty()
        || config.registration.durability != crate::config::Durability::Replicated
    {
        return Err("a standby (--standby) takes over a fenced writer: it needs --etcd, --publish-to and --durability replicated".into());
    }
    let bucket = config
        .publish
        .bucket
        .clone()
        .ok_or("a standby follows the writer's bucket: set --publish-to")?;
    let mut as_replica = config.clone();
    as_replica.replica.of = Some(bucket);
    let data_dir = config.data_dir.clone();
    let node = node_name(&config);
    let period = Duration::from_millis((config.fence.ttl_secs.max(2) as u64).saturating_mul(500));
    let mut listening = Some(listening);
    let mut replica: Option<Running<Replica>> = None;
    // A deposed writer rejoining rewinds first (the writer holding the
    // lease signs the sizes of its unpublished heads), to etcd's
    // checkpoint when it holds it; then it follows the bucket. A standby
    // that wins the lease at once rewinds as a writer does (`start_with`).
    let mut rewound = false;
    let fence = loop {
        match crate::fence::Fence::acquire(&config.fence, &config.log_id(), &node).await {
            Ok(f) => break f,
            Err(crate::fence::FenceError::Held { checkpoint, .. }) if !rewound => {
                match rewind(&config, crate::rewind::Lease::Another(checkpoint)).await {
                    Ok(_) => rewound = true,
                    // The store still open (a demoted writer's last
                    // connections closing): again next period.
                    Err(e @ crate::rewind::RewindError::Busy { .. }) => {
                        tracing::warn!(error = %e, "standby: not rewound yet; retrying")
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(crate::fence::FenceError::Held { .. }) => {}
            Err(e @ crate::fence::FenceError::Etcd(_)) if !rewound => {
                tracing::warn!(error = %e, "standby: campaigning for the lease failed");
                // etcd unreachable: the store's own record bounds the
                // rewind (it never exceeds what was published), and the
                // standby follows the bucket meanwhile. A store that
                // records nothing waits for etcd's checkpoint.
                match rewind(&config, crate::rewind::Lease::Another(None)).await {
                    Ok(_) => rewound = true,
                    Err(e) => tracing::warn!(error = %e, "standby: not rewound without etcd"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "standby: campaigning for the lease failed"),
        }
        // Follow the bucket as soon as a writer has published to it.
        if rewound && replica.is_none() {
            match start_replica_in(as_replica.clone(), None, data_dir.clone()).await {
                Ok(r) => {
                    if let Some(say) = listening.take() {
                        say(&r.url());
                    }
                    replica = Some(r);
                }
                Err(e) => tracing::warn!(error = %e, "standby: not following the bucket yet"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = &mut shutdown => {
                if let Some(r) = replica {
                    r.stop().await;
                }
                return Ok(None);
            }
        }
    };
    tracing::info!(
        node,
        token = fence.token(),
        "standby: won the lease; taking over as the writer"
    );
    let mut writer = config;
    if let Some(r) = replica {
        writer.listen = r.addr;
        r.stop().await;
    }
    match start_with(writer, Some(shutdown), Some(fence.clone())).await {
        Ok(running) => {
            if let Some(say) = listening.take() {
                say(&running.url());
            }
            Ok(Some(running))
        }
        Err(e) => {
            fence.release().await;
            Err(e)
        }
    }
}

/// [`start_replica`] with its cache (checkpoint pin and store) in `cache`.
async fn start_replica_in(
    config: Config,
    shutdown: Option<tokio::sync::oneshot::Receiver<()>>,
    cache: std::path::PathBuf,
) -> Result<Running<Replica>, String> {
    let (listener, addr, config) = bind(config).await?;
    let bucket = config
        .replica
        .of
        .clone()
        .ok_or("replica.of (--replica-of) names no bucket")?;
    let rc = ReplicaConfig {
        bucket,
        cache_dir: cache,
        poll: Duration::from_millis(config.replica.poll_ms.max(10)),
        request_timeout: Duration::from_millis(config.publish.request_timeout_ms),
    };
    let replica = Replica::open(&rc).await.map_err(|e| e.to_string())?;
    if let Err(e) = replica.round().await {
        tracing::warn!(error = %e, "first catch-up from the bucket failed; retrying in the background");
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(replica.clone().follow(rx));
    let (stop_server, server) =
        spawn_server(Api::replica(replica.clone(), &config), listener, shutdown);
    Ok(Running {
        addr,
        service: replica,
        stop: Some(stop_server),
        task: server,
        background: Some(Background { stop, task }),
    })
}
