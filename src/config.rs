//! Service configuration: defaults < TOML file < `VCON_SCITT_*` env < flags.
//! Every default works out of the box on 127.0.0.1; `vcon-scitt config print`
//! shows the effective result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::statement::LeafRule;
use serde::{Deserialize, Serialize};

pub const DEFAULT_DATA_DIR: &str = "./vcon-scitt-data";
pub const DEFAULT_CONFIG_FILE: &str = "vcon-scitt.toml";

/// A configuration that cannot be used, and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{var}={value}: {reason}")]
    Env {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// How the server logs (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not a log format (human or json)")),
        }
    }
}

/// The algorithm of a service key generated on first start. Read with the
/// same names `--alg` takes (`es256`, `P-256`, `EdDSA`, any case); written
/// as `es256` / `ed25519`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum KeyAlg {
    #[default]
    Es256,
    Ed25519,
}

impl TryFrom<String> for KeyAlg {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.parse::<crate::keys::Alg>().map_err(|e| e.to_string())? {
            crate::keys::Alg::P256 => Ok(KeyAlg::Es256),
            crate::keys::Alg::Ed25519 => Ok(KeyAlg::Ed25519),
            other => Err(format!(
                "the service generates es256 or ed25519 keys, not {}",
                other.name()
            )),
        }
    }
}

/// Private key bytes that never print: `Debug` shows only that a key is
/// there, and serde skips the field that holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKeyBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKeyBytes(<{} bytes, redacted>)", self.0.len())
    }
}

impl From<KeyAlg> for crate::keys::Alg {
    fn from(a: KeyAlg) -> Self {
        match a {
            KeyAlg::Es256 => crate::keys::Alg::P256,
            KeyAlg::Ed25519 => crate::keys::Alg::Ed25519,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// RocksDB and keys live here.
    pub data_dir: PathBuf,
    /// `iss` of receipts: the public URL of this service (default
    /// `http://<listen>`).
    pub service_url: Option<String>,
    /// `sub` of receipts: the log's identity (default: service URL host + "/log").
    pub log_id: Option<String>,
    /// How a new log hashes its entries into Merkle leaves: `statement-sha256`
    /// (the default: the SCITT WG's vds-1 convention) or `entry`
    /// (@transmute/cose's). Fixed when the log is created and published in
    /// transparency-configuration; setting it to anything else for an
    /// existing log is refused at start (spec-notes/interop.md, "Leaf rules").
    pub leaf_rule: Option<LeafRule>,
    /// human | json
    pub log_format: LogFormat,
    /// Service signing key (PKCS#8). Default `<data_dir>/keys/service-key.pk8`,
    /// generated on first start. `VCON_SCITT_SERVICE_KEY` may hold the key
    /// itself (base64 PKCS#8) instead.
    pub key_file: Option<PathBuf>,
    /// The C2SP checkpoint-note key (Ed25519 PKCS#8). Default
    /// `<data_dir>/keys/checkpoint-ed25519.pk8`, generated on first start.
    /// Like the service key it is the log's identity: a writer restored on
    /// another machine needs both, so keep them off the data disk.
    pub checkpoint_key_file: Option<PathBuf>,
    /// The service key itself (PKCS#8 DER), from `VCON_SCITT_SERVICE_KEY`
    /// only: never read from or written to a file, never printed.
    #[serde(skip)]
    pub service_key_pkcs8: Option<SecretKeyBytes>,
    /// es256 | ed25519, for a generated key.
    pub key_alg: KeyAlg,
    pub registration: Registration,
    pub sequencer: Sequencer,
    pub limits: Limits,
    pub auth: Auth,
    pub rate_limit: RateLimit,
    /// Issuers whose statements may be registered (by kid).
    pub issuers: Vec<IssuerConfig>,
    /// X.509 trust anchors (PEM/DER files) for statements with x5chain.
    pub trust_anchors: Vec<PathBuf>,
    pub policy: crate::vcon::policy::PolicyConfig,
    /// Rollback guard: the latest published head, kept outside the RocksDB
    /// directory (default `<data_dir>/rollback-guard`; in production put it
    /// on another volume than the backups you might restore).
    pub rollback_guard: Option<PathBuf>,
    pub publish: Publish,
    pub replica: ReplicaSettings,
    pub fence: FenceSettings,
}

/// Publishing the log to object storage (`crate::publish`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publish {
    /// `s3://bucket[/prefix]`; unset = not published. Credentials and
    /// endpoint from the `AWS_*` variables (`AWS_ENDPOINT`,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP store, `AWS_ACCESS_KEY_ID`, …).
    pub bucket: Option<String>,
    /// Bound on each object-storage request (a retry or two included ×3).
    pub request_timeout_ms: u64,
    /// At most one publishing round per interval (the checkpoint in the
    /// bucket trails the log by about this much).
    pub interval_ms: u64,
}

impl Default for Publish {
    fn default() -> Self {
        Publish {
            bucket: None,
            request_timeout_ms: 10_000,
            interval_ms: 500,
        }
    }
}

/// Serving as a read replica of a published bucket (`crate::replica`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicaSettings {
    /// `s3://bucket[/prefix]` to follow; set = this server is a read
    /// replica (no key, no registrations). Its cache is
    /// `<data_dir>/replica`.
    pub of: Option<String>,
    /// How often the bucket's checkpoint is read.
    pub poll_ms: u64,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            of: None,
            poll_ms: 200,
        }
    }
}

