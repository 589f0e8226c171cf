//! Micro-benchmarks of the registration hot path, each beside the baseline
//! it should be compared with (measured in the same run: this machine is
//! shared and noisy, so read ratios, not absolutes).
//!
//! `cargo bench --bench hot_path`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vcon_scitt::keys::{KeySet, SigningKey};
use vcon_scitt::merkle::{self, MemoryTree};
use vcon_scitt::receipt::{self, ServiceIdentity};
use vcon_scitt::statement::SignedStatement;
use vcon_scitt::tree_head::TreeHead;
use vcon_scitt::vcon::policy::PolicyConfig;

fn key(path: &str) -> SigningKey {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    SigningKey::from_pkcs8(&std::fs::read(p).unwrap()).unwrap()
}

fn lifecycle_statement(k: &SigningKey, iss: &str) -> Vec<u8> {
    let uuid = "019f15a6-a752-826f-b9a2-279e0d16bc46";
    let doc = vcon_scitt::vcon::profile::event_document(&vcon_scitt::vcon::profile::EventInput {
        event: Some(vcon_scitt::vcon::Event::ConsentRevoked),
        vcon_uuid: uuid.into(),
        vcon_hash: Some(vcon_scitt::vcon::content_hash(
            vcon_scitt::vcon::HashAlg::Sha512,
            b"vcon",
        )),
        occurred_at: Some("2026-11-20T10:00:00Z".into()),
        purposes: vec!["recording".into(), "transcription".into()],
        ..Default::default()
    });
    let mut b = vcon_scitt::statement::Builder::new(k, iss, &format!("vcon://{uuid}"));
    b.content_type = Some("application/vcon-lifecycle+json".into());
    b.issued_at = Some(vcon_scitt::time::now_secs());
    b.sign(&serde_json::to_vec(&doc).unwrap()).unwrap()
}

/// An unsigned COSE_Sign1 whose protected header holds `n` labels.
fn header_flood(n: i64) -> Vec<u8> {
    use ciborium::value::Value;
    let map = (0..n)
        .map(|i| (Value::Integer((1000 + i).into()), Value::Integer(0.into())))
        .collect();
    let protected = vcon_scitt::cbor::encode(&Value::Map(map));
    vcon_scitt::cbor::encode(&Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(Vec::new()),
            Value::Bytes(b"{}".to_vec()),
            Value::Bytes(vec![0; 64]),
        ])),
    ))
}

