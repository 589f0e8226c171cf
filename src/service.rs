//! The registration service: statement checks, policy, the log, receipts.
//! HTTP-agnostic; `http` maps requests to these calls and errors to problem
//! details.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Config;
use crate::issuers::IssuerTrust;
use crate::keys::{KeySet, SigningKey};
use crate::log::{Appended, Log, LogConfig, LogError, Store};
use crate::merkle::Hash;
use crate::merkle::tile::TileId;
use crate::receipt::{self, CoseTreeHeadSigner, ReceiptTemplate, ServiceIdentity};
use crate::statement::{self, SignedStatement, StatementError};
use crate::tree_head::SignedTreeHead;

/// Subject and content type of the registration-policy statements the
/// service registers about itself.
pub use crate::vcon::policy::{POLICY_CONTENT_TYPE, POLICY_SUBJECT};

pub use crate::reads::{ReceiptLookup, ServiceError};

/// A failure that is ours, not the client's (a storage read, an encoding
/// step). The text is for the operator: the HTTP layer logs it and sends the
/// client a generic detail.
use crate::reads::internal;

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

/// Readiness, for `GET /healthz`.
#[derive(Debug)]
pub enum Health {
    Ready {
        tree_size: u64,
    },
    /// The last batch failed to commit (the next one may succeed).
    BatchFailed(String),
    /// The log refused to sign after an integrity alarm.
    Halted(String),
}

pub use crate::reads::{BundleKind, TileRead};

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

/// The registration service. The public fields are read by the binary
/// (`config`, `current_kid`, `trust` for the start banner), by the metrics
/// page and the load generator (`log`, `counters`) and by tests (`log`,
/// `current_kid`); the HTTP layer goes through methods, so that it never
/// reaches into storage.
pub struct Service {
    pub config: Config,
    pub log: Log,
    /// The verifiable vCon map, shared with the sequencer (its closer).
    pub map: Arc<Mutex<crate::vcon_map::VconMap>>,
    identity: ServiceIdentity,
    /// Every service public key (current and retired), by kid.
    public_keys: KeySet,
    pub current_kid: Vec<u8>,
    pub trust: IssuerTrust,
    pub counters: Counters,
    pending: PendingSet,
    /// Entry id of the registration policy in force (RFC 9943 §5.1.1).
    policy_entry: std::sync::RwLock<Option<String>>,
    service_key: Arc<CoseTreeHeadSigner>,
    failed: Mutex<(HashMap<Hash, String>, VecDeque<Hash>)>,
    /// The receipt template of the newest head a fresh entry was answered at.
    receipt_template: Mutex<Option<(u64, Arc<ReceiptTemplate>)>>,
    /// Signs the C2SP checkpoint note (Ed25519), and the note of the newest
    /// head it signed (Ed25519 is deterministic: the cache only saves work).
    checkpoint_key: SigningKey,
    checkpoint_note: Mutex<Option<(u64, Hash, Arc<str>)>>,
    /// Set when the log is published to object storage (`/metrics`).
    pub publishing: std::sync::OnceLock<Arc<crate::bucket::PublishStatus>>,
    /// The single-writer lease, when fenced by etcd.
    pub fence: std::sync::OnceLock<Arc<crate::fence::Fence>>,
    /// Dropped after `log`: no rewind while the store is open.
    _hold: crate::rewind::StoreHold,
}

