//! vcon-scitt-client: everything a relying party runs against a vcon-scitt
//! service, and nothing the service itself needs. It links no RocksDB: an
//! auditor or an issuer installs this, not a storage engine.
//!
//! - [`http`]: a small HTTP/1.1 client and `register_and_wait` (SCRAPI's
//!   202/204 + Retry-After dance);
//! - [`statement`]: building and signing vCon lifecycle statements;
//! - [`audit`]: the auditor — trusts nothing the service says without
//!   verifying it offline with `vcon-scitt-core`.
#![forbid(unsafe_code)]

pub mod audit;
mod error;
pub mod http;
pub mod statement;

pub use error::ClientError;
pub use http::{Conn, Reply, describe, get, register_and_wait, registered_transparent_statement};
