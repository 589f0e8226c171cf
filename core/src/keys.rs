//! Keys: the service's signing key, public keys of the service and issuers,
//! and their encodings (COSE_Key, COSE_KeySet, JWK, PEM/SPKI). All crypto is
//! ring; all CBOR is ciborium/coset.
//!
//! A key's `kid` is its RFC 9679 COSE Key Thumbprint: SHA-256 over the
//! deterministic CBOR of the required public members only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ciborium::value::{Integer, Value};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Signature algorithms we accept, with their COSE ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Alg {
    /// ECDSA P-256 SHA-256, as -7 (ES256) or -9 (ESP256).
    P256,
    /// ECDSA P-384 SHA-384, as -35 (ES384) or -51 (ESP384).
    P384,
    /// Ed25519, as -8 (EdDSA) or -19 (Ed25519).
    Ed25519,
}

/// One COSE algorithm id we accept on a statement or receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedAlg {
    /// The IANA COSE algorithm id.
    pub id: i64,
    /// Its IANA name, as published in the policy document and error messages.
    pub name: &'static str,
    /// The key type and hash that verify it.
    pub alg: Alg,
}

/// The COSE algorithms we accept, in the order we publish them. This is the
/// one list: parsing ([`Alg::from_cose`]), the rejection text of an
/// unsupported alg ([`supported_algs_text`]) and the service's policy
/// document all read it, so they cannot disagree. The fully specified ids
/// (ESP256, ESP384, Ed25519) verify exactly as their polymorphic twins.
pub const SUPPORTED_ALGS: [SupportedAlg; 6] = [
    SupportedAlg {
        id: -7,
        name: "ES256",
        alg: Alg::P256,
    },
    SupportedAlg {
        id: -9,
        name: "ESP256",
        alg: Alg::P256,
    },
    SupportedAlg {
        id: -35,
        name: "ES384",
        alg: Alg::P384,
    },
    SupportedAlg {
        id: -51,
        name: "ESP384",
        alg: Alg::P384,
    },
    SupportedAlg {
        id: -8,
        name: "EdDSA",
        alg: Alg::Ed25519,
    },
    SupportedAlg {
        id: -19,
        name: "Ed25519",
        alg: Alg::Ed25519,
    },
];

/// "ES256 (-7), ESP256 (-9), …, EdDSA (-8) or Ed25519 (-19)": the
/// supported list for a person reading a rejection.
pub fn supported_algs_text() -> String {
    let items: Vec<String> = SUPPORTED_ALGS
        .iter()
        .map(|a| format!("{} ({})", a.name, a.id))
        .collect();
    match items.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

impl Alg {
    /// Maps a COSE algorithm id; `None` for anything we do not support.
    pub fn from_cose(id: i64) -> Option<Alg> {
        SUPPORTED_ALGS.iter().find(|a| a.id == id).map(|a| a.alg)
    }

    /// The id we write when signing.
    pub fn cose_id(self) -> i64 {
        match self {
            Alg::P256 => -7,
            Alg::P384 => -35,
            Alg::Ed25519 => -8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::P256 => "ES256",
            Alg::P384 => "ES384",
            Alg::Ed25519 => "EdDSA",
        }
    }

    fn ring_verify(self) -> &'static dyn signature::VerificationAlgorithm {
        match self {
            Alg::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            Alg::Ed25519 => &signature::ED25519,
        }
    }
}

/// A name given for a service key algorithm is not one we can generate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key algorithm {0:?} (es256 or ed25519)")]
pub struct UnknownAlg(String);

/// Parses the key algorithm names an operator types (`--alg`, `key_alg` in
/// the config), case-insensitively: `es256`, `p256`, `p-256`, `ed25519`,
/// `eddsa`. P-384 is deliberately not accepted: it is verify-only here
/// ([`SigningKey::generate`] cannot make one), so naming it must fail at
/// parse time rather than at key generation.
impl std::str::FromStr for Alg {
    type Err = UnknownAlg;

