//! vcon-verify: the command line of the offline verifier, as a library so
//! that `vcon-scitt verify` runs the very same code (and the same exit codes)
//! without the core crate carrying a command-line parser. Everything it
//! checks is in [`vcon_scitt_core::verify`]; this crate reads files and
//! arguments and prints the verdict.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use vcon_scitt_core::issuers::{IssuerTrust, read_anchors};
use vcon_scitt_core::keys::KeySet;
use vcon_scitt_core::statement::LeafRule;
use vcon_scitt_core::verify::{self, Request, VerifyError};

/// Verify a vcon-scitt registration offline: receipt(s), optionally the issuer
/// signature, the held vCon file and append-only consistency. Receipts from
/// other vds-1 logs verify too, under their leaf rule (--leaf-rule).
///
/// Exit codes: 0 everything checked verifies; 2 bad input (files, keys);
/// 3 statement malformed; 4 no receipt; 5 receipt malformed (incl. unknown
/// vds, alg or critical header); 6 no trusted key for the receipt's kid (or,
/// for a receipt naming no kid, none of its algorithm); 7 inclusion proof
/// malformed or tree size wrong; 8 receipt signature bad; 9 issuer signature
/// or certificate chain bad; 10 vCon file does not match; 11 consistency
/// receipt bad; 12 (with --bundle) history incomplete or map proof invalid.
#[derive(Parser, Debug)]
#[command(name = "vcon-verify", version)]
pub struct Args {
    /// A Transparent Statement (receipts in label 394), or a Signed Statement
    /// with --receipt.
    pub statement: PathBuf,
    /// Receipt file(s) for the statement (in addition to embedded ones).
    #[arg(long = "receipt")]
    pub receipts: Vec<PathBuf>,
    /// The service's public keys: COSE_KeySet (from /.well-known/scitt-keys),
    /// COSE_Key, PEM or JWK Set. A receipt naming a kid is checked with that
    /// key only; one naming none, with each key of its algorithm.
    #[arg(long)]
    pub keys: PathBuf,
    /// Issuer public key(s) to also verify the issuer signature (any format
    /// --keys takes), pinned for the statement's iss. A statement naming no
    /// kid is checked with each of them of its algorithm.
    #[arg(long = "issuer-key")]
    pub issuer_keys: Vec<PathBuf>,
    /// How the receipts' log hashed the statement into its Merkle leaf, as
    /// its /.well-known/transparency-configuration `leaf_rule` says:
    /// `statement-sha256` (the SCITT WG vds-1 vectors and new logs of this
    /// service: SHA-256 of the statement as registered), `entry`
    /// (@transmute/cose, and logs of this service created before the rule
    /// was a setting: the statement with its unprotected header emptied), or
    /// `any` (default): each receipt is checked under both, which is sound
    /// (no leaf can stand for two statements across the rules), and the
    /// verdict names the rule that verified.
    #[arg(long = "leaf-rule", default_value = "any", value_parser = parse_leaf_rule)]
    pub leaf_rule: LeafRuleArg,
    /// Trust-anchor certificate(s) (PEM or DER) for x5chain statements.
    #[arg(long = "trust-anchor")]
    pub trust_anchors: Vec<PathBuf>,
    /// The vCon file held: check it is the one registered.
    #[arg(long)]
    pub vcon: Option<PathBuf>,
    /// A consistency receipt from this receipt's tree size to a newer head.
    #[arg(long)]
    pub consistency: Option<PathBuf>,
    /// Time for certificate validity (RFC 3339 or Unix seconds; default now).
    #[arg(long)]
    pub at: Option<String>,
    /// Print a JSON report instead of the verdict line.
    #[arg(long)]
    pub json: bool,
    /// The file is a vCon proof bundle (`GET /vcons/{uuid}/proof`): check
    /// that it shows the vCon's complete history as of its map root (or
    /// proves the vCon absent), and print the consent state it gives.
    #[arg(long, requires = "uuid")]
    pub bundle: bool,
    /// The vCon the bundle must be about (with --bundle).
    #[arg(long)]
    pub uuid: Option<String>,
    /// With --bundle: also give the consent state as of this event time
    /// (RFC 3339, by the statements' `occurred_at`), folded from the same
    /// complete history.
    #[arg(long, requires = "bundle")]
    pub as_of: Option<String>,
    /// With --bundle: a Transparent Statement you hold about the vCon
    /// (repeatable). If its receipt proves an entry before the bundle's map
    /// root that the bundle leaves out, the service signed a map that is
    /// not its log's: exit 12, no monitor needed.
    #[arg(long = "held", requires = "bundle")]
    pub held: Vec<PathBuf>,
}

