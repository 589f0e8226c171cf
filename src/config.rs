//! Service configuration: defaults < TOML file < `VCON_SCITT_*` env < flags.
//! Every default works out of the box on 127.0.0.1; `vcon-scitt config print`
//! shows the effective result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_DATA_DIR: &str = "./vcon-scitt-data";
pub const DEFAULT_CONFIG_FILE: &str = "vcon-scitt.toml";

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
    /// human | json
    pub log_format: String,
    /// Service signing key (PKCS#8). Default `<data_dir>/keys/service-key.pk8`,
    /// generated on first start. `VCON_SCITT_SERVICE_KEY` may hold the key
    /// itself (base64 PKCS#8) instead.
    pub key_file: Option<PathBuf>,
    /// es256 | ed25519, for a generated key.
    pub key_alg: String,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registration {
    /// How long POST /entries waits for the durable signed head before 202.
    pub wait_ms: u64,
    /// Largest accepted statement (bytes); bigger bodies get 413.
    pub max_statement_bytes: usize,
    /// Retry-After (seconds) on 202, 204, 503.
    pub retry_after_secs: u64,
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
            log_format: "human".into(),
            key_file: None,
            key_alg: "es256".into(),
            registration: Registration::default(),
            sequencer: Sequencer::default(),
            limits: Limits::default(),
            auth: Auth::default(),
            rate_limit: RateLimit::default(),
            issuers: Vec::new(),
            trust_anchors: Vec::new(),
            policy: Default::default(),
            rollback_guard: None,
        }
    }
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            wait_ms: 2000,
            max_statement_bytes: crate::statement::DEFAULT_MAX_BYTES,
            retry_after_secs: 1,
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
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut c: Config =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
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
        for i in &mut c.issuers {
            i.keys.iter_mut().for_each(fix);
        }
        c.trust_anchors.iter_mut().for_each(fix);
        Ok(c)
    }

    /// Applies `VCON_SCITT_*` environment overrides.
    pub fn apply_env(&mut self) -> Result<(), String> {
        let get = |k: &str| std::env::var(format!("VCON_SCITT_{k}")).ok();
        if let Some(v) = get("LISTEN") {
            self.listen = v
                .parse()
                .map_err(|e| format!("VCON_SCITT_LISTEN={v}: {e}"))?;
        }
        if let Some(v) = get("DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("SERVICE_URL") {
            self.service_url = Some(v);
        }
        if let Some(v) = get("LOG_ID") {
            self.log_id = Some(v);
        }
        if let Some(v) = get("LOG_FORMAT") {
            self.log_format = v;
        }
        if let Some(v) = get("KEY_FILE") {
            self.key_file = Some(v.into());
        }
        if let Some(v) = get("WAIT_MS") {
            self.registration.wait_ms = v
                .parse()
                .map_err(|e| format!("VCON_SCITT_WAIT_MS={v}: {e}"))?;
        }
        if let Some(v) = get("MAX_DELAY_US") {
            self.sequencer.max_delay_us = v
                .parse()
                .map_err(|e| format!("VCON_SCITT_MAX_DELAY_US={v}: {e}"))?;
        }
        if let Some(v) = get("RATE_LIMIT") {
            self.rate_limit.per_client_per_sec = v
                .parse()
                .map_err(|e| format!("VCON_SCITT_RATE_LIMIT={v}: {e}"))?;
        }
        Ok(())
    }

    pub fn service_url(&self) -> String {
        self.service_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
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
