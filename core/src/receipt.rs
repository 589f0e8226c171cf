//! COSE Receipts (RFC 9942, vds 1 = RFC9162_SHA256) and the tree-head
//! signature they share.
//!
//! The service signs each tree head exactly once: a COSE_Sign1 whose payload
//! is the detached 32-byte root and whose protected header is
//! `{1: alg, 4: kid, 15: {1: iss, 2: sub, 6: iat}, 395: 1, -65537: tree_size}`.
//! Every receipt at that size is that object plus an unprotected
//! `396: {-1: [bstr .cbor [tree_size, leaf_index, [path]]]}` (or `-2` for a
//! consistency receipt), so a batch costs one signature however many receipts
//! are handed out. The tree size is bound under the signature by the private
//! label -65537; without it a receipt's size would be malleable.

use ciborium::value::Value;

use crate::cbor::{self, as_i64, as_u64, int, map_get};
use crate::keys::{Alg, KeySet, SigningKey, cose_alg_name};
use crate::merkle::{self, Hash};
use crate::tree_head::TreeHead;

pub const LABEL_ALG: i64 = 1;
pub const LABEL_CRIT: i64 = 2;
pub const LABEL_KID: i64 = 4;
pub const LABEL_CWT_CLAIMS: i64 = 15;
pub const LABEL_RECEIPTS: i64 = 394;
pub const LABEL_VDS: i64 = 395;
pub const LABEL_VDP: i64 = 396;
/// Private-use header label binding the tree size (documented in proto/).
pub const LABEL_TREE_SIZE: i64 = -65537;
pub const VDS_RFC9162_SHA256: i64 = 1;
pub const PROOF_INCLUSION: i64 = -1;
pub const PROOF_CONSISTENCY: i64 = -2;

/// Identity the service writes into every receipt's CWT claims.
#[derive(Debug, Clone)]
pub struct ServiceIdentity {
    /// `iss`: the service URL.
    pub issuer: String,
    /// `sub`: the log's identity (origin).
    pub subject: String,
}

/// Builds the protected header bytes for a tree head (deterministic order).
fn head_protected(alg: Alg, kid: &[u8], id: &ServiceIdentity, head: &TreeHead) -> Vec<u8> {
    let claims = Value::Map(vec![
        (int(1), Value::Text(id.issuer.clone())),
        (int(2), Value::Text(id.subject.clone())),
        (int(6), int((head.timestamp_ms / 1000) as i64)),
    ]);
    let size = i64::try_from(head.size).unwrap_or(i64::MAX);
    cbor::encode(&Value::Map(vec![
        (int(LABEL_ALG), int(alg.cose_id())),
        (int(LABEL_KID), Value::Bytes(kid.to_vec())),
        (int(LABEL_CWT_CLAIMS), claims),
        (int(LABEL_VDS), int(VDS_RFC9162_SHA256)),
        (int(LABEL_TREE_SIZE), int(size)),
    ]))
}

use crate::cose::{encode_sign1 as cose_sign1_bytes, sig_structure};

/// Signs a tree head: the tagged COSE_Sign1 with detached root, empty
/// unprotected header. Stored with the head; every receipt reuses it.
pub fn sign_tree_head(
    key: &SigningKey,
    id: &ServiceIdentity,
    head: &TreeHead,
) -> Result<Vec<u8>, String> {
    let protected = head_protected(key.alg(), &key.kid(), id, head);
    let tbs = sig_structure(&protected, &head.root);
    let sig = key.sign(&tbs).map_err(|e| e.to_string())?;
    Ok(cose_sign1_bytes(&protected, Vec::new(), None, &sig))
}

