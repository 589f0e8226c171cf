//! The PII guard: one check, run on every statement (vCon or generic) before
//! it is classified, so that no contact identifier reaches the append-only
//! ledger, where it could never be erased. Only `legacy_compat` skips it (the
//! conserver's legacy statements carry a `tel:` subject by design).
//!
//! What is inspected:
//! - the subject (CWT `sub`): rule `pii-subject`;
//! - every text value and text map key in the protected header, at any depth
//!   (content type, a text kid, CWT claims other than `iss`, the -6804
//!   meta-map, private labels): rule `pii-header`;
//! - the payload when it is JSON (or CBOR by its content type): every object
//!   key by name (rule `pii-payload-key`) and every string (rule
//!   `pii-payload-value`); a UTF-8 payload that is neither is scanned as text
//!   (rule `pii-payload-value`).
//!
//! What is not: `iss` (it names the accountable signer, which the log exists
//! to record, and it is fixed by the operator's issuer registry or the
//! certificate's subjectAltName, not by the statement); byte strings (kid
//! bytes, x5chain certificates, x5t); the unprotected header (the logged
//! entry drops it); hash-envelope payloads (a digest); binary payloads that
//! are not CBOR by their content type. Phone numbers are found in the
//! international form only (`+` and 7 to 15 digits); a national number
//! ("555-123-4567") is caught only under a contact key name. The guard
//! catches identifiers a well-meaning issuer sends by mistake, in the forms
//! machines write them; an issuer set on hiding one (base64, "alice at
//! example dot com") can, and it signed what it sent.
//!
//! The scanners are small hand-written loops (no regex engine in the core,
//! which the offline verifier links): each `@`, `:` and `+` is examined once
//! with a bounded look around it, so a scan is linear in the input.

use ciborium::value::Value;

use super::policy::{PolicyRejection, reject};
use crate::cbor::{self, as_i64, map_get};
use crate::statement::{ContentType, LABEL_CWT_CLAIMS, LABEL_CWT_CLAIMS_LEGACY, SignedStatement};

/// Key names that hold a contact identifier, normalised by [`normalize_key`]
/// (so `phoneNumber`, `phone_number` and `Phone-Number` are one name).
/// Exact names, not substrings: `microphone` and `phonemes` are honest keys
/// in a vCon's analysis.
pub const PII_KEYS: [&str; 19] = [
    "tel",
    "telephone",
    "telephonenumber",
    "phone",
    "phonenumber",
    "phoneno",
    "mobile",
    "mobilenumber",
    "mobilephone",
    "cellphone",
    "msisdn",
    "fax",
    "faxnumber",
    "email",
    "emailaddress",
    "mail",
    "mailto",
    "sip",
    "sips",
];

/// URI schemes whose value is a person's address (RFC 3966, RFC 3261,
/// RFC 6068).
const SCHEMES: [&str; 4] = ["mailto", "sips", "sip", "tel"];

/// Lowercase, alphanumerics only: `E-Mail` → `email`, `phoneNumber` →
/// `phonenumber`; separators and invisible characters (a zero-width space)
/// cannot split a name past the list.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// True when `key` names a contact identifier.
pub fn is_pii_key(key: &str) -> bool {
    let k = normalize_key(key);
    PII_KEYS.contains(&k.as_str())
}

/// What kind of identifier a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `tel:`, `sip:`, `sips:` or `mailto:` URI (the scheme, lowercase).
    Uri(&'static str),
    Email,
    Phone,
}

impl Kind {
    pub fn describe(self) -> String {
        match self {
            Kind::Uri(s) => format!("a {s}: URI"),
            Kind::Email => "an e-mail address".into(),
            Kind::Phone => "a phone number".into(),
        }
    }
}

/// One identifier found in a text: where it starts (byte offset) and a
/// masked form that locates it without repeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: Kind,
    pub at: usize,
    pub masked: String,
}

/// The first three characters and an ellipsis: enough to find the value in
/// one's own document, not enough to publish it in an error message (which
/// ends up in logs and client output).
pub fn mask(s: &str) -> String {
    let mut out: String = s.chars().take(3).collect();
    out.push('…');
    out
}

