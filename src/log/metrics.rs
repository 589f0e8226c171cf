//! The sequencer's counters and histograms, scraped by `/metrics`. Written
//! by the sequencer thread, read by any.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use crate::sync::lock;

#[derive(Default)]
pub struct Metrics {
    pub queued: AtomicU64,
    pub batches: AtomicU64,
    pub appended: AtomicU64,
    pub duplicates: AtomicU64,
    pub failed_batches: AtomicU64,
    pub batch_sizes: Histogram,
    pub commit_seconds: Histogram,
    pub sign_seconds: Histogram,
}

/// A fixed-bucket histogram (Prometheus style: cumulative on export).
pub struct Histogram {
    pub bounds: Vec<f64>,
    counts: Mutex<Counts>,
}

#[derive(Clone)]
struct Counts {
    /// Per bucket (not cumulative); the last one is +Inf.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_bounds(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ])
    }
}

impl Histogram {
    pub fn with_bounds(bounds: Vec<f64>) -> Self {
        let n = bounds.len();
        Self {
            bounds,
            counts: Mutex::new(Counts {
                buckets: vec![0; n + 1],
                sum: 0.0,
                count: 0,
            }),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        let mut g = lock(&self.counts);
        if let Some(b) = g.buckets.get_mut(i) {
            *b += 1;
        }
        g.sum += v;
        g.count += 1;
    }

    /// (bucket upper bounds with cumulative counts, sum, count)
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let g = lock(&self.counts).clone();
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.bounds.len() + 1);
        for (i, c) in g.buckets.iter().enumerate() {
            acc += c;
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (out, g.sum, g.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_cumulative_with_an_infinite_last_bucket() {
        let h = Histogram::with_bounds(vec![1.0, 2.0]);
        for v in [0.5, 1.5, 1.75, 9.0] {
            h.observe(v);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(buckets, vec![(1.0, 1), (2.0, 3), (f64::INFINITY, 4)]);
        assert_eq!((sum, count), (12.75, 4));
    }
}
