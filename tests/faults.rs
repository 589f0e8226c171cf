//! Storage faults seen through the HTTP API: a failed batch is answered 503
//! (never 201), nothing half-written survives, the service recovers; a
//! corrupted tile halts signing (alarm, 503, /healthz fails) while reads keep
//! being served, and a restart refuses to sign over the corruption.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_503_and_the_retry_succeeds() {
    let data = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let log = &srv.service.log;
    let before = log.latest().head.size;

    log.faults()
        .fail_next_data_write
        .store(true, Ordering::SeqCst);
    let st = generic_statement("urn:fault:data", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 503, "{}", vcon_scitt_client::describe(&r));
    assert_eq!(r.problem().unwrap().title, "Service Unavailable");
    assert!(r.header("retry-after").is_some());
    assert_eq!(log.latest().head.size, before, "nothing was acknowledged");
    let leaf = vcon_scitt::statement::SignedStatement::parse(&st, usize::MAX)
        .unwrap()
        .leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256);
    assert!(
        log.index_of(&leaf).unwrap().is_none(),
        "nothing half-written"
    );
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(
        r.status,
        201,
        "the retry succeeds: {}",
        vcon_scitt_client::describe(&r)
    );

    log.faults()
        .fail_next_head_write
        .store(true, Ordering::SeqCst);
    let st2 = generic_statement("urn:fault:head", b"{}");
    let r = c.post_statement(st2.clone()).await.unwrap();
    assert_eq!(
        r.status, 503,
        "a batch whose head was not persisted is not acknowledged"
    );
    let r = c.post_statement(st2.clone()).await.unwrap();
    assert_eq!(r.status, 201);
    verify_ok(&st2, &r.body);
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    vcon_scitt::log::fsck(log.store(), None).unwrap();
    srv.stop().await;

    // After a restart everything acknowledged is there and consistent.
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    for s in [&st, &st2] {
        let leaf = vcon_scitt::statement::SignedStatement::parse(s, usize::MAX)
            .unwrap()
            .leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256);
        let g = c
            .get(&format!("/entries/{}", hex::encode(leaf)))
            .await
            .unwrap();
        assert_eq!(g.status, 200);
        verify_ok(s, &g.body);
    }
    srv.stop().await;
}

fn verify_ok(st: &[u8], receipt: &[u8]) {
    vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st.to_vec(),
        receipts: vec![receipt.to_vec()],
        service_keys: service_keys(),
        ..Default::default()
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_node_halts_signing_but_reads_continue() {
    let data = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let good = generic_statement("urn:fault:before", b"{}");
    let r = c.post_statement(good.clone()).await.unwrap();
    assert_eq!(r.status, 201);
    let location = r.header("location").unwrap().to_owned();
    let size_before = srv.service.log.latest().head.size;

    srv.service
        .log
        .faults()
        .corrupt_next_tile
        .store(true, Ordering::SeqCst);
    let r = c
        .post_statement(generic_statement("urn:fault:poison", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", vcon_scitt_client::describe(&r));
    assert!(
        r.problem().unwrap().detail.contains("refusing to sign"),
        "{}",
        r.problem().unwrap().detail
    );
    // The alarm is visible, writes are refused, nothing new is signed.
    let h = c.get("/healthz").await.unwrap();
    assert_eq!(h.status, 503);
    assert!(h.problem().unwrap().detail.contains("halted"));
    let m = String::from_utf8(c.get("/metrics").await.unwrap().body).unwrap();
    assert!(m.contains("vcon_scitt_log_halted 1"));
    let r = c
        .post_statement(generic_statement("urn:fault:after", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(srv.service.log.latest().head.size, size_before);
    // Reads keep working: the old receipt and the key set.
    let g = c.get(&location).await.unwrap();
    assert_eq!(g.status, 200);
    verify_ok(&good, &g.body);
    // Corrupt an old stored leaf behind the service's back: the read path
    // refuses to hand out a receipt that does not match its signed root.
    let good_leaf = vcon_scitt::statement::SignedStatement::parse(&good, usize::MAX)
        .unwrap()
        .leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256);
    let good_index = srv.service.log.index_of(&good_leaf).unwrap().unwrap();
    // Its sibling leaf: the proof's first hash (its own leaf is never read).
    let (tile_id, _, offset) = vcon_scitt::merkle::tile::TileId::locate(0, good_index ^ 1);
    let store = srv.service.log.store();
    let mut tile = store.tile(tile_id).unwrap().unwrap().to_bytes();
    tile[2 + offset * 32] ^= 0x80;
    store
        .put_raw(vcon_scitt::log::store::CF_TILES, &tile_id.key(), &tile)
        .unwrap();
    let g = c.get(&location).await.unwrap();
    assert_eq!(
        g.status, 500,
        "a receipt from corrupted storage must not be served"
    );
    // The detail (which proof, which root, "run fsck") is for the operator's
    // log; the client is told only that it is an internal error.
    assert_eq!(
        g.problem().unwrap().detail,
        vcon_scitt::http::error::INTERNAL_DETAIL
    );
    srv.stop().await;
    // A restart re-verifies the stored tree and refuses to sign over it.
    let again = start(server_config(data.path()), None).await;
    assert!(
        again.is_err(),
        "the service must not open over a corrupt tree"
    );
    let msg = again.err().unwrap();
    assert!(
        msg.contains("refusing to sign") || msg.contains("tile"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_read_back_refuses_to_sign_and_a_restart_recovers() {
    let data = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let before = srv.service.log.latest().head.size;
    srv.service
        .log
        .faults()
        .fail_next_verify_read
        .store(true, Ordering::SeqCst);
    let st = generic_statement("urn:fault:read", b"{}");
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 503, "{}", vcon_scitt_client::describe(&r));
    assert_eq!(
        srv.service.log.latest().head.size,
        before,
        "nothing signed without verification"
    );
    assert_eq!(c.get("/healthz").await.unwrap().status, 503);
    srv.stop().await;
    // The data on disk is intact: recovery re-verifies it and signs.
    let srv = start(server_config(data.path()), None).await.unwrap();
    // The entry and the map-root entry closing its batch.
    assert_eq!(srv.service.log.latest().head.size, before + 2);
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c.post_statement(st.clone()).await.unwrap();
    assert_eq!(r.status, 201);
    verify_ok(&st, &r.body);
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    srv.stop().await;
}
