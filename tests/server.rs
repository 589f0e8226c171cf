//! The service over real HTTP on 127.0.0.1 (ephemeral port) and a real
//! RocksDB in a temp dir.

mod common;

use ciborium::value::Value;
use common::*;
use vcon_scitt::cose;
use vcon_scitt::http::{Running, start};
use vcon_scitt::keys::KeySet;
use vcon_scitt::merkle;
use vcon_scitt::verify::{self, Request};
use vcon_scitt_client::{Conn, Reply};

/// Every log starts with the service's registration-policy entry (index 0).
const POLICY_ENTRIES: u64 = 1;
/// ...and the map-root entry closing its batch (index 1): every batch ends
/// with one (vcon_map.rs), so a first registration gets index 2.
const FIRST_INDEX: u64 = 2;

/// Entries that are not map-root entries: what was registered (and the
/// policy entry), however the sequencer batched it.
fn entries_but_map_roots(srv: &Running) -> u64 {
    let log = &srv.service.log;
    (0..log.latest().head.size)
        .filter(|&i| {
            let e = log.store().entry(i).unwrap().unwrap();
            vcon_scitt::statement::SignedStatement::parse(&e, usize::MAX)
                .map(|st| st.subject != vcon_scitt::vcon_map::MAP_ROOT_SUBJECT)
                .unwrap_or(true)
        })
        .count() as u64
}

async fn server(config: vcon_scitt::config::Config) -> Running {
    start(config, None).await.unwrap()
}

fn verify_receipt(statement: &[u8], receipt: &[u8], keys: &KeySet) -> verify::Report {
    verify::verify(&Request {
        statement: statement.to_vec(),
        receipts: vec![receipt.to_vec()],
        service_keys: keys.clone(),
        now: vcon_scitt::time::now_secs(),
        ..Default::default()
    })
    .unwrap()
}

async fn fetch_keys(url: &str) -> KeySet {
    let r = vcon_scitt_client::get(url, "/.well-known/scitt-keys")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    KeySet::parse_any(&r.body).unwrap()
}

