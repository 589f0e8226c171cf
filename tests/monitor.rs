//! The monitor (`vcon-scitt monitor`, the real binary) and `fsck`'s map
//! check over a real server (issue 14): both recompute the vCon map from
//! the log alone. An honest log gives no log finding, the lifecycle rules
//! the issuers broke are reported with their leaf indices, a second run
//! resumes where the first stopped; a server that signs a map without one
//! of its vCons (an altered map node: proofs for that vCon then say
//! "absent" and verify) is caught by the monitor at the map-root entry that
//! first shows it, and by fsck. The C2SP entry bundles the monitor reads
//! are checked against the hash tiles.

mod common;

use common::*;
use serde_json::Value as Json;
use vcon_scitt::http::{Running, start};

const A: &str = "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4b01";
const B: &str = "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4b02";

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
}

/// Runs the monitor once (with pinned keys, or pinning the service's own
/// on a first run); (exit code, alarms, final report).
fn monitor(
    url: &str,
    state: &std::path::Path,
    keys: Option<&std::path::Path>,
) -> (i32, Vec<Json>, Json) {
    let mut cmd = bin();
    cmd.args([
        "monitor", "--json", "--rounds", "1", "--url", url, "--state",
    ])
    .arg(state);
    if let Some(k) = keys {
        cmd.arg("--keys").arg(k);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines: Vec<Json> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let report = lines.pop().unwrap_or_else(|| {
        panic!(
            "no report; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let alarms = lines.into_iter().map(|l| l["alarm"].clone()).collect();
    (out.status.code().unwrap_or(-1), alarms, report)
}

fn fsck(data_dir: &std::path::Path) -> (i32, String) {
    let out = bin()
        .args(["fsck", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn register(url: &str, st: Vec<u8>) {
    let r = vcon_scitt_client::Conn::connect(url)
        .await
        .unwrap()
        .post_statement(st)
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
}

fn index_of(srv: &Running, st: &[u8]) -> u64 {
    let parsed = vcon_scitt::statement::SignedStatement::parse(st, usize::MAX).unwrap();
    let leaf = srv.service.log.store().leaf_hash(&parsed.entry_bytes());
    srv.service.log.index_of(&leaf).unwrap().unwrap()
}

fn keys_file(srv: &Running, dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("service-keys.cbor");
    std::fs::write(&p, srv.service.public_keys().to_cose_keyset()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_recomputes_every_map_root_reports_lifecycle_findings_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    let at = |m: u32| format!("2026-11-30T09:{m:02}:00Z");
    let st = |uuid, event, m| {
        lifecycle_statement(files.path(), event, &at(m), Some(uuid), &["analysis"])
    };
    // A: created, consent granted, withdrawn, then accessed after the
    // withdrawal (a finding); B: created, deleted, then enhanced (a finding).
    let story = [
        (A, "vcon_created", 0),
        (A, "vcon_consent_accepted", 1),
        (A, "vcon_consent_revoked", 2),
        (A, "vcon_accessed", 3),
        (B, "vcon_created", 4),
        (B, "vcon_deleted", 5),
        (B, "vcon_enhanced", 6),
    ];
    let mut sts = Vec::new();
    for (uuid, event, m) in story {
        let s = st(uuid, event, m);
        register(&url, s.clone()).await;
        sts.push(s);
    }
    let accessed = index_of(&srv, &sts[3]);
    let enhanced = index_of(&srv, &sts[6]);

    // The first run pins the keys the service publishes (and its leaf rule).
    let (code, alarms, report) = monitor(&url, state.path(), None);
    assert_eq!(code, 4, "lifecycle findings only: {alarms:?} {report}");
    let size = srv.service.log.latest().head.size;
    assert_eq!(report["verified_size"], size);
    assert_eq!(report["entries_checked"], size);
    assert_eq!(report["vcons"], 2);
    assert_eq!(report["log_findings"], 0);
    assert!(report["map_roots"].as_u64().unwrap() >= story.len() as u64);
    assert_eq!(
        report["root"],
        hex::encode(srv.service.log.latest().head.root)
    );
    let found: Vec<(u64, &str)> = alarms
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "lifecycle", "{a}");
            (a["index"].as_u64().unwrap(), a["detail"].as_str().unwrap())
        })
        .collect();
    assert_eq!(found.len(), 2, "{alarms:?}");
    assert_eq!(found[0].0, accessed);
    assert!(
        found[0].1.contains("after consent was withdrawn"),
        "{}",
        found[0].1
    );
    assert_eq!(found[1].0, enhanced);
    assert!(found[1].1.contains("after vcon_deleted"), "{}", found[1].1);

    // fsck re-derives the same map from the stored entries.
    let (code, out) = fsck(dir.path());
    assert_eq!(code, 0, "{out}");
    let v: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(v["map"]["vcons"], 2);
    assert_eq!(v["map"]["vcon_entries"], story.len());
    assert_eq!(v["map"]["lifecycle_findings"], 2);
    assert_eq!(v["map"]["last_map_root"], size - 1);

    // More entries, past the first full bundle; the next runs (on the
    // pinned keys) read only those, and find nothing new.
    register(&url, st(A, "vcon_consent_accepted", 7)).await;
    let (code, alarms, report) = monitor(&url, state.path(), None);
    assert_eq!(code, 0, "{alarms:?} {report}");
    let mid = srv.service.log.latest().head.size;
    assert_eq!(report["entries_checked"], mid - size);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                register(&url, generic_statement(&format!("urn:example:m{i}"), b"{}")).await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (code, alarms, report) = monitor(&url, state.path(), None);
    assert_eq!(code, 0, "{alarms:?} {report}");
    let new_size = srv.service.log.latest().head.size;
    assert!(new_size > 256 + 1, "{new_size}");
    assert_eq!(report["verified_size"], new_size);
    assert_eq!(report["entries_checked"], new_size - mid);
    // Every issuer statement's signature checked against the policy's keys.
    assert_eq!(report["issuer_signatures_checked"], story.len() + 1 + 300);
    assert_eq!(report["issuer_signatures_unchecked"], 0);

    // The bundles it reads are C2SP's: each entry of tile/entries hashes
    // (RFC 9162 leaf) to the level-0 tile's node, and each stored statement
    // of tile/statements gives the same leaf under the log's rule; one full
    // bundle and one partial.
    let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
    let rule = srv.service.log.store().leaf_rule();
    let w1 = (new_size - 256) as usize;
    for (p, w) in [("000".to_string(), 256usize), (format!("001.p/{w1}"), w1)] {
        let tile = c.get_ok(&format!("/tile/0/{p}")).await.unwrap();
        let leaves = c.get_ok(&format!("/tile/entries/{p}")).await.unwrap();
        let stmts = c.get_ok(&format!("/tile/statements/{p}")).await.unwrap();
        let leaves = vcon_scitt::merkle::bundle::parse(&leaves, w).unwrap();
        let stmts = vcon_scitt::merkle::bundle::parse(&stmts, w).unwrap();
        for i in 0..w {
            let node = &tile[i * 32..(i + 1) * 32];
            assert_eq!(
                vcon_scitt::merkle::leaf_hash(leaves[i]),
                node,
                "{p} entry {i}"
            );
            assert_eq!(rule.hash_entry(stmts[i]), node, "{p} statement {i}");
        }
    }
    // Beyond the signed size: 404, never a guess; not a bundle path: 400.
    let r = c
        .get(&format!("/tile/entries/001.p/{}", w1 + 1))
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = c.get("/tile/entries/0").await.unwrap();
    assert_eq!(r.status, 400);

    // The monitor's own state is checked when it resumes: an altered vCon
    // state is refused, not trusted.
    {
        let db = rocksdb::DB::open_default(state.path()).unwrap();
        let (k, v) = db.prefix_iterator(b"s").next().unwrap().unwrap();
        let mut s = vcon_scitt::vcon::state::VconState::from_cbor(&v).unwrap();
        s.entries += 1;
        db.put(k, s.to_cbor()).unwrap();
    }
    let out = bin()
        .args(["monitor", "--rounds", "1", "--url", &url, "--state"])
        .arg(state.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("altered"), "{err}");
    srv.stop().await;
}

/// The indices of the map-root entries the store holds, in order.
fn map_roots(srv: &Running) -> Vec<u64> {
    let log = &srv.service.log;
    (0..log.latest().head.size)
        .filter(|i| {
            let e = log.store().entry(*i).unwrap().unwrap();
            vcon_scitt::statement::SignedStatement::parse(&e, usize::MAX)
                .is_ok_and(|s| s.subject == vcon_scitt::vcon_map::MAP_ROOT_SUBJECT)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_signs_a_map_without_a_vcon_is_caught_by_the_monitor_and_fsck() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    let keys = keys_file(&srv, files.path());
    let at = |m: u32| format!("2026-11-30T10:{m:02}:00Z");
    let mut a_first = String::new();
    for (uuid, event, m) in [
        (A, "vcon_created", 0),
        (A, "vcon_consent_accepted", 1),
        (A, "vcon_consent_revoked", 2),
        (B, "vcon_created", 3),
    ] {
        let st = lifecycle_statement(files.path(), event, &at(m), Some(uuid), &["analysis"]);
        if a_first.is_empty() {
            let parsed = vcon_scitt::statement::SignedStatement::parse(&st, usize::MAX).unwrap();
            a_first = hex::encode(srv.service.log.store().leaf_hash(&parsed.entry_bytes()));
        }
        register(&url, st).await;
    }
    let (code, alarms, _) = monitor(&url, state.path(), Some(&keys));
    assert_eq!(code, 0, "an honest log: {alarms:?}");
    srv.stop().await;

    // An attacker in the server removes vCon A from the map (its state
    // row) and records the matching root, so the start-up check passes.
    remove_from_map(&dir.path().join("db"), A);
    let srv = start(server_config(dir.path()), None)
        .await
        .expect("the forged root matches the forged rows");
    register(
        &srv.url(),
        generic_statement("urn:example:after-tamper", b"{}"),
    )
    .await;
    let lying = *map_roots(&srv).last().unwrap();
    let url = srv.url();

    // A's proof bundle now "proves" A absent, and verifies: the map is
    // signed. Only recomputing the map from the log shows the lie.
    let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
    let b = c.get_ok(&format!("/vcons/{A}/proof")).await.unwrap();
    let bundle = vcon_scitt::vcon::proof::Bundle::from_cbor(&b).unwrap();
    assert_eq!(bundle.state, None, "the tampered map has no A");
    let keyset = srv.service.public_keys().clone();
    let verdict =
        vcon_scitt::vcon::proof::verify_bundle(&bundle, A, &keyset, &Default::default()).unwrap();
    assert!(!verdict.present, "a signed lie verifies offline");
    // ...unless the holder of one of A's statements holds it against the
    // bundle: its receipt proves an entry the "absent" vCon has.
    let held_ts = c
        .get_ok(&format!("/entries/{a_first}/statement"))
        .await
        .unwrap();
    let held_dir = tempfile::tempdir().unwrap();
    let (bf, hf, kf) = (
        held_dir.path().join("bundle.cbor"),
        held_dir.path().join("held.cose"),
        held_dir.path().join("keys.cbor"),
    );
    std::fs::write(&bf, &b).unwrap();
    std::fs::write(&hf, &held_ts).unwrap();
    std::fs::write(&kf, keyset.to_cose_keyset()).unwrap();
    let verify_cli = |extra: &[&std::path::Path]| {
        let mut cmd = bin();
        cmd.arg("verify")
            .arg(&bf)
            .args(["--bundle", "--uuid", A, "--keys"])
            .arg(&kf);
        for h in extra {
            cmd.arg("--held").arg(h);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify_cli(&[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify_cli(&[&hf]);
    assert_eq!(code, Some(12), "{out}");
    assert!(out.contains("leaves it out"), "{out}");
    // `audit` compares the service's own listing (three entries for A)
    // with the signed map (none): it fails rather than trust either.
    let out = bin()
        .args(["audit", "--vcon", A, "--url", &url])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{text}");

    let (code, alarms, report) = monitor(&url, state.path(), Some(&keys));
    assert_eq!(code, 3, "{alarms:?} {report}");
    let log_alarms: Vec<&Json> = alarms.iter().filter(|a| a["kind"] == "log").collect();
    assert!(!log_alarms.is_empty(), "{alarms:?}");
    assert_eq!(log_alarms[0]["index"], lying, "{alarms:?}");
    assert!(
        log_alarms[0]["detail"]
            .as_str()
            .unwrap()
            .contains("signed map root"),
        "{alarms:?}"
    );
    let (code, out) = fsck(dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("vCon map"), "{out}");

    // A statement the policy refuses (signed with a key not registered for
    // the issuer it names), slipped into the log behind the policy's back:
    // the monitor names its index.
    let wrong_key = partner_key();
    let mut b = vcon_scitt::statement::Builder::new(&wrong_key, ISSUER, "urn:example:forged");
    b.issued_at = Some(vcon_scitt::time::now_secs());
    let forged = b.sign(b"{}").unwrap();
    let entry = vcon_scitt::statement::SignedStatement::parse(&forged, usize::MAX)
        .unwrap()
        .entry_bytes();
    let appended = srv.service.log.submit(entry).unwrap().wait().await.unwrap();
    let (code, alarms, _) = monitor(&url, state.path(), Some(&keys));
    assert_eq!(code, 3, "{alarms:?}");
    assert!(
        alarms.iter().any(|a| a["index"] == appended.index
            && a["detail"].as_str().unwrap().contains("has no key")),
        "{alarms:?}"
    );
    srv.stop().await;
}
