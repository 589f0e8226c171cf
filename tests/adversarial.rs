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

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ciborium::value::Value;
use common::*;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

/// A COSE_Sign1 whose protected header holds `n` distinct labels: unsigned
/// garbage that, before the fix, cost O(n²) before any signature check.
fn header_flood(n: i64) -> Vec<u8> {
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