/// The single-writer lease in etcd (`crate::fence`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FenceSettings {
    /// etcd endpoints (`http://host:port`); empty = no fencing. Needs
    /// `registration.durability = "replicated"` and a bucket.
    pub etcd: Vec<String>,
    /// The lease's time to live (etcd's minimum is 2 s): a writer that has
    /// not renewed it for this long, less a margin, stops acknowledging.
    pub ttl_secs: i64,
    /// This writer's name in the leader key (default: its public URL and
    /// process id).
    pub node: Option<String>,
}

impl Default for FenceSettings {
    fn default() -> Self {
        FenceSettings {
            etcd: Vec::new(),
            ttl_secs: 5,
            node: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registration {
    /// How long POST /entries waits for the durable signed head before 202.
    pub wait_ms: u64,
    /// The longest wait a client may ask for with RFC 7240 `Prefer: wait=N`
    /// (seconds); longer requests are capped to it.
    pub max_wait_ms: u64,
    /// Largest accepted statement (bytes); bigger bodies get 413.
    pub max_statement_bytes: usize,
    /// Retry-After (seconds) on 202, 204, 503.
    pub retry_after_secs: u64,
    /// What a 201 promises: `local` (fsync'd here and covered by a signed
    /// head) or `replicated` (also in the bucket `publish.bucket` names,
    /// under a checkpoint: the entry survives the loss of this machine).
    pub durability: Durability,
}

/// What a 201 promises (`registration.durability`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync'd on this machine and covered by a signed head.
    #[default]
    Local,
    /// Also published to the bucket and covered by its checkpoint.
    Replicated,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Durability::Local),
            "replicated" => Ok(Durability::Replicated),
            other => Err(format!(
                "{other:?} is not a durability (local or replicated)"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sequencer {
    pub max_batch: usize,
    pub max_delay_us: u64,
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_connections: usize,
    /// Time allowed to send the request head (slowloris guard).
    pub header_timeout_ms: u64,
    /// Time allowed to send the body.
    pub body_timeout_ms: u64,
    /// Largest request head (bytes).
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// SHA-256 (hex) of accepted bearer tokens for writes. Empty = writes
    /// are open (rate limiting then applies per client address).
    pub bearer_token_sha256: Vec<String>,
    /// SHA-256 (hex) of admin tokens (online backup). Empty = no admin API.
    pub admin_token_sha256: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained writes per second per token or client address; 0 = off.
    pub per_client_per_sec: f64,
    /// Burst allowance.
    pub burst: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub iss: String,
    /// Public keys (PEM, JWK/JWK Set, COSE_Key/COSE_KeySet files).
    pub keys: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            service_url: None,
            log_id: None,
            leaf_rule: None,
            log_format: LogFormat::Human,
            key_file: None,
            checkpoint_key_file: None,
            service_key_pkcs8: None,
            key_alg: KeyAlg::Es256,
            registration: Registration::default(),
            sequencer: Sequencer::default(),
            limits: Limits::default(),
            auth: Auth::default(),
            rate_limit: RateLimit::default(),
            issuers: Vec::new(),
            trust_anchors: Vec::new(),
            policy: Default::default(),
            rollback_guard: None,
            publish: Publish::default(),
            replica: ReplicaSettings::default(),
            fence: FenceSettings::default(),
        }
    }
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            wait_ms: 2000,
            max_wait_ms: 30_000,
            max_statement_bytes: crate::statement::DEFAULT_MAX_BYTES,
            retry_after_secs: 1,
            durability: Durability::Local,
        }
    }
}

