//! Receipts from the real log (RocksDB, the sequencer) verify offline. This
//! was part of the golden COSE vectors test; the vectors moved to
//! `core/tests/cose_vectors.rs`, which must build without RocksDB, so the
//! one test that runs the log stays with the server's tests.

mod common;

use common::*;
use vcon_scitt::{merkle, receipt};

/// 10,000 entries through the real log; every receipt verifies offline.
#[test]
fn ten_thousand_log_receipts_verify_offline() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), vcon_scitt::log::LogConfig::default());
    let keys = service_keys();
    let entries: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let pending: Vec<_> = entries
        .iter()
        .map(|e| log.submit(e.clone()).unwrap())
        .collect();
    let appended: Vec<_> = pending
        .into_iter()
        .map(|p| p.wait_blocking().unwrap())
        .collect();
    for (e, a) in entries.iter().zip(&appended) {
        // Stable receipt: at the head of the batch that included it.
        let head = log.first_head_covering(a.index).unwrap().unwrap();
        assert_eq!(head.head.size, a.head.head.size);
        let proof = log.inclusion_proof(a.index, head.head.size).unwrap();
        // The sequencer's in-memory proof is the storage one.
        assert_eq!(a.proof.as_ref(), Some(&proof));
        let r =
            receipt::inclusion_receipt(&head.signature, head.head.size, a.index, &proof).unwrap();
        let info = receipt::verify_inclusion_receipt(&r, &merkle::leaf_hash(e), &keys).unwrap();
        assert_eq!(info.leaf_index, a.index);
    }
}
