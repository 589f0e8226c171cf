//! The security issue's findings, each as a regression test against a real
//! server on loopback (bounded in count and time). A finding fixed in a
//! library without an HTTP surface has its test beside the code and is
//! named here.
//!
//! - Finding 5 (CPU amplification by header floods): `header_floods_*` here;
//!   `core/src/cose.rs` `header_floods_are_refused_before_any_per_label_work`.
//! - Finding 8 (5xx from reads racing the sequencer):
//!   `reads_racing_an_unpublished_head_*` here.
//! - Finding 4 (time arithmetic): `tests/lifecycle.rs`
//!   `every_policy_rule_rejects_with_its_name` (`iat-range`, `iat-future`).
//! - Finding 9 (world-readable data): `data_dirs_and_backups_are_private`
//!   here; `src/durable.rs` `private_directories_are_0700_all_the_way_down`.
//!   (`vcon-verify` panicking on a short kid: `core/src/verify.rs`.)
//! - Finding 6 (ECDSA malleability): `malleated_and_resigned_*`,
//!   `an_old_data_dir_*` and `a_malleated_copy_answered_202_*` here;
//!   `src/log/sequencer.rs`
//!   `two_entries_with_one_identity_*`; `core/tests/fuzz_parsers.rs`
//!   `a_malleated_es256_signature_verifies_but_keeps_the_registration_identity`.
//! - Findings 2, 3 and 9 (crowded views): `tests/adversarial_consent.rs`.
//! - Finding 1 (x5chain): `tests/x509.rs`. Finding 7 (PII): `tests/lifecycle.rs`
//!   `the_pii_guard_covers_every_statement`.
//! - All classes at once, with honest clients alongside (and the long mode):
//!   `tests/adversarial_load.rs`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_are_a_clear_400_and_honest_clients_are_unaffected() {
    let data = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let flood = header_flood(10_000);
    assert!(flood.len() < 64 * 1024, "within the statement size cap");
    for _ in 0..20 {
        let r = c.post_statement(flood.clone()).await.unwrap();
        assert_eq!(r.status, 400, "{}", vcon_scitt_client::describe(&r));
        let p = r.problem().unwrap();
        assert!(
            p.detail.contains("10000 parameters"),
            "the detail says what was wrong: {}",
            p.detail
        );
    }
    let r = c
        .post_statement(generic_statement("urn:after-flood", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    srv.stop().await;
}

/// The sequencer stores a batch's signed head, then publishes it. A GET in
/// between found the stored head, asked the log for a proof beyond the
/// published size and got a 500 ("size N is beyond the latest signed size").
/// Here the window is held open for 600 ms; every read in it must be a 204
/// (pending) or a 4xx, and the receipt must come once the head is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_an_unpublished_head_are_never_a_5xx() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.registration.wait_ms = 20;
    let srv = start(cfg, None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let first = c
        .post_statement(generic_statement("urn:race:0", b"{}"))
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    let size_before = srv.service.log.latest().head.size;

    srv.service
        .log
        .faults()
        .delay_next_publish_ms
        .store(600, Ordering::SeqCst);
    let st = generic_statement("urn:race:1", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 202, "{}", vcon_scitt_client::describe(&r));
    let location = r.header("location").unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut statuses = Vec::new();
    loop {
        let g = c.get(&location).await.unwrap();
        let s = c.get(&format!("{location}/statement")).await.unwrap();
        let k = c
            .get(&format!("/consistency?from=1&to={}", size_before + 1))
            .await
            .unwrap();
        for (what, reply) in [("receipt", &g), ("statement", &s), ("consistency", &k)] {
            assert!(
                reply.status < 500,
                "{what} answered {} while the head was unpublished",
                vcon_scitt_client::describe(reply)
            );
        }
        statuses.push(g.status);
        if g.status == 200 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(
        statuses.contains(&204),
        "the window was observed as pending: {statuses:?}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dirs_and_backups_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh/data");
    let srv = start(server_config(&data), None).await.unwrap();
    let (backup, _) = srv.service.backup().unwrap();
    for d in [&data, &data.join("backups"), &backup] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    srv.stop().await;
}

/// The issuer signing the same protected header and payload again (ECDSA
/// draws a fresh nonce, so the signature differs).
fn resign(statement: &[u8]) -> Vec<u8> {
    let p = vcon_scitt::cose::split(statement).unwrap();
    let tbs = vcon_scitt::cose::sig_structure(&p.protected, p.payload.as_deref().unwrap());
    let sig = issuer_key().sign(&tbs).unwrap();
    vcon_scitt::cose::encode_sign1(&p.protected, p.unprotected, p.payload.as_deref(), &sig)
}

/// A lifecycle statement from the ES256 test issuer about the test vCon.
fn lifecycle(dir: &std::path::Path, event: &str, at: &str) -> Vec<u8> {
    lifecycle_statement(dir, event, at, None, &[])
}

const VCON_UUID: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";

/// Asserts `copy` is answered as the registration of `original`: 201, the
/// original's Location and receipt bytes, and no new entry.
async fn assert_same_registration(
    c: &mut Conn,
    srv: &vcon_scitt::http::Running,
    copy: Vec<u8>,
    location: &str,
    receipt: &[u8],
    what: &str,
) {
    let size = srv.service.log.latest().head.size;
    let r = c.post_statement(copy).await.unwrap();
    assert_eq!(r.status, 201, "{what}: {}", vcon_scitt_client::describe(&r));
    assert_eq!(
        r.header("location"),
        Some(location),
        "{what}: answered as the first registration"
    );
    assert_eq!(r.body, receipt, "{what}: the first registration's receipt");
    assert_eq!(
        srv.service.log.latest().head.size,
        size,
        "{what}: no second entry"
    );
}

/// Finding 6: anyone could turn an issuer's ES256 statement into a second
/// verifying entry (s' = n − s), which showed up as a second event of the
/// issuer's (here: "vcon_created" again after "vcon_deleted"). The
/// registration is now identified by what the issuer signed, so the
/// malleated copy, and the issuer's own re-signed copy, are the first
/// registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malleated_and_resigned_statements_are_the_first_registration() {
    use vcon_scitt::statement::SignedStatement;
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();

    let created = lifecycle(work.path(), "vcon_created", "2026-11-20T10:00:00Z");
    let r = c.post_statement(created.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let location = r.header("location").unwrap().to_owned();
    let receipt = r.body.clone();
    let deleted = lifecycle(work.path(), "vcon_deleted", "2026-11-20T11:00:00Z");
    let r = c.post_statement(deleted).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));

    // The attack is real: the copy verifies under the issuer's key and is
    // different entry bytes.
    let original = SignedStatement::parse(&created, usize::MAX).unwrap();
    let mauled = malleate(&created);
    let m = SignedStatement::parse(&mauled, usize::MAX).unwrap();
    m.verify_signature(&issuer_key().public()).unwrap();
    assert_ne!(
        m.leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256),
        original.leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256)
    );
    assert_same_registration(&mut c, &srv, mauled, &location, &receipt, "n − s").await;

    let resigned = resign(&created);
    assert_ne!(resigned, created, "ECDSA signatures are randomised");
    assert_same_registration(
        &mut c,
        &srv,
        resigned.clone(),
        &location,
        &receipt,
        "re-signed",
    )
    .await;

    // What `vcon-scitt register` writes for the re-signed copy: the
    // registered bytes with the receipt, which verify; its own bytes would
    // not (the receipt covers the first registration).
    let (written, earlier) = vcon_scitt_client::registered_transparent_statement(
        &srv.url(),
        &resigned,
        &location,
        receipt.clone(),
    )
    .await
    .unwrap();
    assert!(earlier);
    let report = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: written,
        service_keys: service_keys(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        Some(report.entry_id.as_str()),
        location.strip_prefix("/entries/")
    );

    // The receipt covers the first registration's bytes, which the service
    // serves; the malleated entry id never became an entry.
    let leaf = original.leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256);
    vcon_scitt::receipt::verify_inclusion_receipt(&receipt, &leaf, &service_keys()).unwrap();
    let ts = c.get(&format!("{location}/statement")).await.unwrap();
    assert_eq!(ts.status, 200);
    let ts = SignedStatement::parse(&ts.body, usize::MAX).unwrap();
    assert_eq!(
        ts.leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256),
        leaf
    );
    let mauled_id = vcon_scitt::statement::entry_id(
        &m.leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256),
    );
    let g = c.get(&format!("/entries/{mauled_id}")).await.unwrap();
    assert_eq!(g.status, 404);

    // One created event, not a second one after the deletion.
    let h = c.get(&format!("/vcons/{VCON_UUID}/entries")).await.unwrap();
    let h: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    let events: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["vcon_created", "vcon_deleted"]);
    srv.stop().await;
}

