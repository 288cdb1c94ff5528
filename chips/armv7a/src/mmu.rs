// SPDX-License-Identifier: MIT OR Apache-2.0
//! Turning on the Hyp-mode MMU and caches, once, at boot.
//!
//! The board builds the Hyp stage-1 tables with [`crate::hyp_tables`], proves
//! their coverage, then calls [`enable_hyp_mmu`]. The sequence follows the
//! architecture's rules for enabling translation with an identity map:
//! program HMAIR0/1, HTCR and HTTBR; invalidate stale TLB entries and caches;
//! then set HSCTLR.M (translation), C and I (caches) and WXN (no writable page
//! is ever executable) with the barriers that make each step visible.

/// The Hyp translation settings: table base and attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypTranslation {
    /// Physical address of the level-1 table (HTTBR).
    pub table_base: u64,
    /// HTCR value.
    pub htcr: u32,
    /// HMAIR0 value (attribute indexes 0-3).
    pub hmair0: u32,
    /// HMAIR1 value (attribute indexes 4-7).
    pub hmair1: u32,
}

/// HSCTLR bits Capvisor sets: M (bit 0), C (bit 2), I (bit 12), WXN (bit 19).
pub const HSCTLR_ENABLE_BITS: u32 = (1 << 0) | (1 << 2) | (1 << 12) | (1 << 19);
/// HSCTLR bits Capvisor clears: A (bit 1, alignment checks: Rust code may
/// do unaligned accesses on Normal memory), EE (bit 25), TE (bit 30).
pub const HSCTLR_DISABLE_BITS: u32 = (1 << 1) | (1 << 25) | (1 << 30);

/// The HSCTLR value to write, given the current one: only the bits above
/// change, RES1/RES0 bits keep whatever the CPU reset them to.
pub const fn hsctlr_with_mmu_on(current: u32) -> u32 {
    (current & !HSCTLR_DISABLE_BITS) | HSCTLR_ENABLE_BITS
}

/// Programs the Hyp translation registers and turns on the MMU, the caches
/// and WXN.
///
/// # Safety
/// The tables at `translation.table_base` must identity-map everything the
/// hypervisor will touch from now on (its code, the current stack, its data
/// and the devices it uses) and must never be changed afterwards. Call once,
/// with the MMU off.
#[cfg(target_arch = "arm")]
pub unsafe fn enable_hyp_mmu(translation: &HypTranslation) {
    // SAFETY: the caches are still off and nothing in them matters yet
    // (boot-time caller, per this function's contract).
    unsafe { crate::cache::invalidate_all_caches() };
    // SAFETY: this function's contract.
    unsafe { turn_on(translation) };
}

/// [`enable_hyp_mmu`] for a secondary CPU, on the tables the boot CPU
/// built: only this CPU's private caches are invalidated (the shared ones
/// hold the running CPUs' data).
///
/// # Safety
/// As [`enable_hyp_mmu`]; the tables must be the boot CPU's, written to
/// memory (they were built with the caches off) and mapping this CPU's
/// stack.
#[cfg(target_arch = "arm")]
pub unsafe fn enable_hyp_mmu_secondary(translation: &HypTranslation) {
    // SAFETY: this CPU's caches are off and hold nothing of its own yet.
    unsafe { crate::cache::invalidate_local_caches() };
    // SAFETY: this function's contract.
    unsafe { turn_on(translation) };
}

/// Programs the translation registers, invalidates this CPU's Hyp TLB
/// entries and sets HSCTLR.
#[cfg(target_arch = "arm")]
unsafe fn turn_on(translation: &HypTranslation) {
    use crate::registers::{Htcr, Httbr, TlbiAllH};
    use aarch32_cpu::asm::{dsb, isb};
    use aarch32_cpu::register::{Hmair0, Hmair1, Hsctlr, SysRegRead, SysRegWrite};

    // SAFETY: with the MMU still off these registers have no effect until
    // HSCTLR.M is set below; their values come from the table builder.
    unsafe {
        <Hmair0 as SysRegWrite>::write_raw(translation.hmair0);
        <Hmair1 as SysRegWrite>::write_raw(translation.hmair1);
        Htcr::write(Htcr(translation.htcr));
        Httbr::write(Httbr(translation.table_base));
    }
    // Make the table writes and register updates visible to the walker.
    dsb();
    isb();
    TlbiAllH::write();
    dsb();
    isb();
    let hsctlr = hsctlr_with_mmu_on(<Hsctlr as SysRegRead>::read_raw());
    // SAFETY: the caller guarantees the tables identity-map this code, the
    // stack and everything used afterwards, so execution continues at the
    // same addresses with translation on.
    unsafe { <Hsctlr as SysRegWrite>::write_raw(hsctlr) };
    isb();
}

/// Whether HSCTLR.M is set (the Hyp MMU is on).
#[cfg(target_arch = "arm")]
pub fn hyp_mmu_enabled() -> bool {
    use aarch32_cpu::register::{Hsctlr, SysRegRead};
    <Hsctlr as SysRegRead>::read_raw() & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsctlr_keeps_reserved_bits_and_sets_ours() {
        // HSCTLR reset value on a Cortex-A15: RES1 bits 29:28, 23:22, 18, 16, 11, 4:3.
        let reset = 0x30c5_0818;
        let on = hsctlr_with_mmu_on(reset);
        assert_eq!(on, reset | 0x0008_1005);
        // A, EE and TE forced off even if a boot loader left them on.
        let odd = reset | (1 << 1) | (1 << 25) | (1 << 30);
        assert_eq!(hsctlr_with_mmu_on(odd), on);
    }
}
