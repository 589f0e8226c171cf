//! Beyond one machine, part 1, with real parts: moto (an S3 API server),
//! a writer (`vcon-scitt serve --publish-to s3://log`) and a read replica
//! (`vcon-scitt serve --replica-of s3://log`), each its own process on
//! loopback.
//!
//! - Every receipt, statement and tile the replica serves is byte-identical
//!   to the writer's, and every receipt verifies offline.
//! - The replica follows new batches, and answers a registration with 421
//!   naming the writer.
//! - A writer SIGKILLed while publishing resumes: the bucket's checkpoint
//!   never covers a missing object, and picks up where it stopped.
//! - A replica refuses a bucket whose checkpoint is re-signed by another
//!   key or goes back in size, and keeps serving what it verified.
//! - A replica answers the vCon views (history, consent, lineage, events,
//!   proof bundles, policy) with the writer's bytes, derived again from
//!   the entries, across its own restart; and refuses a map root the
//!   writer signed that is not the map of the entries.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Moto, Server, cli, stable_writer, tree_size};
use common::*;
use vcon_scitt::verify;

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    writer_config_file(dir)
}

/// A writer on `dir/<name>` publishing to the moto bucket `log`.
fn writer(moto: &Moto, dir: &std::path::Path, name: &str) -> Server {
    let cfg = config_file(dir);
    Server::spawn(
        &dir.join(name),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--publish-to",
            "s3://log",
        ],
        &moto.env(),
    )
}

/// A writer publishes `n` registrations to the bucket and stops; their
/// (entry id, receipt) and the published size.
async fn published_log(
    moto: &Moto,
    dir: &std::path::Path,
    name: &str,
    n: usize,
) -> (Vec<(String, Vec<u8>)>, u64) {
    let w = writer(moto, dir, name);
    let acked = register(&w.url, name, n).await;
    let size = tree_size(&w.url).await;
    moto.wait_for(size).await;
    w.stop();
    (acked, size)
}

