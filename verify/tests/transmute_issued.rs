//! Receipts issued by another implementation: @transmute/cose 0.2.11 (npm),
//! whose log follows the `entry` leaf rule. The vectors in
//! ../tests/vectors/transmute-issued were made with its own issuing API by
//! tests/interop/issue_transmute.mjs (fresh test-only keys; see the README
//! there); tests/third_party.rs makes new ones with the installed package on
//! every CI run and checks them the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn case(name: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap()
        .join("../tests/vectors/transmute-issued")
        .join(name)
}

fn verify(dir: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-verify"))
        .arg(dir.join("statement.cose"))
        .arg("--receipt")
        .arg(dir.join("receipt.cose"))
        .arg("--keys")
        .arg(dir.join("service-jwks.json"))
        .arg("--issuer-key")
        .arg(dir.join("issuer-jwks.json"))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn receipts_issued_by_transmute_verify_under_its_leaf_rule() {
    // Valid: under `any` (the default) and `entry`; the log's tree size and
    // index are the ones its log.json records.
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(case("valid").join("log.json")).unwrap()).unwrap();
    for extra in [&[][..], &["--leaf-rule", "entry"]] {
        let (code, out) = verify(&case("valid"), extra);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("leaf rule entry"), "{out}");
        assert!(out.contains("signature verified"), "{out}");
        assert!(
            out.contains(&format!("tree size {}", log["tree_size"])),
            "{out} vs {log}"
        );
    }
    // The WG rule is not transmute's: told it, the receipt fails (8).
    let (code, out) = verify(&case("valid"), &["--leaf-rule", "statement-sha256"]);
    assert_eq!(code, 8, "{out}");
    // The Transparent Statement (receipt in 394) verifies on its own.
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-verify"))
        .arg(case("valid").join("transparent.cose"))
        .arg("--keys")
        .arg(case("valid").join("service-jwks.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // A flipped audit-path node: the receipt signature (8).
    assert_eq!(verify(&case("fail-tampered-path"), &[]).0, 8);
    // A statement logged with a flipped signature byte: the receipt covers
    // it, the issuer signature does not verify (9).
    let (code, out) = verify(&case("fail-bad-statement-sig"), &[]);
    assert_eq!(code, 9, "{out}");
    // Its README's way, a detached payload: known non-support (3), the
    // statement must carry its payload (README, "Offline verification").
    let (code, out) = verify(&case("readme-style"), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("detached"), "{out}");
}
