//! The load generator of `vcon-scitt bench`, a client of a running server
//! (loopback). It pre-signs distinct lifecycle statements (ES256 and EdDSA
//! issuers, mixed), drives C keep-alive HTTP/1.1 connections for a duration
//! or a count (optionally paced to a target rate), and reports throughput,
//! POST→201 latency percentiles, statuses, server figures from /metrics, and
//! the ES256-verify ceiling measured in the same run. It verifies a sample
//! of the receipts offline, so a fast but wrong server cannot pass.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vcon_scitt_core::keys::{Alg, KeySet, SigningKey};
use vcon_scitt_core::vcon::profile::{Event, EventInput, event_document};

pub struct BenchOptions {
    pub url: String,
    pub connections: usize,
    pub duration: Option<Duration>,
    pub count: Option<usize>,
    /// Target registrations/s over all connections (None = as fast as possible).
    pub rate: Option<f64>,
    /// (key, iss) pairs to sign with, round-robin.
    pub issuers: Vec<(SigningKey, String)>,
    pub verify_sample: usize,
    pub quiet: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct BenchReport {
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub seconds: f64,
    pub sent: u64,
    pub created_201: u64,
    pub accepted_202: u64,
    pub errors_by_status: std::collections::BTreeMap<String, u64>,
    pub registrations_per_sec: f64,
    pub latency_ms: Latency,
    pub ceiling: Ceiling,
    /// registrations/s ÷ the 2-core ES256 verify ceiling.
    pub ratio_to_ceiling: f64,
    /// registrations/s ÷ the 2-core verify ceiling of this run's issuer mix.
    pub ratio_to_mix_ceiling: f64,
    pub cpu: CpuBudget,
    pub receipts_verified: usize,
    /// Mean size of the statements sent (for storage per entry).
    pub statement_bytes_mean: f64,
    pub server: ServerFigures,
}

#[derive(Debug, Serialize, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Ceiling {
    pub es256_verify_per_sec_1_core: f64,
    pub es256_verify_per_sec_2_cores: f64,
    /// ring's Ed25519 verify, for the EdDSA share of the mix.
    pub ed25519_verify_per_sec_1_core: f64,
    /// The 2-core ceiling for this run's issuer mix: 2-core ES256 rate scaled
    /// by the mix's mean verify time relative to ES256.
    pub mix_verify_per_sec_2_cores: f64,
}

