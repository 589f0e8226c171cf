//! Key rotation: after `vcon-scitt rotate-key` the new key signs new tree
//! heads, old receipts stay byte-identical and verifiable, and both keys are
//! served (the old one under /.well-known/scitt-keys/{old kid}).

mod common;

use std::process::Command;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt::keys::KeySet;
use vcon_scitt_client::Conn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_receipts_verifiable() {
    let data = tempfile::tempdir().unwrap();
    let key_path = data.path().join("service-key.pk8");
    std::fs::copy(repo("keys/test-service-es256.pk8"), &key_path).unwrap();
    let mut cfg = server_config(data.path());
    cfg.key_file = Some(key_path.clone());
    let srv = start(cfg.clone(), None).await.unwrap();
    let old_kid = srv.service.current_kid.clone();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let st1 = generic_statement("urn:rotate:1", b"{}");
    let r1 = c.post_statement(st1.clone()).await.unwrap();
    assert_eq!(r1.status, 201);
    let loc1 = r1.header("location").unwrap().to_owned();
    srv.stop().await;

    let conf = data.path().join("rotate.toml");
    std::fs::write(
        &conf,
        format!("data_dir = {:?}\nkey_file = {:?}\n", data.path(), key_path),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["rotate-key", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let retired = data
        .path()
        .join("keys/retired")
        .join(format!("{}.pk8", hex::encode(&old_kid)));
    assert!(retired.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&retired).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let srv = start(cfg, None).await.unwrap();
    let new_kid = srv.service.current_kid.clone();
    assert_ne!(new_kid, old_kid);
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let ks = KeySet::parse_any(&c.get("/.well-known/scitt-keys").await.unwrap().body).unwrap();
    assert!(
        ks.get(&old_kid).is_some() && ks.get(&new_kid).is_some(),
        "both keys are published"
    );
    let old = c
        .get(&format!(
            "/.well-known/scitt-keys/{}",
            vcon_scitt::keys::b64url(&old_kid)
        ))
        .await
        .unwrap();
    assert_eq!(old.status, 200, "the retired key stays resolvable");

    // The old receipt is unchanged and still verifies; a new one uses the new key.
    let g1 = c.get(&loc1).await.unwrap();
    assert_eq!(g1.body, r1.body);
    let rep1 = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st1.clone(),
        receipts: vec![g1.body],
        service_keys: ks.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(rep1.kid, hex::encode(&old_kid));
    // fsck works read-only beside the running server.
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["fsck", "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        report["ok"],
        true,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(report["signatures_checked"], true);
    let st2 = generic_statement("urn:rotate:2", b"{}");
    let r2 = c.post_statement(st2.clone()).await.unwrap();
    assert_eq!(r2.status, 201);
    let rep2 = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st2,
        receipts: vec![r2.body],
        service_keys: ks.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(rep2.kid, hex::encode(&new_kid));
    // A relying party holding only the new key cannot verify the old receipt:
    // the kid tells it which key to fetch.
    let mut only_new = KeySet::new();
    only_new.insert(ks.get(&new_kid).unwrap().clone(), None);
    let err = vcon_scitt::verify::verify(&vcon_scitt::verify::Request {
        statement: st1,
        receipts: vec![r1.body],
        service_keys: only_new,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.exit_code(), 6);
    srv.stop().await;
    // fsck checks every head against both keys.
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["fsck", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("every head signature verified"),
        "{text}"
    );
}
