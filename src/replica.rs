//! A read replica: `vcon-scitt serve --replica-of s3://bucket[/prefix]`.
//!
//! It holds no signing key and takes no registrations. It follows the
//! bucket a writer publishes ([`crate::publish`]) into a local cache, a
//! store in the log's own format, and serves the reads of the log and the
//! vCon views from it through the same code as the writer
//! ([`crate::reads`]), so its receipts, statements, tiles, bundles, vCon
//! histories, consent answers and proof bundles are the writer's bytes.
//!
//! What it trusts: nothing it has not checked. Each round it reads the
//! checkpoint note and verifies it under the checkpoint key the writer
//! published (pinned in the cache on first start); walks the signed heads
//! back to its own size and checks every COSE signature against the
//! service keys; fetches the statements and rebuilds the tree from them
//! ([`crate::log::follower`]), storing nothing unless every head's root is
//! the rebuilt root at its size. The vCon index and map are derived again
//! from the entries in the same write ([`crate::vcon_follow`]), every
//! map root the writer signed checked against the map of the entries. A
//! checkpoint that goes backwards, a head chain that skips its size, a root
//! it cannot rebuild or a map root that is not the entries' map stops
//! following (an alarm, shown by `/healthz`): it keeps serving what it
//! verified.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use ciborium::value::Value;

use crate::bucket::{self, Bucket, BucketError};
use crate::head_document::HeadBatch;
use crate::keys::KeySet;
use crate::log::{LogError, SignedTreeHead, Store, TreeHead};
use crate::merkle::tile::{self, TileId};
use crate::merkle::{self, Hash, bundle};
use crate::reads::{
    self, BundleKind, LogReads, MapSnapshot, ReceiptLookup, ServiceError, TileRead, VconReads,
    internal,
};
use crate::statement::LeafRule;
use crate::sync::{read, write};
use crate::vcon_follow::VconFollower;

/// About this many entries are fetched and appended per local write (to
/// the next head): bounded memory, ≈ 1.6 MB of statements at a typical 400
/// bytes, 256 MiB at the 64 KiB cap.
const CHUNK_ENTRIES: u64 = 4_096;
const CONCURRENT_GETS: usize = 16;

/// `/.well-known/transparency-configuration`, the fields a reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransparencyConfiguration {
    pub issuer: String,
    pub leaf_rule: LeafRule,
    pub checkpoint_origin: Option<String>,
    pub checkpoint_vkey: Option<String>,
}

