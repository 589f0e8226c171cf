//! The verifiable map (vcon_scitt_core::map) against torchwood's published
//! `mpt` vectors (tests/vectors/torchwood-mpt, ISC, see its README), the
//! known answers of spec verifiable-map.md §6.12, and property tests holding
//! the incremental tree to the independent whole-tree hash.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::repo;
use proptest::prelude::*;
use vcon_scitt_core::map::{
    EMPTY_ROOT, Hash, Key, MapTree, ProofError, TreeError, Value, format, root_of_sorted,
    root_of_sorted_bytes, verify, verify_absence, verify_bytes, verify_inclusion,
};

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn h32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// `SHA-256("key:i")` ↦ `SHA-256("val:i")`, the entries of torchwood's
/// generated vectors.
fn kv(i: usize) -> (Key, Value) {
    (
        sha256(format!("key:{i}").as_bytes()),
        sha256(format!("val:{i}").as_bytes()),
    )
}

fn vector_text(name: &str) -> String {
    let path = repo("tests/vectors/torchwood-mpt").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A vector field: hex, possibly with spaces, or `''` for empty.
fn unhex(field: &str) -> Vec<u8> {
    let s: String = field.chars().filter(|c| !c.is_whitespace()).collect();
    if s == "''" {
        return Vec::new();
    }
    hex::decode(&s).unwrap_or_else(|e| panic!("bad hex {field:?}: {e}"))
}

/// Logical lines of a vector file: comments and blanks dropped, `\`
/// continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if cur.is_empty() && (line.trim().is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    assert!(cur.is_empty(), "dangling continuation");
    out
}

fn tree_of(items: &[(Key, Value)]) -> MapTree {
    let mut t = MapTree::new();
    t.apply_batch(items).unwrap();
    t
}

// ---------------------------------------------------------------------------
// treehash.txt

struct TreeHashVector {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    hash: Hash,
}

fn treehash_vectors() -> Vec<TreeHashVector> {
    let mut out = Vec::new();
    let mut entries = Vec::new();
    for line in logical_lines(&vector_text("treehash.txt")) {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("kv") => {
                let k = unhex(f.next().unwrap());
                let v = unhex(f.next().unwrap());
                entries.push((k, v));
            }
            Some("hash") => out.push(TreeHashVector {
                entries: std::mem::take(&mut entries),
                hash: h32(f.next().unwrap()),
            }),
            other => panic!("unknown line {other:?}"),
        }
    }
    out
}

fn fixed_width(entries: &[(Vec<u8>, Vec<u8>)]) -> Option<Vec<(Key, Value)>> {
    entries
        .iter()
        .map(|(k, v)| Some((k.clone().try_into().ok()?, v.clone().try_into().ok()?)))
        .collect()
}

