//! The verifiable vCon map over a real server (issue 14): every batch ends
//! with a map-root entry the service signed, whose payload names its own
//! index and the map root; every acknowledged vCon entry is in the map, with
//! the value an independent fold of that vCon's registered statements gives
//! (core's fold, fed from the statements themselves, not from the server's
//! index); the map is rebuilt from its state rows at restart, and a
//! tampered state row stops the start; a database written before the map
//! gets its states derived once, to the same root.

mod common;

use ciborium::value::Value;
use common::*;
use vcon_scitt::http::{Running, start};
use vcon_scitt::keys::KeySet;
use vcon_scitt::map;
use vcon_scitt::merkle::Hash;
use vcon_scitt::statement::SignedStatement;
use vcon_scitt::vcon::LifecycleRecord;
use vcon_scitt::vcon::profile::Event;
use vcon_scitt::vcon::state::{fold_history, map_key};
use vcon_scitt::vcon_map::{MAP_PROFILE, MAP_ROOT_SUBJECT};

const UUIDS: [&str; 3] = [
    "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a11",
    "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a12",
    "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4a13",
];

/// One vCon's story: created, consent for "analysis" granted, the vCon
/// used, the consent withdrawn.
const STORY: [&str; 4] = [
    "vcon_created",
    "vcon_consent_accepted",
    "vcon_accessed",
    "vcon_consent_revoked",
];

fn statement(dir: &std::path::Path, uuid: &str, event: &str, minute: u32) -> Vec<u8> {
    let at = format!("2026-11-30T09:{minute:02}:00Z");
    lifecycle_statement(dir, event, &at, Some(uuid), &["analysis"])
}

/// Checks CBOR bytes against a rule of proto/vcon-map.cddl.
fn validate(rule: &str, bytes: &[u8]) {
    let schema = std::fs::read_to_string(repo("proto/vcon-map.cddl")).unwrap();
    let text = format!("root = {rule}\n{schema}");
    if let Err(e) = cddl::validate_cbor_from_slice(&text, bytes, None) {
        panic!("{rule}: {e}");
    }
}

/// A map-root entry's payload: (p, root, prev).
fn map_root(entry: &[u8]) -> Option<(u64, Hash, Option<u64>)> {
    let st = SignedStatement::parse(entry, usize::MAX).ok()?;
    if st.subject != MAP_ROOT_SUBJECT {
        return None;
    }
    validate("map-root", st.payload());
    let Value::Map(m) = vcon_scitt::cbor::decode(st.payload()).ok()? else {
        return None;
    };
    let get = |k| vcon_scitt::cbor::map_get(&m, k);
    assert_eq!(get(1).and_then(|v| v.as_text()), Some(MAP_PROFILE));
    let p = vcon_scitt::cbor::as_u64(get(2)?)?;
    let root: Hash = get(3)?.as_bytes()?.as_slice().try_into().ok()?;
    let prev = get(5).and_then(vcon_scitt::cbor::as_u64);
    Some((p, root, prev))
}

/// The lifecycle record the profile derives from a registered statement
/// (core's, as the bundle verifier derives it).
fn record(st: &[u8]) -> LifecycleRecord {
    vcon_scitt::vcon::proof::record_of(st).unwrap()
}

