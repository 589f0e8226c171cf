//! The single-writer lease: one writer per log, fenced through etcd
//! (Sunlight's lock-backend pattern; `../shared/specs/scale-out.md` §2).
//!
//! Two keys under `/vcon-scitt/<log id>/`:
//! - `leader`: the writer's name, bound to its lease. Won by a
//!   transaction that creates it only if absent; its `create_revision` is
//!   the **fencing token** (it grows with every election).
//! - `checkpoint`: `<size> <root hex>` of the last checkpoint published.
//!   It advances only by a transaction that compares the leader key's
//!   `create_revision` with this writer's token *and* the checkpoint's
//!   `mod_revision` with the one this writer last wrote: a writer whose
//!   lease expired, or which someone else followed, cannot advance it.
//!
//! The publisher advances it after a round's objects are in the bucket and
//! before the bucket's checkpoint (`crate::publish`), and in `replicated`
//! durability a 201 waits for that checkpoint, so no deposed writer
//! acknowledges anything.
//!
//! Safety comes from the compare-and-swap, never from believing a lease is
//! alive: etcd resets a lease's TTL when it restarts or elects a leader. But
//! "stops acknowledging at once" is enforced locally: a deadline, the send
//! time of the last keep-alive that etcd answered with a live TTL plus that
//! TTL less a margin. Past it (etcd unreachable, or the lease gone) no 201
//! is sent; a keep-alive answered again extends it, and the token check
//! still guards every checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, PutOptions, Txn, TxnOp};

use crate::config::FenceSettings;
use crate::merkle::Hash;
use crate::sync::{read, write};

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error(
        "the log's lease is held by {holder:?}: this writer is fenced (stop that writer, or wait for its lease to expire)"
    )]
    Held {
        holder: String,
        /// The checkpoint etcd records: what that writer published last
        /// (a deposed writer rewinds to it, `crate::rewind`).
        checkpoint: Option<FencedCheckpoint>,
    },
    #[error("fenced: {0}")]
    Fenced(String),
    /// The lease was not renewed in time (etcd unreachable): no checkpoint
    /// now, retry once it is renewed.
    #[error("{0}")]
    Lapsed(String),
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("{0}")]
    Setup(String),
}

/// The checkpoint recorded in etcd: (size, root).
pub type FencedCheckpoint = (u64, Hash);

pub struct Fence {
    client: Client,
    leader_key: String,
    checkpoint_key: String,
    /// The size above which heads objects may include a deposed writer's
    /// (`crate::publish`'s sweep): set by a writer at resume, deleted by its
    /// sweep, so a writer deposed before sweeping passes the range on.
    sweep_key: String,
    node: String,
    ttl: Duration,
    lease: i64,
    token: i64,
    /// `mod_revision` of the checkpoint key as this writer last saw or wrote
    /// it (0: absent).
    checkpoint_rev: AtomicI64,
    /// The checkpoint etcd held when the lease was won.
    pub at_start: Option<FencedCheckpoint>,
    /// The unswept size etcd held when the lease was won (a writer
    /// deposed before its sweep).
    pub unswept_at_start: Option<u64>,
    /// Local bound on holding the lease (ms since the epoch).
    deadline_ms: AtomicU64,
    /// Set for good when the lease is known lost or a CAS failed.
    fenced: std::sync::RwLock<Option<String>>,
}

fn now_ms() -> u64 {
    crate::time::now_ms()
}

fn parse_checkpoint(v: &[u8]) -> Option<FencedCheckpoint> {
    let s = std::str::from_utf8(v).ok()?;
    let (size, root) = s.split_once(' ')?;
    Some((size.parse().ok()?, crate::merkle::from_hex(root)?))
}

/// The keys an acquiring transaction read: the leader's name (when held by
/// another), etcd's checkpoint and its `mod_revision`, the unswept size.
type AcquireRead = (String, Option<FencedCheckpoint>, i64, Option<u64>);

fn read_keys(
    r: &etcd_client::TxnResponse,
    leader_key: &str,
    sweep_key: &str,
) -> Result<AcquireRead, FenceError> {
    let (mut holder, mut at_start, mut rev, mut unswept_at_start) = (String::new(), None, 0, None);
    for op in r.op_responses() {
        if let etcd_client::TxnOpResponse::Get(g) = op
            && let Some(kv) = g.kvs().first()
        {
            let unparsable = |what: &str| {
                FenceError::Setup(format!(
                    "{} holds {:?}, not {what}",
                    String::from_utf8_lossy(kv.key()),
                    String::from_utf8_lossy(kv.value())
                ))
            };
            if kv.key() == leader_key.as_bytes() {
                holder = String::from_utf8_lossy(kv.value()).into_owned();
            } else if kv.key() == sweep_key.as_bytes() {
                let size = std::str::from_utf8(kv.value())
                    .ok()
                    .and_then(|v| v.parse().ok());
                unswept_at_start = Some(size.ok_or_else(|| unparsable("a size"))?);
            } else {
                at_start = Some(
                    parse_checkpoint(kv.value())
                        .ok_or_else(|| unparsable("\"<size> <root hex>\""))?,
                );
                rev = kv.mod_revision();
            }
        }
    }
    Ok((holder, at_start, rev, unswept_at_start))
}