#[test]
fn every_treehash_vector_is_reproduced() {
    let vectors = treehash_vectors();
    assert_eq!(vectors.len(), 32, "the whole treehash.txt");
    let mut fixed = 0;
    for (n, v) in vectors.iter().enumerate() {
        let mut sorted = v.entries.clone();
        sorted.sort_by(|a, b| format::compare(&a.0, &b.0).0);
        let root = root_of_sorted_bytes(sorted.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
        assert_eq!(root, Ok(v.hash), "treehash vector {n}");

        // 32-byte keys and values: the map itself, in one batch and key by key.
        if let Some(items) = fixed_width(&v.entries) {
            fixed += 1;
            assert_eq!(tree_of(&items).root(), v.hash, "vector {n}, one batch");
            let mut t = MapTree::new();
            for item in items.iter().rev() {
                t.apply_batch(std::slice::from_ref(item)).unwrap();
            }
            assert_eq!(t.root(), v.hash, "vector {n}, key by key");
            let mut sorted = items.clone();
            sorted.sort();
            assert_eq!(root_of_sorted(&sorted), Ok(v.hash), "vector {n}");
        }
    }
    // empty, one leaf, four two-leaf, three- and four-leaf, bit 128, the
    // three value-length ones that happen to be 32 bytes … see the file.
    assert_eq!(fixed, 11, "vectors with 32-byte keys and values");
}

#[test]
fn unsorted_input_is_refused_by_the_whole_tree_hash() {
    let (a, b) = (kv(0), kv(1));
    let (lo, hi) = if a.0 < b.0 { (a, b) } else { (b, a) };
    assert_eq!(
        root_of_sorted(&[hi, lo]),
        Err(TreeError::NotSorted { index: 1 })
    );
    assert_eq!(
        root_of_sorted(&[lo, lo]),
        Err(TreeError::NotSorted { index: 1 })
    );
    let long = vec![0u8; 1025];
    assert_eq!(
        root_of_sorted_bytes([(long.as_slice(), &[][..])]),
        Err(TreeError::TooLong { index: 0 })
    );
}

// ---------------------------------------------------------------------------
// verify.txt

#[derive(Debug, Clone)]
struct VerifyVector {
    line: usize,
    snap: Hash,
    key: Vec<u8>,
    val: Option<Vec<u8>>,
    proof: Vec<u8>,
    want: bool,
}

fn verify_vectors() -> Vec<VerifyVector> {
    let mut out = Vec::new();
    let (mut snap, mut key, mut val, mut proof) = (None, None, None, None);
    for (line, text) in logical_lines(&vector_text("verify.txt"))
        .into_iter()
        .enumerate()
    {
        let (word, rest) = text.split_once(' ').unwrap();
        match word {
            "snap" => snap = Some(h32(rest.trim())),
            "key" => key = Some(unhex(rest)),
            "val" if rest.trim() == "-" => val = Some(None),
            "val" => val = Some(Some(unhex(rest))),
            "proof" => proof = Some(unhex(rest)),
            "verify" => out.push(VerifyVector {
                line,
                snap: snap.unwrap(),
                key: key.clone().unwrap(),
                val: val.clone().unwrap(),
                proof: proof.take().unwrap(),
                want: match rest.trim() {
                    "true" => true,
                    "false" => false,
                    w => panic!("verify {w}"),
                },
            }),
            w => panic!("unknown line {w}"),
        }
    }
    out
}

#[test]
fn every_verify_vector_is_decided_as_published() {
    let vectors = verify_vectors();
    assert_eq!(vectors.len(), 103, "the whole verify.txt");
    assert_eq!(vectors.iter().filter(|v| v.want).count(), 64);
    let (mut fixed, mut refused_alt) = (0, 0);
    for v in &vectors {
        let general = verify_bytes(&v.snap, &v.key, v.val.as_deref(), &v.proof);
        assert_eq!(general.is_ok(), v.want, "{v:?}: {general:?}");

        // The map's own verifier, where the claim is expressible in it
        // (32-byte key and value). It must agree, except that it refuses an
        // alternative leaf that is not 32 + 32 bytes (no map has one).
        let Ok(key) = Key::try_from(v.key.as_slice()) else {
            continue;
        };
        let value: Option<Value> = match &v.val {
            None => None,
            Some(x) => match Value::try_from(x.as_slice()) {
                Ok(x) => Some(x),
                Err(_) => continue,
            },
        };
        fixed += 1;
        let ours = verify(&v.snap, &key, value.as_ref(), &v.proof);
        let alt_not_32 = value.is_none()
            && !v.proof.is_empty()
            && (v.proof[0] != 32 || v.proof.get(33) != Some(&32));
        if alt_not_32 {
            assert!(ours.is_err(), "{v:?}");
            refused_alt += usize::from(v.want);
        } else {
            assert_eq!(ours.is_ok(), v.want, "{v:?}: {ours:?}");
        }
    }
    assert_eq!(fixed, 27, "vectors with a 32-byte key and value");
    // Valid in the general format, refused by the map's verifier: absence of
    // a 32-byte key shown by a 1-, 2- or 64-byte alternative key.
    assert_eq!(refused_alt, 4);
}

/// For every snapshot in verify.txt whose tree is fully listed by its
/// present 32-byte entries, build that tree and check that our prover emits
/// each published valid proof byte for byte (inclusion and absence).
#[test]
fn our_proofs_are_byte_identical_to_torchwoods() {
    let vectors = verify_vectors();
    let mut by_snap: HashMap<Hash, Vec<&VerifyVector>> = HashMap::new();
    for v in &vectors {
        by_snap.entry(v.snap).or_default().push(v);
    }
    let mut reproduced = 0;
    for (snap, group) in by_snap {
        let mut entries: BTreeMap<Key, Value> = BTreeMap::new();
        for v in group.iter().filter(|v| v.want) {
            if let (Ok(k), Some(Ok(val))) = (
                Key::try_from(v.key.as_slice()),
                v.val.as_deref().map(Value::try_from),
            ) {
                entries.insert(k, val);
            }
        }
        let items: Vec<(Key, Value)> = entries.into_iter().collect();
        if root_of_sorted(&items) != Ok(snap) {
            continue; // the vector lists only part of that tree
        }
        let tree = tree_of(&items);
        assert_eq!(tree.root(), snap);
        for v in group.iter().filter(|v| v.want) {
            let Ok(key) = Key::try_from(v.key.as_slice()) else {
                continue;
            };
            let p = tree.prove(&key);
            let want_value = v.val.as_deref().map(|x| Value::try_from(x).unwrap());
            assert_eq!(p.value, want_value, "line {}", v.line);
            assert_eq!(
                hex::encode(&p.bytes),
                hex::encode(&v.proof),
                "line {}",
                v.line
            );
            reproduced += 1;
        }
    }
    // empty tree 1, single leaf 2, two leaves 3, three leaves 4.
    assert_eq!(reproduced, 10);
}

// ---------------------------------------------------------------------------
// Known answers (verifiable-map.md §6.12)

#[test]
fn known_answers_from_the_design_note() {
    let cases: [(usize, &str); 3] = [
        (
            1,
            "2a698354db3d6d1e4205dc2ca99f9b5925612fd3641ce5bc3400ab521052c1e9",
        ),
        (
            10,
            "bc9a8f5c4b48ffd5fb48ba5996168a4ba45712b5f73bd4642df8971cd342d91e",
        ),
        (
            100,
            "70cf82c7c755c852589be0023e85948a329c1e8a9b21587dba9e50c103f1bceb",
        ),
    ];
    assert_eq!(
        MapTree::new().root(),
        h32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(root_of_sorted(&[]), Ok(EMPTY_ROOT));
    for (n, want) in cases {
        let want = h32(want);
        let items: Vec<_> = (0..n).map(kv).collect();
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(root_of_sorted(&sorted), Ok(want), "n = {n}");
        // One batch, batches of 7 in insertion order, and reversed.
        assert_eq!(tree_of(&items).root(), want);
        let mut t = MapTree::new();
        for chunk in items.chunks(7) {
            t.apply_batch(chunk).unwrap();
        }
        assert_eq!(t.root(), want);
        let mut t = MapTree::new();
        for chunk in items.rchunks(3) {
            t.apply_batch(chunk).unwrap();
        }
        assert_eq!(t.root(), want);
        assert_eq!(t.len(), n);
        for (k, v) in &items {
            let p = t.prove(k);
            assert_eq!(p.value, Some(*v));
            verify_inclusion(&want, k, v, &p.bytes).unwrap();
        }
        let absent = kv(n).0;
        let p = t.prove(&absent);
        assert_eq!(p.value, None);
        verify_absence(&want, &absent, &p.bytes).unwrap();
    }

    // Two keys first differing at bit 128: the 2-byte varint 0x80 0x01.
    let mut a = [0xffu8; 32];
    a[16..].fill(0);
    let mut b = a;
    b[16] = 0x80;
    let items = [(a, sha256(b"val:27")), (b, sha256(b"val:28"))];
    let want = h32("55664663e0148e90b47b18ec9660b0a9c5d83b03fc0235fcb8938763d7d3ed7f");
    assert_eq!(root_of_sorted(&items), Ok(want));
    let t = tree_of(&items);
    assert_eq!(t.root(), want);
    let p = t.prove(&a);
    assert_eq!(&p.bytes[..2], &[0x80, 0x01]);
    assert_eq!(p.bytes.len(), 2 + 32);
    verify_inclusion(&want, &a, &items[0].1, &p.bytes).unwrap();
}

// ---------------------------------------------------------------------------
// Batches, updates, rollback

#[test]
fn a_batch_is_order_independent_and_refuses_duplicate_keys() {
    let items: Vec<_> = (0..50).map(kv).collect();
    let mut rev = items.clone();
    rev.reverse();
    assert_eq!(tree_of(&items).root(), tree_of(&rev).root());

    let mut t = tree_of(&items[..10]);
    let before = t.root();
    let dup = [kv(60), kv(61), (kv(60).0, [7; 32])];
    assert_eq!(
        t.apply_batch(&dup).unwrap_err(),
        TreeError::DuplicateKey { key: kv(60).0 }
    );
    assert_eq!(t.root(), before);
    assert_eq!(t.len(), 10);

    // An empty batch and a no-op update change nothing.
    let u = t.apply_batch(&[]).unwrap();
    assert_eq!((t.root(), u.changed_nodes()), (before, 0));
    let u = t.apply_batch(&[kv(3)]).unwrap();
    assert_eq!((t.root(), u.changed_nodes()), (before, 0));

    // An update changes the root, and equals building with the new value.
    t.apply_batch(&[(kv(3).0, [9; 32])]).unwrap();
    let mut model: BTreeMap<Key, Value> = items[..10].iter().copied().collect();
    model.insert(kv(3).0, [9; 32]);
    let sorted: Vec<_> = model.into_iter().collect();
    assert_eq!(Ok(t.root()), root_of_sorted(&sorted));
    assert_eq!(t.get(&kv(3).0), Some([9; 32]));
    assert_eq!(t.get(&kv(99).0), None);
}

#[test]
fn rollback_restores_the_exact_previous_tree_and_refuses_stale_undos() {
    let mut t = MapTree::new();
    t.apply_batch(&(0..20).map(kv).collect::<Vec<_>>()).unwrap();
    let r0 = t.root();
    let probe: Vec<Key> = (0..45).map(|i| kv(i).0).collect();
    let proofs0: Vec<_> = probe.iter().map(|k| t.prove(k)).collect();

    // Two batches that insert and update, undone newest first.
    let mut b1: Vec<_> = (20..40).map(kv).collect();
    b1.push((kv(5).0, [1; 32]));
    let u1 = t.apply_batch(&b1).unwrap();
    let r1 = t.root();
    let u2 = t.apply_batch(&[kv(40), (kv(6).0, [2; 32])]).unwrap();
    assert_ne!(t.root(), r1);
    t.rollback(u2).unwrap();
    assert_eq!(t.root(), r1);
    t.rollback(u1).unwrap();
    assert_eq!((t.root(), t.len()), (r0, 20));
    let proofs: Vec<_> = probe.iter().map(|k| t.prove(k)).collect();
    assert_eq!(proofs, proofs0);

    // Out of order: refused (the record is consumed), nothing changes.
    let u3 = t.apply_batch(&[kv(41)]).unwrap();
    let r3 = t.root();
    let u4 = t.apply_batch(&[kv(42)]).unwrap();
    let r4 = t.root();
    assert_eq!(t.rollback(u3).unwrap_err(), TreeError::StaleUndo);
    assert_eq!(t.root(), r4);
    t.rollback(u4).unwrap();
    assert_eq!(t.root(), r3);

    // An undo record of another tree is refused.
    let mut other = MapTree::new();
    let foreign = other.apply_batch(&[kv(0)]).unwrap();
    assert_eq!(t.rollback(foreign).unwrap_err(), TreeError::StaleUndo);
    assert_eq!(t.root(), r3);
}

// ---------------------------------------------------------------------------
// Forged and malformed proofs

fn sample_tree() -> (MapTree, Vec<(Key, Value)>) {
    let items: Vec<_> = (0..64).map(kv).collect();
    (tree_of(&items), items)
}

#[test]
fn forged_absence_proofs_are_rejected() {
    let (t, items) = sample_tree();
    let root = t.root();
    let absent = kv(1000).0;
    let honest = t.prove(&absent);
    verify_absence(&root, &absent, &honest.bytes).unwrap();

    // altkey = key.
    let mut forged = honest.bytes.clone();
    forged[1..33].copy_from_slice(&absent);
    assert_eq!(
        verify_absence(&root, &absent, &forged),
        Err(ProofError::AltKeyEqualsKey)
    );

    // A genuine leaf of the tree on another branch, with its genuine path:
    // every hash is right, but the lookup for `absent` does not reach it.
    let honest_alt: Key = honest.bytes[1..33].try_into().unwrap();
    let mut disagreements = 0;
    for (k, v) in &items {
        if *k == honest_alt {
            continue;
        }
        let mut forged = vec![32];
        forged.extend_from_slice(k);
        forged.push(32);
        forged.extend_from_slice(v);
        forged.extend_from_slice(&t.prove(k).bytes);
        match verify_absence(&root, &absent, &forged) {
            Err(ProofError::AltKeyDisagrees { .. }) => disagreements += 1,
            other => panic!("forged absence via {}: {other:?}", hex::encode(k)),
        }
    }
    assert_eq!(disagreements, 63);

    // The empty tree: only the empty proof.
    assert_eq!(verify_absence(&EMPTY_ROOT, &absent, &[]), Ok(()));
    assert_eq!(
        verify_absence(&EMPTY_ROOT, &absent, &honest.bytes),
        Err(ProofError::NonEmptyProofForEmptyTree {
            len: honest.bytes.len()
        })
    );
    assert_eq!(
        verify_inclusion(&EMPTY_ROOT, &items[0].0, &items[0].1, &[]),
        Err(ProofError::EmptyTree)
    );
    // A non-empty tree: never the empty proof.
    assert_eq!(
        verify_absence(&root, &absent, &[]),
        Err(ProofError::MissingAltLeaf)
    );
}

#[test]
fn malformed_proofs_are_rejected_with_their_reason() {
    let (t, items) = sample_tree();
    let root = t.root();
    let (k, v) = items[0];
    let p = t.prove(&k).bytes;
    assert!(p.len() >= 3 * 33, "a path of several steps");
    verify_inclusion(&root, &k, &v, &p).unwrap();

    // Trailing byte; truncated hash; truncated varint.
    // (A trailing 0x00 reads as bit 0: "not decreasing" if the root splits
    // on bit 0, else a truncated hash.)
    let mut x = p.clone();
    x.push(0);
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::Truncated { .. } | ProofError::BitsNotDecreasing { .. })
    ));
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &p[..p.len() - 1]),
        Err(ProofError::Truncated { .. })
    ));
    let mut x = p.clone();
    x.push(0x80);
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::Truncated { .. })
    ));

    // Two steps swapped: bits no longer decrease.
    let mut x = p[33..66].to_vec();
    x.extend_from_slice(&p[..33]);
    x.extend_from_slice(&p[66..]);
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::BitsNotDecreasing { .. })
    ));
    // A step repeated.
    let mut x = p[..33].to_vec();
    x.extend_from_slice(&p);
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::BitsNotDecreasing { .. })
    ));

    // A non-minimal varint for the first bit: torchwood's Go decoder would
    // read the same number; we refuse, so that proofs stay canonical.
    assert!(p[0] < 0x80);
    let mut x = vec![p[0] | 0x80, 0x00];
    x.extend_from_slice(&p[1..]);
    assert_eq!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::BadVarint { at: 0 })
    );

    // Bit 256 is out of range for 32-byte keys.
    let mut x = vec![0x80, 0x02];
    x.extend_from_slice(&[0; 32]);
    assert!(matches!(
        verify_inclusion(&root, &k, &v, &x),
        Err(ProofError::BitOutOfRange { bit: 256, .. })
    ));

    // An alternative leaf of the wrong size.
    let absent = kv(1000).0;
    let a = t.prove(&absent).bytes;
    let mut x = vec![31];
    x.extend_from_slice(&a[2..]);
    assert!(matches!(
        verify_absence(&root, &absent, &x),
        Err(ProofError::AltLeafLength { len: 31, .. })
    ));

    // Claims swapped: an inclusion proof as absence, absence as inclusion.
    assert!(verify_absence(&root, &k, &p).is_err());
    let alt_value: Value = a[34..66].try_into().unwrap();
    assert!(verify_inclusion(&root, &absent, &alt_value, &a).is_err());
    assert_eq!(
        verify_inclusion(&root, &k, &[0; 32], &p),
        Err(ProofError::RootMismatch)
    );
}

