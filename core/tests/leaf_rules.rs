//! Leaf rules, receipts that name no kid and statements that name no issuer
//! key: what the verifier needs to read other logs' receipts (the SCITT WG
//! vectors are run in verify/tests/wg_vectors.rs), checked here against our
//! own golden vectors in tests/vectors/cose.

mod common;

use ciborium::value::Value;
use common::*;
use vcon_scitt_core::cbor::{self, int};
use vcon_scitt_core::keys::{Alg, KeySet, SigningKey};
use vcon_scitt_core::merkle::{self, Hash, MemoryTree};
use vcon_scitt_core::receipt::{self, ReceiptError};
use vcon_scitt_core::statement::{
    self, IdentityRule, LeafRule, SignedStatement, StatementError, registered_statement_bytes,
};
use vcon_scitt_core::{cose, verify};

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(repo("tests/vectors/cose").join(name)).unwrap()
}

fn ed25519_service_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-service-ed25519.pk8")).unwrap()).unwrap()
}

fn keys() -> KeySet {
    KeySet::parse_any(&golden("service-keys.cbor")).unwrap()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    vcon_scitt_core::vcon::HashAlg::Sha256.digest(b)
}

#[test]
fn the_two_leaf_rules_byte_for_byte() {
    let st = golden("statement.cose");
    let parsed = SignedStatement::parse(&st, usize::MAX).unwrap();
    // entry: the statement with its unprotected header emptied; the service
    // and the default verifier share this one function.
    assert_eq!(
        LeafRule::Entry.leaf_entry(&st, &parsed.parts),
        parsed.entry_bytes()
    );
    assert_eq!(
        LeafRule::Entry.leaf_hash(&st, &parsed.parts),
        parsed.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry)
    );
    assert_eq!(
        LeafRule::Entry.hash_entry(&parsed.entry_bytes()),
        parsed.leaf_hash(LeafRule::Entry)
    );
    // statement-sha256: the 32 raw octets of SHA-256(statement as registered).
    let digest = LeafRule::StatementSha256.leaf_entry(&st, &parsed.parts);
    assert_eq!(digest, sha256(&st));
    assert_eq!(
        LeafRule::StatementSha256.leaf_hash(&st, &parsed.parts),
        merkle::leaf_hash(&digest)
    );
    // A Transparent Statement is hashed as the statement it was before 394.
    let ts = golden("transparent-statement-size-5.cose");
    let ts_parts = cose::split(&ts).unwrap();
    assert_eq!(registered_statement_bytes(&ts, &ts_parts).as_ref(), &st[..]);
    assert_eq!(
        LeafRule::StatementSha256.leaf_entry(&ts, &ts_parts),
        sha256(&st)
    );
    // Both rules agree on nothing: a receipt verifies under one only.
    assert_ne!(
        LeafRule::Entry.leaf_hash(&st, &parsed.parts),
        LeafRule::StatementSha256.leaf_hash(&st, &parsed.parts)
    );
}

#[test]
fn leaf_rule_names_round_trip() {
    for rule in LeafRule::ALL {
        assert_eq!(rule.name().parse::<LeafRule>(), Ok(rule));
        assert_eq!(rule.to_string(), rule.name());
    }
    assert_eq!(LeafRule::Entry.name(), "entry");
    assert_eq!(LeafRule::StatementSha256.name(), "statement-sha256");
    assert_eq!(LeafRule::PayloadSha256.name(), "payload-sha256");
    let err = "payload".parse::<LeafRule>().unwrap_err();
    assert!(
        err.to_string()
            .contains("statement-sha256, entry or payload-sha256"),
        "{err}"
    );
    // `any` tries only the rules that bind the whole statement.
    assert_eq!(
        LeafRule::BINDING_THE_STATEMENT,
        [LeafRule::Entry, LeafRule::StatementSha256]
    );
    assert!(!LeafRule::PayloadSha256.binds_the_statement());
}