/// Registers `n` statements with 4 concurrent clients; (entry id, receipt).
async fn register(url: &str, tag: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (url, tag) = (url.to_owned(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
            let mut out = Vec::new();
            for i in (w..n).step_by(4) {
                let st = generic_statement(&format!("urn:example:{tag}:{i}"), b"{}");
                let r = c.post_statement(st.clone()).await.unwrap();
                assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
                verify::verify(&verify::Request {
                    statement: st,
                    receipts: vec![r.body.clone()],
                    service_keys: service_keys(),
                    ..Default::default()
                })
                .expect("a 201 receipt verifies");
                let id = r
                    .header("location")
                    .unwrap()
                    .trim_start_matches("/entries/")
                    .to_owned();
                out.push((id, r.body));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Waits (≤ 60 s) until the replica shows `size`.
async fn replica_reaches(url: &str, size: u64) {
    let started = Instant::now();
    while tree_size(url).await < size {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replica did not reach size {size} in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn same(writer: &str, replica: &str, path: &str) -> Vec<u8> {
    let w = vcon_scitt_client::get(writer, path).await.unwrap();
    let r = vcon_scitt_client::get(replica, path).await.unwrap();
    assert_eq!(w.status, 200, "writer {path}");
    assert_eq!(r.status, 200, "replica {path}");
    assert_eq!(w.body, r.body, "{path} differs between writer and replica");
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_the_writers_bytes_from_the_bucket_and_follows_it() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&moto, dir.path(), "writer");
    // More than one full tile and bundle, in many batches.
    let mut acked = register(&writer.url, "first", 600).await;
    let size = tree_size(&writer.url).await;
    assert!(size > 512, "{size}");
    moto.wait_for(size).await;

    let replica = Server::spawn(
        &dir.path().join("replica"),
        &["--replica-of", "s3://log"],
        &moto.env(),
    );
    replica_reaches(&replica.url, size).await;
    let (w, r) = (writer.url.as_str(), replica.url.as_str());
    let check_all = |acked: Vec<(String, Vec<u8>)>| async move {
        for (id, receipt) in &acked {
            let got = same(w, r, &format!("/entries/{id}")).await;
            assert_eq!(&got, receipt, "the replica's receipt is the 201's");
            let ts = same(w, r, &format!("/entries/{id}/statement")).await;
            let st = same(w, r, &format!("/signed-statements/{id}")).await;
            let rep = verify::verify(&verify::Request {
                statement: st,
                receipts: vec![got],
                service_keys: service_keys(),
                ..Default::default()
            })
            .expect("a replica's receipt verifies offline");
            assert!(rep.leaf_index < tree_size(r).await);
            assert!(!ts.is_empty());
        }
    };
    check_all(acked.clone()).await;
    for path in [
        "/tile/0/000",
        "/tile/0/001",
        "/tile/entries/000",
        "/tile/statements/001",
        "/.well-known/transparency-configuration",
        "/.well-known/scitt-keys",
        "/jwks",
        "/consistency?from=1",
    ] {
        same(w, r, path).await;
    }
    // The C2SP note: the bucket's, which the writer signed.
    let mut c = vcon_scitt_client::Conn::connect(r).await.unwrap();
    c.headers
        .push((hyper::header::ACCEPT, "text/plain".to_owned()));
    let note = c.get("/checkpoint").await.unwrap();
    assert_eq!(note.status, 200);
    assert_eq!(Some(note.body), moto.get("checkpoint").await);

    // Only reads: a registration is sent to the writer.
    let post = vcon_scitt_client::Conn::connect(r)
        .await
        .unwrap()
        .post_statement(generic_statement("urn:example:misdirected", b"{}"))
        .await
        .unwrap();
    assert_eq!(post.status, 421);
    let p = vcon_scitt::problem::Problem::from_cbor(post.status, &post.body).unwrap();
    assert!(p.detail.contains(w), "{}", p.detail);
    let metrics = vcon_scitt_client::get(r, "/metrics").await.unwrap();
    assert_eq!(metrics.status, 421, "the writer's metrics are the writer's");

    // It follows new batches.
    let more = register(w, "second", 300).await;
    let size2 = tree_size(w).await;
    replica_reaches(r, size2).await;
    check_all(more.clone()).await;
    acked.extend(more);
    same(w, r, &format!("/consistency?from={size}&to={size2}")).await;
    let health = vcon_scitt_client::get(r, "/healthz").await.unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&health.body),
        format!("ok replica tree_size={size2}\n")
    );
    // A monitor can follow the replica instead of the writer: it recomputes
    // every root and map root from what the replica serves, and checks
    // every issuer signature, with the same result.
    let state = tempfile::tempdir().unwrap();
    let mon = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["monitor", "--rounds", "1", "--url", r, "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    assert_eq!(
        mon.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&mon.stdout),
        String::from_utf8_lossy(&mon.stderr)
    );
    writer.stop();
    replica.stop();
    // The bucket alone, checked by fsck: note, heads, tree, tiles, bundles.
    let (code, out) = fsck_bucket(&moto);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("bucket OK: s3://log at size {size2}")),
        "{out}"
    );
}

