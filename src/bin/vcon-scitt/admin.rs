//! Operator commands on a data dir: keys, fsck, backup and restore, and the
//! effective configuration. Each is a thin shell over the library; the
//! online backup and the offline one share `vcon_scitt::backup`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use vcon_scitt::config::Config;
use vcon_scitt::durable;
use vcon_scitt::log::{FsckReport, Store, TreeHeadVerifier};
use vcon_scitt_core::keys::{Alg, KeySet, SigningKey, write_private_key};

use crate::args::{ServeArgs, effective_config};
use crate::serve::runtime;
use crate::tools::read_keyset;

pub fn config_print(a: &ServeArgs) -> anyhow::Result<u8> {
    print!("{}", effective_config(a)?.to_toml());
    Ok(0)
}

pub fn keygen(out: &Path, alg: Alg, public_out: Option<&Path>) -> anyhow::Result<u8> {
    let (key, pkcs8) = SigningKey::generate(alg)?;
    write_private_key(out, &pkcs8)?;
    if let Some(p) = public_out {
        let mut ks = KeySet::new();
        ks.insert(key.public(), None);
        durable::write_atomically(p, &ks.to_cose_keyset())?;
    }
    println!(
        "wrote {} ({}, kid {})",
        out.display(),
        alg.name(),
        hex::encode(key.kid())
    );
    Ok(0)
}

/// Checks every stored leaf, tile and head; exit 1 (not an error) when the
/// store is damaged, so scripts can tell "damaged" from "could not run".
/// `fsck --bucket`: a published log, checked from the bucket alone (into a
/// temporary cache, removed after). Exit 0 clean, 1 damaged or unreadable.
pub fn fsck_bucket(url: &str, json: bool) -> anyhow::Result<u8> {
    let cache = std::env::temp_dir().join(format!("vcon-scitt-fsck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let checked = runtime()?.block_on(vcon_scitt::replica::check_bucket(
        url,
        cache.clone(),
        std::time::Duration::from_secs(10),
    ));
    let _ = std::fs::remove_dir_all(&cache);
    match checked {
        Ok(r) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "bucket": url, "report": r})
                );
            } else {
                println!(
                    "bucket OK: {url} at size {}: checkpoint note and {} signed heads verified, the tree rebuilt from the statements, {} hash tiles and {} entry bundles equal to it",
                    r.tree_size, r.heads, r.tiles, r.bundles
                );
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "bucket": url, "error": e.to_string()})
                );
            } else {
                eprintln!("bucket check FAILED: {url}: {e}");
            }
            Ok(1)
        }
    }
}

pub fn fsck(data_dir: &Path, keys: Option<&Path>, json: bool) -> anyhow::Result<u8> {
    let store = Store::open_read_only(&data_dir.join("db"))?;
    let keyset_path = keys
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Config::keyset_file_in(data_dir));
    let verifier = if keyset_path.exists() {
        Some(read_keyset(&keyset_path)?)
    } else {
        None
    };
    // The log first (entries, tiles, heads), then the vCon map re-derived
    // from those entries.
    let checked = vcon_scitt::log::fsck(
        &store,
        verifier.as_ref().map(|k| k as &dyn TreeHeadVerifier),
    )
    .and_then(|log| Ok((log, vcon_scitt::vcon_map::fsck(&store, verifier.as_ref())?)));
    match checked {
        Ok((report, map)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "report": report, "map": map, "signatures_checked": verifier.is_some(), "storage": store.cf_sizes().unwrap_or_default()})
                );
            } else {
                print_fsck(&store, &report, verifier.is_some());
                println!(
                    "vCon map OK: {} vCons from {} lifecycle entries; {} map-root entries (last at {}) each recomputed from the log before it; {} lifecycle-rule findings (issuer conduct, not damage)",
                    map.vcons,
                    map.vcon_entries,
                    map.map_roots,
                    map.last_map_root.map_or("-".to_string(), |i| i.to_string()),
                    map.lifecycle_findings
                );
            }
            Ok(0)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            } else {
                println!("fsck FAILED: {e}");
            }
            Ok(1)
        }
    }
}

fn print_fsck(store: &Store, report: &FsckReport, signatures_checked: bool) {
    println!(
        "fsck OK: {} entries, {} tiles, {} signed heads (latest size {}), {} registration identities{}",
        report.entries,
        report.tiles,
        report.heads,
        report.latest_head_size,
        report.identities,
        if signatures_checked {
            ", every head signature verified"
        } else {
            ", head signatures NOT checked (no key set)"
        }
    );
    if let Ok(sizes) = store.cf_sizes() {
        let n = report.entries.max(1) as f64;
        println!("storage by column family (SST + memtable), per entry:");
        for c in sizes {
            let b = c.sst_bytes + c.memtable_bytes;
            println!(
                "  {:<8} {:>14} bytes  {:>9.1} B/entry  (~{} keys)",
                c.name,
                b,
                b as f64 / n,
                c.estimated_keys
            );
        }
    }
}

