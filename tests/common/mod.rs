//! Shared test helpers: real RocksDB in temp dirs, real keys.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use vcon_scitt::keys::{Alg, KeySet, SigningKey};
use vcon_scitt::log::{Log, LogConfig};
use vcon_scitt::receipt::{CoseTreeHeadSigner, ServiceIdentity};

/// A fixed P-256 service key for tests (tests/vectors/keys), so restarts in
/// one test and across processes sign with the same key.
pub fn service_key() -> SigningKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/test-service-es256.pk8");
    match std::fs::read(&path) {
        Ok(b) => SigningKey::from_pkcs8(&b).unwrap(),
        Err(_) => SigningKey::generate(Alg::P256).unwrap().0,
    }
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
