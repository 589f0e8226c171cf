//! The vCon story end to end over a real server: created → consent accepted
//! → sent → received (second issuer) → consent revoked → deleted →
//! rcvr_purged; consent as of before/after the revocation; the withdrawal
//! feed; lineage; `vcon-scitt audit` (the real binary) verifies everything,
//! and fails once a stored receipt signature is tampered with. Then every
//! policy rule, one rejection each.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vcon_scitt::http::start;
use vcon_scitt::vcon::profile::Event;
use vcon_scitt_client::Conn;
use vcon_scitt_client::statement::{StatementSpec, create};

const UUID: &str = "019f15a6-a752-826f-b9a2-279e0d16bc46";
const REDACTED_UUID: &str = "01928e10-193e-8231-b9a2-279e0d16bc46";

fn vcon(name: &str) -> PathBuf {
    repo("tests/vectors/vcon").join(name)
}

fn args(dir: &Path, file: &str, event: &str, key: &str, iss: &str, at: &str) -> StatementSpec {
    StatementSpec {
        occurred_at: Some(at.into()),
        out: Some(dir.join(format!("{event}-{}.cose", at.replace(':', "")))),
        ..StatementSpec::new(
            vcon(file),
            Event::parse(event).unwrap(),
            repo(key),
            iss.into(),
        )
    }
}

fn make(a: &StatementSpec) -> Vec<u8> {
    let (out, _) = create(a).unwrap();
    std::fs::read(out).unwrap()
}

async fn json(c: &mut Conn, path: &str) -> serde_json::Value {
    let r = c.get(path).await.unwrap();
    assert_eq!(r.status, 200, "{path}: {}", vcon_scitt_client::describe(&r));
    serde_json::from_slice(&r.body).unwrap()
}

