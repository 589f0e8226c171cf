//! Publishing the log to object storage (the layout is in [`crate::bucket`]).
//!
//! One task follows the signed head. Each round takes the newest head `L`
//! (at most [`MAX_ROUND_ENTRIES`] past the published size `S`, so a long
//! catch-up advances the checkpoint step by step with bounded memory) and:
//!
//! 1. PUTs, concurrently and each with `If-None-Match: *`, the hash tiles and
//!    entry bundles that changed between `S` and `L` (full tiles once, the
//!    right edge as partial tiles of their width at `L`) and one object
//!    with every signed head in `(S, L]`;
//! 2. only when all of them are in the bucket, replaces `checkpoint` with
//!    the note for `L`.
//!
//! Why it is safe to crash anywhere: step 2 is the only commit point, and it
//! comes after everything it covers, so the bucket never shows a checkpoint
//! whose tiles are missing. Every object is a deterministic function of the
//! log, so a round redone after a crash writes the same bytes; an object
//! found with *other* bytes is a fork or a second writer, and publishing
//! stops with an alarm instead of overwriting it. On start the bucket's
//! checkpoint is read back: its root must be the one this log signed at
//! that size, and a bucket ahead of the local log is refused (a restored
//! backup, or another log).
//!
//! Rounds run at most once per `publish.interval_ms` (500 ms): each round
//! rewrites the right edge's partial tiles and bundles, so one per batch
//! would upload the same growing objects tens of times a second. The lag
//! from a 201 to the bucket is about that interval plus the round.
//!
//! In `local` durability publishing never holds up registration: a 201
//! means fsync'd and signed here, and the bucket trails by the lag the
//! metrics show (`vcon_scitt_publish_lag_seconds`). In `replicated`
//! durability a 201 waits for the checkpoint that covers the entry
//! ([`crate::bucket::PublishStatus::covered`]), and rounds run back to back.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::bucket::{self, Bucket, BucketError, PublishStatus};
use crate::head_document::HeadBatch;
use crate::log::SignedTreeHead;
use crate::merkle::bundle;
use crate::merkle::tile::{self, TileId};
use crate::reads::{BundleKind, TileRead};
use crate::service::Service;
use crate::statement::LeafRule;

/// At most this many entries per round (64 bundles of each kind): a round
/// holds its objects in memory, the statements included (≈ 6 MB of them at
/// a typical 400 bytes each, 1 GiB at the 64 KiB cap).
pub const MAX_ROUND_ENTRIES: u64 = 16_384;
/// PUTs in flight at once (real object stores scale with it).
const CONCURRENT_PUTS: usize = 16;
const OCTETS: &str = "application/octet-stream";

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// Publishing must stop: going on would show readers a forked log.
    #[error("{0}")]
    Alarm(String),
    #[error("{0}")]
    Local(String),
}

/// A writer fenced for good must stop publishing (its status says why, and
/// its service answers 503); one whose lease renewal is late retries.
impl From<crate::fence::FenceError> for PublishError {
    fn from(e: crate::fence::FenceError) -> Self {
        match e {
            crate::fence::FenceError::Fenced(why) => PublishError::Alarm(why),
            other => PublishError::Local(other.to_string()),
        }
    }
}

/// Starts publishing `svc`'s log to `bucket`. The task ends when `stop`
/// fires, after one last round (so a clean shutdown leaves the bucket at the
/// final head), or at an integrity alarm.
pub fn start(
    svc: Arc<Service>,
    bucket: Bucket,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Arc<PublishStatus>, tokio::task::JoinHandle<()>) {
    let status = Arc::new(PublishStatus::new(&bucket));
    // In `replicated` durability every 201 waits for the checkpoint: a
    // round starts as soon as the last one ended and a new head exists, so
    // each round is a group commit to the bucket covering every batch
    // signed while the previous one ran.
    let interval = match svc.config.registration.durability {
        crate::config::Durability::Replicated => Duration::from_millis(1),
        crate::config::Durability::Local => {
            Duration::from_millis(svc.config.publish.interval_ms.max(1))
        }
    };
    let st = status.clone();
    let task = tokio::spawn(async move {
        run(svc.clone(), bucket, st, stop, interval).await;
        // After the last round: a standby need not wait for the lease to
        // expire.
        if let Some(fence) = svc.fence.get() {
            fence.release().await;
        }
    });
    (status, task)
}

