//! The log's public copy in S3-compatible object storage (S3, R2, GCS's S3
//! API, MinIO; moto in tests), through the `object_store` crate.
//!
//! Layout under `s3://<bucket>[/<prefix>]` (spec-notes/object-storage.md):
//!
//! | object | what | cache |
//! |---|---|---|
//! | `checkpoint` | C2SP checkpoint note of the newest published head; written **last** | `no-cache` |
//! | `tile/<L>/<N>[.p/<W>]` | C2SP hash tiles | immutable |
//! | `tile/entries/<N>[.p/<W>]` | C2SP entry bundles (leaf inputs) | immutable |
//! | `tile/statements/<N>[.p/<W>]` | the statements, same framing (only when the leaf input is not the statement) | immutable |
//! | `vcon-scitt/heads/<size>` | the signed heads of the round that ended at `<size>` ([`crate::head_document::HeadBatch`]), chained by `previous_size` | immutable |
//! | `vcon-scitt/scitt-keys`, `vcon-scitt/transparency-configuration` | the writer's discovery documents | `no-cache` |
//!
//! With these static files anyone can rebuild every receipt the writer
//! hands out: a receipt is a signed head plus an inclusion path, and the
//! tiles hold every path.
//!
//! Object storage gives two guarantees this relies on: a PUT is atomic (an
//! object is all there or absent), and `If-None-Match: *` makes a create
//! conditional. A PUT that failed or timed out may still land later, so an
//! object above the published checkpoint means nothing; the checkpoint,
//! written after everything it covers, is the only commit point.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::AtomicU64;

use crate::log::metrics::Histogram;
use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};

/// Objects that never change once written.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Objects a reader must revalidate: the checkpoint, the discovery documents.
pub const NO_CACHE: &str = "no-cache";

pub const CHECKPOINT: &str = "checkpoint";
pub const KEYS: &str = "vcon-scitt/scitt-keys";
pub const CONFIGURATION: &str = "vcon-scitt/transparency-configuration";

/// Where the heads of the round that ended at `size` live.
pub fn head_path(size: u64) -> String {
    format!("vcon-scitt/heads/{size}")
}

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("{0}")]
    Config(String),
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    /// An immutable object already holds other bytes: a second writer, or a
    /// fork. Never overwritten.
    #[error("{0} already holds different bytes (another writer, or a forked log)")]
    Conflict(String),
    #[error("{path}: {why}")]
    Malformed { path: String, why: String },
}

/// An S3-compatible bucket (and key prefix) holding one log.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// Whether the store keeps Content-Type and Cache-Control (S3 does; a
    /// local directory does not).
    attributes: bool,
    /// How long one request may run, retries included.
    longest_request: Duration,
}

/// What an immutable PUT found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    /// The same bytes were already there (a resumed publish).
    AlreadyThere,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket({})", self.url)
    }
}

