//! The vCon conserver SCITT link v0.3.0, replayed request for request
//! (issue 13): its statements (one byte-exact, made by its own code:
//! tests/vectors/conserver-link-v0.3.0), its headers, its discovery
//! (transparency-configuration → jwks_uri → `keys[0]`), and its own receipt
//! check (leaf `SHA-256(0x00 ‖ SHA-256(payload))`, RFC 9162 walk, ES256 over
//! the detached root), written here from reading its code (never copied).
//! It works against a log in the conserver compatibility profile
//! (`policy.legacy_compat = true`, `leaf_rule = "payload-sha256"`), which
//! logs its statements as generic (never indexed by phone number); the
//! default profile refuses them with the rule that says why.

mod common;

use ciborium::value::Value;
use common::*;
use vcon_scitt::cbor::{self, int};
use vcon_scitt::config::{Config, IssuerConfig};
use vcon_scitt::http::start;
use vcon_scitt::keys::{KeySet, PublicKey, SigningKey};
use vcon_scitt::statement::LeafRule;
use vcon_scitt::{cose, merkle};
use vcon_scitt_client::{Conn, Reply};

const LINK_KID: &[u8] = b"conserver-key-1";
/// The link's configurable `issuer`, set to a URI as a deployment would.
const LINK_ISS: &str = "https://conserver.test.example";

fn vector(name: &str) -> std::path::PathBuf {
    repo("tests/vectors/conserver-link-v0.3.0").join(name)
}

fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// The compatibility profile: the link's default issuer "conserver" with
/// the vector's key, and our test issuer's key under the link's text kid.
fn compat_config(dir: &std::path::Path) -> Config {
    let mut cfg = server_config(dir);
    cfg.policy.legacy_compat = true;
    cfg.leaf_rule = Some(LeafRule::PayloadSha256);
    let jwk = issuer_key().public().to_jwk();
    let mut jwk = jwk.as_object().unwrap().clone();
    jwk.insert("kid".into(), "conserver-key-1".into());
    let path = dir.join("link-issuer-jwks.json");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, serde_json::json!({"keys": [jwk]}).to_string()).unwrap();
    cfg.issuers = vec![
        IssuerConfig {
            iss: "conserver".into(),
            keys: vec![vector("issuer-jwks.json")],
        },
        IssuerConfig {
            iss: LINK_ISS.into(),
            keys: vec![path],
        },
    ];
    cfg
}

/// A statement in the link's shape (create_hashed_signed_statement.py at
/// f716f68, read, not copied): tag 18, protected headers in its order, CWT
/// claims under the old label 13 with the signer's key in cnf, no iat,
/// legacy hash-envelope labels over a payload that is text, not a digest.
fn link_statement(
    key: &SigningKey,
    sub: &str,
    payload: &[u8],
    location: Value,
    meta: Vec<(&str, &str)>,
) -> Vec<u8> {
    let jwk = key.public().to_jwk();
    let coord = |c: &str| {
        let s = jwk[c].as_str().unwrap();
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s).unwrap()
    };
    let text = |s: &str| Value::Text(s.into());
    let cnf = Value::Map(vec![(
        int(1),
        Value::Map(vec![
            (int(1), int(2)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(coord("x"))),
            (int(-3), Value::Bytes(coord("y"))),
        ]),
    )]);
    let protected = cbor::encode(&Value::Map(vec![
        (int(1), int(-7)),
        (int(4), Value::Bytes(LINK_KID.to_vec())),
        (int(-6802), text("application/vcon+json")),
        (
            int(13),
            Value::Map(vec![
                (int(1), text(LINK_ISS)),
                (int(2), text(sub)),
                (int(8), cnf),
            ]),
        ),
        (int(-6800), int(-16)),
        (int(-6801), location),
        (
            int(-6804),
            Value::Map(meta.into_iter().map(|(k, v)| (text(k), text(v))).collect()),
        ),
    ]));
    let sig = key.sign(&cose::sig_structure(&protected, payload)).unwrap();
    cose::encode_sign1(&protected, Vec::new(), Some(payload), &sig)
}

/// The link's POST: `Content-Type: application/cose`, python-requests'
/// `Accept: */*`, no Prefer, no auth. It needs a 201 (anything else ends
/// the vCon); the entry id is Location's last segment, the body the receipt.
async fn link_post(url: &str, statement: &[u8]) -> Reply {
    let mut c = Conn::connect(url).await.unwrap();
    c.headers.push((hyper::header::ACCEPT, "*/*".into()));
    c.post_statement(statement.to_vec()).await.unwrap()
}

