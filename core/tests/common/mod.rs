//! Helpers shared by the core crate's integration tests. The fixtures (keys,
//! golden vectors, CDDL, seed corpus) live at the workspace root, where the
//! server's tests and the verifier's tests read them too, so paths here are
//! relative to the workspace, not to `core/`.
#![allow(dead_code)]

use std::path::PathBuf;

use vcon_scitt_core::keys::SigningKey;

/// The package directory, read when the test RUNS (cargo test sets it), not
/// baked in at compile time: a shared CARGO_TARGET_DIR reuses test binaries
/// across clones, and a compile-time path would read another clone's files.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A path under the workspace root (the parent of `core/`).
pub fn repo(path: &str) -> PathBuf {
    manifest_dir().join("..").join(path)
}

pub const ISSUER: &str = "https://conserver.test.example";

fn key(path: &str) -> SigningKey {
    let bytes = std::fs::read(repo(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    SigningKey::from_pkcs8(&bytes).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The fixed P-256 service key the server's tests also use.
pub fn service_key() -> SigningKey {
    key("keys/test-service-es256.pk8")
}

pub fn issuer_key() -> SigningKey {
    key("keys/test-issuer-es256.pk8")
}
