//! X.509 issuers: a statement with an x5chain under the configured test CA is
//! registered without any registered kid; wrong anchors, validity, non-URI
//! issuers, a mismatched x5t and a leaf key that did not sign are refused.

mod common;

use ciborium::value::Value;
use common::*;
use vcon_scitt::http::start;
use vcon_scitt::issuers::{IssuerTrust, KeySource};
use vcon_scitt::keys::SigningKey;
use vcon_scitt::statement::{Builder, SignedStatement, StatementError};
use vcon_scitt_client::Conn;

const X509_ISS: &str = "https://x509-issuer.test.example";

fn pem_der(path: &str) -> Vec<u8> {
    vcon_scitt::issuers::read_anchors(&std::fs::read(repo(path)).unwrap()).remove(0)
}

fn leaf_key() -> SigningKey {
    SigningKey::from_pkcs8(&std::fs::read(repo("keys/test-x509-issuer.pk8")).unwrap()).unwrap()
}

fn x5chain_statement(
    key: &SigningKey,
    iss: &str,
    chain: Vec<Vec<u8>>,
    x5t: Option<Vec<u8>>,
) -> Vec<u8> {
    let mut b = Builder::new(key, iss, "urn:example:x509");
    b.content_type = Some("application/json".into());
    b.issued_at = Some(vcon_scitt::time::now_secs());
    b.extra.push((
        33,
        Value::Array(chain.into_iter().map(Value::Bytes).collect()),
    ));
    if let Some(h) = x5t {
        b.extra.push((
            34,
            Value::Array(vec![Value::Integer((-16).into()), Value::Bytes(h)]),
        ));
    }
    b.sign(b"{}").unwrap()
}

fn trust() -> IssuerTrust {
    IssuerTrust {
        registry: Vec::new(),
        anchors: vec![pem_der("keys/test-ca.pem")],
    }
}