/// The earliest contact identifier in `s`, if any.
pub fn scan_text(s: &str) -> Option<Hit> {
    [find_uri(s), find_email(s), find_phone(s)]
        .into_iter()
        .flatten()
        .min_by_key(|h| h.at)
}

/// The character before byte `at` does not continue a word: start of text,
/// or neither alphanumeric nor one of `also`. This is what keeps `hotel:`
/// and `example.tel:8443` from reading as `tel:` URIs, and the offset in
/// `00:00+01:00` from reading as a phone number.
fn starts_token(s: &str, at: usize, also: &str) -> bool {
    match s.get(..at).and_then(|b| b.chars().next_back()) {
        None => at == 0,
        Some(c) => !c.is_alphanumeric() && !also.contains(c),
    }
}

/// `tel:`, `sip:`, `sips:`, `mailto:` (any case) at a token start and
/// followed by an address character, anywhere in the text: a leading space,
/// a zero-width space or a prose prefix does not hide one.
fn find_uri(s: &str) -> Option<Hit> {
    let bytes = s.as_bytes();
    for (colon, _) in s.match_indices(':') {
        for scheme in SCHEMES {
            let Some(start) = colon.checked_sub(scheme.len()) else {
                continue;
            };
            let written = bytes.get(start..colon).unwrap_or_default();
            // Scheme characters (RFC 3986) before it make another scheme
            // (`x-tel:`) or a host (`example.tel:8443`).
            if !written.eq_ignore_ascii_case(scheme.as_bytes()) || !starts_token(s, start, "+-.") {
                continue;
            }
            let rest = s.get(colon + 1..).unwrap_or_default();
            if rest
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '+' || c == '%')
            {
                return Some(Hit {
                    kind: Kind::Uri(scheme),
                    at: start,
                    masked: format!("{scheme}:{}", mask(rest)),
                });
            }
        }
    }
    None
}

/// Characters of an unquoted e-mail local part that we look for (a subset
/// of RFC 5322's atext: the ones addresses actually use).
fn local_char(c: char) -> bool {
    c.is_alphanumeric() || "._%+-'".contains(c)
}

/// `local@domain.tld`: at least one alphanumeric in the local part, a domain
/// of two or more non-empty labels whose last is alphabetic (2+ letters) or
/// an IDN A-label. Package coordinates (`lodash@4.17.21`, `nginx@sha256:…`)
/// have no alphabetic top-level label and pass; URL userinfo
/// (`https://alice@host.example/`) is an account name and is refused.
fn find_email(s: &str) -> Option<Hit> {
    for (at, _) in s.match_indices('@') {
        // RFC 5321 caps the local part at 64 octets: the look-back is bounded,
        // so a text of many `@` is still scanned in linear time.
        let mut start = None;
        let mut alnum = false;
        for (i, c) in s
            .get(..at)
            .unwrap_or_default()
            .char_indices()
            .rev()
            .take(64)
        {
            if !local_char(c) {
                break;
            }
            start = Some(i);
            alnum |= c.is_alphanumeric();
        }
        let (Some(start), true) = (start, alnum) else {
            continue;
        };
        if is_domain(s.get(at + 1..).unwrap_or_default()) {
            return Some(Hit {
                kind: Kind::Email,
                at: start,
                masked: mask(s.get(start..).unwrap_or_default()),
            });
        }
    }
    None
}

/// Whether `rest` begins with a domain name (see [`find_email`]); looks at
/// most 253 characters ahead (RFC 1035's limit).
fn is_domain(rest: &str) -> bool {
    let mut end = 0;
    for (i, c) in rest.char_indices().take(253) {
        if !(c.is_alphanumeric() || c == '-' || c == '.') {
            break;
        }
        end = i + c.len_utf8();
    }
    // A sentence may end right after the address.
    let name = rest.get(..end).unwrap_or_default().trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && (tld.starts_with("xn--")
            || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)))
}

/// Separators people write between the digits of a phone number.
fn phone_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}')
}

