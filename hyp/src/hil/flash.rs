// SPDX-License-Identifier: MIT OR Apache-2.0
//! A writable flash bank's memory, and whether the guest reads it directly.
//!
//! An emulated NOR flash (`capsules::flash`) keeps its contents in memory
//! the VM's stage 2 can map read-only: in read-array mode the guest reads
//! the bank straight from it (firmware reads flash with loads the
//! hypervisor could not emulate), and in a command mode (status, query,
//! erase, program) every access must reach the device instead, so the
//! board unmaps it. The capsule changes the bytes through [`FlashBank::memory`]
//! and tells the board which bytes it changed, so a guest reading the bank
//! uncached sees them ([`FlashBank::written`]).

use core::cell::Cell;

/// One flash bank's backing memory and its stage-2 mapping.
pub trait FlashBank {
    /// The bank's memory from its first byte (it may be shorter than the
    /// bank: the device answers for the rest).
    fn memory(&self) -> &[Cell<u8>];
    /// Maps the memory read-only into the VM (`true`: guest loads read it
    /// directly, stores fault to the device) or unmaps it (`false`: every
    /// access traps to the device). Takes effect on every vCPU of the VM
    /// before it returns.
    fn set_mapped(&self, mapped: bool);
    /// Bytes `offset..offset + len` of the memory were changed: makes them
    /// visible to the guest's reads, cached or not.
    fn written(&self, offset: usize, len: usize);
}
