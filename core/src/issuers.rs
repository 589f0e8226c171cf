//! Who may sign statements: a registry of issuer keys (iss → keys by kid) and
//! X.509 trust anchors for statements that carry an `x5chain`.
//!
//! Chain validation (x509-parser): every link's signature, every certificate
//! valid at registration time, issuers are CAs (basicConstraints) allowed to
//! sign certificates (keyUsage keyCertSign when present) within pathLen, the
//! leaf's keyUsage (when present) allows digitalSignature, the leaf is not a
//! CA, every signature uses SHA-256 or better and every RSA key has at least
//! 2048 bits, no critical extension this code does not enforce (so a critical
//! nameConstraints or policyConstraints is refused, not ignored), and the
//! chain ends at (or under) a configured anchor. The statement's `iss` must
//! be a URI subjectAltName of the leaf: a certificate speaks only for the
//! identities it names (see spec-notes/x509.md).
//! Not checked, by design for now: revocation (CRL/OCSP; no network at
//! registration), EKU.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as SpkiKey;

/// Smallest RSA modulus accepted anywhere in a chain.
const MIN_RSA_BITS: usize = 2048;

use crate::keys::{KeySet, PublicKey};
use crate::statement::{SignedStatement, StatementError};

/// How the issuer key was found, for the registration record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum KeySource {
    /// A registered key, by kid.
    Registry { kid: String },
    /// The leaf of an x5chain that validated to an anchor.
    X509 {
        leaf_subject: String,
        anchor_subject: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct IssuerTrust {
    /// (iss, keys) pairs; a key may be listed under its thumbprint and a kid alias.
    pub registry: Vec<(String, KeySet)>,
    /// DER trust-anchor certificates.
    pub anchors: Vec<Vec<u8>>,
}

fn rejected<T>(m: impl Into<String>) -> Result<T, StatementError> {
    Err(StatementError::Rejected(m.into()))
}

/// Reads trust anchors from PEM (any number of CERTIFICATE blocks; other
/// blocks are skipped) or, failing the PEM armour, one DER certificate. It
/// lives beside [`IssuerTrust::anchors`] because both the service's config
/// and the offline verifier load anchor files, and neither should reach into
/// the other's command line for it. Nothing is validated here: a bad
/// certificate fails later, in chain validation, with its reason.
pub fn read_anchors(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.starts_with(b"-----") {
        x509_parser::pem::Pem::iter_from_buffer(bytes)
            .filter_map(|p| p.ok())
            .filter(|p| p.label == "CERTIFICATE")
            .map(|p| p.contents)
            .collect()
    } else {
        vec![bytes.to_vec()]
    }
}

impl IssuerTrust {
    /// Keys registered for `iss`; an entry for `"*"` (set only by relying
    /// parties that pin keys themselves) applies to any issuer.
    pub fn keys_for(&self, iss: &str) -> Option<&KeySet> {
        self.registry
            .iter()
            .find(|(i, _)| i == iss)
            .or_else(|| self.registry.iter().find(|(i, _)| i == "*"))
            .map(|(_, k)| k)
    }

    pub fn add_issuer_key(&mut self, iss: &str, key: PublicKey, kid: Option<Vec<u8>>) {
        match self.registry.iter_mut().find(|(i, _)| i == iss) {
            Some((_, ks)) => ks.insert(key, kid),
            None => {
                let mut ks = KeySet::new();
                ks.insert(key, kid);
                self.registry.push((iss.to_owned(), ks));
            }
        }
    }

    /// Finds the issuer's key and checks the statement's signature with it.
    /// `now` is the registration time (Unix seconds) for certificate validity.
    pub fn verify(&self, st: &SignedStatement, now: i64) -> Result<KeySource, StatementError> {
        let mut source = None;
        if !st.x5chain.is_empty() {
            let (leaf_key, leaf_subject, anchor_subject) = self.validate_chain(st, now)?;
            st.verify_signature(&leaf_key)?;
            source = Some(KeySource::X509 {
                leaf_subject,
                anchor_subject,
            });
        } else if st.x5t.is_some() {
            return rejected("x5t (34) without the certificate: send the chain in x5chain (33)");
        }
        // RFC 9943: every registered identifier in the protected header is checked.
        if let Some(kid) = &st.kid {
            match (self.keys_for(&st.issuer), &source) {
                (Some(keys), _) => match keys.get(kid) {
                    Some(key) => {
                        st.verify_signature(key)?;
                        if source.is_none() {
                            source = Some(KeySource::Registry {
                                kid: hex::encode(kid),
                            });
                        }
                    }
                    None if source.is_some() => {}
                    None => {
                        return rejected(format!(
                            "issuer {:?} has no registered key with kid {}",
                            st.issuer,
                            hex::encode(kid)
                        ));
                    }
                },
                (None, Some(_)) => {}
                (None, None) => {
                    return rejected(format!(
                        "issuer {:?} is not registered with this service",
                        st.issuer
                    ));
                }
            }
        }
        source.ok_or_else(|| StatementError::Rejected("no issuer key could be found".into()))
    }

    fn validate_chain(
        &self,
        st: &SignedStatement,
        now: i64,
    ) -> Result<(PublicKey, String, String), StatementError> {
        if self.anchors.is_empty() {
            return rejected(
                "this service has no X.509 trust anchors configured; x5chain statements cannot be registered",
            );
        }
        let mut certs = Vec::with_capacity(st.x5chain.len());
        for (i, der) in st.x5chain.iter().enumerate() {
            let cert = match X509Certificate::from_der(der) {
                Ok((&[], c)) => c,
                Ok(_) => {
                    return Err(StatementError::Malformed(format!(
                        "x5chain certificate {i} has trailing bytes"
                    )));
                }
                Err(e) => {
                    return Err(StatementError::Malformed(format!(
                        "x5chain certificate {i} does not parse: {e}"
                    )));
                }
            };
            certs.push(cert);
        }
        if let Some((alg, hash)) = &st.x5t {
            let d = match alg {
                -16 => ring::digest::digest(&ring::digest::SHA256, &st.x5chain[0]),
                -43 => ring::digest::digest(&ring::digest::SHA384, &st.x5chain[0]),
                -44 => ring::digest::digest(&ring::digest::SHA512, &st.x5chain[0]),
                other => return rejected(format!("x5t hash algorithm {other} is not supported")),
            };
            if d.as_ref() != hash.as_slice() {
                return rejected("x5t does not match the leaf certificate in x5chain");
            }
        }
        for (i, c) in certs.iter().enumerate() {
            check_cert(c, i, now)?;
            if i > 0 {
                check_ca(c, i - 1)?;
            }
        }
        for i in 0..certs.len() - 1 {
            if certs[i].issuer() != certs[i + 1].subject() {
                return rejected(format!(
                    "x5chain certificate {i} is not issued by certificate {}",
                    i + 1
                ));
            }
            certs[i]
                .verify_signature(Some(certs[i + 1].public_key()))
                .map_err(|e| {
                    StatementError::Rejected(format!(
                        "x5chain certificate {i}'s signature does not verify: {e}"
                    ))
                })?;
        }
        let top = &certs[certs.len() - 1];
        let top_der = &st.x5chain[st.x5chain.len() - 1];
        let mut anchor_subject = None;
        for der in &self.anchors {
            let Ok((_, anchor)) = X509Certificate::from_der(der) else {
                continue;
            };
            if der == top_der {
                anchor_subject = Some(anchor.subject().to_string());
                break;
            }
            if anchor.subject() == top.issuer()
                && top.verify_signature(Some(anchor.public_key())).is_ok()
            {
                check_cert(&anchor, certs.len(), now)?;
                check_ca(&anchor, certs.len() - 1)?;
                anchor_subject = Some(anchor.subject().to_string());
                break;
            }
        }
        let anchor_subject = anchor_subject.ok_or_else(|| {
            StatementError::Rejected("x5chain does not lead to a configured trust anchor".into())
        })?;
        let leaf = &certs[0];
        if let Ok(Some(ku)) = leaf.key_usage()
            && !ku.value.digital_signature()
        {
            return rejected("the leaf certificate's keyUsage does not allow digitalSignature");
        }
        if let Ok(Some(bc)) = leaf.basic_constraints()
            && bc.value.ca
        {
            return rejected(
                "the leaf certificate is a CA (basicConstraints CA:TRUE); a CA does not sign statements",
            );
        }
        check_issuer_named(leaf, &st.issuer)?;
        let key = PublicKey::from_spki(leaf.public_key())
            .map_err(|e| StatementError::Rejected(format!("the leaf certificate's key: {e}")))?;
        Ok((key, leaf.subject().to_string(), anchor_subject))
    }
}

/// The statement's `iss` must be one of the leaf's URI subjectAltNames:
/// otherwise any certificate under an anchor could register as any issuer
/// (another's, or the service's own).
fn check_issuer_named(leaf: &X509Certificate<'_>, iss: &str) -> Result<(), StatementError> {
    let uris: Vec<&str> = match leaf.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if uris.contains(&iss) {
        return Ok(());
    }
    rejected(format!(
        "iss {iss:?} is not named by the leaf certificate (its URI subjectAltNames: {uris:?}); a certificate speaks only for the issuers it names"
    ))
}

/// SHA-1 and short RSA keys are refused wherever they appear in a chain.
fn check_algorithms(c: &X509Certificate<'_>, i: usize) -> Result<(), StatementError> {
    let alg = &c.signature_algorithm.algorithm;
    let strong = [
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ECDSA_WITH_SHA512,
        OID_SIG_ED25519,
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_PKCS1_RSASSAPSS,
    ];
    if !strong.contains(alg) {
        return rejected(format!(
            "certificate {i} ({}) is signed with a weak or unsupported algorithm ({alg}); SHA-256 or better is required",
            c.subject()
        ));
    }
    if let Ok(SpkiKey::RSA(rsa)) = c.public_key().parsed()
        && rsa.key_size() < MIN_RSA_BITS
    {
        return rejected(format!(
            "certificate {i} ({}) has a {}-bit RSA key; at least {MIN_RSA_BITS} bits are required",
            c.subject(),
            rsa.key_size()
        ));
    }
    Ok(())
}

fn check_cert(c: &X509Certificate<'_>, i: usize, now: i64) -> Result<(), StatementError> {
    check_algorithms(c, i)?;
    let v = c.validity();
    if now < v.not_before.timestamp() || now > v.not_after.timestamp() {
        return rejected(format!(
            "certificate {i} ({}) is not valid at registration time (valid {} to {})",
            c.subject(),
            v.not_before,
            v.not_after
        ));
    }
    // Only critical extensions this code enforces (or that constrain
    // nothing it relies on) pass; anything else critical — nameConstraints,
    // policyConstraints, unknown ones — is refused rather than ignored.
    for ext in c.extensions() {
        if ext.critical
            && !matches!(
                ext.parsed_extension(),
                ParsedExtension::BasicConstraints(_)
                    | ParsedExtension::KeyUsage(_)
                    | ParsedExtension::SubjectAlternativeName(_)
            )
        {
            return rejected(format!(
                "certificate {i} has a critical extension this service does not enforce ({})",
                ext.oid
            ));
        }
    }
    Ok(())
}

/// `below` = how many CA certificates sit between this one and the leaf.
fn check_ca(c: &X509Certificate<'_>, below: usize) -> Result<(), StatementError> {
    match c.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if let Some(max) = bc.value.path_len_constraint
                && below > max as usize
            {
                return rejected(format!(
                    "{} exceeds its pathLen constraint {max}",
                    c.subject()
                ));
            }
        }
        _ => {
            return rejected(format!(
                "{} issues certificates but is not a CA",
                c.subject()
            ));
        }
    }
    if let Ok(Some(ku)) = c.key_usage()
        && !ku.value.key_cert_sign()
    {
        return rejected(format!(
            "{}'s keyUsage does not allow keyCertSign",
            c.subject()
        ));
    }
    Ok(())
}
