//! A full disk: the server is run on a small tmpfs and driven until RocksDB
//! reports ENOSPC. Writes are refused cleanly (503, never 201), /healthz says
//! why, reads keep being served; once space is back and the server restarts,
//! every acknowledged entry is there and fsck is clean. Needs root (mount).

mod common;

use std::process::Command;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt_client::Conn;

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..20 {
            if Command::new("umount")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_and_keeps_serving_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .status();
    if !ok.is_ok_and(|s| s.success()) {
        // Not root: nothing to test here (CI runs as root).
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let _guard = Mount(mnt.clone());
    let data = mnt.join("data");
    let srv = start(server_config(&data), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let mut acked = Vec::new();
    let mut refused = None;
    for k in 0..60_000 {
        let st = generic_statement(&format!("urn:full:{k}:{}", "x".repeat(200)), b"{}");
        let r = c.post_statement(st.clone()).await.unwrap();
        match r.status {
            201 => acked.push((st, r.header("location").unwrap().to_owned())),
            503 => {
                refused = Some(r);
                break;
            }
            s => panic!("unexpected {s}: {}", vcon_scitt_client::describe(&r)),
        }
    }
    let refused = refused.expect("the 24 MiB disk never filled");
    assert!(
        acked.len() > 100,
        "only {} registrations before the disk filled",
        acked.len()
    );
    assert_eq!(refused.problem().unwrap().title, "Service Unavailable");
    assert!(refused.header("retry-after").is_some());
    // Readiness says why; reads still work.
    let h = c.get("/healthz").await.unwrap();
    assert_eq!(h.status, 503);
    assert!(
        h.problem()
            .unwrap()
            .detail
            .to_lowercase()
            .contains("no space"),
        "{}",
        h.problem().unwrap().detail
    );
    let (st0, loc0) = &acked[0];
    let g = c.get(loc0).await.unwrap();
    assert_eq!(g.status, 200);
    let keys = service_keys();
    vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st0.clone(),
        receipts: vec![g.body],
        service_keys: keys.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.get("/checkpoint").await.unwrap().status, 200);
    srv.stop().await;

    // Space comes back; a restart finds everything acknowledged.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=256m"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(grown.success());
    let srv = start(server_config(&data), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    for (st, loc) in acked.iter().step_by(97).chain(acked.last()) {
        let g = c.get(loc).await.unwrap();
        assert_eq!(g.status, 200, "acknowledged {loc} lost");
        vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
            statement: st.clone(),
            receipts: vec![g.body],
            service_keys: keys.clone(),
            ..Default::default()
        })
        .unwrap();
    }
    assert_eq!(
        c.post_statement(generic_statement("urn:full:after", b"{}"))
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(c.get("/healthz").await.unwrap().status, 200);
    vcon_scitt::log::fsck(srv.service.log.store(), None).unwrap();
    eprintln!(
        "{} registrations acknowledged before ENOSPC; all present after the restart",
        acked.len()
    );
    srv.stop().await;
}
