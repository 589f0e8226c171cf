//! vcon-scitt-core: everything about vcon-scitt's formats that a relying
//! party needs, and nothing that needs storage, an async runtime or a network.
//! The service (`vcon-scitt`) and the offline verifier (`vcon-verify`) share
//! this one implementation of every format.
//!
//! Layering (maths → formats → trust → verification):
//! - [`merkle`]: RFC 9162 hashing, proofs, tile geometry. Pure.
//! - [`cbor`], [`cose`]: bounded CBOR, strict COSE_Sign1 splitting.
//! - [`keys`]: signing and verification keys; COSE_Key, JWK, PEM, RFC 9679 kids.
//! - [`statement`]: Signed Statements, the logged entry, Transparent Statements.
//! - [`issuers`]: issuer key registry and X.509 chain validation.
//! - [`tree_head`], [`receipt`]: tree-head signatures and COSE Receipts.
//! - [`vcon`]: the vCon profile and the registration policy.
//! - [`map`]: the verifiable map (torchwood `mpt` prefix tree), its proofs and verifier.
//! - [`problem`]: RFC 9290 problem details; [`time`]: the clock and RFC 3339.
//! - [`verify`]: offline verification (the `vcon-verify` crate is its command line).
#![forbid(unsafe_code)]

pub mod cbor;
/// Re-exported so tools built on this crate (fuzz targets) share its CBOR types.
pub use ciborium;
pub mod cose;
pub mod issuers;
pub mod keys;
pub mod map;
pub mod merkle;
pub mod note;
pub mod problem;
pub mod receipt;
pub mod statement;
pub mod time;
pub mod tree_head;
pub mod vcon;
pub mod verify;
