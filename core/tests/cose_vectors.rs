//! Golden COSE vectors (tests/vectors/cose): statements, receipts at tree
//! sizes 1, 2, 5 and 1000, a transparent statement, a consistency receipt,
//! and negative receipts. Receipts are signed with the Ed25519 test service
//! key, so they are deterministic: the test regenerates them and compares
//! bytes. Every produced object is also validated against proto/*.cddl.
//!
//! Regenerate (only when the format changes on purpose):
//! `cargo test --release -p vcon-scitt-core --test cose_vectors -- --ignored regenerate`

mod common;

use std::path::PathBuf;

use ciborium::value::Value;
use common::*;
use vcon_scitt_core::cbor::{self, int};
use vcon_scitt_core::keys::{KeySet, SigningKey};
use vcon_scitt_core::merkle::{self, Hash, MemoryTree};
use vcon_scitt_core::receipt::{self, ServiceIdentity};
use vcon_scitt_core::statement::{self, SignedStatement};
use vcon_scitt_core::tree_head::TreeHead;
use vcon_scitt_core::{cose, verify};

fn dir() -> PathBuf {
    repo("tests/vectors/cose")
}

fn service_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-service-ed25519.pk8")).unwrap()).unwrap()
}

fn other_service_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-issuer-ed25519.pk8")).unwrap()).unwrap()
}

fn id() -> ServiceIdentity {
    ServiceIdentity {
        issuer: "https://scitt.test.example".into(),
        subject: "scitt.test.example/log".into(),
    }
}

const TIMESTAMP_MS: u64 = 1_790_000_000_000;

/// (size, index of the golden statement)
const SIZES: [(u64, u64); 4] = [(1, 0), (2, 1), (5, 3), (1000, 777)];

/// A tree of `size` leaves with the statement's leaf at `index`.
fn tree(size: u64, index: u64, leaf: Hash) -> MemoryTree {
    MemoryTree::from_leaf_hashes((0..size).map(|i| {
        if i == index {
            leaf
        } else {
            merkle::leaf_hash(format!("filler-{i}").as_bytes())
        }
    }))
}

fn receipt_for(key: &SigningKey, size: u64, index: u64, leaf: Hash) -> (Vec<u8>, Hash) {
    let t = tree(size, index, leaf);
    let head = TreeHead {
        size,
        root: t.root_at(size),
        timestamp_ms: TIMESTAMP_MS,
    };
    let sig = receipt::sign_tree_head(key, &id(), &head).unwrap();
    let path = t.inclusion(index, size);
    let r = receipt::inclusion_receipt(&sig, size, index, &path).unwrap();
    // The service's path (head split once per batch) yields the same bytes,
    // so the golden vectors pin both.
    let template = receipt::ReceiptTemplate::new(&sig).unwrap();
    assert_eq!(template.inclusion(size, index, &path), r);
    (r, head.root)
}

fn statement_bytes() -> Vec<u8> {
    std::fs::read(dir().join("statement.cose")).expect("run the regenerate test once")
}

fn leaf() -> Hash {
    SignedStatement::parse(&statement_bytes(), usize::MAX)
        .unwrap()
        .leaf_hash(vcon_scitt_core::statement::LeafRule::Entry)
}

fn keys() -> KeySet {
    KeySet::parse_any(&std::fs::read(dir().join("service-keys.cbor")).unwrap()).unwrap()
}

/// Re-signs a receipt after changing its protected header (the signature is
/// valid, so only the header change can make verification fail).
fn resign(
    receipt: &[u8],
    key: &SigningKey,
    root: &Hash,
    edit: impl Fn(&mut Vec<(Value, Value)>),
) -> Vec<u8> {
    let p = cose::split(receipt).unwrap();
    let mut header = p.protected_map.clone();
    edit(&mut header);
    let protected = cbor::encode(&Value::Map(header));
    let sig = key.sign(&cose::sig_structure(&protected, root)).unwrap();
    cose::encode_sign1(&protected, p.unprotected, None, &sig)
}

/// Rewrites the proof inside 396/-1.
fn edit_proof(receipt: &[u8], edit: impl Fn(&mut u64, &mut u64, &mut Vec<Value>)) -> Vec<u8> {
    let p = cose::split(receipt).unwrap();
    let Some(Value::Map(vdp)) = cbor::map_get(&p.unprotected, 396).cloned() else {
        panic!()
    };
    let Some(Value::Array(proofs)) = cbor::map_get(&vdp, -1).cloned() else {
        panic!()
    };
    let Value::Bytes(pb) = &proofs[0] else {
        panic!()
    };
    let Value::Array(parts) = cbor::decode(pb).unwrap() else {
        panic!()
    };
    let mut size = cbor::as_u64(&parts[0]).unwrap();
    let mut index = cbor::as_u64(&parts[1]).unwrap();
    let Value::Array(mut path) = parts[2].clone() else {
        panic!()
    };
    edit(&mut size, &mut index, &mut path);
    let proof = cbor::encode(&Value::Array(vec![
        Value::Integer(size.into()),
        Value::Integer(index.into()),
        Value::Array(path),
    ]));
    let vdp = Value::Map(vec![(int(-1), Value::Array(vec![Value::Bytes(proof)]))]);
    cose::encode_sign1(
        &p.protected,
        vec![(int(396), vdp)],
        p.payload.as_deref(),
        &p.signature,
    )
}

