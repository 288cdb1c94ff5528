// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Hyp-mode CP15 registers that `aarch32-cpu` does not define.
//!
//! `aarch32-cpu` provides HSCTLR, HVBAR, HMAIR0/1, HSR, HDFAR and friends;
//! HTTBR, HTCR and the Hyp TLB invalidate are added here, in the same shape
//! (its `SysReg`/`SysReg64` traits), so the rest of the crate reads them the
//! same way. Encodings are from the ARMv7-A Architecture Reference Manual.

use aarch32_cpu::register::{
    SysReg, SysReg64, SysRegRead, SysRegRead64, SysRegWrite, SysRegWrite64,
};

/// HTTBR (*Hyp Translation Table Base Register*), 64-bit:
/// `mcrr p15, 4, <lo>, <hi>, c2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Httbr(pub u64);

impl SysReg64 for Httbr {
    const CP: u32 = 15;
    const OP1: u32 = 4;
    const CRM: u32 = 2;
}
impl SysRegRead64 for Httbr {}
impl SysRegWrite64 for Httbr {}

impl Httbr {
    /// Reads HTTBR.
    pub fn read() -> Httbr {
        Httbr(<Self as SysRegRead64>::read_raw())
    }

    /// Writes HTTBR.
    ///
    /// # Safety
    /// The value must be the physical address of a valid, suitably aligned
    /// level-1 table whose mappings cover everything the hypervisor touches,
    /// or the MMU must be off until it is.
    pub unsafe fn write(value: Httbr) {
        // SAFETY: forwarded to the caller.
        unsafe { <Self as SysRegWrite64>::write_raw(value.0) }
    }
}

/// HTCR (*Hyp Translation Control Register*): `p15, 4, c2, c0, 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Htcr(pub u32);

impl SysReg for Htcr {
    const CP: u32 = 15;
    const CRN: u32 = 2;
    const OP1: u32 = 4;
    const CRM: u32 = 0;
    const OP2: u32 = 2;
}
impl SysRegRead for Htcr {}
impl SysRegWrite for Htcr {}

impl Htcr {
    /// Reads HTCR.
    pub fn read() -> Htcr {
        Htcr(<Self as SysRegRead>::read_raw())
    }

    /// Writes HTCR.
    ///
    /// # Safety
    /// Changing the translation controls while the Hyp MMU is on changes
    /// how every hypervisor address is translated.
    pub unsafe fn write(value: Htcr) {
        // SAFETY: forwarded to the caller.
        unsafe { <Self as SysRegWrite>::write_raw(value.0) }
    }
}

/// TLBIALLH (*invalidate entire Hyp unified TLB*): `p15, 4, c8, c7, 0`.
#[derive(Clone, Copy, Debug)]
pub struct TlbiAllH;

impl SysReg for TlbiAllH {
    const CP: u32 = 15;
    const CRN: u32 = 8;
    const OP1: u32 = 4;
    const CRM: u32 = 7;
    const OP2: u32 = 0;
}
impl SysRegWrite for TlbiAllH {}

impl TlbiAllH {
    /// Invalidates every Hyp-mode TLB entry. The caller follows it with DSB
    /// and ISB before relying on new translations.
    pub fn write() {
        // SAFETY: invalidating TLB entries only forces fresh table walks; it
        // cannot change what any address translates to.
        unsafe { <Self as SysRegWrite>::write_raw(0) }
    }
}

/// HTPIDR (*Hyp Software Thread ID Register*): `p15, 4, c13, c0, 2`. The
/// fatal exception path borrows it as a scratch register.
#[derive(Clone, Copy, Debug)]
pub struct Htpidr(pub u32);

impl SysReg for Htpidr {
    const CP: u32 = 15;
    const CRN: u32 = 13;
    const OP1: u32 = 4;
    const CRM: u32 = 0;
    const OP2: u32 = 2;
}
impl SysRegRead for Htpidr {}

impl Htpidr {
    /// Reads HTPIDR.
    pub fn read() -> Htpidr {
        Htpidr(<Self as SysRegRead>::read_raw())
    }
}

/// VTTBR (*Virtualization Translation Table Base Register*), 64-bit:
/// `mcrr p15, 6, <lo>, <hi>, c2`. VMID in bits 55:48.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vttbr(pub u64);

impl SysReg64 for Vttbr {
    const CP: u32 = 15;
    const OP1: u32 = 6;
    const CRM: u32 = 2;
}
impl SysRegRead64 for Vttbr {}
impl SysRegWrite64 for Vttbr {}

impl Vttbr {
    /// Reads VTTBR.
    pub fn read() -> Vttbr {
        Vttbr(<Self as SysRegRead64>::read_raw())
    }

    /// Writes VTTBR.
    ///
    /// # Safety
    /// The tables must map only memory the next guest to run may use.
    pub unsafe fn write(value: Vttbr) {
        // SAFETY: forwarded to the caller.
        unsafe { <Self as SysRegWrite64>::write_raw(value.0) }
    }
}

/// VTCR (*Virtualization Translation Control Register*): `p15, 4, c2, c1, 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vtcr(pub u32);

impl SysReg for Vtcr {
    const CP: u32 = 15;
    const CRN: u32 = 2;
    const OP1: u32 = 4;
    const CRM: u32 = 1;
    const OP2: u32 = 2;
}
impl SysRegRead for Vtcr {}
impl SysRegWrite for Vtcr {}

impl Vtcr {
    /// Reads VTCR.
    pub fn read() -> Vtcr {
        Vtcr(<Self as SysRegRead>::read_raw())
    }

    /// Writes VTCR.
    ///
    /// # Safety
    /// Changes how every guest address is translated.
    pub unsafe fn write(value: Vtcr) {
        // SAFETY: forwarded to the caller.
        unsafe { <Self as SysRegWrite>::write_raw(value.0) }
    }
}

/// TLBIALLNSNH (*invalidate all non-secure, non-Hyp TLB entries*):
/// `p15, 4, c8, c7, 4`. Used when a VM's stage-2 tables change.
#[derive(Clone, Copy, Debug)]
pub struct TlbiAllNsNh;

impl SysReg for TlbiAllNsNh {
    const CP: u32 = 15;
    const CRN: u32 = 8;
    const OP1: u32 = 4;
    const CRM: u32 = 7;
    const OP2: u32 = 4;
}
impl SysRegWrite for TlbiAllNsNh {}

impl TlbiAllNsNh {
    /// Invalidates every guest TLB entry (all VMIDs).
    pub fn write() {
        // SAFETY: invalidation only forces fresh table walks.
        unsafe { <Self as SysRegWrite>::write_raw(0) }
    }
}
