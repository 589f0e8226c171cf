//! Shared test helpers: real RocksDB in temp dirs, real keys.
#![allow(dead_code)]

pub mod cluster;

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

/// The order of P-256.
pub const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// What anyone can do to a published ES256 statement: replace the
/// signature (r, s) by (r, n − s), which verifies just as well.
pub fn malleate(statement: &[u8]) -> Vec<u8> {
    let p = vcon_scitt::cose::split(statement).unwrap();
    assert_eq!(p.signature.len(), 64, "an ES256 signature is r ‖ s");
    let mut sig = p.signature.clone();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(p.signature[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = d.rem_euclid(256) as u8;
    }
    assert_eq!(borrow, 0, "s < n");
    vcon_scitt::cose::encode_sign1(&p.protected, p.unprotected, p.payload.as_deref(), &sig)
}

/// A COSE_Sign1 whose protected header holds `n` distinct labels: unsigned
/// garbage that, before the fix, cost O(n²) before any signature check.
pub fn header_flood(n: i64) -> Vec<u8> {
    use ciborium::value::Value;
    let map: Vec<(Value, Value)> = (0..n)
        .map(|i| (Value::Integer((1000 + i).into()), Value::Integer(0.into())))
        .collect();
    let mut protected = Vec::new();
    ciborium::ser::into_writer(&Value::Map(map), &mut protected).unwrap();
    let mut out = Vec::new();
    let sign1 = Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            Value::Bytes(b"{}".to_vec()),
            Value::Bytes(vec![0; 64]),
        ])),
    );
    ciborium::ser::into_writer(&sign1, &mut out).unwrap();
    out
}

/// A lifecycle statement from the ES256 test issuer about the sample vCon
/// (`uuid` overrides the file's), written into `dir` and read back.
pub fn lifecycle_statement(
    dir: &Path,
    event: &str,
    at: &str,
    uuid: Option<&str>,
    purposes: &[&str],
) -> Vec<u8> {
    use vcon_scitt::vcon::profile::Event;
    use vcon_scitt_client::statement::{StatementSpec, create};
    let name = format!(
        "{}-{event}-{}.cose",
        uuid.unwrap_or("file"),
        at.replace(':', "")
    );
    let spec = StatementSpec {
        uuid: uuid.map(str::to_owned),
        occurred_at: Some(at.into()),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        out: Some(dir.join(name)),
        ..StatementSpec::new(
            repo("tests/vectors/vcon/ab_call_ext_rec.vcon"),
            Event::parse(event).unwrap(),
            repo("keys/test-issuer-es256.pk8"),
            ISSUER.into(),
        )
    };
    let (out, _) = create(&spec).unwrap();
    std::fs::read(out).unwrap()
}

/// A server config file trusting the ES256 test issuer, with the fixed
/// test service key (for `vcon-scitt serve --config` in a child process).
pub fn writer_config_file(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("writer.toml");
    std::fs::write(
        &p,
        format!(
            "key_file = {:?}\ncheckpoint_key_file = {:?}\n[[issuers]]\niss = {:?}\nkeys = [{:?}]\n",
            repo("keys/test-service-es256.pk8"),
            repo("keys/test-checkpoint-ed25519.pk8"),
            ISSUER,
            repo("keys/test-issuer-es256.keys.cbor")
        ),
    )
    .unwrap();
    p
}

/// What a tampering operator does to a writer's stopped store: removes a
/// vCon from the vCon map (its state row) and records the matching root,
/// so the writer starts and its next map root "proves" the vCon absent.
pub fn remove_from_map(db: &Path, uuid: &str) {
    let store = vcon_scitt::log::Store::open(db).unwrap();
    let cf = store.cf(vcon_scitt::log::store::CF_INDEX).unwrap();
    let key_of_uuid = vcon_scitt::vcon::state::map_key(uuid).unwrap();
    let mut rest: Vec<([u8; 32], [u8; 32])> = Vec::new();
    for row in store
        .iter_from(vcon_scitt::log::store::CF_INDEX, b"M")
        .unwrap()
    {
        let (k, v) = row.unwrap();
        if !k.starts_with(b"M") {
            break;
        }
        let key: [u8; 32] = k[1..].try_into().unwrap();
        if key != key_of_uuid {
            let s = vcon_scitt::vcon::state::VconState::from_cbor(&v).unwrap();
            rest.push((key, s.value()));
        }
    }
    let root = vcon_scitt::map::root_of_sorted(&rest).unwrap();
    let last = store.get_index(b"m/map-last").unwrap().unwrap();
    let mut forged = last[..8].to_vec();
    forged.extend_from_slice(&root);
    forged.extend_from_slice(&(rest.len() as u64).to_be_bytes());
    let mut wb = rocksdb::WriteBatch::default();
    wb.delete_cf(cf, [b"M".as_slice(), &key_of_uuid].concat());
    wb.put_cf(cf, b"m/map-last", forged);
    store.write_synced(wb).unwrap();
}