/// Negative receipts, each with the vcon-verify exit code it must produce.
pub fn negatives(good: &[u8], root: &Hash) -> Vec<(&'static str, Vec<u8>, i32)> {
    let key = service_key();
    let mut out = Vec::new();
    out.push((
        "bitflip-path",
        edit_proof(good, |_, _, path| {
            if let Value::Bytes(b) = &mut path[0] {
                b[5] ^= 0x10
            }
        }),
        8,
    ));
    out.push(("wrong-leaf-index", edit_proof(good, |_, i, _| *i = 2), 8));
    out.push(("wrong-tree-size", edit_proof(good, |s, _, _| *s = 6), 7));
    out.push((
        "wrong-key",
        {
            let (r, _) = receipt_for(&other_service_key(), 5, 3, leaf());
            r
        },
        6,
    ));
    out.push((
        "forged-signature",
        {
            // The trusted kid, but signed by another key.
            let p = cose::split(good).unwrap();
            let sig = other_service_key()
                .sign(&cose::sig_structure(&p.protected, root))
                .unwrap();
            cose::encode_sign1(&p.protected, p.unprotected, None, &sig)
        },
        8,
    ));
    out.push((
        "wrong-vds",
        resign(good, &key, root, |h| {
            for (k, v) in h.iter_mut() {
                if cbor::as_i64(k) == Some(395) {
                    *v = int(2)
                }
            }
        }),
        5,
    ));
    out.push((
        "attached-wrong-payload",
        {
            let p = cose::split(good).unwrap();
            cose::encode_sign1(&p.protected, p.unprotected, Some(&[0x42; 32]), &p.signature)
        },
        7,
    ));
    out.push((
        "unknown-critical-header",
        resign(good, &key, root, |h| {
            h.push((int(2), Value::Array(vec![int(999)])));
            h.push((int(999), Value::Text("must understand".into())));
        }),
        5,
    ));
    out.push(("truncated-cbor", good[..good.len() - 10].to_vec(), 5));
    out.push(("non-tag-18", good[1..].to_vec(), 5));
    out.push(("trailing-bytes", [good, &[0x00]].concat(), 5));
    out
}

