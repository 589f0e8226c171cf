//! `vcon-scitt bench --fill N --vcons V`: grow a data dir with N real
//! lifecycle statements about V vCons (entry i is about vCon i mod V, so
//! each has N/V entries) through the real sequencer and vCon map (no HTTP,
//! no issuer-signature check on the way in; the Ed25519 test issuer signs), then
//! measure what a relying party pays for a provable answer at that size:
//! map proof size and time, proof-bundle size and generation time, and
//! offline bundle verification time, over a sample of vCons.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use vcon_scitt::config::Config;
use vcon_scitt::log::CloserInput;
use vcon_scitt::service::Service;
use vcon_scitt::statement::{Builder, SignedStatement, entry_id};
use vcon_scitt::vcon::profile::{Event, EventInput, LIFECYCLE_CONTENT_TYPE, event_document};
use vcon_scitt::vcon::proof::{record_of, verify_bundle};
use vcon_scitt_core::keys::SigningKey;

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    if v.is_empty() {
        return Stats::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: at(0.5),
        p99: at(0.99),
        max: at(1.0),
    }
}

#[derive(Debug, Default, Serialize)]
pub struct ProofBenchReport {
    pub tree_size: u64,
    pub vcons_in_map: usize,
    pub appended: u64,
    pub fill_seconds: f64,
    pub fill_entries_per_sec: f64,
    pub map_heap_bytes: usize,
    pub sample: usize,
    pub inclusion_proof_bytes: Stats,
    pub absence_proof_bytes: Stats,
    pub map_prove_us: Stats,
    pub bundle_entries: Stats,
    pub bundle_bytes: Stats,
    pub bundle_generate_ms: Stats,
    pub bundle_verify_ms: Stats,
}

fn uuid_of(j: u64) -> String {
    format!(
        "0bec0000-{:04x}-8000-8000-{:012x}",
        (j >> 48) as u16,
        j & 0xffff_ffff_ffff
    )
}

/// Statement `i` of the fill: about vCon `i mod vcons`, its `i / vcons`-th
/// event (the first a `vcon_created`).
fn statement(key: &SigningKey, iss: &str, i: u64, vcons: u64, now: i64) -> Vec<u8> {
    let (j, round) = (i % vcons, i / vcons);
    let uuid = uuid_of(j);
    let at_secs = 1_795_000_000 + round as i64;
    let doc = event_document(&EventInput {
        event: Some(if round == 0 {
            Event::Created
        } else {
            Event::Accessed
        }),
        vcon_uuid: uuid.clone(),
        vcon_hash: Some(vcon_scitt_core::vcon::content_hash(
            vcon_scitt_core::vcon::HashAlg::Sha512,
            uuid.as_bytes(),
        )),
        occurred_at: Some(vcon_scitt::time::format_secs(at_secs)),
        ..Default::default()
    });
    let mut b = Builder::new(key, iss, &format!("vcon://{uuid}"));
    b.content_type = Some(LIFECYCLE_CONTENT_TYPE.into());
    b.issued_at = Some(now);
    b.sign(&serde_json::to_vec(&doc).unwrap_or_default())
        .unwrap_or_default()
}

