//! vCon ContentHash (draft-ietf-vcon-vcon-core-03 §2.2): `<alg>-<base64url
//! without padding of the digest>` over the exact bytes, e.g. `sha512-...`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha512,
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
        }
    }

    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        let alg = match self {
            HashAlg::Sha256 => &ring::digest::SHA256,
            HashAlg::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, bytes).as_ref().to_vec()
    }

    /// COSE hash algorithm id (hash envelope label 258).
    pub fn cose_id(self) -> i64 {
        match self {
            HashAlg::Sha256 => -16,
            HashAlg::Sha512 => -44,
        }
    }

    pub fn from_cose(id: i64) -> Option<HashAlg> {
        match id {
            -16 => Some(HashAlg::Sha256),
            -44 => Some(HashAlg::Sha512),
            _ => None,
        }
    }
}

/// `sha512-<b64url>` of the exact bytes.
pub fn content_hash(alg: HashAlg, bytes: &[u8]) -> String {
    format!(
        "{}-{}",
        alg.name(),
        URL_SAFE_NO_PAD.encode(alg.digest(bytes))
    )
}

/// Parses a ContentHash string; `None` unless the algorithm is known and the
/// digest has the algorithm's length.
pub fn parse_content_hash(s: &str) -> Option<(HashAlg, Vec<u8>)> {
    let (alg, b64) = s.split_once('-')?;
    let alg = match alg {
        "sha512" => HashAlg::Sha512,
        "sha256" => HashAlg::Sha256,
        _ => return None,
    };
    if b64.contains('=') {
        return None;
    }
    let digest = URL_SAFE_NO_PAD.decode(b64).ok()?;
    let want = match alg {
        HashAlg::Sha256 => 32,
        HashAlg::Sha512 => 64,
    };
    (digest.len() == want).then_some((alg, digest))
}

/// Does `hash` (a ContentHash string) name these exact bytes?
pub fn content_hash_matches(hash: &str, bytes: &[u8]) -> bool {
    match parse_content_hash(hash) {
        Some((alg, digest)) => alg.digest(bytes) == digest,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_round_trips_and_rejects_bad_forms() {
        let h = content_hash(HashAlg::Sha512, b"hello");
        assert!(h.starts_with("sha512-"));
        assert!(content_hash_matches(&h, b"hello"));
        assert!(!content_hash_matches(&h, b"hellp"));
        assert!(parse_content_hash("sha512-abc").is_none());
        assert!(parse_content_hash("md5-AAAA").is_none());
        assert!(parse_content_hash(&format!("{h}=")).is_none());
    }
}
