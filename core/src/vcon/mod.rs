//! The vCon profile: content hashes, lifecycle statements, policy and the
//! per-vCon views.

pub mod consent;
pub mod hash;
pub mod pii;
pub mod policy;
pub mod profile;
pub mod proof;
pub mod replay;
pub mod state;

pub use hash::{HashAlg, content_hash, content_hash_matches, parse_content_hash};
pub use policy::{PolicyConfig, PolicyRejection};
pub use profile::{Event, LifecycleRecord, Profile};
