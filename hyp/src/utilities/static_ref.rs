// SPDX-License-Identifier: MIT OR Apache-2.0
//! A `&'static` reference to memory-mapped registers at a fixed address.
//!
//! Chip drivers describe a device's register block as a struct (with
//! `tock-registers`) and reach it through a `StaticRef`, which is created
//! once, unsafely, from the block's physical address (Hyp mappings are
//! identity maps), and is then as easy to use as a normal reference.
//!
//! ```
//! use hyp::utilities::StaticRef;
//! static WORD: u32 = 7;
//! // SAFETY: WORD is a valid, 'static, suitably aligned u32.
//! let r: StaticRef<u32> = unsafe { StaticRef::new(&WORD as *const u32) };
//! assert_eq!(*r, 7);
//! ```
#![allow(unsafe_code)]

use core::fmt;
use core::ops::Deref;

/// A pointer to `T` that is valid for the whole run of the hypervisor.
pub struct StaticRef<T> {
    pointer: *const T,
}

impl<T> StaticRef<T> {
    /// Wraps a raw pointer.
    ///
    /// # Safety
    /// `pointer` must be aligned, non-null, point to a valid `T` (for MMIO:
    /// a register block that is mapped for the hypervisor's whole lifetime)
    /// and must never be turned into a `&mut T` elsewhere.
    pub const unsafe fn new(pointer: *const T) -> StaticRef<T> {
        StaticRef { pointer }
    }

    /// The address the reference points at.
    pub fn address(&self) -> usize {
        self.pointer as usize
    }
}

impl<T> Clone for StaticRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for StaticRef<T> {}

impl<T> Deref for StaticRef<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `new`'s contract makes the pointer valid and aliasable for
        // the program's lifetime.
        unsafe { &*self.pointer }
    }
}

impl<T> fmt::Debug for StaticRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticRef({:#x})", self.pointer as usize)
    }
}
