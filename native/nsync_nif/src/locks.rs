//! Locking shared state that stays valid even if a holder panicked (plain
//! counters and handles): a poisoned mutex is used as it is, never unwrapped.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