fn split_head_signature(signed_head: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ReceiptError> {
    let p = crate::cose::split(signed_head).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    Ok((p.protected, p.signature))
}

fn proof_bstr(a: u64, b: u64, path: &[Hash]) -> Value {
    let path = path.iter().map(|h| Value::Bytes(h.to_vec())).collect();
    Value::Bytes(cbor::encode(&Value::Array(vec![
        Value::Integer(a.into()),
        Value::Integer(b.into()),
        Value::Array(path),
    ])))
}

/// An inclusion receipt: the head's signature plus the proof.
pub fn inclusion_receipt(
    signed_head: &[u8],
    tree_size: u64,
    leaf_index: u64,
    path: &[Hash],
) -> Result<Vec<u8>, ReceiptError> {
    with_proof(signed_head, PROOF_INCLUSION, tree_size, leaf_index, path)
}

/// A consistency receipt from `size1` to the head's size.
pub fn consistency_receipt(
    signed_head: &[u8],
    size1: u64,
    size2: u64,
    path: &[Hash],
) -> Result<Vec<u8>, ReceiptError> {
    with_proof(signed_head, PROOF_CONSISTENCY, size1, size2, path)
}

/// The head's signature object with one RFC 9942 proof under `396/label`:
/// the signed bytes are untouched, so every receipt at a size shares them.
fn with_proof(
    signed_head: &[u8],
    label: i64,
    a: u64,
    b: u64,
    path: &[Hash],
) -> Result<Vec<u8>, ReceiptError> {
    Ok(ReceiptTemplate::new(signed_head)?.with_proof(label, a, b, path))
}

/// A signed head split once into the parts every receipt at its size
/// shares. The sequencer builds one per batch, so the request path encodes
/// a receipt without decoding the head's COSE_Sign1 again for each entry
/// (that decode was ≈ 1.5 µs of the ≈ 3.5 µs a receipt cost under load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptTemplate {
    protected: Vec<u8>,
    signature: Vec<u8>,
}

impl ReceiptTemplate {
    pub fn new(signed_head: &[u8]) -> Result<ReceiptTemplate, ReceiptError> {
        let (protected, signature) = split_head_signature(signed_head)?;
        Ok(ReceiptTemplate {
            protected,
            signature,
        })
    }

    /// The inclusion receipt for `leaf_index` in a tree of `tree_size` (the
    /// head's size).
    pub fn inclusion(&self, tree_size: u64, leaf_index: u64, path: &[Hash]) -> Vec<u8> {
        self.with_proof(PROOF_INCLUSION, tree_size, leaf_index, path)
    }

    fn with_proof(&self, label: i64, a: u64, b: u64, path: &[Hash]) -> Vec<u8> {
        let vdp = Value::Map(vec![(
            int(label),
            Value::Array(vec![proof_bstr(a, b, path)]),
        )]);
        cose_sign1_bytes(
            &self.protected,
            vec![(int(LABEL_VDP), vdp)],
            None,
            &self.signature,
        )
    }
}

/// Why a receipt failed. The verifier maps each to its own exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt is not a well-formed tagged COSE_Sign1: {0}")]
    Malformed(String),
    #[error("receipt header: {0}")]
    Header(String),
    #[error("unsupported verifiable data structure {0} (only 1, RFC9162_SHA256)")]
    UnsupportedVds(i64),
    #[error("receipt uses {0}, which is not supported")]
    UnsupportedAlg(String),
    #[error("unknown critical header parameter {0}")]
    UnknownCritical(String),
    #[error("no trusted service key has kid {0}")]
    UnknownKey(String),
    #[error("the receipt names no kid and no trusted service key is an {0} key")]
    NoKeyForAlg(String),
    #[error("receipt proof: {0}")]
    Proof(String),
    #[error("receipt is for tree size {signed} but its proof says {proof}")]
    SizeMismatch { signed: u64, proof: u64 },
    #[error("receipt carries a payload that is not the root its proof computes")]
    PayloadMismatch,
    #[error(
        "the signature does not verify over the root the proof computes: the proof, the entry or the signature was altered, or another key signed"
    )]
    BadSignature,
    #[error(
        "the receipt names no kid and its signature verifies under none of the {tried} trusted {alg} key(s) over the root the proof computes: the proof, the entry or the signature was altered, or another service signed"
    )]
    NoKeyVerifies { alg: String, tried: usize },
}

