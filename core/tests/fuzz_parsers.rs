//! Robustness of everything input reaches, on the stable toolchain: the
//! committed seed corpus (tests/corpus) is replayed, then proptest throws
//! random and mutated inputs at the statement, receipt, CBOR and lifecycle
//! payload parsers. None may panic; a mutated statement that still verifies
//! must be the same registration. The service registers a statement by what
//! the issuer signed (its registration identity: SHA-256 of the
//! Sig_structure, `statement::registration_identity`), so the malleable
//! parts cannot make a second registration: the unprotected header and the
//! envelope encoding (which the entry drops/normalises too) and the ECDSA
//! signature, where (r, n − s) verifies as well as (r, s) and is different
//! entry bytes. That last one no random mutation finds, so it has its own
//! test here; the server's `tests/adversarial.rs` checks the same over HTTP.

mod common;

use std::path::PathBuf;

use common::*;
use proptest::prelude::*;
use vcon_scitt_core::keys::KeySet;
use vcon_scitt_core::statement::SignedStatement;
use vcon_scitt_core::vcon::policy::PolicyConfig;
use vcon_scitt_core::{cbor, receipt, verify};

fn corpus(kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo("tests/corpus").join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    out
}

fn service_keyset() -> KeySet {
    KeySet::parse_any(&std::fs::read(repo("tests/vectors/cose/service-keys.cbor")).unwrap())
        .unwrap()
}

/// Every parser a registration or a verification runs, on one input; the
/// registration identity when the statement verifies.
fn exercise_statement(bytes: &[u8]) -> Option<[u8; 32]> {
    let _ = cbor::decode(bytes);
    let _ = vcon_scitt_core::cose::split(bytes);
    let st = SignedStatement::parse(bytes, 64 * 1024).ok()?;
    let _ = vcon_scitt_core::vcon::profile::check(&PolicyConfig::default(), &st, 1_790_000_000);
    let _ = st.embedded_receipts();
    let _ = vcon_scitt_core::statement::transparent_statement(bytes, &[]);
    let trust = {
        let mut t = vcon_scitt_core::issuers::IssuerTrust::default();
        t.add_issuer_key(ISSUER, issuer_key().public(), None);
        t
    };
    let _ = verify::verify(&verify::Request {
        statement: bytes.to_vec(),
        service_keys: service_keyset(),
        ..Default::default()
    });
    trust
        .verify(&st, 1_790_000_000)
        .ok()
        .map(|_| st.registration_identity())
}

/// The order n of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// An ES256 signature (r, s) replaced by (r, n − s).
fn malleate(statement: &[u8]) -> Vec<u8> {
    let p = vcon_scitt_core::cose::split(statement).unwrap();
    assert_eq!(p.signature.len(), 64);
    let mut sig = p.signature.clone();
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(P256_N[i]) - i16::from(p.signature[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = d.rem_euclid(256) as u8;
    }
    assert_eq!(borrow, 0);
    vcon_scitt_core::cose::encode_sign1(&p.protected, p.unprotected, p.payload.as_deref(), &sig)
}

/// Security issue, finding 6: the one mutation of an ES256 statement that
/// verifies and changes the entry bytes. It must keep the registration
/// identity, which is what the service dedups on.
#[test]
fn a_malleated_es256_signature_verifies_but_keeps_the_registration_identity() {
    let golden = std::fs::read(repo("tests/vectors/cose/statement.cose")).unwrap();
    let original = SignedStatement::parse(&golden, usize::MAX).unwrap();
    let mauled = malleate(&golden);
    let m = SignedStatement::parse(&mauled, usize::MAX).unwrap();
    assert_ne!(
        m.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry),
        original.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry),
        "different entry bytes"
    );
    assert_eq!(
        exercise_statement(&mauled),
        Some(original.registration_identity()),
        "it verifies, as the same registration"
    );
}

fn exercise_receipt(bytes: &[u8], leaf: &[u8; 32]) {
    let keys = service_keyset();
    let _ = receipt::verify_inclusion_receipt(bytes, leaf, &keys);
    let _ = receipt::verify_consistency_receipt(bytes, 5, leaf, &keys);
    let _ = receipt::peek_tree_size(bytes);
    let _ = KeySet::parse_any(bytes);
    let _ = vcon_scitt_core::problem::Problem::from_cbor(400, bytes);
}