#[test]
#[ignore = "writes tests/vectors/cose; run only to change the golden files on purpose"]
fn regenerate() {
    std::fs::create_dir_all(dir()).unwrap();
    let issuer = issuer_key();
    let mut b = statement::Builder::new(
        &issuer,
        ISSUER,
        "vcon://019f15a6-a752-826f-b9a2-279e0d16bc46",
    );
    b.content_type = Some("application/vcon-lifecycle+json".into());
    b.issued_at = Some(1_790_000_000);
    let st = b
        .sign(br#"{"event":"vcon_created","vcon_uuid":"019f15a6-a752-826f-b9a2-279e0d16bc46","occurred_at":"2026-09-21T12:00:00Z","vcon_hash":"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg_SpIdNs6c5H0NE8XYXysP-DGNKHfuwvY7kxvUdBeoGlODJ6-SfaPg"}"#)
        .unwrap();
    std::fs::write(dir().join("statement.cose"), &st).unwrap();
    let mut ks = KeySet::new();
    ks.insert(service_key().public(), None);
    std::fs::write(dir().join("service-keys.cbor"), ks.to_cose_keyset()).unwrap();
    let leaf = SignedStatement::parse(&st, usize::MAX)
        .unwrap()
        .leaf_hash(vcon_scitt_core::statement::LeafRule::Entry);
    for (size, index) in SIZES {
        let (r, _) = receipt_for(&service_key(), size, index, leaf);
        std::fs::write(dir().join(format!("receipt-size-{size}.cbor")), r).unwrap();
    }
    let (r5, root5) = receipt_for(&service_key(), 5, 3, leaf);
    std::fs::write(
        dir().join("transparent-statement-size-5.cose"),
        statement::transparent_statement(&st, std::slice::from_ref(&r5)).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir().join("consistency-5-1000.cbor"),
        consistency_5_1000(leaf),
    )
    .unwrap();
    std::fs::create_dir_all(dir().join("negative")).unwrap();
    for (name, bytes, _) in negatives(&r5, &root5) {
        std::fs::write(dir().join("negative").join(format!("{name}.cbor")), bytes).unwrap();
    }
}

fn consistency_5_1000(leaf: Hash) -> Vec<u8> {
    // The size-5 tree must be a prefix of the size-1000 tree for a valid
    // proof, so both come from the size-1000 tree (statement at index 3).
    let t = tree(1000, 3, leaf);
    let head = TreeHead {
        size: 1000,
        root: t.root_at(1000),
        timestamp_ms: TIMESTAMP_MS,
    };
    let sig = receipt::sign_tree_head(&service_key(), &id(), &head).unwrap();
    receipt::consistency_receipt(&sig, 5, 1000, &t.consistency(5, 1000)).unwrap()
}

#[test]
fn golden_receipts_verify_and_are_reproduced_byte_for_byte() {
    let st = statement_bytes();
    let leaf = leaf();
    for (size, index) in SIZES {
        let stored = std::fs::read(dir().join(format!("receipt-size-{size}.cbor"))).unwrap();
        let info = receipt::verify_inclusion_receipt(&stored, &leaf, &keys()).unwrap();
        assert_eq!((info.tree_size, info.leaf_index), (size, index));
        assert_eq!(info.issuer.as_deref(), Some("https://scitt.test.example"));
        let (again, _) = receipt_for(&service_key(), size, index, leaf);
        assert_eq!(again, stored, "receipt encoding changed for size {size}");
    }
    let ts = std::fs::read(dir().join("transparent-statement-size-5.cose")).unwrap();
    let report = verify::verify(&verify::Request {
        statement: ts,
        service_keys: keys(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((report.tree_size, report.leaf_index), (5, 3));
    // The consistency receipt extends the size-5 root of the same tree.
    let t = tree(1000, 3, leaf);
    let c = std::fs::read(dir().join("consistency-5-1000.cbor")).unwrap();
    let info = receipt::verify_consistency_receipt(&c, 5, &t.root_at(5), &keys()).unwrap();
    assert_eq!(info.tree_size, 1000);
    assert_eq!(c, consistency_5_1000(leaf));
    // The statement parses as our profile.
    let s = SignedStatement::parse(&st, usize::MAX).unwrap();
    assert_eq!(s.subject, "vcon://019f15a6-a752-826f-b9a2-279e0d16bc46");
}

#[test]
fn golden_negatives_are_rejected_for_the_right_reason() {
    let (good, root) = receipt_for(&service_key(), 5, 3, leaf());
    let st = statement_bytes();
    for (name, bytes, code) in negatives(&good, &root) {
        let stored = std::fs::read(dir().join("negative").join(format!("{name}.cbor"))).unwrap();
        let err = verify::verify(&verify::Request {
            statement: st.clone(),
            receipts: vec![stored.clone()],
            service_keys: keys(),
            ..Default::default()
        })
        .expect_err(name);
        assert_eq!(err.exit_code(), code, "{name}: {err}");
        // Deterministic negatives are reproduced exactly.
        if !matches!(name, "truncated-cbor" | "non-tag-18" | "trailing-bytes") || bytes == stored {
            assert_eq!(bytes, stored, "{name} changed");
        }
    }
}

fn validate(file: &str, bytes: &[u8]) {
    let common = std::fs::read_to_string(repo("proto/common.cddl")).unwrap();
    let schema = std::fs::read_to_string(repo("proto").join(file)).unwrap();
    let text = format!("{schema}\n{common}");
    if let Err(e) = cddl::validate_cbor_from_slice(&text, bytes, None) {
        panic!("{file}: {e}");
    }
}

#[test]
fn produced_objects_match_the_published_cddl() {
    let st = statement_bytes();
    validate("statement.cddl", &st);
    validate(
        "entry.cddl",
        &SignedStatement::parse(&st, usize::MAX)
            .unwrap()
            .entry_bytes(),
    );
    for (size, _) in SIZES {
        validate(
            "receipt.cddl",
            &std::fs::read(dir().join(format!("receipt-size-{size}.cbor"))).unwrap(),
        );
    }
    validate(
        "transparent-statement.cddl",
        &std::fs::read(dir().join("transparent-statement-size-5.cose")).unwrap(),
    );
    validate(
        "consistency-receipt.cddl",
        &std::fs::read(dir().join("consistency-5-1000.cbor")).unwrap(),
    );
    validate(
        "keyset.cddl",
        &std::fs::read(dir().join("service-keys.cbor")).unwrap(),
    );
    let p = vcon_scitt_core::problem::Problem::new(400, "Rejected", "why").to_cbor();
    validate("problem-details.cddl", &p);
    // ES256 receipts too (signature 64 bytes r||s).
    let (r, _) = receipt_for(&common::service_key(), 5, 3, leaf());
    validate("receipt.cddl", &r);
    // And the validator is not vacuous: a receipt without vds fails.
    let (good, root) = receipt_for(&service_key(), 5, 3, leaf());
    let no_vds = resign(&good, &service_key(), &root, |h| {
        h.retain(|(k, _)| cbor::as_i64(k) != Some(395))
    });
    let common = std::fs::read_to_string(repo("proto/common.cddl")).unwrap();
    let schema = std::fs::read_to_string(repo("proto/receipt.cddl")).unwrap();
    assert!(cddl::validate_cbor_from_slice(&format!("{schema}\n{common}"), &no_vds, None).is_err());
}