impl Default for Sequencer {
    fn default() -> Self {
        let d = crate::log::LogConfig::default();
        Sequencer {
            max_batch: d.max_batch,
            max_delay_us: d.max_delay.as_micros() as u64,
            queue_capacity: d.queue_capacity,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout_ms: 5000,
            body_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_client_per_sec: 5000.0,
            burst: 10_000.0,
        }
    }
}

impl Config {
    /// Loads a TOML file; relative paths in it are taken relative to the file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !base.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        fix(&mut c.data_dir);
        if let Some(k) = c.key_file.as_mut() {
            fix(k);
        }
        if let Some(k) = c.checkpoint_key_file.as_mut() {
            fix(k);
        }
        for i in &mut c.issuers {
            i.keys.iter_mut().for_each(fix);
        }
        c.trust_anchors.iter_mut().for_each(fix);
        Ok(c)
    }

    /// Applies `VCON_SCITT_*` environment overrides: every variable the
    /// service reads is read here. The command line reads its own
    /// (`VCON_SCITT_CONFIG`, the client commands' URL and tokens) and
    /// tracing reads `VCON_SCITT_LOG`. A program that builds a [`Config`]
    /// itself must call this to honour the environment (`serve` does).
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_vars(|k| std::env::var(k).ok())
    }

    /// [`Config::apply_env`] over any variable source (tests pass a map).
    pub fn apply_vars(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(var: &'static str, v: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.parse().map_err(|e: T::Err| ConfigError::Env {
                var,
                reason: e.to_string(),
                value: v,
            })
        }
        if let Some(v) = get("VCON_SCITT_LISTEN") {
            self.listen = parse("VCON_SCITT_LISTEN", v)?;
        }
        if let Some(v) = get("VCON_SCITT_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("VCON_SCITT_SERVICE_URL") {
            self.service_url = Some(v);
        }
        if let Some(v) = get("VCON_SCITT_LOG_ID") {
            self.log_id = Some(v);
        }
        if let Some(v) = get("VCON_SCITT_LEAF_RULE") {
            self.leaf_rule = Some(parse("VCON_SCITT_LEAF_RULE", v)?);
        }
        if let Some(v) = get("VCON_SCITT_PUBLISH_TO") {
            self.publish.bucket = Some(v);
        }
        if let Some(v) = get("VCON_SCITT_ETCD") {
            self.fence.etcd = v
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = get("VCON_SCITT_DURABILITY") {
            self.registration.durability = parse("VCON_SCITT_DURABILITY", v)?;
        }
        if let Some(v) = get("VCON_SCITT_REPLICA_OF") {
            self.replica.of = Some(v);
        }
        if let Some(v) = get("VCON_SCITT_LOG_FORMAT") {
            self.log_format = parse("VCON_SCITT_LOG_FORMAT", v)?;
        }
        if let Some(v) = get("VCON_SCITT_KEY_FILE") {
            self.key_file = Some(v.into());
        }
        if let Some(v) = get("VCON_SCITT_CHECKPOINT_KEY_FILE") {
            self.checkpoint_key_file = Some(v.into());
        }
        if let Some(v) = get("VCON_SCITT_SERVICE_KEY") {
            let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v.trim())
                .map_err(|e| ConfigError::Env {
                    var: "VCON_SCITT_SERVICE_KEY",
                    value: "(hidden)".into(),
                    reason: format!("not base64 PKCS#8: {e}"),
                })?;
            self.service_key_pkcs8 = Some(SecretKeyBytes(der));
        }
        if let Some(v) = get("VCON_SCITT_WAIT_MS") {
            self.registration.wait_ms = parse("VCON_SCITT_WAIT_MS", v)?;
        }
        if let Some(v) = get("VCON_SCITT_MAX_DELAY_US") {
            self.sequencer.max_delay_us = parse("VCON_SCITT_MAX_DELAY_US", v)?;
        }
        if let Some(v) = get("VCON_SCITT_RATE_LIMIT") {
            self.rate_limit.per_client_per_sec = parse("VCON_SCITT_RATE_LIMIT", v)?;
        }
        Ok(())
    }

    pub fn service_url(&self) -> String {
        self.service_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// The leaf rule a log created now gets.
    pub fn new_log_leaf_rule(&self) -> LeafRule {
        self.leaf_rule.unwrap_or(LeafRule::StatementSha256)
    }

    pub fn log_id(&self) -> String {
        self.log_id.clone().unwrap_or_else(|| {
            let url = self.service_url();
            let host = url
                .split("://")
                .nth(1)
                .unwrap_or(&url)
                .trim_end_matches('/');
            format!("{host}/log")
        })
    }

    pub fn rollback_guard(&self) -> PathBuf {
        self.rollback_guard
            .clone()
            .unwrap_or_else(|| self.data_dir.join("rollback-guard"))
    }

    /// The service's public key set (every key it ever signed with).
    pub fn keyset_file(&self) -> PathBuf {
        Self::keyset_file_in(&self.data_dir)
    }

    /// Where a data dir keeps its public key set; offline tools (fsck,
    /// backup) know only the data dir.
    pub fn keyset_file_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys/scitt-keys.cbor")
    }

    /// The checkpoint vkey of the log a follower's store holds (a replica's
    /// cache, a restored data dir), pinned when it first followed it.
    pub fn checkpoint_pin_file_in(dir: &Path) -> PathBuf {
        dir.join("checkpoint-vkey")
    }

    /// The Ed25519 key that signs the C2SP checkpoint note (generated on
    /// first start; separate from the service key, which may be P-256).
    pub fn checkpoint_key_file(&self) -> PathBuf {
        self.checkpoint_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys/checkpoint-ed25519.pk8"))
    }

    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys/service-key.pk8"))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// A path in the repository (test keys for benches): relative to the current