fn bench(c: &mut Criterion) {
    let es = key("keys/test-issuer-es256.pk8");
    let st_bytes = lifecycle_statement(&es, "https://conserver.test.example");
    let mut trust = vcon_scitt::issuers::IssuerTrust::default();
    trust.add_issuer_key("https://conserver.test.example", es.public(), None);
    let st = SignedStatement::parse(&st_bytes, 1 << 16).unwrap();
    let tbs = vcon_scitt::cose::sig_structure(&st.parts.protected, st.payload());
    let pk = es.public();

    let mut g = c.benchmark_group("statement");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: raw ES256 verify (ring)", |b| {
        b.iter(|| assert!(pk.verify(black_box(&tbs), &st.parts.signature)))
    });
    g.bench_function("parse (COSE + header rules)", |b| {
        b.iter(|| SignedStatement::parse(black_box(&st_bytes), 1 << 16).unwrap())
    });
    g.bench_function("parse + issuer verify", |b| {
        b.iter(|| {
            let s = SignedStatement::parse(black_box(&st_bytes), 1 << 16).unwrap();
            trust.verify(&s, vcon_scitt::time::now_secs()).unwrap()
        })
    });
    g.bench_function("policy check (lifecycle JSON)", |b| {
        b.iter(|| {
            vcon_scitt::vcon::profile::check(
                &PolicyConfig::default(),
                black_box(&st),
                vcon_scitt::time::now_secs(),
            )
            .unwrap()
        })
    });
    g.bench_function("entry bytes + leaf hash", |b| {
        b.iter(|| merkle::leaf_hash(&black_box(&st).entry_bytes()))
    });
    g.finish();

    let mut g = c.benchmark_group("merkle");
    let a = [1u8; 32];
    let z = [2u8; 32];
    g.bench_function("node hash", |b| {
        b.iter(|| merkle::node_hash(black_box(&a), black_box(&z)))
    });
    g.bench_function("leaf hash (600 B entry)", |b| {
        b.iter(|| merkle::leaf_hash(black_box(&st_bytes)))
    });
    g.finish();

    // Receipts: build and verify, against raw ES256 verification.
    let svc = key("keys/test-service-es256.pk8");
    let id = ServiceIdentity {
        issuer: "https://scitt.example".into(),
        subject: "scitt.example/log".into(),
    };
    let tree =
        MemoryTree::from_leaf_hashes((0..1000u32).map(|i| merkle::leaf_hash(&i.to_be_bytes())));
    let head = TreeHead {
        size: 1000,
        root: tree.root_at(1000),
        timestamp_ms: 1_790_000_000_000,
    };
    let sig = receipt::sign_tree_head(&svc, &id, &head).unwrap();
    let proof = tree.inclusion(777, 1000);
    let r = receipt::inclusion_receipt(&sig, 1000, 777, &proof).unwrap();
    let leaf = tree.leaf(777).unwrap();
    let mut keys = KeySet::new();
    keys.insert(svc.public(), None);
    let svc_pk = svc.public();
    let head_tbs = vcon_scitt::cose::sig_structure(
        &vcon_scitt::cose::split(&sig).unwrap().protected,
        &head.root,
    );
    let head_sig = vcon_scitt::cose::split(&sig).unwrap().signature;
    let mut g = c.benchmark_group("receipt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: raw ES256 verify (ring)", |b| {
        b.iter(|| assert!(svc_pk.verify(black_box(&head_tbs), &head_sig)))
    });
    g.bench_function("verify inclusion receipt (ES256, size 1000)", |b| {
        b.iter(|| receipt::verify_inclusion_receipt(black_box(&r), &leaf, &keys).unwrap())
    });
    g.bench_function("encode receipt from head signature + proof", |b| {
        b.iter(|| receipt::inclusion_receipt(black_box(&sig), 1000, 777, &proof).unwrap())
    });
    g.bench_function("sign tree head (ES256)", |b| {
        b.iter(|| receipt::sign_tree_head(&svc, &id, black_box(&head)).unwrap())
    });
    g.finish();

    // The worst unauthenticated input per byte: everything a request costs
    // before its signature is checked (issue 12, finding 5). A header flood
    // at the statement size cap is refused after decoding; a payload-heavy
    // statement is parsed in full.
    let mut g = c.benchmark_group("unauthenticated");
    let flood = header_flood(10_000);
    g.throughput(Throughput::Bytes(flood.len() as u64));
    g.bench_function("parse: 10,000-label header flood (refused)", |b| {
        b.iter(|| SignedStatement::parse(black_box(&flood), 1 << 16).unwrap_err())
    });
    let big = {
        let mut b =
            vcon_scitt::statement::Builder::new(&es, "https://conserver.test.example", "urn:big");
        b.content_type = Some("application/json".into());
        b.sign(&vec![b'x'; 60 * 1024]).unwrap()
    };
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("parse: 60 KiB payload", |b| {
        b.iter(|| SignedStatement::parse(black_box(&big), 1 << 16).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("cbor");
    g.bench_function("ciborium decode statement", |b| {
        b.iter(|| vcon_scitt::cbor::decode(black_box(&st_bytes)).unwrap())
    });
    g.bench_function("parse problem details", |b| {
        let p = vcon_scitt::problem::Problem::new(400, "Rejected", "x").to_cbor();
        b.iter_batched(
            || p.clone(),
            |p| vcon_scitt::problem::Problem::from_cbor(400, &p),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