/// Where the machine's CPU went during the load, per registration (201).
#[derive(Debug, Serialize, Default)]
pub struct CpuBudget {
    /// Server process CPU (`process_cpu_seconds_total` delta) per registration.
    pub server_us_per_registration: f64,
    /// This load generator's own CPU per registration (same machine).
    pub generator_us_per_registration: f64,
    /// Mean issuer-signature verification cost for the mix, from the
    /// ceiling measurement: the part of the server's figure no design avoids.
    pub verify_us_per_registration: f64,
    /// Server and generator CPU over wall time (2.0 = both cores busy).
    pub cores_busy: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct ServerFigures {
    pub batches: f64,
    pub mean_batch_size: f64,
    pub mean_commit_ms: f64,
    pub mean_sign_ms: f64,
    pub tree_size: f64,
}

/// ES256 verifications per second on `threads` threads for `secs`.
pub fn measure_ceiling(threads: usize, secs: f64) -> f64 {
    measure_verify(Alg::P256, threads, secs)
}

/// Signature verifications per second for `alg` on `threads` threads.
pub fn measure_verify(alg: Alg, threads: usize, secs: f64) -> f64 {
    let Ok((key, _)) = SigningKey::generate(alg) else {
        return 0.0;
    };
    let msg = vec![7u8; 256];
    let Ok(sig) = key.sign(&msg) else { return 0.0 };
    let pk = key.public();
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (pk, sig, msg, total) = (&pk, &sig, &msg, total.clone());
            s.spawn(move || {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    for _ in 0..64 {
                        if pk.verify(msg, sig) {
                            n += 1;
                        }
                    }
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
    });
    total.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Distinct, valid lifecycle statements (each a different vCon uuid).
pub fn presign(issuers: &[(SigningKey, String)], n: usize, seed: u64) -> Vec<Vec<u8>> {
    // Signed on every core (before the load starts, so it costs no run time).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..n)
            .step_by(chunk)
            .map(|start| {
                s.spawn(move || presign_range(issuers, start..(start + chunk).min(n), seed))
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn presign_range(
    issuers: &[(SigningKey, String)],
    range: std::ops::Range<usize>,
    seed: u64,
) -> Vec<Vec<u8>> {
    let now = vcon_scitt_core::time::now_secs();
    range
        .map(|i| {
            let (key, iss) = &issuers[i % issuers.len()];
            let uuid = format!(
                "{:08x}-{:04x}-8000-8000-{:012x}",
                seed as u32,
                (i >> 48) as u16,
                i as u64 & 0xffff_ffff_ffff
            );
            let doc = event_document(&EventInput {
                event: Some(Event::Created),
                vcon_uuid: uuid.clone(),
                vcon_hash: Some(vcon_scitt_core::vcon::content_hash(
                    vcon_scitt_core::vcon::HashAlg::Sha512,
                    uuid.as_bytes(),
                )),
                occurred_at: Some("2026-11-20T10:00:00Z".into()),
                ..Default::default()
            });
            let mut b =
                vcon_scitt_core::statement::Builder::new(key, iss, &format!("vcon://{uuid}"));
            b.content_type = Some(vcon_scitt_core::vcon::profile::LIFECYCLE_CONTENT_TYPE.into());
            b.issued_at = Some(now);
            b.sign(&serde_json::to_vec(&doc).unwrap_or_default())
                .unwrap_or_default()
        })
        .collect()
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let n = opts.count.unwrap_or_else(|| {
        // Enough for the duration at ~30k/s.
        (opts
            .duration
            .unwrap_or(Duration::from_secs(10))
            .as_secs_f64()
            * 30_000.0) as usize
    });
    if !opts.quiet {
        eprintln!(
            "pre-signing {n} statements with {} issuer key(s)...",
            opts.issuers.len()
        );
    }
    let seed = vcon_scitt_core::time::now_secs() as u64 ^ std::process::id() as u64;
    let issuers = Arc::new(opts.issuers);
    let statements = {
        let issuers = issuers.clone();
        tokio::task::spawn_blocking(move || presign(&issuers, n, seed)).await?
    };
    let statements = Arc::new(statements);
    if !opts.quiet {
        eprintln!("measuring the ES256 verify ceiling (1 and 2 cores)...");
    }
    let mix: Vec<Alg> = issuers.iter().map(|(k, _)| k.alg()).collect();
    let ceiling = tokio::task::spawn_blocking(move || {
        let es1 = measure_ceiling(1, 1.0);
        let es2 = measure_ceiling(2, 1.0);
        let ed1 = measure_verify(Alg::Ed25519, 1, 1.0);
        // Mean verify time of the round-robin mix, relative to ES256.
        let rel = mix
            .iter()
            .map(|a| match a {
                Alg::Ed25519 => es1 / ed1.max(1.0),
                _ => 1.0,
            })
            .sum::<f64>()
            / mix.len().max(1) as f64;
        Ceiling {
            es256_verify_per_sec_1_core: es1,
            es256_verify_per_sec_2_cores: es2,
            ed25519_verify_per_sec_1_core: ed1,
            mix_verify_per_sec_2_cores: es2 / rel.max(1e-9),
        }
    })
    .await?;
    let scrape = || async {
        vcon_scitt_client::get(&opts.url, "/metrics")
            .await
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default()
    };
    let server_cpu_before = metric_value(&scrape().await, "process_cpu_seconds_total");
    let own_cpu_before = vcon_scitt::metrics::process_stats().map(|p| p.cpu_seconds);

    let next = Arc::new(AtomicUsize::new(0));
    let stop_at = opts.duration.map(|d| Instant::now() + d);
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let per_conn_interval = opts
        .rate
        .map(|r| Duration::from_secs_f64(opts.connections as f64 / r.max(1.0)));
    let mut tasks = Vec::new();
    let connections = opts.connections;
    for conn_no in 0..opts.connections {
        let (url, next, statements, sent) = (
            opts.url.clone(),
            next.clone(),
            statements.clone(),
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::new();
            let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
            let mut sample: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut conn = match LoadConn::connect(&url).await {
                Ok(c) => c,
                Err(_) => return (lat, statuses, sample),
            };
            let mut tick = per_conn_interval.map(|i| {
                // Phases spread evenly over one interval: arrivals are a steady
                // stream, not a burst of every connection at once.
                let offset = i.mul_f64(conn_no as f64 / connections as f64);
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            loop {
                if stop_at.is_some_and(|s| Instant::now() >= s) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= statements.len() {
                    break;
                }
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let t0 = Instant::now();
                let r = conn.post(&statements[i]).await;
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                sent.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(r) => {
                        *statuses.entry(r).or_default() += 1;
                        if r == 201 {
                            lat.push(us);
                            if sample.len() < 64 && i % 97 == 0 {
                                sample.push((i, conn.body().to_vec()));
                            }
                        }
                    }
                    Err(_) => {
                        *statuses.entry(0).or_default() += 1;
                        match LoadConn::connect(&url).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat, statuses, sample)
        }));
    }
    // Progress.
    let progress = {
        let sent = sent.clone();
        let quiet = opts.quiet;
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let s = sent.load(Ordering::Relaxed);
                if !quiet {
                    eprint!("\r  {s:>9} sent, {:>7}/s   ", s - last);
                }
                last = s;
            }
        })
    };
    let mut lat = Vec::new();
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut sample = Vec::new();
    for t in tasks {
        let (l, s, smp) = t.await?;
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
        sample.extend(smp);
    }
    let seconds = started.elapsed().as_secs_f64();
    let own_cpu = own_cpu_before
        .zip(vcon_scitt::metrics::process_stats().map(|p| p.cpu_seconds))
        .map(|(a, b)| b - a);
    // One scrape right after the load: CPU and batch figures both come from it.
    let metrics = scrape().await;
    let server_cpu_used = server_cpu_before
        .zip(metric_value(&metrics, "process_cpu_seconds_total"))
        .map(|(a, b)| b - a);
    progress.abort();
    if !opts.quiet {
        eprintln!();
    }

    // Offline verification of a sample.
    // --verify-sample 0 skips this (e.g. to drive another service).
    let keys = if opts.verify_sample == 0 {
        KeySet::new()
    } else {
        let keys_reply = vcon_scitt_client::get(&opts.url, "/.well-known/scitt-keys").await?;
        KeySet::parse_any(&keys_reply.body)?
    };
    let mut verified = 0;
    for (i, receipt) in sample.iter().take(opts.verify_sample) {
        let st = &statements[*i];
        vcon_scitt_core::verify::verify(&vcon_scitt_core::verify::Request {
            statement: st.clone(),
            receipts: vec![receipt.clone()],
            service_keys: keys.clone(),
            ..Default::default()
        })
        .map_err(|e| anyhow::anyhow!("a returned receipt does not verify: {e}"))?;
        verified += 1;
    }

    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx] as f64 / 1000.0
    };
    let created = statuses.get(&201).copied().unwrap_or(0);
    let m = |name: &str| -> f64 { metric_value(&metrics, name).unwrap_or(0.0) };
    let batches = m("vcon_scitt_batches_total");
    let server = ServerFigures {
        batches,
        mean_batch_size: m("vcon_scitt_batch_size_sum") / m("vcon_scitt_batch_size_count").max(1.0),
        mean_commit_ms: 1000.0 * m("vcon_scitt_commit_seconds_sum")
            / m("vcon_scitt_commit_seconds_count").max(1.0),
        mean_sign_ms: 1000.0 * m("vcon_scitt_sign_seconds_sum")
            / m("vcon_scitt_sign_seconds_count").max(1.0),
        tree_size: m("vcon_scitt_tree_size"),
    };
    let rps = created as f64 / seconds;
    Ok(BenchReport {
        connections: opts.connections,
        target_rate: opts.rate,
        seconds,
        sent: sent.load(Ordering::Relaxed),
        created_201: created,
        accepted_202: statuses.get(&202).copied().unwrap_or(0),
        errors_by_status: statuses
            .iter()
            .filter(|(k, _)| !matches!(**k, 201 | 202))
            .map(|(k, v)| {
                (
                    if *k == 0 {
                        "connection".into()
                    } else {
                        k.to_string()
                    },
                    *v,
                )
            })
            .collect(),
        registrations_per_sec: rps,
        latency_ms: Latency {
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            p999: pct(0.999),
            max: lat.last().map(|v| *v as f64 / 1000.0).unwrap_or(0.0),
        },
        ratio_to_ceiling: rps / ceiling.es256_verify_per_sec_2_cores.max(1.0),
        ratio_to_mix_ceiling: rps / ceiling.mix_verify_per_sec_2_cores.max(1.0),
        cpu: {
            let per = |cpu: Option<f64>| {
                cpu.map(|c| 1e6 * c / (created.max(1) as f64))
                    .unwrap_or(0.0)
            };
            CpuBudget {
                server_us_per_registration: per(server_cpu_used),
                generator_us_per_registration: per(own_cpu),
                verify_us_per_registration: 1e6 * ceiling.es256_verify_per_sec_2_cores
                    / ceiling.mix_verify_per_sec_2_cores.max(1.0)
                    / ceiling.es256_verify_per_sec_1_core.max(1.0),
                cores_busy: (server_cpu_used.unwrap_or(0.0) + own_cpu.unwrap_or(0.0)) / seconds,
            }
        },
        ceiling,
        receipts_verified: verified,
        statement_bytes_mean: statements.iter().map(|s| s.len() as f64).sum::<f64>()
            / statements.len().max(1) as f64,
        server,
    })
}

/// The value of an unlabelled sample `name` in Prometheus text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn render(r: &BenchReport) -> String {
    format!(
        "connections            {}\n\
         target rate            {}\n\
         duration               {:.1} s\n\
         registrations (201)    {} ({:.0}/s)\n\
         202 / errors           {} / {:?}\n\
         latency POST→201 ms    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
         ES256 verify ceiling   {:.0}/s on 1 core, {:.0}/s on 2 cores (Ed25519 {:.0}/s on 1 core)\n\
         ratio to 2-core ceiling {:.2} (ES256), {:.2} (this run's issuer mix, ceiling {:.0}/s)\n\
         CPU per registration   server {:.1} µs (of which issuer verify ≈{:.1} µs), generator {:.1} µs; {:.2} cores busy\n\
         server                 {} batches, mean batch {:.1}, commit {:.2} ms, sign+head {:.3} ms, tree size {}\n\
         receipts verified      {} (offline, sample)\n",
        r.connections,
        r.target_rate
            .map(|x| format!("{x:.0}/s"))
            .unwrap_or_else(|| "max".into()),
        r.seconds,
        r.created_201,
        r.registrations_per_sec,
        r.accepted_202,
        r.errors_by_status,
        r.latency_ms.p50,
        r.latency_ms.p90,
        r.latency_ms.p99,
        r.latency_ms.p999,
        r.latency_ms.max,
        r.ceiling.es256_verify_per_sec_1_core,
        r.ceiling.es256_verify_per_sec_2_cores,
        r.ceiling.ed25519_verify_per_sec_1_core,
        r.ratio_to_ceiling,
        r.ratio_to_mix_ceiling,
        r.ceiling.mix_verify_per_sec_2_cores,
        r.cpu.server_us_per_registration,
        r.cpu.verify_us_per_registration,
        r.cpu.generator_us_per_registration,
        r.cpu.cores_busy,
        r.server.batches,
        r.server.mean_batch_size,
        r.server.mean_commit_ms,
        r.server.mean_sign_ms,
        r.server.tree_size,
        r.receipts_verified,
    )
}

/// The load generator's own HTTP/1.1 keep-alive connection: the request
/// head is formatted once, each POST is one `write` of head + body, and the
/// response is parsed with `httparse` in place. The generator shares the
/// machine with the server, so every microsecond it spends is taken from the
/// server: this costs about half of a general-purpose hyper client
/// connection (which runs a separate connection task per request).
struct LoadConn {
    stream: tokio::net::TcpStream,
    head_prefix: Vec<u8>,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Where the last response's body is in `buf`.
    body: std::ops::Range<usize>,
}

impl LoadConn {
    async fn connect(url: &str) -> anyhow::Result<LoadConn> {
        let (authority, base) = vcon_scitt_client::http::parse_base(url)?;
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let head_prefix = format!(
            "POST {base}/entries HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/cose\r\ncontent-length: "
        )
        .into_bytes();
        Ok(LoadConn {
            stream,
            head_prefix,
            out: Vec::with_capacity(4096),
            buf: Vec::with_capacity(8192),
            body: 0..0,
        })
    }

    /// POSTs one statement; returns the status. The body stays in the
    /// connection's buffer ([`LoadConn::body`]) until the next request.
    async fn post(&mut self, body: &[u8]) -> anyhow::Result<u16> {
        use std::io::Write as _;
        self.out.clear();
        self.out.extend_from_slice(&self.head_prefix);
        let _ = write!(self.out, "{}\r\n\r\n", body.len());
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = resp.code.unwrap_or(0);
                    let len: usize = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                        .ok_or_else(|| anyhow::anyhow!("response without content-length"))?;
                    while self.buf.len() < head_len + len {
                        self.read_more().await?;
                    }
                    if self.buf.len() > head_len + len {
                        anyhow::bail!("unexpected bytes after the response");
                    }
                    self.body = head_len..head_len + len;
                    return Ok(status);
                }
                Ok(httparse::Status::Partial) => self.read_more().await?,
                Err(e) => anyhow::bail!("bad response: {e}"),
            }
        }
    }

    fn body(&self) -> &[u8] {
        self.buf.get(self.body.clone()).unwrap_or_default()
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        // Appends into spare capacity: no zeroing of a fresh buffer per read.
        self.buf.reserve(8192);
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            anyhow::bail!("connection closed");
        }
        Ok(())
    }
}