impl ReceiptError {
    /// A receipt that cannot be attributed to any trusted service key: one
    /// naming an unknown kid, or one naming no kid whose algorithm no
    /// trusted key has. RFC 9943 §7.1 lets a relying party skip receipts
    /// from services it does not trust, so the verifier skips these.
    pub fn is_untrusted_key(&self) -> bool {
        matches!(
            self,
            ReceiptError::UnknownKey(_) | ReceiptError::NoKeyForAlg(_)
        )
    }
}

/// What a verified receipt says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceiptInfo {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub issued_at: Option<i64>,
    /// The kid the receipt names; empty when it names none.
    #[serde(serialize_with = "ser_hex")]
    pub kid: Vec<u8>,
    /// RFC 9679 thumbprint of the trusted key the signature verified under
    /// (for a receipt without a kid, the only way to say which key that was).
    #[serde(serialize_with = "ser_hex")]
    pub key_thumbprint: Vec<u8>,
    pub alg: String,
    pub tree_size: u64,
    /// Leaf index (inclusion) or the older size (consistency).
    pub leaf_index: u64,
    #[serde(serialize_with = "ser_hex")]
    pub root: Vec<u8>,
}

fn ser_hex<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

struct Parsed {
    protected: Vec<u8>,
    header: Vec<(Value, Value)>,
    unprotected: Vec<(Value, Value)>,
    payload: Option<Vec<u8>>,
    signature: Vec<u8>,
}

fn parse_cose_sign1(bytes: &[u8]) -> Result<Parsed, ReceiptError> {
    let p = crate::cose::split(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    Ok(Parsed {
        protected: p.protected,
        header: p.protected_map,
        unprotected: p.unprotected,
        payload: p.payload,
        signature: p.signature,
    })
}

/// Protected-header labels a receipt verifier understands (for `crit`).
const UNDERSTOOD: [i64; 5] = [
    LABEL_ALG,
    LABEL_KID,
    LABEL_CWT_CLAIMS,
    LABEL_VDS,
    LABEL_TREE_SIZE,
];

struct Checked<'a> {
    alg: Alg,
    /// The trusted keys the signature may be under: the one its kid names,
    /// or every trusted key of its algorithm when it names no kid.
    keys: Vec<&'a crate::keys::PublicKey>,
    /// The kid as named; None when the receipt names none.
    kid: Option<Vec<u8>>,
    signed_size: Option<u64>,
    claims: (Option<String>, Option<String>, Option<i64>),
}

/// The trusted keys a receipt's signature may be under.
///
/// With a kid (every receipt we sign): exactly the key with that kid, and it
/// must have the receipt's algorithm — a receipt that names a key is held to
/// it. Without a kid (the SCITT WG's vds-1 receipts, which hand the log key
/// over out of band): every trusted key of the receipt's algorithm, tried in
/// turn. Requiring a single key instead would make a kid-less receipt
/// unverifiable against a service's published key set as soon as the
/// service has rotated once (the set then holds every key it ever signed
/// with), and buys nothing: each key in the set is one the relying party
/// already trusts to sign this service's tree heads, so a signature under any
/// of them is exactly the statement "a trusted key signed this root". The
/// cost is one signature check per key of that algorithm, on a set the
/// relying party chose.
fn candidate_keys<'a>(
    h: &[(Value, Value)],
    alg: Alg,
    keys: &'a KeySet,
) -> Result<(Option<Vec<u8>>, Vec<&'a crate::keys::PublicKey>), ReceiptError> {
    let kid = match map_get(h, LABEL_KID) {
        Some(Value::Bytes(b)) => b.clone(),
        Some(Value::Text(t)) => t.as_bytes().to_vec(),
        Some(_) => return Err(ReceiptError::Header("kid is not a byte string".into())),
        None => {
            let mut same_alg: Vec<&crate::keys::PublicKey> = Vec::new();
            // A key is listed under its thumbprint and maybe a kid alias: once.
            for (_, k) in &keys.keys {
                if k.alg == alg && !same_alg.contains(&k) {
                    same_alg.push(k);
                }
            }
            if same_alg.is_empty() {
                return Err(ReceiptError::NoKeyForAlg(alg.name().into()));
            }
            return Ok((None, same_alg));
        }
    };
    let key = keys
        .get(&kid)
        .ok_or_else(|| ReceiptError::UnknownKey(hex::encode(&kid)))?;
    if key.alg != alg {
        return Err(ReceiptError::Header(format!(
            "kid names a {} key but alg is {}",
            key.alg.name(),
            alg.name()
        )));
    }
    Ok((Some(kid), vec![key]))
}

