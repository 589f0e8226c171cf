//! Lock access that survives a poisoned lock. Every value this crate keeps
//! behind a lock is replaced whole (a head, a cause, a counter set), so a
//! panic elsewhere can never leave one half-updated: recovering the guard is
//! safe, and it is the one policy for readers and writers alike. (Before,
//! readers recovered and the sequencer's writers silently skipped — a
//! poisoned lock would have hidden every later head from readers.)

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
