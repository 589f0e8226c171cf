//! The log engine: fsync'd group-commit append throughput by batch size, and
//! proof generation from stored tiles at 10^6 entries (and 10^7 when
//! VCON_BENCH_BIG_DIR points at a data dir filled with
//! `vcon-scitt bench --fill 10000000 --data-dir DIR`).
//!
//! `cargo bench --bench log`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vcon_scitt::keys::{KeySet, SigningKey};
use vcon_scitt::log::{Log, LogConfig, Store};
use vcon_scitt::receipt::{CoseTreeHeadSigner, ServiceIdentity};

fn signer() -> Arc<CoseTreeHeadSigner> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/test-service-es256.pk8");
    let key = SigningKey::from_pkcs8(&std::fs::read(p).unwrap()).unwrap();
    let mut verify_keys = KeySet::new();
    verify_keys.insert(key.public(), None);
    Arc::new(CoseTreeHeadSigner {
        key,
        identity: ServiceIdentity {
            issuer: "b".into(),
            subject: "b".into(),
        },
        verify_keys,
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("append (fsync'd group commit)");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    for batch in [1usize, 64, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            LogConfig {
                max_batch: batch,
                max_delay: Duration::from_micros(200),
                ..LogConfig::default()
            },
            signer(),
        )
        .unwrap();
        let n = (batch * 16).max(256) as u64;
        g.throughput(Throughput::Elements(n));
        let mut k = 0u64;
        g.bench_function(format!("batch {batch}"), |b| {
            b.iter(|| {
                let pending: Vec<_> = (0..n)
                    .map(|_| {
                        k += 1;
                        log.submit(format!("entry {k}").into_bytes()).unwrap()
                    })
                    .collect();
                for p in pending {
                    p.wait_blocking().unwrap();
                }
            })
        });
        log.shutdown();
    }
    g.finish();

    // Proofs at 10^6 from stored tiles.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), signer()).unwrap();
    let t = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..1_000_000u32 {
        pending.push_back(log.submit(i.to_be_bytes().to_vec()).unwrap());
        if pending.len() >= 16_384 {
            pending.pop_front().unwrap().wait_blocking().unwrap();
        }
    }
    for p in pending {
        p.wait_blocking().unwrap();
    }
    eprintln!("built a 10^6 log in {:?}", t.elapsed());
    proofs(c, "10^6", &log);
    log.shutdown();
    if let Ok(big) = std::env::var("VCON_BENCH_BIG_DIR") {
        let store = Store::open_read_only(&std::path::Path::new(&big).join("db")).unwrap();
        let log = Log::with_store(store, LogConfig::default(), signer());
        if let Ok(log) = log {
            proofs(c, "10^7", &log);
        }
    }
}

fn proofs(c: &mut Criterion, label: &str, log: &Log) {
    let size = log.latest().head.size;
    let mut g = c.benchmark_group(format!("proofs at {label} entries"));
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    g.bench_function("inclusion proof (random index, latest size)", |b| {
        b.iter(|| log.inclusion_proof(next() % size, size).unwrap())
    });
    g.bench_function("consistency proof (random old size)", |b| {
        b.iter(|| {
            log.consistency_proof(1 + next() % (size - 1), size)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
