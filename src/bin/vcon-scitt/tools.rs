//! Commands of issuers and relying parties: sign and register statements,
//! fetch receipts and keys, audit a vCon. All of it is `vcon-scitt-client`
//! and `vcon-scitt-core`; nothing here touches a data dir.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use vcon_scitt_client::audit::{self, AuditOptions};
use vcon_scitt_client::statement::{read_signing_key, with_suffix};
use vcon_scitt_client::{describe, register_and_wait, registered_transparent_statement};
use vcon_scitt_core::keys::KeySet;
use vcon_scitt_core::statement::{Builder, LeafRule, SignedStatement};

use crate::args::CreateArgs;
use crate::serve::runtime;

/// Reads a key set file in any format `KeySet::parse_any` takes.
pub fn read_keyset(p: &Path) -> anyhow::Result<KeySet> {
    let b = std::fs::read(p).with_context(|| p.display().to_string())?;
    KeySet::parse_any(&b).with_context(|| p.display().to_string())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}

/// Registers a statement and waits for its receipt; writes FILE.receipt and
/// FILE.transparent.cose beside it.
pub fn register(file: &Path, url: &str, token: Option<String>, timeout: u64) -> anyhow::Result<u8> {
    let statement = std::fs::read(file).with_context(|| file.display().to_string())?;
    let (location, receipt) = runtime()?.block_on(register_and_wait(
        url,
        token,
        statement.clone(),
        std::time::Duration::from_secs(timeout),
    ))?;
    let receipt_path = with_suffix(file, "receipt");
    write(&receipt_path, &receipt)?;
    let (ts, earlier) = runtime()?.block_on(registered_transparent_statement(
        url, &statement, &location, receipt,
    ))?;
    if earlier {
        println!(
            "note: the same signed content was already registered with another signature; the receipt and the transparent statement are for the registered bytes"
        );
    }
    let ts_path = with_suffix(file, "transparent.cose");
    write(&ts_path, &ts)?;
    println!(
        "registered: {url}{location}\nreceipt: {}\ntransparent statement: {}",
        receipt_path.display(),
        ts_path.display()
    );
    Ok(0)
}

/// Fetches a receipt; exit 3 while the entry is still being registered.
pub fn receipt(entry_id: &str, url: &str, fresh: bool, out: Option<PathBuf>) -> anyhow::Result<u8> {
    let path = format!(
        "/entries/{entry_id}{}",
        if fresh { "?fresh=true" } else { "" }
    );
    let r = runtime()?.block_on(vcon_scitt_client::get(url, &path))?;
    match r.status {
        200 => {
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{entry_id}.receipt")));
            write(&out, &r.body)?;
            println!("wrote {}", out.display());
            Ok(0)
        }
        204 => {
            println!(
                "pending: the entry is being registered; retry after {}s",
                r.header("retry-after").unwrap_or("1")
            );
            Ok(3)
        }
        _ => bail!("{}", describe(&r)),
    }
}

/// Saves the service's COSE_KeySet for offline verification.
pub fn keys(url: &str, out: &Path) -> anyhow::Result<u8> {
    let r = runtime()?.block_on(vcon_scitt_client::get(url, "/.well-known/scitt-keys"))?;
    if r.status != 200 {
        bail!("{}", describe(&r));
    }
    let ks = KeySet::parse_any(&r.body).context("the key set does not parse")?;
    write(out, &r.body)?;
    println!("wrote {} ({} key(s))", out.display(), ks.keys.len());
    Ok(0)
}

/// Signs any payload file as a Signed Statement.
pub fn sign(
    payload: &Path,
    key: &Path,
    iss: &str,
    sub: &str,
    content_type: String,
    out: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let key = read_signing_key(key)?;
    let body = std::fs::read(payload).with_context(|| payload.display().to_string())?;
    let mut b = Builder::new(&key, iss, sub);
    b.content_type = Some(content_type);
    b.issued_at = Some(vcon_scitt_core::time::now_secs());
    let st = b.sign(&body).map_err(anyhow::Error::msg)?;
    let out = out.unwrap_or_else(|| with_suffix(payload, "cose"));
    write(&out, &st)?;
    print_written(&out, &SignedStatement::parse(&st, usize::MAX)?);
    Ok(0)
}

/// Builds and signs a vCon lifecycle statement.
pub fn create(a: &CreateArgs) -> anyhow::Result<u8> {
    let (out, parsed) = vcon_scitt_client::statement::create(&a.spec())?;
    print_written(&out, &parsed);
    Ok(0)
}

/// The entry id is the leaf hash, which depends on the log's leaf rule (its
/// transparency-configuration says which), so both are printed.
fn print_written(out: &Path, st: &SignedStatement) {
    println!(
        "wrote {} (entry id {} in a statement-sha256 log, {} in an entry log)",
        out.display(),
        hex::encode(st.leaf_hash(LeafRule::StatementSha256)),
        hex::encode(st.leaf_hash(LeafRule::Entry)),
    );
}

/// Audits one vCon; exit 1 when anything failed to verify.
pub fn audit(
    vcon: &str,
    url: String,
    keys: Option<&Path>,
    issuer_keys: &[PathBuf],
    as_of: Option<&str>,
    json: bool,
) -> anyhow::Result<u8> {
    let Some(uuid) = vcon_scitt_core::vcon::profile::normalize_uuid(vcon) else {
        bail!("{vcon:?} is not a uuid");
    };
    let keys = keys.map(read_keyset).transpose()?;
    let issuer_keys = issuer_keys
        .iter()
        .map(|p| read_keyset(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let as_of_ms = match as_of {
        None => None,
        Some(t) => match vcon_scitt_core::time::parse_rfc3339_ms(t) {
            Some(ms) => Some(ms),
            None => bail!("--as-of {t:?} is not RFC 3339"),
        },
    };
    let opts = AuditOptions {
        url,
        uuid,
        keys,
        issuer_keys,
        as_of_ms,
    };
    let report = runtime()?.block_on(audit::run(&opts))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", audit::render(&report));
    }
    Ok(if report.verified { 0 } else { 1 })
}

/// `vcon-scitt monitor`: findings as JSON lines on stdout, the summary last.
pub fn monitor(
    url: String,
    state: PathBuf,
    keys: Option<&Path>,
    rounds: u64,
    interval: f64,
    json: bool,
) -> anyhow::Result<u8> {
    if !(interval.is_finite() && interval >= 0.0) {
        bail!("--interval {interval} is not a number of seconds");
    }
    let opts = vcon_scitt::monitor::MonitorOptions {
        url,
        state_dir: state,
        keys: keys.map(read_keyset).transpose()?,
        rounds: (rounds > 0).then_some(rounds),
        interval: std::time::Duration::from_secs_f64(interval),
        progress: true,
    };
    let report = runtime()?.block_on(vcon_scitt::monitor::run(&opts, |f| {
        println!("{}", serde_json::json!({"alarm": f}));
    }))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "monitor: verified size {} (root {}), {} entries checked this run at {:.0}/s, {} map roots recomputed, {} vCons, {} issuer signatures checked ({} not checkable); findings: {} log, {} lifecycle{}",
            report.verified_size,
            report.root,
            report.entries_checked,
            report.entries_per_sec,
            report.map_roots,
            report.vcons,
            report.issuer_signatures_checked,
            report.issuer_signatures_unchecked,
            report.log_findings,
            report.lifecycle_findings,
            if report.halted { "; HALTED" } else { "" }
        );
    }
    Ok(if report.log_findings > 0 {
        3
    } else if report.lifecycle_findings > 0 {
        4
    } else {
        0
    })
}