/// Exit code: the bundle does not prove a complete history.
pub const EXIT_INCOMPLETE: i32 = 12;

/// `--bundle`: returns the exit code.
fn run_bundle(args: &Args) -> i32 {
    use vcon_scitt_core::vcon::proof::{Bundle, verify_bundle};
    let fail = |code: i32, class: &str, msg: String| {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"verdict": "FAIL", "class": class, "error": msg, "exit_code": code})
            );
        } else {
            println!("FAIL ({class}): {msg}");
        }
        code
    };
    let uuid = args.uuid.clone().unwrap_or_default();
    let (bytes, keys) = match read(&args.statement).and_then(|b| {
        let keys = KeySet::parse_any(&read(&args.keys)?)
            .map_err(|e| VerifyError::Input(format!("{}: {e}", args.keys.display())))?;
        Ok((b, keys))
    }) {
        Ok(x) => x,
        Err(e) => return fail(2, "input", e.to_string()),
    };
    let as_of_ms = match args.as_of.as_deref() {
        None => None,
        Some(t) => match vcon_scitt_core::time::parse_rfc3339_ms(t) {
            Some(ms) => Some(ms),
            None => return fail(2, "input", format!("--as-of {t:?} is not RFC 3339")),
        },
    };
    let report = Bundle::from_cbor(&bytes)
        .and_then(|b| verify_bundle(&b, &uuid, &keys, &Default::default()));
    // The holder's own statements, against the verified bundle.
    let report = match report {
        Ok(r) => {
            let mut contradiction = None;
            for path in &args.held {
                let held = match read(path) {
                    Ok(b) => b,
                    Err(e) => return fail(2, "input", e.to_string()),
                };
                match vcon_scitt_core::vcon::proof::held_entry_contradicts(&r, &held, &keys) {
                    Ok(None) => {}
                    Ok(Some(i)) => {
                        contradiction = Some(format!(
                            "{} is entry {i} of vCon {} (its receipt verifies), but the bundle's signed map leaves it out: the service signed a map that is not its log's",
                            path.display(),
                            r.uuid
                        ));
                        break;
                    }
                    Err(e) => {
                        return fail(2, "input", format!("{}: {e}", path.display()));
                    }
                }
            }
            match contradiction {
                Some(m) => Err(vcon_scitt_core::vcon::proof::ProofError::History(m)),
                None => Ok(r),
            }
        }
        Err(e) => Err(e),
    };
    let at_time = |r: &vcon_scitt_core::vcon::proof::BundleReport| {
        as_of_ms.map(|ms| r.consent_as_of(ms, &Default::default()))
    };
    match report {
        Err(e) => fail(EXIT_INCOMPLETE, "incomplete", e.to_string()),
        Ok(r) => {
            let as_of = at_time(&r);
            if args.json {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                if let Some(c) = &as_of {
                    v["consent_as_of"] = serde_json::to_value(c).unwrap_or_default();
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if r.present {
                let purposes: Vec<String> = r
                    .consent
                    .purposes
                    .iter()
                    .map(|(p, s)| format!("{p}: {}", s.status.as_str()))
                    .collect();
                println!(
                    "OK: vCon {} has exactly {} entries in the log before index {} (map root at that index, tree size {}); consent {} [{}] (as registered up to index {}){}",
                    r.uuid,
                    r.indices.len(),
                    r.as_of_size,
                    r.tree_size,
                    r.consent.state.as_str(),
                    purposes.join(", "),
                    r.as_of_size,
                    r.deleted_at
                        .map(|i| format!("; deleted at index {i}"))
                        .unwrap_or_default()
                );
                if let Some(c) = as_of {
                    let purposes: Vec<String> = c
                        .purposes
                        .iter()
                        .map(|(p, s)| format!("{p}: {}", s.status.as_str()))
                        .collect();
                    println!(
                        "as of {} (by the statements' occurred_at, from the same complete history): consent {} [{}]",
                        args.as_of.as_deref().unwrap_or_default(),
                        c.state.as_str(),
                        purposes.join(", ")
                    );
                }
            } else {
                println!(
                    "OK: vCon {} has no entry in the log before index {} (map root at that index, tree size {})",
                    r.uuid, r.as_of_size, r.tree_size
                );
            }
            0
        }
    }
}

/// `--leaf-rule`: one rule, or None for `any` (a newtype, because clap
/// reads an `Option` field as "flag may be absent").
#[derive(Debug, Clone, Copy)]
pub struct LeafRuleArg(pub Option<LeafRule>);

fn parse_leaf_rule(s: &str) -> Result<LeafRuleArg, String> {
    if s == "any" {
        return Ok(LeafRuleArg(None));
    }
    s.parse()
        .map(|r| LeafRuleArg(Some(r)))
        .map_err(|e: vcon_scitt_core::statement::UnknownLeafRule| format!("{e}, or any"))
}

fn read(p: &PathBuf) -> Result<Vec<u8>, VerifyError> {
    std::fs::read(p).map_err(|e| VerifyError::Input(format!("{}: {e}", p.display())))
}

pub fn build_request(args: &Args) -> Result<Request, VerifyError> {
    let statement = read(&args.statement)?;
    let receipts = args
        .receipts
        .iter()
        .map(read)
        .collect::<Result<Vec<_>, _>>()?;
    let service_keys = KeySet::parse_any(&read(&args.keys)?)
        .map_err(|e| VerifyError::Input(format!("{}: {e}", args.keys.display())))?;
    let issuer_trust = if args.issuer_keys.is_empty() && args.trust_anchors.is_empty() {
        None
    } else {
        let mut trust = IssuerTrust::default();
        // Pinned under "*": the relying party vouches for these keys itself,
        // for whatever iss the statement names (or for a statement with none,
        // as in receipt-only mode). Reading the statement is verify's job.
        for p in &args.issuer_keys {
            let ks = KeySet::parse_any(&read(p)?)
                .map_err(|e| VerifyError::Input(format!("{}: {e}", p.display())))?;
            for (kid, key) in ks.keys {
                trust.add_issuer_key("*", key, Some(kid));
            }
        }
        for p in &args.trust_anchors {
            trust.anchors.extend(read_anchors(&read(p)?));
        }
        Some(trust)
    };
    let now = match &args.at {
        None => vcon_scitt_core::time::now_secs(),
        Some(s) => vcon_scitt_core::time::parse_secs(s)
            .ok_or_else(|| VerifyError::Input(format!("--at {s:?} is not a time")))?,
    };
    Ok(Request {
        statement,
        receipts,
        service_keys,
        issuer_trust,
        vcon: args.vcon.as_ref().map(read).transpose()?,
        consistency: args.consistency.as_ref().map(read).transpose()?,
        now,
        leaf_rule: args.leaf_rule.0,
    })
}

/// Runs the verifier; returns the process exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    run(&args)
}

pub fn run(args: &Args) -> i32 {
    if args.bundle {
        return run_bundle(args);
    }
    let result = build_request(args).and_then(|req| verify::verify(&req));
    if args.json {
        let v = match &result {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(e) => {
                serde_json::json!({"verdict": "FAIL", "class": e.class(), "error": e.to_string(), "exit_code": e.exit_code()})
            }
        };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("{}", verify::verdict_line(&result));
    }
    match result {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    }
}
