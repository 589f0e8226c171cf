//! Command line of the `vcon-scitt` binary.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::keys::{Alg, SigningKey, write_private_key};

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
        alg: String,
        /// Also write the public key as a COSE_KeySet here.
        #[arg(long)]
        public_out: Option<PathBuf>,
    },
    /// Check every stored leaf, tile and tree head of a data dir (read-only).
    Fsck {
        #[arg(long, default_value = crate::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
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
        #[arg(long, env = "VCON_SCITT_URL", default_value = "http://127.0.0.1:8000")]
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
        #[arg(long, env = "VCON_SCITT_URL", default_value = "http://127.0.0.1:8000")]
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
        #[arg(long, env = "VCON_SCITT_URL", default_value = "http://127.0.0.1:8000")]
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
    /// Load-test a running server (loopback), or grow a data dir (`--fill`).
    Bench(BenchArgs),
    /// Rotate the service key (server stopped): the old private key moves to
    /// <data_dir>/keys/retired/<kid>.pk8, a new one takes its place, and the
    /// public key set keeps both, so old receipts stay verifiable.
    RotateKey {
        /// es256 or ed25519 for the new key.
        #[arg(long, default_value = "es256")]
        alg: String,
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
    /// than a head this data dir already published.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long, default_value = crate::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Save the service's COSE_KeySet for offline verification.
    Keys {
        #[arg(long, env = "VCON_SCITT_URL", default_value = "http://127.0.0.1:8000")]
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
    #[arg(long)]
    pub event: String,
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
    #[arg(long, env = "VCON_SCITT_URL", default_value = "http://127.0.0.1:8000")]
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
    /// Issuer signing mix: es256, ed25519 or both (the test issuers in keys/).
    #[arg(long, default_value = "both")]
    pub issuers: String,
    /// Receipts verified offline at the end (a sample).
    #[arg(long, default_value_t = 50)]
    pub verify_sample: usize,
    #[arg(long)]
    pub json: bool,
    /// Instead of load: append this many synthetic entries to the data dir
    /// of the given config (server stopped), through the real sequencer.
    #[arg(long)]
    pub fill: Option<u64>,
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
    pub log_format: Option<String>,
    /// Registration wait budget before answering 202 (ms).
    #[arg(long)]
    pub wait_ms: Option<u64>,
}

/// defaults < file < env < flags.
pub fn effective_config(a: &ServeArgs) -> Result<crate::config::Config, String> {
    use crate::config::{Config, DEFAULT_CONFIG_FILE};
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
    if let Some(v) = &a.log_format {
        c.log_format = v.clone();
    }
    if let Some(v) = a.wait_ms {
        c.registration.wait_ms = v;
    }
    Ok(c)
}

pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<i32, String> {
    match cli.command {
        Command::Keygen {
            out,
            alg,
            public_out,
        } => {
            let alg = alg.parse::<Alg>().map_err(|e| e.to_string())?;
            let (key, pkcs8) = SigningKey::generate(alg).map_err(|e| e.to_string())?;
            write_private_key(&out, &pkcs8).map_err(|e| e.to_string())?;
            if let Some(p) = public_out {
                let mut ks = crate::keys::KeySet::new();
                ks.insert(key.public(), None);
                std::fs::write(&p, ks.to_cose_keyset())
                    .map_err(|e| format!("{}: {e}", p.display()))?;
            }
            println!(
                "wrote {} ({}, kid {})",
                out.display(),
                alg.name(),
                hex::encode(key.kid())
            );
            Ok(0)
        }
        Command::Fsck {
            data_dir,
            keys,
            json,
        } => fsck(&data_dir, keys.as_deref(), json),
        Command::Verify(args) => Ok(vcon_verify::run(&args)),
        Command::Serve(args) => serve(&args),
        Command::Config {
            action: ConfigAction::Print(args),
        } => {
            print!("{}", effective_config(&args)?.to_toml());
            Ok(0)
        }
        Command::Register {
            file,
            url,
            token,
            timeout,
        } => {
            let statement = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let rt = runtime()?;
            let (location, receipt) = rt.block_on(crate::client::register_and_wait(
                &url,
                token,
                statement.clone(),
                std::time::Duration::from_secs(timeout),
            ))?;
            let receipt_path = with_suffix(&file, "receipt");
            std::fs::write(&receipt_path, &receipt)
                .map_err(|e| format!("{}: {e}", receipt_path.display()))?;
            let ts = crate::statement::transparent_statement(&statement, &[receipt])
                .map_err(|e| e.to_string())?;
            let ts_path = with_suffix(&file, "transparent.cose");
            std::fs::write(&ts_path, ts).map_err(|e| format!("{}: {e}", ts_path.display()))?;
            println!(
                "registered: {url}{location}\nreceipt: {}\ntransparent statement: {}",
                receipt_path.display(),
                ts_path.display()
            );
            Ok(0)
        }
        Command::Receipt {
            entry_id,
            url,
            fresh,
            out,
        } => {
            let rt = runtime()?;
            let path = format!(
                "/entries/{entry_id}{}",
                if fresh { "?fresh=true" } else { "" }
            );
            let r = rt.block_on(crate::client::get(&url, &path))?;
            match r.status {
                200 => {
                    let out = out.unwrap_or_else(|| PathBuf::from(format!("{entry_id}.receipt")));
                    std::fs::write(&out, &r.body).map_err(|e| format!("{}: {e}", out.display()))?;
                    println!("wrote {}", out.display());
                    Ok(0)
                }
                204 => {
                    println!(
                        "pending: the entry is being registered; retry after {}s",
                        r.header("retry-after").unwrap_or("1")
                    );
                    Ok(3)
                }
                _ => Err(crate::client::describe(&r)),
            }
        }
        Command::Statement {
            action:
                StatementAction::Sign {
                    payload,
                    key,
                    iss,
                    sub,
                    content_type,
                    out,
                },
        } => {
            let key_bytes = std::fs::read(&key).map_err(|e| format!("{}: {e}", key.display()))?;
            let key = SigningKey::from_pkcs8_any(&key_bytes)
                .map_err(|e| format!("{}: {e}", key.display()))?;
            let body =
                std::fs::read(&payload).map_err(|e| format!("{}: {e}", payload.display()))?;
            let mut b = crate::statement::Builder::new(&key, &iss, &sub);
            b.content_type = Some(content_type);
            b.issued_at = Some(crate::time::now_secs());
            let st = b.sign(&body)?;
            let out = out.unwrap_or_else(|| with_suffix(&payload, "cose"));
            std::fs::write(&out, &st).map_err(|e| format!("{}: {e}", out.display()))?;
            let leaf = crate::merkle::leaf_hash(
                &crate::statement::SignedStatement::parse(&st, usize::MAX)
                    .map_err(|e| e.to_string())?
                    .entry_bytes(),
            );
            println!("wrote {} (entry id {})", out.display(), hex::encode(leaf));
            Ok(0)
        }
        Command::Statement {
            action: StatementAction::Create(a),
        } => {
            let (out, entry_id) = create_statement(&a)?;
            println!("wrote {} (entry id {entry_id})", out.display());
            Ok(0)
        }
        Command::Audit {
            vcon,
            url,
            keys,
            issuer_keys,
            as_of,
            json,
        } => {
            let uuid = crate::vcon::profile::normalize_uuid(&vcon)
                .ok_or_else(|| format!("{vcon:?} is not a uuid"))?;
            let keys = keys.as_deref().map(read_keyset).transpose()?;
            let issuer_keys = issuer_keys
                .iter()
                .map(|p| read_keyset(p))
                .collect::<Result<Vec<_>, _>>()?;
            let as_of_ms = match as_of {
                None => None,
                Some(t) => Some(
                    crate::time::parse_rfc3339_ms(&t)
                        .ok_or_else(|| format!("--as-of {t:?} is not RFC 3339"))?,
                ),
            };
            let opts = crate::audit::AuditOptions {
                url,
                uuid,
                keys,
                issuer_keys,
                as_of_ms,
            };
            let report = runtime()?.block_on(crate::audit::run(&opts))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", crate::audit::render(&report));
            }
            Ok(if report.verified { 0 } else { 1 })
        }
        Command::Bench(b) => bench(&b),
        Command::Backup {
            url,
            token,
            data_dir,
            out,
        } => backup(url, token, data_dir, out),
        Command::Restore { from, data_dir } => restore(&from, &data_dir),
        Command::RotateKey { alg, serve } => rotate_key(&effective_config(&serve)?, &alg),
        Command::Keys { url, out } => {
            let rt = runtime()?;
            let r = rt.block_on(crate::client::get(&url, "/.well-known/scitt-keys"))?;
            if r.status != 200 {
                return Err(crate::client::describe(&r));
            }
            let ks = crate::keys::KeySet::parse_any(&r.body)
                .map_err(|e| format!("the key set does not parse: {e}"))?;
            std::fs::write(&out, &r.body).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("wrote {} ({} key(s))", out.display(), ks.keys.len());
            Ok(0)
        }
    }
}

fn fsck(data_dir: &Path, keys: Option<&Path>, json: bool) -> Result<i32, String> {
    let store =
        crate::log::Store::open_read_only(&data_dir.join("db")).map_err(|e| e.to_string())?;
    let keyset_path = keys
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join("keys/scitt-keys.cbor"));
    let verifier = match std::fs::read(&keyset_path) {
        Ok(b) => {
            let ks = crate::keys::KeySet::parse_any(&b)
                .map_err(|e| format!("{}: {e}", keyset_path.display()))?;
            Some(KeysetVerifier(ks))
        }
        Err(_) => None,
    };
    let result = crate::log::fsck(
        &store,
        verifier
            .as_ref()
            .map(|v| v as &dyn crate::tree_head::TreeHeadSigner),
    );
    match result {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "report": report, "signatures_checked": verifier.is_some(), "storage": store.cf_sizes().unwrap_or_default()})
                );
            } else {
                println!(
                    "fsck OK: {} entries, {} tiles, {} signed heads (latest size {}){}",
                    report.entries,
                    report.tiles,
                    report.heads,
                    report.latest_head_size,
                    if verifier.is_some() {
                        ", every head signature verified"
                    } else {
                        ", head signatures NOT checked (no key set)"
                    }
                );
                if let Ok(sizes) = store.cf_sizes() {
                    let n = report.entries.max(1) as f64;
                    println!("storage by column family (SST + memtable), per entry:");
                    for c in sizes {
                        let b = c.sst_bytes + c.memtable_bytes;
                        println!(
                            "  {:<8} {:>14} bytes  {:>9.1} B/entry  (~{} keys)",
                            c.name,
                            b,
                            b as f64 / n,
                            c.estimated_keys
                        );
                    }
                }
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            } else {
                println!("fsck FAILED: {e}");
            }
            Ok(1)
        }
    }
}