    fn from_str(s: &str) -> Result<Alg, UnknownAlg> {
        match s.to_ascii_lowercase().as_str() {
            "es256" | "p256" | "p-256" => Ok(Alg::P256),
            "ed25519" | "eddsa" => Ok(Alg::Ed25519),
            other => Err(UnknownAlg(other.to_owned())),
        }
    }
}

/// Human name of a COSE algorithm id, for error messages.
pub fn cose_alg_name(id: i64) -> String {
    let known = match id {
        -7 => "ES256",
        -9 => "ESP256",
        -35 => "ES384",
        -51 => "ESP384",
        -36 => "ES512",
        -52 => "ESP512",
        -8 => "EdDSA",
        -19 => "Ed25519",
        -37 => "PS256",
        -38 => "PS384",
        -39 => "PS512",
        -257 => "RS256",
        -48 => "ML-DSA-44",
        -49 => "ML-DSA-65",
        -50 => "ML-DSA-87",
        5 => "HMAC 256/256",
        _ => "",
    };
    if known.is_empty() {
        format!("alg {id}")
    } else {
        format!("{known} ({id})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Malformed(String),
    #[error("unsupported key type: {0}")]
    Unsupported(String),
    #[error("key generation failed")]
    Generation,
    #[error("I/O on {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

/// A public verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub alg: Alg,
    /// SEC1 uncompressed point (EC) or the 32-byte key (Ed25519).
    pub bytes: Vec<u8>,
}

impl PublicKey {
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(self.alg.ring_verify(), &self.bytes)
            .verify(msg, sig)
            .is_ok()
    }

    fn coord_len(&self) -> usize {
        match self.alg {
            Alg::P256 => 32,
            Alg::P384 => 48,
            Alg::Ed25519 => 32,
        }
    }

    /// RFC 9679 thumbprint input: required members, deterministic order
    /// (1 kty, -1 crv, -2 x, -3 y sort as 0x01, 0x20, 0x21, 0x22).
    fn required_members(&self) -> Vec<(Value, Value)> {
        let i = |n: i64| Value::Integer(Integer::from(n));
        match self.alg {
            Alg::Ed25519 => vec![
                (i(1), i(1)),
                (i(-1), i(6)),
                (i(-2), Value::Bytes(self.bytes.clone())),
            ],
            Alg::P256 | Alg::P384 => {
                let n = self.coord_len();
                let crv = if self.alg == Alg::P256 { 1 } else { 2 };
                let (x, y) = if self.bytes.len() == 1 + 2 * n {
                    (self.bytes[1..1 + n].to_vec(), self.bytes[1 + n..].to_vec())
                } else {
                    (Vec::new(), Vec::new())
                };
                vec![
                    (i(1), i(2)),
                    (i(-1), i(crv)),
                    (i(-2), Value::Bytes(x)),
                    (i(-3), Value::Bytes(y)),
                ]
            }
        }
    }

    /// RFC 9679 COSE Key Thumbprint (SHA-256).
    pub fn thumbprint(&self) -> Vec<u8> {
        let bytes = cbor_bytes(&Value::Map(self.required_members()));
        ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec()
    }

    /// COSE_Key map with kid and alg (what `/.well-known/scitt-keys` serves).
    pub fn to_cose_key(&self) -> Value {
        let mut m = self.required_members();
        m.push((Value::Integer(2.into()), Value::Bytes(self.thumbprint())));
        m.push((
            Value::Integer(3.into()),
            Value::Integer(self.alg.cose_id().into()),
        ));
        Value::Map(m)
    }

    pub fn from_cose_key(v: &Value) -> Result<PublicKey, KeyError> {
        let Value::Map(m) = v else {
            return Err(KeyError::Malformed("COSE_Key is not a map".into()));
        };
        let get = |label: i64| {
            m.iter()
                .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == label as i128))
                .map(|(_, v)| v)
        };
        let int = |label: i64| -> Option<i64> {
            match get(label) {
                Some(Value::Integer(i)) => i64::try_from(i128::from(*i)).ok(),
                _ => None,
            }
        };
        let bytes = |label: i64| -> Option<Vec<u8>> {
            match get(label) {
                Some(Value::Bytes(b)) => Some(b.clone()),
                _ => None,
            }
        };
        let kty = int(1).ok_or_else(|| KeyError::Malformed("COSE_Key has no kty".into()))?;
        let crv = int(-1).ok_or_else(|| KeyError::Malformed("COSE_Key has no crv".into()))?;
        let x = bytes(-2).ok_or_else(|| KeyError::Malformed("COSE_Key has no x".into()))?;
        let key = match (kty, crv) {
            (1, 6) => PublicKey {
                alg: Alg::Ed25519,
                bytes: x,
            },
            (2, 1) | (2, 2) => {
                let y =
                    bytes(-3).ok_or_else(|| KeyError::Malformed("EC2 COSE_Key has no y".into()))?;
                let alg = if crv == 1 { Alg::P256 } else { Alg::P384 };
                let mut b = vec![0x04];
                b.extend_from_slice(&x);
                b.extend_from_slice(&y);
                PublicKey { alg, bytes: b }
            }
            _ => return Err(KeyError::Unsupported(format!("kty {kty} crv {crv}"))),
        };
        key.check_shape()?;
        Ok(key)
    }

    fn check_shape(&self) -> Result<(), KeyError> {
        let want = match self.alg {
            Alg::Ed25519 => 32,
            _ => 1 + 2 * self.coord_len(),
        };
        if self.bytes.len() != want {
            return Err(KeyError::Malformed(format!(
                "{} key of {} bytes",
                self.alg.name(),
                self.bytes.len()
            )));
        }
        Ok(())
    }

    /// JWK (RFC 7517) with `kid` = base64url thumbprint.
    pub fn to_jwk(&self) -> serde_json::Value {
        let kid = B64URL.encode(self.thumbprint());
        match self.alg {
            Alg::Ed25519 => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(&self.bytes),
                "kid": kid, "alg": "EdDSA", "use": "sig"
            }),
            Alg::P256 | Alg::P384 => {
                let n = self.coord_len();
                let (crv, alg) = if self.alg == Alg::P256 {
                    ("P-256", "ES256")
                } else {
                    ("P-384", "ES384")
                };
                serde_json::json!({
                    "kty": "EC", "crv": crv,
                    "x": B64URL.encode(&self.bytes[1..1 + n]), "y": B64URL.encode(&self.bytes[1 + n..]),
                    "kid": kid, "alg": alg, "use": "sig"
                })
            }
        }
    }

    pub fn from_jwk(j: &serde_json::Value) -> Result<PublicKey, KeyError> {
        let s = |k: &str| j.get(k).and_then(|v| v.as_str());
        let b = |k: &str| -> Result<Vec<u8>, KeyError> {
            let v = s(k).ok_or_else(|| KeyError::Malformed(format!("JWK has no {k}")))?;
            B64URL
                .decode(v.trim_end_matches('='))
                .map_err(|e| KeyError::Malformed(format!("JWK {k}: {e}")))
        };
        let key = match (s("kty"), s("crv")) {
            (Some("OKP"), Some("Ed25519")) => PublicKey {
                alg: Alg::Ed25519,
                bytes: b("x")?,
            },
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                let alg = if crv == "P-256" { Alg::P256 } else { Alg::P384 };
                let mut bytes = vec![0x04];
                bytes.extend(b("x")?);
                bytes.extend(b("y")?);
                PublicKey { alg, bytes }
            }
            (kty, crv) => {
                return Err(KeyError::Unsupported(format!(
                    "JWK kty {kty:?} crv {crv:?}"
                )));
            }
        };
        key.check_shape()?;
        Ok(key)
    }

    /// From a DER SubjectPublicKeyInfo (PEM "PUBLIC KEY" or a certificate's).
    pub fn from_spki(
        spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    ) -> Result<PublicKey, KeyError> {
        use x509_parser::oid_registry as oids;
        let alg_oid = &spki.algorithm.algorithm;
        let bytes = spki.subject_public_key.data.to_vec();
        let alg = if *alg_oid == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .ok_or_else(|| KeyError::Malformed("EC key without a named curve".into()))?;
            if curve == oids::OID_EC_P256 {
                Alg::P256
            } else if curve == oids::OID_NIST_EC_P384 {
                Alg::P384
            } else {
                return Err(KeyError::Unsupported(format!("EC curve {curve}")));
            }
        } else if *alg_oid == oids::OID_SIG_ED25519 {
            Alg::Ed25519
        } else {
            return Err(KeyError::Unsupported(format!(
                "public key algorithm {alg_oid}"
            )));
        };
        let key = PublicKey { alg, bytes };
        key.check_shape()?;
        Ok(key)
    }

    /// From PEM text holding "PUBLIC KEY" or "CERTIFICATE" blocks (first one).
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, KeyError> {
        use x509_parser::prelude::FromDer;
        for pem in x509_parser::pem::Pem::iter_from_buffer(text) {
            let pem = pem.map_err(|e| KeyError::Malformed(format!("PEM: {e}")))?;
            match pem.label.as_str() {
                "PUBLIC KEY" => {
                    let (_, spki) =
                        x509_parser::x509::SubjectPublicKeyInfo::from_der(&pem.contents)
                            .map_err(|e| KeyError::Malformed(format!("SPKI: {e}")))?;
                    return PublicKey::from_spki(&spki);
                }
                "CERTIFICATE" => {
                    let (_, cert) =
                        x509_parser::certificate::X509Certificate::from_der(&pem.contents)
                            .map_err(|e| KeyError::Malformed(format!("certificate: {e}")))?;
                    return PublicKey::from_spki(cert.public_key());
                }
                _ => continue,
            }
        }
        Err(KeyError::Malformed(
            "no PUBLIC KEY or CERTIFICATE block in PEM".into(),
        ))
    }
}