// ---------------------------------------------------------------------------
// Properties

/// Keys with long shared prefixes (bits past 127, 2-byte varints) as well as
/// random ones.
fn key_strategy() -> impl Strategy<Value = Key> {
    (any::<[u8; 32]>(), 0usize..32, any::<u8>()).prop_map(|(mut k, shared, fill)| {
        if shared > 24 || fill < 128 {
            k[..shared].fill(0xa5);
        }
        k
    })
}

fn batches_strategy() -> impl Strategy<Value = Vec<Vec<(Key, Value)>>> {
    proptest::collection::vec(
        proptest::collection::vec((key_strategy(), any::<[u8; 32]>()), 0..40),
        1..8,
    )
    .prop_map(|batches| {
        // Within a batch a key appears once; across batches keys repeat
        // (updates) when a later batch reuses an earlier key.
        let mut seen: Vec<Key> = Vec::new();
        batches
            .into_iter()
            .enumerate()
            .map(|(n, b)| {
                let mut keys = std::collections::HashSet::new();
                let mut out = Vec::new();
                for (i, (mut k, v)) in b.into_iter().enumerate() {
                    if n > 0 && i % 5 == 0 && !seen.is_empty() {
                        k = seen[(i * 7 + n) % seen.len()];
                    }
                    if keys.insert(k) {
                        out.push((k, v));
                    }
                }
                seen.extend(out.iter().map(|(k, _)| *k));
                out
            })
            .collect()
    })
}