fn audit(url: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vcon-scitt"))
        .args(["audit", "--vcon", UUID, "--url", url])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcon_lifecycle_is_registered_queried_and_audited() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let url = srv.url();
    let (conserver, partner) = ("keys/test-issuer-es256.pk8", "keys/test-issuer-ed25519.pk8");
    let f = "ab_call_ext_rec.vcon";

    let created = args(
        w,
        f,
        "vcon_created",
        conserver,
        ISSUER,
        "2026-11-20T10:00:00Z",
    );
    let mut accepted = args(
        w,
        f,
        "consent_granted",
        conserver,
        ISSUER,
        "2026-11-20T10:01:00Z",
    );
    accepted.purposes = vec!["recording".into(), "transcription".into()];
    let mut sent = args(w, f, "vcon_sent", conserver, ISSUER, "2026-11-20T10:02:00Z");
    sent.counterparty = Some(PARTNER.into());
    let mut received = args(
        w,
        f,
        "vcon_received",
        partner,
        PARTNER,
        "2026-11-20T10:03:00Z",
    );
    received.counterparty = Some(ISSUER.into());
    let mut revoked = args(
        w,
        f,
        "consent_withdrawn",
        conserver,
        ISSUER,
        "2026-11-21T09:00:00Z",
    );
    revoked.purposes = vec!["recording".into(), "transcription".into()];
    revoked.reason = Some("user_request".into());
    let deleted = args(
        w,
        f,
        "vcon_deleted",
        conserver,
        ISSUER,
        "2026-11-21T09:05:00Z",
    );
    let purged = args(
        w,
        f,
        "vcon_rcvr_purged",
        partner,
        PARTNER,
        "2026-11-21T09:30:00Z",
    );

    let mut c = Conn::connect(&url).await.unwrap();
    let mut ids = Vec::new();
    for a in [
        &created, &accepted, &sent, &received, &revoked, &deleted, &purged,
    ] {
        let r = c.post_statement(make(a)).await.unwrap();
        assert_eq!(
            r.status,
            201,
            "{}: {}",
            a.event.name(),
            vcon_scitt_client::describe(&r)
        );
        ids.push(
            r.header("location")
                .unwrap()
                .trim_start_matches("/entries/")
                .to_owned(),
        );
    }
    // A hash registration of the same vCon (conserver style) joins the history.
    let mut hashed = args(
        w,
        f,
        "vcon_created",
        conserver,
        ISSUER,
        "2026-11-20T10:00:00Z",
    );
    hashed.hash_envelope = true;
    hashed.out = Some(w.join("hash.cose"));
    let r = c.post_statement(make(&hashed)).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));

    // History: registration order, every event, receipts linked, no anomalies.
    let h = json(&mut c, &format!("/vcons/{UUID}/entries")).await;
    let items = h["items"].as_array().unwrap();
    let events: Vec<&str> = items.iter().map(|i| i["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "vcon_created",
            "vcon_consent_accepted",
            "vcon_sent",
            "vcon_received",
            "vcon_consent_revoked",
            "vcon_deleted",
            "vcon_rcvr_purged",
            "vcon_created"
        ]
    );
    assert_eq!(items[3]["iss"], PARTNER);
    assert_eq!(items[0]["entry_id"], ids[0]);
    assert!(items[0]["registered_at"].is_string());
    assert!(
        items[0]["policy_entry"].is_string(),
        "each registration says which policy admitted it"
    );
    // The hash registration after deletion is an anomaly; nothing else is.
    for it in &items[..7] {
        assert!(it.get("anomalies").is_none(), "{it}");
    }
    assert!(
        items[7]["anomalies"][0]
            .as_str()
            .unwrap()
            .contains("after vcon_deleted")
    );
    // Pagination.
    let p1 = json(&mut c, &format!("/vcons/{UUID}/entries?limit=3")).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    let after = p1["next_after"].as_u64().unwrap();
    let p2 = json(
        &mut c,
        &format!("/vcons/{UUID}/entries?limit=3&after={after}"),
    )
    .await;
    assert_eq!(p2["items"][0]["event"], "vcon_received");

    // Consent as of before and after the revocation.
    let before = json(
        &mut c,
        &format!("/vcons/{UUID}/consent?as_of=2026-11-21T08:59:59Z"),
    )
    .await;
    assert_eq!(before["state"], "granted");
    assert_eq!(before["purposes"]["recording"]["entry_id"], ids[1]);
    let after = json(
        &mut c,
        &format!("/vcons/{UUID}/consent?as_of=2026-11-21T09:00:01Z"),
    )
    .await;
    assert_eq!(after["state"], "revoked");
    assert_eq!(after["purposes"]["transcription"]["status"], "revoked");
    assert_eq!(after["proofs"][0], ids[4]);
    let long_before = json(
        &mut c,
        &format!("/vcons/{UUID}/consent?as_of=2026-11-19T00:00:00Z"),
    )
    .await;
    assert_eq!(long_before["state"], "none");

    // The withdrawal feed shows the revocation, with its entry id.
    let feed = json(&mut c, "/events?type=vcon_consent_revoked").await;
    assert_eq!(feed["items"].as_array().unwrap().len(), 1);
    assert_eq!(feed["items"][0]["entry_id"], ids[4]);
    assert_eq!(feed["items"][0]["vcon_uuid"], UUID);
    let cursor = feed["next_after"].as_u64().unwrap();
    let empty = json(
        &mut c,
        &format!("/events?type=consent_withdrawn&after={cursor}"),
    )
    .await;
    assert!(empty["items"].as_array().unwrap().is_empty());
    let by_partner = json(&mut c, &format!("/events?iss={}", PARTNER)).await;
    assert_eq!(by_partner["items"].as_array().unwrap().len(), 2);
    // Empty filters, as forms send them (schemathesis found `type=&iss=`
    // refused), are no filters.
    assert_eq!(
        json(&mut c, "/events?type=&iss=").await,
        json(&mut c, "/events").await
    );
    let in_range = json(
        &mut c,
        "/events?since=2026-11-21T00:00:00Z&until=2026-11-21T09:10:00Z",
    )
    .await;
    assert_eq!(in_range["items"].as_array().unwrap().len(), 2);

    // Lineage: the redacted derivative points back; both directions answer.
    let mut red = args(
        w,
        "ab_call_ext_rec_redacted.vcon",
        "vcon_redacted",
        conserver,
        ISSUER,
        "2026-11-20T11:00:00Z",
    );
    red.out = Some(w.join("redacted.cose"));
    let r = c.post_statement(make(&red)).await.unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    let down = json(&mut c, &format!("/vcons/{REDACTED_UUID}/lineage")).await;
    assert_eq!(down["derived_from"][0]["vcon_uuid"], UUID);
    assert_eq!(down["derived_from"][0]["relation"], "redacted");
    let up = json(&mut c, &format!("/vcons/{UUID}/lineage")).await;
    assert_eq!(up["derivatives"][0]["vcon_uuid"], REDACTED_UUID);

    // The auditor: everything verifies, consent ends "revoked".
    let (code, out) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || audit(&url, &[])
    })
    .await
    .unwrap();
    eprintln!("{out}");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("AUDIT OK"), "{out}");
    assert!(out.contains("consent: revoked"), "{out}");
    assert!(out.contains("vcon_rcvr_purged"));
    let (code, out) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || audit(&url, &["--as-of", "2026-11-21T08:00:00Z", "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["consent"]["state"], "granted");
    assert_eq!(report["verified"], true);

    // vcon-verify --vcon: the held file is the registered one; another is not.
    let ts = c
        .get(&format!("/entries/{}/statement", ids[0]))
        .await
        .unwrap()
        .body;
    let st_path = w.join("created.transparent.cose");
    std::fs::write(&st_path, &ts).unwrap();
    let keys_path = w.join("keys.cbor");
    std::fs::write(
        &keys_path,
        c.get("/.well-known/scitt-keys").await.unwrap().body,
    )
    .unwrap();
    let req = |vfile: &str| vcon_scitt::verify::Request {
        statement: ts.clone(),
        service_keys: vcon_scitt::keys::KeySet::parse_any(&std::fs::read(&keys_path).unwrap())
            .unwrap(),
        vcon: Some(std::fs::read(vcon(vfile)).unwrap()),
        ..Default::default()
    };
    assert!(
        vcon_scitt::verify::verify(&req("ab_call_ext_rec.vcon"))
            .unwrap()
            .vcon
            .unwrap()
            .contains("matches")
    );
    assert_eq!(
        vcon_scitt::verify::verify(&req("ab_call_ext_rec_amended.vcon"))
            .unwrap_err()
            .exit_code(),
        10
    );

    // Tamper with the stored signature of the head that covers the revocation.
    let revoked_index = items[4]["index"].as_u64().unwrap();
    srv.stop().await;
    {
        let store = vcon_scitt::log::Store::open(&data.path().join("db")).unwrap();
        let mut head = store.first_head_covering(revoked_index).unwrap().unwrap();
        let n = head.signature.len();
        head.signature[n - 3] ^= 0x01;
        store
            .put_raw(
                vcon_scitt::log::store::CF_HEADS,
                &head.head.size.to_be_bytes(),
                &head.to_record(),
            )
            .unwrap();
    }
    let srv = start(server_config(data.path()), None).await.unwrap();
    let url = srv.url();
    let (code, out) = tokio::task::spawn_blocking(move || audit(&url, &[]))
        .await
        .unwrap();
    eprintln!("{out}");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("AUDIT FAILED"), "{out}");
    assert!(out.contains(&format!("index {revoked_index}")), "{out}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_rule_rejects_with_its_name() {
    use ciborium::value::Value;
    let data = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let key = issuer_key();
    let now = vcon_scitt::time::now_secs();
    let sign = |sub: &str, ct: Option<&str>, payload: serde_json::Value| {
        let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, sub);
        b.content_type = ct.map(str::to_owned);
        b.issued_at = Some(now);
        b.sign(&serde_json::to_vec(&payload).unwrap()).unwrap()
    };
    let lc = Some("application/vcon-lifecycle+json");
    let sub = format!("vcon://{UUID}");
    let hash = vcon_scitt::vcon::content_hash(vcon_scitt::vcon::HashAlg::Sha512, b"x");
    let base = |event: &str| serde_json::json!({"event": event, "vcon_uuid": UUID, "vcon_hash": hash, "occurred_at": "2026-11-20T10:00:00Z"});
    let with = |mut v: serde_json::Value, k: &str, x: serde_json::Value| {
        v[k] = x;
        v
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown-event", sign(&sub, lc, base("vcon_exploded"))),
        (
            "subject-uuid-mismatch",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "vcon_uuid",
                    "01928e10-193e-8231-b9a2-279e0d16bc46".into(),
                ),
            ),
        ),
        (
            "subject-uuid",
            sign("vcon://not-a-uuid", lc, base("vcon_created")),
        ),
        (
            "vcon-hash-format",
            sign(
                &sub,
                lc,
                with(base("vcon_created"), "vcon_hash", "md5-abc".into()),
            ),
        ),
        (
            "vcon-hash-required",
            sign(
                &sub,
                lc,
                with(base("vcon_created"), "vcon_hash", serde_json::Value::Null),
            ),
        ),
        (
            "occurred-at-format",
            sign(
                &sub,
                lc,
                with(base("vcon_created"), "occurred_at", "yesterday".into()),
            ),
        ),
        (
            "occurred-at-future",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "occurred_at",
                    "2099-01-01T00:00:00Z".into(),
                ),
            ),
        ),
        (
            "occurred-at-range",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "occurred_at",
                    "1969-12-31T23:59:59Z".into(),
                ),
            ),
        ),
        (
            "pii-subject",
            sign(
                "tel:+12345678901",
                Some("application/json"),
                base("vcon_created"),
            ),
        ),
        (
            "pii-payload-key",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "party",
                    serde_json::json!({"index": 0, "tel": "+12345678901"}),
                ),
            ),
        ),
        (
            "pii-payload-value",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "note",
                    "mailto:alice@example.com".into(),
                ),
            ),
        ),
        (
            "vcon-content-type",
            sign(&sub, Some("application/json"), base("vcon_created")),
        ),
        (
            "reserved-subject",
            sign(
                "urn:vcon-scitt:map-root",
                Some("application/json"),
                serde_json::json!({}),
            ),
        ),
        (
            "consent-block",
            sign(&sub, lc, base("vcon_consent_revoked")),
        ),
        ("counterparty", sign(&sub, lc, base("vcon_sent"))),
        ("derived-from", sign(&sub, lc, base("vcon_redacted"))),
        (
            "party-ref",
            sign(
                &sub,
                lc,
                with(
                    base("vcon_created"),
                    "party",
                    serde_json::json!({"index": 0, "ref": "alice"}),
                ),
            ),
        ),
        ("payload-json", {
            let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, &sub);
            b.content_type = lc.map(str::to_owned);
            b.sign(b"not json").unwrap()
        }),
        ("vcon-hash-preimage", {
            let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, &sub);
            b.hash_envelope = Some((-44, "application/pdf".into()));
            b.sign(&[0u8; 64]).unwrap()
        }),
        // Security issue, finding 4: an iat this negative wrapped
        // (iat + skew) * 1000, so an occurred_at in 9999 passed and pinned
        // the consent state.
        ("iat-range", {
            let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, &sub);
            b.content_type = lc.map(str::to_owned);
            b.issued_at = Some(-9_446_744_073_709_851);
            let doc = with(
                base("vcon_created"),
                "occurred_at",
                "9999-12-31T23:59:59Z".into(),
            );
            b.sign(&serde_json::to_vec(&doc).unwrap()).unwrap()
        }),
        // Hash registrations skipped the iat check.
        ("iat-future", {
            let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, &sub);
            b.hash_envelope = Some((-44, "application/vcon".into()));
            b.issued_at = Some(now + 10 * 86_400);
            b.sign(&[0u8; 64]).unwrap()
        }),
        ("unknown-event", {
            let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, &sub);
            b.hash_envelope = Some((-44, "application/vcon".into()));
            b.extra.push((
                -6804,
                Value::Map(vec![(
                    Value::Text("vcon_operation".into()),
                    Value::Text("exploded".into()),
                )]),
            ));
            b.sign(&[0u8; 64]).unwrap()
        }),
    ];
    for (rule, st) in cases {
        let r = c.post_statement(st).await.unwrap();
        let p = r
            .problem()
            .unwrap_or_else(|| panic!("{rule}: {}", vcon_scitt_client::describe(&r)));
        assert_eq!(
            (r.status, p.title.as_str()),
            (400, "Rejected"),
            "{rule}: {}",
            p.detail
        );
        assert!(
            p.detail.contains(&format!("rule \"{rule}\"")),
            "{rule}: {}",
            p.detail
        );
    }
    srv.stop().await;

    // Generic statements refused when the policy says so; legacy PII subjects
    // accepted only with the compat switch.
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.policy.allow_generic = false;
    cfg.policy.legacy_compat = true;
    let srv = start(cfg, None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c
        .post_statement(generic_statement("urn:example:x", b"{}"))
        .await
        .unwrap();
    assert!(
        r.problem()
            .unwrap()
            .detail
            .contains("rule \"generic-statements\"")
    );
    let legacy = {
        let b = vcon_scitt::statement::Builder::new(&key, ISSUER, "tel:+12345678901");
        b.sign(format!("{}:vcon_created:+12345678901", "ab".repeat(32)).as_bytes())
            .unwrap()
    };
    assert_eq!(c.post_statement(legacy).await.unwrap().status, 201);
    srv.stop().await;
}