fn check_header<'a>(p: &Parsed, keys: &'a KeySet) -> Result<Checked<'a>, ReceiptError> {
    let h = &p.header;
    let alg_id = map_get(h, LABEL_ALG)
        .and_then(as_i64)
        .ok_or_else(|| ReceiptError::Header("no alg".into()))?;
    let alg = Alg::from_cose(alg_id)
        .ok_or_else(|| ReceiptError::UnsupportedAlg(cose_alg_name(alg_id)))?;
    match map_get(h, LABEL_VDS).and_then(as_i64) {
        Some(VDS_RFC9162_SHA256) => {}
        Some(other) => return Err(ReceiptError::UnsupportedVds(other)),
        None => return Err(ReceiptError::Header("no vds (395)".into())),
    }
    if let Some(crit) = map_get(h, LABEL_CRIT) {
        let Value::Array(labels) = crit else {
            return Err(ReceiptError::Header("crit is not an array".into()));
        };
        for l in labels {
            match as_i64(l) {
                Some(i) if UNDERSTOOD.contains(&i) => {}
                Some(i) => return Err(ReceiptError::UnknownCritical(i.to_string())),
                None => return Err(ReceiptError::UnknownCritical(format!("{l:?}"))),
            }
        }
    }
    let (kid, candidates) = candidate_keys(h, alg, keys)?;
    let signed_size = match map_get(h, LABEL_TREE_SIZE) {
        None => None,
        Some(v) => Some(
            as_u64(v)
                .ok_or_else(|| ReceiptError::Header("tree size label is not a uint".into()))?,
        ),
    };
    let claims = match map_get(h, LABEL_CWT_CLAIMS) {
        Some(Value::Map(c)) => (
            map_get(c, 1).and_then(|v| v.as_text()).map(str::to_owned),
            map_get(c, 2).and_then(|v| v.as_text()).map(str::to_owned),
            map_get(c, 6).and_then(as_i64),
        ),
        Some(_) => return Err(ReceiptError::Header("CWT claims is not a map".into())),
        None => (None, None, None),
    };
    Ok(Checked {
        alg,
        keys: candidates,
        kid,
        signed_size,
        claims,
    })
}

/// Most inclusion proofs one receipt may carry. RFC 9942 allows several
/// (`[+ inclusion-proof]`; the WG's upstream vectors include a receipt with
/// a decoy proof before the one for the entry). Each distinct root costs a
/// signature check per candidate key before anything is authenticated, so
/// the count is bounded; we issue one proof per receipt.
pub const MAX_INCLUSION_PROOFS: usize = 16;