/// Server stopped. Order matters for crash safety: the retired copy of the
/// old key, then the public set with both keys, then the new private key.
/// A crash between any two steps leaves the old key in use and every key
/// that may have signed published.
pub fn rotate_key(config: &Config, alg: Alg) -> anyhow::Result<u8> {
    if config.service_key_pkcs8.is_some() {
        bail!(
            "VCON_SCITT_SERVICE_KEY is set: the service signs with that key, not the key file; rotate it where it is kept"
        );
    }
    let key_path = config.key_file();
    let old_bytes = std::fs::read(&key_path).with_context(|| format!("{}", key_path.display()))?;
    let old = SigningKey::from_pkcs8_any(&old_bytes)
        .with_context(|| format!("{}", key_path.display()))?;
    let retired = config
        .data_dir
        .join("keys/retired")
        .join(format!("{}.pk8", hex::encode(old.kid())));
    if !retired.exists() {
        durable::write_atomically_mode(&retired, &old_bytes, 0o600)?;
    }
    let (new, pkcs8) = SigningKey::generate(alg)?;
    let set_path = config.keyset_file();
    let mut set = if set_path.exists() {
        read_keyset(&set_path)?
    } else {
        KeySet::new()
    };
    set.insert(old.public(), None);
    set.insert(new.public(), None);
    durable::write_atomically(&set_path, &set.to_cose_keyset())?;
    durable::write_atomically_mode(&key_path, &pkcs8, 0o600)?;
    println!(
        "rotated: new kid {} ({}); old kid {} retired to {} and still published in {}",
        hex::encode(new.kid()),
        new.alg().name(),
        hex::encode(old.kid()),
        retired.display(),
        set_path.display()
    );
    Ok(0)
}

pub fn backup(
    url: Option<String>,
    token: Option<String>,
    data_dir: Option<PathBuf>,
    out: Option<PathBuf>,
) -> anyhow::Result<u8> {
    match (url, data_dir) {
        (Some(url), None) => {
            let r = runtime()?.block_on(async {
                let mut c = vcon_scitt_client::Conn::connect(&url).await?;
                c.token = token;
                c.request(hyper::Method::POST, "/admin/backup", None, Vec::new())
                    .await
            })?;
            if r.status != 200 {
                bail!("{}", vcon_scitt_client::describe(&r));
            }
            println!("{}", String::from_utf8_lossy(&r.body));
            Ok(0)
        }
        (None, Some(dir)) => {
            let Some(out) = out else {
                bail!("offline backup needs --out DIR");
            };
            if !dir.join("db").exists() && !dir.join("db.deposed").exists() {
                bail!("{} holds no store", dir.display());
            }
            // Settled and held: never a store opened mid-rewind.
            let (db, _hold) = vcon_scitt::rewind::store_dir(&dir)?;
            let store = Store::open(&db)?;
            let keyset = std::fs::read(Config::keyset_file_in(&dir)).ok();
            let size = vcon_scitt::backup::write(&store, keyset.as_deref(), &out)?;
            println!("backup of tree size {size} written to {}", out.display());
            Ok(0)
        }
        _ => bail!("give either --url (online, with --token) or --data-dir with --out (offline)"),
    }
}

pub fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<u8> {
    if let Some(url) = from
        .to_str()
        .filter(|u| u.starts_with("s3://") || u.starts_with("file://"))
    {
        let size = runtime()?.block_on(vcon_scitt::replica::restore(
            url,
            data_dir.to_path_buf(),
            std::time::Duration::from_secs(10),
            None,
        ))?;
        println!(
            "restored {url} at tree size {size} into {}: every head signature, root and map root verified. Start the writer with the log's service key and public URL: vcon-scitt serve --data-dir {} --publish-to {url} --service-url <its URL>",
            data_dir.join("db").display(),
            data_dir.display()
        );
        return Ok(0);
    }
    let report = vcon_scitt::backup::restore(from, data_dir)?;
    println!(
        "restored tree size {} ({} entries) into {}; fsck OK. The service refuses to start if this data dir already published a later head.",
        report.latest_head_size,
        report.entries,
        data_dir.join("db").display()
    );
    Ok(0)
}