/// A set of public keys addressed by kid (thumbprint): the service's keys as
/// a relying party holds them, or an issuer's keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub keys: Vec<(Vec<u8>, PublicKey)>,
}

impl KeySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under its thumbprint and, if given, an extra kid alias.
    pub fn insert(&mut self, key: PublicKey, kid: Option<Vec<u8>>) {
        let tp = key.thumbprint();
        if let Some(k) = kid
            && k != tp
        {
            self.keys.push((k, key.clone()));
        }
        if !self.keys.iter().any(|(k, _)| *k == tp) {
            self.keys.push((tp, key));
        }
    }

    /// The key a kid names: the kid as given, else the same kid in its
    /// other spelling. A kid is bytes in COSE and text in JOSE; this
    /// service's kid is the RFC 9679 thumbprint, 32 bytes in COSE (receipts,
    /// COSE_KeySet) and their base64url without padding in JOSE (`/jwks`)
    /// and URLs. A client that carries the text form as the kid bytes (as
    /// the conserver link and @transmute/cose's examples do with text kids)
    /// names the same key: bytes that are base64url text are also looked up
    /// decoded, and other bytes also base64url-encoded.
    pub fn get(&self, kid: &[u8]) -> Option<&PublicKey> {
        use base64::Engine;
        let find = |k: &[u8]| self.keys.iter().find(|(x, _)| x == k).map(|(_, v)| v);
        find(kid).or_else(|| {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            std::str::from_utf8(kid)
                .ok()
                .and_then(|t| b64.decode(t).ok())
                .and_then(|raw| find(&raw))
                .or_else(|| find(b64.encode(kid).as_bytes()))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// COSE_KeySet: CBOR array of COSE_Key maps.
    pub fn to_cose_keyset(&self) -> Vec<u8> {
        let mut seen: Vec<Vec<u8>> = Vec::new();
        let mut out = Vec::new();
        for (_, k) in &self.keys {
            let tp = k.thumbprint();
            if !seen.contains(&tp) {
                out.push(k.to_cose_key());
                seen.push(tp);
            }
        }
        cbor_bytes(&Value::Array(out))
    }

    /// Parses a COSE_KeySet, a single COSE_Key, a JWK or JWK Set (JSON), or
    /// PEM: whatever a relying party was handed.
    pub fn parse_any(bytes: &[u8]) -> Result<KeySet, KeyError> {
        let mut set = KeySet::new();
        let trimmed = bytes
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .copied()
            .next();
        match trimmed {
            Some(b'{') => {
                let j: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| KeyError::Malformed(format!("JSON: {e}")))?;
                let list = match j.get("keys").and_then(|k| k.as_array()) {
                    Some(a) => a.clone(),
                    None => vec![j.clone()],
                };
                for jwk in &list {
                    let key = PublicKey::from_jwk(jwk)?;
                    let kid = jwk
                        .get("kid")
                        .and_then(|v| v.as_str())
                        .map(|s| s.as_bytes().to_vec());
                    set.insert(key, kid);
                }
            }
            Some(b'-') => set.insert(PublicKey::from_pem(bytes)?, None),
            _ => {
                let v: Value =
                    crate::cbor::decode(bytes).map_err(|e| KeyError::Malformed(e.to_string()))?;
                let list = match v {
                    Value::Array(a) => a,
                    m @ Value::Map(_) => vec![m],
                    _ => {
                        return Err(KeyError::Malformed(
                            "neither a COSE_Key nor a COSE_KeySet".into(),
                        ));
                    }
                };
                for k in &list {
                    let key = PublicKey::from_cose_key(k)?;
                    let kid = match k {
                        Value::Map(m) => m.iter().find_map(|(l, v)| match (l, v) {
                            (Value::Integer(i), Value::Bytes(b)) if i128::from(*i) == 2 => {
                                Some(b.clone())
                            }
                            _ => None,
                        }),
                        _ => None,
                    };
                    set.insert(key, kid);
                }
            }
        }
        if set.is_empty() {
            return Err(KeyError::Malformed("no keys found".into()));
        }
        Ok(set)
    }
}

/// The service's private signing key.
pub enum SigningKey {
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, kid {})",
            self.alg().name(),
            hex::encode(self.public().thumbprint())
        )
    }
}