/// Every entry of the log: each batch ends with a map-root entry at the
/// index its payload names, chained to the previous one, signed by the
/// service; returns the last (index, root).
fn check_map_roots(srv: &Running) -> (u64, Hash) {
    let log = &srv.service.log;
    let keys: KeySet = srv.service.public_keys().clone();
    let size = log.latest().head.size;
    let mut last: Option<(u64, Hash)> = None;
    for i in 0..size {
        let e = log.store().entry(i).unwrap().unwrap();
        let Some((p, root, prev)) = map_root(&e) else {
            continue;
        };
        assert_eq!(p, i, "a map-root entry names its own index");
        assert_eq!(prev, last.map(|l| l.0), "map roots chain");
        let st = SignedStatement::parse(&e, usize::MAX).unwrap();
        let key = keys
            .get(st.kid.as_deref().unwrap())
            .expect("signed by a service key");
        st.verify_signature(key).unwrap();
        last = Some((i, root));
    }
    let last = last.expect("at least one map root");
    assert_eq!(last.0, size - 1, "the newest head ends with a map root");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_vcon_entry_is_in_the_signed_map() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    // Three vCons, four events each, sent concurrently so batches vary.
    let mut sts = Vec::new();
    for (k, uuid) in UUIDS.iter().enumerate() {
        for (j, event) in STORY.iter().enumerate() {
            sts.push((
                *uuid,
                statement(files.path(), uuid, event, (10 * k + j) as u32),
            ));
        }
    }
    let mut created = Vec::new();
    // Created first (the controller), then the rest all at once.
    for (uuid, st) in sts
        .iter()
        .filter(|(_, s)| record(s).event == Event::Created)
    {
        let r = vcon_scitt_client::Conn::connect(&url)
            .await
            .unwrap()
            .post_statement(st.clone())
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        created.push((*uuid, st.clone(), r.header("location").unwrap().to_owned()));
    }
    let rest: Vec<_> = sts
        .iter()
        .filter(|(_, s)| record(s).event != Event::Created)
        .cloned()
        .collect();
    let tasks: Vec<_> = rest
        .into_iter()
        .map(|(uuid, st)| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = vcon_scitt_client::Conn::connect(&url)
                    .await
                    .unwrap()
                    .post_statement(st.clone())
                    .await
                    .unwrap();
                assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
                (uuid, st, r.header("location").unwrap().to_owned())
            })
        })
        .collect();
    let mut all = created;
    for t in tasks {
        all.push(t.await.unwrap());
    }

    let (last_index, root) = check_map_roots(&srv);
    {
        let map = srv.service.map.lock().unwrap();
        assert_eq!(map.tree().root(), root);
        assert_eq!(map.last().unwrap().index, last_index);
        assert_eq!(map.tree().len(), UUIDS.len());
        // Each vCon's value is the fold of its own statements, in log order.
        let log = &srv.service.log;
        for uuid in UUIDS {
            let mut history: Vec<(u64, Hash, LifecycleRecord)> = all
                .iter()
                .filter(|(u, _, _)| *u == uuid)
                .map(|(_, st, loc)| {
                    let leaf: Hash =
                        vcon_scitt::merkle::from_hex(loc.rsplit('/').next().unwrap()).unwrap();
                    (log.index_of(&leaf).unwrap().unwrap(), leaf, record(st))
                })
                .collect();
            history.sort_by_key(|h| h.0);
            let delegates = Default::default();
            let state = fold_history(history.iter().map(|(i, l, r)| (*i, l, r)), &delegates);
            assert_eq!(state.entries, 4);
            assert_eq!(state.controller.as_deref(), Some(ISSUER));
            let key = map_key(uuid).unwrap();
            let proof = map.tree().prove(&key);
            assert_eq!(proof.value, Some(state.value()), "{uuid}");
            map::verify_inclusion(&root, &key, &state.value(), &proof.bytes).unwrap();
            // One omitted entry is another value: the map cannot be fooled.
            let fewer = fold_history(
                history.iter().skip(1).map(|(i, l, r)| (*i, l, r)),
                &delegates,
            );
            assert!(map::verify_inclusion(&root, &key, &fewer.value(), &proof.bytes).is_err());
        }
        // A vCon never seen: proved absent.
        let unknown = map_key("0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4aff").unwrap();
        let proof = map.tree().prove(&unknown);
        assert_eq!(proof.value, None);
        map::verify_absence(&root, &unknown, &proof.bytes).unwrap();
        assert!(map::verify_absence(&root, &map_key(UUIDS[0]).unwrap(), &proof.bytes).is_err());
    }
    srv.stop().await;

    // Restart: the map is rebuilt from its state rows to the same root.
    let srv = start(server_config(dir.path()), None).await.unwrap();
    assert_eq!(srv.service.map.lock().unwrap().tree().root(), root);
    let store = srv.service.log.store().clone();
    srv.stop().await;

    // A database from before the map: its state rows are derived once from
    // the history rows, to the same root.
    let rows: Vec<(Vec<u8>, Vec<u8>)> = store
        .iter_from(vcon_scitt::log::store::CF_INDEX, b"M")
        .unwrap()
        .map(|r| r.unwrap())
        .take_while(|(k, _)| k.starts_with(b"M"))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(rows.len(), UUIDS.len());
    for (_, v) in &rows {
        validate("vcon-state", v);
    }
    drop(store);
    {
        let store = vcon_scitt::log::Store::open(&dir.path().join("db")).unwrap();
        let mut wb = rocksdb::WriteBatch::default();
        let cf = store.cf(vcon_scitt::log::store::CF_INDEX).unwrap();
        for (k, _) in &rows {
            wb.delete_cf(cf, k);
        }
        wb.delete_cf(cf, b"m/map-last");
        wb.delete_cf(cf, b"m/map-derived");
        store.write_synced(wb).unwrap();
    }
    let srv = start(server_config(dir.path()), None).await.unwrap();
    assert_eq!(srv.service.map.lock().unwrap().tree().root(), root);
    // The next batch commits that map in a map-root entry.
    let r = vcon_scitt_client::Conn::connect(&srv.url())
        .await
        .unwrap()
        .post_statement(generic_statement("urn:example:after-derivation", b"{}"))
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let log = &srv.service.log;
    let size = log.latest().head.size;
    let newest = log.store().entry(size - 1).unwrap().unwrap();
    let (p, new_root, prev) = map_root(&newest).expect("the batch ends with a map root");
    assert_eq!((p, new_root), (size - 1, root));
    assert_eq!(
        prev, None,
        "the first map root after a derivation starts a chain"
    );
    srv.stop().await;

    // A tampered state row: the start is refused, naming the map.
    {
        let store = vcon_scitt::log::Store::open(&dir.path().join("db")).unwrap();
        let (k, v) = &rows[0];
        let mut state = vcon_scitt::vcon::state::VconState::from_cbor(v).unwrap();
        state.entries -= 1;
        store
            .put_index_rows(&[(k.clone(), state.to_cbor())])
            .unwrap();
    }
    let err = start(server_config(dir.path()), None)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("vCon map"), "{err}");
}

