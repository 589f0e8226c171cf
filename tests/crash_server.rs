//! Crash matrix against the real `vcon-scitt serve` binary: drive
//! registrations over HTTP, SIGKILL the server at a random moment, restart,
//! and check every promise: each 201-acknowledged entry is present at the
//! same index with the same leaf, every receipt handed out still verifies,
//! every tree head seen before the crash is consistent with the new head,
//! every acknowledged vCon entry is in the signed map (its vCon's proof
//! bundle verifies and lists it), and `vcon-scitt fsck` is clean, the vCon
//! map re-derived from the log included. 20 cycles by default;
//! `VCON_CRASH_CYCLES=100 cargo test --release --test crash_server` for the
//! long mode.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Server;
use common::*;
use vcon_scitt::merkle::Hash;
use vcon_scitt::statement::SignedStatement;
use vcon_scitt::verify;
use vcon_scitt_client::Conn;

/// (statement, index, receipt) of a 201.
type Acked = (Vec<u8>, u64, Vec<u8>);

fn spawn(data: &std::path::Path, config: &std::path::Path) -> Server {
    Server::spawn(data, &["--config", config.to_str().unwrap()], &[])
}

/// One vCon per (cycle, writer).
fn crash_uuid(cycle: u64, writer: u64) -> String {
    format!("0190c2f2-6d4e-7a45-9b1e-{:012x}", cycle * 16 + writer)
}

#[test]
fn sigkill_the_server_at_random_moments() {
    let cycles: u64 = std::env::var("VCON_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = writer_config_file(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys = service_keys();
    let files = Arc::new(tempfile::tempdir().unwrap());
    // (statement, index, receipt) for every 201.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(Vec::new()));
    let mut heads: Vec<(u64, Hash)> = Vec::new();
    let mut seed = 0x5eed_u64;
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut srv = spawn(&data, &cfg);
        let url = srv.url.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(20 + (seed >> 33) % 300);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (url, acked, stop, files) =
                    (url.clone(), acked.clone(), stop.clone(), files.clone());
                rt.spawn(async move {
                    let Ok(mut c) = Conn::connect(&url).await else {
                        return;
                    };
                    for k in 0u64.. {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        // Every fourth one a vCon lifecycle statement, so
                        // the map has something to lose.
                        let st = if k % 4 == 0 {
                            let at = format!("2026-11-30T09:{:02}:{:02}Z", (k / 60) % 60, k % 60);
                            lifecycle_statement(
                                files.path(),
                                "vcon_accessed",
                                &at,
                                Some(&crash_uuid(cycle, w)),
                                &[],
                            )
                        } else {
                            generic_statement(&format!("urn:crash:{cycle}:{w}:{k}"), b"{}")
                        };
                        match c.post_statement(st.clone()).await {
                            Ok(r) if r.status == 201 => {
                                let index = verify::verify(&verify::Request {
                                    statement: st.clone(),
                                    receipts: vec![r.body.clone()],
                                    service_keys: service_keys(),
                                    ..Default::default()
                                })
                                .map(|rep| rep.leaf_index)
                                .expect("a 201 receipt verifies");
                                acked.lock().unwrap().push((st, index, r.body));
                            }
                            Ok(r) => {
                                panic!("unexpected status {}", vcon_scitt_client::describe(&r))
                            }
                            Err(_) => break, // the server died under us
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(kill_after);
        srv.child.kill().unwrap(); // SIGKILL
        srv.child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            for w in workers {
                let _ = w.await;
            }
        });

        // Restart and check.
        let srv2 = spawn(&data, &cfg);
        let url2 = srv2.url.clone();
        rt.block_on(async {
            let mut c = Conn::connect(&url2).await.unwrap();
            let acked = acked.lock().unwrap().clone();
            for (st, index, receipt) in &acked {
                let leaf = SignedStatement::parse(st, usize::MAX)
                    .unwrap()
                    .leaf_hash(vcon_scitt::statement::LeafRule::StatementSha256);
                let g = c
                    .get(&format!("/entries/{}", hex::encode(leaf)))
                    .await
                    .unwrap();
                assert_eq!(
                    g.status, 200,
                    "acked entry {index} lost after cycle {cycle}"
                );
                let rep = verify::verify(&verify::Request {
                    statement: st.clone(),
                    receipts: vec![g.body.clone()],
                    service_keys: keys.clone(),
                    ..Default::default()
                })
                .unwrap();
                assert_eq!(rep.leaf_index, *index, "entry moved");
                assert_eq!(&g.body, receipt, "the stable receipt changed");
                // The receipt handed out before the crash still verifies.
                let r =
                    vcon_scitt::receipt::verify_inclusion_receipt(receipt, &leaf, &keys).unwrap();
                heads.push((r.tree_size, r.root.as_slice().try_into().unwrap()));
            }
            let cp = c.get("/checkpoint").await.unwrap();
            let ciborium::value::Value::Map(m) = vcon_scitt::cbor::decode(&cp.body).unwrap() else {
                panic!()
            };
            let size = m
                .iter()
                .find(|(k, _)| k.as_text() == Some("tree_size"))
                .and_then(|(_, v)| vcon_scitt::cbor::as_u64(v))
                .unwrap();
            let root: Hash = m
                .iter()
                .find(|(k, _)| k.as_text() == Some("root"))
                .and_then(|(_, v)| v.as_bytes().cloned())
                .unwrap()
                .try_into()
                .unwrap();
            // Every acknowledged vCon entry is in the signed map: each
            // vCon's proof bundle verifies and lists all of them.
            let mut by_vcon: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
            for (st, index, _) in &acked {
                if let Ok(r) = vcon_scitt::vcon::proof::record_of(st) {
                    by_vcon.entry(r.vcon_uuid).or_default().push(*index);
                }
            }
            for (uuid, indices) in &by_vcon {
                let b = c.get_ok(&format!("/vcons/{uuid}/proof")).await.unwrap();
                let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&b).unwrap();
                let rep = vcon_scitt::vcon::proof::verify_bundle(
                    &bundle,
                    uuid,
                    &keys,
                    &Default::default(),
                )
                .unwrap_or_else(|e| panic!("{uuid} after cycle {cycle}: {e}"));
                for i in indices {
                    assert!(
                        rep.indices.contains(i),
                        "acked vCon entry {i} of {uuid} is not in the signed map after cycle {cycle}"
                    );
                }
            }
            heads.sort();
            heads.dedup();
            for (s, r) in &heads {
                let cr = c
                    .get(&format!("/consistency?from={s}&to={size}"))
                    .await
                    .unwrap();
                assert_eq!(cr.status, 200);
                let info = vcon_scitt::receipt::verify_consistency_receipt(&cr.body, *s, r, &keys)
                    .unwrap_or_else(|e| panic!("head {s} is not consistent with {size}: {e}"));
                assert_eq!(info.root, root.to_vec());
            }
        });
        let mut srv2 = srv2;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(srv2.child.id().to_string())
            .status();
        let status = srv2.child.wait().unwrap();
        assert!(status.success(), "graceful shutdown exits 0");
        let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
            .args(["fsck", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.contains("fsck OK")
                && text.contains("every head signature verified")
                && text.contains("vCon map OK"),
            "{text}"
        );
    }
    let n = acked.lock().unwrap().len();
    assert!(
        n > cycles as usize,
        "too few acknowledged registrations ({n}) to mean anything"
    );
    eprintln!(
        "{cycles} SIGKILL cycles in {:?}: {n} acknowledged registrations, {} distinct heads checked",
        started.elapsed(),
        heads.len()
    );
}