/// `vcon-scitt fsck --bucket s3://log`: (exit code, stdout + stderr).
fn fsck_bucket(moto: &Moto) -> (i32, String) {
    cli(moto, &["fsck", "--bucket", "s3://log"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_while_publishing_resumes_and_the_checkpoint_never_runs_ahead() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let data = dir.path().join("writer");
    let mut total = 0;
    // A writer keeps its public URL across restarts (the checkpoint's
    // origin and the receipts' issuer derive from it); its port does not.
    let args = stable_writer(&cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for cycle in 0..3 {
        let writer = Server::spawn(&data, &args, &moto.env());
        register(&writer.url, &format!("c{cycle}"), 300).await;
        total = tree_size(&writer.url).await;
        // SIGKILL (drop) while the publisher is mid-round, most likely.
        drop(writer);
        // Whatever the bucket's checkpoint says, every object it covers is there.
        let published = moto.checkpoint_size().await;
        assert!(published <= total);
        for index in 0..published.div_ceil(256) {
            let width = (published - index * 256).min(256);
            let name = vcon_scitt::merkle::bundle::path("tile/entries", index, width as usize);
            assert!(
                moto.get(&name).await.is_some(),
                "{name} missing under a checkpoint at {published}"
            );
        }
    }
    // A clean start publishes the rest.
    let writer = Server::spawn(&data, &args, &moto.env());
    moto.wait_for(total).await;
    let replica = Server::spawn(
        &dir.path().join("replica"),
        &["--replica-of", "s3://log"],
        &moto.env(),
    );
    replica_reaches(&replica.url, total).await;
    same(&writer.url, &replica.url, "/tile/0/000").await;
    writer.stop();
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stops_following_a_bucket_that_lies_and_keeps_what_it_verified() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (acked, size) = published_log(&moto, dir.path(), "lie", 100).await;
    let replica = Server::spawn(
        &dir.path().join("replica"),
        &["--replica-of", "s3://log"],
        &moto.env(),
    );
    replica_reaches(&replica.url, size).await;

    // A checkpoint for a bigger tree, signed by another key under the
    // same origin: refused.
    let note = String::from_utf8(moto.get("checkpoint").await.unwrap()).unwrap();
    let origin = note.lines().next().unwrap().to_owned();
    let (other, _) =
        vcon_scitt::keys::SigningKey::generate(vcon_scitt::keys::Alg::Ed25519).unwrap();
    let forged = vcon_scitt::note::sign_checkpoint(&origin, size + 5, &[9u8; 32], &other).unwrap();
    moto.put("checkpoint", forged.into_bytes()).await;
    let started = Instant::now();
    loop {
        let h = vcon_scitt_client::get(&replica.url, "/healthz")
            .await
            .unwrap();
        if h.status == 503 {
            let p = vcon_scitt::problem::Problem::from_cbor(h.status, &h.body).unwrap();
            assert!(p.detail.contains("following stopped"), "{}", p.detail);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no alarm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it verified is still served, unchanged.
    assert_eq!(tree_size(&replica.url).await, size);
    let (id, receipt) = &acked[0];
    let got = vcon_scitt_client::get(&replica.url, &format!("/entries/{id}"))
        .await
        .unwrap();
    assert_eq!(&got.body, receipt);
    replica.stop();
    // fsck of the bucket refuses it too.
    let (code, out) = fsck_bucket(&moto);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_of_a_bucket_finds_a_tile_that_is_not_the_logs() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    published_log(&moto, dir.path(), "tile", 300).await;
    assert_eq!(fsck_bucket(&moto).0, 0);
    let mut tile = moto.get("tile/0/000").await.unwrap();
    tile[40] ^= 1;
    moto.put("tile/0/000", tile).await;
    let (code, out) = fsck_bucket(&moto);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("tile/0/000 in the bucket is not the tile"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_never_publishes_over_another_logs_bucket() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    published_log(&moto, dir.path(), "first", 50).await;
    let configuration = moto.get("vcon-scitt/transparency-configuration").await;
    let checkpoint = moto.get("checkpoint").await;
    // Another data dir: another checkpoint key, another log.
    let second = writer(&moto, dir.path(), "second");
    register(&second.url, "second", 10).await;
    let started = Instant::now();
    loop {
        let m = vcon_scitt_client::get(&second.url, "/metrics")
            .await
            .unwrap();
        if String::from_utf8_lossy(&m.body).contains("vcon_scitt_publish_stopped 1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no alarm");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It still registers (publishing is not durability in `local` mode)...
    register(&second.url, "after", 4).await;
    // ...and the bucket is the first log's, untouched.
    assert_eq!(
        moto.get("vcon-scitt/transparency-configuration").await,
        configuration
    );
    assert_eq!(moto.get("checkpoint").await, checkpoint);
    second.stop();
}

/// The same layout in a local directory (`file:///dir`, for a web server
/// or a sync job to serve): published, checked by fsck, followed by a
/// replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_published_to_a_directory_is_checked_and_followed_like_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = dir.path().join("published");
    let url = format!("file://{}", out.display());
    let writer = Server::spawn(
        &dir.path().join("writer"),
        &["--config", cfg.to_str().unwrap(), "--publish-to", &url],
        &[],
    );
    let acked = register(&writer.url, "dir", 300).await;
    let size = tree_size(&writer.url).await;
    let started = Instant::now();
    loop {
        let note = std::fs::read_to_string(out.join("checkpoint")).unwrap_or_default();
        if note.lines().nth(1) == Some(size.to_string().as_str()) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(out.join("tile/0/000").exists() && out.join("tile/statements/000").exists());
    let replica = Server::spawn(&dir.path().join("replica"), &["--replica-of", &url], &[]);
    replica_reaches(&replica.url, size).await;
    let (id, receipt) = &acked[7];
    assert_eq!(
        &same(&writer.url, &replica.url, &format!("/entries/{id}")).await,
        receipt
    );
    writer.stop();
    replica.stop();
    let fsck = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["fsck", "--bucket", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert!(fsck.status.success(), "{text}");
    assert!(
        text.contains(&format!("bucket OK: {url} at size {size}")),
        "{text}"
    );
}

const VA: &str = "0190c2f2-6d4e-7a45-9b1e-00000000000a";
const VB: &str = "0190c2f2-6d4e-7a45-9b1e-00000000000b";
const ABSENT: &str = "0190c2f2-6d4e-7a45-9b1e-0000000000ff";

/// Registers lifecycle statements about `uuid`, one per (event, minute).
async fn lifecycle(url: &str, files: &std::path::Path, uuid: &str, events: &[(&str, u32)]) {
    let mut c = vcon_scitt_client::Conn::connect(url).await.unwrap();
    for (event, m) in events {
        let at = format!("2026-11-30T10:{m:02}:00Z");
        let st = lifecycle_statement(files, event, &at, Some(uuid), &["analysis", "training"]);
        let r = c.post_statement(st).await.unwrap();
        assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    }
}

/// Every vCon view of `uuids`, the feed and the policy: the same bytes from
/// the writer and the replica; each proof bundle verifies offline.
async fn same_views(w: &str, r: &str, uuids: &[&str]) {
    for u in uuids {
        for view in ["entries", "consent", "lineage"] {
            same(w, r, &format!("/vcons/{u}/{view}")).await;
        }
        same(w, r, &format!("/vcons/{u}/entries?limit=1")).await;
        same(
            w,
            r,
            &format!("/vcons/{u}/consent?as_of=2026-11-30T10:02:30Z"),
        )
        .await;
        let b = same(w, r, &format!("/vcons/{u}/proof")).await;
        let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&b).unwrap();
        vcon_scitt::vcon::proof::verify_bundle(&bundle, u, &service_keys(), &Default::default())
            .expect("a replica's proof bundle verifies offline");
    }
    for path in [
        "/events",
        "/events?type=vcon_consent_revoked",
        "/events?after=3&limit=2",
        "/policy",
    ] {
        same(w, r, path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answers_the_vcon_views_with_the_writers_bytes() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let writer = writer(&moto, dir.path(), "writer");
    let w = writer.url.clone();
    lifecycle(
        &w,
        files.path(),
        VA,
        &[
            ("vcon_created", 0),
            ("vcon_consent_accepted", 1),
            ("vcon_enhanced", 2),
            ("vcon_consent_revoked", 3),
        ],
    )
    .await;
    lifecycle(&w, files.path(), VB, &[("vcon_created", 4)]).await;
    register(&w, "between", 40).await;
    let size = tree_size(&w).await;
    moto.wait_for(size).await;

    let replica_dir = dir.path().join("replica");
    let replica = Server::spawn(&replica_dir, &["--replica-of", "s3://log"], &moto.env());
    replica_reaches(&replica.url, size).await;
    same_views(&w, &replica.url, &[VA, VB, ABSENT]).await;
    let a = vcon_scitt_client::get(&replica.url, &format!("/vcons/{VA}/proof"))
        .await
        .unwrap();
    let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&a.body).unwrap();
    assert_eq!(
        bundle.entries.len(),
        4,
        "all of A's history, from the replica"
    );

    // Restarted, it resumes where its last append ended and keeps deriving.
    replica.stop();
    lifecycle(
        &w,
        files.path(),
        VB,
        &[("vcon_consent_accepted", 5), ("vcon_deleted", 6)],
    )
    .await;
    lifecycle(&w, files.path(), VA, &[("vcon_accessed", 7)]).await;
    let size2 = tree_size(&w).await;
    moto.wait_for(size2).await;
    let replica = Server::spawn(&replica_dir, &["--replica-of", "s3://log"], &moto.env());
    replica_reaches(&replica.url, size2).await;
    same_views(&w, &replica.url, &[VA, VB, ABSENT]).await;
    writer.stop();
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_refuses_a_map_root_that_is_not_the_map_of_the_entries() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    // Its public URL (the checkpoint's origin) survives the restart.
    let args = stable_writer(&cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let w = Server::spawn(&dir.path().join("writer"), &args, &moto.env());
    lifecycle(
        &w.url,
        files.path(),
        VA,
        &[("vcon_created", 0), ("vcon_consent_accepted", 1)],
    )
    .await;
    lifecycle(&w.url, files.path(), VB, &[("vcon_created", 2)]).await;
    let honest = tree_size(&w.url).await;
    moto.wait_for(honest).await;
    w.stop();

    // A replica verifies the honest log.
    let replica = Server::spawn(
        &dir.path().join("replica"),
        &["--replica-of", "s3://log"],
        &moto.env(),
    );
    replica_reaches(&replica.url, honest).await;

    // The writer's operator removes vCon A from the map (its state row) and
    // records the matching root, so the writer starts; its next batch's
    // map root "proves" A absent, signed with the real key.
    remove_from_map(&dir.path().join("writer/db"), VA);
    let w = Server::spawn(&dir.path().join("writer"), &args, &moto.env());
    register(&w.url, "after-tamper", 3).await;
    let lying = tree_size(&w.url).await;
    moto.wait_for(lying).await;

    // Every head and root is the writer's and verifies; only the map is a
    // lie, and the replica's own replay of the entries finds it.
    let started = Instant::now();
    let health = loop {
        let h = vcon_scitt_client::get(&replica.url, "/healthz")
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&h.body).into_owned();
        if body.contains("following stopped") {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replica kept following a lying map"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(health.contains("following stopped"), "{health}");
    assert!(health.contains("map root"), "{health}");
    assert_eq!(
        tree_size(&replica.url).await,
        honest,
        "nothing of the lie is served"
    );
    // What it verified, it still serves: A is in its map.
    let b = vcon_scitt_client::get(&replica.url, &format!("/vcons/{VA}/proof"))
        .await
        .unwrap();
    assert_eq!(b.status, 200);
    let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&b.body).unwrap();
    assert!(bundle.state.is_some(), "A is present in the verified map");
    w.stop();
    replica.stop();
    // fsck of the bucket alone replays the map too, and finds the lie.
    let (code, out) = fsck_bucket(&moto);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("map root"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_disk_is_lost_is_restored_from_the_bucket_and_continues_the_log() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let args = stable_writer(&cfg);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lost = dir.path().join("lost");
    let w = Server::spawn(&lost, &args, &moto.env());
    lifecycle(
        &w.url,
        files.path(),
        VA,
        &[("vcon_created", 0), ("vcon_consent_accepted", 1)],
    )
    .await;
    let acked = register(&w.url, "before", 300).await;
    let size = tree_size(&w.url).await;
    // `local` durability: what the bucket holds is what survives the disk.
    moto.wait_for(size).await;
    drop(w); // SIGKILL
    std::fs::remove_dir_all(&lost).unwrap();

    let restored = dir.path().join("restored");
    let (code, out) = cli(
        &moto,
        &[
            "restore",
            "--from",
            "s3://log",
            "--data-dir",
            restored.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("at tree size {size}")), "{out}");
    // Restoring again is a no-op catch-up of the same log.
    let (code, out) = cli(
        &moto,
        &[
            "restore",
            "--from",
            "s3://log",
            "--data-dir",
            restored.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");

    // Without the log's checkpoint key it does not start (its notes would
    // be another log's)...
    let no_checkpoint_key = dir.path().join("service-key-only.toml");
    std::fs::write(
        &no_checkpoint_key,
        format!("key_file = {:?}\n", repo("keys/test-service-es256.pk8")),
    )
    .unwrap();
    let (code, out) = cli(
        &moto,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            restored.to_str().unwrap(),
            "--config",
            no_checkpoint_key.to_str().unwrap(),
            "--service-url",
            "http://writer.test",
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("checkpoint key"), "{out}");
    std::fs::remove_file(restored.join("keys/checkpoint-ed25519.pk8")).unwrap();
    // ...with the log's keys and URL it continues the same log.
    let w = Server::spawn(&restored, &args, &moto.env());
    for (id, receipt) in &acked {
        let got = vcon_scitt_client::get(&w.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(
            &got.body, receipt,
            "a receipt from before the loss, unchanged"
        );
    }
    lifecycle(&w.url, files.path(), VA, &[("vcon_consent_revoked", 2)]).await;
    register(&w.url, "after", 50).await;
    let size2 = tree_size(&w.url).await;
    assert!(size2 > size);
    let consistency = vcon_scitt_client::get(&w.url, &format!("/consistency?from={size}"))
        .await
        .unwrap();
    assert_eq!(
        consistency.status, 200,
        "the restored log extends the lost one"
    );
    // A's history spans the loss; its proof bundle verifies offline.
    let b = vcon_scitt_client::get(&w.url, &format!("/vcons/{VA}/proof"))
        .await
        .unwrap();
    let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&b.body).unwrap();
    assert_eq!(bundle.entries.len(), 3);
    vcon_scitt::vcon::proof::verify_bundle(&bundle, VA, &service_keys(), &Default::default())
        .unwrap();
    // A monitor recomputes every root and map root of the continued log.
    let state = tempfile::tempdir().unwrap();
    let (code, out) = cli(
        &moto,
        &[
            "monitor",
            "--rounds",
            "1",
            "--url",
            &w.url,
            "--state",
            state.path().to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    // The bucket follows the continued log.
    moto.wait_for(size2).await;
    w.stop();
    let (code, out) = cli(&moto, &["fsck", "--data-dir", restored.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = fsck_bucket(&moto);
    assert_eq!(code, 0, "{out}");

    // A data dir that holds another log is refused, and left as it was.
    let other = dir.path().join("other");
    let o = Server::spawn(&other, &["--config", cfg.to_str().unwrap()], &[]);
    register(&o.url, "other", 5).await;
    let other_size = tree_size(&o.url).await;
    o.stop();
    let (code, out) = cli(
        &moto,
        &[
            "restore",
            "--from",
            "s3://log",
            "--data-dir",
            other.to_str().unwrap(),
        ],
    );
    assert_ne!(code, 0, "{out}");
    let o = Server::spawn(&other, &["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(tree_size(&o.url).await, other_size);
    o.stop();
}