#[test]
fn the_seed_corpus_replays_without_panics() {
    let golden = std::fs::read(repo("tests/vectors/cose/statement.cose")).unwrap();
    let parsed = SignedStatement::parse(&golden, usize::MAX).unwrap();
    let leaf = parsed.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry);
    let statements = corpus("statement");
    let receipts = corpus("receipt");
    assert!(statements.len() >= 4 && receipts.len() >= 10);
    let from_fuzzer = |p: &PathBuf| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("fuzz-"))
    };
    for (p, b) in &statements {
        exercise_statement(b);
        // Every prefix of the hand-made seeds, too: truncation is the
        // commonest corruption. (cargo-fuzz units are replayed whole.)
        if !from_fuzzer(p) {
            for n in 0..b.len() {
                exercise_statement(&b[..n]);
            }
        }
    }
    for (p, b) in &receipts {
        exercise_receipt(b, &leaf);
        if !from_fuzzer(p) {
            for n in 0..b.len() {
                exercise_receipt(&b[..n], &leaf);
            }
        }
    }
    // cargo-fuzz corpora of the other targets (fuzz/README.md).
    let key = issuer_key();
    for (_, b) in corpus("lifecycle") {
        let mut builder = vcon_scitt_core::statement::Builder::new(
            &key,
            ISSUER,
            "vcon://019f15a6-a752-826f-b9a2-279e0d16bc46",
        );
        builder.content_type = Some("application/vcon-lifecycle+json".into());
        let st = SignedStatement::parse(&builder.sign(&b).unwrap(), usize::MAX).unwrap();
        let _ = vcon_scitt_core::vcon::profile::check(&PolicyConfig::default(), &st, 1_790_000_000);
    }
    for (_, b) in corpus("keys") {
        let _ = KeySet::parse_any(&b);
        let _ = vcon_scitt_core::keys::SigningKey::from_pkcs8_any(&b);
        let _ = vcon_scitt_core::issuers::read_anchors(&b);
    }
    assert!(
        statements.len() > 100 && receipts.len() > 100,
        "the fuzz corpus is missing"
    );
    // The golden statement is still accepted, so the harness is not vacuous.
    assert_eq!(
        exercise_statement(&golden),
        Some(parsed.registration_identity())
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Splice(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Splice(i, v)),
    ]
}

fn apply(mut b: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match m {
            Mutation::Flip(i, x) => b[i % n] ^= x,
            Mutation::Insert(i, x) => b.insert(i % (n + 1), *x),
            Mutation::Delete(i) => {
                b.remove(i % n);
            }
            Mutation::Truncate(i) => b.truncate(i % n),
            Mutation::Splice(i, v) => {
                let at = i % n;
                let end = (at + v.len()).min(n);
                b.splice(at..end, v.iter().copied());
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise_statement(&b);
        exercise_receipt(&b, &[0u8; 32]);
    }

    #[test]
    fn mutated_statements_never_panic_and_never_forge_a_registration(muts in proptest::collection::vec(mutation(), 1..4)) {
        let golden = std::fs::read(repo("tests/vectors/cose/statement.cose")).unwrap();
        let identity = SignedStatement::parse(&golden, usize::MAX).unwrap().registration_identity();
        let m = apply(golden, &muts);
        if let Some(verified) = exercise_statement(&m) {
            prop_assert_eq!(verified, identity, "a mutation produced a different verifying registration");
        }
    }

    #[test]
    fn mutated_receipts_never_panic_and_never_verify_wrongly(muts in proptest::collection::vec(mutation(), 1..4)) {
        let golden = std::fs::read(repo("tests/vectors/cose/receipt-size-5.cbor")).unwrap();
        let st = std::fs::read(repo("tests/vectors/cose/statement.cose")).unwrap();
        let leaf = SignedStatement::parse(&st, usize::MAX).unwrap().leaf_hash(vcon_scitt_core::statement::LeafRule::Entry);
        let good = receipt::verify_inclusion_receipt(&golden, &leaf, &service_keyset()).unwrap();
        let m = apply(golden, &muts);
        if let Ok(info) = receipt::verify_inclusion_receipt(&m, &leaf, &service_keyset()) {
            // Only encoding-level changes can survive; what it proves cannot change.
            prop_assert_eq!((info.tree_size, info.leaf_index, info.root), (good.tree_size, good.leaf_index, good.root));
        }
    }

    #[test]
    fn lifecycle_payloads_never_panic(doc in any_json(3)) {
        let key = issuer_key();
        let mut b = vcon_scitt_core::statement::Builder::new(&key, ISSUER, "vcon://019f15a6-a752-826f-b9a2-279e0d16bc46");
        b.content_type = Some("application/vcon-lifecycle+json".into());
        let st = b.sign(&serde_json::to_vec(&doc).unwrap()).unwrap();
        let parsed = SignedStatement::parse(&st, usize::MAX).unwrap();
        let _ = vcon_scitt_core::vcon::profile::check(&PolicyConfig::default(), &parsed, 1_790_000_000);
        let _ = vcon_scitt_core::vcon::profile::check(&PolicyConfig { legacy_compat: true, ..PolicyConfig::default() }, &parsed, 0);
    }

    /// The PII scanners index text by bytes: random (multi-byte) text and
    /// texts dense in the characters they look for must never panic, and a
    /// hit starts on a character boundary with its value masked.
    #[test]
    fn pii_scans_never_panic(s in prop_oneof!["(?s).{0,48}", "[a-zA-Z0-9@:+.()é\\u{200b} -]{0,48}"]) {
        if let Some(hit) = vcon_scitt_core::vcon::pii::scan_text(&s) {
            prop_assert!(s.is_char_boundary(hit.at));
            prop_assert!(hit.masked.ends_with('…'));
        }
    }
}

/// JSON documents biased towards the lifecycle vocabulary.
fn any_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let keys = prop_oneof![
        Just("event".to_string()),
        Just("vcon_uuid".to_string()),
        Just("vcon_hash".to_string()),
        Just("occurred_at".to_string()),
        Just("consent".to_string()),
        Just("purposes".to_string()),
        Just("derived_from".to_string()),
        Just("counterparty".to_string()),
        Just("party".to_string()),
        Just("tel".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("vcon_consent_revoked".to_string()),
            Just("019f15a6-a752-826f-b9a2-279e0d16bc46".to_string()),
            Just("2026-11-20T10:00:00Z".to_string()),
            Just("sha512-AAAA".to_string()),
            Just("tel:+1".to_string()),
            ".{0,12}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