/// Verifies head signatures against a key set (fsck has no private key).
struct KeysetVerifier(crate::keys::KeySet);

impl crate::tree_head::TreeHeadSigner for KeysetVerifier {
    fn sign(&self, _: &crate::tree_head::TreeHead) -> Result<Vec<u8>, String> {
        Err("fsck never signs".into())
    }
    fn verify(&self, head: &crate::tree_head::TreeHead, sig: &[u8]) -> Result<(), String> {
        crate::receipt::verify_tree_head(sig, head, &self.0)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VCON_SCITT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn serve(args: &ServeArgs) -> Result<i32, String> {
    let config = effective_config(args)?;
    init_tracing(&config.log_format);
    let rt = runtime()?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(());
        });
        let running = crate::http::start(config, Some(rx)).await?;
        let svc = &running.service;
        let url = running.url();
        let data_dir = svc.config.data_dir.display().to_string();
        println!("vcon-scitt listening on {url}");
        println!("  data dir:      {data_dir} (RocksDB in {data_dir}/db)");
        println!(
            "  service key:   {} (kid {})",
            svc.config.key_file().display(),
            hex::encode(&svc.current_kid)
        );
        println!(
            "  public keys:   {data_dir}/keys/scitt-keys.cbor, or GET {url}/.well-known/scitt-keys"
        );
        println!("  tree size:     {}", svc.log.latest().head.size);
        println!(
            "  issuers:       {} registered, {} trust anchor(s)",
            svc.trust.registry.len(),
            svc.trust.anchors.len()
        );
        println!("  try:           curl -s {url}/healthz");
        tracing::info!(%url, "serving");
        running.wait().await.map_err(|e| e.to_string())?;
        tracing::info!("stopped cleanly");
        Ok(0)
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `statement create`: returns the output path and the entry id.
pub fn create_statement(a: &CreateArgs) -> Result<(PathBuf, String), String> {
    use crate::vcon::profile::{
        DerivedFrom, Event, EventInput, describe_vcon, event_document, normalize_uuid,
    };
    let bytes = std::fs::read(&a.vcon).map_err(|e| format!("{}: {e}", a.vcon.display()))?;
    let event =
        Event::parse(&a.event).ok_or_else(|| format!("{:?} is not a lifecycle event", a.event))?;
    let (file_uuid, file_derived) = describe_vcon(&bytes);
    let uuid = match &a.uuid {
        Some(u) => normalize_uuid(u).ok_or_else(|| format!("--uuid {u:?} is not a uuid"))?,
        None => file_uuid.ok_or("the vCon file shows no uuid; pass --uuid")?,
    };
    let key_bytes = std::fs::read(&a.key).map_err(|e| format!("{}: {e}", a.key.display()))?;
    let key =
        SigningKey::from_pkcs8_any(&key_bytes).map_err(|e| format!("{}: {e}", a.key.display()))?;
    let mut b = crate::statement::Builder::new(&key, &a.iss, &format!("vcon://{uuid}"));
    b.issued_at = Some(crate::time::now_secs());
    let hash_alg = crate::vcon::HashAlg::Sha512;
    let payload = if a.hash_envelope {
        b.hash_envelope = Some((
            hash_alg.cose_id(),
            crate::vcon::profile::VCON_MEDIA_TYPE.into(),
        ));
        if event != Event::Created {
            use ciborium::value::Value;
            b.extra.push((
                crate::statement::LEGACY_META_MAP,
                Value::Map(vec![(
                    Value::Text("vcon_operation".into()),
                    Value::Text(event.name().into()),
                )]),
            ));
        }
        hash_alg.digest(&bytes)
    } else {
        b.content_type = Some(crate::vcon::profile::LIFECYCLE_CONTENT_TYPE.into());
        let derived_from = match &a.derived_from {
            Some(u) => Some(DerivedFrom {
                relation: if event == Event::Redacted {
                    "redacted".into()
                } else {
                    "amended".into()
                },
                uuid: normalize_uuid(u)
                    .ok_or_else(|| format!("--derived-from {u:?} is not a uuid"))?,
                content_hash: None,
            }),
            None if matches!(event, Event::Redacted | Event::Enhanced) => file_derived,
            None => None,
        };
        let doc = event_document(&EventInput {
            event: Some(event),
            vcon_uuid: uuid.clone(),
            vcon_hash: Some(crate::vcon::content_hash(hash_alg, &bytes)),
            occurred_at: a.occurred_at.clone(),
            purposes: a.purposes.clone(),
            counterparty: a.counterparty.clone(),
            derived_from,
            reason: a.reason.clone(),
            supersedes: a.supersedes.clone(),
        });
        serde_json::to_vec(&doc).map_err(|e| e.to_string())?
    };
    let st = b.sign(&payload)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| with_suffix(&a.vcon, &format!("{}.cose", event.name())));
    std::fs::write(&out, &st).map_err(|e| format!("{}: {e}", out.display()))?;
    let parsed =
        crate::statement::SignedStatement::parse(&st, usize::MAX).map_err(|e| e.to_string())?;
    Ok((out, hex::encode(parsed.leaf_hash())))
}

