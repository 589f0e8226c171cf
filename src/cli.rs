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
    Verify(crate::verify_cli::Args),
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
            let alg = parse_alg(&alg)?;
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
        Command::Verify(args) => Ok(crate::verify_cli::run(&args)),
    }
}

pub fn parse_alg(s: &str) -> Result<Alg, String> {
    match s.to_ascii_lowercase().as_str() {
        "es256" | "p256" | "p-256" => Ok(Alg::P256),
        "ed25519" | "eddsa" => Ok(Alg::Ed25519),
        other => Err(format!(
            "unknown key algorithm {other:?} (es256 or ed25519)"
        )),
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
                    serde_json::json!({"ok": true, "report": report, "signatures_checked": verifier.is_some()})
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
