//! Other people's SCITT verifiers, unchanged, against a live server
//! (issue 13): scitt-cose 0.5.0 (PyPI; the SCITT WG vectors' convention,
//! `statement-sha256`) and @transmute/cose 0.2.11 (npm; the `entry` rule).
//! Each verifies receipts from a log in the rule it follows, and rejects a
//! receipt from a log in the other rule (so a pass cannot be a verifier that
//! accepts anything). Receipts freshly issued by @transmute/cose are checked
//! by our verifier. The packages are installed outside the repository by
//! `tests/interop/setup.sh` (README command 2 and `.ci/run` run it); our
//! driver scripts in tests/interop call only the packages' own functions.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt::keys::KeySet;
use vcon_scitt::statement::LeafRule;
use vcon_scitt::verify::{self, Request};

use common::cluster::interop_dir;

/// Runs a driver; (exit code, stdout + stderr).
fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd
        .env("VCON_SCITT_INTEROP_DIR", interop_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs a verifier driver on the files a client would hold (the statement,
/// a receipt, the service's /jwks, the issuer's keys); both drivers take
/// the same arguments.
fn driver(mut cmd: Command, files: &Path, receipt: &str, extra: &[&str]) -> (i32, String) {
    cmd.arg("--statement")
        .arg(files.join("statement.cose"))
        .arg("--receipt")
        .arg(files.join(receipt))
        .arg("--key")
        .arg(files.join("jwks.json"))
        .arg("--issuer-key")
        .arg(files.join("issuer-jwks.json"))
        .args(extra);
    run(&mut cmd)
}

fn scitt_cose(files: &Path, receipt: &str, extra: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(interop_dir().join("venv/bin/python"));
    cmd.arg(repo("tests/interop/verify_scitt_cose.py"));
    driver(cmd, files, receipt, extra)
}

fn transmute(files: &Path, receipt: &str) -> (i32, String) {
    let mut cmd = Command::new("node");
    cmd.arg(repo("tests/interop/verify_transmute.mjs"));
    driver(cmd, files, receipt, &[])
}

/// Registers `statement` on a fresh server whose log follows `rule`;
/// returns the receipt and the server's /jwks, as a client would save them.
async fn receipt_from_a_live_server(
    dir: &Path,
    rule: LeafRule,
    statement: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut cfg = server_config(dir);
    cfg.leaf_rule = Some(rule);
    let srv = start(cfg, None).await.unwrap();
    let url = srv.url();
    let r = vcon_scitt_client::Conn::connect(&url)
        .await
        .unwrap()
        .post_statement(statement.to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let tc = vcon_scitt_client::get(&url, "/.well-known/transparency-configuration")
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tc.body).contains(rule.name()),
        "the log publishes its rule"
    );
    let jwks = vcon_scitt_client::get(&url, "/jwks").await.unwrap();
    assert_eq!(jwks.status, 200);
    srv.stop().await;
    (r.body, jwks.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scitt_cose_and_transmute_verify_live_receipts_under_their_rules() {
    let files = tempfile::tempdir().unwrap();
    let st = generic_statement("urn:example:third-party", br#"{"interop":true}"#);
    std::fs::write(files.path().join("statement.cose"), &st).unwrap();
    let issuer =
        KeySet::parse_any(&std::fs::read(repo("keys/test-issuer-es256.keys.cbor")).unwrap())
            .unwrap();
    let issuer_jwks = serde_json::json!({
        "keys": issuer.keys.iter().map(|(_, k)| k.to_jwk()).collect::<Vec<_>>()
    });
    std::fs::write(
        files.path().join("issuer-jwks.json"),
        serde_json::to_vec(&issuer_jwks).unwrap(),
    )
    .unwrap();

    let wg_dir = tempfile::tempdir().unwrap();
    let (wg_receipt, jwks) =
        receipt_from_a_live_server(wg_dir.path(), LeafRule::StatementSha256, &st).await;
    std::fs::write(files.path().join("jwks.json"), &jwks).unwrap();
    std::fs::write(files.path().join("wg.receipt"), &wg_receipt).unwrap();
    let entry_dir = tempfile::tempdir().unwrap();
    let (entry_receipt, jwks2) =
        receipt_from_a_live_server(entry_dir.path(), LeafRule::Entry, &st).await;
    assert_eq!(jwks, jwks2, "one service key, one /jwks");
    std::fs::write(files.path().join("entry.receipt"), &entry_receipt).unwrap();

    // scitt-cose, its documented convention (leaf entry = SHA-256 of the
    // statement bytes), the issuer signature too.
    let (code, out) = scitt_cose(files.path(), "wg.receipt", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK scitt-cose 0.5.0"), "{out}");
    assert!(out.contains("issuer-signature=verified"), "{out}");
    // ...and it rejects the entry log's receipt under its convention.
    let (code, out) = scitt_cose(files.path(), "entry.receipt", &[]);
    assert_eq!(code, 1, "{out}");

    // @transmute/cose's high-level verifier (its hard-coded entry rule,
    // issuer signature first).
    let (code, out) = transmute(files.path(), "entry.receipt");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("api=high"), "{out}");
    assert!(out.contains("issuer-signature=verified"), "{out}");
    let (code, out) = transmute(files.path(), "wg.receipt");
    assert_eq!(code, 1, "{out}");

    // Our verifier reads both without being told (and names the rule).
    for (receipt, rule) in [
        (&wg_receipt, LeafRule::StatementSha256),
        (&entry_receipt, LeafRule::Entry),
    ] {
        let rep = verify::verify(&Request {
            statement: st.clone(),
            receipts: vec![receipt.clone()],
            service_keys: KeySet::parse_any(&jwks).unwrap(),
            now: vcon_scitt::time::now_secs(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(rep.leaf_rule, rule);
    }
}

/// Receipts @transmute/cose issues now (fresh keys, its own issuing API)
/// verify with ours; its tampered path and bad statement signature get our
/// classes 8 and 9.
#[test]
fn receipts_transmute_issues_now_verify_with_ours() {
    let out = tempfile::tempdir().unwrap();
    let (code, text) = run(Command::new("node")
        .arg(repo("tests/interop/issue_transmute.mjs"))
        .arg(out.path()));
    assert_eq!(code, 0, "{text}");
    let case = |name: &str| {
        let d = out.path().join(name);
        let read = |f: &str| std::fs::read(d.join(f)).unwrap();
        let mut trust = vcon_scitt::issuers::IssuerTrust::default();
        for (kid, key) in KeySet::parse_any(&read("issuer-jwks.json")).unwrap().keys {
            trust.add_issuer_key("*", key, Some(kid));
        }
        verify::verify(&Request {
            statement: read("statement.cose"),
            receipts: vec![read("receipt.cose")],
            service_keys: KeySet::parse_any(&read("service-jwks.json")).unwrap(),
            issuer_trust: Some(trust),
            now: vcon_scitt::time::now_secs(),
            ..Default::default()
        })
    };
    let rep = case("valid").unwrap();
    assert_eq!(rep.leaf_rule, LeafRule::Entry);
    assert!(rep.issuer_verified);
    assert_eq!(case("fail-tampered-path").unwrap_err().exit_code(), 8);
    assert_eq!(case("fail-bad-statement-sig").unwrap_err().exit_code(), 9);
}

/// schemathesis 4.32.5 over every operation of `proto/openapi.yaml` against
/// a live server: generated requests plus real signed statements (valid and
/// 25 kinds of broken) and real entry ids, kids and vCon uuids, through the
/// hooks in tests/schemathesis (our code). Every check, zero failures, and
/// POST /entries must really have been exercised (201s and 400s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_server_true_to_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(repo("tests/schemathesis/run_schemathesis.sh"))
        .arg(&url)
        .env("SCHEMATHESIS", interop_dir().join("venv/bin/schemathesis"))
        .env("ST_REPORT_DIR", reports.path());
    let (code, out) = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    srv.stop().await;
    let summary = out
        .lines()
        .find(|l| l.starts_with("schemathesis:"))
        .unwrap_or_default();
    println!("{summary}");
    assert_eq!(code, 0, "{out}");
    assert!(summary.starts_with("schemathesis: PASS"), "{out}");
    assert!(summary.contains("POST /entries 201x"), "{summary}");
    assert!(summary.contains("400x"), "{summary}");
}
