//! vcon-scitt: a SCITT transparency service for the vCon lifecycle — the
//! server, and nothing else. The command line lives in the binary
//! (`src/bin/vcon-scitt/`), the relying party's tools in `vcon-scitt-client`,
//! the offline verifier in `vcon-verify`; every format in `vcon-scitt-core`.
//!
//! Layering, each module using only those above it:
//! - [`config`]: defaults < file < environment; [`durable`]: crash-safe files;
//!   [`fence`]: the single-writer lease in etcd;
//! - [`log`]: the append-only log on RocksDB with a single group-committing
//!   sequencer, crash recovery and fsck; [`backup`]: checkpoints of it;
//! - [`vcon_index`]: the per-vCon index rows written with each entry, and
//!   the views read from them;
//! - [`vcon_map`]: the verifiable vCon map the sequencer closes every batch
//!   with (a map-root entry per batch); [`vcon_follow`]: both derived again
//!   by a follower from the entries, the map checked as it goes;
//!   [`rewind`]: a deposed writer's store rebuilt to the published log;
//! - [`reads`]: the log's reads (receipts, statements, tiles, bundles, the
//!   vCon views) and the service error, shared by the writer and read
//!   replicas;
//!   [`head_document`]: the signed head as CBOR;
//! - [`service`]: registration (checks, policy, sequencing, receipts) and
//!   the reads the API serves;
//! - [`bucket`]: the C2SP layout in S3-compatible object storage;
//!   [`publish`]: the writer's publisher; [`replica`]: a read replica that
//!   follows a bucket;
//! - [`metrics`]: Prometheus text; [`http`]: the SCRAPI API on hyper.
#![forbid(unsafe_code)]

/// The formats, re-exported for users of this crate; inside it, modules
/// name `vcon_scitt_core` directly so a reader finds the file.
pub use vcon_scitt_core::{
    cbor, cose, issuers, keys, map, merkle, note, problem, receipt, statement, time, tree_head,
    vcon, verify,
};

pub mod backup;
pub mod bucket;
pub mod config;
pub mod durable;
pub mod fence;
pub mod head_document;
pub mod http;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod publish;
pub mod reads;
pub mod replica;
pub mod rewind;
pub mod service;
pub(crate) mod sync;
pub mod vcon_follow;
pub mod vcon_index;
pub mod vcon_map;
