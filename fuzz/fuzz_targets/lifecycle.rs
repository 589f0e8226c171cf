//! The lifecycle payload rules on arbitrary payloads inside a well-formed,
//! unsigned statement envelope (the policy runs after signature checks, so
//! the payload is what an authenticated issuer controls).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcon_scitt_core::ciborium::value::Value;
use vcon_scitt_core::vcon::{policy, profile};
use vcon_scitt_core::{cbor, cose, statement};

fn envelope(payload: &[u8]) -> Vec<u8> {
    let claims = Value::Map(vec![
        (cbor::int(1), Value::Text("https://issuer.example".into())),
        (cbor::int(2), Value::Text("vcon://019f15a6-a752-826f-b9a2-279e0d16bc46".into())),
        (cbor::int(6), cbor::int(1_790_000_000)),
    ]);
    let protected = cbor::encode(&Value::Map(vec![
        (cbor::int(1), cbor::int(-7)),
        (cbor::int(3), Value::Text("application/vcon-lifecycle+json".into())),
        (cbor::int(4), Value::Bytes(vec![1; 32])),
        (cbor::int(15), claims),
    ]));
    cose::encode_sign1(&protected, vec![], Some(payload), &[0u8; 64])
}

fuzz_target!(|data: &[u8]| {
    let bytes = envelope(data);
    if let Ok(st) = statement::SignedStatement::parse(&bytes, 1 << 20) {
        let _ = profile::check(&policy::PolicyConfig::default(), &st, 1_790_000_000);
        let strict = policy::PolicyConfig { allow_generic: false, ..Default::default() };
        let _ = profile::check(&strict, &st, 1_790_000_000);
        let lax = policy::PolicyConfig { legacy_compat: true, ..Default::default() };
        let _ = profile::check(&lax, &st, 1_790_000_000);
    }
});