/// Registration stays strict; only the verifier's optional rule records
/// what is missing instead of refusing.
#[test]
fn identity_is_required_for_registration_and_recorded_for_verification() {
    let key = issuer_key();
    let no_kid = {
        // The builder always sends a kid: drop it and sign again.
        let signed = statement::Builder::new(&key, ISSUER, "vcon://x")
            .sign(b"{}")
            .unwrap();
        let p = cose::split(&signed).unwrap();
        let header: Vec<(Value, Value)> = p
            .protected_map
            .into_iter()
            .filter(|(k, _)| cbor::as_i64(k) != Some(4))
            .collect();
        let protected = cbor::encode(&Value::Map(header));
        let sig = key.sign(&cose::sig_structure(&protected, b"{}")).unwrap();
        cose::encode_sign1(&protected, Vec::new(), Some(b"{}"), &sig)
    };
    let err = SignedStatement::parse(&no_kid, usize::MAX).unwrap_err();
    assert!(matches!(err, StatementError::Malformed(_)), "{err}");
    let st = SignedStatement::parse_with(&no_kid, usize::MAX, IdentityRule::Optional).unwrap();
    assert_eq!(
        st.missing_identity,
        vec!["kid (4), x5chain (33) or x5t (34)"]
    );
    assert_eq!(st.issuer, ISSUER);

    // No CWT claims at all: recorded once, issuer and subject empty.
    let bare = {
        let protected = cbor::encode(&Value::Map(vec![(int(1), int(Alg::P256.cose_id()))]));
        let sig = key.sign(&cose::sig_structure(&protected, b"x")).unwrap();
        cose::encode_sign1(&protected, Vec::new(), Some(b"x"), &sig)
    };
    assert!(SignedStatement::parse(&bare, usize::MAX).is_err());
    let st = SignedStatement::parse_with(&bare, usize::MAX, IdentityRule::Optional).unwrap();
    assert_eq!(
        st.missing_identity,
        vec!["CWT claims (15)", "kid (4), x5chain (33) or x5t (34)"]
    );
    assert_eq!((st.issuer.as_str(), st.subject.as_str()), ("", ""));

    // Every other rule still applies: a claims map of the wrong type is
    // malformed in either mode.
    let bad_claims = {
        let protected = cbor::encode(&Value::Map(vec![
            (int(1), int(Alg::P256.cose_id())),
            (int(15), Value::Text("iss".into())),
        ]));
        cose::encode_sign1(&protected, Vec::new(), Some(b"x"), &[0; 64])
    };
    assert!(SignedStatement::parse_with(&bad_claims, usize::MAX, IdentityRule::Optional).is_err());
}

/// Our golden size-5 receipt, re-signed without a kid (the WG's shape).
fn kidless_receipt(root_override: Option<Hash>) -> Vec<u8> {
    let st = SignedStatement::parse(&golden("statement.cose"), usize::MAX).unwrap();
    let good = golden("receipt-size-5.cbor");
    let info = receipt::verify_inclusion_receipt(
        &good,
        &st.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry),
        &keys(),
    )
    .unwrap();
    let root: Hash = info.root.as_slice().try_into().unwrap();
    let p = cose::split(&good).unwrap();
    let header: Vec<(Value, Value)> = p
        .protected_map
        .into_iter()
        .filter(|(k, _)| cbor::as_i64(k) != Some(4))
        .collect();
    let protected = cbor::encode(&Value::Map(header));
    let signed_root = root_override.unwrap_or(root);
    let sig = ed25519_service_key()
        .sign(&cose::sig_structure(&protected, &signed_root))
        .unwrap();
    cose::encode_sign1(&protected, p.unprotected, None, &sig)
}

#[test]
fn receipts_without_a_kid_are_tried_with_each_key_of_their_algorithm() {
    let leaf = SignedStatement::parse(&golden("statement.cose"), usize::MAX)
        .unwrap()
        .leaf_hash(vcon_scitt_core::statement::LeafRule::Entry);
    let r = kidless_receipt(None);
    // Another Ed25519 key and a P-256 key beside ours: still found.
    let mut set = KeySet::new();
    set.insert(issuer_key().public(), None);
    set.insert(
        SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-issuer-ed25519.pk8")).unwrap())
            .unwrap()
            .public(),
        None,
    );
    set.keys.extend(keys().keys);
    let info = receipt::verify_inclusion_receipt(&r, &leaf, &set).unwrap();
    assert!(info.kid.is_empty());
    assert_eq!(
        info.key_thumbprint,
        ed25519_service_key().public().thumbprint()
    );
    assert_eq!((info.tree_size, info.leaf_index), (5, 3));

    // No Ed25519 key trusted at all: no key for it (class 6, like an unknown kid).
    let mut p256_only = KeySet::new();
    p256_only.insert(issuer_key().public(), None);
    let err = receipt::verify_inclusion_receipt(&r, &leaf, &p256_only).unwrap_err();
    assert_eq!(err, ReceiptError::NoKeyForAlg("EdDSA".into()));
    assert!(err.is_untrusted_key());

    // Signed over another root: no trusted key verifies it (class 8).
    let forged = kidless_receipt(Some([7; 32]));
    let err = receipt::verify_inclusion_receipt(&forged, &leaf, &keys()).unwrap_err();
    assert!(
        matches!(err, ReceiptError::NoKeyVerifies { tried: 1, .. }),
        "{err}"
    );
}