impl SigningKey {
    /// Generates a key and returns it with its PKCS#8 document.
    pub fn generate(alg: Alg) -> Result<(SigningKey, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Alg::P256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
            Alg::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
            Alg::P384 => return Err(KeyError::Unsupported("P-384 service keys".into())),
        };
        Ok((SigningKey::from_pkcs8(&pkcs8)?, pkcs8))
    }

    /// Loads PKCS#8 (DER) holding a P-256 or Ed25519 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let rng = SystemRandom::new();
        if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            return Ok(SigningKey::P256(k));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(SigningKey::Ed25519(k));
        }
        Err(KeyError::Malformed(
            "not a PKCS#8 P-256 or Ed25519 private key".into(),
        ))
    }

    /// Loads PKCS#8 from DER or PEM ("PRIVATE KEY") bytes.
    pub fn from_pkcs8_any(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        if bytes.starts_with(b"-----") {
            for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
                let pem = pem.map_err(|e| KeyError::Malformed(format!("PEM: {e}")))?;
                if pem.label == "PRIVATE KEY" {
                    return Self::from_pkcs8(&pem.contents);
                }
            }
            return Err(KeyError::Malformed("no PRIVATE KEY block in PEM".into()));
        }
        Self::from_pkcs8(bytes)
    }

    pub fn alg(&self) -> Alg {
        match self {
            SigningKey::P256(_) => Alg::P256,
            SigningKey::Ed25519(_) => Alg::Ed25519,
        }
    }

    pub fn public(&self) -> PublicKey {
        let bytes = match self {
            SigningKey::P256(k) => k.public_key().as_ref().to_vec(),
            SigningKey::Ed25519(k) => k.public_key().as_ref().to_vec(),
        };
        PublicKey {
            alg: self.alg(),
            bytes,
        }
    }

    pub fn kid(&self) -> Vec<u8> {
        self.public().thumbprint()
    }

    /// Signs `msg`: fixed-size r‖s for ECDSA (COSE, RFC 9053), raw for Ed25519.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            SigningKey::P256(k) => {
                let rng = SystemRandom::new();
                k.sign(&rng, msg)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| KeyError::Generation)
            }
            SigningKey::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