pub fn run(
    config: &Config,
    count: u64,
    vcons: u64,
    sample: usize,
) -> anyhow::Result<ProofBenchReport> {
    anyhow::ensure!(vcons > 0, "--vcons must be at least 1");
    let svc = Service::open(config.clone()).map_err(anyhow::Error::msg)?;
    let log = svc.log.clone();
    // The Ed25519 test issuer, which the default configuration registers:
    // the filled statements are ones the service would admit, so a monitor
    // of the filled log checks their issuer signatures like any others.
    let (key, iss) = super::test_issuer(super::ED25519_ISSUER)?;
    let now = vcon_scitt::time::now_secs();
    let policy = svc.policy_entry();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(16_384);
    const CHUNK: u64 = 20_000;
    let mut first = 0u64;
    while first < count {
        let last = (first + CHUNK).min(count);
        // Sign a chunk on every core, then submit it in order.
        let per = (last - first).div_ceil(threads as u64).max(1);
        let signed: Vec<Vec<u8>> = std::thread::scope(|s| {
            let parts: Vec<_> = (first..last)
                .step_by(per as usize)
                .map(|a| {
                    let (key, iss) = (&key, iss.as_str());
                    s.spawn(move || {
                        (a..(a + per).min(last))
                            .map(|i| statement(key, iss, i, vcons, now))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for st in signed {
            let parsed = SignedStatement::parse(&st, usize::MAX)?;
            let entry = parsed.entry_bytes();
            let leaf = log.store().leaf_hash(&entry);
            let record = record_of(&st).map_err(anyhow::Error::msg)?;
            let rows = vcon_scitt::vcon_index::rows(&record, &entry_id(&leaf), policy.as_deref());
            let input =
                vcon_scitt::vcon_map::MapInput::new(record).map(|m| Arc::new(m) as CloserInput);
            let identity = Some(parsed.registration_identity());
            super::fill::submit_bounded(&mut pending, || {
                log.submit_for_closer(entry.clone(), leaf, identity, rows.clone(), input.clone())
            })?;
        }
        first = last;
    }
    for p in pending.drain(..) {
        p.wait_blocking()?;
    }
    let fill_seconds = start.elapsed().as_secs_f64();

    // Measure over a spread sample of the vCons.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let keys = svc.public_keys().clone();
    let (mut inc, mut abs, mut prove, mut nent, mut bsize, mut gen_ms, mut ver_ms) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let total_vcons = vcons.min(count.max(1));
    let step = (total_vcons / sample.max(1) as u64).max(1);
    let (map_heap_bytes, vcons_in_map) = {
        let m = svc.map.lock().unwrap_or_else(|p| p.into_inner());
        (m.tree().heap_bytes(), m.tree().len())
    };
    for s in 0..sample as u64 {
        let j = (s * step) % total_vcons;
        let uuid = uuid_of(j);
        let key = vcon_scitt::vcon::state::map_key(&uuid).unwrap_or_default();
        let absent =
            vcon_scitt::vcon::state::map_key(&uuid_of(total_vcons + s)).unwrap_or_default();
        {
            let m = svc.map.lock().unwrap_or_else(|p| p.into_inner());
            let t = Instant::now();
            let p = m.tree().prove(&key);
            prove.push(t.elapsed().as_secs_f64() * 1e6);
            inc.push(p.bytes.len() as f64);
            abs.push(m.tree().prove(&absent).bytes.len() as f64);
        }
        let t = Instant::now();
        let bundle = rt.block_on(vcon_scitt::reads::vcon_proof(&*svc, &uuid))?;
        gen_ms.push(t.elapsed().as_secs_f64() * 1e3);
        nent.push(bundle.entries.len() as f64);
        let bytes = bundle.to_cbor();
        bsize.push(bytes.len() as f64);
        let t = Instant::now();
        let decoded = vcon_scitt::vcon::proof::Bundle::from_cbor(&bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let report = verify_bundle(&decoded, &uuid, &keys, &Default::default())
            .map_err(|e| anyhow::anyhow!("{uuid}: {e}"))?;
        ver_ms.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(report.present, "{uuid} is not in the map");
    }
    let tree_size = log.latest().head.size;
    svc.shutdown();
    Ok(ProofBenchReport {
        tree_size,
        vcons_in_map,
        appended: count,
        fill_seconds,
        fill_entries_per_sec: count as f64 / fill_seconds.max(1e-9),
        map_heap_bytes,
        sample,
        inclusion_proof_bytes: stats(inc),
        absence_proof_bytes: stats(abs),
        map_prove_us: stats(prove),
        bundle_entries: stats(nent),
        bundle_bytes: stats(bsize),
        bundle_generate_ms: stats(gen_ms),
        bundle_verify_ms: stats(ver_ms),
    })
}