impl Bucket {
    /// Opens `s3://<bucket>[/<prefix>]` (or a local directory,
    /// `file:///dir`). Credentials, region and endpoint
    /// come from the usual `AWS_*` variables (`AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP store such as moto or a local
    /// MinIO, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`).
    /// Every request is bounded by `timeout` and retried at most twice, so
    /// a hung store delays publishing by seconds, not object_store's
    /// default three minutes.
    pub fn open(url: &str, timeout: Duration) -> Result<Bucket, BucketError> {
        if let Some(dir) = url.strip_prefix("file://") {
            return Self::open_dir(url, dir, timeout);
        }
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BucketError::Config(format!("{url:?} is not an s3://bucket[/prefix] URL"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BucketError::Config(format!("{url:?} names no bucket")));
        }
        let secs = format!("{}ms", timeout.as_millis().max(1));
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                secs.clone(),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                secs,
            )
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: timeout.saturating_mul(3),
                ..RetryConfig::default()
            })
            .build()?;
        Ok(Bucket {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
            url: url.to_owned(),
            attributes: true,
            // No retry starts after `retry_timeout`; the last one runs for
            // at most `timeout` more.
            longest_request: timeout.saturating_mul(4),
        })
    }

    /// `file:///absolute/dir`: the same layout in a local directory (for a
    /// web server or a sync job to serve), every file and its directory
    /// fsync'd before the next step, so the checkpoint still comes after
    /// what it covers. No object attributes: the web server sets the cache
    /// headers (immutable for `tile/` and `vcon-scitt/heads/`).
    fn open_dir(url: &str, dir: &str, timeout: Duration) -> Result<Bucket, BucketError> {
        if !dir.starts_with('/') {
            return Err(BucketError::Config(format!(
                "{url:?}: a file:// URL needs an absolute path (file:///srv/log)"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| BucketError::Config(format!("{url}: {e}")))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(Bucket {
            store: Arc::new(store),
            prefix: String::new(),
            url: url.to_owned(),
            attributes: false,
            longest_request: timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// How long after it starts a request (retries included) can still be
    /// in flight from this client.
    pub fn longest_request(&self) -> Duration {
        self.longest_request
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn options(&self, mode: PutMode, content_type: &str, cache: &str) -> PutOptions {
        if !self.attributes {
            return PutOptions {
                mode,
                ..PutOptions::default()
            };
        }
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::ContentType,
            AttributeValue::from(content_type.to_owned()),
        );
        attributes.insert(
            Attribute::CacheControl,
            AttributeValue::from(cache.to_owned()),
        );
        PutOptions {
            mode,
            attributes,
            ..PutOptions::default()
        }
    }

    /// Writes an object that must never change (`If-None-Match: *`). If it
    /// exists with the same bytes (a publish resumed after a crash) that is
    /// success; with other bytes it is a [`BucketError::Conflict`], and
    /// nothing is overwritten.
    pub async fn put_immutable(
        &self,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<Put, BucketError> {
        let path = self.path(name);
        let opts = self.options(PutMode::Create, content_type, IMMUTABLE);
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(bytes.clone()), opts)
            .await
        {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => match self.get(name).await? {
                Some(b) if b == bytes => Ok(Put::AlreadyThere),
                _ => Err(BucketError::Conflict(name.to_owned())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an object no checkpoint covers, left with other bytes by a
    /// writer deposed mid-round (`crate::fence`): only the version read
    /// here is replaced (`If-Match` on its ETag), so an object someone wrote
    /// since is a [`BucketError::Conflict`] again, never overwritten. A
    /// store without conditional updates (a local directory) overwrites.
    pub async fn replace_orphan(
        &self,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), BucketError> {
        let path = self.path(name);
        let seen = match self.store.head(&path).await {
            Ok(meta) => Some(object_store::UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mode = match seen {
            Some(v) if v.e_tag.is_some() => PutMode::Update(v),
            _ => PutMode::Overwrite,
        };
        let payload = PutPayload::from_bytes(bytes);
        match self
            .store
            .put_opts(
                &path,
                payload.clone(),
                self.options(mode, content_type, IMMUTABLE),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::NotImplemented { .. }) => {
                let opts = self.options(PutMode::Overwrite, content_type, IMMUTABLE);
                self.store.put_opts(&path, payload, opts).await?;
                Ok(())
            }
            Err(object_store::Error::Precondition { .. }) => {
                Err(BucketError::Conflict(name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The sizes of the heads objects (`vcon-scitt/heads/<size>`) above
    /// `size`: what no checkpoint of the bucket references (yet).
    pub async fn heads_beyond(&self, size: u64) -> Result<Vec<u64>, BucketError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&self.path("vcon-scitt/heads")))
            .await?;
        let mut sizes: Vec<u64> = listed
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.parse().ok())
            .filter(|&s| s > size)
            .collect();
        sizes.sort_unstable();
        Ok(sizes)
    }

    /// Deletes an object (absent is fine).
    pub async fn delete(&self, name: &str) -> Result<(), BucketError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes (or replaces) an object readers revalidate: the checkpoint and
    /// the discovery documents.
    pub async fn put_latest(
        &self,
        name: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), BucketError> {
        let opts = self.options(PutMode::Overwrite, content_type, NO_CACHE);
        self.store
            .put_opts(&self.path(name), PutPayload::from_bytes(bytes), opts)
            .await?;
        Ok(())
    }

    /// An object's bytes, or `None` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, BucketError> {
        match self.store.get(&self.path(name)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// An object that must exist (the checkpoint says so).
    pub async fn require(&self, name: &str) -> Result<Bytes, BucketError> {
        self.get(name).await?.ok_or_else(|| BucketError::Malformed {
            path: name.to_owned(),
            why: "missing, though the published checkpoint covers it".into(),
        })
    }
}

/// What `/metrics` shows about publishing (`crate::publish`).
pub struct PublishStatus {
    pub bucket: String,
    /// Size of the checkpoint in the bucket.
    pub published: AtomicU64,
    pub objects: AtomicU64,
    pub failed_rounds: AtomicU64,
    /// Seconds from each batch's head signature (its 201s) to the
    /// checkpoint in the bucket that covers it.
    pub lag: Histogram,
    /// Set when publishing stopped for good (an integrity alarm).
    pub stopped: std::sync::RwLock<Option<String>>,
    /// The checkpoint's size, for registrations waiting on it
    /// (`replicated` durability).
    checkpoint: tokio::sync::watch::Sender<u64>,
    /// The bucket's checkpoint has been read (and checked) since the start.
    pub resumed: std::sync::atomic::AtomicBool,
}

impl PublishStatus {
    pub fn new(bucket: &Bucket) -> PublishStatus {
        PublishStatus {
            bucket: bucket.url().to_owned(),
            published: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            failed_rounds: AtomicU64::new(0),
            lag: Histogram::with_bounds(vec![
                0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0, 3.0, 5.0,
                10.0, 20.0, 30.0,
            ]),
            stopped: std::sync::RwLock::new(None),
            checkpoint: tokio::sync::watch::Sender::new(0),
            resumed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The bucket's checkpoint now covers `size` entries.
    pub fn set_published(&self, size: u64) {
        self.published
            .store(size, std::sync::atomic::Ordering::Relaxed);
        self.checkpoint.send_replace(size);
    }

    /// Waits until the bucket's checkpoint covers `size` entries, or
    /// publishing stops for good (then the reason).
    pub async fn covered(&self, size: u64) -> Result<(), String> {
        let mut rx = self.checkpoint.subscribe();
        loop {
            if *rx.borrow_and_update() >= size {
                return Ok(());
            }
            if let Some(why) = crate::sync::read(&self.stopped).clone() {
                return Err(why);
            }
            // Woken by every new checkpoint; an alarm is seen within 100 ms.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), rx.changed()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s3_urls_with_a_bucket_open() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            Bucket::open("http://x/y", t),
            Err(BucketError::Config(_))
        ));
        assert!(matches!(
            Bucket::open("s3:///p", t),
            Err(BucketError::Config(_))
        ));
        assert!(matches!(
            Bucket::open("file://relative/dir", t),
            Err(BucketError::Config(_))
        ));
    }
}
