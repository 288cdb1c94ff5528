// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's floating-point and Advanced SIMD state, switched eagerly.
//!
//! Guests such as a hard-float Linux userland use VFP/NEON all the time,
//! so Capvisor saves and restores the whole register file (d0-d31, FPSCR,
//! FPEXC) whenever it switches VMs, instead of trapping first use with
//! HCPTR (lazy switching). Eager is simpler and predictable; its cost is
//! paid only on a VM switch, never on an exit that returns to the same VM.
//! [`enable_hyp_fp_access`] clears HCPTR's traps once at boot so Hyp mode
//! itself may touch the registers.

use core::mem::{offset_of, size_of};

/// d0-d31, FPSCR and FPEXC of one guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpContext {
    /// The 32 double-word registers.
    pub d: [u64; 32],
    /// FPSCR.
    pub fpscr: u32,
    /// FPEXC (its EN bit says whether the guest has VFP turned on).
    pub fpexc: u32,
}

const _: () = {
    assert!(offset_of!(FpContext, fpscr) == 256);
    assert!(offset_of!(FpContext, fpexc) == 260);
    assert!(size_of::<FpContext>() == 264);
};

impl Default for FpContext {
    /// The reset state: zeros, VFP off.
    fn default() -> Self {
        FpContext {
            d: [0; 32],
            fpscr: 0,
            fpexc: 0,
        }
    }
}

/// HCPTR with no coprocessor traps: TCP10, TCP11 (bits 10, 11), TASE
/// (bit 15) and TTA (bit 20) clear; the reserved bits 13:12 and 9:0 set.
pub const HCPTR_NO_TRAPS: u32 = 0x0000_33ff;

#[cfg(target_arch = "arm")]
extern "C" {
    fn armv7a_fp_save(context: *mut FpContext);
    fn armv7a_fp_restore(context: *const FpContext);
}

/// Lets Hyp mode (and guests) use VFP/NEON: writes HCPTR.
#[cfg(target_arch = "arm")]
pub fn enable_hyp_fp_access() {
    use aarch32_cpu::register::{Hcptr, SysRegWrite};
    // SAFETY: removing the FP traps only allows FP instructions; guests get
    // their own state through FpContext at every switch.
    unsafe { <Hcptr as SysRegWrite>::write_raw(HCPTR_NO_TRAPS) };
    aarch32_cpu::asm::isb();
}

impl FpContext {
    /// Reads the live FP state.
    #[cfg(target_arch = "arm")]
    pub fn save() -> FpContext {
        let mut context = FpContext::default();
        context.save_into();
        context
    }

    /// Reads the live FP state into this context, in place (no copy of its
    /// 264 bytes: this runs at every VM switch).
    #[cfg(target_arch = "arm")]
    pub fn save_into(&mut self) {
        // SAFETY: the assembly writes exactly size_of::<FpContext>() bytes
        // into the context; HCPTR allows the access (enable_hyp_fp_access).
        unsafe { armv7a_fp_save(self) };
    }

    /// Loads this state into the FP registers.
    ///
    /// # Safety
    /// The state must belong to the guest that runs next.
    #[cfg(target_arch = "arm")]
    pub unsafe fn restore(&self) {
        // SAFETY: reads the context only; the caller vouches for its owner.
        unsafe { armv7a_fp_restore(self) };
    }
}

#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    r#"
    .arm
    .fpu neon
    .section .text.fp_context, "ax"

    @ armv7a_fp_save(r0 = FpContext *): d0-d31 at +0, FPSCR +256, FPEXC +260.
    .global armv7a_fp_save
    .type armv7a_fp_save, %function
armv7a_fp_save:
    vmrs    r1, fpexc               @ r1 := the guest's FPEXC
    str     r1, [r0, #260]
    orr     r2, r1, #0x40000000     @ EN, so the registers can be read
    vmsr    fpexc, r2
    vmrs    r2, fpscr
    str     r2, [r0, #256]
    vstmia  r0, {{d0-d15}}
    add     r3, r0, #128
    vstmia  r3, {{d16-d31}}
    bx      lr
    .size armv7a_fp_save, . - armv7a_fp_save

    @ armv7a_fp_restore(r0 = const FpContext *).
    .global armv7a_fp_restore
    .type armv7a_fp_restore, %function
armv7a_fp_restore:
    vmrs    r1, fpexc
    orr     r1, r1, #0x40000000     @ EN while the registers are written
    vmsr    fpexc, r1
    vldmia  r0, {{d0-d15}}
    add     r3, r0, #128
    vldmia  r3, {{d16-d31}}
    ldr     r2, [r0, #256]
    vmsr    fpscr, r2
    ldr     r1, [r0, #260]          @ the guest's own FPEXC, last
    vmsr    fpexc, r1
    bx      lr
    .size armv7a_fp_restore, . - armv7a_fp_restore
"#
);
