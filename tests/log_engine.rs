//! The log engine against a real RocksDB: bulk appends checked against the
//! Merkle core, dedup, restarts, fault injection, and SIGKILL crash loops.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use vcon_scitt::log::{LogConfig, LogError, fsck};
use vcon_scitt::merkle::{self, Hash, MemoryTree};
use vcon_scitt::receipt;

/// Deterministic pseudo-random numbers (no extra dependency, reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn append_many(
    log: &vcon_scitt::log::Log,
    entries: impl Iterator<Item = Vec<u8>>,
    window: usize,
) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pending = Vec::with_capacity(window);
    for e in entries {
        pending.push(log.submit(e).unwrap());
        if pending.len() == window {
            for p in pending.drain(..) {
                out.push(p.wait_blocking().unwrap().index);
            }
        }
    }
    for p in pending {
        out.push(p.wait_blocking().unwrap().index);
    }
    out
}

#[test]
fn a_million_appends_match_the_merkle_core_and_fsck_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), LogConfig::default());
    const N: u64 = 1_000_000;
    let started = Instant::now();
    let indices = append_many(
        &log,
        (0..N).map(|i| format!("entry-{i}").into_bytes()),
        16_384,
    );
    let elapsed = started.elapsed();
    assert_eq!(indices.len() as u64, N);
    assert!(
        indices.iter().enumerate().all(|(k, &i)| k as u64 == i),
        "indices follow submission order"
    );
    eprintln!(
        "appended {N} in {elapsed:?} ({:.0}/s)",
        N as f64 / elapsed.as_secs_f64()
    );

    let latest = log.latest();
    assert_eq!(latest.head.size, N);
    let oracle = MemoryTree::from_leaf_hashes(
        (0..N).map(|i| merkle::leaf_hash(format!("entry-{i}").as_bytes())),
    );
    assert_eq!(latest.head.root, oracle.root_at(N));
    assert_eq!(log.root_at(N).unwrap(), oracle.root_at(N));

    let mut rng = Lcg(42);
    for _ in 0..300 {
        let size = 1 + rng.below(N);
        let index = rng.below(size);
        let proof = log.inclusion_proof(index, size).unwrap();
        assert_eq!(proof, oracle.inclusion(index, size));
        merkle::verify_inclusion(
            index,
            size,
            &oracle.leaf(index).unwrap(),
            &proof,
            &oracle.root_at(size),
        )
        .unwrap();
        let old = 1 + rng.below(size);
        let c = log.consistency_proof(old, size).unwrap();
        assert_eq!(c, oracle.consistency(old, size));
        merkle::verify_consistency(old, size, &oracle.root_at(old), &oracle.root_at(size), &c)
            .unwrap();
    }
    // Every batch's head is signed and stored; the receipt head for an entry
    // is the first one covering it.
    let h = log.first_head_covering(123_456).unwrap().unwrap();
    assert!(h.head.size > 123_456);
    assert_eq!(h.head.root, oracle.root_at(h.head.size));
    receipt::verify_tree_head(&h.signature, &h.head, &service_keys()).unwrap();

    let report = fsck(log.store(), Some(signer().as_ref())).unwrap();
    assert_eq!(report.entries, N);
    assert_eq!(report.size, N);
    assert!(report.heads > 1);
    assert_eq!(report.tiles, N / 256 + 1 + N / 65_536 + 1 + 1);
}

#[test]
fn identical_entries_are_deduplicated_within_and_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), LogConfig::default());
    let a = log.append_blocking(b"alpha".to_vec()).unwrap();
    assert!(!a.duplicate);
    let again = log.append_blocking(b"alpha".to_vec()).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, a.index);
    // Same entry twice in one batch.
    let p1 = log.submit(b"beta".to_vec()).unwrap();
    let p2 = log.submit(b"beta".to_vec()).unwrap();
    let (r1, r2) = (p1.wait_blocking().unwrap(), p2.wait_blocking().unwrap());
    assert_eq!(r1.index, r2.index);
    assert!(r1.duplicate != r2.duplicate);
    assert_eq!(log.latest().head.size, 2);
}

