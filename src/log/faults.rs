//! Fault injection into the sequencer's steps, for the fault tests
//! (`tests/faults.rs`, `tests/log_engine.rs`). Compiled in only with
//! `cfg(test)` or the `fault-injection` feature (which the crate's own
//! integration tests turn on): a release binary has no hooks, only the
//! zero-sized, always-inert [`Faults`] below, whose checks compile away.
//!
//! Faults below RocksDB (syscalls) are injected from outside the binary;
//! these cover what a syscall fault cannot aim at precisely: one batch's
//! data write, its head write, its read-back, a bit flip between write and
//! verify.

#[cfg(any(test, feature = "fault-injection"))]
mod hooks {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::super::LogError;
    use super::super::store::{CF_TILES, Store};
    use crate::merkle::tile::TileId;

    /// Each flag fires once, at the next batch that reaches its step.
    #[derive(Debug, Default)]
    pub struct Faults {
        /// Fail the next data write as if RocksDB returned an I/O error.
        pub fail_next_data_write: AtomicBool,
        /// Fail the next head write.
        pub fail_next_head_write: AtomicBool,
        /// After the next data write, flip a bit in a stored tile before the
        /// verify-before-sign step (simulates a storage or memory fault).
        pub corrupt_next_tile: AtomicBool,
        /// Fail the next read-back of the verify-before-sign step (an I/O
        /// error reading what was just written).
        pub fail_next_verify_read: AtomicBool,
        /// Hold the next batch this many milliseconds between storing its
        /// signed head and publishing it: the window a reader can race.
        pub delay_next_publish_ms: AtomicU64,
    }

    fn take(flag: &AtomicBool) -> bool {
        flag.swap(false, Ordering::SeqCst)
    }

    impl Faults {
        pub(in crate::log) fn before_data_write(&self) -> Result<(), LogError> {
            if take(&self.fail_next_data_write) {
                return Err(LogError::Storage(
                    "injected fault: data write failed".into(),
                ));
            }
            Ok(())
        }

        pub(in crate::log) fn before_head_write(&self) -> Result<(), LogError> {
            if take(&self.fail_next_head_write) {
                return Err(LogError::Storage(
                    "injected fault: head write failed".into(),
                ));
            }
            Ok(())
        }

        pub(in crate::log) fn before_verify_read(&self) -> Result<(), String> {
            if take(&self.fail_next_verify_read) {
                return Err("injected fault: reading back the written tiles failed".into());
            }
            Ok(())
        }

        pub(in crate::log) fn before_publish(&self) {
            let ms = self.delay_next_publish_ms.swap(0, Ordering::SeqCst);
            if ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
        }

        /// Flips a bit of the last stored leaf of a log of `size` entries
        /// (a torn or flipped write of the batch itself).
        pub(in crate::log) fn after_data_write(
            &self,
            store: &Store,
            size: u64,
        ) -> Result<(), LogError> {
            if !take(&self.corrupt_next_tile) {
                return Ok(());
            }
            let (id, _, offset) = TileId::locate(0, size.saturating_sub(1));
            if let Some(t) = store.tile(id)? {
                let mut b = t.to_bytes();
                // 2 header bytes, then 32-byte nodes; flip a bit inside the node.
                if let Some(x) = b.get_mut(2 + offset * 32 + 5) {
                    *x ^= 0x01;
                }
                store.put_raw(CF_TILES, &id.key(), &b)?;
            }
            Ok(())
        }
    }
}

#[cfg(not(any(test, feature = "fault-injection")))]
mod hooks {
    use super::super::LogError;
    use super::super::store::Store;

    /// No hooks in this build: every check is a constant `Ok`.
    #[derive(Debug, Default)]
    pub struct Faults;

    impl Faults {
        #[inline(always)]
        pub(in crate::log) fn before_data_write(&self) -> Result<(), LogError> {
            Ok(())
        }
        #[inline(always)]
        pub(in crate::log) fn before_head_write(&self) -> Result<(), LogError> {
            Ok(())
        }
        #[inline(always)]
        pub(in crate::log) fn before_verify_read(&self) -> Result<(), String> {
            Ok(())
        }
        #[inline(always)]
        pub(in crate::log) fn after_data_write(&self, _: &Store, _: u64) -> Result<(), LogError> {
            Ok(())
        }
        #[inline(always)]
        pub(in crate::log) fn before_publish(&self) {}
    }
}

pub use hooks::Faults;
