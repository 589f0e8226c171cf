//! The vCon profile: content hashes, lifecycle statements, policy and the
//! per-vCon views.

pub mod hash;
pub mod profile;
pub mod policy;

pub use hash::{HashAlg, content_hash, content_hash_matches, parse_content_hash};
pub use profile::{Event, LifecycleRecord, Profile};
pub use policy::{PolicyConfig, PolicyRejection};