/// `vcon-scitt audit` (the real binary) on one vCon.
fn audit(url: &str, uuid: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["audit", "--vcon", uuid, "--url", url])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `vcon-scitt verify --bundle` (the vcon-verify code) on a bundle file.
fn verify_bundle_cli(bundle: &[u8], uuid: &str, keys: &[u8]) -> (i32, String) {
    verify_bundle_cli_with(bundle, uuid, keys, &[])
}

fn verify_bundle_cli_with(bundle: &[u8], uuid: &str, keys: &[u8], extra: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (b, k) = (dir.path().join("bundle.cbor"), dir.path().join("keys.cbor"));
    std::fs::write(&b, bundle).unwrap();
    std::fs::write(&k, keys).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .arg("verify")
        .arg(&b)
        .args(["--bundle", "--uuid", uuid, "--keys"])
        .arg(&k)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The proof bundle over HTTP, checked offline: a complete history (and
/// the consent it gives), a vCon never seen (absent), and every way a
/// server could shorten or fake an answer refused with the "incomplete"
/// class, including a server whose own index lost a row (the omission a
/// list view could never show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_bundles_show_complete_histories_and_catch_omissions() {
    use vcon_scitt::vcon::proof::{Bundle, verify_bundle};
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let srv = start(server_config(dir.path()), None).await.unwrap();
    let url = srv.url();
    let uuid = UUIDS[0];
    let mut c = vcon_scitt_client::Conn::connect(&url).await.unwrap();
    for (j, event) in STORY.iter().enumerate() {
        let r = c
            .post_statement(statement(files.path(), uuid, event, j as u32))
            .await
            .unwrap();
        assert_eq!(r.status, 201);
    }
    let keys_bytes = c.get_ok("/.well-known/scitt-keys").await.unwrap();
    let keys = KeySet::parse_any(&keys_bytes).unwrap();
    let r = c.get(&format!("/vcons/{uuid}/proof")).await.unwrap();
    assert_eq!(r.status, 200, "{}", vcon_scitt_client::describe(&r));
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    let bundle = Bundle::from_cbor(&r.body).unwrap();
    let report = verify_bundle(&bundle, uuid, &keys, &Default::default()).unwrap();
    assert!(report.present);
    assert_eq!(report.indices.len(), 4);
    assert_eq!(
        report.consent.purposes["analysis"].status.as_str(),
        "revoked"
    );
    let (code, out) = verify_bundle_cli(&r.body, uuid, &keys_bytes);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("exactly 4 entries") && out.contains("analysis: revoked"),
        "{out}"
    );

    // The other time: as of an event time, from the same complete history
    // (the grant at 09:01 stood at 09:02; the withdrawal came at 09:03).
    let (code, out) = verify_bundle_cli_with(
        &r.body,
        uuid,
        &keys_bytes,
        &["--as-of", "2026-11-30T09:02:00Z"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("as of 2026-11-30T09:02:00Z")
            && out.contains("consent granted [analysis: granted]"),
        "{out}"
    );
    assert_eq!(
        report
            .consent_as_of(
                vcon_scitt::time::parse_rfc3339_ms("2026-11-30T09:00:30Z").unwrap(),
                &Default::default()
            )
            .state
            .as_str(),
        "none",
        "before the grant"
    );

    // Never seen: proved absent.
    let other = "0190c2f2-6d4e-7a45-9b1e-2f0d7c9e4aff";
    let absent = c.get(&format!("/vcons/{other}/proof")).await.unwrap();
    assert_eq!(absent.status, 200);
    let (code, out) = verify_bundle_cli(&absent.body, other, &keys_bytes);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("has no entry"), "{out}");

    // Faked answers: each refused as incomplete (12).
    let mut dropped = bundle.clone();
    dropped.entries.remove(3); // the withdrawal
    let mut reordered = bundle.clone();
    reordered.entries.swap(1, 2);
    let mut denied = Bundle::from_cbor(&absent.body).unwrap();
    denied.uuid = uuid.into(); // "no such vCon" for one that exists
    let mut stateless = bundle.clone();
    stateless.state = None;
    stateless.entries.clear();
    for (name, fake) in [
        ("an entry left out", dropped),
        ("entries reordered", reordered),
        ("absence claimed for a present vCon", denied),
        ("state withheld", stateless),
    ] {
        let (code, out) = verify_bundle_cli(&fake.to_cbor(), uuid, &keys_bytes);
        assert_eq!(code, 12, "{name}: {out}");
    }

    // A server whose index lost the withdrawal's row serves a bundle
    // without it: the map, committed when the row was written, says so.
    let revoked_index = *report.indices.last().unwrap();
    let uuid_bytes = hex::decode(uuid.replace('-', "")).unwrap();
    let mut row = b"h".to_vec();
    row.extend(&uuid_bytes);
    row.extend(revoked_index.to_be_bytes());
    {
        let store = srv.service.log.store();
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete_cf(store.cf(vcon_scitt::log::store::CF_INDEX).unwrap(), &row);
        store.write_synced(wb).unwrap();
    }
    let r = c.get(&format!("/vcons/{uuid}/proof")).await.unwrap();
    assert_eq!(r.status, 200);
    let (code, out) = verify_bundle_cli(&r.body, uuid, &keys_bytes);
    assert_eq!(code, 12, "{out}");
    assert!(out.contains("left out"), "{out}");
    // ...and `audit`, whose listing now lacks the withdrawal (and would
    // recompute "granted"), fails instead of saying OK.
    let (code, out) = audit(&url, uuid);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("omits entries") || out.contains("does not prove"),
        "{out}"
    );
    srv.stop().await;
}