/// A phone number in international form: `+` at a token start, a first
/// digit 1–9 (no country code starts with 0), 7 to 15 digits in all (E.164
/// allows 15), at most two separators in a row, and no letter or digit
/// right after. The token-start rule keeps the offsets of timestamps
/// (`2026-01-01T00:00:00+01:00`: the `+` follows a digit) and `+` inside
/// standard base64 (it follows a letter, a digit, `/` or `+`) out; the
/// first-digit and length rules keep `+01:00`, `+0530` and version build
/// metadata out. A `+`-signed decimal of 7+ digits in a string
/// (`"+1234567.5"`) does read as a phone number: we prefer that false
/// positive to letting `+1.5551234567` (the EPP/WHOIS format) through.
fn find_phone(s: &str) -> Option<Hit> {
    'plus: for (plus, _) in s.match_indices('+') {
        if !starts_token(s, plus, "+/.-_%\\&") {
            continue;
        }
        let rest = s.get(plus + 1..).unwrap_or_default();
        let mut digits = 0usize;
        let mut run = 0usize;
        let mut end = 0usize;
        for (i, c) in rest.char_indices() {
            if c.is_ascii_digit() {
                if digits == 0 && c == '0' {
                    continue 'plus;
                }
                digits += 1;
                if digits > 15 {
                    continue 'plus;
                }
                run = 0;
                end = i + 1;
            } else if digits > 0 && phone_separator(c) && run < 2 {
                run += 1;
            } else {
                break;
            }
        }
        let after = rest.get(end..).and_then(|r| r.chars().next());
        if (7..=15).contains(&digits) && !after.is_some_and(char::is_alphanumeric) {
            return Some(Hit {
                kind: Kind::Phone,
                at: plus,
                masked: mask(s.get(plus..).unwrap_or_default()),
            });
        }
    }
    None
}

/// The rules and wording for one part of the statement.
struct Place {
    key_rule: &'static str,
    value_rule: &'static str,
    name: &'static str,
}

const HEADER: Place = Place {
    key_rule: "pii-header",
    value_rule: "pii-header",
    name: "the protected header",
};

const PAYLOAD: Place = Place {
    key_rule: "pii-payload-key",
    value_rule: "pii-payload-value",
    name: "the payload",
};

const HINT: &str = "personal data must not enter the log; reference parties by index and HMAC (party.ref) instead (legacy_compat is off)";

/// A location for a message, cut short: the path is built from keys that
/// passed the scan, but a key may still be very long.
fn shown(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    if path.chars().count() <= 120 {
        return path.to_owned();
    }
    let mut s: String = path.chars().take(120).collect();
    s.push('…');
    s
}