/// The link's discovery: transparency-configuration must be CBOR whatever
/// Accept says, its jwks_uri absolute and ours, and the link takes
/// `keys[0]` (no kid matching), which must be the key signing receipts now.
async fn link_discovers_the_key(url: &str) -> PublicKey {
    let tc = vcon_scitt_client::get(url, "/.well-known/transparency-configuration")
        .await
        .unwrap();
    assert_eq!(tc.status, 200);
    let Value::Map(m) = cbor::decode(&tc.body).unwrap() else {
        panic!("transparency-configuration is not a CBOR map")
    };
    let jwks_uri = m
        .iter()
        .find(|(k, _)| k.as_text() == Some("jwks_uri"))
        .and_then(|(_, v)| v.as_text())
        .unwrap()
        .to_owned();
    let path = jwks_uri.strip_prefix(url).expect("jwks_uri points at us");
    let jwks = vcon_scitt_client::get(url, path).await.unwrap();
    assert_eq!(jwks.status, 200);
    let j: serde_json::Value = serde_json::from_slice(&jwks.body).unwrap();
    let first = &j["keys"][0];
    assert_eq!(first["crv"], "P-256", "the link reads x and y of keys[0]");
    PublicKey::from_jwk(first).unwrap()
}

/// The link's `_verify_cose_receipt`, as it behaves: tag 18, nil payload,
/// the first proof of 396/-1 in the unprotected header decoded as
/// `[tree_size, leaf_index, path]`, leaf = SHA-256(0x00 ‖ SHA-256(the
/// payload text it signed)), the RFC 9162 walk, ES256 over
/// `["Signature1", protected as received, h'', root]` with keys[0].
fn link_receipt_check(receipt: &[u8], payload: &[u8], key: &PublicKey) -> Result<(), String> {
    let Value::Tag(18, inner) = cbor::decode(receipt).map_err(|e| e.to_string())? else {
        return Err("receipt is not tagged 18".into());
    };
    let Value::Array(a) = *inner else {
        return Err("not an array".into());
    };
    let [
        Value::Bytes(protected),
        Value::Map(unprotected),
        Value::Null,
        Value::Bytes(sig),
    ] = a.as_slice()
    else {
        return Err("not [bstr, map, nil, bstr]".into());
    };
    let proofs = cbor::map_get(unprotected, 396)
        .and_then(|v| match v {
            Value::Map(m) => cbor::map_get(m, -1),
            _ => None,
        })
        .and_then(|v| v.as_array())
        .ok_or("missing inclusion proof")?;
    let Some(Value::Bytes(first)) = proofs.first() else {
        return Err("no proof".into());
    };
    let Value::Array(p) = cbor::decode(first).map_err(|e| e.to_string())? else {
        return Err("proof is not an array".into());
    };
    let (Some(size), Some(index), Some(Value::Array(path))) = (
        p.first().and_then(cbor::as_u64),
        p.get(1).and_then(cbor::as_u64),
        p.get(2),
    ) else {
        return Err("proof is not [size, index, path]".into());
    };
    let path: Vec<merkle::Hash> = path
        .iter()
        .map(|h| h.as_bytes().and_then(|b| b.as_slice().try_into().ok()))
        .collect::<Option<_>>()
        .ok_or("path hash is not 32 bytes")?;
    let leaf = merkle::leaf_hash(&sha256(payload));
    let root =
        merkle::root_from_inclusion_proof(index, size, &leaf, &path).map_err(|e| e.to_string())?;
    if key.verify(&cose::sig_structure(protected, &root), sig) {
        Ok(())
    } else {
        Err("cose_receipt signature verification failed".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conserver_link_registers_and_its_own_receipt_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(compat_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    let service_key = link_discovers_the_key(&url).await;

    // 1. Byte-exact: what the link's own code produced.
    let kat = std::fs::read(vector("statement-tel.cose")).unwrap();
    let kat_payload = cose::split(&kat).unwrap().payload.unwrap();
    assert_eq!(kat_payload.len(), 90);
    let r = link_post(&url, &kat).await;
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let entry_id = r.header("location").unwrap().rsplit('/').next().unwrap();
    assert_eq!(
        entry_id, "dafa95a8f920a3cf4581c4200bd549c6d0de79e5c517d40e044b4ea6733266a4",
        "the entry id is the leaf under the link's rule (its README's known answer)"
    );
    link_receipt_check(&r.body, &kat_payload, &service_key).unwrap();

    // 2. One registration per party with a tel, and the no-tel form.
    let key = issuer_key();
    let hash = hex::encode(sha256(
        br#"{"uuid": "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11"}"#,
    ));
    let location = || Value::Text(String::new());
    let mut receipts = Vec::new();
    for tel in ["+15550100001", "+442079460002"] {
        let payload = format!("{hash}:vcon_created:{tel}");
        let st = link_statement(
            &key,
            &format!("tel:{tel}"),
            payload.as_bytes(),
            location(),
            vec![("vcon_operation", "vcon_created"), ("party_tel", tel)],
        );
        let r = link_post(&url, &st).await;
        assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
        link_receipt_check(&r.body, payload.as_bytes(), &service_key).unwrap();
        receipts.push((st, r));
    }
    let uuid = "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11";
    let payload = format!("{hash}:vcon_created");
    let no_tel = link_statement(
        &key,
        &format!("vcon://{uuid}"),
        payload.as_bytes(),
        location(),
        vec![("vcon_operation", "vcon_created")],
    );
    let r = link_post(&url, &no_tel).await;
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    link_receipt_check(&r.body, payload.as_bytes(), &service_key).unwrap();

    // 3. A re-run of the chain (same vCon, op and tel, signed again): 201
    //    with the same entry, as the link needs (scittles answers 400).
    let (first, first_reply) = &receipts[0];
    let again = link_post(&url, first).await;
    assert_eq!(again.status, 201, "{}", vcon_scitt_client::describe(&again));
    assert_eq!(again.header("location"), first_reply.header("location"));

    // 4. The standalone statement tool: a real digest, -6801 null.
    let digest = sha256(b"a vCon file");
    let tool = link_statement(&key, "urn:example:tool", &digest, Value::Null, vec![]);
    let r = link_post(&url, &tool).await;
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    link_receipt_check(&r.body, &digest, &service_key).unwrap();

    // 5. Nothing is indexed: not by phone number, not under the vCon.
    let v = vcon_scitt_client::get(&url, &format!("/vcons/{uuid}/entries"))
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&v.body).contains("entry"),
        "{}",
        vcon_scitt_client::describe(&v)
    );

    // 6. Our verifier reads these receipts only when told the weak rule,
    //    and says what it does not prove.
    let keys = KeySet::parse_any(
        &vcon_scitt_client::get(&url, "/.well-known/scitt-keys")
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let req = |rule| vcon_scitt::verify::Request {
        statement: kat.clone(),
        receipts: vec![receipts[0].1.body.clone()],
        service_keys: keys.clone(),
        now: vcon_scitt::time::now_secs(),
        leaf_rule: rule,
        ..Default::default()
    };
    let (st0, r0) = &receipts[0];
    let told = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st0.clone(),
        receipts: vec![r0.body.clone()],
        ..req(Some(LeafRule::PayloadSha256))
    });
    let rep = told.unwrap();
    assert!(
        vcon_scitt::verify::verdict_line(&Ok(rep)).contains("WEAK"),
        "the verdict says the leaf binds the payload only"
    );
    let untold = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st0.clone(),
        receipts: vec![r0.body.clone()],
        ..req(None)
    })
    .unwrap_err();
    assert_eq!(untold.exit_code(), 8, "`any` never tries payload-sha256");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_compatibility_profile_the_link_gets_reasons() {
    // The default profile: the tel: statement is refused by the PII guard,
    // the no-tel one by the hash-envelope rule, each naming the rule.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = compat_config(dir.path());
    cfg.policy.legacy_compat = false;
    cfg.leaf_rule = None;
    let srv = start(cfg, None).await.unwrap();
    let url = srv.url();
    let kat = std::fs::read(vector("statement-tel.cose")).unwrap();
    let r = link_post(&url, &kat).await;
    assert_eq!(r.status, 400, "{}", vcon_scitt_client::describe(&r));
    assert!(
        vcon_scitt_client::describe(&r).contains("pii-"),
        "{}",
        vcon_scitt_client::describe(&r)
    );
    let hash = hex::encode(sha256(b"x"));
    let st = link_statement(
        &issuer_key(),
        "vcon://0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11",
        format!("{hash}:vcon_created").as_bytes(),
        Value::Text(String::new()),
        vec![],
    );
    let r = link_post(&url, &st).await;
    assert_eq!(r.status, 400, "{}", vcon_scitt_client::describe(&r));
    let d = vcon_scitt_client::describe(&r);
    assert!(
        d.contains("hash-envelope-length")
            && d.contains("77 bytes but payload-hash-alg -16 makes 32"),
        "{d}"
    );
    srv.stop().await;

    // payload-sha256 outside the profile is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.leaf_rule = Some(LeafRule::PayloadSha256);
    let err = start(cfg, None).await.err().expect("refused");
    assert!(err.contains("legacy_compat"), "{err}");
}