/// Data dirs written before registration identities existed have no
/// identity rows: the service backfills them when it opens, so a malleated
/// copy of an old statement is still the old registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_data_dir_gets_identities_and_dedups_malleated_copies() {
    let data = tempfile::tempdir().unwrap();
    let st = generic_statement("urn:before-identities", b"{}");
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let location = r.header("location").unwrap().to_owned();
    let receipt = r.body.clone();
    srv.stop().await;
    {
        let store = vcon_scitt::log::Store::open(&data.path().join("db")).unwrap();
        store.forget_identities().unwrap();
        assert_eq!(store.identities().unwrap().count(), 0);
    }

    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    assert_same_registration(&mut c, &srv, malleate(&st), &location, &receipt, "n − s").await;
    srv.stop().await;
    let store = vcon_scitt::log::Store::open(&data.path().join("db")).unwrap();
    let report = vcon_scitt::log::fsck(&store, None).unwrap();
    assert_eq!(
        report.identities, report.entries,
        "every entry (the policy and the statement) has its identity row: {report:?}"
    );
    // fsck checks the rows: one naming a leaf that is not stored is caught.
    let key = [7u8; 32];
    let value = [&0u64.to_be_bytes()[..], &[7u8; 32]].concat();
    store
        .put_raw(vcon_scitt::log::store::CF_IDENTITIES, &key, &value)
        .unwrap();
    let e = vcon_scitt::log::fsck(&store, None).unwrap_err();
    assert!(e.to_string().contains("identity row"), "{e}");
}

