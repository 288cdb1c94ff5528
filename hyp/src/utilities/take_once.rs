// SPDX-License-Identifier: MIT OR Apache-2.0
//! Static storage that hands out one `&'static mut` to its contents, once.
//!
//! Large boot-time objects (the Hyp translation tables, say) cannot be built
//! on the stack and moved into a static: they would not fit. A `TakeOnce`
//! holds the object from link time, initialised by a `const fn`, and gives
//! the board exclusive access exactly once; later attempts get `None`.
//!
//! The Hyp tables are taken before the MMU is on, where exclusive loads and
//! stores are not reliable, so the flag is a plain load and store rather
//! than an atomic read-modify-write. Two CPUs taking the same value at once
//! could then both get it: `take` is `unsafe`, and its callers (the boot
//! CPU, with interrupts masked) promise no other CPU takes at the same
//! time.
//!
//! ```
//! use hyp::utilities::TakeOnce;
//! static COUNTER: TakeOnce<u32> = TakeOnce::new(5);
//! // SAFETY: one thread, nothing else takes COUNTER.
//! let c = unsafe { COUNTER.take() }.unwrap();
//! *c += 1;
//! assert_eq!(*c, 6);
//! // SAFETY: as above.
//! assert!(unsafe { COUNTER.take() }.is_none());
//! ```
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value that can be borrowed mutably, for `'static`, once.
pub struct TakeOnce<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the only access to `value` is through `take`, which hands out at
// most one reference for the program's lifetime as long as no two calls
// overlap, which its callers promise (it is `unsafe`); `T: Send` lets that
// reference be used from whichever CPU takes it.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    /// Storage holding `value`.
    pub const fn new(value: T) -> TakeOnce<T> {
        TakeOnce {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The contents, the first time; `None` afterwards.
    ///
    /// # Safety
    ///
    /// No other call of `take` on this value may run at the same time (on
    /// another CPU): the flag's load and store are not one atomic step.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.load(Ordering::Acquire) {
            return None;
        }
        self.taken.store(true, Ordering::Release);
        // SAFETY: `taken` was false, so no reference to `value` exists, and
        // it is now true, so none will be created again: no other `take`
        // ran between the load and the store (the caller's promise).
        Some(unsafe { &mut *self.value.get() })
    }
}

impl<T> fmt::Debug for TakeOnce<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TakeOnce(taken: {})", self.taken.load(Ordering::Relaxed))
    }
}
