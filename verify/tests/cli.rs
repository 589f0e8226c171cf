//! The vcon-verify binary against the golden vectors in ../tests/vectors/cose.

use std::path::{Path, PathBuf};
use std::process::Command;

fn vectors() -> PathBuf {
    manifest_dir().join("../tests/vectors/cose")
}

fn run(args: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-verify"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn golden_receipts_verify_with_exit_0() {
    let v = vectors();
    let keys = v.join("service-keys.cbor");
    for size in [1, 2, 5, 1000] {
        let receipt = v.join(format!("receipt-size-{size}.cbor"));
        let (code, out) = run(&[
            &v.join("statement.cose"),
            Path::new("--receipt"),
            &receipt,
            Path::new("--keys"),
            &keys,
        ]);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("OK:"), "{out}");
        assert!(out.contains(&format!("tree size {size}")), "{out}");
    }
    let (code, out) = run(&[
        &v.join("transparent-statement-size-5.cose"),
        Path::new("--keys"),
        &keys,
        Path::new("--json"),
    ]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verdict"], "OK");
    assert_eq!(j["tree_size"], 5);
    assert_eq!(j["leaf_index"], 3);
    // Append-only between sizes 5 and 1000 (same tree as receipt-size-1000).
    let (code, out) = run(&[
        &v.join("statement.cose"),
        Path::new("--receipt"),
        &v.join("receipt-size-1000.cbor"),
        Path::new("--keys"),
        &keys,
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn every_negative_vector_gets_its_exit_code() {
    let v = vectors();
    let keys = v.join("service-keys.cbor");
    // name → exit code (README: exit codes).
    let expected = [
        ("bitflip-path", 8),
        ("wrong-leaf-index", 8),
        ("wrong-tree-size", 7),
        ("wrong-key", 6),
        ("forged-signature", 8),
        ("wrong-vds", 5),
        ("attached-wrong-payload", 7),
        ("unknown-critical-header", 5),
        ("truncated-cbor", 5),
        ("non-tag-18", 5),
        ("trailing-bytes", 5),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(v.join("negative")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        let want = expected
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let (code, out) = run(&[
            &v.join("statement.cose"),
            Path::new("--receipt"),
            &p,
            Path::new("--keys"),
            &keys,
        ]);
        assert_eq!(code, want, "{name}: {out}");
        assert!(out.starts_with("FAIL"), "{name}: {out}");
        seen += 1;
    }
    assert_eq!(seen, expected.len());
    // Wrong service key file, missing receipt, unreadable input.
    let issuer_keys = manifest_dir().join("../keys/test-issuer-es256.keys.cbor");
    assert_eq!(
        run(&[
            &v.join("transparent-statement-size-5.cose"),
            Path::new("--keys"),
            &issuer_keys
        ])
        .0,
        6
    );
    assert_eq!(
        run(&[&v.join("statement.cose"), Path::new("--keys"), &keys]).0,
        4
    );
    assert_eq!(
        run(&[Path::new("/nonexistent"), Path::new("--keys"), &keys]).0,
        2
    );
    assert_eq!(
        run(&[&v.join("service-keys.cbor"), Path::new("--keys"), &keys]).0,
        3
    );
}

/// The package directory, read when the test RUNS (cargo test sets it), not
/// baked in at compile time: a shared CARGO_TARGET_DIR reuses test binaries
/// across clones, and a compile-time path would read another clone's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