async fn run(
    svc: Arc<Service>,
    bucket: Bucket,
    status: Arc<PublishStatus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
) {
    let mut backoff = Duration::from_millis(100);
    let mut published: Option<u64> = None;
    let mut sweep: Option<LateHeads> = None;
    loop {
        let stopping = *stop.borrow();
        let round = match published {
            None => resume(&svc, &bucket).await.map(|(s, sweep_from)| {
                published = Some(s);
                status.set_published(s);
                status.resumed.store(true, Ordering::Relaxed);
                sweep = sweep_from.zip(svc.fence.get()).and_then(|(from, f)| {
                    let after = std::time::Instant::now()
                        .checked_add(bucket.longest_request().saturating_add(f.ttl()));
                    if after.is_none() {
                        tracing::warn!("publish.request_timeout_ms is too large to wait out: the late heads sweep is left to the next writer");
                    }
                    Some(LateHeads {
                        after: after?,
                        from,
                        ours: std::collections::HashSet::new(),
                    })
                });
                false
            }),
            Some(s) => round(&svc, &bucket, &status, s).await.map(|next| {
                let moved = next > s;
                published = Some(next);
                if let Some(w) = sweep.as_mut().filter(|_| moved) {
                    w.ours.insert(next);
                }
                moved
            }),
        };
        // Between rounds (none of this writer's heads objects lies beyond
        // its checkpoint now), once: heads objects a deposed writer's
        // requests left after this one resumed.
        if let (Some(w), Some(fence), Some(at)) = (&sweep, svc.fence.get(), published)
            && round.is_ok()
            && std::time::Instant::now() >= w.after
        {
            match sweep_late_heads(&svc, fence, &bucket, w, at).await {
                Ok(()) => sweep = None,
                Err(e) => {
                    tracing::warn!(error = %e, "sweeping late heads objects failed; retrying after the next round")
                }
            }
        }
        match round {
            Ok(moved) => {
                backoff = Duration::from_millis(100);
                if stopping && !moved {
                    return;
                }
                // Catching up (the round hit its entry cap), or the last
                // rounds before a stop: go on at once.
                if moved && (stopping || round_was_capped(&svc, published)) {
                    continue;
                }
            }
            Err(PublishError::Alarm(why)) => {
                tracing::error!(alarm = true, bucket = %bucket.url(), "publishing stopped: {why}");
                *crate::sync::write(&status.stopped) = Some(why);
                return;
            }
            Err(e) => {
                status.failed_rounds.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bucket = %bucket.url(), error = %e, retry_in_ms = backoff.as_millis() as u64, "publishing round failed");
                if stopping {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        // One round per interval: the right edge's partial tiles and
        // bundles are rewritten every round, so a round per batch (tens a
        // second) would upload the same growing objects over and over.
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// True when the log is more than a round's cap past `published`.
fn round_was_capped(svc: &Service, published: Option<u64>) -> bool {
    svc.latest_head().head.size > published.unwrap_or(0).saturating_add(MAX_ROUND_ENTRIES)
}

/// A fenced writer's one sweep for heads objects that land late: a deposed
/// writer's PUT in flight when it lost the lease can reach the store after
/// this writer deleted what lay beyond the checkpoint at resume
/// ([`drop_unpublished_heads`]). A writer starts no PUT past its lease's
/// local deadline (`round`), which is before the lease expires and so
/// before this writer won it; each request, retries included, ends within
/// [`Bucket::longest_request`] (the deposed writer's, assumed to be this
/// one's; a client's timeout cannot stop a store that received a request
/// from applying it later, which no writer can bound: SECURITY.md). Past
/// that (plus the TTL, for clock rates), every heads object above `from` that does not
/// hold exactly the log's heads is such a leftover (a signed head of a
/// round whose compare-and-swap failed) and is deleted. `from` is the size
/// this writer resumed at, or lower when a writer before it was deposed
/// before its own sweep (the range is kept in etcd, `Fence::mark_unswept`).
struct LateHeads {
    after: std::time::Instant,
    from: u64,
    /// The sizes this writer's rounds ended at since it resumed.
    ours: std::collections::HashSet<u64>,
}

async fn sweep_late_heads(
    svc: &Service,
    fence: &crate::fence::Fence,
    bucket: &Bucket,
    w: &LateHeads,
    published: u64,
) -> Result<(), PublishError> {
    let mut late = Vec::new();
    for size in bucket.heads_beyond(w.from).await? {
        if w.ours.contains(&size) {
            continue;
        }
        if size > published || !holds_the_logs_heads(svc, bucket, size).await? {
            late.push(size);
        }
    }
    if !late.is_empty() {
        fence.confirm().await?;
    }
    for size in late {
        fence.check()?;
        tracing::warn!(
            size,
            "deleting a heads object that is not the log's (a deposed writer's late request)"
        );
        bucket.delete(&bucket::head_path(size)).await?;
    }
    Ok(fence.mark_swept().await?)
}

/// True when the heads object at `size` holds only heads this log signed
/// at their sizes (a round of the log's chain, or a copy of one).
async fn holds_the_logs_heads(
    svc: &Service,
    bucket: &Bucket,
    size: u64,
) -> Result<bool, PublishError> {
    let Some(body) = bucket.get(&bucket::head_path(size)).await? else {
        return Ok(true);
    };
    let Ok(batch) = crate::head_document::HeadBatch::decode(&body) else {
        return Ok(false);
    };
    for h in &batch.heads {
        match svc.log.store().head(h.head.size) {
            Ok(Some(ours)) if ours.head.root == h.head.root => {}
            Ok(_) => return Ok(false),
            Err(e) => return Err(PublishError::Local(e.to_string())),
        }
    }
    Ok(true)
}

/// The size already in the bucket: its checkpoint, checked against this
/// log. Also (re)publishes the discovery documents a replica starts from.
/// Fenced, also the size the sweep for late heads objects starts from.
async fn resume(svc: &Service, bucket: &Bucket) -> Result<(u64, Option<u64>), PublishError> {
    let size = published_size(svc, bucket).await?;
    if let Err(e) = svc.log.store().record_published_size(size) {
        tracing::warn!(error = %e, "recording the published size failed");
    }
    let mut sweep_from = None;
    if let Some(fence) = svc.fence.get() {
        drop_unpublished_heads(fence, bucket, size).await?;
        sweep_from = Some(fence.mark_unswept(size).await?);
    }
    // Only once the bucket is known to be this log's (or empty): never
    // overwrite another log's documents.
    let configuration = svc.transparency_configuration();
    bucket
        .put_latest(
            bucket::CONFIGURATION,
            configuration.into(),
            "application/cbor",
        )
        .await?;
    let keys = svc.public_keys().to_cose_keyset();
    bucket
        .put_latest(bucket::KEYS, keys.into(), "application/cbor")
        .await?;
    Ok((size, sweep_from))
}

/// Fenced, at start: heads objects above the bucket's checkpoint were
/// written by a round that never reached its checkpoint (a writer deposed or
/// killed between its heads object and the compare-and-swap). No checkpoint
/// references them and no 201 rests on them, but they are signed heads: left
/// there, the bucket would hold a second head for a size this writer signs
/// anew. Deleted, once etcd confirms this writer holds the lease; the rounds
/// to come write the log's own.
async fn drop_unpublished_heads(
    fence: &crate::fence::Fence,
    bucket: &Bucket,
    published: u64,
) -> Result<(), PublishError> {
    let orphans = bucket.heads_beyond(published).await?;
    if orphans.is_empty() {
        return Ok(());
    }
    fence.confirm().await?;
    for size in orphans {
        // As before a PUT: no delete starts past the lease's deadline.
        fence.check()?;
        tracing::warn!(
            size,
            "deleting a heads object no checkpoint references (a round that never completed)"
        );
        bucket.delete(&bucket::head_path(size)).await?;
    }
    Ok(())
}

/// The bucket's checkpoint size (0 for an empty bucket), refused unless
/// this log signed it.
async fn published_size(svc: &Service, bucket: &Bucket) -> Result<u64, PublishError> {
    let Some(note) = bucket.get(bucket::CHECKPOINT).await? else {
        tracing::info!(bucket = %bucket.url(), "publishing to an empty bucket");
        return Ok(0);
    };
    let note = std::str::from_utf8(&note)
        .map_err(|_| PublishError::Alarm("the bucket's checkpoint is not UTF-8".into()))?;
    let (size, root) = crate::note::open_checkpoint(
        note,
        &svc.config.log_id(),
        &svc.checkpoint_public_key(),
    )
    .map_err(|e| {
        PublishError::Alarm(format!(
            "the bucket's checkpoint is not this log's ({e}); publish to an empty bucket or prefix"
        ))
    })?;
    let local = svc.latest_head().head.size;
    if size > local {
        return Err(PublishError::Alarm(format!(
            "the bucket holds a checkpoint at size {size}, beyond this log's {local}: this data dir is behind what was published (restored from an old backup?)"
        )));
    }
    match svc.log.store().head(size) {
        Ok(Some(h)) if h.head.root == root => {}
        Ok(_) => {
            return Err(PublishError::Alarm(format!(
                "the bucket's checkpoint at size {size} has a root this log never signed"
            )));
        }
        Err(e) => return Err(PublishError::Local(e.to_string())),
    }
    tracing::info!(bucket = %bucket.url(), published = size, local, "resuming publishing");
    Ok(size)
}

/// One round from `published`; returns the new published size.
async fn round(
    svc: &Arc<Service>,
    bucket: &Bucket,
    status: &PublishStatus,
    published: u64,
) -> Result<u64, PublishError> {
    let latest = svc.latest_head();
    if latest.head.size <= published {
        return Ok(published);
    }
    let s = svc.clone();
    let plan = tokio::task::spawn_blocking(move || plan(&s, published))
        .await
        .map_err(|e| PublishError::Local(e.to_string()))??;
    let Some(plan) = plan else {
        return Ok(published);
    };
    let count = plan.objects.len() as u64;
    let mut set = JoinSet::new();
    let mut objects = plan.objects.into_iter();
    let fence = svc.fence.get().cloned();
    loop {
        while set.len() < CONCURRENT_PUTS {
            let Some((name, body)) = objects.next() else {
                break;
            };
            // Fenced: no request starts past the lease's local deadline, so
            // none starts after a successor could hold the lease (its sweep
            // counts on that).
            if let Some(f) = &fence {
                f.check()?;
            }
            let (b, fence) = (bucket.clone(), fence.clone());
            set.spawn(async move {
                let conflict = |name: &str| {
                    PublishError::Alarm(format!(
                        "{name} in the bucket holds bytes this log did not write"
                    ))
                };
                match b.put_immutable(&name, body.clone(), OCTETS).await {
                    // Every object of a round lies beyond the bucket's
                    // checkpoint. Fenced, other bytes there are what a
                    // deposed writer left mid-round: replaced once etcd
                    // confirms this writer holds the log (a failed confirm
                    // is retried; a lost lease stops publishing), and only
                    // within the lease's deadline, like every request.
                    Err(BucketError::Conflict(_)) => {
                        let Some(f) = &fence else {
                            return Err(conflict(&name));
                        };
                        f.confirm().await?;
                        f.check()?;
                        tracing::warn!(object = %name, "replacing an object a deposed writer left beyond the checkpoint");
                        match b.replace_orphan(&name, body, OCTETS).await {
                            Ok(()) => Ok(()),
                            Err(BucketError::Conflict(_)) => Err(conflict(&name)),
                            Err(e) => Err(e.into()),
                        }
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            });
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        done.map_err(|e| PublishError::Local(e.to_string()))??;
    }
    let head = plan.head;
    // Fenced: the checkpoint advances in etcd first, under this writer's
    // token, or not at all (crate::fence).
    if let Some(fence) = svc.fence.get() {
        fence.advance(head.head.size, &head.head.root).await?;
    }
    let note = svc
        .checkpoint_note_for(&head.head)
        .map_err(|e| PublishError::Local(e.to_string()))?;
    bucket
        .put_latest(
            bucket::CHECKPOINT,
            Bytes::from(note.as_bytes().to_vec()),
            "text/plain; charset=utf-8",
        )
        .await?;
    status.objects.fetch_add(count + 1, Ordering::Relaxed);
    status.set_published(head.head.size);
    // Heads above it are this writer's alone (crate::rewind).
    if let Err(e) = svc.log.store().record_published_size(head.head.size) {
        tracing::warn!(error = %e, "recording the published size failed");
    }
    // One observation per batch: from its 201s to the checkpoint that
    // makes it visible in the bucket.
    let now = crate::time::now_ms();
    for signed in plan.signed_ms {
        status
            .lag
            .observe(now.saturating_sub(signed) as f64 / 1000.0);
    }
    Ok(head.head.size)
}

/// A round's objects, and the head its checkpoint will show.
struct Plan {
    head: SignedTreeHead,
    /// When each head of the round was signed: its batch's 201s went out
    /// then.
    signed_ms: Vec<u64>,
    objects: Vec<(String, Bytes)>,
}

/// Reads what a round publishes: the heads in `(published, L]` (one object)
/// and the tiles
/// and bundles that changed, where `L` is the last head within
/// [`MAX_ROUND_ENTRIES`] of `published` (or the first beyond it).
fn plan(svc: &Service, published: u64) -> Result<Option<Plan>, PublishError> {
    let local = |e: &dyn std::fmt::Display| PublishError::Local(e.to_string());
    let newest = svc.latest_head().head.size;
    let store = svc.log.store();
    let mut heads = Vec::new();
    for h in store.heads_after(published).map_err(|e| local(&e))? {
        let h = h.map_err(|e| local(&e))?;
        if h.head.size > newest {
            break;
        }
        let size = h.head.size;
        heads.push(h);
        if size - published >= MAX_ROUND_ENTRIES {
            break;
        }
    }
    let Some(head) = heads.last().cloned() else {
        return Ok(None);
    };
    let signed_ms = heads.iter().map(|h| h.head.timestamp_ms).collect();
    let batch = HeadBatch {
        previous_size: published,
        heads,
    };
    let mut objects = vec![(
        bucket::head_path(head.head.size),
        Bytes::from(batch.encode()),
    )];
    let to = head.head.size;
    let rule = store.leaf_rule();
    for level in 0..tile::MAX_LEVELS {
        let shift = tile::HEIGHT * level as u32;
        let (old, new) = (
            published.checked_shr(shift).unwrap_or(0),
            to.checked_shr(shift).unwrap_or(0),
        );
        if new == 0 {
            break;
        }
        let first = old / tile::WIDTH as u64;
        let last = (new - 1) / tile::WIDTH as u64;
        for index in first..=last {
            let id = TileId {
                level: level as u8,
                index,
            };
            let width = tile::width_at(id, to);
            if width == 0 || width == tile::width_at(id, published) {
                continue;
            }
            let want = (width < tile::WIDTH).then_some(width);
            let body = |r: TileRead| match r {
                TileRead::Body(b) => Ok(Bytes::from(b)),
                TileRead::Unsigned { .. } => Err(PublishError::Local(format!(
                    "{id} is not covered by the head at {to}"
                ))),
            };
            let read = crate::reads::tile(store, to, id, want).map_err(|e| local(&e))?;
            objects.push((tile::c2sp_path(id, width), body(read)?));
            if level == 0 {
                let read = crate::reads::bundle(store, to, index, want, BundleKind::Statements)
                    .map_err(|e| local(&e))?;
                let statements = body(read)?;
                // Under the `entry` rule the leaf inputs are the statements.
                let leaves = if rule == LeafRule::Entry {
                    statements.clone()
                } else {
                    let entries = bundle::parse(&statements, width).map_err(|e| local(&e))?;
                    let inputs: Vec<_> = entries.iter().map(|e| rule.leaf_input(e)).collect();
                    bundle::encode(inputs.iter().map(|c| c.as_ref()))
                        .map(Bytes::from)
                        .map_err(|e| local(&e))?
                };
                if rule != LeafRule::Entry {
                    objects.push((bundle::path("tile/statements", index, width), statements));
                }
                objects.push((bundle::path("tile/entries", index, width), leaves));
            }
        }
    }
    Ok(Some(Plan {
        head,
        signed_ms,
        objects,
    }))
}