fn assert_problem(r: &Reply, status: u16, title: &str, detail_has: &str) {
    assert_eq!(r.status, status, "{}", vcon_scitt_client::describe(r));
    assert_eq!(
        r.header("content-type"),
        Some("application/concise-problem-details+cbor")
    );
    let p = r.problem().expect("a CBOR problem-details body");
    assert_eq!(p.title, title, "detail: {}", p.detail);
    assert!(
        p.detail.to_lowercase().contains(&detail_has.to_lowercase()),
        "detail {:?} lacks {detail_has:?}",
        p.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_verify_offline_with_the_published_keys() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let url = srv.url();
    let st = generic_statement("urn:example:thing", br#"{"hello":"world"}"#);
    let mut c = Conn::connect(&url).await.unwrap();
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    assert_eq!(r.header("content-type"), Some("application/cose"));
    let location = r.header("location").unwrap().to_owned();
    // A new log follows the SCITT WG's vds-1 rule: the leaf is
    // SHA-256(0x00 ‖ SHA-256(statement as registered)), here the very bytes
    // sent (tagged, empty unprotected header, preferred encoding).
    let digest = ring::digest::digest(&ring::digest::SHA256, &st);
    let leaf = merkle::leaf_hash(digest.as_ref());
    assert_eq!(location, format!("/entries/{}", hex::encode(leaf)));

    let keys = fetch_keys(&url).await;
    let report = verify_receipt(&st, &r.body, &keys);
    assert_eq!(
        report.leaf_rule,
        vcon_scitt::statement::LeafRule::StatementSha256
    );
    assert_eq!(report.leaf_index, FIRST_INDEX);
    assert_eq!(report.service.as_deref(), Some(url.as_str()));

    // The receipt resource is stable and immutable.
    let g = c.get(&location).await.unwrap();
    assert_eq!(g.status, 200);
    assert_eq!(g.body, r.body);
    assert!(g.header("cache-control").unwrap().contains("immutable"));

    // The transparent statement verifies on its own.
    let ts = c.get(&format!("{location}/statement")).await.unwrap();
    assert_eq!(ts.status, 200);
    let report = verify::verify(&Request {
        statement: ts.body,
        service_keys: keys.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(report.entry_id, hex::encode(leaf));

    // A receipt does not verify for another statement.
    let other = generic_statement("urn:example:other", b"{}");
    assert!(
        verify::verify(&Request {
            statement: other,
            receipts: vec![r.body.clone()],
            service_keys: keys,
            ..Default::default()
        })
        .is_err()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_statements_get_the_same_entry_and_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let st = generic_statement("urn:example:dup", b"{}");
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let a = c.post_statement(st.clone()).await.unwrap();
    let b = c.post_statement(st.clone()).await.unwrap();
    assert_eq!((a.status, b.status), (201, 201));
    assert_eq!(a.header("location"), b.header("location"));
    assert_eq!(a.body, b.body);
    // The same statement with a different unprotected header is the same entry.
    let parts = cose::split(&st).unwrap();
    let decorated = cose::encode_sign1(
        &parts.protected,
        vec![(Value::Integer(99.into()), Value::Text("ignored".into()))],
        parts.payload.as_deref(),
        &parts.signature,
    );
    let d = c.post_statement(decorated).await.unwrap();
    assert_eq!(d.status, 201);
    assert_eq!(d.header("location"), a.header("location"));
    assert_eq!(entries_but_map_roots(&srv), POLICY_ENTRIES + 1);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_budget_gives_202_then_204_then_200() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.registration.wait_ms = 0;
    // The sequencer lingers 1.5 s for company, so the entry stays pending.
    cfg.sequencer.max_delay_us = 1_500_000;
    let srv = server(cfg).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let st = generic_statement("urn:example:slow", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 202);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.body.is_empty());
    let location = r.header("location").unwrap().to_owned();
    let pending = c.get(&location).await.unwrap();
    assert_eq!(pending.status, 204);
    assert_eq!(pending.header("cache-control"), Some("no-store"));
    assert!(pending.header("retry-after").is_some());
    let mut done = None;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let g = c.get(&location).await.unwrap();
        if g.status == 200 {
            done = Some(g);
            break;
        }
        assert_eq!(g.status, 204);
    }
    let done = done.expect("the receipt arrived");
    verify_receipt(&st, &done.body, &fetch_keys(&srv.url()).await);
    // The client helper follows the same path by itself.
    let st2 = generic_statement("urn:example:slow2", b"{}");
    let (loc, receipt) = vcon_scitt_client::register_and_wait(
        &srv.url(),
        None,
        st2.clone(),
        std::time::Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert!(loc.starts_with("/entries/"));
    verify_receipt(&st2, &receipt, &fetch_keys(&srv.url()).await);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let mut issued = Vec::new();
    for i in 0..20 {
        let st = generic_statement(&format!("urn:example:r{i}"), b"{}");
        let r = c.post_statement(st.clone()).await.unwrap();
        assert_eq!(r.status, 201);
        issued.push((st, r.header("location").unwrap().to_owned(), r.body));
    }
    srv.stop().await;

    let srv = server(server_config(dir.path())).await;
    let keys = fetch_keys(&srv.url()).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    for (st, location, receipt) in &issued {
        let g = c.get(location).await.unwrap();
        assert_eq!(g.status, 200);
        assert_eq!(
            &g.body, receipt,
            "stable receipts are byte-identical after a restart"
        );
        verify_receipt(st, &g.body, &keys);
    }
    // A fresh receipt is at the latest head and verifies too.
    let fresh = c.get(&format!("{}?fresh=true", issued[0].1)).await.unwrap();
    assert_eq!(fresh.status, 200);
    // Twenty registrations one after another: twenty batches, each closed
    // by its map-root entry.
    assert_eq!(
        verify_receipt(&issued[0].0, &fresh.body, &keys).tree_size,
        FIRST_INDEX + 2 * 20
    );
    // `fresh` is a boolean: anything but true/false is a 400 (schemathesis
    // found `?fresh=null` read silently as false).
    for bad in ["null", "1", "yes", "TRUE", ""] {
        let r = c
            .get(&format!("{}?fresh={bad}", issued[0].1))
            .await
            .unwrap();
        assert_problem(&r, 400, "Malformed request", "not a boolean");
    }
    let stable = c
        .get(&format!("{}?fresh=false", issued[0].1))
        .await
        .unwrap();
    assert_eq!(stable.status, 200);
    srv.stop().await;
}

/// Builds a COSE_Sign1 from a raw protected map, signed by the test issuer.
fn raw_statement(protected: Vec<(Value, Value)>, payload: Option<&[u8]>) -> Vec<u8> {
    let key = issuer_key();
    let prot = vcon_scitt::cbor::encode(&Value::Map(protected));
    let sig = key
        .sign(&cose::sig_structure(&prot, payload.unwrap_or_default()))
        .unwrap();
    cose::encode_sign1(&prot, vec![], payload, &sig)
}

fn i(n: i64) -> Value {
    Value::Integer(n.into())
}

fn claims(iss: Option<&str>, sub: Option<&str>) -> Value {
    let mut m = Vec::new();
    if let Some(s) = iss {
        m.push((i(1), Value::Text(s.into())));
    }
    if let Some(s) = sub {
        m.push((i(2), Value::Text(s.into())));
    }
    Value::Map(m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_right_problem_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.registration.max_statement_bytes = 4096;
    let srv = server(cfg).await;
    let url = srv.url();
    let kid = Value::Bytes(issuer_key().kid());
    let good = generic_statement("urn:example:good", b"{}");
    let mut bad_sig = good.clone();
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 0x01;
    let untagged = good[1..].to_vec();
    // (name, body, content type, status, title, detail fragment)
    type Case<'a> = (&'a str, Vec<u8>, &'a str, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "empty body",
            vec![],
            "application/cose",
            400,
            "Malformed request",
            "empty",
        ),
        (
            "random bytes",
            b"\xff\x00garbage\x13\x37".to_vec(),
            "application/cose",
            400,
            "Malformed request",
            "CBOR",
        ),
        (
            "CBOR map, not COSE",
            vec![0xa1, 0x01, 0x02],
            "application/cose",
            400,
            "Malformed request",
            "tag 18",
        ),
        (
            "untagged COSE_Sign1",
            untagged,
            "application/cose",
            400,
            "Malformed request",
            "tag 18",
        ),
        (
            "trailing bytes",
            [good.clone(), vec![0x00]].concat(),
            "application/cose",
            400,
            "Malformed request",
            "trailing",
        ),
        (
            "RS256 algorithm",
            raw_statement(
                vec![
                    (i(1), i(-257)),
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Bad Signature Algorithm",
            "RS256",
        ),
        (
            "no alg",
            raw_statement(
                vec![
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Bad Signature Algorithm",
            "no alg",
        ),
        (
            "unknown kid",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(4), Value::Bytes(vec![7; 32])),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Rejected",
            "no registered key",
        ),
        (
            "unknown issuer",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(4), kid.clone()),
                    (i(15), claims(Some("https://stranger.example"), Some("s"))),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Rejected",
            "not registered",
        ),
        (
            "missing iss",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(4), kid.clone()),
                    (i(15), claims(None, Some("s"))),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Malformed request",
            "iss",
        ),
        (
            "missing sub",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), None)),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Malformed request",
            "sub",
        ),
        (
            "no CWT claims",
            raw_statement(vec![(i(1), i(-7)), (i(4), kid.clone())], Some(b"{}")),
            "application/cose",
            400,
            "Malformed request",
            "CWT claims",
        ),
        (
            "no kid, no x5chain",
            raw_statement(
                vec![(i(1), i(-7)), (i(15), claims(Some(ISSUER), Some("s")))],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Malformed request",
            "kid",
        ),
        (
            "unknown critical header",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(2), Value::Array(vec![i(777)])),
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                    (i(777), i(1)),
                ],
                Some(b"{}"),
            ),
            "application/cose",
            400,
            "Malformed request",
            "crit",
        ),
        (
            "detached payload",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                ],
                None,
            ),
            "application/cose",
            400,
            "Payload Missing",
            "detached",
        ),
        (
            "hash envelope with content type",
            raw_statement(
                vec![
                    (i(1), i(-7)),
                    (i(3), Value::Text("x".into())),
                    (i(4), kid.clone()),
                    (i(15), claims(Some(ISSUER), Some("s"))),
                    (i(258), i(-16)),
                ],
                Some(&[0u8; 32]),
            ),
            "application/cose",
            400,
            "Malformed request",
            "content type",
        ),
        (
            "bad signature",
            bad_sig,
            "application/cose",
            400,
            "Rejected",
            "signature",
        ),
        (
            "oversize",
            vec![0u8; 5000],
            "application/cose",
            413,
            "Payload Too Large",
            "limit",
        ),
        (
            "wrong media type",
            good.clone(),
            "application/json",
            415,
            "Unsupported Media Type",
            "application/cose",
        ),
    ];
    let mut c = Conn::connect(&url).await.unwrap();
    for (name, body, ct, status, title, detail) in &cases {
        let r = match c
            .request(hyper::Method::POST, "/entries", Some(ct), body.clone())
            .await
        {
            Ok(r) => r,
            Err(_) => {
                // The server may close after an unread oversize body; reconnect.
                c = Conn::connect(&url).await.unwrap();
                c.request(hyper::Method::POST, "/entries", Some(ct), body.clone())
                    .await
                    .unwrap()
            }
        };
        eprintln!("{name}: {}", vcon_scitt_client::describe(&r));
        assert_problem(&r, *status, title, detail);
        if *status == 413 {
            c = Conn::connect(&url).await.unwrap();
        }
    }
    // Routes and methods.
    let r = c.get("/no/such/thing").await.unwrap();
    assert_problem(&r, 404, "Not Found", "no resource");
    let r = c
        .request(hyper::Method::DELETE, "/entries", None, vec![])
        .await
        .unwrap();
    assert_problem(&r, 405, "Method Not Allowed", "DELETE");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = c.get("/entries/not-hex").await.unwrap();
    assert_problem(&r, 400, "Invalid locator", "hex");
    let r = c
        .get(&format!("/entries/{}", "ab".repeat(32)))
        .await
        .unwrap();
    assert_problem(&r, 404, "Not Found", "not known");

    // Nothing was written, and the server still registers.
    assert_eq!(srv.service.log.latest().head.size, FIRST_INDEX);
    let r = c.post_statement(good).await.unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(srv.service.log.latest().head.size, FIRST_INDEX + 2);
    let fsck = vcon_scitt::log::fsck(srv.service.log.store(), None).unwrap();
    assert_eq!(fsck.entries, FIRST_INDEX + 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_discovery_checkpoint_and_consistency() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let url = srv.url();
    let mut c = Conn::connect(&url).await.unwrap();
    let kid = srv.service.current_kid.clone();
    for form in [vcon_scitt::keys::b64url(&kid), hex::encode(&kid)] {
        let r = c
            .get(&format!("/.well-known/scitt-keys/{form}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let ks = KeySet::parse_any(&r.body).unwrap();
        assert!(ks.get(&kid).is_some());
    }
    let r = c.get("/.well-known/scitt-keys/AAAA").await.unwrap();
    assert_problem(&r, 404, "No such key", "kid");
    let jwks = c.get("/jwks").await.unwrap();
    let j: serde_json::Value = serde_json::from_slice(&jwks.body).unwrap();
    assert_eq!(j["keys"][0]["kty"], "EC");
    assert_eq!(j["keys"][0]["crv"], "P-256");
    let tc = c
        .get("/.well-known/transparency-configuration")
        .await
        .unwrap();
    let Value::Map(m) = vcon_scitt::cbor::decode(&tc.body).unwrap() else {
        panic!()
    };
    assert!(m.iter().any(
        |(k, v)| k.as_text() == Some("jwks_uri") && v.as_text() == Some(&format!("{url}/jwks"))
    ));
    // The log says which vds-1 leaf its receipts prove (issue 13): a new
    // log's is the SCITT WG's.
    assert!(
        m.iter()
            .any(|(k, v)| k.as_text() == Some("leaf_rule")
                && v.as_text() == Some("statement-sha256")),
        "{m:?}"
    );

    // Two batches, then a consistency receipt from the first head to the latest.
    let st1 = generic_statement("urn:example:c1", b"{}");
    let r1 = c.post_statement(st1.clone()).await.unwrap();
    let keys = fetch_keys(&url).await;
    let rep1 = verify_receipt(&st1, &r1.body, &keys);
    for k in 0..5 {
        assert_eq!(
            c.post_statement(generic_statement(&format!("urn:example:c{k}x"), b"{}"))
                .await
                .unwrap()
                .status,
            201
        );
    }
    let cp = c.get("/checkpoint").await.unwrap();
    let Value::Map(cpm) = vcon_scitt::cbor::decode(&cp.body).unwrap() else {
        panic!()
    };
    let size = cpm
        .iter()
        .find(|(k, _)| k.as_text() == Some("tree_size"))
        .and_then(|(_, v)| vcon_scitt::cbor::as_u64(v))
        .unwrap();
    assert_eq!(size, srv.service.log.latest().head.size);
    assert_eq!(entries_but_map_roots(&srv), POLICY_ENTRIES + 6);
    let cr = c
        .get(&format!("/consistency?from={}", rep1.tree_size))
        .await
        .unwrap();
    assert_eq!(cr.status, 200);
    let root1: merkle::Hash = hex::decode(&rep1.root).unwrap().try_into().unwrap();
    let info =
        vcon_scitt::receipt::verify_consistency_receipt(&cr.body, rep1.tree_size, &root1, &keys)
            .unwrap();
    assert_eq!(info.tree_size, size);
    // The verifier checks it end to end.
    let report = verify::verify(&Request {
        statement: st1.clone(),
        receipts: vec![r1.body.clone()],
        consistency: Some(cr.body.clone()),
        service_keys: keys.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(report.consistent_to.unwrap().tree_size, size);
    // A wrong old root is caught.
    let mut wrong = root1;
    wrong[0] ^= 1;
    assert!(
        vcon_scitt::receipt::verify_consistency_receipt(&cr.body, rep1.tree_size, &wrong, &keys)
            .is_err()
    );
    let bad = c.get("/consistency?from=0").await.unwrap();
    assert_eq!(bad.status, 404);
    let bad = c.get("/consistency?from=x").await.unwrap();
    assert_problem(&bad, 400, "Malformed request", "tree size");

    let h = c.get("/healthz").await.unwrap();
    assert_eq!(h.status, 200);
    let m = c.get("/metrics").await.unwrap();
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("vcon_scitt_registrations_total{outcome=\"created\"} 6"),
        "{text}"
    );
    assert!(
        text.contains(&format!("vcon_scitt_tree_size {size}")),
        "{text}"
    );
    assert!(text.contains("vcon_scitt_commit_seconds_bucket"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.auth.bearer_token_sha256 = vec![hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        b"s3cret",
    ))];
    cfg.rate_limit.per_client_per_sec = 0.05; // slow refill: exact counts even on a loaded machine
    cfg.rate_limit.burst = 3.0;
    let srv = server(cfg).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c
        .post_statement(generic_statement("urn:x:1", b"{}"))
        .await
        .unwrap();
    assert_problem(&r, 401, "Unauthorized", "Bearer");
    c.token = Some("wrong".into());
    let r = c
        .post_statement(generic_statement("urn:x:1", b"{}"))
        .await
        .unwrap();
    assert_problem(&r, 401, "Unauthorized", "not accepted");
    c.token = Some("s3cret".into());
    let mut statuses = Vec::new();
    for k in 0..6 {
        let r = c
            .post_statement(generic_statement(&format!("urn:x:{k}"), b"{}"))
            .await
            .unwrap();
        if r.status == 429 {
            assert_problem(&r, 429, "Too Many Requests", "per second");
            assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Reads stay public and unlimited.
    for _ in 0..10 {
        assert_eq!(c.get("/checkpoint").await.unwrap().status, 200);
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_get_verifiable_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let url = srv.url();
    const CLIENTS: usize = 64;
    const EACH: usize = 25;
    // Pre-sign everything so the test measures the server, not the client.
    let statements: Vec<Vec<Vec<u8>>> = (0..CLIENTS)
        .map(|c| {
            (0..EACH)
                .map(|k| generic_statement(&format!("urn:load:{c}:{k}"), b"{}"))
                .collect()
        })
        .collect();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = statements
        .into_iter()
        .map(|batch| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut c = Conn::connect(&url).await.unwrap();
                let mut out = Vec::new();
                for st in batch {
                    let r = c.post_statement(st.clone()).await.unwrap();
                    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
                    out.push((st, r.body));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} registrations by {CLIENTS} clients in {elapsed:?} ({:.0}/s)",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(all.len(), CLIENTS * EACH);
    let keys = fetch_keys(&url).await;
    let mut indices: Vec<u64> = all
        .iter()
        .map(|(st, r)| verify_receipt(st, r, &keys).leaf_index)
        .collect();
    indices.sort();
    indices.dedup();
    assert_eq!(
        indices.len(),
        CLIENTS * EACH,
        "every registration has its own index"
    );
    assert_eq!(
        entries_but_map_roots(&srv),
        POLICY_ENTRIES + (CLIENTS * EACH) as u64
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2sp_tiles_rebuild_the_signed_root() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(server_config(dir.path())).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    // Cross a tile boundary: the policy entry + 299 statements, and the
    // map-root entries closing their batches.
    let sts: Vec<Vec<u8>> = (0..299)
        .map(|k| generic_statement(&format!("urn:tile:{k}"), b"{}"))
        .collect();
    let pending: Vec<_> = sts
        .iter()
        .map(|st| {
            srv.service
                .log
                .submit(
                    vcon_scitt::statement::SignedStatement::parse(st, 1 << 16)
                        .unwrap()
                        .entry_bytes(),
                )
                .unwrap()
        })
        .collect();
    for p in pending {
        p.wait().await.unwrap();
    }
    // 300 entries and the batches' map-root entries: past one full tile.
    let head = srv.service.log.latest();
    let size = head.head.size;
    assert!(size > 300 && size < 512, "{size}");
    let w = size - 256;
    let full = c.get("/tile/0/000").await.unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(full.body.len(), 256 * 32);
    assert!(full.header("cache-control").unwrap().contains("immutable"));
    let partial = c.get(&format!("/tile/0/001.p/{w}")).await.unwrap();
    assert_eq!(partial.status, 200);
    assert_eq!(partial.body.len() as u64, w * 32);
    let level1 = c.get("/tile/1/000.p/1").await.unwrap();
    assert_eq!(level1.body.len(), 32);
    // The leaves from the tiles rebuild the signed root; the level-1 node is
    // the root of the full level-0 tile.
    let leaves: Vec<merkle::Hash> = full
        .body
        .chunks(32)
        .chain(partial.body.chunks(32))
        .map(|c| c.try_into().unwrap())
        .collect();
    let tree = merkle::MemoryTree::from_leaf_hashes(leaves.iter().copied());
    assert_eq!(tree.root_at(size), head.head.root);
    assert_eq!(level1.body, tree.root_at(256).to_vec());
    // Shorter partial widths are prefixes; beyond the signed width is 404.
    let p10 = c.get("/tile/0/001.p/10").await.unwrap();
    assert_eq!(p10.body, partial.body[..320]);
    assert_eq!(
        c.get(&format!("/tile/0/001.p/{}", w + 1))
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(c.get("/tile/0/001").await.unwrap().status, 404);
    // Found by the HTTP fuzz target: levels >= 8 hold no node (was a 500).
    assert_eq!(c.get("/tile/8/000.p/1").await.unwrap().status, 404);
    assert_eq!(c.get("/tile/63/000").await.unwrap().status, 404);
    assert_problem(
        &c.get("/tile/0/1").await.unwrap(),
        400,
        "Malformed request",
        "C2SP",
    );
    srv.stop().await;
}

/// Issue 13 (interop): a client that prefers a synchronous answer says so
/// with RFC 7240 `Prefer: wait=N` and gets the 201 where the configured
/// budget alone would give a 202; a client that asks for RFC 9942's
/// receipt media type gets it (same bytes), others get `application/cose`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_wait_the_receipt_media_type_and_signed_statements() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.registration.wait_ms = 0;
    // The sequencer lingers for company: with no wait, every POST is a 202.
    cfg.sequencer.max_delay_us = 300_000;
    cfg.registration.max_wait_ms = 5_000;
    let srv = server(cfg).await;
    let keys = fetch_keys(&srv.url()).await;
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c
        .post_statement(generic_statement("urn:example:no-wait", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", vcon_scitt_client::describe(&r));

    let hyper_name = |n: &'static str| hyper::header::HeaderName::from_static(n);
    c.headers = vec![
        (hyper_name("prefer"), "respond-async, wait=60".into()),
        (
            hyper_name("accept"),
            "application/scitt-receipt+cose".into(),
        ),
    ];
    let st = generic_statement("urn:example:wait", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    // Asked for 60 s, capped to the configured 5 s.
    assert_eq!(r.header("preference-applied"), Some("wait=5"));
    assert_eq!(
        r.header("content-type"),
        Some("application/scitt-receipt+cose")
    );
    verify_receipt(&st, &r.body, &keys);
    let location = r.header("location").unwrap().to_owned();
    let g = c.get(&location).await.unwrap();
    assert_eq!(
        g.header("content-type"),
        Some("application/scitt-receipt+cose")
    );
    assert_eq!(g.header("vary"), Some("Accept"));
    let receipt = g.body.clone();
    c.headers.clear();
    let g = c.get(&location).await.unwrap();
    assert_eq!(g.header("content-type"), Some("application/cose"));
    assert_eq!(g.body, receipt, "the same receipt under either type");

    // scittles' client path for the registered Signed Statement: the bytes
    // it sent (their unprotected header was empty).
    let id = location.rsplit('/').next().unwrap();
    let got = c.get(&format!("/signed-statements/{id}")).await.unwrap();
    assert_eq!(got.status, 200, "{}", vcon_scitt_client::describe(&got));
    assert_eq!(got.body, st);
    let missing = c
        .get(&format!("/signed-statements/{}", "ab".repeat(32)))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(c.get("/signed-statements/zz").await.unwrap().status, 400);
    srv.stop().await;
}

/// The leaf rule is a per-log setting fixed at creation (issue 13): a log
/// created with `entry` keeps it across restarts, publishes it, and its
/// receipts verify under it (and only it); asking an existing log for
/// another rule is refused at start with both names; a store written before
/// the setting existed (entries, no recorded rule) is an `entry` log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaf_rule_is_fixed_when_the_log_is_created() {
    use vcon_scitt::statement::LeafRule;
    let leaf_rule_published = |body: &[u8]| -> String {
        let Value::Map(m) = vcon_scitt::cbor::decode(body).unwrap() else {
            panic!()
        };
        m.iter()
            .find(|(k, _)| k.as_text() == Some("leaf_rule"))
            .and_then(|(_, v)| v.as_text().map(str::to_owned))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    cfg.leaf_rule = Some(LeafRule::Entry);
    let srv = server(cfg).await;
    let url = srv.url();
    let st = generic_statement("urn:example:entry-log", b"{}");
    let r = Conn::connect(&url)
        .await
        .unwrap()
        .post_statement(st.clone())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let entry = vcon_scitt::statement::SignedStatement::parse(&st, 1 << 20)
        .unwrap()
        .entry_bytes();
    assert_eq!(
        r.header("location"),
        Some(format!("/entries/{}", hex::encode(merkle::leaf_hash(&entry))).as_str())
    );
    let keys = fetch_keys(&url).await;
    assert_eq!(
        verify_receipt(&st, &r.body, &keys).leaf_rule,
        LeafRule::Entry
    );
    // Told the wrong rule, the verifier fails (class 8) and names the rule.
    let wrong = verify::verify(&Request {
        statement: st.clone(),
        receipts: vec![r.body.clone()],
        service_keys: keys.clone(),
        now: vcon_scitt::time::now_secs(),
        leaf_rule: Some(LeafRule::StatementSha256),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(wrong.exit_code(), 8, "{wrong}");
    assert!(wrong.to_string().contains("statement-sha256"), "{wrong}");
    srv.stop().await;

    // Restarted with no setting: still an entry log.
    let srv = server(server_config(dir.path())).await;
    let tc = vcon_scitt_client::get(&srv.url(), "/.well-known/transparency-configuration")
        .await
        .unwrap();
    assert_eq!(leaf_rule_published(&tc.body), "entry");
    srv.stop().await;

    // Asked for the other rule: refused, naming both.
    let mut cfg = server_config(dir.path());
    cfg.leaf_rule = Some(LeafRule::StatementSha256);
    let err = start(cfg, None).await.err().expect("refused");
    assert!(
        err.contains("leaf_rule is statement-sha256")
            && err.contains("created with leaf rule entry"),
        "{err}"
    );

    // A store from before the setting: entries and no recorded rule.
    let old = tempfile::tempdir().unwrap();
    let db = old.path().join("db");
    tokio::task::spawn_blocking(move || {
        let log = open_log(&db, Default::default());
        log.append_blocking(b"an entry written before leaf rules".to_vec())
            .unwrap();
    })
    .await
    .unwrap();
    let srv = server(server_config(old.path())).await;
    let tc = vcon_scitt_client::get(&srv.url(), "/.well-known/transparency-configuration")
        .await
        .unwrap();
    assert_eq!(leaf_rule_published(&tc.body), "entry");
    srv.stop().await;
}

/// A C2SP entry bundle's u16 length caps an entry at 65,535 bytes: the
/// statement cap defaults to that and a larger one is refused at start,
/// naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cap_over_the_bundle_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = server_config(dir.path());
    assert_eq!(cfg.registration.max_statement_bytes, 65_535);
    cfg.registration.max_statement_bytes = 65_536;
    let err = start(cfg, None).await.err().expect("refused");
    assert!(err.contains("max_statement_bytes"), "{err}");
}