#[test]
fn restart_resumes_from_the_last_head_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root_before;
    {
        let log = open_log(dir.path(), LogConfig::default());
        append_many(&log, (0..5000u32).map(|i| i.to_be_bytes().to_vec()), 1000);
        root_before = log.latest().head.root;
        log.shutdown();
    }
    let log = open_log(dir.path(), LogConfig::default());
    assert_eq!(log.latest().head.size, 5000);
    assert_eq!(log.latest().head.root, root_before);
    let r = log.append_blocking(b"after restart".to_vec()).unwrap();
    assert_eq!(r.index, 5000);
    let again = log.append_blocking(7u32.to_be_bytes().to_vec()).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, 7);
    fsck(log.store(), Some(signer().as_ref())).unwrap();
}

#[test]
fn a_failed_data_write_is_reported_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let faults = config.faults.clone();
    let log = open_log(dir.path(), config);
    log.append_blocking(b"one".to_vec()).unwrap();
    faults.fail_next_data_write.store(true, Ordering::SeqCst);
    let err = log.append_blocking(b"two".to_vec()).unwrap_err();
    assert!(matches!(err, LogError::BatchFailed(_)), "{err:?}");
    assert_eq!(log.latest().head.size, 1);
    assert!(log.index_of(&merkle::leaf_hash(b"two")).unwrap().is_none());
    // The log keeps working and the retry lands at the next index.
    assert_eq!(log.append_blocking(b"two".to_vec()).unwrap().index, 1);
    fsck(log.store(), None).unwrap();
}

#[test]
fn a_failed_head_write_is_reported_and_the_next_batch_signs() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let faults = config.faults.clone();
    let log = open_log(dir.path(), config);
    log.append_blocking(b"one".to_vec()).unwrap();
    faults.fail_next_head_write.store(true, Ordering::SeqCst);
    let err = log.append_blocking(b"two".to_vec()).unwrap_err();
    assert!(
        matches!(&err, LogError::BatchFailed(why) if why.contains("head write failed")),
        "{err:?}"
    );
    assert_eq!(
        log.latest().head.size,
        1,
        "no head was published for the failed batch"
    );
    // The entry is durable; asking again answers with a head that covers it.
    let again = log.append_blocking(b"two".to_vec()).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.index, 1);
    assert!(again.head.head.size >= 2);
    fsck(log.store(), Some(signer().as_ref())).unwrap();
}

#[test]
fn a_corrupted_tile_halts_the_log_instead_of_signing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let faults = config.faults.clone();
    let log = open_log(dir.path(), config);
    append_many(&log, (0..300u32).map(|i| i.to_be_bytes().to_vec()), 300);
    let before = log.latest();
    faults.corrupt_next_tile.store(true, Ordering::SeqCst);
    let err = log.append_blocking(b"poison".to_vec()).unwrap_err();
    assert!(matches!(err, LogError::Halted(_)), "{err:?}");
    assert!(log.halted().is_some());
    // No head was signed past the corruption, and writes stay refused.
    assert_eq!(log.latest().head.size, before.head.size);
    assert!(log.store().head(before.head.size + 1).unwrap().is_none());
    assert!(matches!(
        log.submit(b"more".to_vec()),
        Err(LogError::Halted(_))
    ));
    // Reads keep working.
    assert!(log.inclusion_proof(5, before.head.size).is_ok());
    log.shutdown();
    drop(log);
    // A restart re-verifies and still refuses to sign.
    let reopened = vcon_scitt::log::Log::open(dir.path(), LogConfig::default(), signer());
    assert!(reopened.is_err(), "recovery must refuse the corrupt tile");
}

