//! Rewinding a deposed writer's store (`vcon_scitt::rewind`) on a real
//! store a real server wrote: the bound it rewinds to, and what it refuses.
//! The failover tests (tests/fencing.rs) run it under etcd and a bucket;
//! these pin its edges, each of which would discard signed entries if
//! wrong.

mod common;

use common::*;
use vcon_scitt::log::Store;
use vcon_scitt::rewind::{Lease, Rewind, store_dir, to_published};

/// A data dir holding a few batches (an unfenced server: no publisher, so
/// no published size recorded). Returns the config and the store's heads
/// as (size, root), oldest first.
async fn written(dir: &std::path::Path) -> (vcon_scitt::config::Config, Vec<(u64, [u8; 32])>) {
    let cfg = server_config(dir);
    let srv = vcon_scitt::http::start(cfg.clone(), None).await.unwrap();
    let mut c = vcon_scitt_client::Conn::connect(&srv.url()).await.unwrap();
    for k in 0..4 {
        let r = c
            .post_statement(generic_statement(&format!("urn:rewind:{k}"), b"{}"))
            .await
            .unwrap();
        assert_eq!(r.status, 201);
    }
    srv.stop().await;
    (cfg, heads(dir))
}

fn heads(dir: &std::path::Path) -> Vec<(u64, [u8; 32])> {
    let store = Store::open(&dir.join("db")).unwrap();
    store
        .heads()
        .unwrap()
        .map(|h| h.unwrap())
        .map(|h| (h.head.size, h.head.root))
        .filter(|(size, _)| *size > 0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_records_no_published_size_is_never_rewound_to_zero() {
    let root = tempfile::tempdir().unwrap();
    let (cfg, before) = written(root.path()).await;
    assert!(before.len() >= 3, "{before:?}");
    // Another writer holds the lease, and etcd's checkpoint is not in this
    // store: nothing says what was published here.
    let err = to_published(&cfg, Lease::Another(Some((999, [7; 32])))).unwrap_err();
    assert!(
        err.to_string().contains("records no published size"),
        "{err}"
    );
    let err = to_published(&cfg, Lease::Another(None)).unwrap_err();
    assert!(err.to_string().contains("Move it aside"), "{err}");
    assert_eq!(heads(root.path()), before, "the store is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_store_holding_etcds_checkpoint_rewinds_to_it() {
    let root = tempfile::tempdir().unwrap();
    let (cfg, before) = written(root.path()).await;
    let (size, head_root) = before[before.len() - 2];
    let latest = before[before.len() - 1].0;
    // No rewind while the store is open (here, a hold another opener keeps).
    let hold = store_dir(root.path()).unwrap();
    let err = to_published(&cfg, Lease::Another(Some((size, head_root)))).unwrap_err();
    assert!(err.to_string().contains("the store is open"), "{err}");
    drop(hold);
    assert_eq!(heads(root.path()), before, "the store is untouched");
    // This node holds the lease and the checkpoint: nothing is touched.
    assert_eq!(
        to_published(&cfg, Lease::Ours((size, head_root))).unwrap(),
        Rewind::Holds
    );
    // Another writer holds it: everything above etcd's checkpoint goes.
    let Rewind::Discarded(r) = to_published(&cfg, Lease::Another(Some((size, head_root)))).unwrap()
    else {
        panic!("not rewound")
    };
    assert_eq!(r.published, size);
    assert_eq!(r.discarded_entries, latest - size);
    assert_eq!(r.discarded_heads, 1);
    assert!(r.to_etcd_checkpoint, "{r:?}");
    assert_eq!(heads(root.path()), before[..before.len() - 1].to_vec());
    let store = Store::open(&root.path().join("db")).unwrap();
    assert_eq!(store.data_size().unwrap(), size);
    assert_eq!(store.published_size().unwrap(), Some(size));
    drop(store);
    // The guard was set back with it: the rewound store serves and signs on.
    let srv = vcon_scitt::http::start(cfg.clone(), None).await.unwrap();
    assert_eq!(srv.service.latest_head().head.size, size);
    srv.stop().await;
    // Rewinding again finds nothing above.
    assert_eq!(
        to_published(&cfg, Lease::Another(Some((size, head_root)))).unwrap(),
        Rewind::Nothing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_older_than_its_rollback_guard_is_not_rewound() {
    let root = tempfile::tempdir().unwrap();
    let (cfg, before) = written(root.path()).await;
    let (size, head_root) = before[0];
    // The guard records a head this store never signed (the store is an
    // older backup, or another node's): setting the guard back would
    // disarm it.
    let (mut guard, _) =
        vcon_scitt::log::guard::RollbackGuard::open(&cfg.rollback_guard()).unwrap();
    guard
        .record(vcon_scitt::log::guard::Guarded {
            size: before[before.len() - 1].0 + 10,
            root: [9; 32],
        })
        .unwrap();
    drop(guard);
    let err = to_published(&cfg, Lease::Another(Some((size, head_root)))).unwrap_err();
    assert!(err.to_string().contains("rollback guard"), "{err}");
    assert_eq!(heads(root.path()), before, "the store is untouched");
}

#[test]
fn no_store_is_opened_in_a_data_dir_a_rewind_holds_or_left_mid_swap() {
    let d = tempfile::tempdir().unwrap();
    // A swap stopped between its renames: the old store is in db.deposed.
    std::fs::create_dir_all(d.path().join("db.deposed")).unwrap();
    std::fs::write(d.path().join("db.deposed").join("marker"), "old").unwrap();
    // A rewind running in another process holds the lock.
    let held = std::fs::File::create(d.path().join("rewind.lock")).unwrap();
    held.lock().unwrap();
    let err = store_dir(d.path()).unwrap_err();
    assert!(
        err.to_string().contains("another process is rewinding"),
        "{err}"
    );
    assert!(!d.path().join("db").exists());
    held.unlock().unwrap();
    // Once free, the swap is undone before the store's path is handed out.
    let (db, _hold) = store_dir(d.path()).unwrap();
    assert_eq!(std::fs::read_to_string(db.join("marker")).unwrap(), "old");
    assert!(!d.path().join("db.deposed").exists());
}
