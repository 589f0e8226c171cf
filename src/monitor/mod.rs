//! `vcon-scitt monitor`: follows a service from its published log and
//! recomputes everything it signs (issue 14, spec-notes/vcon-map.md,
//! "The monitor"). From the signed checkpoint and the statement bundles
//! (`/tile/statements/N`, the C2SP entry bundle of the stored statements)
//! alone, it:
//! - applies the log's leaf rule to every entry and rebuilds the Merkle
//!   tree (a compact range), so every signed head it sees must have the root
//!   of the entries it was served (consistency follows: one sequence of
//!   entries, extended, never rewritten);
//! - checks every checkpoint signature against the pinned service keys,
//!   and every statement's issuer signature against the keys of the
//!   registration policy in force (itself a log entry the service signed);
//! - replays the map function (core `vcon::replay`, the code `fsck` runs)
//!   and holds every map-root entry to the map it computed;
//! - checks the lifecycle rules (deleted is terminal; no processing after
//!   consent was withdrawn for every purpose).
//!
//! Each finding is reported once, with its leaf index. The monitor's state
//! (`--state DIR`, RocksDB) holds its position, the compact range, the
//! pinned keys and leaf rule, and every vCon's state, written in one batch
//! at map-root boundaries, so a restart resumes where it stopped.

mod state;

use std::time::{Duration, Instant};

use vcon_scitt_client::http::Conn;

use crate::keys::KeySet;
use crate::merkle::LeafRule;
use crate::merkle::tile::WIDTH;
use crate::tree_head::TreeHead;
use crate::vcon::replay::Finding;

pub use state::MonitorState;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{0}")]
    Client(#[from] vcon_scitt_client::ClientError),
    #[error("the monitor's state: {0}")]
    State(String),
    #[error("the service's answer: {0}")]
    Answer(String),
}