#[test]
fn back_pressure_answers_queue_full_rather_than_growing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(
        dir.path(),
        LogConfig {
            queue_capacity: 4,
            max_batch: 1,
            ..LogConfig::default()
        },
    );
    let mut full = 0;
    let mut pending = Vec::new();
    for i in 0..2000u32 {
        match log.submit(i.to_be_bytes().to_vec()) {
            Ok(p) => pending.push(p),
            Err(LogError::QueueFull) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full > 0, "a 4-slot queue must push back");
    for p in pending {
        p.wait_blocking().unwrap();
    }
}

/// Run only as the child of `sigkill_at_random_moments_loses_nothing_acknowledged`.
#[test]
#[ignore = "child process of the crash test"]
fn crash_child() {
    let Ok(dir) = std::env::var("VCON_CRASH_DIR") else {
        return;
    };
    let cycle: u64 = std::env::var("VCON_CRASH_CYCLE").unwrap().parse().unwrap();
    let log = open_log(std::path::Path::new(&dir), LogConfig::default());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let head = log.latest();
    {
        let mut o = out.lock().unwrap();
        writeln!(o, "HEAD {} {}", head.head.size, hex::encode(head.head.root)).unwrap();
        o.flush().unwrap();
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let log = log.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for k in 0u64.. {
                    let entry = format!("c{cycle}-t{t}-k{k}").into_bytes();
                    if let Ok(a) = log.append_blocking(entry) {
                        let mut o = out.lock().unwrap();
                        writeln!(
                            o,
                            "ACK {} {} {} {}",
                            a.index,
                            hex::encode(a.leaf),
                            a.head.head.size,
                            hex::encode(a.head.head.root)
                        )
                        .unwrap();
                        o.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("VCON_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Lcg(7);
    let mut acked: Vec<(u64, Hash)> = Vec::new();
    let mut heads_seen: Vec<(u64, Hash)> = Vec::new();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--nocapture",
                "--include-ignored",
                "--test-threads=1",
            ])
            .env("VCON_CRASH_DIR", dir.path())
            .env("VCON_CRASH_CYCLE", cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        // Wait until the child is up and appending, then kill at a random point.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        while !lines.iter().any(|l: &String| l.starts_with("ACK")) && Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
                lines.push(l);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut cycle_acks = 0;
        for l in &lines {
            let parts: Vec<&str> = l.split(' ').collect();
            match parts.as_slice() {
                ["ACK", idx, leaf, size, root] => {
                    acked.push((idx.parse().unwrap(), merkle::from_hex(leaf).unwrap()));
                    heads_seen.push((size.parse().unwrap(), merkle::from_hex(root).unwrap()));
                    cycle_acks += 1;
                }
                ["HEAD", size, root] => {
                    heads_seen.push((size.parse().unwrap(), merkle::from_hex(root).unwrap()))
                }
                _ => {}
            }
        }
        assert!(
            cycle_acks > 0,
            "cycle {cycle}: the child acknowledged nothing"
        );

        // Restart in-process and check every promise.
        let log = open_log(dir.path(), LogConfig::default());
        let latest = log.latest();
        for (idx, leaf) in &acked {
            let entry = log
                .entry(*idx)
                .unwrap()
                .unwrap_or_else(|| panic!("acked entry {idx} lost"));
            assert_eq!(merkle::leaf_hash(&entry), *leaf, "entry {idx} changed");
        }
        heads_seen.sort();
        heads_seen.dedup();
        for (size, root) in &heads_seen {
            assert!(*size <= latest.head.size, "head {size} vanished");
            let proof = log.consistency_proof(*size, latest.head.size).unwrap();
            if *size > 0 {
                merkle::verify_consistency(
                    *size,
                    latest.head.size,
                    root,
                    &latest.head.root,
                    &proof,
                )
                .unwrap_or_else(|e| {
                    panic!("head {size} inconsistent with {}: {e}", latest.head.size)
                });
            }
        }
        fsck(log.store(), Some(signer().as_ref())).unwrap();
        log.shutdown();
    }
    eprintln!(
        "{cycles} SIGKILL cycles, {} acknowledged entries, {} heads checked",
        acked.len(),
        heads_seen.len()
    );
}