fn mutations(p: &[u8], seed: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if !p.is_empty() {
        let i = seed % p.len();
        for mask in [0x01u8, 0x80, 0xff] {
            let mut x = p.to_vec();
            x[i] ^= mask;
            out.push(x);
        }
        out.push(p[..i].to_vec());
        out.push(p[..p.len() - 1].to_vec());
    }
    for b in [0u8, 1, 0x20, 0x80] {
        let mut x = p.to_vec();
        x.push(b);
        out.push(x);
    }
    let mut x = p.to_vec();
    x.extend_from_slice(&[0u8; 33]);
    out.push(x);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The incremental tree, batch after batch, always has the root of the
    /// independent whole-tree hash over the same entries; every present key
    /// proves its value and every absent key proves its absence.
    #[test]
    fn incremental_tree_matches_whole_tree_hash_and_proves_everything(
        batches in batches_strategy(),
        probes in proptest::collection::vec(key_strategy(), 1..20),
    ) {
        let mut t = MapTree::new();
        let mut model: BTreeMap<Key, Value> = BTreeMap::new();
        for b in &batches {
            t.apply_batch(b).unwrap();
            model.extend(b.iter().copied());
            let sorted: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(Ok(t.root()), root_of_sorted(&sorted));
            prop_assert_eq!(t.len(), model.len());
        }
        let root = t.root();
        for (k, v) in &model {
            let p = t.prove(k);
            prop_assert_eq!(p.value, Some(*v));
            prop_assert_eq!(verify_inclusion(&root, k, v, &p.bytes), Ok(()));
            prop_assert!(verify_absence(&root, k, &p.bytes).is_err());
        }
        for k in &probes {
            let p = t.prove(k);
            prop_assert_eq!(p.value, model.get(k).copied());
            prop_assert_eq!(verify(&root, k, p.value.as_ref(), &p.bytes), Ok(()));
        }
    }

    /// No mutation of a valid proof (flipped bits, truncation, extension,
    /// the other claim) verifies.
    #[test]
    fn mutated_proofs_never_verify(
        batches in batches_strategy(),
        probes in proptest::collection::vec(key_strategy(), 1..8),
        seed in any::<usize>(),
    ) {
        let mut t = MapTree::new();
        for b in &batches {
            t.apply_batch(b).unwrap();
        }
        let root = t.root();
        let present: Vec<Key> = batches.iter().flatten().map(|(k, _)| *k).take(8).collect();
        for k in present.iter().chain(&probes) {
            let p = t.prove(k);
            prop_assert_eq!(verify(&root, k, p.value.as_ref(), &p.bytes), Ok(()));
            for (n, x) in mutations(&p.bytes, seed).iter().enumerate() {
                prop_assert!(verify(&root, k, p.value.as_ref(), x).is_err(), "mutation {}", n);
            }
            // The opposite claim with the same bytes.
            match p.value {
                Some(_) => prop_assert!(verify_absence(&root, k, &p.bytes).is_err()),
                None => prop_assert!(verify_inclusion(&root, k, &[0x5a; 32], &p.bytes).is_err()),
            }
            // Another value, and another key, with the same bytes.
            if let Some(v) = p.value {
                let mut w = v;
                w[seed % 32] ^= 1;
                prop_assert!(verify_inclusion(&root, k, &w, &p.bytes).is_err());
            }
            let mut other = *k;
            other[31] ^= 1;
            // (An absence proof may be valid for many absent keys; an
            // inclusion proof is valid for one key.)
            if p.value.is_some() && t.get(&other).is_none() {
                prop_assert!(verify(&root, &other, p.value.as_ref(), &p.bytes).is_err());
            }
        }
    }

    /// Rolling back a batch restores the exact previous root, lookups and
    /// proofs; re-applying it gives the same root as the first time.
    #[test]
    fn rollback_restores_the_previous_root(
        batches in batches_strategy(),
        last in proptest::collection::vec((key_strategy(), any::<[u8; 32]>()), 0..40),
    ) {
        let mut t = MapTree::new();
        for b in &batches {
            t.apply_batch(b).unwrap();
        }
        // Updates of existing keys as well as new keys in the rolled-back batch.
        let mut last: BTreeMap<Key, Value> = last.into_iter().collect();
        for (i, (k, _)) in batches.iter().flatten().enumerate().take(10) {
            last.insert(*k, [i as u8; 32]);
        }
        let last: Vec<_> = last.into_iter().collect();
        let before = t.root();
        let len = t.len();
        let probes: Vec<Key> = last.iter().map(|(k, _)| *k).collect();
        let proofs: Vec<_> = probes.iter().map(|k| t.prove(k)).collect();

        let undo = t.apply_batch(&last).unwrap();
        let after = t.root();
        t.rollback(undo).unwrap();
        prop_assert_eq!(t.root(), before);
        prop_assert_eq!(t.len(), len);
        for (k, p) in probes.iter().zip(&proofs) {
            prop_assert_eq!(&t.prove(k), p);
        }
        t.apply_batch(&last).unwrap();
        prop_assert_eq!(t.root(), after);
    }

    /// The general verifier agrees with the map's verifier on 32-byte claims.
    #[test]
    fn general_and_fixed_verifiers_agree(batches in batches_strategy(), probe in key_strategy()) {
        let mut t = MapTree::new();
        for b in &batches {
            t.apply_batch(b).unwrap();
        }
        let p = t.prove(&probe);
        let root = t.root();
        prop_assert_eq!(
            verify_bytes(&root, &probe, p.value.as_ref().map(|v| v.as_slice()), &p.bytes),
            Ok(())
        );
    }
}