/// The 202 path: a malleated copy that outlives the wait budget was given a
/// Location with its own entry id, which never becomes an entry. Polling it
/// ends in a 404 that names the registered entry, not a silent "unknown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malleated_copy_answered_202_is_pointed_at_the_registered_entry() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.registration.wait_ms = 20;
    let srv = start(cfg, None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let st = generic_statement("urn:late-copy", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let registered = r.header("location").unwrap().to_owned();

    srv.service
        .log
        .faults()
        .delay_next_publish_ms
        .store(300, Ordering::SeqCst);
    let r = c.post_statement(malleate(&st)).await.unwrap();
    assert_eq!(r.status, 202, "{}", vcon_scitt_client::describe(&r));
    let location = r.header("location").unwrap().to_owned();
    assert_ne!(location, registered);
    let deadline = Instant::now() + Duration::from_secs(5);
    let g = loop {
        let g = c.get(&location).await.unwrap();
        if g.status != 204 || Instant::now() > deadline {
            break g;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(g.status, 404, "{}", vcon_scitt_client::describe(&g));
    let p = g.problem().unwrap();
    assert!(
        p.detail.contains(&format!(
            "already registered as entry {}",
            &registered["/entries/".len()..]
        )),
        "{}",
        p.detail
    );
    srv.stop().await;
}
