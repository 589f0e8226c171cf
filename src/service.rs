//! The registration service: statement checks, policy, the log, receipts.
//! HTTP-agnostic; `http` maps requests to these calls and errors to problem
//! details.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::issuers::IssuerTrust;
use crate::keys::{KeySet, SigningKey};
use crate::log::{Appended, Log, LogConfig, LogError};
use crate::merkle::{self, Hash};
use crate::problem::Problem;
use crate::receipt::{self, CoseTreeHeadSigner, ServiceIdentity};
use crate::statement::{self, SignedStatement, StatementError};
use crate::tree_head::SignedTreeHead;
use crate::vcon::policy::PolicyRejection;

/// Subject and content type of the registration-policy statements the
/// service registers about itself.
pub const POLICY_SUBJECT: &str = "urn:vcon-scitt:registration-policy";
pub const POLICY_CONTENT_TYPE: &str = "application/vcon-scitt-policy+json";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Policy(#[from] PolicyRejection),
    #[error("the log is full; retry later")]
    Overloaded,
    #[error("the log is not accepting writes: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<&ServiceError> for Problem {
    fn from(e: &ServiceError) -> Problem {
        match e {
            ServiceError::Statement(s) => Problem::from(s),
            ServiceError::Policy(p) => Problem::new(400, "Rejected", p.to_string()),
            ServiceError::Overloaded => {
                Problem::new(503, "Service Unavailable", e.to_string()).retry_after(1)
            }
            ServiceError::Unavailable(_) => {
                Problem::new(503, "Service Unavailable", e.to_string()).retry_after(5)
            }
            ServiceError::Internal(_) => Problem::new(500, "Internal Server Error", e.to_string()),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// Result of POST /entries.
#[derive(Debug)]
pub enum Registered {
    /// Durable and covered by a signed head: 201 with this receipt.
    Created {
        entry_id: String,
        receipt: Vec<u8>,
        duplicate: bool,
    },
    /// Still being sequenced when the wait budget ran out: 202.
    Accepted { entry_id: String },
}

/// GET /entries/{id}.
#[derive(Debug)]
pub enum ReceiptLookup {
    Ready(Vec<u8>),
    Pending,
    Failed(String),
    Unknown,
}

/// Registration counters for /metrics.
#[derive(Default)]
pub struct Counters {
    pub created: AtomicU64,
    pub duplicate: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub malformed: AtomicU64,
    pub overloaded: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unauthorized: AtomicU64,
    pub failed: AtomicU64,
    pub receipts_served: AtomicU64,
}

pub struct Service {
    pub config: Config,
    pub log: Log,
    pub identity: ServiceIdentity,
    /// Every service public key (current and retired), by kid.
    pub public_keys: KeySet,
    pub current_kid: Vec<u8>,
    pub trust: IssuerTrust,
    pub counters: Counters,
    pending: Mutex<HashMap<Hash, Instant>>,
    /// Entry id of the registration policy in force (RFC 9943 §5.1.1).
    policy_entry: std::sync::RwLock<Option<String>>,
    pub service_key: Arc<CoseTreeHeadSigner>,
    failed: Mutex<(HashMap<Hash, String>, VecDeque<Hash>)>,
    pub rate: RateLimiter,
    pub started: Instant,
}

impl Service {
    /// Opens the log and loads (or generates) the service key.
    pub fn open(config: Config) -> Result<Arc<Service>, String> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
        let (key, generated) = load_or_generate_key(&config)?;
        let keyset_path = config.data_dir.join("keys/scitt-keys.cbor");
        let mut public_keys = match std::fs::read(&keyset_path) {
            Ok(b) => {
                KeySet::parse_any(&b).map_err(|e| format!("{}: {e}", keyset_path.display()))?
            }
            Err(_) => KeySet::new(),
        };
        let current_kid = key.kid();
        if public_keys.get(&current_kid).is_none() {
            public_keys.insert(key.public(), None);
            write_atomically(&keyset_path, &public_keys.to_cose_keyset())?;
        }
        let identity = ServiceIdentity {
            issuer: config.service_url(),
            subject: config.log_id(),
        };
        let signer = Arc::new(CoseTreeHeadSigner {
            key,
            identity: identity.clone(),
            verify_keys: public_keys.clone(),
        });
        let service_key = signer.clone();
        let log_config = LogConfig {
            max_batch: config.sequencer.max_batch.max(1),
            max_delay: Duration::from_micros(config.sequencer.max_delay_us),
            queue_capacity: config.sequencer.queue_capacity.max(1),
            rollback_guard: Some(config.rollback_guard()),
            ..LogConfig::default()
        };
        let log = Log::open(&config.data_dir.join("db"), log_config, signer)
            .map_err(|e| e.to_string())?;
        let trust = build_trust(&config)?;
        if generated {
            tracing::info!(path = %config.key_file().display(), kid = %hex::encode(&current_kid), "generated a new service key");
        }
        let rate = RateLimiter::new(
            config.rate_limit.per_client_per_sec,
            config.rate_limit.burst,
        );
        let svc = Arc::new(Service {
            policy_entry: std::sync::RwLock::new(None),
            service_key,
            config,
            log,
            identity,
            public_keys,
            current_kid,
            trust,
            counters: Counters::default(),
            pending: Mutex::new(HashMap::new()),
            failed: Mutex::new((HashMap::new(), VecDeque::new())),
            rate,
            started: Instant::now(),
        });
        svc.register_policy()?;
        Ok(svc)
    }

    /// The canonical policy document: the rules, the issuers' key ids and the
    /// trust anchors' fingerprints (JSON, sorted keys).
    pub fn policy_document(&self) -> serde_json::Value {
        let issuers: Vec<serde_json::Value> = self
            .trust
            .registry
            .iter()
            .map(|(iss, ks)| {
                let mut kids: Vec<String> = ks
                    .keys
                    .iter()
                    .map(|(_, k)| hex::encode(k.thumbprint()))
                    .collect();
                kids.sort();
                kids.dedup();
                let mut keys: Vec<serde_json::Value> = Vec::new();
                for (_, k) in &ks.keys {
                    let j = k.to_jwk();
                    if !keys.contains(&j) {
                        keys.push(j);
                    }
                }
                serde_json::json!({"iss": iss, "kids": kids, "keys": keys})
            })
            .collect();
        let anchors: Vec<String> = self
            .trust
            .anchors
            .iter()
            .map(|der| hex::encode(ring::digest::digest(&ring::digest::SHA256, der)))
            .collect();
        serde_json::json!({
            "profile": "vcon-scitt registration policy v1",
            "rules": serde_json::to_value(&self.config.policy).unwrap_or_default(),
            "max_statement_bytes": self.config.registration.max_statement_bytes,
            "algorithms": crate::keys::SUPPORTED_ALGS.iter().map(|a| a.name).collect::<Vec<_>>(),
            "issuers": issuers,
            "trust_anchors_sha256": anchors,
        })
    }

    /// RFC 9943 §5.1.1: the policy in force is itself a log entry. At start
    /// the policy document is registered (signed by the service key) whenever
    /// it differs from the last one registered.
    fn register_policy(&self) -> Result<(), String> {
        let doc = self.policy_document();
        let bytes = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
        let hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        if let Some((h, entry_id)) =
            crate::vcon_index::current_policy(self.log.store()).map_err(|e| e.to_string())?
            && h == hash
        {
            *self.policy_entry.write().unwrap_or_else(|p| p.into_inner()) = Some(entry_id);
            return Ok(());
        }
        let key = &self.service_key.key;
        let mut b = statement::Builder::new(key, &self.identity.issuer, POLICY_SUBJECT);
        b.content_type = Some(POLICY_CONTENT_TYPE.into());
        b.issued_at = Some(crate::time::now_secs());
        let st = b.sign(&bytes)?;
        let parsed = SignedStatement::parse(&st, usize::MAX).map_err(|e| e.to_string())?;
        let entry = parsed.entry_bytes();
        let leaf = merkle::leaf_hash(&entry);
        let entry_id = statement::entry_id(&leaf);
        let (h2, id2) = (hash.clone(), entry_id.clone());
        let rows: Box<dyn Fn(u64) -> crate::log::IndexWrites + Send> =
            Box::new(move |_| crate::vcon_index::policy_row(&h2, &id2));
        let appended = self
            .log
            .submit_with(entry, leaf, Some(rows))
            .map_err(|e| e.to_string())?
            .wait_blocking()
            .map_err(|e| e.to_string())?;
        tracing::info!(entry_id = %entry_id, index = appended.index, "registered the registration policy");
        *self.policy_entry.write().unwrap_or_else(|p| p.into_inner()) = Some(entry_id);
        Ok(())
    }

    pub fn policy_entry(&self) -> Option<String> {
        self.policy_entry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies, applies the policy, sequences; waits up to the budget for
    /// the durable signed head.
    pub async fn register(self: &Arc<Self>, body: &[u8]) -> Result<Registered, ServiceError> {
        let result = self.register_inner(body).await;
        let c = &self.counters;
        let counter = match &result {
            Ok(Registered::Created {
                duplicate: false, ..
            }) => &c.created,
            Ok(Registered::Created {
                duplicate: true, ..
            }) => &c.duplicate,
            Ok(Registered::Accepted { .. }) => &c.accepted,
            Err(ServiceError::Statement(StatementError::Rejected(_)))
            | Err(ServiceError::Policy(_)) => &c.rejected,
            Err(ServiceError::Statement(_)) => &c.malformed,
            Err(ServiceError::Overloaded) => &c.overloaded,
            Err(_) => &c.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    async fn register_inner(self: &Arc<Self>, body: &[u8]) -> Result<Registered, ServiceError> {
        let now = crate::time::now_secs();
        let st = SignedStatement::parse(body, self.config.registration.max_statement_bytes)?;
        // Signature checks run here, on the request's worker thread, so they
        // use every core before the single sequencer.
        self.trust.verify(&st, now)?;
        let profile = crate::vcon::profile::check(&self.config.policy, &st, now)?;
        let entry = st.entry_bytes();
        let leaf = merkle::leaf_hash(&entry);
        let entry_id = statement::entry_id(&leaf);
        // Index rows are written in the entry's own batch.
        let index_writes: Option<Box<dyn Fn(u64) -> crate::log::IndexWrites + Send>> = match profile
        {
            crate::vcon::Profile::Generic => None,
            crate::vcon::Profile::Vcon(record) => {
                let id = entry_id.clone();
                let policy_entry = self.policy_entry();
                Some(Box::new(move |index| {
                    crate::vcon_index::rows(&record, &id, policy_entry.as_deref(), index)
                }))
            }
        };

        // Duplicates are found by the sequencer (in-batch and in storage);
        // no read here, so the request path never touches RocksDB.
        let pending = match self.log.submit_with(entry, leaf, index_writes) {
            Ok(p) => p,
            Err(LogError::QueueFull) => return Err(ServiceError::Overloaded),
            Err(LogError::Halted(w)) => return Err(ServiceError::Unavailable(w)),
            Err(e) => return Err(ServiceError::Unavailable(e.to_string())),
        };
        self.lock_pending().insert(leaf, Instant::now());
        let budget = Duration::from_millis(self.config.registration.wait_ms);
        let mut wait = Box::pin(pending.wait());
        match tokio::time::timeout(budget, &mut wait).await {
            Ok(result) => {
                self.lock_pending().remove(&leaf);
                let appended = self.settle(leaf, result)?;
                let receipt = self.receipt_for(&appended)?;
                Ok(Registered::Created {
                    entry_id,
                    receipt,
                    duplicate: appended.duplicate,
                })
            }
            Err(_) => {
                // Keep waiting in the background so GET can report the outcome.
                let this = self.clone();
                tokio::spawn(async move {
                    let result = wait.await;
                    this.lock_pending().remove(&leaf);
                    let _ = this.settle(leaf, result);
                });
                Ok(Registered::Accepted { entry_id })
            }
        }
    }

    fn settle(
        &self,
        leaf: Hash,
        result: Result<Appended, LogError>,
    ) -> Result<Appended, ServiceError> {
        match result {
            Ok(a) => Ok(a),
            Err(e) => {
                let msg = e.to_string();
                let mut f = self.lock_failed();
                if f.0.insert(leaf, msg.clone()).is_none() {
                    f.1.push_back(leaf);
                    if f.1.len() > 10_000
                        && let Some(old) = f.1.pop_front()
                    {
                        f.0.remove(&old);
                    }
                }
                Err(match e {
                    LogError::QueueFull => ServiceError::Overloaded,
                    LogError::Halted(w) => ServiceError::Unavailable(w),
                    other => ServiceError::Unavailable(other.to_string()),
                })
            }
        }
    }

    fn receipt_for(&self, a: &Appended) -> Result<Vec<u8>, ServiceError> {
        if let Some(proof) = &a.proof {
            if let Some(t) = &a.receipt_template {
                return Ok(t.inclusion(a.head.head.size, a.index, proof));
            }
            return receipt::inclusion_receipt(&a.head.signature, a.head.head.size, a.index, proof)
                .map_err(internal);
        }
        // A duplicate's stable receipt is at the head that first covered it.
        if a.duplicate
            && let Some(head) = self.log.first_head_covering(a.index).map_err(internal)?
        {
            return self.receipt_at(a.index, &head, &a.leaf);
        }
        self.receipt_at(a.index, &a.head, &a.leaf)
    }

    /// Inclusion receipt for `index` at `head` (which must cover it).
    /// Never hands out a receipt that does not verify: the proof read from
    /// storage is checked against the signed root first (≈ 2 µs), so storage
    /// corruption surfaces as an honest 500 and an alarm, not a bad receipt.
    pub fn receipt_at(
        &self,
        index: u64,
        head: &SignedTreeHead,
        leaf: &Hash,
    ) -> Result<Vec<u8>, ServiceError> {
        let proof = self
            .log
            .inclusion_proof(index, head.head.size)
            .map_err(internal)?;
        if let Err(e) =
            merkle::verify_inclusion(index, head.head.size, leaf, &proof, &head.head.root)
        {
            tracing::error!(alarm = true, index, size = head.head.size, error = %e, "stored tree does not match a signed head");
            return Err(ServiceError::Internal(format!(
                "storage corruption detected: the stored proof for index {index} does not match the signed root at size {} ({e}); run vcon-scitt fsck",
                head.head.size
            )));
        }
        receipt::inclusion_receipt(&head.signature, head.head.size, index, &proof).map_err(internal)
    }

    /// GET /entries/{id}: the stable receipt (first covering head), or a
    /// fresh one at the latest head.
    pub fn lookup_receipt(&self, leaf: &Hash, fresh: bool) -> Result<ReceiptLookup, ServiceError> {
        if let Some(index) = self.log.index_of(leaf).map_err(internal)? {
            let head = if fresh {
                let latest = self.log.latest();
                (latest.head.size > index).then(|| (*latest).clone())
            } else {
                self.log.first_head_covering(index).map_err(internal)?
            };
            return match head {
                Some(h) => {
                    self.counters
                        .receipts_served
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(ReceiptLookup::Ready(self.receipt_at(index, &h, leaf)?))
                }
                // Durable, head not signed yet.
                None => Ok(ReceiptLookup::Pending),
            };
        }
        if self.lock_pending().contains_key(leaf) {
            return Ok(ReceiptLookup::Pending);
        }
        if let Some(why) = self.lock_failed().0.get(leaf) {
            return Ok(ReceiptLookup::Failed(why.clone()));
        }
        Ok(ReceiptLookup::Unknown)
    }

    /// GET /entries/{id}/statement: the entry with its stable receipt in 394.
    pub fn transparent_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError> {
        let Some(index) = self.log.index_of(leaf).map_err(internal)? else {
            return Ok(None);
        };
        let Some(head) = self.log.first_head_covering(index).map_err(internal)? else {
            return Ok(None);
        };
        let entry = self
            .log
            .entry(index)
            .map_err(internal)?
            .ok_or_else(|| internal("entry vanished"))?;
        let receipt = self.receipt_at(index, &head, leaf)?;
        statement::transparent_statement(&entry, &[receipt])
            .map(Some)
            .map_err(internal)
    }

    /// A consistency receipt from `size1` to the signed head at `size2`.
    pub fn consistency_receipt(
        &self,
        size1: u64,
        size2: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        let head = match size2 {
            None => Some((*self.log.latest()).clone()),
            Some(s) => self.log.head(s).map_err(internal)?,
        };
        let Some(head) = head else { return Ok(None) };
        if size1 == 0 || size1 > head.head.size {
            return Ok(None);
        }
        let proof = self
            .log
            .consistency_proof(size1, head.head.size)
            .map_err(internal)?;
        receipt::consistency_receipt(&head.signature, size1, head.head.size, &proof)
            .map(Some)
            .map_err(internal)
    }

    /// A consistent online backup: a RocksDB checkpoint under
    /// `<data_dir>/backups/`, plus the public key set. The service private
    /// key is *not* copied: back it up separately, as the secret it is.
    pub fn backup(&self) -> Result<(std::path::PathBuf, u64), ServiceError> {
        let size = self.log.latest().head.size;
        let stamp = crate::time::now_ms();
        let dir = self
            .config
            .data_dir
            .join("backups")
            .join(format!("{stamp}-size-{size}"));
        std::fs::create_dir_all(&dir).map_err(internal)?;
        self.log
            .store()
            .checkpoint(&dir.join("db"))
            .map_err(internal)?;
        std::fs::write(
            dir.join("scitt-keys.cbor"),
            self.public_keys.to_cose_keyset(),
        )
        .map_err(internal)?;
        tracing::info!(path = %dir.display(), tree_size = size, "online backup written");
        Ok((dir, size))
    }

    pub fn pending_count(&self) -> usize {
        self.lock_pending().len()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Instant>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_failed(&self) -> std::sync::MutexGuard<'_, (HashMap<Hash, String>, VecDeque<Hash>)> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the sequencer after the batch in hand and flushes.
    pub fn shutdown(&self) {
        self.log.shutdown();
        let _ = self.log.store().flush();
    }
}

fn load_or_generate_key(config: &Config) -> Result<(SigningKey, bool), String> {
    if let Ok(b64) = std::env::var("VCON_SCITT_SERVICE_KEY") {
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64.trim())
            .map_err(|e| format!("VCON_SCITT_SERVICE_KEY is not base64 PKCS#8: {e}"))?;
        return SigningKey::from_pkcs8(&der)
            .map(|k| (k, false))
            .map_err(|e| format!("VCON_SCITT_SERVICE_KEY: {e}"));
    }
    let path = config.key_file();
    match std::fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path);
            SigningKey::from_pkcs8_any(&bytes)
                .map(|k| (k, false))
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let alg = config
                .key_alg
                .parse::<crate::keys::Alg>()
                .map_err(|e| e.to_string())?;
            let (key, pkcs8) = SigningKey::generate(alg).map_err(|e| e.to_string())?;
            crate::keys::write_private_key(&path, &pkcs8).map_err(|e| e.to_string())?;
            Ok((key, true))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "service key file is readable by group/others; chmod 600 it");
        }
    }
}

fn build_trust(config: &Config) -> Result<IssuerTrust, String> {
    let mut trust = IssuerTrust::default();
    for issuer in &config.issuers {
        for p in &issuer.keys {
            let bytes = std::fs::read(p).map_err(|e| format!("issuer key {}: {e}", p.display()))?;
            let ks = KeySet::parse_any(&bytes)
                .map_err(|e| format!("issuer key {}: {e}", p.display()))?;
            for (kid, key) in ks.keys {
                trust.add_issuer_key(&issuer.iss, key, Some(kid));
            }
        }
    }
    for p in &config.trust_anchors {
        let bytes = std::fs::read(p).map_err(|e| format!("trust anchor {}: {e}", p.display()))?;
        let anchors = crate::issuers::read_anchors(&bytes);
        if anchors.is_empty() {
            return Err(format!(
                "trust anchor {}: no certificate found",
                p.display()
            ));
        }
        trust.anchors.extend(anchors);
    }
    Ok(trust)
}

/// Writes a file via a temp file + rename, so readers never see half of it.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Token buckets per client (token hash or address).
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` or the seconds to wait.
    pub fn check(&self, client: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 100_000 {
            // Bounded memory under address floods: forget idle buckets.
            let (rate, burst) = (self.rate, self.burst);
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(client.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}