/// Security issue, finding 7: generic statements skipped the PII guard, and
/// the guard itself missed `sips:`, a leading space, `phoneNumber`, `e_mail`,
/// e-mail addresses and phone numbers in values, protected-header text and
/// free-text reasons. Every statement now passes one guard; each bypass the
/// attack run found is a 400 naming its rule that does not repeat the
/// identifier, and honest statements (timestamps with offsets, package
/// coordinates, the vCon samples in both forms) still register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pii_guard_covers_every_statement() {
    use ciborium::value::Value;
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = start(server_config(data.path()), None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let key = issuer_key();
    let now = vcon_scitt::time::now_secs();
    let sign = |sub: &str, ct: &str, extra: Vec<(i64, Value)>, payload: &[u8]| {
        let mut b = vcon_scitt::statement::Builder::new(&key, ISSUER, sub);
        b.content_type = Some(ct.into());
        b.issued_at = Some(now);
        b.extra = extra;
        b.sign(payload).unwrap()
    };
    let json = "application/json";
    let generic = |payload: serde_json::Value| {
        sign(
            "urn:example:pii",
            json,
            vec![],
            &serde_json::to_vec(&payload).unwrap(),
        )
    };
    let sub = format!("vcon://{UUID}");
    let hash = vcon_scitt::vcon::content_hash(vcon_scitt::vcon::HashAlg::Sha512, b"x");
    let lifecycle = |doc: serde_json::Value| {
        sign(
            &sub,
            "application/vcon-lifecycle+json",
            vec![],
            &serde_json::to_vec(&doc).unwrap(),
        )
    };
    let meta = |k: &str, v: &str| {
        vec![(
            -6804,
            Value::Map(vec![(Value::Text(k.into()), Value::Text(v.into()))]),
        )]
    };
    // (rule, what must not be echoed, statement)
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "pii-payload-key",
            "+15551234567",
            generic(serde_json::json!({"tel": "+15551234567"})),
        ),
        (
            "pii-payload-key",
            "a@b.example",
            generic(serde_json::json!({"email": "a@b.example"})),
        ),
        (
            "pii-payload-key",
            "5551234567",
            generic(serde_json::json!({"caller": {"phoneNumber": "5551234567"}})),
        ),
        (
            "pii-payload-key",
            "alice",
            generic(serde_json::json!({"e_mail": "alice"})),
        ),
        (
            "pii-payload-value",
            "555) 123-4567",
            generic(serde_json::json!({"note": "call +1 (555) 123-4567 after 5"})),
        ),
        (
            "pii-payload-value",
            "alice@example.com",
            generic(serde_json::json!({"to": ["SIPS:alice@example.com"]})),
        ),
        (
            "pii-payload-value",
            "alice@example.com",
            sign(
                "urn:example:pii",
                "text/plain",
                vec![],
                b"from alice@example.com",
            ),
        ),
        (
            "pii-subject",
            "alice@example.com",
            sign("alice@example.com", json, vec![], b"{}"),
        ),
        (
            "pii-subject",
            "alice@example.com",
            sign("sips:alice@example.com", json, vec![], b"{}"),
        ),
        (
            "pii-subject",
            "15551234567",
            sign(" tel:+15551234567", json, vec![], b"{}"),
        ),
        (
            "pii-header",
            "alice@example.com",
            sign(
                "urn:example:pii",
                "application/json; contact=alice@example.com",
                vec![],
                b"{}",
            ),
        ),
        (
            "pii-header",
            "555 123 4567",
            sign(
                "urn:example:pii",
                json,
                meta("caller", "+1 555 123 4567"),
                b"{}",
            ),
        ),
        (
            "pii-header",
            "x",
            sign("urn:example:pii", json, meta("msisdn", "x"), b"{}"),
        ),
        (
            "pii-payload-value",
            "alice.smith@example.com",
            lifecycle(serde_json::json!({
                "event": "vcon_consent_revoked", "vcon_uuid": UUID, "vcon_hash": hash,
                "occurred_at": "2026-11-20T10:00:00Z",
                "consent": {"purposes": ["recording"], "reason": "asked by alice.smith@example.com"},
            })),
        ),
        (
            "pii-payload-value",
            "alice@example.com",
            lifecycle(serde_json::json!({
                "event": "vcon_sent", "vcon_uuid": UUID, "vcon_hash": hash,
                "occurred_at": "2026-11-20T10:00:00Z",
                "counterparty": {"id": "sips:alice@example.com"},
            })),
        ),
    ];
    for (rule, secret, st) in cases {
        let r = c.post_statement(st).await.unwrap();
        let p = r
            .problem()
            .unwrap_or_else(|| panic!("{rule}: {}", vcon_scitt_client::describe(&r)));
        assert_eq!((r.status, p.title.as_str()), (400, "Rejected"), "{rule}");
        assert!(
            p.detail.contains(&format!("rule \"{rule}\"")),
            "{rule}: {}",
            p.detail
        );
        assert!(
            secret.len() < 3 || !p.detail.contains(secret),
            "{rule}: the detail repeats the identifier: {}",
            p.detail
        );
    }

    // Honest statements are not caught.
    let mut honest: Vec<(&str, Vec<u8>)> = vec![
        ("hello", generic(serde_json::json!({"hello": "world"}))),
        (
            "timestamps, versions, package coordinates, digests",
            generic(serde_json::json!({
                "at": "2026-11-20T10:00:00+01:00",
                "offset": "+05:30",
                "version": "1.2.3+20261120",
                "purl": "pkg:npm/lodash@4.17.21",
                "image": "docker.io/library/nginx@sha256:0123abcd",
                "issuer": "did:web:conserver.example",
                "digest": hash,
                "microphone": "built-in",
            })),
        ),
        (
            "lifecycle with a +01:00 offset",
            lifecycle(serde_json::json!({
                "event": "vcon_consent_revoked", "vcon_uuid": UUID, "vcon_hash": hash,
                "occurred_at": "2026-11-20T11:00:00+01:00",
                "consent": {"purposes": ["recording"], "reason": "user_request"},
                "party": {"index": 0, "ref": "hmac-sha256:3q2-7w"},
            })),
        ),
    ];
    for (i, file) in [
        "ab_call_ext_rec.vcon",
        "ab_call_ext_rec_redacted.vcon",
        "ab_call_ext_rec_amended.vcon",
    ]
    .into_iter()
    .enumerate()
    {
        for hash_envelope in [false, true] {
            let spec = StatementSpec {
                occurred_at: Some("2026-11-20T10:00:00Z".into()),
                hash_envelope,
                out: Some(work.path().join(format!("{i}-{hash_envelope}.cose"))),
                ..StatementSpec::new(
                    vcon(file),
                    Event::Created,
                    repo("keys/test-issuer-es256.pk8"),
                    ISSUER.into(),
                )
            };
            honest.push((file, make(&spec)));
        }
    }
    for (what, st) in honest {
        let r = c.post_statement(st).await.unwrap();
        assert_eq!(r.status, 201, "{what}: {}", vcon_scitt_client::describe(&r));
    }
    srv.stop().await;

    // legacy_compat is the one bypass.
    let data = tempfile::tempdir().unwrap();
    let mut cfg = server_config(data.path());
    cfg.policy.legacy_compat = true;
    let srv = start(cfg, None).await.unwrap();
    let mut c = Conn::connect(&srv.url()).await.unwrap();
    let r = c
        .post_statement(generic(serde_json::json!({"tel": "+15551234567"})))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", vcon_scitt_client::describe(&r));
    srv.stop().await;
}
