//! Beyond one machine, part 2: what a 201 promises in each durability mode,
//! with real parts (moto, `vcon-scitt serve` processes on loopback).
//!
//! - `replicated`: a 201 means the entry is in the bucket under its
//!   checkpoint. The writer is SIGKILLed the moment its last 201 arrives
//!   and its disk thrown away; `restore --from` the bucket holds every
//!   acknowledged entry, with the very receipt the 201 carried.
//! - While the store refuses writes, a `replicated` writer acknowledges
//!   nothing (202, and GET says pending); once it is back, the same
//!   registrations become receipts.
//! - The same while the store hangs (moto stopped with SIGSTOP).
//! - `replicated` without a bucket does not start.

mod common;

use std::time::Duration;

use common::cluster::{Moto, Server, cli, post_many, stable_writer, tree_size, wait_for_receipt};
use common::*;
use vcon_scitt::verify;

fn replicated_writer(moto: &Moto, data: &std::path::Path, cfg: &std::path::Path) -> Server {
    let mut args = stable_writer(cfg);
    args.extend(["--durability", "replicated"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::spawn(data, &args, &moto.env())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_replicated_mode_every_201_survives_the_writers_disk() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let lost = dir.path().join("lost");
    let w = replicated_writer(&moto, &lost, &cfg);
    let answers = post_many(&w.url, "replicated", 400).await;
    // No waiting for the bucket: the 201s are the promise.
    drop(w); // SIGKILL
    std::fs::remove_dir_all(&lost).unwrap();
    let acked: Vec<_> = answers.iter().filter(|a| a.0 == 201).collect();
    assert_eq!(
        acked.len(),
        400,
        "with the bucket up, every registration is a 201"
    );

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
    let w = replicated_writer(&moto, &restored, &cfg);
    for (_, id, receipt) in &acked {
        let got = vcon_scitt_client::get(&w.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(
            got.status, 200,
            "acknowledged entry {id} lost with the disk"
        );
        assert_eq!(&got.body, receipt);
    }
    let st = vcon_scitt_client::get(&w.url, &format!("/signed-statements/{}", acked[0].1))
        .await
        .unwrap();
    verify::verify(&verify::Request {
        statement: st.body,
        receipts: vec![acked[0].2.clone()],
        service_keys: service_keys(),
        ..Default::default()
    })
    .expect("the receipt of a 201 verifies against the restored log");
    w.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_replicated_mode_nothing_is_acknowledged_while_the_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let out = dir.path().join("published");
    let url = format!("file://{}", out.display());
    let w = Server::spawn(
        &dir.path().join("writer"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--publish-to",
            &url,
            "--durability",
            "replicated",
            "--wait-ms",
            "700",
        ],
        &[],
    );
    let before = post_many(&w.url, "up", 40).await;
    assert!(before.iter().all(|a| a.0 == 201));

    // The store goes away: its directory replaced by a file, so every PUT
    // fails (ENOTDIR), whoever runs the test (root included).
    let away = dir.path().join("published.away");
    std::fs::rename(&out, &away).unwrap();
    std::fs::write(&out, b"not a directory").unwrap();
    let during = post_many(&w.url, "down", 12).await;
    for (status, id, _) in &during {
        assert_eq!(*status, 202, "no 201 while the bucket refuses writes");
        let r = vcon_scitt_client::get(&w.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(
            r.status, 204,
            "nor a receipt by GET (pending): it is not replicated"
        );
    }

    // The store is back: the publisher's retry covers them, and the same
    // entries now have receipts.
    std::fs::remove_file(&out).unwrap();
    std::fs::rename(&away, &out).unwrap();
    for (_, id, _) in &during {
        wait_for_receipt(&w.url, id, Duration::from_secs(60), "the store is back").await;
    }
    let after = post_many(&w.url, "back", 8).await;
    assert!(after.iter().all(|a| a.0 == 201));
    let size = tree_size(&w.url).await;
    w.stop();
    let fsck = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["fsck", "--bucket", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        text.contains(&format!("bucket OK: {url} at size {size}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_replicated_mode_a_hung_store_holds_back_every_acknowledgement() {
    let moto = Moto::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = writer_config_file(dir.path());
    let w = Server::spawn(
        &dir.path().join("writer"),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--publish-to",
            "s3://log",
            "--durability",
            "replicated",
            "--wait-ms",
            "700",
        ],
        &moto.env(),
    );
    assert!(
        post_many(&w.url, "before", 20)
            .await
            .iter()
            .all(|a| a.0 == 201)
    );
    // The store stops answering (its process stopped): PUTs hang.
    moto.signal("-STOP");
    let during = post_many(&w.url, "hung", 8).await;
    let mut pending = Vec::new();
    for (status, id, _) in &during {
        assert_eq!(*status, 202, "no 201 while the store hangs");
        let r = vcon_scitt_client::get(&w.url, &format!("/entries/{id}"))
            .await
            .unwrap();
        assert_eq!(r.status, 204, "nor a receipt by GET");
        pending.push(id.clone());
    }
    moto.signal("-CONT");
    for id in &pending {
        wait_for_receipt(
            &w.url,
            id,
            Duration::from_secs(60),
            "the store answers again",
        )
        .await;
    }
    assert!(
        post_many(&w.url, "after", 8)
            .await
            .iter()
            .all(|a| a.0 == 201)
    );
    w.stop();
}

#[test]
fn replicated_without_a_bucket_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--durability", "replicated"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a bucket"), "{err}");
}
