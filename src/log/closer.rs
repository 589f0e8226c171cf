//! The one piece of caller code the sequencer runs: a [`BatchCloser`] keeps
//! a function of the log (the service's verifiable vCon map) in step with
//! it, batch by batch, inside the batch's one `WriteBatch`. Everywhere else
//! the sequencer runs none (appenders encode their rows beforehand); this
//! exception exists because a map root that commits to "everything before
//! it" must be computed between assigning the batch's indices and writing
//! it, and appended as the batch's last leaf, so that every head the
//! sequencer signs ends with a commitment to an exact prefix of itself and a
//! 201 means "in the log *and* in the map". Its cost per batch is measured
//! in BENCHMARKS.md.
//!
//! Protocol, per batch with fresh entries:
//! 1. [`BatchCloser::close`] with the fresh entries (index, leaf, the
//!    appender's opaque input) and the index the closing entry will get;
//!    it stages its changes and returns rows for the batch and the closing
//!    entry;
//! 2. the sequencer writes entries, rows and the closing entry in one
//!    `WriteBatch` (fsync'd);
//! 3. [`BatchCloser::committed`] if that write succeeded, else
//!    [`BatchCloser::rolled_back`]: a closer must be able to forget a staged
//!    batch exactly (the next batch reuses the indices).
//!
//! An error from `close` fails the batch like a storage error: nothing is
//! written, nobody is answered with success.

use std::any::Any;
use std::sync::Arc;

use super::store::Store;
use crate::merkle::Hash;

/// What an appender attaches for the closer (e.g. the parsed lifecycle
/// record), computed on the appender's thread so the sequencer does not
/// parse anything.
pub type CloserInput = Arc<dyn Any + Send + Sync>;

/// One fresh entry of a batch, as the closer sees it.
pub struct Fresh<'a> {
    pub index: u64,
    pub leaf: Hash,
    pub input: Option<&'a CloserInput>,
}

/// What `close` adds to the batch.
#[derive(Default)]
pub struct Closing {
    /// (key, value) rows for the `index` column family.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// The batch's last entry (its index is the `next_index` given).
    pub entry: Option<Vec<u8>>,
}

pub trait BatchCloser: Send {
    /// Stages the fresh entries of a batch (in index order); `next_index`
    /// is where the closing entry goes. `store` is for reading rows written
    /// by earlier batches.
    fn close(
        &mut self,
        store: &Store,
        fresh: &[Fresh<'_>],
        next_index: u64,
    ) -> Result<Closing, String>;
    /// The staged batch is durable.
    fn committed(&mut self);
    /// The staged batch was not written: forget it.
    fn rolled_back(&mut self);
}