// ---------------------------------------------------------------------------
// Measurement (not a test): cargo test --release -p vcon-scitt-core
//   --test map_vectors -- --ignored --nocapture measure

#[test]
#[ignore]
fn measure_batches_of_100() {
    use std::time::Instant;
    // Calibration: one inner-node hash (SHA-256 of 66 bytes) on this machine.
    let start = Instant::now();
    let mut h = [0u8; 32];
    for i in 0..1_000_000u32 {
        h = format::inner_hash(i % 256, &h, &h);
    }
    println!(
        "inner_hash: {:.3} µs ({:02x})",
        start.elapsed().as_secs_f64(),
        h[0]
    );
    for total in [100_000usize, 1_000_000] {
        let items: Vec<_> = (0..total).map(kv).collect();
        let mut t = MapTree::new();
        let start = Instant::now();
        let mut saved = 0;
        for batch in items.chunks(100) {
            saved += t.apply_batch(batch).unwrap().changed_nodes();
        }
        let insert = start.elapsed();
        // Updates: 100 existing keys per batch, 1,000 batches.
        let updates: Vec<Vec<_>> = (0..1_000usize)
            .map(|b| {
                (0..100)
                    .map(|i| (items[(b * 7919 + i * 104_729) % total].0, [b as u8; 32]))
                    .collect()
            })
            .collect();
        let start = Instant::now();
        for batch in &updates {
            t.apply_batch(batch).unwrap();
        }
        let update = start.elapsed();
        let root = t.root();
        let n = 10_000;
        let absent: Vec<Key> = (0..n).map(|i| kv(total + i).0).collect();
        let start = Instant::now();
        let proofs: Vec<_> = (0..n)
            .map(|i| (items[i * 13 % total].0, t.prove(&items[i * 13 % total].0)))
            .chain(absent.iter().map(|k| (*k, t.prove(k))))
            .collect();
        let prove = start.elapsed();
        let start = Instant::now();
        for (k, p) in &proofs {
            verify(&root, k, p.value.as_ref(), &p.bytes).unwrap();
        }
        let verify_time = start.elapsed();
        let incl: usize = proofs[..n].iter().map(|(_, p)| p.bytes.len()).sum();
        let abs: usize = proofs[n..].iter().map(|(_, p)| p.bytes.len()).sum();
        let max = proofs.iter().map(|(_, p)| p.bytes.len()).max().unwrap_or(0);
        let mut sorted = items.clone();
        sorted.sort();
        let start = Instant::now();
        let _ = root_of_sorted(&sorted);
        let whole = start.elapsed();
        println!(
            "{total} keys in batches of 100: insert {:.2} µs/key, update {:.2} µs/key, \
             {} existing nodes saved for undo per insert batch; prove {:.2} µs, verify {:.2} µs; \
             proof mean {} B inclusion / {} B absence, max {} B; {} B heap per key; \
             whole-tree hash {:.2} µs/key",
            insert.as_secs_f64() * 1e6 / total as f64,
            update.as_secs_f64() * 1e6 / 100_000.0,
            saved / (total / 100),
            prove.as_secs_f64() * 1e6 / (2 * n) as f64,
            verify_time.as_secs_f64() * 1e6 / (2 * n) as f64,
            incl / n,
            abs / n,
            max,
            t.heap_bytes() / t.len(),
            whole.as_secs_f64() * 1e6 / total as f64,
        );
    }
}
