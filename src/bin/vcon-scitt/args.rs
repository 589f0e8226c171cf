//! The command-line schema of `vcon-scitt` (clap) and how flags layer over
//! the configuration file and environment.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use vcon_scitt::config::{Config, DEFAULT_CONFIG_FILE, DEFAULT_DATA_DIR, LogFormat};
use vcon_scitt_core::keys::Alg;
use vcon_scitt_core::vcon::profile::Event;

/// Where the client commands look for the service unless told otherwise.
const DEFAULT_URL: &str = "http://127.0.0.1:8000";

#[derive(Parser, Debug)]
#[command(
    name = "vcon-scitt",
    version,
    about = "A SCITT transparency service for the vCon lifecycle"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a signing key (PKCS#8, written 0600) and print its kid.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
        /// es256 (P-256, default) or ed25519.
        #[arg(long, default_value = "es256")]
        alg: Alg,
        /// Also write the public key as a COSE_KeySet here.
        #[arg(long)]
        public_out: Option<PathBuf>,
    },
    /// Check every stored leaf, tile and tree head of a data dir (read-only).
    Fsck {
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Check a published bucket (s3://bucket[/prefix]) instead of a data
        /// dir: the checkpoint note, every head signature, the tree rebuilt
        /// from the statements, every hash tile and entry bundle against it.
        /// Endpoint and credentials from the AWS_* variables.
        #[arg(long, value_name = "S3_URL")]
        bucket: Option<String>,
        /// Service key set (COSE_KeySet) to verify head signatures with;
        /// defaults to the data dir's own public keys.
        #[arg(long)]
        keys: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Verify a registration offline (same as the vcon-verify binary).
    Verify(vcon_verify::Args),
    /// Run the transparency service.
    Serve(ServeArgs),
    /// Show the effective configuration (defaults < file < env < flags).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Register a Signed Statement; writes FILE.receipt and
    /// FILE.transparent.cose next to it.
    Register {
        file: PathBuf,
        #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Bearer token for writes.
        #[arg(long, env = "VCON_SCITT_TOKEN")]
        token: Option<String>,
        /// Give up waiting for the receipt after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Fetch the receipt of an entry.
    Receipt {
        entry_id: String,
        #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// A fresh receipt at the latest tree head instead of the stable one.
        #[arg(long)]
        fresh: bool,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Build and sign statements (issuer side).
    Statement {
        #[command(subcommand)]
        action: StatementAction,
    },
    /// Audit one vCon: verify every statement, receipt and issuer signature
    /// offline, prove the receipts consistent, recompute the consent state.
    Audit {
        /// The vCon uuid.
        #[arg(long)]
        vcon: String,
        #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Pinned service keys (COSE_KeySet/COSE_Key/PEM/JWK); default: fetch.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Issuer public keys to check statements with (repeatable); default:
        /// those published in the registered policy entry.
        #[arg(long = "issuer-key")]
        issuer_keys: Vec<PathBuf>,
        /// Consent state as of this time (RFC 3339).
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Follow a service from its signed checkpoints and statement bundles:
    /// recompute the Merkle tree, every map root and the lifecycle rules,
    /// report each finding with its leaf index (JSON lines on stdout), and
    /// resume from --state on the next run. Exit 0: no finding; 3: the log
    /// contradicts itself (the service misbehaved); 4: lifecycle findings
    /// only (issuers' conduct).
    Monitor {
        #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
        url: String,
        /// Where the monitor keeps its position and the vCon states.
        #[arg(long, default_value = "vcon-scitt-monitor")]
        state: PathBuf,
        /// Pinned service keys; default: fetched on the first run, then
        /// pinned in the state.
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Poll the checkpoint this many times, then stop (0: follow until
        /// interrupted).
        #[arg(long, default_value_t = 1)]
        rounds: u64,
        /// Seconds between polls.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// The final report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load-test a running server (loopback), or grow a data dir (`--fill`).
    Bench(BenchArgs),
    /// Rotate the service key (server stopped): the old private key moves to
    /// <data_dir>/keys/retired/<kid>.pk8, a new one takes its place, and the
    /// public key set keeps both, so old receipts stay verifiable.
    RotateKey {
        /// es256 or ed25519 for the new key.
        #[arg(long, default_value = "es256")]
        alg: Alg,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// Back up a data dir: online through a running server (`--url`, admin
    /// token), or offline (`--data-dir`, server stopped) into `--out`.
    Backup {
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "VCON_SCITT_ADMIN_TOKEN")]
        token: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Restore a backup into a data dir whose db/ does not exist. The data
    /// dir's rollback guard then refuses to start if the backup is older
    /// than a head this data dir already published. With `--from
    /// s3://bucket[/prefix]` (or file:///dir), rebuild the data dir from the
    /// published log instead, verifying everything as a replica does.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Save the service's COSE_KeySet for offline verification.
    Keys {
        #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
        url: String,
        #[arg(long, default_value = "scitt-keys.cbor")]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum StatementAction {
    /// Build and sign a vCon lifecycle statement from a vCon file (the hash
    /// is computed from the file's exact bytes).
    Create(CreateArgs),
    /// Sign any payload file as a Signed Statement (COSE_Sign1, tag 18).
    Sign {
        /// The payload file.
        payload: PathBuf,
        /// Issuer private key (PKCS#8 DER or PEM).
        #[arg(long)]
        key: PathBuf,
        /// CWT iss (a URI).
        #[arg(long)]
        iss: String,
        /// CWT sub.
        #[arg(long)]
        sub: String,
        /// Content type (label 3).
        #[arg(long, default_value = "application/json")]
        content_type: String,
        /// Output file (default PAYLOAD.cose).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct CreateArgs {
    /// The vCon file.
    #[arg(long)]
    pub vcon: PathBuf,
    /// vcon_created, vcon_consent_revoked, ... (aliases accepted).
    #[arg(long, value_parser = parse_event)]
    pub event: Event,
    /// Issuer private key (PKCS#8 DER or PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Issuer URI (CWT iss).
    #[arg(long)]
    pub iss: String,
    /// The vCon uuid when the file does not show it (signed/encrypted forms).
    #[arg(long)]
    pub uuid: Option<String>,
    /// When it happened (RFC 3339; default now).
    #[arg(long)]
    pub occurred_at: Option<String>,
    /// Consent purpose granted or revoked (repeatable).
    #[arg(long = "purpose")]
    pub purposes: Vec<String>,
    /// The other organisation (URI) for vcon_sent / vcon_received.
    #[arg(long)]
    pub counterparty: Option<String>,
    /// For vcon_redacted: the uuid it derives from (default: the file's
    /// `redacted`/`amended` object).
    #[arg(long)]
    pub derived_from: Option<String>,
    /// Reason (consent revocation, deletion).
    #[arg(long)]
    pub reason: Option<String>,
    /// Entry id of the statement this one supersedes (consent).
    #[arg(long)]
    pub supersedes: Option<String>,
    /// Build the hash-registration form instead: a hash envelope (258/259)
    /// whose payload is the SHA-512 of the vCon's bytes.
    #[arg(long)]
    pub hash_envelope: bool,
    /// Output file (default VCON.<event>.cose).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, env = "VCON_SCITT_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds to run (default 10, unless --count).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Statements to send.
    #[arg(long)]
    pub count: Option<usize>,
    /// Pace to this many registrations/s in total (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Issuer signing mix (the test issuers in keys/).
    #[arg(long, value_enum, default_value_t = IssuerMix::Both)]
    pub issuers: IssuerMix,
    /// Receipts verified offline at the end (a sample).
    #[arg(long, default_value_t = 50)]
    pub verify_sample: usize,
    #[arg(long)]
    pub json: bool,
    /// Instead of load: append this many synthetic entries to the data dir
    /// of the given config (server stopped), through the real sequencer.
    #[arg(long)]
    pub fill: Option<u64>,
    /// With --fill: the entries are real lifecycle statements about this
    /// many vCons (through the vCon map), and the run then measures map
    /// proofs and proof bundles over a sample of them (JSON).
    #[arg(long, requires = "fill")]
    pub vcons: Option<u64>,
    /// With --vcons: how many vCons to measure proofs for.
    #[arg(long, default_value_t = 200)]
    pub sample: usize,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Print the effective configuration as TOML.
    Print(ServeArgs),
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (default ./vcon-scitt.toml if it exists).
    #[arg(long, env = "VCON_SCITT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address (e.g. 127.0.0.1:8000; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Public URL of the service (receipts' iss).
    #[arg(long)]
    pub service_url: Option<String>,
    /// human | json
    #[arg(long)]
    pub log_format: Option<LogFormat>,
    /// Leaf rule of a log created by this start: statement-sha256 (default)
    /// or entry. An existing log keeps the rule it was created with.
    #[arg(long, value_parser = parse_leaf_rule)]
    pub leaf_rule: Option<vcon_scitt::statement::LeafRule>,
    /// Registration wait budget before answering 202 (ms).
    #[arg(long)]
    pub wait_ms: Option<u64>,
    /// Publish the log to object storage: s3://bucket[/prefix] (endpoint
    /// and credentials from AWS_ENDPOINT, AWS_ALLOW_HTTP,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "S3_URL")]
    pub publish_to: Option<String>,
    /// What a 201 promises: local (fsync'd and signed here) or replicated
    /// (also in the --publish-to bucket under its checkpoint).
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Hold the log's single-writer lease in etcd (comma-separated
    /// endpoints, http://host:port): the checkpoint advances only by
    /// compare-and-swap under it. Needs --durability replicated.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// The lease's time to live in seconds (etcd's minimum is 2).
    #[arg(long)]
    pub lease_ttl: Option<i64>,
    /// Stand by for a fenced writer: serve as a read replica of its bucket
    /// (cache in the data dir's own store) until the log's lease in etcd is
    /// free, then take over as the writer on the same address. Needs
    /// --etcd, --publish-to and --durability replicated, and the log's keys.
    #[arg(long)]
    pub standby: bool,
    /// Serve as a read replica of the log published at s3://bucket[/prefix]:
    /// no key, no registrations (POST answers 421), cache in
    /// <data-dir>/replica.
    #[arg(long, value_name = "S3_URL", conflicts_with = "publish_to")]
    pub replica_of: Option<String>,
}

/// `--durability` (config `registration.durability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Local,
    Replicated,
}

/// Which test issuers sign the load generator's statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IssuerMix {
    Es256,
    Ed25519,
    Both,
}

fn parse_leaf_rule(s: &str) -> Result<vcon_scitt::statement::LeafRule, String> {
    s.parse()
        .map_err(|e: vcon_scitt::statement::UnknownLeafRule| e.to_string())
}

fn parse_event(s: &str) -> Result<Event, String> {
    Event::parse(s).ok_or_else(|| format!("{s:?} is not a lifecycle event"))
}

impl CreateArgs {
    /// The client library's statement spec for these flags.
    pub fn spec(&self) -> vcon_scitt_client::statement::StatementSpec {
        vcon_scitt_client::statement::StatementSpec {
            vcon: self.vcon.clone(),
            event: self.event,
            key: self.key.clone(),
            iss: self.iss.clone(),
            uuid: self.uuid.clone(),
            occurred_at: self.occurred_at.clone(),
            purposes: self.purposes.clone(),
            counterparty: self.counterparty.clone(),
            derived_from: self.derived_from.clone(),
            reason: self.reason.clone(),
            supersedes: self.supersedes.clone(),
            hash_envelope: self.hash_envelope,
            out: self.out.clone(),
        }
    }
}

/// defaults < file < env < flags.
pub fn effective_config(a: &ServeArgs) -> anyhow::Result<Config> {
    let mut c = match &a.config {
        Some(p) => Config::from_file(p)?,
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            Config::from_file(Path::new(DEFAULT_CONFIG_FILE))?
        }
        None => Config::default(),
    };
    c.apply_env()?;
    if let Some(v) = a.listen {
        c.listen = v;
    }
    if let Some(v) = &a.data_dir {
        c.data_dir = v.clone();
    }
    if let Some(v) = &a.service_url {
        c.service_url = Some(v.clone());
    }
    if let Some(v) = a.log_format {
        c.log_format = v;
    }
    if let Some(v) = a.leaf_rule {
        c.leaf_rule = Some(v);
    }
    if let Some(v) = a.wait_ms {
        c.registration.wait_ms = v;
    }
    if let Some(v) = &a.publish_to {
        c.publish.bucket = Some(v.clone());
    }
    if let Some(v) = &a.replica_of {
        c.replica.of = Some(v.clone());
    }
    if !a.etcd.is_empty() {
        c.fence.etcd = a.etcd.clone();
    }
    if let Some(v) = a.lease_ttl {
        c.fence.ttl_secs = v;
    }
    if let Some(v) = a.durability {
        c.registration.durability = match v {
            DurabilityArg::Local => vcon_scitt::config::Durability::Local,
            DurabilityArg::Replicated => vcon_scitt::config::Durability::Replicated,
        };
    }
    Ok(c)
}