/// Writes a private key file readable by its owner only (0600), creating it
/// exclusively so an existing key is never overwritten.
pub fn write_private_key(path: &std::path::Path, pkcs8: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let io = |err| KeyError::Io {
        path: path.display().to_string(),
        err,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(pkcs8).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

pub fn b64url(b: &[u8]) -> String {
    B64URL.encode(b)
}

pub fn from_b64url(s: &str) -> Option<Vec<u8>> {
    B64URL.decode(s.trim_end_matches('=')).ok()
}

fn cbor_bytes(v: &Value) -> Vec<u8> {
    crate::cbor::encode(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_list_drives_parsing_and_its_text() {
        for a in SUPPORTED_ALGS {
            assert_eq!(Alg::from_cose(a.id), Some(a.alg));
            assert_eq!(cose_alg_name(a.id), format!("{} ({})", a.name, a.id));
        }
        assert_eq!(Alg::from_cose(-36), None);
        assert_eq!(
            supported_algs_text(),
            "ES256 (-7), ESP256 (-9), ES384 (-35), ESP384 (-51), EdDSA (-8) or Ed25519 (-19)"
        );
    }

    #[test]
    fn key_algorithm_names_parse_as_before() {
        for (s, a) in [
            ("es256", Alg::P256),
            ("P-256", Alg::P256),
            ("p256", Alg::P256),
            ("Ed25519", Alg::Ed25519),
            ("EDDSA", Alg::Ed25519),
        ] {
            assert_eq!(s.parse::<Alg>(), Ok(a));
        }
        assert_eq!(
            "ES384".parse::<Alg>().map_err(|e| e.to_string()),
            Err("unknown key algorithm \"es384\" (es256 or ed25519)".to_owned())
        );
    }

    #[test]
    fn rfc9679_thumbprint_known_answer() {
        // RFC 9679 §6 example key (EC2 P-256) and its thumbprint.
        let x = hex::decode("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d")
            .unwrap();
        let y = hex::decode("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c")
            .unwrap();
        let mut bytes = vec![4];
        bytes.extend(&x);
        bytes.extend(&y);
        let key = PublicKey {
            alg: Alg::P256,
            bytes,
        };
        assert_eq!(
            hex::encode(key.thumbprint()),
            "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec"
        );
    }

    #[test]
    fn keys_round_trip_through_every_encoding() {
        for alg in [Alg::P256, Alg::Ed25519] {
            let (sk, pkcs8) = SigningKey::generate(alg).unwrap();
            let pk = sk.public();
            assert_eq!(SigningKey::from_pkcs8(&pkcs8).unwrap().public(), pk);
            let set_bytes = {
                let mut s = KeySet::new();
                s.insert(pk.clone(), None);
                s.to_cose_keyset()
            };
            let back = KeySet::parse_any(&set_bytes).unwrap();
            assert_eq!(back.get(&pk.thumbprint()), Some(&pk));
            let jwk = serde_json::to_vec(&serde_json::json!({"keys": [pk.to_jwk()]})).unwrap();
            let back = KeySet::parse_any(&jwk).unwrap();
            assert_eq!(back.get(&pk.thumbprint()), Some(&pk));
            let sig = sk.sign(b"msg").unwrap();
            assert!(pk.verify(b"msg", &sig));
            assert!(!pk.verify(b"msh", &sig));
        }
    }
}