#[test]
fn chains_are_validated_to_the_anchor() {
    let leaf = pem_der("keys/test-x509-issuer.pem");
    let now = vcon_scitt::time::now_secs();
    let good = x5chain_statement(&leaf_key(), X509_ISS, vec![leaf.clone()], None);
    let st = SignedStatement::parse(&good, usize::MAX).unwrap();
    match trust().verify(&st, now).unwrap() {
        KeySource::X509 {
            leaf_subject,
            anchor_subject,
        } => {
            assert!(leaf_subject.contains("x509-issuer.test.example"));
            assert!(anchor_subject.contains("TEST CA"));
        }
        other => panic!("{other:?}"),
    }
    let reject = |bytes: &[u8], t: &IssuerTrust, at: i64, want: &str| {
        let st = match SignedStatement::parse(bytes, usize::MAX) {
            Ok(s) => s,
            Err(e) => {
                assert!(e.to_string().contains(want), "{e}");
                return;
            }
        };
        let e = t.verify(&st, at).unwrap_err();
        assert!(e.to_string().contains(want), "wanted {want:?}, got {e}");
    };
    // Not yet valid in 2000; expired in 2100.
    reject(
        &good,
        &trust(),
        946_684_800,
        "not valid at registration time",
    );
    reject(
        &good,
        &trust(),
        4_102_444_800,
        "not valid at registration time",
    );
    // No anchors configured, or another anchor.
    reject(
        &good,
        &IssuerTrust::default(),
        now,
        "no X.509 trust anchors",
    );
    let other_anchor = IssuerTrust {
        registry: Vec::new(),
        anchors: vec![pem_der("keys/test-other-ca.pem")],
    };
    reject(
        &good,
        &other_anchor,
        now,
        "does not lead to a configured trust anchor",
    );
    // A key that is not the leaf's.
    let wrong = x5chain_statement(&issuer_key(), X509_ISS, vec![leaf.clone()], None);
    reject(&wrong, &trust(), now, "signature does not verify");
    // The CA certificate as leaf: it may sign (no keyUsage digitalSignature? it has
    // only keyCertSign) — refused.
    let ca_as_leaf = x5chain_statement(
        &leaf_key(),
        X509_ISS,
        vec![pem_der("keys/test-ca.pem")],
        None,
    );
    reject(&ca_as_leaf, &trust(), now, "digitalSignature");
    // iss must be a URI with x5chain.
    let not_uri = x5chain_statement(&leaf_key(), "just a name", vec![leaf.clone()], None);
    reject(&not_uri, &trust(), now, "must be a URI");
    // x5t that does not match the leaf.
    let bad_x5t = x5chain_statement(
        &leaf_key(),
        X509_ISS,
        vec![leaf.clone()],
        Some(vec![0u8; 32]),
    );
    reject(&bad_x5t, &trust(), now, "x5t does not match");
    let good_x5t = ring::digest::digest(&ring::digest::SHA256, &leaf)
        .as_ref()
        .to_vec();
    let with_x5t = x5chain_statement(&leaf_key(), X509_ISS, vec![leaf.clone()], Some(good_x5t));
    trust()
        .verify(&SignedStatement::parse(&with_x5t, usize::MAX).unwrap(), now)
        .unwrap();
    // Garbage in x5chain.
    let garbage = x5chain_statement(
        &leaf_key(),
        X509_ISS,
        vec![vec![0x30, 0x03, 0x01, 0x01, 0xff]],
        None,
    );
    let st = SignedStatement::parse(&garbage, usize::MAX).unwrap();
    assert!(matches!(
        trust().verify(&st, now),
        Err(StatementError::Malformed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_registers_x509_statements_under_its_anchor() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.trust_anchors = vec![repo("keys/test-ca.pem")];
    let srv = start(cfg, None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let st = x5chain_statement(
        &leaf_key(),
        X509_ISS,
        vec![pem_der("keys/test-x509-issuer.pem")],
        None,
    );
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    // The policy entry lists the anchor's fingerprint.
    let p: serde_json::Value =
        serde_json::from_slice(&c.get("/policy").await.unwrap().body).unwrap();
    let fp = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &pem_der("keys/test-ca.pem"),
    ));
    assert_eq!(p["policy"]["trust_anchors_sha256"][0], fp);
    // A self-issued chain is refused.
    let bad = x5chain_statement(
        &issuer_key(),
        X509_ISS,
        vec![pem_der("keys/test-x509-issuer.pem")],
        None,
    );
    let r = c.post_statement(bad).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.problem().unwrap().title, "Rejected");
    srv.stop().await;
}

/// Security issue, finding 1: a certificate speaks only for the issuers it
/// names, and chains the service cannot fully check are refused, not
/// half-checked. Each of these registered on the code before the fix (the
/// ECDSA-SHA1 leaf was refused, but only because ring cannot verify it).
#[test]
fn hostile_certificates_are_refused() {
    let now = vcon_scitt::time::now_secs();
    let leaf = pem_der("keys/test-x509-issuer.pem");
    let refused = |iss: &str, chain: Vec<Vec<u8>>, want: &str| {
        let bytes = x5chain_statement(&leaf_key(), iss, chain, None);
        let st = SignedStatement::parse(&bytes, usize::MAX).unwrap();
        let e = trust().verify(&st, now).unwrap_err();
        assert!(
            matches!(e, StatementError::Rejected(_)) && e.to_string().contains(want),
            "{iss}: wanted {want:?}, got {e}"
        );
    };
    // Impersonation: a valid leaf for x509-issuer.test.example claiming to
    // be another registered issuer, or the service itself.
    for victim in [
        ISSUER,
        "https://scitt.test.example",
        "http://127.0.0.1:8000",
    ] {
        refused(
            victim,
            vec![leaf.clone()],
            "is not named by the leaf certificate",
        );
    }
    refused(
        X509_ISS,
        vec![pem_der("keys/test-x509-leaf-ca-true.pem")],
        "the leaf certificate is a CA",
    );
    refused(
        X509_ISS,
        vec![
            pem_der("keys/test-x509-nc-leaf.pem"),
            pem_der("keys/test-x509-nc-intermediate.pem"),
        ],
        "critical extension this service does not enforce",
    );
    refused(
        X509_ISS,
        vec![
            pem_der("keys/test-x509-rsa1024-sha1-leaf.pem"),
            pem_der("keys/test-x509-rsa1024-intermediate.pem"),
        ],
        "weak or unsupported algorithm",
    );
    refused(
        X509_ISS,
        vec![pem_der("keys/test-x509-ecdsa-sha1-leaf.pem")],
        "weak or unsupported algorithm",
    );
}

/// Each weakness alone: an RSA-1024 intermediate is refused even where
/// every signature in the chain uses SHA-256.
#[test]
fn a_short_rsa_key_anywhere_in_the_chain_is_refused() {
    let bytes = x5chain_statement(
        &leaf_key(),
        X509_ISS,
        vec![
            pem_der("keys/test-x509-rsa1024-leaf.pem"),
            pem_der("keys/test-x509-rsa1024-intermediate.pem"),
        ],
        None,
    );
    let st = SignedStatement::parse(&bytes, usize::MAX).unwrap();
    let e = trust()
        .verify(&st, vcon_scitt::time::now_secs())
        .unwrap_err();
    assert!(e.to_string().contains("1024-bit RSA key"), "{e}");
}

/// Security issue, finding 9: with x5t protected and x5chain unprotected the
/// statement registered, but the stored entry (unprotected header emptied)
/// lost the chain, so `/entries/{id}/statement` no longer verified against
/// the anchor. Now refused, saying where the chain must go.
#[test]
fn an_unprotected_x5chain_is_refused() {
    let leaf = pem_der("keys/test-x509-issuer.pem");
    let x5t = ring::digest::digest(&ring::digest::SHA256, &leaf)
        .as_ref()
        .to_vec();
    let key = leaf_key();
    let mut b = Builder::new(&key, X509_ISS, "urn:example:x509");
    b.content_type = Some("application/json".into());
    b.issued_at = Some(vcon_scitt::time::now_secs());
    b.extra.push((
        34,
        Value::Array(vec![Value::Integer((-16).into()), Value::Bytes(x5t)]),
    ));
    let signed = b.sign(b"{}").unwrap();
    let p = vcon_scitt::cose::split(&signed).unwrap();
    let moved = vcon_scitt::cose::encode_sign1(
        &p.protected,
        vec![(Value::Integer(33.into()), Value::Bytes(leaf))],
        p.payload.as_deref(),
        &p.signature,
    );
    let e = SignedStatement::parse(&moved, usize::MAX).unwrap_err();
    assert!(
        matches!(&e, StatementError::Malformed(m) if m.contains("must be in the protected header")),
        "{e}"
    );
}