fn bench(b: &BenchArgs) -> Result<i32, String> {
    if let Some(n) = b.fill {
        let config = effective_config(&b.serve)?;
        let (size, rate) = crate::bench::fill(&config, n)?;
        println!("appended {n} entries ({rate:.0}/s); tree size now {size}");
        return Ok(0);
    }
    let load = |p: &str| -> Result<SigningKey, String> {
        let path = crate::config::repo_path(p);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("{}: {e} (run from the repository root)", path.display()))?;
        SigningKey::from_pkcs8_any(&bytes).map_err(|e| e.to_string())
    };
    let mut issuers = Vec::new();
    if matches!(b.issuers.as_str(), "es256" | "both") {
        issuers.push((
            load("keys/test-issuer-es256.pk8")?,
            "https://conserver.test.example".to_string(),
        ));
    }
    if matches!(b.issuers.as_str(), "ed25519" | "both") {
        issuers.push((
            load("keys/test-issuer-ed25519.pk8")?,
            "https://partner.test.example".to_string(),
        ));
    }
    if issuers.is_empty() {
        return Err("--issuers is es256, ed25519 or both".into());
    }
    let opts = crate::bench::BenchOptions {
        url: b.url.clone(),
        connections: b.connections.max(1),
        duration: match (b.duration, b.count) {
            (Some(d), _) => Some(std::time::Duration::from_secs_f64(d)),
            (None, Some(_)) => None,
            (None, None) => Some(std::time::Duration::from_secs(10)),
        },
        count: b.count,
        rate: b.rate,
        issuers,
        verify_sample: b.verify_sample,
        quiet: b.json,
    };
    // One thread drives every connection: the generator shares the cores
    // with the server, and a single event loop costs it the least CPU per
    // request (no work stealing or cross-thread wake-ups).
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(crate::bench::run(opts))?;
    if b.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", crate::bench::render(&report));
    }
    Ok(0)
}