impl Fence {
    /// Wins the lease, or says who holds it.
    pub async fn acquire(
        s: &FenceSettings,
        log_id: &str,
        node: &str,
    ) -> Result<Arc<Fence>, FenceError> {
        if s.ttl_secs < 2 {
            return Err(FenceError::Setup(format!(
                "fence.ttl_secs = {}: etcd leases live at least 2 s",
                s.ttl_secs
            )));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(1000))
            .with_timeout(Duration::from_millis(2000))
            .with_keep_alive(Duration::from_secs(1), Duration::from_millis(500));
        let mut client = Client::connect(&s.etcd, Some(options)).await?;
        let prefix = format!("/vcon-scitt/{log_id}/");
        let leader_key = format!("{prefix}leader");
        let checkpoint_key = format!("{prefix}checkpoint");
        let sweep_key = format!("{prefix}sweep-from");
        let sent = now_ms();
        let lease = client.lease_grant(s.ttl_secs, None).await?;
        let txn = Txn::new()
            .when([Compare::create_revision(
                leader_key.clone(),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put(
                    leader_key.clone(),
                    node,
                    Some(PutOptions::new().with_lease(lease.id())),
                ),
                TxnOp::get(checkpoint_key.clone(), None),
                TxnOp::get(sweep_key.clone(), None),
            ])
            .or_else([
                TxnOp::get(leader_key.clone(), None),
                TxnOp::get(checkpoint_key.clone(), None),
            ]);
        let r = client.txn(txn).await?;
        let read = read_keys(&r, &leader_key, &sweep_key);
        if !r.succeeded() || read.is_err() {
            // Not ours, or ours with keys this writer cannot read: the
            // leader key goes with the lease, at once.
            let _ = client.lease_revoke(lease.id()).await;
        }
        let (holder, at_start, rev, unswept_at_start) = read?;
        if !r.succeeded() {
            return Err(FenceError::Held {
                holder,
                checkpoint: at_start,
            });
        }
        let token = r.header().map(|h| h.revision()).unwrap_or_default();
        let ttl = Duration::from_secs(lease.ttl().max(2) as u64);
        let fence = Arc::new(Fence {
            client,
            leader_key,
            checkpoint_key,
            sweep_key,
            node: node.to_owned(),
            ttl,
            lease: lease.id(),
            token,
            checkpoint_rev: AtomicI64::new(rev),
            at_start,
            unswept_at_start,
            deadline_ms: AtomicU64::new(0),
            fenced: std::sync::RwLock::new(None),
        });
        fence.extend(sent);
        tracing::info!(
            node,
            token,
            lease = lease.id(),
            ttl_secs = ttl.as_secs(),
            "won the log's lease in etcd"
        );
        Ok(fence)
    }

    /// The margin kept before the lease's expiry (a third of the TTL).
    fn extend(&self, sent_ms: u64) {
        let ttl = self.ttl.as_millis() as u64;
        self.deadline_ms
            .fetch_max(sent_ms + ttl - ttl / 3, Ordering::Relaxed);
    }

    /// The lease's time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn token(&self) -> i64 {
        self.token
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// `Ok` while this writer may acknowledge: not fenced, and within the
    /// local deadline of its last renewed lease.
    pub fn holds(&self) -> Result<(), String> {
        self.check().map_err(|e| match e {
            FenceError::Fenced(why) => format!("fenced: {why}"),
            other => other.to_string(),
        })
    }

    /// Why this writer is fenced for good, once it is (its lease gone, or
    /// another writer's token on the leader key): it will never acknowledge
    /// again under this lease.
    pub fn fenced_for_good(&self) -> Option<String> {
        read(&self.fenced).clone()
    }

    /// [`Fence::holds`], telling a writer fenced for good
    /// ([`FenceError::Fenced`]) from one whose lease renewal is late
    /// ([`FenceError::Lapsed`], which a renewal ends).
    pub fn check(&self) -> Result<(), FenceError> {
        if let Some(why) = read(&self.fenced).clone() {
            return Err(FenceError::Fenced(why));
        }
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        let now = now_ms();
        if now >= deadline {
            return Err(FenceError::Lapsed(format!(
                "the lease in etcd was not renewed for {} ms (etcd unreachable?): not acknowledging until it is",
                now.saturating_sub(deadline) + self.ttl.as_millis() as u64 / 3 * 2
            )));
        }
        Ok(())
    }

    fn fence(&self, why: String) {
        tracing::error!(alarm = true, node = %self.node, "{why}");
        write(&self.fenced).get_or_insert(why);
    }

    /// Renews the lease every third of its TTL until `stop` fires; a lease
    /// that etcd says is gone fences this writer for good.
    pub async fn keep_alive(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let period = self.ttl / 3;
        let mut stream: Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)> =
            None;
        loop {
            if *stop.borrow() || read(&self.fenced).is_some() {
                return;
            }
            let sent = now_ms();
            let renewed = async {
                if stream.is_none() {
                    stream = Some(self.client.clone().lease_keep_alive(self.lease).await?);
                }
                let Some((keeper, answers)) = stream.as_mut() else {
                    return Ok(None);
                };
                keeper.keep_alive().await?;
                answers.message().await.map(|m| m.map(|m| m.ttl()))
            };
            match tokio::time::timeout(period.max(Duration::from_millis(300)), renewed).await {
                Ok(Ok(Some(ttl))) if ttl > 0 => self.extend(sent),
                // etcd's answer that the lease is gone: a live TTL of 0 on
                // the stream, or (opening a new stream) etcd-client's
                // error for that same answer.
                Ok(Ok(Some(_))) => {
                    self.fence(format!("the lease {:x} expired in etcd", self.lease));
                    return;
                }
                // etcd-client 0.21's text for a keep-alive answered with TTL
                // 0 (`LeaseClient::keep_alive`); the partition test fails
                // if a new version words it otherwise.
                Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m == "lease not found" => {
                    self.fence(format!("the lease {:x} expired in etcd", self.lease));
                    return;
                }
                failed => {
                    // etcd unreachable or the stream broke: a new stream
                    // next time; the deadline runs out meanwhile.
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "no answer in time".to_owned(),
                        _ => "the stream ended".to_owned(),
                    };
                    tracing::debug!(lease = self.lease, why, "lease keep-alive failed");
                    stream = None;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Advances etcd's checkpoint to (size, root), only under this writer's
    /// token and from the checkpoint it last wrote. A failure fences this
    /// writer for good (someone else holds the log, or moved it).
    pub async fn advance(&self, size: u64, root: &Hash) -> Result<(), FenceError> {
        self.check()?;
        let txn = Txn::new()
            .when([
                Compare::create_revision(self.leader_key.clone(), CompareOp::Equal, self.token),
                Compare::mod_revision(
                    self.checkpoint_key.clone(),
                    CompareOp::Equal,
                    self.checkpoint_rev.load(Ordering::Relaxed),
                ),
            ])
            .and_then([TxnOp::put(
                self.checkpoint_key.clone(),
                format!("{size} {}", hex::encode(root)),
                None,
            )]);
        let r = self.client.clone().txn(txn).await?;
        if !r.succeeded() {
            let why = format!(
                "the checkpoint in etcd could not advance to size {size} under token {}: another writer holds the log or moved its checkpoint",
                self.token
            );
            self.fence(why.clone());
            return Err(FenceError::Fenced(why));
        }
        if let Some(h) = r.header() {
            self.checkpoint_rev.store(h.revision(), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Confirms with etcd, now, that this writer still holds the lease (its
    /// token is the leader key's); fences it for good if not.
    pub async fn confirm(&self) -> Result<(), FenceError> {
        if let Some(why) = read(&self.fenced).clone() {
            return Err(FenceError::Fenced(why));
        }
        self.under_token(TxnOp::get(self.leader_key.clone(), None))
            .await
    }

    /// Records, under this writer's token, that heads objects above `from`
    /// are to be swept; returns the size the sweep starts from (lower, if a
    /// writer before this one never finished its sweep).
    pub async fn mark_unswept(&self, from: u64) -> Result<u64, FenceError> {
        let from = self.unswept_at_start.map_or(from, |w| w.min(from));
        self.under_token(TxnOp::put(self.sweep_key.clone(), from.to_string(), None))
            .await?;
        Ok(from)
    }

    /// Records, under this writer's token, that the sweep is done.
    pub async fn mark_swept(&self) -> Result<(), FenceError> {
        self.under_token(TxnOp::delete(self.sweep_key.clone(), None))
            .await
    }

    async fn under_token(&self, op: TxnOp) -> Result<(), FenceError> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.leader_key.clone(),
                CompareOp::Equal,
                self.token,
            )])
            .and_then([op]);
        if self.client.clone().txn(txn).await?.succeeded() {
            return Ok(());
        }
        let why = format!(
            "the leader key is no longer this writer's (token {})",
            self.token
        );
        self.fence(why.clone());
        Err(FenceError::Fenced(why))
    }

    /// Gives the lease back (a clean stop: a standby need not wait for it
    /// to expire).
    pub async fn release(&self) {
        let _ = self.client.clone().lease_revoke(self.lease).await;
    }
}
