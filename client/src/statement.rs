//! Building and signing vCon lifecycle statements (the issuer's side of
//! `vcon-scitt statement create`). The document format is the core crate's
//! (`vcon::profile::event_document`); this module reads the vCon file, picks
//! the form (lifecycle JSON or hash envelope) and signs.

use std::path::{Path, PathBuf};

use ciborium::value::Value;
use vcon_scitt_core::keys::SigningKey;
use vcon_scitt_core::statement::{Builder, LEGACY_META_MAP, SignedStatement};
use vcon_scitt_core::vcon::profile::{
    DerivedFrom, Event, EventInput, LIFECYCLE_CONTENT_TYPE, VCON_MEDIA_TYPE, describe_vcon,
    event_document, normalize_uuid,
};
use vcon_scitt_core::vcon::{HashAlg, content_hash};

use crate::ClientError;

/// What to state about a vCon; the fields of `vcon-scitt statement create`.
#[derive(Debug, Clone)]
pub struct StatementSpec {
    /// The vCon file; its exact bytes are hashed.
    pub vcon: PathBuf,
    pub event: Event,
    /// Issuer private key (PKCS#8 DER or PEM).
    pub key: PathBuf,
    /// Issuer URI (CWT iss).
    pub iss: String,
    /// The vCon uuid when the file does not show it (signed/encrypted forms).
    pub uuid: Option<String>,
    /// RFC 3339; default now.
    pub occurred_at: Option<String>,
    pub purposes: Vec<String>,
    pub counterparty: Option<String>,
    /// The uuid this vCon derives from (default: the file's `redacted` /
    /// `amended` object, for redactions and enhancements).
    pub derived_from: Option<String>,
    pub reason: Option<String>,
    pub supersedes: Option<String>,
    /// The hash-registration form: a hash envelope (258/259) whose payload
    /// is the SHA-512 of the vCon's bytes.
    pub hash_envelope: bool,
    /// Output file (default VCON.<event>.cose).
    pub out: Option<PathBuf>,
}

impl StatementSpec {
    /// A spec with only the required fields set.
    pub fn new(vcon: PathBuf, event: Event, key: PathBuf, iss: String) -> StatementSpec {
        StatementSpec {
            vcon,
            event,
            key,
            iss,
            uuid: None,
            occurred_at: None,
            purposes: Vec::new(),
            counterparty: None,
            derived_from: None,
            reason: None,
            supersedes: None,
            hash_envelope: false,
            out: None,
        }
    }
}

/// `FILE.suffix` beside `FILE` (receipts, transparent statements, outputs).
pub fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// Reads a PKCS#8 (DER or PEM) private key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, ClientError> {
    let bytes = std::fs::read(path).map_err(ClientError::file(path))?;
    SigningKey::from_pkcs8_any(&bytes)
        .map_err(|e| ClientError::Input(format!("{}: {e}", path.display())))
}

/// Builds, signs and writes the statement; returns the output path and the
/// entry id it will have once registered.
pub fn create(spec: &StatementSpec) -> Result<(PathBuf, SignedStatement), ClientError> {
    let bytes = std::fs::read(&spec.vcon).map_err(ClientError::file(&spec.vcon))?;
    let event = spec.event;
    let (file_uuid, file_derived) = describe_vcon(&bytes);
    let uuid = match &spec.uuid {
        Some(u) => normalize_uuid(u)
            .ok_or_else(|| ClientError::Input(format!("--uuid {u:?} is not a uuid")))?,
        None => file_uuid
            .ok_or_else(|| ClientError::Input("the vCon file shows no uuid; pass --uuid".into()))?,
    };
    let key = read_signing_key(&spec.key)?;
    let mut b = Builder::new(&key, &spec.iss, &format!("vcon://{uuid}"));
    b.issued_at = Some(vcon_scitt_core::time::now_secs());
    let hash_alg = HashAlg::Sha512;
    let payload = if spec.hash_envelope {
        b.hash_envelope = Some((hash_alg.cose_id(), VCON_MEDIA_TYPE.into()));
        if event != Event::Created {
            b.extra.push((
                LEGACY_META_MAP,
                Value::Map(vec![(
                    Value::Text("vcon_operation".into()),
                    Value::Text(event.name().into()),
                )]),
            ));
        }
        hash_alg.digest(&bytes)
    } else {
        b.content_type = Some(LIFECYCLE_CONTENT_TYPE.into());
        let derived_from = match &spec.derived_from {
            Some(u) => Some(DerivedFrom {
                relation: if event == Event::Redacted {
                    "redacted".into()
                } else {
                    "amended".into()
                },
                uuid: normalize_uuid(u).ok_or_else(|| {
                    ClientError::Input(format!("--derived-from {u:?} is not a uuid"))
                })?,
                content_hash: None,
            }),
            None if matches!(event, Event::Redacted | Event::Enhanced) => file_derived,
            None => None,
        };
        let doc = event_document(&EventInput {
            event: Some(event),
            vcon_uuid: uuid.clone(),
            vcon_hash: Some(content_hash(hash_alg, &bytes)),
            occurred_at: spec.occurred_at.clone(),
            purposes: spec.purposes.clone(),
            counterparty: spec.counterparty.clone(),
            derived_from,
            reason: spec.reason.clone(),
            supersedes: spec.supersedes.clone(),
        });
        serde_json::to_vec(&doc).map_err(|e| ClientError::Input(e.to_string()))?
    };
    let st = b.sign(&payload).map_err(ClientError::Input)?;
    let out = spec
        .out
        .clone()
        .unwrap_or_else(|| with_suffix(&spec.vcon, &format!("{}.cose", event.name())));
    std::fs::write(&out, &st).map_err(ClientError::file(&out))?;
    let parsed = SignedStatement::parse(&st, usize::MAX)
        .map_err(|e| ClientError::Input(format!("the statement just signed: {e}")))?;
    Ok((out, parsed))
}
