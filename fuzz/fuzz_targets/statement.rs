//! Every parser a registration runs, on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vcon_scitt_core::vcon::{policy, profile};
use vcon_scitt_core::{cbor, cose, statement};

fuzz_target!(|data: &[u8]| {
    let _ = cbor::decode(data);
    let _ = cose::split(data);
    if let Ok(st) = statement::SignedStatement::parse(data, 64 * 1024) {
        let _ = st.entry_bytes();
        let _ = st.embedded_receipts();
        let _ = profile::check(&policy::PolicyConfig::default(), &st, 1_790_000_000);
        let _ = profile::check(&policy::PolicyConfig { legacy_compat: true, ..Default::default() }, &st, 0);
        let trust = vcon_scitt_core::issuers::IssuerTrust::default();
        let _ = trust.verify(&st, 1_790_000_000);
    }
    let _ = statement::transparent_statement(data, &[]);
});