pub struct MonitorOptions {
    pub url: String,
    pub state_dir: std::path::PathBuf,
    /// Pinned service keys; None: fetched from the service on the first run
    /// and pinned in the state from then on.
    pub keys: Option<KeySet>,
    /// Stop after this many polls of the checkpoint (None: until killed).
    pub rounds: Option<u64>,
    pub interval: Duration,
    /// Progress lines on stderr during long catch-ups.
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MonitorReport {
    /// The log size verified against a signed head.
    pub verified_size: u64,
    pub root: String,
    pub leaf_rule: String,
    /// Entries read and checked by this run.
    pub entries_checked: u64,
    pub seconds: f64,
    pub entries_per_sec: f64,
    pub map_roots: u64,
    pub vcons: u64,
    /// Statements whose issuer signature was checked against the keys of
    /// the registration policy in force, over all runs; and those that
    /// could not be (X.509 chains, or before the first policy entry).
    pub issuer_signatures_checked: u64,
    pub issuer_signatures_unchecked: u64,
    /// Findings by this run (earlier runs reported theirs).
    pub log_findings: u64,
    pub lifecycle_findings: u64,
    /// Stopped at a log finding that makes further entries meaningless (a
    /// signed head the entries do not give).
    pub halted: bool,
}

/// How long one request may take before the monitor gives up (a stalled
/// service must not stall the monitor forever).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A GET that must answer 200 within [`REQUEST_TIMEOUT`].
async fn get(c: &mut Conn, path: &str) -> Result<Vec<u8>, MonitorError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, c.get_ok(path)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(MonitorError::Answer(format!(
            "GET {path}: no answer in {} s",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

/// The checkpoint as `/checkpoint` serves it (CBOR).
struct Checkpoint {
    head: TreeHead,
    signature: Vec<u8>,
}

async fn checkpoint(c: &mut Conn) -> Result<Checkpoint, MonitorError> {
    let body = get(c, "/checkpoint").await?;
    let doc = crate::head_document::HeadDocument::decode(&body)
        .map_err(|m| MonitorError::Answer(format!("/checkpoint: {m}")))?;
    Ok(Checkpoint {
        head: doc.head.head,
        signature: doc.head.signature,
    })
}

async fn leaf_rule(c: &mut Conn) -> Result<LeafRule, MonitorError> {
    let body = get(c, "/.well-known/transparency-configuration").await?;
    crate::replica::TransparencyConfiguration::decode(&body)
        .map(|tc| tc.leaf_rule)
        .map_err(|m| MonitorError::Answer(format!("transparency-configuration: {m}")))
}

/// A log finding after which what the service serves can no longer be
/// read on (a bad signature, a head the entries do not give): the round
/// stops there.
fn halt(out: &mut MonitorReport, index: u64, detail: String) -> Finding {
    out.halted = true;
    Finding::Log { index, detail }
}

/// Follows the service; `report` gets each finding as it is found.
pub async fn run(
    opts: &MonitorOptions,
    mut report: impl FnMut(&Finding),
) -> Result<MonitorReport, MonitorError> {
    let mut c = Conn::connect(&opts.url).await?;
    let mut st = MonitorState::open(&opts.state_dir).map_err(MonitorError::State)?;
    // Pin what the monitor trusts on its first run; later runs use the pins.
    let pinned = st.keys().map_err(MonitorError::State)?;
    let keys = match (pinned, &opts.keys) {
        (Some(old), Some(k)) if old.to_cose_keyset() != k.to_cose_keyset() => {
            eprintln!(
                "monitor: re-pinning the service keys given by --keys (they differ from the pinned ones)"
            );
            k.clone()
        }
        (_, Some(k)) => k.clone(),
        (Some(k), None) => k,
        (None, None) => KeySet::parse_any(&get(&mut c, "/.well-known/scitt-keys").await?)
            .map_err(|e| MonitorError::Answer(format!("the service's key set: {e}")))?,
    };
    let rule = match st.leaf_rule().map_err(MonitorError::State)? {
        Some(r) => r,
        None => leaf_rule(&mut c).await?,
    };
    st.pin(&opts.url, &keys, rule)
        .map_err(MonitorError::State)?;
    let (mut replay, mut compact) = st.resume(keys.clone()).map_err(MonitorError::State)?;

    let started = Instant::now();
    let mut out = MonitorReport {
        leaf_rule: rule.name().into(),
        ..MonitorReport::default()
    };
    let start_size = compact.size();
    let mut last_progress = Instant::now();
    let mut last_persist = Instant::now();
    let mut round = 0u64;
    let mut note = |f: &Finding, out: &mut MonitorReport| {
        if f.is_log() {
            out.log_findings += 1;
        } else {
            out.lifecycle_findings += 1;
        }
        report(f);
    };
    'rounds: loop {
        round += 1;
        let cp = checkpoint(&mut c).await?;
        if let Err(e) = crate::receipt::verify_tree_head(&cp.signature, &cp.head, &keys) {
            note(
                &halt(
                    &mut out,
                    cp.head.size.saturating_sub(1),
                    format!(
                        "the checkpoint at size {} does not verify under the pinned service keys: {e}",
                        cp.head.size
                    ),
                ),
                &mut out,
            );
            break;
        }
        if cp.head.size < compact.size() {
            note(
                &halt(
                    &mut out,
                    cp.head.size.saturating_sub(1),
                    format!(
                        "the service's signed checkpoint is at size {}, below the {} entries this monitor already read",
                        cp.head.size,
                        compact.size()
                    ),
                ),
                &mut out,
            );
            break;
        }
        while compact.size() < cp.head.size {
            let pos = compact.size();
            let bundle = pos / WIDTH as u64;
            let first = bundle * WIDTH as u64;
            let width = (cp.head.size - first).min(WIDTH as u64) as usize;
            let path = crate::merkle::bundle::path("/tile/statements", bundle, width);
            let body = get(&mut c, &path).await?;
            let entries = match crate::merkle::bundle::parse(&body, width) {
                Ok(e) => e,
                Err(e) => {
                    // The signed head covers these entries: a bundle that
                    // is not one is the service's fault.
                    note(
                        &halt(
                            &mut out,
                            pos,
                            format!("{path} is not the bundle the signed head covers: {e}"),
                        ),
                        &mut out,
                    );
                    break 'rounds;
                }
            };
            for (i, entry) in entries.iter().enumerate().skip((pos - first) as usize) {
                let index = first + i as u64;
                let leaf = rule.hash_entry(entry);
                compact.push(leaf);
                let findings = replay
                    .push(index, &leaf, entry, &mut st)
                    .map_err(|e| MonitorError::State(e.to_string()))?;
                for f in &findings {
                    note(f, &mut out);
                }
                // Progress is saved right after a map-root entry (every
                // folded state is then in the map), at most every 2 s: a
                // killed catch-up resumes from there. It is checked against
                // a signed root at the end of the round.
                if replay.at_map_root() && last_persist.elapsed() > Duration::from_secs(2) {
                    st.save(&mut replay, &compact, None)
                        .map_err(MonitorError::State)?;
                    last_persist = Instant::now();
                }
            }
            out.entries_checked = compact.size() - start_size;
            if opts.progress && last_progress.elapsed() > Duration::from_secs(2) {
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "monitor: {} / {} entries ({:.1} %), {:.0} entries/s, {} map roots checked",
                    compact.size(),
                    cp.head.size,
                    100.0 * compact.size() as f64 / cp.head.size.max(1) as f64,
                    out.entries_checked as f64 / secs.max(1e-9),
                    replay.position().map_roots
                );
                last_progress = Instant::now();
            }
        }
        if !replay.at_map_root() {
            note(
                &halt(
                    &mut out,
                    cp.head.size.saturating_sub(1),
                    format!(
                        "the signed head at size {} ends with vCon entries no map-root entry covers",
                        cp.head.size
                    ),
                ),
                &mut out,
            );
            break 'rounds;
        }
        let root = compact.root();
        if root != cp.head.root {
            note(
                &halt(
                    &mut out,
                    cp.head.size.saturating_sub(1),
                    format!(
                        "the signed head at size {} has root {}, but the entries the service serves give {}",
                        cp.head.size,
                        hex::encode(cp.head.root),
                        hex::encode(root)
                    ),
                ),
                &mut out,
            );
            break 'rounds;
        }
        st.save(&mut replay, &compact, Some((&cp.head, &cp.signature)))
            .map_err(MonitorError::State)?;
        last_persist = Instant::now();
        out.verified_size = cp.head.size;
        out.root = hex::encode(root);
        if opts.rounds.is_some_and(|n| round >= n) {
            break;
        }
        tokio::time::sleep(opts.interval).await;
    }
    let secs = started.elapsed().as_secs_f64();
    out.seconds = secs;
    out.entries_per_sec = out.entries_checked as f64 / secs.max(1e-9);
    out.map_roots = replay.position().map_roots;
    out.issuer_signatures_checked = replay.position().issuer_signatures_checked;
    out.issuer_signatures_unchecked = replay.position().issuer_signatures_unchecked;
    out.vcons = replay.tree().len() as u64;
    if out.verified_size == 0 {
        out.verified_size = st.verified_size();
    }
    Ok(out)
}