/// A kid-less receipt no trusted key verifies cannot be told from another
/// service's receipt: beside a good receipt it is skipped (RFC 9943 §7.1);
/// alone, it is the reported failure (8), not "no trusted key" (6).
#[test]
fn an_unattributable_receipt_is_skipped_beside_a_good_one() {
    let st = golden("statement.cose");
    let forged = kidless_receipt(Some([7; 32]));
    let rep = verify::verify(&verify::Request {
        statement: st.clone(),
        receipts: vec![forged.clone(), golden("receipt-size-5.cbor")],
        service_keys: keys(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((rep.receipts_verified, rep.receipts_skipped), (1, 1));
    assert!(!rep.kid.is_empty());
    let err = verify::verify(&verify::Request {
        statement: st.clone(),
        receipts: vec![forged],
        service_keys: keys(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 8, "{err}");
    // A receipt that names a trusted kid and fails is never skipped.
    let bitflip = golden("negative/bitflip-path.cbor");
    let err = verify::verify(&verify::Request {
        statement: st,
        receipts: vec![bitflip, golden("receipt-size-5.cbor")],
        service_keys: keys(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 8, "{err}");
}

/// RFC 9942 allows several inclusion proofs in one receipt; every one must
/// be well formed before a signature is checked, and their number is capped.
#[test]
fn several_proofs_in_one_receipt() {
    let st = SignedStatement::parse(&golden("statement.cose"), usize::MAX).unwrap();
    let leaf = st.leaf_hash(vcon_scitt_core::statement::LeafRule::Entry);
    let good = golden("receipt-size-5.cbor");
    let p = cose::split(&good).unwrap();
    let Some(Value::Map(vdp)) = cbor::map_get(&p.unprotected, 396) else {
        panic!()
    };
    let Some(Value::Array(proofs)) = cbor::map_get(vdp, -1) else {
        panic!()
    };
    let target = proofs[0].clone();
    // A proof for another leaf of the same size-5 tree (fillers as in
    // cose_vectors.rs), as a decoy.
    let tree = MemoryTree::from_leaf_hashes((0..5).map(|i| {
        if i == 3 {
            leaf
        } else {
            merkle::leaf_hash(format!("filler-{i}").as_bytes())
        }
    }));
    let decoy = Value::Bytes(cbor::encode(&Value::Array(vec![
        int(5),
        int(1),
        Value::Array(
            tree.inclusion(1, 5)
                .iter()
                .map(|h| Value::Bytes(h.to_vec()))
                .collect(),
        ),
    ])));
    let with = |proofs: Vec<Value>| {
        let vdp = Value::Map(vec![(int(-1), Value::Array(proofs))]);
        cose::encode_sign1(&p.protected, vec![(int(396), vdp)], None, &p.signature)
    };
    let info = receipt::verify_inclusion_receipt(
        &with(vec![decoy.clone(), target.clone()]),
        &leaf,
        &keys(),
    )
    .unwrap();
    assert_eq!(info.leaf_index, 3);
    let too_many = vec![target.clone(); receipt::MAX_INCLUSION_PROOFS + 1];
    assert!(matches!(
        receipt::verify_inclusion_receipt(&with(too_many), &leaf, &keys()),
        Err(ReceiptError::Proof(_))
    ));
    assert!(matches!(
        receipt::verify_inclusion_receipt(&with(Vec::new()), &leaf, &keys()),
        Err(ReceiptError::Proof(_))
    ));
}

/// proto/entry.cddl's `registered-statement` describes what the WG's log
/// registered (their statements, byte for byte) and our entry is one too.
#[test]
fn registered_statements_match_the_published_cddl() {
    let schema = format!(
        "root = registered-statement\n{}\n{}",
        std::fs::read_to_string(repo("proto/entry.cddl")).unwrap(),
        std::fs::read_to_string(repo("proto/common.cddl")).unwrap()
    );
    let wg = repo("tests/vectors/scitt-wg-v1/v1");
    for id in ["valid-eddsa", "valid-es256", "fail-bad-statement-sig"] {
        let st = std::fs::read(wg.join(id).join("statement.cose")).unwrap();
        if let Err(e) = cddl::validate_cbor_from_slice(&schema, &st, None) {
            panic!("{id}: {e}");
        }
    }
    let ours = SignedStatement::parse(&golden("statement.cose"), usize::MAX).unwrap();
    assert!(cddl::validate_cbor_from_slice(&schema, &ours.entry_bytes(), None).is_ok());
    // Not vacuous: an untagged array is not a registered statement.
    assert!(cddl::validate_cbor_from_slice(&schema, &ours.entry_bytes()[1..], None).is_err());
}

/// `payload-sha256` against the known answer of a statement the conserver
/// link v0.3.0's own code made (tests/vectors/conserver-link-v0.3.0): the
/// leaf is SHA-256(0x00 ‖ SHA-256(payload)), the same from the statement,
/// from its stored entry, and for any other header or signature.
#[test]
fn the_payload_rule_has_the_conserver_links_known_answer() {
    let st = std::fs::read(repo(
        "tests/vectors/conserver-link-v0.3.0/statement-tel.cose",
    ))
    .unwrap();
    let parts = cose::split(&st).unwrap();
    let want = "dafa95a8f920a3cf4581c4200bd549c6d0de79e5c517d40e044b4ea6733266a4";
    assert_eq!(
        hex::encode(LeafRule::PayloadSha256.leaf_hash(&st, &parts)),
        want
    );
    assert_eq!(hex::encode(LeafRule::PayloadSha256.hash_entry(&st)), want);
    let other = cose::encode_sign1(
        &parts.protected,
        Vec::new(),
        parts.payload.as_deref(),
        &[0u8; 64],
    );
    assert_eq!(
        hex::encode(LeafRule::PayloadSha256.hash_entry(&other)),
        want
    );
    // The two binding rules differ for those two.
    assert_ne!(
        LeafRule::Entry.hash_entry(&st),
        LeafRule::Entry.hash_entry(&other)
    );
}
