// SPDX-License-Identifier: MIT OR Apache-2.0
//! Static storage that hands out one `&'static mut` to its contents, once.
//!
//! Large boot-time objects (the Hyp translation tables, say) cannot be built
//! on the stack and moved into a static: they would not fit. A `TakeOnce`
//! holds the object from link time, initialised by a `const fn`, and gives
//! the board exclusive access exactly once; later attempts get `None`.
//!
//! Capvisor runs on one core and boots with interrupts masked, so the flag is
//! a plain load and store rather than an atomic read-modify-write (exclusive
//! loads and stores are not reliable before the MMU is on).
//!
//! ```
//! use hyp::utilities::TakeOnce;
//! static COUNTER: TakeOnce<u32> = TakeOnce::new(5);
//! let c = COUNTER.take().unwrap();
//! *c += 1;
//! assert_eq!(*c, 6);
//! assert!(COUNTER.take().is_none());
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
// most one reference for the program's lifetime; `T: Send` lets that
// reference be used from whichever context takes it.
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
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.load(Ordering::Acquire) {
            return None;
        }
        self.taken.store(true, Ordering::Release);
        // SAFETY: `taken` was false, so no reference to `value` exists, and
        // it is now true, so none will be created again (single core, no
        // preemption during boot: see the module documentation).
        Some(unsafe { &mut *self.value.get() })
    }
}

impl<T> fmt::Debug for TakeOnce<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TakeOnce(taken: {})", self.taken.load(Ordering::Relaxed))
    }
}