/// RFC 6901 escaping of one path segment.
fn push_segment(path: &mut String, seg: &str) {
    path.push('/');
    for c in seg.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn found<T>(
    place: &Place,
    rule: &'static str,
    path: &str,
    hit: &Hit,
) -> Result<T, PolicyRejection> {
    reject(
        rule,
        format!(
            "{} holds {} at {} (\"{}\"); {HINT}",
            place.name,
            hit.kind.describe(),
            shown(path),
            hit.masked
        ),
    )
}

/// A text map key: a contact key name, or a key that is itself an
/// identifier (`{"alice@example.com": …}`).
fn check_key(place: &Place, path: &str, key: &str) -> Result<(), PolicyRejection> {
    if let Some(hit) = scan_text(key) {
        return found(place, place.key_rule, path, &hit);
    }
    if is_pii_key(key) {
        let mut here = path.to_owned();
        push_segment(&mut here, key);
        return reject(
            place.key_rule,
            format!(
                "{} has a contact-identifier key at {}; {HINT}",
                place.name,
                shown(&here)
            ),
        );
    }
    Ok(())
}

fn check_text(place: &Place, path: &str, s: &str) -> Result<(), PolicyRejection> {
    match scan_text(s) {
        Some(hit) => found(place, place.value_rule, path, &hit),
        None => Ok(()),
    }
}

/// Walks a CBOR value. Depth is bounded by the decoder ([`cbor::MAX_DEPTH`]).
fn walk_cbor(place: &Place, path: &mut String, v: &Value) -> Result<(), PolicyRejection> {
    match v {
        Value::Text(t) => check_text(place, path, t),
        Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let len = path.len();
                push_segment(path, &i.to_string());
                walk_cbor(place, path, item)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Map(m) => {
            for (k, item) in m {
                if let Value::Text(key) = k {
                    check_key(place, path, key)?;
                }
                let len = path.len();
                push_segment(path, &label_segment(k));
                walk_cbor(place, path, item)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Tag(_, inner) => walk_cbor(place, path, inner),
        _ => Ok(()),
    }
}

/// A map key as a path segment: text as is, integers in decimal.
fn label_segment(k: &Value) -> String {
    match k {
        Value::Text(t) => t.clone(),
        _ => as_i64(k)
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into()),
    }
}

/// Walks a JSON value (depth bounded by serde_json's recursion limit).
fn walk_json(
    place: &Place,
    path: &mut String,
    v: &serde_json::Value,
) -> Result<(), PolicyRejection> {
    match v {
        serde_json::Value::String(s) => check_text(place, path, s),
        serde_json::Value::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                let len = path.len();
                push_segment(path, &i.to_string());
                walk_json(place, path, item)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(m) => {
            for (key, item) in m {
                check_key(place, path, key)?;
                let len = path.len();
                push_segment(path, key);
                walk_json(place, path, item)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks one statement; see the module docs for what is and is not looked
/// at. The caller skips it when `legacy_compat` is on.
pub fn check(st: &SignedStatement) -> Result<(), PolicyRejection> {
    if let Some(hit) = scan_text(&st.subject) {
        return reject(
            "pii-subject",
            format!(
                "the subject (CWT sub) holds {} (\"{}\"); use sub = vcon://<uuid>, or another identifier that names no person (legacy_compat is off)",
                hit.kind.describe(),
                hit.masked
            ),
        );
    }
    check_header(st)?;
    check_payload(st)
}

fn check_header(st: &SignedStatement) -> Result<(), PolicyRejection> {
    let h = &st.parts.protected_map;
    // The claims the statement was parsed from: their iss is exempt (module
    // docs) and their sub was checked above under its own rule. Claims under
    // the other label, if any, are plain header values.
    let claims_label = if map_get(h, LABEL_CWT_CLAIMS).is_some() {
        LABEL_CWT_CLAIMS
    } else {
        LABEL_CWT_CLAIMS_LEGACY
    };
    let mut path = String::new();
    for (label, v) in h {
        if let Value::Text(key) = label {
            check_key(&HEADER, "", key)?;
        }
        path.clear();
        push_segment(&mut path, &label_segment(label));
        match v {
            Value::Map(claims) if as_i64(label) == Some(claims_label) => {
                for (k, c) in claims {
                    if matches!(as_i64(k), Some(1 | 2)) {
                        continue;
                    }
                    if let Value::Text(key) = k {
                        check_key(&HEADER, &path, key)?;
                    }
                    let len = path.len();
                    push_segment(&mut path, &label_segment(k));
                    walk_cbor(&HEADER, &mut path, c)?;
                    path.truncate(len);
                }
            }
            _ => walk_cbor(&HEADER, &mut path, v)?,
        }
    }
    Ok(())
}

/// `application/cbor`, `*+cbor`, or CoAP content format 60.
fn is_cbor(ct: Option<&ContentType>) -> bool {
    match ct {
        Some(ContentType::Format(f)) => *f == 60,
        Some(ContentType::Text(t)) => {
            let base = t
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            base == "application/cbor" || base.ends_with("+cbor")
        }
        None => false,
    }
}

fn check_payload(st: &SignedStatement) -> Result<(), PolicyRejection> {
    // A hash envelope's payload is a digest: nothing to read.
    if st.hash_envelope.is_some() {
        return Ok(());
    }
    let payload = st.payload();
    let mut path = String::new();
    if is_cbor(st.content_type.as_ref())
        && let Ok(v) = cbor::decode(payload)
    {
        return walk_cbor(&PAYLOAD, &mut path, &v);
    }
    // Other binary payloads are not inspected (module docs).
    let Ok(text) = std::str::from_utf8(payload) else {
        return Ok(());
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(doc) => walk_json(&PAYLOAD, &mut path, &doc),
        Err(_) => match scan_text(text) {
            Some(hit) => reject(
                PAYLOAD.value_rule,
                format!(
                    "the text payload holds {} at byte {} (\"{}\"); {HINT}",
                    hit.kind.describe(),
                    hit.at,
                    hit.masked
                ),
            ),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Kind> {
        scan_text(s).map(|h| h.kind)
    }

    #[test]
    fn keys_normalise_to_one_name() {
        for k in [
            "tel",
            "TEL",
            "phoneNumber",
            "phone_number",
            "Phone-Number",
            "e_mail",
            "E-Mail",
            "eMail",
            "email_address",
            "emailAddress",
            "mobile",
            "MSISDN",
            "sips",
            "mailto",
            "e\u{200b}mail",
            "fax",
        ] {
            assert!(is_pii_key(k), "{k}");
        }
        for k in [
            "event",
            "vcon_uuid",
            "occurred_at",
            "reason",
            "party",
            "ref",
            "microphone",
            "phonemes",
            "email_verified",
            "mailbox_size",
            "telemetry",
            "sipHash",
            "hello",
        ] {
            assert!(!is_pii_key(k), "{k}");
        }
    }

    #[test]
    fn uris_are_found_anywhere_at_a_token_start() {
        for (s, scheme) in [
            ("tel:+15551234567", "tel"),
            (" tel:+15551234567", "tel"),
            ("\u{200b}tel:5551234", "tel"),
            ("TEL:+15551234567", "tel"),
            ("sips:alice@example.com", "sips"),
            ("SIPS:alice@example.com", "sips"),
            ("sip:alice@example.com", "sip"),
            ("call sip:bob", "sip"),
            ("mailto:alice", "mailto"),
            ("contact=mailto:%61lice", "mailto"),
            ("\"tel:911\"", "tel"),
        ] {
            assert_eq!(kind(s), Some(Kind::Uri(scheme)), "{s}");
        }
        for s in [
            "hotel:grand",
            "Hôtel:grand",
            "https://shop.example.tel:8443/x",
            "x-tel:1",
            "gossip:abc",
            "the tel: scheme",
            "tel:",
            "mailto:",
            "urn:example:telephone",
        ] {
            assert_eq!(find_uri(s), None, "{s}");
        }
    }

    #[test]
    fn emails_are_found_and_package_coordinates_are_not() {
        for s in [
            "alice@example.com",
            "a@b.example",
            "Write to Alice.Smith+calls@mail.example.org.",
            "https://alice@host.example/path",
            "jörg@exämple.de",
            "x@xn--bcher-kva.xn--p1ai",
            "<bob@example.net>",
        ] {
            assert_eq!(kind(s), Some(Kind::Email), "{s}");
        }
        for s in [
            "lodash@4.17.21",
            "pkg:golang/github.com/foo/bar@v1.2.3",
            "docker.io/library/nginx@sha256:0123abcd",
            "user@localhost",
            "@example.com",
            "...@example.com",
            "a@b.c",
            "a@.com",
            "a@b..com",
            "@@@@",
        ] {
            assert_eq!(find_email(s), None, "{s}");
        }
    }

    #[test]
    fn phone_numbers_in_international_form_are_found() {
        for s in [
            "+15551234567",
            "+1 555 123 4567",
            "+1 (555) 123-4567",
            "+44 20 7946 0958",
            "+49 (0) 30 1234567",
            "+1.5551234567",
            "(+33) 1 23 45 67 89",
            "call +15551234567 now",
            "id:+15551234567",
            "\"+1-555-0100\"",
            "+1234567",
            "+123456789012345",
        ] {
            assert_eq!(kind(s), Some(Kind::Phone), "{s}");
        }
        for s in [
            "2026-01-01T00:00:00+00:00",
            "2026-11-20T10:00:00.123+01:00",
            "2026-11-20 10:00:00 +01:00",
            "offset +0530",
            "+01:00",
            "+123456",
            "+1234567890123456",
            "1.2.3+20261120",
            "abc+1234567890",
            "ab/+1234567890",
            "MIIB+12345678x",
            "+15551234567abc",
            "+0123456789",
            "application/vcon-lifecycle+json",
            "5551234567",
        ] {
            assert_eq!(find_phone(s), None, "{s}");
        }
    }

    #[test]
    fn honest_vcon_values_are_clean() {
        for s in [
            "vcon://019f15a6-a752-826f-b9a2-279e0d16bc46",
            "urn:uuid:019f15a6-a752-826f-b9a2-279e0d16bc46",
            "https://conserver.test.example",
            "did:web:conserver.example",
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:00:00+01:00",
            "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg_SpIdNs6c5H0NE8XYXysP-DGNKHfuwvY7kxvUdBeoGlODJ6-SfaPg",
            "hmac-sha256:3q2-7w",
            "application/vcon-lifecycle+json",
            "application/vcon",
            "vcon_consent_revoked",
            "user_request",
            "erasure_request",
            "recording",
            "lawful_basis",
        ] {
            assert_eq!(scan_text(s), None, "{s}");
        }
    }

    #[test]
    fn hits_mask_the_identifier_and_report_the_earliest() {
        let h = scan_text("reason: ask alice@example.com or +15551234567").unwrap();
        assert_eq!((h.kind, h.at, h.masked.as_str()), (Kind::Email, 12, "ali…"));
        let h = scan_text(" tel:+15551234567").unwrap();
        assert_eq!(
            (h.kind, h.at, h.masked.as_str()),
            (Kind::Uri("tel"), 1, "tel:+15…")
        );
        let h = scan_text("+1 555 123 4567").unwrap();
        assert_eq!(h.masked, "+1 …");
        assert_eq!(mask("ab"), "ab…");
    }

    #[test]
    fn scans_stay_linear_on_hostile_texts() {
        // Many `@`, `:` and `+` in 64 KiB: each is looked at with a bounded
        // window, so these finish quickly (a quadratic scan would not).
        for s in [
            "a@".repeat(32 * 1024),
            format!("{}@", "a".repeat(64 * 1024)),
            "+1".repeat(32 * 1024),
            "tel".repeat(20 * 1024) + ":",
            ":".repeat(64 * 1024),
            format!("a@{}", "b.".repeat(32 * 1024)),
        ] {
            let t = std::time::Instant::now();
            let _ = scan_text(&s);
            assert!(t.elapsed() < std::time::Duration::from_secs(1));
        }
    }

    use crate::statement::Builder;

    fn statement(
        sub: &str,
        ct: Option<&str>,
        extra: Vec<(i64, Value)>,
        payload: &[u8],
    ) -> SignedStatement {
        let key = crate::keys::SigningKey::generate(crate::keys::Alg::Ed25519)
            .unwrap()
            .0;
        let mut b = Builder::new(&key, "https://issuer.example", sub);
        b.content_type = ct.map(str::to_owned);
        b.extra = extra;
        let bytes = b.sign(payload).unwrap();
        SignedStatement::parse(&bytes, usize::MAX).unwrap()
    }

    fn rule(st: &SignedStatement) -> Option<&'static str> {
        check(st).err().map(|e| e.rule)
    }

    #[test]
    fn every_part_of_a_statement_is_checked() {
        let json = Some("application/json");
        let t = |m: &[(&str, Value)]| {
            Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::Text((*k).into()), v.clone()))
                    .collect(),
            )
        };
        let cases: Vec<(SignedStatement, Option<&str>)> = vec![
            (
                statement("urn:x", json, vec![], br#"{"hello":"world"}"#),
                None,
            ),
            (
                statement("alice@example.com", json, vec![], b"{}"),
                Some("pii-subject"),
            ),
            (
                statement(" tel:+15551234567", json, vec![], b"{}"),
                Some("pii-subject"),
            ),
            (
                statement(
                    "urn:x",
                    Some("application/json; by=alice@example.com"),
                    vec![],
                    b"{}",
                ),
                Some("pii-header"),
            ),
            (
                statement(
                    "urn:x",
                    json,
                    vec![(-6804, t(&[("phoneNumber", Value::Text("x".into()))]))],
                    b"{}",
                ),
                Some("pii-header"),
            ),
            (
                statement(
                    "urn:x",
                    json,
                    vec![(-6804, t(&[("note", Value::Text("+15551234567".into()))]))],
                    b"{}",
                ),
                Some("pii-header"),
            ),
            (
                statement(
                    "urn:x",
                    json,
                    vec![(
                        -70001,
                        Value::Array(vec![Value::Text("sip:bob@example.com".into())]),
                    )],
                    b"{}",
                ),
                Some("pii-header"),
            ),
            (
                statement("urn:x", json, vec![], br#"{"a":{"e_mail":null}}"#),
                Some("pii-payload-key"),
            ),
            (
                statement("urn:x", json, vec![], br#"{"alice@example.com":1}"#),
                Some("pii-payload-key"),
            ),
            (
                statement("urn:x", json, vec![], br#"{"a":["x","+44 20 7946 0958"]}"#),
                Some("pii-payload-value"),
            ),
            (
                statement(
                    "urn:x",
                    Some("text/plain"),
                    vec![],
                    b"call alice@example.com",
                ),
                Some("pii-payload-value"),
            ),
            (
                statement("urn:x", None, vec![], br#"["tel:+15551234567"]"#),
                Some("pii-payload-value"),
            ),
            (
                statement(
                    "urn:x",
                    Some("application/cbor"),
                    vec![],
                    &cbor::encode(&t(&[("tel", cbor::int(1))])),
                ),
                Some("pii-payload-key"),
            ),
            (
                statement(
                    "urn:x",
                    Some("application/example+cbor"),
                    vec![],
                    &cbor::encode(&t(&[("n", Value::Text("+15551234567".into()))])),
                ),
                Some("pii-payload-value"),
            ),
            // Not inspected: binary payloads, CBOR payloads not labelled CBOR.
            (
                statement(
                    "urn:x",
                    Some("application/octet-stream"),
                    vec![],
                    &[0xff, 0xfe, b'@'],
                ),
                None,
            ),
            (
                statement(
                    "urn:x",
                    Some("application/octet-stream"),
                    vec![],
                    &cbor::encode(&t(&[("tel", cbor::int(1))])),
                ),
                None,
            ),
            (
                statement(
                    "urn:x",
                    json,
                    vec![],
                    br#"{"at":"2026-11-20T10:00:00+01:00","n":"+0530"}"#,
                ),
                None,
            ),
        ];
        for (i, (st, want)) in cases.iter().enumerate() {
            assert_eq!(rule(st), *want, "case {i}: {:?}", check(st));
        }
    }

    #[test]
    fn the_issuer_is_exempt_and_claims_under_the_other_label_are_not() {
        let key = crate::keys::SigningKey::generate(crate::keys::Alg::Ed25519)
            .unwrap()
            .0;
        let b = Builder::new(&key, "mailto:registry@example.com", "urn:x");
        let st = SignedStatement::parse(&b.sign(b"{}").unwrap(), usize::MAX).unwrap();
        assert_eq!(check(&st), Ok(()));
        let mut b = Builder::new(&key, "https://issuer.example", "urn:x");
        b.extra.push((
            LABEL_CWT_CLAIMS_LEGACY,
            Value::Map(vec![(
                cbor::int(1),
                Value::Text("mailto:alice@example.com".into()),
            )]),
        ));
        let st = SignedStatement::parse(&b.sign(b"{}").unwrap(), usize::MAX).unwrap();
        assert_eq!(check(&st).map_err(|e| e.rule), Err("pii-header"));
    }

    #[test]
    fn rejections_say_where_and_never_repeat_the_identifier() {
        let st = statement(
            "urn:x",
            Some("application/json"),
            vec![],
            br#"{"consent":{"reason":"customer alice.smith@example.com asked"}}"#,
        );
        let e = check(&st).unwrap_err();
        assert_eq!(e.rule, "pii-payload-value");
        assert!(e.detail.contains("/consent/reason"), "{}", e.detail);
        assert!(e.detail.contains("\"ali…\""), "{}", e.detail);
        assert!(!e.detail.contains("alice.smith"), "{}", e.detail);
        let st = statement("sips:alice@example.com", None, vec![], b"{}");
        let e = check(&st).unwrap_err();
        assert!(!e.detail.contains("alice"), "{}", e.detail);
        let st = statement(
            "urn:x",
            None,
            vec![],
            br#"{"a/b":{"phone_number":"5551234567"}}"#,
        );
        let e = check(&st).unwrap_err();
        assert!(e.detail.contains("/a~1b/phone_number"), "{}", e.detail);
        assert!(!e.detail.contains("5551234567"), "{}", e.detail);
    }
}
