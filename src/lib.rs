//! vcon-scitt: a SCITT transparency service for the vCon lifecycle.
//!
//! Layering (maths → formats → storage → service):
//! - formats, crypto and verification come from `vcon-scitt-core` (re-exported
//!   here), shared with the offline verifier;
//! - [`log`]: the append-only log on RocksDB with a single group-committing
//!   sequencer, crash recovery and fsck;
//! - [`service`]: registration (checks, policy, sequencing, receipts);
//! - [`http`]: the SCRAPI API on hyper; [`client`]: its client;
//! - [`config`], [`cli`], [`metrics`]: running it.
#![forbid(unsafe_code)]

pub use vcon_scitt_core::{
    cbor, cose, issuers, keys, merkle, problem, receipt, statement, time, tree_head, vcon, verify,
};

pub mod audit;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod http;
pub mod log;
pub mod metrics;
pub mod service;
pub mod vcon_index;
