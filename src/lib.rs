//! vcon-scitt: a SCITT transparency service for the vCon lifecycle.
//!
//! Layering (maths → formats → storage → service), one module per concept:
//! - [`merkle`]: RFC 9162 hashing, proofs, tile layout. Pure.
//! - [`cbor`], [`cose`], [`keys`], [`statement`], [`issuers`], [`tree_head`],
//!   [`receipt`]: wire formats, trust and crypto, shared by the server and
//!   the offline verifier.
//! - [`log`] (feature `server`): the append-only log on RocksDB with a single
//!   group-committing sequencer, crash recovery and fsck.
#![forbid(unsafe_code)]

pub mod cbor;
pub mod cose;
pub mod issuers;
pub mod keys;
pub mod merkle;
pub mod policy;
pub mod problem;
pub mod receipt;
pub mod statement;
pub mod tree_head;
pub mod vcon;
pub mod verify;
pub mod verify_cli;

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod log;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod service;
