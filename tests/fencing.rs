//! The single-writer lease in etcd, with real parts: etcd 3.4 (Debian
//! `etcd-server`), moto, and `vcon-scitt serve` processes on loopback,
//! each fenced writer in `replicated` durability with a 2 s lease.
//!
//! - A second writer is refused while the first holds the lease, and etcd's
//!   checkpoint is the bucket's.
//! - A writer whose lease is revoked stops acknowledging; a new writer on
//!   an empty data dir takes the lease, catches up from the bucket and
//!   continues the same log (replacing what the deposed one left beyond the
//!   checkpoint); the old one, still running, acknowledges nothing more.
//! - etcd killed: no 201 while the lease cannot be renewed; etcd back: the
//!   same writer resumes, and the registrations held back get receipts.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{Etcd, Moto, Server, cli, tree_size};
use common::*;
use vcon_scitt::verify;

fn fenced_writer(moto: &Moto, etcd: &Etcd, data: &Path, cfg: &Path) -> Server {
    Server::spawn(
        data,
        &fenced_args(etcd, cfg)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &moto.env(),
    )
}

fn fenced_args(etcd: &Etcd, cfg: &Path) -> Vec<String> {
    [
        "--config",
        cfg.to_str().unwrap(),
        "--publish-to",
        "s3://log",
        "--service-url",
        "http://writer.test",
        "--durability",
        "replicated",
        "--wait-ms",
        "1500",
        "--etcd",
        &etcd.endpoint(),
        "--lease-ttl",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One registration: (status, entry id, body).
async fn post(url: &str, subject: &str) -> (u16, String, Vec<u8>) {
    let st = generic_statement(subject, b"{}");
    let r = vcon_scitt_client::Conn::connect(url)
        .await
        .unwrap()
        .post_statement(st)
        .await
        .unwrap();
    let id = r
        .header("location")
        .map(|l| l.trim_start_matches("/entries/").to_owned())
        .unwrap_or_default();
    (r.status, id, r.body)
}

/// etcd's checkpoint record: (size, root hex).
fn etcd_checkpoint(etcd: &Etcd) -> Option<(u64, String)> {
    let (ok, out) = etcd.etcdctl(&[
        "get",
        "/vcon-scitt/writer.test/log/checkpoint",
        "--print-value-only",
    ]);
    assert!(ok);
    let line = out.lines().next()?.to_owned();
    let (size, root) = line.split_once(' ')?;
    Some((size.parse().ok()?, root.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_while_the_first_holds_the_lease() {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    for i in 0..20 {
        assert_eq!(post(&a.url, &format!("urn:example:a:{i}")).await.0, 201);
    }
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
    ];
    args.push(dir.path().join("b").to_str().unwrap().to_owned());
    args.extend(fenced_args(&etcd, &cfg));
    let (code, out) = cli(&moto, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("held by"), "{out}");
    assert_eq!(post(&a.url, "urn:example:a:after").await.0, 201);
    // Every 201 waited for the bucket's checkpoint, which etcd's leads.
    let size = tree_size(&a.url).await;
    let (fenced_size, _) = etcd_checkpoint(&etcd).expect("etcd records the checkpoint");
    assert_eq!(fenced_size, size);
    assert_eq!(moto.checkpoint_size().await, size);
    a.stop();
    // A clean stop gives the lease back at once.
    let (_, leader) = etcd.etcdctl(&["get", "/vcon-scitt/writer.test/log/leader"]);
    assert!(leader.trim().is_empty(), "{leader}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_loses_its_lease_stops_and_a_restored_one_continues_the_log() {
    let (moto, etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    let mut acked = Vec::new();
    for i in 0..30 {
        let (status, id, receipt) = post(&a.url, &format!("urn:example:a:{i}")).await;
        assert_eq!(status, 201);
        acked.push((id, receipt));
    }
    let size_a = tree_size(&a.url).await;

    // The lease is revoked (an operator, or etcd deciding it expired).
    let (ok, leases) = etcd.etcdctl(&["lease", "list"]);
    assert!(ok);
    for id in leases
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(etcd.etcdctl(&["lease", "revoke", id]).0);
    }
    let started = Instant::now();
    loop {
        let (status, _, _) = post(&a.url, "urn:example:a:probe").await;
        if status != 201 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still acknowledging 5 s after its lease was revoked"
        );
    }
    for i in 0..10 {
        let (status, _, _) = post(&a.url, &format!("urn:example:a:fenced:{i}")).await;
        assert_ne!(status, 201, "a writer without its lease acknowledged");
    }
    let health = vcon_scitt_client::get(&a.url, "/healthz").await.unwrap();
    assert_eq!(health.status, 503);

    // A new writer on an empty data dir, same keys and URL: it takes the
    // lease, catches up from the bucket to etcd's checkpoint, continues.
    let b = fenced_writer(&moto, &etcd, &dir.path().join("b"), &cfg);
    for (id, receipt) in &acked {
        let got = vcon_scitt_client::get(&b.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(&got.body, receipt, "every 201 of the old writer, unchanged");
    }
    let (status, id, receipt) = post(&b.url, "urn:example:b:0").await;
    assert_eq!(status, 201);
    let st = vcon_scitt_client::get(&b.url, &format!("/signed-statements/{id}"))
        .await
        .unwrap();
    verify::verify(&verify::Request {
        statement: st.body,
        receipts: vec![receipt],
        service_keys: service_keys(),
        ..Default::default()
    })
    .unwrap();
    let c = vcon_scitt_client::get(&b.url, &format!("/consistency?from={size_a}"))
        .await
        .unwrap();
    assert_eq!(c.status, 200, "the new writer extends the old one's log");
    // The old writer, still running, stays fenced.
    assert_ne!(post(&a.url, "urn:example:a:late").await.0, 201);
    let (fenced_size, _) = etcd_checkpoint(&etcd).unwrap();
    assert_eq!(fenced_size, tree_size(&b.url).await);
    a.stop();
    b.stop();
    let (code, out) = cli(&moto, &["fsck", "--bucket", "s3://log"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_201_while_etcd_is_down_and_the_same_writer_resumes_when_it_is_back() {
    let (moto, mut etcd) = (Moto::start().await, Etcd::start().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let a = fenced_writer(&moto, &etcd, &dir.path().join("a"), &cfg);
    for i in 0..10 {
        assert_eq!(post(&a.url, &format!("urn:example:up:{i}")).await.0, 201);
    }
    etcd.kill();
    // Past the lease's local deadline (2 s less a third).
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let mut held = Vec::new();
    for i in 0..4 {
        let (status, id, _) = post(&a.url, &format!("urn:example:down:{i}")).await;
        assert_ne!(status, 201, "acknowledged while etcd was down");
        held.push(id);
    }
    etcd.restart().await;
    let started = Instant::now();
    for id in &held {
        if id.is_empty() {
            continue; // a 503 names no entry
        }
        while vcon_scitt_client::get(&a.url, &format!("/entries/{id}"))
            .await
            .unwrap()
            .status
            != 200
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id} never got its receipt once etcd was back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    while post(&a.url, "urn:example:back").await.0 != 201 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer did not resume once etcd was back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.stop();
}
