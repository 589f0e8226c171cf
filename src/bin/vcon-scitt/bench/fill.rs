//! `vcon-scitt bench --fill N`: grow a data dir with synthetic entries
//! through the real sequencer (server stopped), to measure a large log
//! without hours of HTTP.

use std::time::Instant;

use vcon_scitt::config::Config;
use vcon_scitt::log::{LogError, Pending};
use vcon_scitt::service::Service;

/// Appends `count` synthetic entries to a data dir's log directly (no HTTP,
/// no statement checks): for measuring a big log. Signs with the data dir's
/// service key so the server opens it as its own.
pub fn fill(config: &Config, count: u64) -> anyhow::Result<(u64, f64)> {
    let svc = Service::open(config.clone()).map_err(anyhow::Error::msg)?;
    let log = svc.log.clone();
    let start = Instant::now();
    let base = log.latest().head.size;
    let mut pending = std::collections::VecDeque::with_capacity(16_384);
    for i in 0..count {
        let entry = format!("bench-fill {base} {i}").into_bytes();
        submit_bounded(&mut pending, || log.submit(entry.clone()))?;
    }
    for p in pending {
        p.wait_blocking()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let size = log.latest().head.size;
    svc.shutdown();
    Ok((size, count as f64 / secs))
}

/// Submits one entry with at most 16,384 in flight: on a full queue (or at
/// the bound) the oldest is awaited first, so a fill never outruns the
/// sequencer's memory.
pub(super) fn submit_bounded(
    pending: &mut std::collections::VecDeque<Pending>,
    mut submit: impl FnMut() -> Result<Pending, LogError>,
) -> anyhow::Result<()> {
    loop {
        match submit() {
            Ok(p) => {
                pending.push_back(p);
                break;
            }
            Err(LogError::QueueFull) => {
                if let Some(p) = pending.pop_front() {
                    p.wait_blocking()?;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if pending.len() >= 16_384
        && let Some(p) = pending.pop_front()
    {
        p.wait_blocking()?;
    }
    Ok(())
}
