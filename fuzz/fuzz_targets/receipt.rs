//! Receipt verification (inclusion, consistency, tree head) on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcon_scitt_core::keys::{Alg, KeySet, PublicKey};
use vcon_scitt_core::receipt;
use vcon_scitt_core::tree_head::TreeHead;

fuzz_target!(|data: &[u8]| {
    let mut keys = KeySet::new();
    // A fixed Ed25519 public key and the kid the generator tends to find.
    keys.insert(PublicKey { alg: Alg::Ed25519, bytes: vec![7; 32] }, Some(vec![1; 32]));
    let leaf = [3u8; 32];
    let _ = receipt::verify_inclusion_receipt(data, &leaf, &keys);
    let _ = receipt::verify_consistency_receipt(data, 5, &leaf, &keys);
    let _ = receipt::verify_tree_head(data, &TreeHead { size: 5, root: leaf, timestamp_ms: 0 }, &keys);
    let _ = receipt::peek_tree_size(data);
    let _ = vcon_scitt_core::problem::Problem::from_cbor(400, data);
});
