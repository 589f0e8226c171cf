//! Prometheus text exposition for `/metrics`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::log::metrics::Histogram;
use crate::service::Service;

/// The exposition: outcome counters, then one sample per (name, help,
/// kind, value) row, then the sequencer's histograms.
pub fn render(svc: &Service) -> String {
    let mut s = String::with_capacity(4096);
    let c = &svc.counters;
    let _ = writeln!(
        s,
        "# HELP vcon_scitt_registrations_total POST /entries by outcome."
    );
    let _ = writeln!(s, "# TYPE vcon_scitt_registrations_total counter");
    for (outcome, v) in [
        ("created", &c.created),
        ("duplicate", &c.duplicate),
        ("accepted", &c.accepted),
        ("rejected", &c.rejected),
        ("malformed", &c.malformed),
        ("overloaded", &c.overloaded),
        ("rate_limited", &c.rate_limited),
        ("unauthorized", &c.unauthorized),
        ("failed", &c.failed),
    ] {
        let _ = writeln!(
            s,
            "vcon_scitt_registrations_total{{outcome=\"{outcome}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    let m = svc.log.metrics();
    let latest = svc.log.latest();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let mut samples: Vec<(&str, &str, Kind, f64)> = vec![
        (
            "vcon_scitt_tree_size",
            "Size of the latest signed tree head.",
            Kind::Gauge,
            latest.head.size as f64,
        ),
        (
            "vcon_scitt_tree_head_timestamp_seconds",
            "Time of the latest signed tree head.",
            Kind::Gauge,
            latest.head.timestamp_ms as f64 / 1000.0,
        ),
        (
            "vcon_scitt_queue_depth",
            "Entries waiting for the sequencer.",
            Kind::Gauge,
            load(&m.queued),
        ),
        (
            "vcon_scitt_pending_registrations",
            "Registrations past their wait budget, still sequencing.",
            Kind::Gauge,
            svc.pending_count() as f64,
        ),
        (
            "vcon_scitt_log_halted",
            "1 if the log refused to sign after an integrity alarm.",
            Kind::Gauge,
            if svc.log.halted().is_some() { 1.0 } else { 0.0 },
        ),
        (
            "vcon_scitt_batches_total",
            "Committed batches (one signed head each).",
            Kind::Counter,
            load(&m.batches),
        ),
        (
            "vcon_scitt_failed_batches_total",
            "Batches that failed to commit.",
            Kind::Counter,
            load(&m.failed_batches),
        ),
        (
            "vcon_scitt_appended_total",
            "Entries appended.",
            Kind::Counter,
            load(&m.appended),
        ),
        (
            "vcon_scitt_receipts_served_total",
            "Receipts served by GET /entries/{id}.",
            Kind::Counter,
            load(&c.receipts_served),
        ),
    ];
    if let Some(p) = process_stats() {
        samples.push((
            "process_cpu_seconds_total",
            "User and system CPU time spent by the server process.",
            Kind::Counter,
            p.cpu_seconds,
        ));
        samples.push((
            "process_resident_memory_bytes",
            "Resident set size.",
            Kind::Gauge,
            p.rss_bytes as f64,
        ));
    }
    if let Some(p) = svc.publishing.get() {
        samples.push((
            "vcon_scitt_published_tree_size",
            "Size of the checkpoint in the object-storage bucket.",
            Kind::Gauge,
            p.published.load(Ordering::Relaxed) as f64,
        ));
        samples.push((
            "vcon_scitt_published_objects_total",
            "Objects written to the bucket (tiles, bundles, heads, checkpoints).",
            Kind::Counter,
            p.objects.load(Ordering::Relaxed) as f64,
        ));
        samples.push((
            "vcon_scitt_publish_failed_rounds_total",
            "Publishing rounds that failed and were retried.",
            Kind::Counter,
            p.failed_rounds.load(Ordering::Relaxed) as f64,
        ));
        samples.push((
            "vcon_scitt_publish_stopped",
            "1 when publishing stopped at an integrity alarm (see the log).",
            Kind::Gauge,
            if crate::sync::read(&p.stopped).is_some() {
                1.0
            } else {
                0.0
            },
        ));
    }
    for (name, help, kind, v) in samples {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} {}\n{name} {v}",
            kind.name()
        );
    }
    histogram(
        &mut s,
        "vcon_scitt_batch_size",
        "Entries per committed batch.",
        &m.batch_sizes,
    );
    histogram(
        &mut s,
        "vcon_scitt_commit_seconds",
        "Batch commit: write, fsync, verify, sign, head fsync.",
        &m.commit_seconds,
    );
    histogram(
        &mut s,
        "vcon_scitt_sign_seconds",
        "Tree-head signing and head fsync.",
        &m.sign_seconds,
    );
    if let Some(p) = svc.publishing.get() {
        histogram(
            &mut s,
            "vcon_scitt_publish_lag_seconds",
            "Per batch: from its signed head (its 201s) to a checkpoint in the bucket covering it.",
            &p.lag,
        );
    }
    s
}

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// CPU time and RSS of this process (Linux `/proc/self`), for `/metrics`
/// and for the load generator's own cost per request.
#[derive(Debug, Clone, Copy)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

pub fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ: the unit of /proc times is fixed at 100 by the Linux ABI.
    let hz = 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(ProcessStats {
        cpu_seconds: ticks / hz,
        rss_bytes: rss_kib * 1024,
    })
}

fn histogram(s: &mut String, name: &str, help: &str, h: &Histogram) {
    let (buckets, sum, count) = h.snapshot();
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (le, c) in buckets {
        let le = if le.is_infinite() {
            "+Inf".to_string()
        } else {
            le.to_string()
        };
        let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(s, "{name}_sum {sum}\n{name}_count {count}");
}
