//! C2SP signed-note (v1.0.0) and tlog-checkpoint (v1.0.0): the signed tree
//! head as a text note, the form C2SP clients, monitors and witnesses read
//! (`GET /checkpoint` with `Accept: text/plain`). It states the same head
//! as the COSE signature (`receipt::verify_tree_head`): the service signs
//! a note only for a size and root it has already signed, so the two can
//! never disagree. Ed25519 (signature type 0x01), as tlog-tiles requires of
//! a public log's checkpoint; the type byte in the key id and vkey keeps
//! room for ML-DSA-44 later.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::keys::{Alg, SigningKey};
use crate::merkle::{Hash, sha256};

/// Signature type 0x01: Ed25519 over the note text.
pub const ALG_ED25519: u8 = 0x01;

/// Key ID: `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[:4]`.
pub fn key_id(name: &str, ed25519_public: &[u8]) -> [u8; 4] {
    let h = sha256(&[name.as_bytes(), b"\n", &[ALG_ED25519], ed25519_public]);
    [h[0], h[1], h[2], h[3]]
}

/// The verifier key a client pins: `<name>+<key id hex>+<base64(0x01 ‖ key)>`.
pub fn vkey(name: &str, ed25519_public: &[u8]) -> String {
    let mut k = vec![ALG_ED25519];
    k.extend_from_slice(ed25519_public);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, ed25519_public)),
        STANDARD.encode(k)
    )
}

/// Reads a verifier key `<name>+<key id hex>+<base64(0x01 ‖ key)>`: its
/// name and Ed25519 public key, if the key id matches them.
pub fn parse_vkey(vkey: &str) -> Option<(String, Vec<u8>)> {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
    let key = STANDARD.decode(key).ok()?;
    let (&alg, public) = key.split_first()?;
    (alg == ALG_ED25519
        && public.len() == 32
        && valid_name(name)
        && hex::decode(id).ok()? == key_id(name, public))
    .then(|| (name.to_owned(), public.to_vec()))
}

/// A key name (and checkpoint origin) C2SP accepts: non-empty, no Unicode
/// white space, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// The checkpoint body: origin, decimal size, base64 root, each on a line.
pub fn checkpoint_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", STANDARD.encode(root))
}

/// The signed checkpoint note, signed by `key` (Ed25519) under the name
/// `origin`: the text, a blank line, one signature line
/// `— <name> <base64(key id ‖ signature)>`.
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: &Hash,
    key: &SigningKey,
) -> Result<String, String> {
    if key.alg() != Alg::Ed25519 {
        return Err("a checkpoint note is signed with an Ed25519 key".into());
    }
    if !valid_name(origin) {
        return Err(format!(
            "{origin:?} cannot name a checkpoint: no white space or '+' (C2SP signed-note)"
        ));
    }
    let text = checkpoint_text(origin, size, root);
    let sig = key.sign(text.as_bytes()).map_err(|e| e.to_string())?;
    let mut blob = key_id(origin, &key.public().bytes).to_vec();
    blob.extend_from_slice(&sig);
    Ok(format!(
        "{text}\n\u{2014} {origin} {}\n",
        STANDARD.encode(blob)
    ))
}

/// Why a checkpoint note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a C2SP checkpoint note: {0}")]
    Malformed(&'static str),
    #[error("the checkpoint's origin is {got:?}, not {want:?}")]
    Origin { got: String, want: String },
    #[error("no signature line by {0:?} with its key id verifies the note")]
    Unsigned(String),
}

/// Opens a checkpoint note signed by `origin`'s Ed25519 key: checks its
/// shape, its origin, and that one signature line under that name and key
/// id verifies over the text (other signers' lines, e.g. witnesses', are
/// ignored). Returns the size and root it states.
pub fn open_checkpoint(
    note: &str,
    origin: &str,
    ed25519_public: &[u8],
) -> Result<(u64, Hash), NoteError> {
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let text = format!("{text}\n");
    let mut lines = text.lines();
    let got = lines.next().unwrap_or("");
    if got != origin {
        return Err(NoteError::Origin {
            got: got.into(),
            want: origin.into(),
        });
    }
    let size: u64 = lines
        .next()
        .filter(|s| !s.starts_with('0') || *s == "0")
        .and_then(|s| s.parse().ok())
        .ok_or(NoteError::Malformed("the second line is not a tree size"))?;
    let root: Hash = lines
        .next()
        .and_then(|s| STANDARD.decode(s).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or(NoteError::Malformed(
            "the third line is not a base64 SHA-256 root",
        ))?;
    let id = key_id(origin, ed25519_public);
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, ed25519_public);
    let prefix = format!("\u{2014} {origin} ");
    let signed = sigs
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .any(|b64| {
            STANDARD.decode(b64).is_ok_and(|blob| {
                blob.len() == 4 + 64
                    && blob[..4] == id
                    && key.verify(text.as_bytes(), &blob[4..]).is_ok()
            })
        });
    if !signed {
        return Err(NoteError::Unsigned(origin.into()));
    }
    Ok((size, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_has_the_c2sp_shape_and_its_key_id_is_the_recommended_one() {
        let (key, _) = SigningKey::generate(Alg::Ed25519).unwrap();
        let pk = key.public().bytes;
        let note = sign_checkpoint("example.com/log", 3, &[7u8; 32], &key).unwrap();
        let (text, sig) = note.split_once("\n\n").unwrap();
        assert_eq!(
            format!("{text}\n"),
            "example.com/log\n3\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        let blob = STANDARD
            .decode(
                sig.strip_prefix("\u{2014} example.com/log ")
                    .unwrap()
                    .trim_end(),
            )
            .unwrap();
        assert_eq!(&blob[..4], &key_id("example.com/log", &pk));
        assert!(
            key.public()
                .verify(format!("{text}\n").as_bytes(), &blob[4..])
        );
        let v = vkey("example.com/log", &pk);
        let prefix = format!("example.com/log+{}+", hex::encode(&blob[..4]));
        let decoded = STANDARD.decode(v.strip_prefix(&prefix).unwrap()).unwrap();
        assert_eq!((decoded[0], &decoded[1..]), (ALG_ED25519, pk.as_slice()));
        assert!(sign_checkpoint("bad+name", 1, &[0; 32], &key).is_err());
        assert_eq!(
            open_checkpoint(&note, "example.com/log", &pk),
            Ok((3, [7u8; 32]))
        );
        let forged = note.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            open_checkpoint(&forged, "example.com/log", &pk),
            Err(NoteError::Unsigned("example.com/log".into()))
        );
        assert!(matches!(
            open_checkpoint(&note, "example.com/other", &pk),
            Err(NoteError::Origin { .. })
        ));
        let (other, _) = SigningKey::generate(Alg::Ed25519).unwrap();
        assert!(open_checkpoint(&note, "example.com/log", &other.public().bytes).is_err());
        assert_eq!(
            parse_vkey(&v),
            Some(("example.com/log".to_owned(), pk.clone()))
        );
        assert_eq!(
            parse_vkey(&v.replacen("example.com", "example.org", 1)),
            None
        );
        let (p256, _) = SigningKey::generate(Alg::P256).unwrap();
        assert!(sign_checkpoint("example.com/log", 1, &[0; 32], &p256).is_err());
    }
}
