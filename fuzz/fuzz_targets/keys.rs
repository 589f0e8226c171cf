//! Key material a relying party is handed: COSE_Key(Set), JWK(S), PEM.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vcon_scitt_core::keys::KeySet::parse_any(data);
    let _ = vcon_scitt_core::keys::SigningKey::from_pkcs8_any(data);
    let _ = vcon_scitt_core::issuers::read_anchors(data);
});
