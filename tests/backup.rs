//! Online backup (RocksDB checkpoint through the running server), restore,
//! and rollback protection: a data dir that already published a later head
//! refuses to start from an older backup; a fresh deployment restored from
//! the backup serves the same receipts.

mod common;

use std::process::Command;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restore_and_rollback_protection() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut cfg = server_config(&data);
    cfg.auth.admin_token_sha256 = vec![hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        b"admin",
    ))];
    let srv = start(cfg.clone(), None).await.unwrap();
    let url = srv.url();
    let mut c = Conn::connect(&url).await.unwrap();
    let mut early = Vec::new();
    for k in 0..5 {
        let st = generic_statement(&format!("urn:backup:{k}"), b"{}");
        let r = c.post_statement(st.clone()).await.unwrap();
        early.push((r.header("location").unwrap().to_owned(), r.body));
    }
    // Online backup: admin token required.
    let r = c
        .request(hyper::Method::POST, "/admin/backup", None, vec![])
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let (ok, out) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(&["backup", "--url", &url, "--token", "admin"])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let backup: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let backup_dir = std::path::PathBuf::from(backup["path"].as_str().unwrap());
    // The policy entry and five registrations, each batch closed by its
    // map-root entry.
    assert_eq!(backup["tree_size"], 12);
    // More registrations after the backup: their receipts are published.
    for k in 5..10 {
        assert_eq!(
            c.post_statement(generic_statement(&format!("urn:backup:{k}"), b"{}"))
                .await
                .unwrap()
                .status,
            201
        );
    }
    srv.stop().await;
    let saved = root.path().join("saved-backup");
    std::fs::rename(&backup_dir, &saved).unwrap();

    // Restoring the older backup over this data dir: refused to start.
    std::fs::rename(data.join("db"), root.path().join("db.newer")).unwrap();
    let (ok, out) = run(&[
        "restore",
        "--from",
        saved.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("fsck OK"), "{out}");
    let refused = start(cfg.clone(), None).await;
    let err = refused.err().expect("a rolled-back store must not start");
    assert!(
        err.contains("rollback refused") && err.contains("size 22"),
        "{err}"
    );
    // Restore refuses to overwrite a store.
    let (ok, out) = run(&[
        "restore",
        "--from",
        saved.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("exists"), "{out}");
    // Putting the newer data back: starts, and serves everything.
    std::fs::remove_dir_all(data.join("db")).unwrap();
    std::fs::rename(root.path().join("db.newer"), data.join("db")).unwrap();
    let srv = start(cfg.clone(), None).await.unwrap();
    assert_eq!(srv.service.log.latest().head.size, 22);
    srv.stop().await;

    // A new deployment restored from the backup serves the same receipts.
    let fresh = root.path().join("fresh");
    let (ok, out) = run(&[
        "restore",
        "--from",
        saved.to_str().unwrap(),
        "--data-dir",
        fresh.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let srv = start(server_config(&fresh), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    for (loc, receipt) in &early {
        let g = c.get(loc).await.unwrap();
        assert_eq!(g.status, 200);
        assert_eq!(
            &g.body, receipt,
            "the restored log serves byte-identical receipts"
        );
    }
    srv.stop().await;
    // Offline backup of a stopped data dir works too.
    let off = root.path().join("offline");
    let (ok, out) = run(&[
        "backup",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--out",
        off.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("tree size 12"), "{out}");
}