impl Service {
    /// Opens the log and loads (or generates) the service key.
    pub fn open(config: Config) -> Result<Arc<Service>, String> {
        if config.registration.max_statement_bytes > crate::merkle::bundle::MAX_ENTRY_BYTES {
            return Err(format!(
                "registration.max_statement_bytes = {} is over 65,535: a C2SP entry bundle cannot hold a larger entry",
                config.registration.max_statement_bytes
            ));
        }
        crate::durable::create_private_dir_all(&config.data_dir).map_err(|e| e.to_string())?;
        warn_if_readable_by_others(&config.data_dir, "data dir");
        let (key, generated) = load_or_generate_key(&config)?;
        let checkpoint_key = load_or_generate_checkpoint_key(&config)?;
        check_restored_identity(&config, &checkpoint_key)?;
        if !crate::note::valid_name(&config.log_id()) {
            return Err(format!(
                "the log id {:?} cannot be a C2SP checkpoint origin (no white space or '+')",
                config.log_id()
            ));
        }
        let keyset_path = config.keyset_file();
        let mut public_keys = match std::fs::read(&keyset_path) {
            Ok(b) => {
                KeySet::parse_any(&b).map_err(|e| format!("{}: {e}", keyset_path.display()))?
            }
            Err(_) => KeySet::new(),
        };
        let current_kid = key.kid();
        if public_keys.get(&current_kid).is_none() {
            public_keys.insert(key.public(), None);
            crate::durable::write_atomically(&keyset_path, &public_keys.to_cose_keyset())
                .map_err(|e| e.to_string())?;
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
        if config.leaf_rule == Some(statement::LeafRule::PayloadSha256)
            && !config.policy.legacy_compat
        {
            return Err("leaf_rule payload-sha256 binds only the payload (not the issuer's header or signature): it is allowed only in the conserver compatibility profile, with policy.legacy_compat = true (spec-notes/interop.md)".into());
        }
        let (db, hold) = crate::rewind::store_dir(&config.data_dir).map_err(|e| e.to_string())?;
        let store = Store::open_log(&db, config.new_log_leaf_rule()).map_err(|e| e.to_string())?;
        if let Some(asked) = config.leaf_rule
            && asked != store.leaf_rule()
        {
            return Err(format!(
                "leaf_rule is {asked}, but this log was created with leaf rule {}: a log's rule is fixed at creation (its receipts prove leaves made under it). Remove the setting, or start a new log in another data dir",
                store.leaf_rule()
            ));
        }
        backfill_identities(&store)?;
        // The vCon map closes every batch with a map-root entry (vcon_map.rs).
        let map = Arc::new(Mutex::new(
            crate::vcon_map::VconMap::open(
                &store,
                signer.clone(),
                config.policy.consent_delegates.clone(),
            )
            .map_err(|e| format!("opening the vCon map: {e}"))?,
        ));
        let log_config = LogConfig {
            closer: Some(map.clone()),
            ..log_config
        };
        let log = Log::with_store(store, log_config, signer).map_err(|e| e.to_string())?;
        let trust = build_trust(&config)?;
        let migrated = crate::vcon_index::migrate(log.store()).map_err(|e| e.to_string())?;
        if migrated > 0 {
            tracing::info!(
                rows = migrated,
                "derived the per-vCon fact and consent rows of an older database"
            );
        }
        if generated {
            tracing::info!(path = %config.key_file().display(), kid = %hex::encode(&current_kid), "generated a new service key");
        }
        let svc = Arc::new(Service {
            _hold: hold,
            map,
            policy_entry: std::sync::RwLock::new(None),
            service_key,
            config,
            log,
            identity,
            public_keys,
            current_kid,
            trust,
            counters: Counters::default(),
            pending: PendingSet::default(),
            failed: Mutex::new((HashMap::new(), VecDeque::new())),
            receipt_template: Mutex::new(None),
            checkpoint_key,
            checkpoint_note: Mutex::new(None),
            publishing: std::sync::OnceLock::new(),
            fence: std::sync::OnceLock::new(),
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
            *crate::sync::write(&self.policy_entry) = Some(entry_id);
            return Ok(());
        }
        let key = &self.service_key.key;
        let mut b = statement::Builder::new(key, &self.identity.issuer, POLICY_SUBJECT);
        b.content_type = Some(POLICY_CONTENT_TYPE.into());
        b.issued_at = Some(crate::time::now_secs());
        let st = b.sign(&bytes)?;
        let parsed = SignedStatement::parse(&st, usize::MAX).map_err(|e| e.to_string())?;
        let entry = parsed.entry_bytes();
        if entry.len() > crate::merkle::bundle::MAX_ENTRY_BYTES {
            return Err(format!(
                "the signed registration policy is {} bytes; a log entry is at most 65,535 (the C2SP entry-bundle limit): list fewer issuer keys",
                entry.len()
            ));
        }
        let leaf = self.log.store().leaf_hash(&entry);
        let entry_id = statement::entry_id(&leaf);
        let rows = crate::vcon_index::policy_row(&hash, &entry_id);
        let identity = Some(parsed.registration_identity());
        let appended = self
            .log
            .submit_with(entry, leaf, identity, rows)
            .map_err(|e| e.to_string())?
            .wait_blocking()
            .map_err(|e| e.to_string())?;
        // The entry in the log, should an earlier one have had this identity.
        let entry_id = statement::entry_id(&appended.leaf);
        tracing::info!(entry_id = %entry_id, index = appended.index, "registered the registration policy");
        *crate::sync::write(&self.policy_entry) = Some(entry_id);
        Ok(())
    }

    pub fn policy_entry(&self) -> Option<String> {
        crate::sync::read(&self.policy_entry).clone()
    }

    /// Verifies, applies the policy, sequences; waits up to the budget for
    /// the durable signed head (`wait`, when the client stated one, else the
    /// configured `wait_ms`), then answers 202.
    pub async fn register(
        self: &Arc<Self>,
        body: &[u8],
        wait: Option<Duration>,
    ) -> Result<Registered, ServiceError> {
        let result = self.register_inner(body, wait).await;
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

    async fn register_inner(
        self: &Arc<Self>,
        body: &[u8],
        wait: Option<Duration>,
    ) -> Result<Registered, ServiceError> {
        // Fenced, or past the lease's local deadline: nothing is signed
        // that this writer may be unable to publish (another writer may be
        // signing those sizes).
        if let Some(fence) = self.fence.get() {
            fence.holds().map_err(ServiceError::Unavailable)?;
        }
        let now = crate::time::now_secs();
        let st = SignedStatement::parse(body, self.config.registration.max_statement_bytes)?;
        // Signature checks run here, on the request's worker thread, so they
        // use every core before the single sequencer.
        self.trust.verify(&st, now)?;
        let profile = crate::vcon::profile::check(&self.config.policy, &st, now)?;
        let entry = st.entry_bytes();
        let leaf = self.log.store().leaf_hash(&entry);
        let entry_id = statement::entry_id(&leaf);
        // The index rows go into the entry's own WriteBatch (as durable as
        // it), built and encoded here so the single writer only copies them.
        let (rows, map_input) = match profile {
            crate::vcon::Profile::Generic => (crate::log::IndexRows::default(), None),
            crate::vcon::Profile::Vcon(record) => (
                crate::vcon_index::rows(&record, &entry_id, self.policy_entry().as_deref()),
                crate::vcon_map::MapInput::new(*record)
                    .map(|m| Arc::new(m) as crate::log::CloserInput),
            ),
        };

        // What the issuer signed identifies the registration, not the
        // signature bytes: an ECDSA signature is malleable (s → n − s), and
        // a re-signed copy differs too (security issue, finding 6).
        let identity = st.registration_identity();

        // Duplicates are found by the sequencer (in-batch and in storage);
        // no read here, so the request path never touches RocksDB.
        let pending = self
            .log
            .submit_for_closer(entry, leaf, Some(identity), rows, map_input)?;
        self.pending.add(leaf);
        let budget =
            wait.unwrap_or_else(|| Duration::from_millis(self.config.registration.wait_ms));
        let started = std::time::Instant::now();
        let mut wait = Box::pin(pending.wait());
        match tokio::time::timeout(budget, &mut wait).await {
            Ok(result) => {
                self.pending.done(&leaf);
                let appended = self.settle(leaf, result)?;
                if !self
                    .replicated(appended.index, budget.saturating_sub(started.elapsed()))
                    .await?
                {
                    // Durable here, not yet in the bucket: 202, and the
                    // receipt once the checkpoint covers it.
                    return Ok(Registered::Accepted {
                        entry_id: statement::entry_id(&appended.leaf),
                    });
                }
                let receipt = self.receipt_for(&appended)?;
                // A duplicate by identity is the entry registered first,
                // with its own id: the receipt covers those bytes.
                Ok(Registered::Created {
                    entry_id: statement::entry_id(&appended.leaf),
                    receipt,
                    duplicate: appended.duplicate,
                })
            }
            Err(_) => {
                // Keep waiting in the background so GET can report the outcome.
                let this = self.clone();
                tokio::spawn(async move {
                    let result = wait.await;
                    this.pending.done(&leaf);
                    if let Ok(a) = this.settle(leaf, result)
                        && a.leaf != leaf
                    {
                        // The 202 named this copy's entry id, which will
                        // never be an entry: say where the registration is.
                        let id = statement::entry_id(&a.leaf);
                        this.note_failed(leaf, format!(
                            "the same signed content (protected header and payload) is already registered as entry {id}, with other signature bytes; this copy was not logged again. The receipt at /entries/{id} covers the registered bytes: GET /entries/{id}/statement"
                        ));
                    }
                });
                Ok(Registered::Accepted { entry_id })
            }
        }
    }

    /// `replicated` durability: waits (up to `left`) until the bucket's
    /// checkpoint covers entry `index`; false when the wait ran out. Always
    /// true in `local` durability.
    async fn replicated(&self, index: u64, left: Duration) -> Result<bool, ServiceError> {
        let Some(status) = self.replication() else {
            return Ok(true);
        };
        match tokio::time::timeout(left, status.covered(index.saturating_add(1))).await {
            Ok(Ok(())) => {
                // Fenced: not a 201 once the lease may have passed on.
                if let Some(fence) = self.fence.get() {
                    fence.holds().map_err(ServiceError::Unavailable)?;
                }
                Ok(true)
            }
            Ok(Err(why)) => Err(ServiceError::Unavailable(format!(
                "replication to the bucket stopped ({why}): registrations are not acknowledged"
            ))),
            Err(_) => Ok(false),
        }
    }

    /// The publisher a 201 waits for (`replicated` durability only).
    pub fn replication(&self) -> Option<&Arc<crate::bucket::PublishStatus>> {
        match self.config.registration.durability {
            crate::config::Durability::Replicated => self.publishing.get(),
            crate::config::Durability::Local => None,
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
                self.note_failed(leaf, e.to_string());
                Err(e.into())
            }
        }
    }

    /// What GET /entries/{id} reports for a registration that was accepted
    /// (202) but whose bytes are not in the log. Bounded: the oldest note
    /// goes past 10,000.
    fn note_failed(&self, leaf: Hash, why: String) {
        let mut f = self.lock_failed();
        if f.0.insert(leaf, why).is_none() {
            f.1.push_back(leaf);
            if f.1.len() > 10_000
                && let Some(old) = f.1.pop_front()
            {
                f.0.remove(&old);
            }
        }
    }

    fn receipt_for(&self, a: &Appended) -> Result<Vec<u8>, ServiceError> {
        if let Some(proof) = &a.proof {
            if let Some(t) = self.receipt_template(&a.head) {
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

    /// The head's COSE_Sign1 split once and shared by every receipt of its
    /// batch. Keyed by tree size: the log signs exactly one head per size.
    fn receipt_template(&self, head: &SignedTreeHead) -> Option<Arc<ReceiptTemplate>> {
        if let Some((size, t)) = &*crate::sync::lock(&self.receipt_template)
            && *size == head.head.size
        {
            return Some(t.clone());
        }
        // Built outside the lock; two threads may both build one for a new
        // head, and either result is the same bytes.
        let t = Arc::new(ReceiptTemplate::new(&head.signature).ok()?);
        *crate::sync::lock(&self.receipt_template) = Some((head.head.size, t.clone()));
        Some(t)
    }

    /// Inclusion receipt for `index` at `head` (which must cover it); see
    /// [`crate::reads::receipt_at`].
    pub fn receipt_at(
        &self,
        index: u64,
        head: &SignedTreeHead,
        leaf: &Hash,
    ) -> Result<Vec<u8>, ServiceError> {
        crate::reads::receipt_at(self.log.store(), index, head, leaf)
    }

    pub fn lookup_receipt(&self, leaf: &Hash, fresh: bool) -> Result<ReceiptLookup, ServiceError> {
        let stored =
            crate::reads::stored_receipt(self.log.store(), leaf, fresh, &self.log.latest())?;
        if let Some(found) = stored {
            // `replicated`: no receipt before the bucket holds the entry,
            // so a GET promises what a 201 does.
            if let Some(status) = self.replication()
                && matches!(found, ReceiptLookup::Ready(_))
                && let Some(index) = self.log.store().index_of(leaf).map_err(internal)?
                && index >= status.published.load(Ordering::Relaxed)
            {
                return Ok(ReceiptLookup::Pending);
            }
            if matches!(found, ReceiptLookup::Ready(_)) {
                self.counters
                    .receipts_served
                    .fetch_add(1, Ordering::Relaxed);
            }
            return Ok(found);
        }
        if self.pending.contains(leaf) {
            return Ok(ReceiptLookup::Pending);
        }
        if let Some(why) = self.lock_failed().0.get(leaf) {
            return Ok(ReceiptLookup::Failed(why.clone()));
        }
        Ok(ReceiptLookup::Unknown)
    }

    /// The newest published size: what every read may show.
    fn published(&self) -> u64 {
        self.log.latest().head.size
    }

    /// Who signs this log's receipts (`iss`, `sub`): the transparency
    /// configuration advertises it.
    pub fn identity(&self) -> &ServiceIdentity {
        &self.identity
    }

    /// Every service public key, current and retired: old receipts stay
    /// verifiable after a key rotation.
    pub fn public_keys(&self) -> &KeySet {
        &self.public_keys
    }

    /// The latest signed tree head (the checkpoint).
    pub fn latest_head(&self) -> Arc<SignedTreeHead> {
        self.log.latest()
    }

    /// Readiness: the log is open, not halted, and its last batch committed.
    /// A failed batch is reported first: it is the fresher news, and it may
    /// clear with the next batch, while a halt needs the operator.
    pub fn health(&self) -> Health {
        if let Some(why) = self.log.last_batch_error() {
            return Health::BatchFailed(why);
        }
        if let Some(Err(why)) = self.fence.get().map(|f| f.holds()) {
            return Health::Halted(why);
        }
        match self.log.halted() {
            Some(why) => Health::Halted(why),
            None => Health::Ready {
                tree_size: self.log.latest().head.size,
            },
        }
    }

    /// The latest signed head as a C2SP checkpoint note (origin = the log
    /// id), signed by the checkpoint key; only ever for a head the service
    /// already signed.
    pub fn checkpoint_note(&self) -> Result<Arc<str>, ServiceError> {
        self.checkpoint_note_for(&self.log.latest().head)
    }

    /// The checkpoint note of `h`, a head this service signed (the
    /// publisher's, which may trail the latest).
    pub fn checkpoint_note_for(
        &self,
        h: &crate::tree_head::TreeHead,
    ) -> Result<Arc<str>, ServiceError> {
        let mut cache = crate::sync::lock(&self.checkpoint_note);
        if let Some((size, root, note)) = &*cache
            && *size == h.size
            && *root == h.root
        {
            return Ok(note.clone());
        }
        let note: Arc<str> = crate::note::sign_checkpoint(
            &self.config.log_id(),
            h.size,
            &h.root,
            &self.checkpoint_key,
        )
        .map_err(internal)?
        .into();
        *cache = Some((h.size, h.root, note.clone()));
        Ok(note)
    }

    /// `/.well-known/transparency-configuration` (CBOR): the issuer and
    /// where its JWKS is, the leaf rule, the checkpoint's origin and key.
    /// Also published to the bucket, where replicas read it.
    pub fn transparency_configuration(&self) -> Vec<u8> {
        use ciborium::value::Value;
        let url = self.identity().issuer.trim_end_matches('/').to_owned();
        crate::cbor::encode(&Value::Map(vec![
            (Value::Text("issuer".into()), Value::Text(url.clone())),
            (
                Value::Text("jwks_uri".into()),
                Value::Text(format!("{url}/jwks")),
            ),
            // Which vds-1 leaf this log's receipts prove (two conventions
            // are in use, spec-notes/interop.md): fixed when the log was
            // created, so a verifier applies this one, e.g. `vcon-verify
            // --leaf-rule statement-sha256`.
            (
                Value::Text("leaf_rule".into()),
                Value::Text(self.log.store().leaf_rule().name().into()),
            ),
            // The C2SP checkpoint (`GET /checkpoint`, `Accept: text/plain`):
            // its origin, and the verifier key that signs it.
            (
                Value::Text("checkpoint_origin".into()),
                Value::Text(self.config.log_id()),
            ),
            (
                Value::Text("checkpoint_vkey".into()),
                Value::Text(self.checkpoint_vkey()),
            ),
        ]))
    }

    /// The checkpoint key's Ed25519 public key (the publisher checks the
    /// bucket's checkpoint with it).
    pub fn checkpoint_public_key(&self) -> Vec<u8> {
        self.checkpoint_key.public().bytes.clone()
    }

    /// The checkpoint note's verifier key (`name+id+key`), for clients to pin.
    pub fn checkpoint_vkey(&self) -> String {
        crate::note::vkey(&self.config.log_id(), &self.checkpoint_key.public().bytes)
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
        let keyset = self.public_keys.to_cose_keyset();
        // The directory is named by the size when the backup started; the
        // checkpoint may hold a later head (batches keep committing), and
        // the size reported is the one it holds.
        let size = crate::backup::write(self.log.store(), Some(&keyset), &dir).map_err(internal)?;
        tracing::info!(path = %dir.display(), tree_size = size, "online backup written");
        Ok((dir, size))
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn lock_failed(&self) -> std::sync::MutexGuard<'_, (HashMap<Hash, String>, VecDeque<Hash>)> {
        crate::sync::lock(&self.failed)
    }

    /// Stops the sequencer after the batch in hand and flushes.
    pub fn shutdown(&self) {
        self.log.shutdown();
        let _ = self.log.store().flush();
    }
}

/// The writer's reads, for the read API it shares with replicas.
impl crate::reads::LogReads for Service {
    fn lookup_receipt(&self, leaf: &Hash, fresh: bool) -> Result<ReceiptLookup, ServiceError> {
        Service::lookup_receipt(self, leaf, fresh)
    }
    fn signed_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError> {
        crate::reads::signed_statement(self.log.store(), leaf, self.published())
    }
    fn transparent_statement(&self, leaf: &Hash) -> Result<Option<Vec<u8>>, ServiceError> {
        crate::reads::transparent_statement(self.log.store(), leaf, self.published())
    }
    fn consistency_receipt(
        &self,
        size1: u64,
        size2: Option<u64>,
    ) -> Result<Option<Vec<u8>>, ServiceError> {
        crate::reads::consistency_receipt(self.log.store(), &self.log.latest(), size1, size2)
    }
    fn tile(&self, id: TileId, want: Option<usize>) -> Result<TileRead, ServiceError> {
        crate::reads::tile(self.log.store(), self.published(), id, want)
    }
    fn bundle(
        &self,
        index: u64,
        want: Option<usize>,
        kind: BundleKind,
    ) -> Result<TileRead, ServiceError> {
        crate::reads::bundle(self.log.store(), self.published(), index, want, kind)
    }
    fn latest_head(&self) -> Arc<SignedTreeHead> {
        Service::latest_head(self)
    }
    fn checkpoint_note(&self) -> Result<Arc<str>, ServiceError> {
        Service::checkpoint_note(self)
    }
    fn public_keys(&self) -> &KeySet {
        Service::public_keys(self)
    }
    fn transparency_configuration(&self) -> Vec<u8> {
        Service::transparency_configuration(self)
    }
    fn retry_after_secs(&self) -> u64 {
        self.config.registration.retry_after_secs
    }
}

/// The writer's vCon views: the rows its registrations wrote, the map its
/// batches close.
impl crate::reads::VconReads for Service {
    fn vcon_store(&self) -> &Store {
        self.log.store()
    }
    fn delegates(&self) -> crate::vcon::consent::Delegates {
        self.config.policy.consent_delegates.clone()
    }
    fn map_snapshot(
        &self,
        key: &crate::map::Key,
    ) -> Result<Option<crate::reads::MapSnapshot>, ServiceError> {
        let m = crate::sync::lock(&self.map);
        if m.is_staged() {
            return Ok(None);
        }
        let state = crate::vcon_map::VconMap::state_row(self.log.store(), key).map_err(internal)?;
        Ok(Some(crate::reads::MapSnapshot {
            last: m.last(),
            proof: m.tree().prove(key).bytes,
            state,
        }))
    }
    fn policy(&self) -> Result<serde_json::Value, ServiceError> {
        Ok(serde_json::json!({"entry_id": self.policy_entry(), "policy": self.policy_document()}))
    }
}

/// Gives the entries of a data dir written before registration identities
/// existed their identity rows, once (a marker records it), before the
/// sequencer starts: without them a malleated copy of an old statement
/// would be taken as new. Entries that are not a COSE_Sign1 with a payload
/// (raw appends by tools) get none.
fn backfill_identities(store: &Store) -> Result<(), String> {
    let started = std::time::Instant::now();
    let done = store
        .backfill_identities(&statement::entry_registration_identity)
        .map_err(|e| format!("backfilling registration identities: {e}"))?;
    if let Some(b) = done
        && b.entries > 0
    {
        tracing::info!(
            entries = b.entries,
            identities = b.rows,
            shared = b.shared,
            seconds = started.elapsed().as_secs_f64(),
            "backfilled registration identities (entries sharing an earlier entry's identity were registered twice before they existed)"
        );
    }
    Ok(())
}

fn load_or_generate_key(config: &Config) -> Result<(SigningKey, bool), String> {
    if let Some(der) = &config.service_key_pkcs8 {
        return SigningKey::from_pkcs8(&der.0)
            .map(|k| (k, false))
            .map_err(|e| format!("VCON_SCITT_SERVICE_KEY: {e}"));
    }
    let path = config.key_file();
    match std::fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path, "service key file");
            SigningKey::from_pkcs8_any(&bytes)
                .map(|k| (k, false))
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pkcs8) =
                SigningKey::generate(config.key_alg.into()).map_err(|e| e.to_string())?;
            crate::keys::write_private_key(&path, &pkcs8).map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                crate::durable::sync_dir(dir).map_err(|e| e.to_string())?;
            }
            Ok((key, true))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A data dir restored from a bucket (`restore --from`) pinned the log's
/// checkpoint vkey: a writer with another checkpoint key or URL would sign
/// notes no reader of that log accepts (and its publisher would refuse the
/// bucket), so it does not start.
fn check_restored_identity(config: &Config, checkpoint_key: &SigningKey) -> Result<(), String> {
    let pin = Config::checkpoint_pin_file_in(&config.data_dir);
    let Ok(pinned) = std::fs::read_to_string(&pin) else {
        return Ok(());
    };
    let ours = crate::note::vkey(&config.log_id(), &checkpoint_key.public().bytes);
    if pinned.trim() == ours {
        return Ok(());
    }
    Err(format!(
        "this data dir was restored from the log whose checkpoint key is {} ({}), but this writer's is {ours}: start it with that log's checkpoint key (checkpoint_key_file) and public URL (service_url)",
        pinned.trim(),
        pin.display()
    ))
}

/// The checkpoint note's Ed25519 key: read, or generated (0600) on first
/// start.
fn load_or_generate_checkpoint_key(config: &Config) -> Result<SigningKey, String> {
    let path = config.checkpoint_key_file();
    match std::fs::read(&path) {
        Ok(bytes) => {
            warn_if_readable_by_others(&path, "checkpoint key file");
            match SigningKey::from_pkcs8_any(&bytes) {
                Ok(k) if k.alg() == crate::keys::Alg::Ed25519 => Ok(k),
                Ok(_) => Err(format!("{}: not an Ed25519 key", path.display())),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pkcs8) =
                SigningKey::generate(crate::keys::Alg::Ed25519).map_err(|e| e.to_string())?;
            crate::keys::write_private_key(&path, &pkcs8).map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                crate::durable::sync_dir(dir).map_err(|e| e.to_string())?;
            }
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Warns (does not change anything) when a secret or the data dir is open
/// to group or others: the operator chose that mode, or inherited it.
fn warn_if_readable_by_others(path: &std::path::Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "{what} is accessible to group/others; chmod go-rwx it");
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

/// Registrations still sequencing past their wait budget (GET answers 204
/// for them), counted per leaf: two concurrent submissions of one statement
/// each hold a mark, and the first to finish must not clear the other's
/// (security issue, finding 9: it did, so a GET could report the first
/// one's failure while the second was still in flight).
#[derive(Default)]
struct PendingSet(Mutex<HashMap<Hash, u32>>);

impl PendingSet {
    fn add(&self, leaf: Hash) {
        *crate::sync::lock(&self.0).entry(leaf).or_default() += 1;
    }

    fn done(&self, leaf: &Hash) {
        let mut m = crate::sync::lock(&self.0);
        if let Some(n) = m.get_mut(leaf) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(leaf);
            }
        }
    }

    fn contains(&self, leaf: &Hash) -> bool {
        crate::sync::lock(&self.0).contains_key(leaf)
    }

    fn len(&self) -> usize {
        crate::sync::lock(&self.0).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_finishing_first_keeps_the_others_pending_mark() {
        let p = PendingSet::default();
        let leaf = [7u8; 32];
        p.add(leaf);
        p.add(leaf);
        p.done(&leaf);
        assert!(
            p.contains(&leaf),
            "the second submission is still in flight"
        );
        p.done(&leaf);
        assert!(!p.contains(&leaf));
        p.done(&leaf);
        assert_eq!(p.len(), 0, "an extra done never underflows or resurrects");
    }
}