/// directory, falling back to the source tree this binary was built from.
pub fn repo_path(p: &str) -> PathBuf {
    let local = PathBuf::from(p);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn environment_overrides_are_typed_and_name_the_variable_when_wrong() {
        let mut c = Config::default();
        c.apply_vars(vars(&[
            ("VCON_SCITT_LOG_FORMAT", "json"),
            ("VCON_SCITT_WAIT_MS", "5"),
            ("VCON_SCITT_SERVICE_KEY", "AAEC"),
        ]))
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.registration.wait_ms, 5);
        assert_eq!(c.service_key_pkcs8, Some(SecretKeyBytes(vec![0, 1, 2])));
        let e = Config::default()
            .apply_vars(vars(&[("VCON_SCITT_WAIT_MS", "soon")]))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("VCON_SCITT_WAIT_MS=soon: "),
            "{e}"
        );
        let e = Config::default()
            .apply_vars(vars(&[("VCON_SCITT_SERVICE_KEY", "secret!!")]))
            .unwrap_err();
        assert!(
            !e.to_string().contains("secret"),
            "the key never appears: {e}"
        );
    }

    #[test]
    fn the_service_key_from_the_environment_is_never_printed() {
        let c = Config {
            service_key_pkcs8: Some(SecretKeyBytes(vec![0x30, 0x82, 0x7e])),
            ..Config::default()
        };
        let debug = format!("{c:?}");
        assert!(debug.contains("<3 bytes, redacted>"), "{debug}");
        assert!(!debug.contains("130") && !debug.contains("126"), "{debug}");
        let toml = c.to_toml();
        assert!(!toml.contains("service_key_pkcs8"), "{toml}");
        assert!(toml.contains("log_format = \"human\""), "{toml}");
        assert!(toml.contains("key_alg = \"es256\""), "{toml}");
    }

    #[test]
    fn key_algorithm_names_are_those_of_the_alg_flag() {
        for (name, want) in [
            ("es256", KeyAlg::Es256),
            ("P-256", KeyAlg::Es256),
            ("EdDSA", KeyAlg::Ed25519),
        ] {
            let c: Config = toml::from_str(&format!("key_alg = \"{name}\"")).unwrap();
            assert_eq!(c.key_alg, want, "{name}");
        }
        assert!(toml::from_str::<Config>("key_alg = \"rsa\"").is_err());
        let c: Config = toml::from_str("log_format = \"JSON\"").unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(toml::from_str::<Config>("log_format = \"xml\"").is_err());
    }
}
