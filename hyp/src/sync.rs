// SPDX-License-Identifier: MIT OR Apache-2.0
//! The atomics and the spin mutex the kernel's SMP protocols use, from
//! `loom` when the crate is model-checked (`--cfg loom`).
//!
//! Normally these are `core::sync::atomic` and `spin::Mutex`; built with
//! `RUSTFLAGS="--cfg loom"` they are `loom`'s, which run the kernel's own
//! restart, park, power and kick code over every interleaving of a few
//! threads (the tests in `kernel::loom_tests`). What waits for another CPU
//! calls [`spin_loop`], which under loom lets another thread run.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// A mutual exclusion lock around `T` (a spin lock on the target).
#[derive(Debug, Default)]
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The lock held: the value, until it is dropped.
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The lock held: the value, until it is dropped.
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A lock around `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex {
            inner: spin::Mutex::new(value),
        }
    }

    /// A lock around `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Takes the lock, spinning while another CPU holds it.
    #[inline(always)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

/// One turn of a loop that waits for another CPU.
#[inline(always)]
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
