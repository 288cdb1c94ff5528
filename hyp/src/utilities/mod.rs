// SPDX-License-Identifier: MIT OR Apache-2.0
//! Small building blocks shared by every layer: MMIO references, once-only
//! static storage, and a bump allocator for boot-time allocations.

pub mod bump_allocator;
pub mod static_ref;
pub mod take_once;

pub use bump_allocator::BumpAllocator;
pub use static_ref::StaticRef;
pub use take_once::TakeOnce;
