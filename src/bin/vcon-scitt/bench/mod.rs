//! `vcon-scitt bench`: load a running server from this machine (`load`), or
//! grow a stopped server's data dir through the real sequencer (`fill`).
//! Performance lives here and in criterion, never in timed tests.

mod fill;
mod load;
mod proofs;

use vcon_scitt_core::keys::SigningKey;

use crate::args::{BenchArgs, IssuerMix, effective_config};

/// The test issuers of `keys/` (marked test-only there).
const ES256_ISSUER: (&str, &str) = (
    "keys/test-issuer-es256.pk8",
    "https://conserver.test.example",
);
const ED25519_ISSUER: (&str, &str) = (
    "keys/test-issuer-ed25519.pk8",
    "https://partner.test.example",
);

fn test_issuer((file, iss): (&str, &str)) -> anyhow::Result<(SigningKey, String)> {
    let path = vcon_scitt::config::repo_path(file);
    let bytes = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run from the repository root)", path.display()))?;
    Ok((SigningKey::from_pkcs8_any(&bytes)?, iss.to_owned()))
}

pub fn run(b: &BenchArgs) -> anyhow::Result<u8> {
    if let (Some(n), Some(vcons)) = (b.fill, b.vcons) {
        let config = effective_config(&b.serve)?;
        let r = proofs::run(&config, n, vcons, b.sample)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(0);
    }
    if let Some(n) = b.fill {
        let config = effective_config(&b.serve)?;
        let (size, rate) = fill::fill(&config, n)?;
        println!("appended {n} entries ({rate:.0}/s); tree size now {size}");
        return Ok(0);
    }
    let mut issuers = Vec::new();
    if matches!(b.issuers, IssuerMix::Es256 | IssuerMix::Both) {
        issuers.push(test_issuer(ES256_ISSUER)?);
    }
    if matches!(b.issuers, IssuerMix::Ed25519 | IssuerMix::Both) {
        issuers.push(test_issuer(ED25519_ISSUER)?);
    }
    let opts = load::BenchOptions {
        url: b.url.clone(),
        connections: b.connections.max(1),
        duration: match (b.duration, b.count) {
            (Some(d), _) => Some(std::time::Duration::try_from_secs_f64(d)?),
            (None, Some(_)) => None,
            (None, None) => Some(std::time::Duration::from_secs(10)),
        },
        count: b.count,
        rate: b.rate,
        issuers,
        verify_sample: b.verify_sample,
        quiet: b.json,
    };
    // One thread drives every connection: the generator shares the cores
    // with the server, and a single event loop costs it the least CPU per
    // request (no work stealing or cross-thread wake-ups).
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(load::run(opts))?;
    if b.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", load::render(&report));
    }
    Ok(0)
}