impl TransparencyConfiguration {
    pub fn decode(bytes: &[u8]) -> Result<TransparencyConfiguration, String> {
        let Value::Map(m) = crate::cbor::decode(bytes).map_err(|e| e.to_string())? else {
            return Err("not a CBOR map".into());
        };
        let text = |k: &str| -> Result<Option<String>, String> {
            match m.iter().find(|(key, _)| key.as_text() == Some(k)) {
                None => Ok(None),
                Some((_, v)) => v
                    .as_text()
                    .map(|t| Some(t.to_owned()))
                    .ok_or_else(|| format!("{k} is not text")),
            }
        };
        Ok(TransparencyConfiguration {
            issuer: text("issuer")?.ok_or("no issuer")?,
            // A service older than the setting publishes none: its log is `entry`.
            leaf_rule: match text("leaf_rule")? {
                None => LeafRule::Entry,
                Some(name) => name.parse().map_err(|e| format!("{e}"))?,
            },
            checkpoint_origin: text("checkpoint_origin")?,
            checkpoint_vkey: text("checkpoint_vkey")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error(transparent)]
    Local(#[from] LogError),
    /// The bucket contradicts what was verified: following stops.
    #[error("{0}")]
    Alarm(String),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Read(#[from] ServiceError),
}

/// Replica settings.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub bucket: String,
    /// The local cache (a store in the log's format).
    pub cache_dir: PathBuf,
    pub poll: Duration,
    pub request_timeout: Duration,
}

pub struct Replica {
    bucket: Bucket,
    store: Arc<Store>,
    /// The vCon index and map derived from the followed entries; locked
    /// for the length of one append (a proof read waits it out).
    vcon: Arc<Mutex<VconFollower>>,
    configuration: Bytes,
    keys: KeySet,
    origin: String,
    checkpoint_key: Vec<u8>,
    writer: String,
    latest: RwLock<Arc<SignedTreeHead>>,
    note: RwLock<Option<Arc<str>>>,
    /// Why following stopped, if it did.
    alarm: RwLock<Option<String>>,
    /// The last round's error, cleared by a good round.
    last_error: RwLock<Option<String>>,
    pub rounds: AtomicU64,
    poll: Duration,
    /// Dropped after `store`: no rewind while the cache is open.
    _hold: crate::rewind::StoreHold,
}

impl Replica {
    /// Reads the writer's discovery documents from the bucket and opens
    /// (or creates) the cache. The checkpoint key is pinned in the cache
    /// on first start: a bucket that later names another key is refused.
    pub async fn open(c: &ReplicaConfig) -> Result<Arc<Replica>, ReplicaError> {
        let bucket = Bucket::open(&c.bucket, c.request_timeout)?;
        let configuration = bucket.get(bucket::CONFIGURATION).await?.ok_or_else(|| {
            ReplicaError::Setup(format!(
                "{} holds no {}: no writer has published to it yet",
                c.bucket,
                bucket::CONFIGURATION
            ))
        })?;
        let tc = TransparencyConfiguration::decode(&configuration)
            .map_err(|e| ReplicaError::Setup(format!("{}: {e}", bucket::CONFIGURATION)))?;
        let vkey = tc
            .checkpoint_vkey
            .clone()
            .ok_or_else(|| ReplicaError::Setup("the writer publishes no checkpoint_vkey".into()))?;
        let (origin, checkpoint_key) = crate::note::parse_vkey(&vkey)
            .ok_or_else(|| ReplicaError::Setup(format!("{vkey:?} is not a checkpoint vkey")))?;
        let keys = bucket.require(bucket::KEYS).await?;
        let keys = KeySet::parse_any(&keys)
            .map_err(|e| ReplicaError::Setup(format!("{}: {e}", bucket::KEYS)))?;
        crate::durable::create_private_dir_all(&c.cache_dir)
            .map_err(|e| ReplicaError::Setup(e.to_string()))?;
        let pin = crate::config::Config::checkpoint_pin_file_in(&c.cache_dir);
        match std::fs::read_to_string(&pin) {
            Ok(pinned) if pinned.trim() == vkey => {}
            Ok(pinned) => {
                return Err(ReplicaError::Alarm(format!(
                    "the bucket's checkpoint key is {vkey}, but this cache follows {}: another log, or a replaced key. Use a new cache dir to follow another log",
                    pinned.trim()
                )));
            }
            Err(_) => crate::durable::write_atomically(&pin, vkey.as_bytes())
                .map_err(|e| ReplicaError::Setup(e.to_string()))?,
        }
        let (cache, hold) = crate::rewind::store_dir(&c.cache_dir)
            .map_err(|e| ReplicaError::Setup(e.to_string()))?;
        let rule = tc.leaf_rule;
        let store = tokio::task::spawn_blocking(move || Store::open_log(&cache, rule))
            .await
            .map_err(|e| ReplicaError::Setup(e.to_string()))??;
        if store.leaf_rule() != rule {
            return Err(ReplicaError::Alarm(format!(
                "the bucket's log uses leaf rule {rule}, the cache {}",
                store.leaf_rule()
            )));
        }
        let vcon = {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::task::spawn_blocking(move || VconFollower::open(&store, keys))
                .await
                .map_err(|e| ReplicaError::Setup(e.to_string()))?
                .map_err(|e| match e {
                    LogError::Corrupt(why) => ReplicaError::Alarm(why),
                    other => ReplicaError::Local(other),
                })?
        };
        let latest = store.latest_head()?.unwrap_or(SignedTreeHead {
            head: TreeHead {
                size: 0,
                root: merkle::EMPTY_ROOT,
                timestamp_ms: 0,
            },
            signature: Vec::new(),
        });
        Ok(Arc::new(Replica {
            bucket,
            store,
            vcon: Arc::new(Mutex::new(vcon)),
            configuration,
            keys,
            origin,
            checkpoint_key,
            writer: tc.issuer,
            latest: RwLock::new(Arc::new(latest)),
            note: RwLock::new(None),
            alarm: RwLock::new(None),
            last_error: RwLock::new(None),
            rounds: AtomicU64::new(0),
            poll: c.poll,
            _hold: hold,
        }))
    }

    pub fn bucket_url(&self) -> &str {
        self.bucket.url()
    }

    /// The writer's public URL (where registrations go).
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// Why following stopped, or the last round's error; `None` when healthy.
    pub fn trouble(&self) -> Option<String> {
        read(&self.alarm)
            .clone()
            .map(|a| format!("following stopped: {a}"))
            .or_else(|| read(&self.last_error).clone())
    }

    /// Follows the bucket until `stop` fires or an alarm stops it.
    pub async fn follow(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.round().await {
                Ok(()) => *write(&self.last_error) = None,
                Err(ReplicaError::Alarm(why)) => {
                    tracing::error!(alarm = true, bucket = %self.bucket.url(), "replica stopped following: {why}");
                    *write(&self.alarm) = Some(why);
                    return;
                }
                Err(e) => {
                    tracing::warn!(bucket = %self.bucket.url(), error = %e, "replica round failed");
                    *write(&self.last_error) = Some(e.to_string());
                }
            }
            self.rounds.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One round: the checkpoint, the heads since the local size, the
    /// entries in chunks, each chunk verified and stored.
    pub async fn round(&self) -> Result<(), ReplicaError> {
        self.round_to(None).await
    }

    /// A round to the bucket's checkpoint, or to `target` (size, root) when
    /// it is further: a checkpoint the writer's lease recorded in etcd
    /// (`crate::fence`) after the round's objects were in the bucket and
    /// before its checkpoint note was (a writer that died in between).
    /// Either way every head is checked against its signature, and the
    /// target's root must be the signed head's at that size.
    async fn round_to(&self, target: Option<(u64, Hash)>) -> Result<(), ReplicaError> {
        let Some(note) = self.bucket.get(bucket::CHECKPOINT).await? else {
            return Ok(());
        };
        let note = String::from_utf8(note.to_vec())
            .map_err(|_| ReplicaError::Alarm("the checkpoint is not UTF-8".into()))?;
        let (mut size, mut root) =
            crate::note::open_checkpoint(&note, &self.origin, &self.checkpoint_key)
                .map_err(|e| ReplicaError::Alarm(format!("the bucket's checkpoint: {e}")))?;
        let beyond_note = matches!(target, Some((s, _)) if s > size);
        if let Some((s, r)) = target.filter(|_| beyond_note) {
            (size, root) = (s, r);
        }
        let local = self.latest_head();
        if size < local.head.size {
            return Err(ReplicaError::Alarm(format!(
                "the bucket's checkpoint went back from size {} to {size}",
                local.head.size
            )));
        }
        if size == local.head.size {
            if root != local.head.root {
                return Err(ReplicaError::Alarm(format!(
                    "the bucket's checkpoint at size {size} has another root than the head verified at that size: a forked log"
                )));
            }
            if !beyond_note {
                *write(&self.note) = Some(note.into());
            }
            return Ok(());
        }
        let heads = self.heads_between(local.head.size, size, &root).await?;
        let mut from = local.head.size;
        let mut chunk: Vec<SignedTreeHead> = Vec::new();
        for h in heads {
            let to = h.head.size;
            chunk.push(h);
            if to - from >= CHUNK_ENTRIES || to == size {
                self.ingest(from, to, size, std::mem::take(&mut chunk))
                    .await?;
                from = to;
            }
        }
        if !beyond_note {
            *write(&self.note) = Some(note.into());
        }
        Ok(())
    }

    /// The signed heads in `(local, size]`, oldest first, each signature
    /// checked: the rounds' head objects, walked back through
    /// `previous_size` from the checkpoint's size.
    async fn heads_between(
        &self,
        local: u64,
        size: u64,
        root: &Hash,
    ) -> Result<Vec<SignedTreeHead>, ReplicaError> {
        let mut rounds = Vec::new();
        let mut at = size;
        while at > local {
            let name = bucket::head_path(at);
            let batch = HeadBatch::decode(&self.bucket.require(&name).await?)
                .map_err(|e| ReplicaError::Alarm(format!("{name}: {e}")))?;
            let last = batch.heads.last().map(|h| h.head.size);
            if last != Some(at) {
                return Err(ReplicaError::Alarm(format!(
                    "{name} ends at size {last:?}, not {at}"
                )));
            }
            if at == size && batch.heads.last().map(|h| h.head.root) != Some(*root) {
                return Err(ReplicaError::Alarm(format!(
                    "the checkpoint and the signed head at size {size} state different roots"
                )));
            }
            for h in &batch.heads {
                crate::receipt::verify_tree_head(&h.signature, &h.head, &self.keys).map_err(
                    |e| {
                        ReplicaError::Alarm(format!(
                            "{name}: the head at size {} does not verify ({e})",
                            h.head.size
                        ))
                    },
                )?;
            }
            let mut heads = batch.heads;
            if batch.previous_size < local {
                // The store stopped inside this round (an append is cut in
                // chunks, a rewind ends at any published head): the round
                // must hold the head verified there, and only the heads
                // after it are new.
                let ours = self.store.head(local)?.map(|h| h.head.root);
                let theirs = heads
                    .iter()
                    .find(|h| h.head.size == local)
                    .map(|h| h.head.root);
                if ours.is_none() || ours != theirs {
                    return Err(ReplicaError::Alarm(format!(
                        "{name} says the round before it ended at size {}, and holds no head at {local} with the root verified there: the chain skips it, or forks",
                        batch.previous_size
                    )));
                }
                heads.retain(|h| h.head.size > local);
            }
            at = batch.previous_size;
            rounds.push(heads);
        }
        let heads: Vec<SignedTreeHead> = rounds.into_iter().rev().flatten().collect();
        Ok(heads)
    }

    /// Fetches entries `[from, to)` from the statement bundles as published
    /// at `published` (the checkpoint's size: its partial bundles exist)
    /// and appends them with `heads` once the rebuilt tree matches.
    async fn ingest(
        &self,
        from: u64,
        to: u64,
        published: u64,
        heads: Vec<SignedTreeHead>,
    ) -> Result<(), ReplicaError> {
        let prefix = if self.store.leaf_rule() == LeafRule::Entry {
            "tile/entries"
        } else {
            "tile/statements"
        };
        let w = tile::WIDTH as u64;
        let mut set = tokio::task::JoinSet::new();
        let mut bundles: Vec<(u64, Bytes)> = Vec::new();
        let mut indices = (from / w)..=((to - 1) / w);
        loop {
            while set.len() < CONCURRENT_GETS {
                let Some(index) = indices.next() else { break };
                let width = tile::width_at(TileId { level: 0, index }, published);
                let name = bundle::path(prefix, index, width);
                let b = self.bucket.clone();
                set.spawn(async move { (index, b.require(&name).await) });
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            let (index, body) = done.map_err(|e| ReplicaError::Setup(e.to_string()))?;
            bundles.push((index, body?));
        }
        bundles.sort_by_key(|(i, _)| *i);
        let mut entries = Vec::with_capacity((to - from) as usize);
        for (index, body) in &bundles {
            let width = tile::width_at(
                TileId {
                    level: 0,
                    index: *index,
                },
                published,
            );
            let parsed = bundle::parse(body, width)
                .map_err(|e| ReplicaError::Alarm(format!("{prefix} bundle {index}: {e}")))?;
            let start = index * w;
            for (k, e) in parsed.into_iter().enumerate() {
                let i = start + k as u64;
                if (from..to).contains(&i) {
                    entries.push(e.to_vec());
                }
            }
        }
        let (store, vcon, keys) = (self.store.clone(), self.vcon.clone(), self.keys.clone());
        let newest = heads.last().cloned();
        tokio::task::spawn_blocking(move || {
            let mut follower = crate::sync::lock(&vcon);
            let appended = crate::log::follower::append_verified(
                &store,
                &entries,
                &heads,
                Some(&mut *follower),
            );
            if appended.is_err() {
                // Its memory may be ahead of the store: start again from it.
                *follower = VconFollower::open(&store, keys)?;
            }
            appended
        })
        .await
        .map_err(|e| ReplicaError::Setup(e.to_string()))?
        .map_err(|e| match e {
            LogError::Corrupt(why) | LogError::InvalidRequest(why) => ReplicaError::Alarm(why),
            other => ReplicaError::Local(other),
        })?;
        if let Some(h) = newest {
            *write(&self.latest) = Arc::new(h);
        }
        Ok(())
    }

    fn published(&self) -> u64 {
        read(&self.latest).head.size
    }

    /// Flushes the cache (a clean stop).
    pub fn shutdown(&self) {
        let _ = self.store.flush();
    }
}

/// `vcon-scitt restore --from s3://…`: rebuilds a writer's data dir from
/// the bucket, with every check a replica makes (note, head signatures, the
/// tree rebuilt from the statements, every map root replayed), into
/// `data_dir/db`, the store a writer opens: entries, tiles, signed heads,
/// the vCon index and map. A data dir that already holds part of this log
/// is brought up to the bucket's checkpoint; one that holds another log,
/// or more than the bucket, is refused. Returns the restored size.
pub async fn restore(
    url: &str,
    data_dir: PathBuf,
    timeout: Duration,
    target: Option<(u64, Hash)>,
) -> Result<u64, ReplicaError> {
    // Only into an empty data dir or one an earlier restore made (it pinned
    // the bucket's checkpoint key): a writer's own data dir is never
    // touched, whatever log it holds.
    let (db, hold) =
        crate::rewind::store_dir(&data_dir).map_err(|e| ReplicaError::Setup(e.to_string()))?;
    let fresh = !db.exists();
    drop(hold);
    if !fresh && !crate::config::Config::checkpoint_pin_file_in(&data_dir).exists() {
        return Err(ReplicaError::Setup(format!(
            "{} already holds a log that was not restored from a bucket; restore into an empty data dir",
            data_dir.display()
        )));
    }
    catch_up(url, data_dir, timeout, target).await
}

/// Brings `data_dir`'s store (a writer's, or none yet) up to the bucket's
/// checkpoint, or to `target` (etcd's, when further), with every replica
/// check; the bucket's checkpoint key is pinned beside it. A fenced writer
/// taking the lease, after [`crate::rewind`] left its store at a size of
/// the published log. Returns the size reached.
pub async fn catch_up(
    url: &str,
    data_dir: PathBuf,
    timeout: Duration,
    target: Option<(u64, Hash)>,
) -> Result<u64, ReplicaError> {
    let r = Replica::open(&ReplicaConfig {
        bucket: url.to_owned(),
        cache_dir: data_dir,
        poll: Duration::from_millis(200),
        request_timeout: timeout,
    })
    .await?;
    r.round_to(target).await?;
    r.shutdown();
    Ok(r.published())
}

/// What `fsck --bucket` checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketReport {
    pub tree_size: u64,
    pub heads: u64,
    pub tiles: u64,
    pub bundles: u64,
}

/// `vcon-scitt fsck --bucket`: follows the bucket into a fresh cache in
/// `cache_dir` (every check a replica makes: the note, every head
/// signature, the tree rebuilt from the statements), then compares every
/// hash tile and entry bundle the bucket holds at its checkpoint with the
/// rebuilt ones. The first difference is the error.
pub async fn check_bucket(
    url: &str,
    cache_dir: PathBuf,
    timeout: Duration,
) -> Result<BucketReport, ReplicaError> {
    let r = Replica::open(&ReplicaConfig {
        bucket: url.to_owned(),
        cache_dir,
        poll: Duration::from_millis(200),
        request_timeout: timeout,
    })
    .await?;
    r.round().await?;
    let size = r.published();
    let mut report = BucketReport {
        tree_size: size,
        heads: r.store.heads()?.count() as u64,
        tiles: 0,
        bundles: 0,
    };
    let body = |read: TileRead, what: &str| match read {
        TileRead::Body(b) => Ok(b),
        TileRead::Unsigned { .. } => Err(ReplicaError::Setup(format!("{what} is not covered"))),
    };
    for level in 0..tile::MAX_LEVELS {
        let nodes = size.checked_shr(tile::HEIGHT * level as u32).unwrap_or(0);
        if nodes == 0 {
            break;
        }
        for index in 0..nodes.div_ceil(tile::WIDTH as u64) {
            let id = TileId {
                level: level as u8,
                index,
            };
            let width = tile::width_at(id, size);
            let want = (width < tile::WIDTH).then_some(width);
            let name = tile::c2sp_path(id, width);
            let ours = body(reads::tile(&r.store, size, id, want)?, &name)?;
            if r.bucket.require(&name).await?.as_ref() != ours.as_slice() {
                return Err(ReplicaError::Alarm(format!(
                    "{name} in the bucket is not the tile of the verified tree"
                )));
            }
            report.tiles += 1;
            if level == 0 {
                let name = bundle::path("tile/entries", index, width);
                let ours = body(
                    reads::bundle(&r.store, size, index, want, BundleKind::Leaves)?,
                    &name,
                )?;
                if r.bucket.require(&name).await?.as_ref() != ours.as_slice() {
                    return Err(ReplicaError::Alarm(format!(
                        "{name} in the bucket does not hold the leaf inputs of the verified entries"
                    )));
                }
                report.bundles += 1;
            }
        }
    }
    Ok(report)
}

fn unverified_note() -> ServiceError {
    ServiceError::Unavailable("no checkpoint verified from the bucket yet".into())
}

impl LogReads for Replica {
    fn lookup_receipt(&self, leaf: &Hash, fresh: bool) -> Result<ReceiptLookup, ServiceError> {
        Ok(
            reads::stored_receipt(&self.store, leaf, fresh, &self.latest_head())?
                .unwrap_or(ReceiptLookup::Unknown),
        )
    }
    fn signed_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError> {
        reads::signed_statement(&self.store, leaf, self.published())
    }
    fn transparent_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError> {
        reads::transparent_statement(&self.store, leaf, self.published())
    }
    fn consistency_receipt(
        &self,
        size1: u64,
        size2: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        reads::consistency_receipt(&self.store, &self.latest_head(), size1, size2)
    }
    fn tile(&self, id: TileId, want: Option<usize>) -> Result<TileRead, ServiceError> {
        reads::tile(&self.store, self.published(), id, want)
    }
    fn bundle(
        &self,
        index: u64,
        want: Option<usize>,
        kind: BundleKind,
    ) -> Result<TileRead, ServiceError> {
        reads::bundle(&self.store, self.published(), index, want, kind)
    }
    fn latest_head(&self) -> Arc<SignedTreeHead> {
        read(&self.latest).clone()
    }
    fn checkpoint_note(&self) -> Result<Arc<str>, ServiceError> {
        read(&self.note).clone().ok_or_else(unverified_note)
    }
    fn public_keys(&self) -> &KeySet {
        &self.keys
    }
    fn transparency_configuration(&self) -> Vec<u8> {
        self.configuration.to_vec()
    }
    fn retry_after_secs(&self) -> u64 {
        1
    }
}

impl VconReads for Replica {
    fn vcon_store(&self) -> &Store {
        &self.store
    }
    fn delegates(&self) -> crate::vcon::consent::Delegates {
        crate::sync::lock(&self.vcon).delegates().clone()
    }
    fn map_snapshot(&self, key: &crate::map::Key) -> Result<Option<MapSnapshot>, ServiceError> {
        // Busy while an append runs: the caller retries, bounded.
        let f = match self.vcon.try_lock() {
            Ok(f) => f,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        let state = crate::vcon_map::VconMap::state_row(&self.store, key).map_err(internal)?;
        Ok(Some(MapSnapshot {
            last: f.last(),
            proof: f.tree().prove(key).bytes,
            state,
        }))
    }
    /// The policy entry in force, as the writer registered it (its payload
    /// is the document the writer's `/policy` shows).
    fn policy(&self) -> Result<serde_json::Value, ServiceError> {
        let id = crate::sync::lock(&self.vcon)
            .policy_entry()
            .map(str::to_owned)
            .ok_or_else(|| {
                ServiceError::Unavailable("no registration policy followed yet".into())
            })?;
        let leaf = merkle::from_hex(&id).ok_or_else(|| internal(format!("policy entry {id}")))?;
        let entry =
            reads::signed_statement(&self.store, &leaf, self.published())?.ok_or_else(|| {
                ServiceError::Unavailable("the policy entry is not published yet".into())
            })?;
        let st = crate::statement::SignedStatement::parse_with(
            &entry,
            usize::MAX,
            crate::statement::IdentityRule::Optional,
        )
        .map_err(internal)?;
        let doc: serde_json::Value = serde_json::from_slice(st.payload()).map_err(internal)?;
        Ok(serde_json::json!({"entry_id": id, "policy": doc}))
    }
}
