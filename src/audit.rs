//! `vcon-scitt audit`: an auditor's view of one vCon. Fetches the history,
//! then trusts nothing the server says without checking it: every statement
//! and receipt is verified offline, every receipt's tree is proven consistent
//! with the newest one, and the consent state is recomputed from the verified
//! statements themselves (and compared with the server's answer).

use serde::Serialize;

use crate::client::Conn;
use crate::issuers::IssuerTrust;
use crate::keys::KeySet;
use crate::merkle::Hash;
use crate::statement::SignedStatement;
use crate::vcon::Profile;
use crate::vcon::consent::{ConsentState, HistoryItem};
use crate::vcon::policy::PolicyConfig;
use crate::verify::{self, Request};

#[derive(Debug, Serialize)]
pub struct AuditRow {
    pub index: u64,
    pub entry_id: String,
    pub event: String,
    pub iss: String,
    pub occurred_at: Option<String>,
    pub registered_at: Option<String>,
    pub receipt: String,
    pub issuer_signature: String,
    pub consistent_with_newest: bool,
    pub anomalies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct AuditReport {
    pub vcon_uuid: String,
    pub service: String,
    pub newest_tree_size: u64,
    pub rows: Vec<AuditRow>,
    pub consent: ConsentState,
    pub verified: bool,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

pub struct AuditOptions {
    pub url: String,
    pub uuid: String,
    /// Pinned service keys; None = fetch from the service (noted in the report).
    pub keys: Option<KeySet>,
    /// Issuer keys; None = the keys in the registered policy entry.
    pub issuer_keys: Vec<KeySet>,
    pub as_of_ms: Option<i64>,
}

async fn get_ok(c: &mut Conn, path: &str) -> Result<Vec<u8>, String> {
    let r = c.get(path).await?;
    if r.status != 200 {
        return Err(format!("GET {path}: {}", crate::client::describe(&r)));
    }
    Ok(r.body)
}

pub async fn run(opts: &AuditOptions) -> Result<AuditReport, String> {
    let mut c = Conn::connect(&opts.url).await?;
    let mut notes = Vec::new();
    let keys = match &opts.keys {
        Some(k) => k.clone(),
        None => {
            notes.push("service keys fetched from the service itself; pin them with --keys for an independent audit".into());
            KeySet::parse_any(&get_ok(&mut c, "/.well-known/scitt-keys").await?)
                .map_err(|e| e.to_string())?
        }
    };
    // History, all pages.
    let mut items: Vec<HistoryItem> = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let path = match after {
            None => format!("/vcons/{}/entries?limit=1000", opts.uuid),
            Some(a) => format!("/vcons/{}/entries?limit=1000&after={a}", opts.uuid),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&get_ok(&mut c, &path).await?).map_err(|e| e.to_string())?;
        let page: Vec<HistoryItem> =
            serde_json::from_value(v["items"].clone()).map_err(|e| e.to_string())?;
        items.extend(page);
        match v["next_after"].as_u64() {
            Some(n) if Some(n) != after => after = Some(n),
            _ => break,
        }
    }
    if items.is_empty() {
        return Err(format!(
            "the service knows no statements about vcon://{}",
            opts.uuid
        ));
    }

    let trust = issuer_trust(&mut c, opts, &keys, &mut notes).await?;
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let mut verified_items: Vec<HistoryItem> = Vec::new();
    let mut receipts: Vec<(u64, Hash)> = Vec::new();
    for it in &items {
        let mut row_fail = Vec::new();
        let ts = get_ok(&mut c, &format!("/entries/{}/statement", it.entry_id)).await;
        let (receipt, issuer_signature) = match ts {
            Err(e) => {
                row_fail.push(e);
                ("not checked".to_string(), "not checked".to_string())
            }
            Ok(ts) => {
                let req = Request {
                    statement: ts.clone(),
                    service_keys: keys.clone(),
                    issuer_trust: trust.clone(),
                    now: crate::time::now_secs(),
                    ..Default::default()
                };
                match verify::verify(&req) {
                    Ok(rep) => {
                        if rep.entry_id != it.entry_id || rep.leaf_index != it.index {
                            row_fail.push(format!(
                                "the service lists entry {} at index {}, the receipt proves {} at {}",
                                it.entry_id, it.index, rep.entry_id, rep.leaf_index
                            ));
                        }
                        if let Ok(root) = hex::decode(&rep.root)
                            .map(|r| <[u8; 32]>::try_from(r.as_slice()).unwrap_or([0; 32]))
                        {
                            receipts.push((rep.tree_size, root));
                        }
                        // Re-derive the record from the verified statement.
                        match record_from(&ts, it) {
                            Ok(v) => verified_items.push(v),
                            Err(e) => row_fail.push(e),
                        }
                        (
                            format!("verified (tree size {})", rep.tree_size),
                            rep.issuer_signature,
                        )
                    }
                    Err(e) => {
                        row_fail.push(format!("exit {}: {e}", e.exit_code()));
                        ("FAILED".to_string(), "not checked".to_string())
                    }
                }
            }
        };
        for f in &row_fail {
            failures.push(format!("index {}: {f}", it.index));
        }
        rows.push(AuditRow {
            index: it.index,
            entry_id: it.entry_id.clone(),
            event: it.event.name().to_owned(),
            iss: it.iss.clone(),
            occurred_at: it.occurred_at.clone(),
            registered_at: it.registered_at.clone(),
            receipt,
            issuer_signature,
            consistent_with_newest: false,
            anomalies: it.anomalies.clone(),
            failures: row_fail,
        });
    }

    // Every receipt's tree must be a prefix of the newest one.
    let newest = receipts.iter().max_by_key(|(s, _)| *s).copied();
    if let Some((newest_size, newest_root)) = newest {
        for (row, (size, root)) in rows
            .iter_mut()
            .filter(|r| r.receipt.starts_with("verified"))
            .zip(receipts.iter())
        {
            if *size == newest_size {
                row.consistent_with_newest = *root == newest_root;
                if !row.consistent_with_newest {
                    failures.push(format!(
                        "index {}: two different roots for tree size {size}",
                        row.index
                    ));
                }
                continue;
            }
            let path = format!("/consistency?from={size}&to={newest_size}");
            match get_ok(&mut c, &path).await {
                Err(e) => failures.push(format!("index {}: {e}", row.index)),
                Ok(cr) => match crate::receipt::verify_consistency_receipt(&cr, *size, root, &keys) {
                    Ok(info) if info.root.as_slice() == newest_root.as_slice() => row.consistent_with_newest = true,
                    Ok(_) => failures.push(format!("index {}: consistency proof leads to another root than the newest receipt's", row.index)),
                    Err(e) => failures.push(format!("index {}: consistency from {size} to {newest_size}: {e}", row.index)),
                },
            }
        }
    }

    // Consent, recomputed from verified statements only.
    let consent = crate::vcon::consent::consent(&verified_items, &opts.uuid, opts.as_of_ms);
    let as_of = opts
        .as_of_ms
        .map(|t| format!("?as_of={}", crate::time::format_ms(t)))
        .unwrap_or_default();
    if let Ok(body) = get_ok(&mut c, &format!("/vcons/{}/consent{as_of}", opts.uuid)).await
        && let Ok(server) = serde_json::from_slice::<ConsentState>(&body)
        && server.state != consent.state
    {
        failures.push(format!(
            "the service says consent is {:?}, the verified statements say {:?}",
            server.state.as_str(),
            consent.state.as_str()
        ));
    }
    Ok(AuditReport {
        vcon_uuid: opts.uuid.clone(),
        service: opts.url.clone(),
        newest_tree_size: newest.map(|(s, _)| s).unwrap_or(0),
        verified: failures.is_empty(),
        rows,
        consent,
        failures,
        notes,
    })
}

/// Issuer keys: given ones, or those published in the registered policy.
async fn issuer_trust(
    c: &mut Conn,
    opts: &AuditOptions,
    service_keys: &KeySet,
    notes: &mut Vec<String>,
) -> Result<Option<IssuerTrust>, String> {
    let mut trust = IssuerTrust::default();
    if !opts.issuer_keys.is_empty() {
        // Trusted for whichever issuer the statement names (the auditor chose them).
        for ks in &opts.issuer_keys {
            for (kid, key) in &ks.keys {
                trust.add_issuer_key("*", key.clone(), Some(kid.clone()));
            }
        }
        return Ok(Some(trust));
    }
    // The policy entry is itself verified by its receipt before use.
    let v: serde_json::Value =
        serde_json::from_slice(&get_ok(c, "/policy").await?).map_err(|e| e.to_string())?;
    let Some(entry_id) = v["entry_id"].as_str() else {
        notes.push("no registered policy; issuer signatures not checked".into());
        return Ok(None);
    };
    let ts = get_ok(c, &format!("/entries/{entry_id}/statement")).await?;
    verify::verify(&Request {
        statement: ts.clone(),
        service_keys: service_keys.clone(),
        ..Default::default()
    })
    .map_err(|e| format!("the registered policy entry does not verify: {e}"))?;
    let st = SignedStatement::parse(&ts, usize::MAX).map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_slice(st.payload()).map_err(|e| e.to_string())?;
    for issuer in doc["issuers"].as_array().cloned().unwrap_or_default() {
        let iss = issuer["iss"].as_str().unwrap_or_default();
        for jwk in issuer["keys"].as_array().cloned().unwrap_or_default() {
            if let Ok(k) = crate::keys::PublicKey::from_jwk(&jwk) {
                trust.add_issuer_key(iss, k, None);
            }
        }
    }
    notes.push(format!(
        "issuer keys taken from the registered policy entry {entry_id} (verified by its receipt)"
    ));
    Ok(Some(trust))
}

/// The index record re-derived from a verified Transparent Statement.
fn record_from(ts: &[u8], listed: &HistoryItem) -> Result<HistoryItem, String> {
    let st = SignedStatement::parse(ts, usize::MAX).map_err(|e| e.to_string())?;
    // Permissive: the audit re-reads what was admitted, it does not re-judge it.
    let cfg = PolicyConfig {
        allow_generic: true,
        legacy_compat: true,
        max_skew_secs: i64::MAX / 4000,
    };
    let Profile::Vcon(r) =
        crate::vcon::profile::check(&cfg, &st, i64::MAX / 4000).map_err(|e| e.to_string())?
    else {
        return Err("the verified statement is not a vCon statement".into());
    };
    if r.event != listed.event || r.iss != listed.iss {
        return Err(format!(
            "the service lists {} by {}, the statement says {} by {}",
            listed.event.name(),
            listed.iss,
            r.event.name(),
            r.iss
        ));
    }
    let mut it = listed.clone();
    it.consent = r.consent.clone();
    it.occurred_at = r.occurred_at.clone();
    it.vcon_hash = r.vcon_hash.clone();
    Ok(it)
}

/// Human timeline.
pub fn render(r: &AuditReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "vCon {}  (service {}, newest tree size {})",
        r.vcon_uuid, r.service, r.newest_tree_size
    );
    let _ = writeln!(
        s,
        "{:>6}  {:<25} {:<24} {:<34} {:<8} {:<8} entry",
        "index", "occurred_at", "event", "issuer", "receipt", "issuer"
    );
    for row in &r.rows {
        let ok = |b: bool| if b { "ok" } else { "FAIL" };
        let _ = writeln!(
            s,
            "{:>6}  {:<25} {:<24} {:<34} {:<8} {:<8} {}",
            row.index,
            row.occurred_at.as_deref().unwrap_or("-"),
            row.event,
            truncate(&row.iss, 34),
            ok(row.receipt.starts_with("verified") && row.consistent_with_newest),
            if row.issuer_signature.starts_with("verified") {
                "ok"
            } else if row.issuer_signature == "not checked" {
                "-"
            } else {
                "FAIL"
            },
            &row.entry_id[..16.min(row.entry_id.len())],
        );
        for a in &row.anomalies {
            let _ = writeln!(s, "        ! anomaly: {a}");
        }
        for f in &row.failures {
            let _ = writeln!(s, "        X {f}");
        }
    }
    let _ = writeln!(s);
    let purposes: Vec<String> = r
        .consent
        .purposes
        .iter()
        .map(|(p, st)| format!("{p}={}", st.status))
        .collect();
    let _ = writeln!(
        s,
        "consent{}: {} ({})",
        r.consent
            .as_of
            .as_ref()
            .map(|t| format!(" as of {t}"))
            .unwrap_or_default(),
        r.consent.state,
        if purposes.is_empty() {
            "no consent statements".into()
        } else {
            purposes.join(", ")
        }
    );
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if r.verified {
        let _ = writeln!(
            s,
            "AUDIT OK: {} statements, every receipt and issuer signature verified, all consistent with tree size {}",
            r.rows.len(),
            r.newest_tree_size
        );
    } else {
        let _ = writeln!(s, "AUDIT FAILED: {} problem(s)", r.failures.len());
        for f in &r.failures {
            let _ = writeln!(s, "  - {f}");
        }
    }
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}
