// SPDX-License-Identifier: MIT OR Apache-2.0
//! A bump allocator over a fixed static arena, for the few allocations the
//! hypervisor makes at boot (writing guests' device trees).
//!
//! Capvisor has no heap in its running state (STYLE.md: static
//! allocation). Some well-kept crates it uses, `vm-fdt` among them, build
//! their output in a `Vec`; a board registers a [`BumpAllocator`] as the
//! global allocator so they work before the VMs start. Allocation hands out
//! the next aligned piece of the arena; freeing returns nothing (the arena
//! is sized for boot); an allocation that does not fit fails, which the
//! caller sees as an allocation error (a boot refusal), never as memory
//! corruption.
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: BumpAllocator<{ 64 * 1024 }> = BumpAllocator::new();
//! ```
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// An arena of `N` bytes handed out in order.
pub struct BumpAllocator<const N: usize> {
    arena: UnsafeCell<[u8; N]>,
    next: AtomicUsize,
}

// SAFETY: the arena is only reached through `alloc`, which hands out
// disjoint pieces, claimed with an atomic compare-and-swap of `next`.
unsafe impl<const N: usize> Sync for BumpAllocator<N> {}

impl<const N: usize> BumpAllocator<N> {
    /// An empty arena.
    pub const fn new() -> Self {
        BumpAllocator {
            arena: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
        }
    }

    /// Bytes handed out so far (including alignment padding).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Claims `layout` at the offset after `next`: the piece's start, or
    /// None when it does not fit.
    fn claim(&self, layout: Layout) -> Option<usize> {
        let base = self.arena.get() as usize;
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + next).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size())?;
            if end > N {
                return None;
            }
            match self
                .next
                .compare_exchange(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(start),
                Err(current) => next = current,
            }
        }
    }
}

impl<const N: usize> Default for BumpAllocator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for BumpAllocator<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BumpAllocator({} of {} bytes used)", self.used(), N)
    }
}

// SAFETY: `alloc` returns pieces of the arena that no other allocation
// overlaps (see `claim`), aligned as asked, or null; `dealloc` does
// nothing, which is always sound.
unsafe impl<const N: usize> GlobalAlloc for BumpAllocator<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.claim(layout) {
            // SAFETY: `start + size <= N`, so the pointer stays inside the
            // arena.
            Some(start) => unsafe { (self.arena.get() as *mut u8).add(start) },
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _pointer: *mut u8, _layout: Layout) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_aligned_disjoint_and_bounded() {
        let heap: BumpAllocator<256> = BumpAllocator::new();
        let a = Layout::from_size_align(3, 1).unwrap();
        let b = Layout::from_size_align(16, 8).unwrap();
        // SAFETY: test allocations from a local arena.
        let (pa, pb) = unsafe { (heap.alloc(a), heap.alloc(b)) };
        assert!(!pa.is_null() && !pb.is_null());
        assert_eq!(pb as usize % 8, 0);
        assert!(pb as usize >= pa as usize + 3);
        let huge = Layout::from_size_align(512, 4).unwrap();
        // SAFETY: as above.
        assert!(unsafe { heap.alloc(huge) }.is_null(), "too big: refused");
        assert!(heap.used() <= 256);
    }
}
