//! Shared test helpers: real RocksDB in temp dirs, real keys.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use vcon_scitt::keys::{KeySet, SigningKey};
use vcon_scitt::log::{Log, LogConfig};
use vcon_scitt::receipt::{CoseTreeHeadSigner, ServiceIdentity};

/// The fixed P-256 test service key (`keys/test-service-es256.pk8`), so
/// restarts in one test and across processes sign with the same key. A
/// missing fixture fails the test: a random key would hide it.
pub fn service_key() -> SigningKey {
    let path = manifest_dir().join("keys/test-service-es256.pk8");
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SigningKey::from_pkcs8(&b).unwrap()
}

pub fn identity() -> ServiceIdentity {
    ServiceIdentity {
        issuer: "https://scitt.test.example".into(),
        subject: "scitt.test.example/log".into(),
    }
}

pub fn signer() -> Arc<CoseTreeHeadSigner> {
    let key = service_key();
    let mut verify_keys = KeySet::new();
    verify_keys.insert(key.public(), None);
    Arc::new(CoseTreeHeadSigner {
        key,
        identity: identity(),
        verify_keys,
    })
}

pub fn service_keys() -> KeySet {
    let mut ks = KeySet::new();
    ks.insert(service_key().public(), None);
    ks
}

pub fn open_log(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, signer()).unwrap()
}

pub fn repo(path: &str) -> std::path::PathBuf {
    manifest_dir().join(path)
}

pub const ISSUER: &str = "https://conserver.test.example";
pub const PARTNER: &str = "https://partner.test.example";

pub fn issuer_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-issuer-es256.pk8")).unwrap()).unwrap()
}

pub fn partner_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-issuer-ed25519.pk8")).unwrap()).unwrap()
}

/// A server config on 127.0.0.1:0 over a temp dir, trusting the test issuers.
pub fn server_config(dir: &Path) -> vcon_scitt::config::Config {
    let mut c = vcon_scitt::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        key_file: Some(repo("keys/test-service-es256.pk8")),
        ..Default::default()
    };
    c.rate_limit.per_client_per_sec = 0.0;
    c.issuers = vec![
        vcon_scitt::config::IssuerConfig {
            iss: ISSUER.into(),
            keys: vec![repo("keys/test-issuer-es256.keys.cbor")],
        },
        vcon_scitt::config::IssuerConfig {
            iss: PARTNER.into(),
            keys: vec![repo("keys/test-issuer-ed25519.keys.cbor")],
        },
    ];
    c
}

/// A generic signed statement from the ES256 test issuer.
pub fn generic_statement(subject: &str, payload: &[u8]) -> Vec<u8> {
    let key = issuer_key();
    let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, subject);
    b.content_type = Some("application/json".into());
    b.issued_at = Some(vcon_scitt::time::now_secs());
    b.sign(payload).unwrap()
}

/// The package directory, read when the test RUNS (cargo test sets it), not
/// baked in at compile time: a shared CARGO_TARGET_DIR reuses test binaries
/// across clones, and a compile-time path would read another clone's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