fn rotate_key(config: &crate::config::Config, alg: &str) -> Result<i32, String> {
    let key_path = config.key_file();
    let old_bytes = std::fs::read(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let old = SigningKey::from_pkcs8_any(&old_bytes)
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let keys_dir = config.data_dir.join("keys");
    let retired = keys_dir
        .join("retired")
        .join(format!("{}.pk8", hex::encode(old.kid())));
    if !retired.exists() {
        write_private_key(&retired, &old_bytes).map_err(|e| e.to_string())?;
    }
    let (new, pkcs8) = SigningKey::generate(alg.parse::<Alg>().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    // Public set first: a crash after this leaves the old key in use and
    // both keys published, which is safe.
    let set_path = keys_dir.join("scitt-keys.cbor");
    let mut set = match std::fs::read(&set_path) {
        Ok(b) => crate::keys::KeySet::parse_any(&b)
            .map_err(|e| format!("{}: {e}", set_path.display()))?,
        Err(_) => crate::keys::KeySet::new(),
    };
    set.insert(old.public(), None);
    set.insert(new.public(), None);
    crate::service::write_atomically(&set_path, &set.to_cose_keyset())?;
    let tmp = key_path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    write_private_key(&tmp, &pkcs8).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    println!(
        "rotated: new kid {} ({}); old kid {} retired to {} and still published in {}",
        hex::encode(new.kid()),
        new.alg().name(),
        hex::encode(old.kid()),
        retired.display(),
        set_path.display()
    );
    Ok(0)
}

fn backup(
    url: Option<String>,
    token: Option<String>,
    data_dir: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<i32, String> {
    match (url, data_dir) {
        (Some(url), None) => {
            let rt = runtime()?;
            let r = rt.block_on(async {
                let mut c = crate::client::Conn::connect(&url).await?;
                c.token = token;
                c.request(hyper::Method::POST, "/admin/backup", None, Vec::new())
                    .await
            })?;
            if r.status != 200 {
                return Err(crate::client::describe(&r));
            }
            println!("{}", String::from_utf8_lossy(&r.body));
            Ok(0)
        }
        (None, Some(dir)) => {
            let out = out.ok_or("offline backup needs --out DIR")?;
            let store = crate::log::Store::open(&dir.join("db")).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            store
                .checkpoint(&out.join("db"))
                .map_err(|e| e.to_string())?;
            if let Ok(k) = std::fs::read(dir.join("keys/scitt-keys.cbor")) {
                std::fs::write(out.join("scitt-keys.cbor"), k).map_err(|e| e.to_string())?;
            }
            let size = store
                .latest_head()
                .map_err(|e| e.to_string())?
                .map(|h| h.head.size)
                .unwrap_or(0);
            println!("backup of tree size {size} written to {}", out.display());
            Ok(0)
        }
        _ => Err(
            "give either --url (online, with --token) or --data-dir with --out (offline)".into(),
        ),
    }
}

fn restore(from: &Path, data_dir: &Path) -> Result<i32, String> {
    let src = from.join("db");
    if !src.join("CURRENT").exists() {
        return Err(format!(
            "{} is not a backup (no db/CURRENT)",
            from.display()
        ));
    }
    let dst = data_dir.join("db");
    if dst.exists() {
        return Err(format!(
            "{} exists; move it away first (restore never overwrites a store)",
            dst.display()
        ));
    }
    std::fs::create_dir_all(&dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    for e in std::fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        std::fs::copy(e.path(), dst.join(e.file_name()))
            .map_err(|x| format!("{}: {x}", e.path().display()))?;
    }
    let keys = data_dir.join("keys/scitt-keys.cbor");
    if !keys.exists()
        && let Ok(k) = std::fs::read(from.join("scitt-keys.cbor"))
    {
        crate::service::write_atomically(&keys, &k)?;
    }
    let store = crate::log::Store::open(&dst).map_err(|e| e.to_string())?;
    let report = crate::log::fsck(&store, None)
        .map_err(|e| format!("the restored store fails fsck: {e}"))?;
    println!(
        "restored tree size {} ({} entries) into {}; fsck OK. The service refuses to start if this data dir already published a later head.",
        report.latest_head_size,
        report.entries,
        dst.display()
    );
    Ok(0)
}

/// Reads a key set file in any format `KeySet::parse_any` takes.
fn read_keyset(p: &Path) -> Result<crate::keys::KeySet, String> {
    let b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    crate::keys::KeySet::parse_any(&b).map_err(|e| format!("{}: {e}", p.display()))
}