/// Decodes the proofs under `396 / proof_label`: between 1 and `max`.
fn proofs(
    p: &Parsed,
    proof_label: i64,
    max: usize,
) -> Result<Vec<(u64, u64, Vec<Hash>)>, ReceiptError> {
    let vdp = match map_get(&p.unprotected, LABEL_VDP) {
        Some(Value::Map(m)) => m,
        Some(_) => return Err(ReceiptError::Proof("vdp (396) is not a map".into())),
        None => {
            return Err(ReceiptError::Proof(
                "no vdp (396) in the unprotected header".into(),
            ));
        }
    };
    let proofs = match map_get(vdp, proof_label) {
        Some(Value::Array(a)) => a,
        _ => {
            return Err(ReceiptError::Proof(format!(
                "no proof array under {proof_label}"
            )));
        }
    };
    if proofs.is_empty() || proofs.len() > max {
        return Err(ReceiptError::Proof(if max == 1 {
            format!("expected exactly one proof, found {}", proofs.len())
        } else {
            format!("expected 1 to {max} proofs, found {}", proofs.len())
        }));
    }
    proofs.iter().map(decode_proof).collect()
}

/// One `bstr .cbor [a, b, [path]]`.
fn decode_proof(proof: &Value) -> Result<(u64, u64, Vec<Hash>), ReceiptError> {
    let Value::Bytes(pb) = proof else {
        return Err(ReceiptError::Proof("proof is not a bstr".into()));
    };
    let v = cbor::decode(pb).map_err(|e| ReceiptError::Proof(e.to_string()))?;
    let Value::Array(parts) = v else {
        return Err(ReceiptError::Proof("proof is not an array".into()));
    };
    let [a, b, path]: [Value; 3] = parts
        .try_into()
        .map_err(|_| ReceiptError::Proof("proof must have 3 elements".into()))?;
    let a = as_u64(&a).ok_or_else(|| ReceiptError::Proof("size/index is not a uint".into()))?;
    let b = as_u64(&b).ok_or_else(|| ReceiptError::Proof("size/index is not a uint".into()))?;
    let Value::Array(path) = path else {
        return Err(ReceiptError::Proof("path is not an array".into()));
    };
    let path = path
        .iter()
        .map(|h| match h {
            Value::Bytes(b) if b.len() == 32 => {
                let mut x = [0u8; 32];
                x.copy_from_slice(b);
                Ok(x)
            }
            _ => Err(ReceiptError::Proof(
                "path element is not a 32-byte bstr".into(),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((a, b, path))
}

/// A root a proof computes: (root, tree size, leaf index or older size).
type Candidate = (Hash, u64, u64);

/// Checks the computed roots against the signed size and any attached
/// payload (all before a signature is checked: a proof that disagrees with
/// what is signed is a proof failure, not a signature one), then verifies
/// the signature over each remaining root with each candidate key. The first
/// (root, key) that verifies is the receipt's.
fn finish(p: &Parsed, c: &Checked<'_>, roots: &[Candidate]) -> Result<ReceiptInfo, ReceiptError> {
    for &(_, tree_size, _) in roots {
        if let Some(signed) = c.signed_size
            && signed != tree_size
        {
            return Err(ReceiptError::SizeMismatch {
                signed,
                proof: tree_size,
            });
        }
    }
    let mut remaining: Vec<Candidate> = Vec::with_capacity(roots.len());
    for &r in roots {
        let matches_payload = p.payload.as_ref().is_none_or(|pl| pl.as_slice() == r.0);
        if matches_payload && !remaining.iter().any(|(root, _, _)| *root == r.0) {
            remaining.push(r);
        }
    }
    if remaining.is_empty() {
        return Err(ReceiptError::PayloadMismatch);
    }
    for (root, tree_size, index) in remaining {
        let tbs = sig_structure(&p.protected, &root);
        if let Some(key) = c.keys.iter().find(|k| k.verify(&tbs, &p.signature)) {
            return Ok(ReceiptInfo {
                issuer: c.claims.0.clone(),
                subject: c.claims.1.clone(),
                issued_at: c.claims.2,
                kid: c.kid.clone().unwrap_or_default(),
                key_thumbprint: key.thumbprint(),
                alg: c.alg.name().into(),
                tree_size,
                leaf_index: index,
                root: root.to_vec(),
            });
        }
    }
    Err(match c.kid {
        Some(_) => ReceiptError::BadSignature,
        None => ReceiptError::NoKeyVerifies {
            alg: c.alg.name().into(),
            tried: c.keys.len(),
        },
    })
}

/// Verifies an inclusion receipt for the entry whose leaf hash is `leaf`:
/// recompute the root from each proof, then check the signature over it.
/// Every proof must be well formed and compute a root (index < size, exact
/// path length) before any signature is checked, so `[0, 0, []]` is a proof
/// failure whatever the signature says; with several proofs, the receipt
/// verifies if the signature covers the root one of them computes.
pub fn verify_inclusion_receipt(
    receipt: &[u8],
    leaf: &Hash,
    keys: &KeySet,
) -> Result<ReceiptInfo, ReceiptError> {
    let p = parse_cose_sign1(receipt)?;
    let c = check_header(&p, keys)?;
    let roots = proofs(&p, PROOF_INCLUSION, MAX_INCLUSION_PROOFS)?
        .into_iter()
        .map(|(size, index, path)| {
            merkle::root_from_inclusion_proof(index, size, leaf, &path)
                .map(|root| (root, size, index))
                .map_err(|e| ReceiptError::Proof(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    finish(&p, &c, &roots)
}

/// Verifies a consistency receipt against a trusted older root (e.g. from a
/// verified inclusion receipt at `size1`); returns the newer head it proves.
pub fn verify_consistency_receipt(
    receipt: &[u8],
    size1: u64,
    root1: &Hash,
    keys: &KeySet,
) -> Result<ReceiptInfo, ReceiptError> {
    let p = parse_cose_sign1(receipt)?;
    let c = check_header(&p, keys)?;
    let [(s1, s2, path)]: [(u64, u64, Vec<Hash>); 1] = proofs(&p, PROOF_CONSISTENCY, 1)?
        .try_into()
        .map_err(|_| ReceiptError::Proof("expected exactly one proof".into()))?;
    if s1 != size1 {
        return Err(ReceiptError::Proof(format!(
            "proof starts at size {s1}, the trusted root is for {size1}"
        )));
    }
    let root2 = merkle::root_from_consistency_proof(s1, s2, root1, &path)
        .map_err(|e| ReceiptError::Proof(e.to_string()))?;
    finish(&p, &c, &[(root2, s2, s1)])
}

/// Verifies a bare tree-head signature (a `/checkpoint`, or fsck).
pub fn verify_tree_head(
    signed_head: &[u8],
    head: &TreeHead,
    keys: &KeySet,
) -> Result<ReceiptInfo, ReceiptError> {
    let p = parse_cose_sign1(signed_head)?;
    let c = check_header(&p, keys)?;
    finish(&p, &c, &[(head.root, head.size, 0)])
}

/// Reads a tree head's size and time from its signature object (no checks).
pub fn peek_tree_size(signed_head: &[u8]) -> Option<u64> {
    let p = parse_cose_sign1(signed_head).ok()?;
    map_get(&p.header, LABEL_TREE_SIZE).and_then(as_u64)
}

/// The log's signer: one COSE signature per tree head.
pub struct CoseTreeHeadSigner {
    pub key: SigningKey,
    pub identity: ServiceIdentity,
    /// Every key the service ever signed with (rotation keeps old ones).
    pub verify_keys: KeySet,
}

impl crate::tree_head::TreeHeadSigner for CoseTreeHeadSigner {
    fn sign(&self, head: &TreeHead) -> Result<Vec<u8>, String> {
        sign_tree_head(&self.key, &self.identity, head)
    }
}

impl crate::tree_head::TreeHeadVerifier for CoseTreeHeadSigner {
    fn verify(&self, head: &TreeHead, signature: &[u8]) -> Result<(), String> {
        self.verify_keys.verify(head, signature)
    }
}

/// A public key set verifies the heads any of its keys signed.
impl crate::tree_head::TreeHeadVerifier for KeySet {
    fn verify(&self, head: &TreeHead, signature: &[u8]) -> Result<(), String> {
        verify_tree_head(signature, head, self)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
