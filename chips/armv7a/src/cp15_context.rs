// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's CP15 state that must follow each VM across a switch.
//!
//! A guest's PL1 system registers (its MMU setup, fault registers, vector
//! base, thread IDs, virtual timer) live in the CPU while it runs; Hyp mode
//! does not use them, so they only need saving when another VM is about to
//! run on this CPU. [`Cp15Context::save`] reads them all, [`restore`] writes
//! them back.
//!
//! Not included: ACTLR (the guest sees the hypervisor's choice; its writes
//! are not meaningful on QEMU and HACTLR governs them on hardware), VPIDR and
//! VMPIDR (set once per VM, not saved), and FP/SIMD state (separate).
//!
//! [`restore`]: Cp15Context::restore

/// PL1 system registers of one guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cp15Context {
    /// SCTLR.
    pub sctlr: u32,
    /// TTBR0 (64-bit form; holds the 32-bit form in its low word).
    pub ttbr0: u64,
    /// TTBR1 (64-bit form).
    pub ttbr1: u64,
    /// TTBCR.
    pub ttbcr: u32,
    /// DACR.
    pub dacr: u32,
    /// DFSR.
    pub dfsr: u32,
    /// IFSR.
    pub ifsr: u32,
    /// DFAR.
    pub dfar: u32,
    /// IFAR.
    pub ifar: u32,
    /// PRRR, or MAIR0 with LPAE.
    pub prrr_mair0: u32,
    /// NMRR, or MAIR1 with LPAE.
    pub nmrr_mair1: u32,
    /// AMAIR0.
    pub amair0: u32,
    /// AMAIR1.
    pub amair1: u32,
    /// VBAR.
    pub vbar: u32,
    /// CONTEXTIDR.
    pub contextidr: u32,
    /// TPIDRURW.
    pub tpidrurw: u32,
    /// TPIDRURO.
    pub tpidruro: u32,
    /// TPIDRPRW.
    pub tpidrprw: u32,
    /// CSSELR.
    pub csselr: u32,
    /// PAR (64-bit form).
    pub par: u64,
    /// CNTKCTL.
    pub cntkctl: u32,
    /// CNTV_CTL.
    pub cntv_ctl: u32,
    /// CNTV_CVAL.
    pub cntv_cval: u64,
}

/// `mrc`/`mcr` of a 32-bit register, by its encoding.
#[cfg(target_arch = "arm")]
macro_rules! cp15_32 {
    (read $op1:literal, $crn:literal, $crm:literal, $op2:literal) => {{
        let value: u32;
        // SAFETY: reading a PL1 system register from Hyp mode has no side
        // effects.
        unsafe {
            core::arch::asm!(
                concat!("mrc p15, ", $op1, ", {}, c", $crn, ", c", $crm, ", ", $op2),
                out(reg) value,
                options(nomem, nostack, preserves_flags)
            )
        };
        value
    }};
    (write $op1:literal, $crn:literal, $crm:literal, $op2:literal, $value:expr) => {
        core::arch::asm!(
            concat!("mcr p15, ", $op1, ", {}, c", $crn, ", c", $crm, ", ", $op2),
            in(reg) $value,
            options(nomem, nostack, preserves_flags)
        )
    };
}

/// `mrrc`/`mcrr` of a 64-bit register.
#[cfg(target_arch = "arm")]
macro_rules! cp15_64 {
    (read $op1:literal, $crm:literal) => {{
        let (low, high): (u32, u32);
        // SAFETY: as for 32-bit reads.
        unsafe {
            core::arch::asm!(
                concat!("mrrc p15, ", $op1, ", {}, {}, c", $crm),
                out(reg) low,
                out(reg) high,
                options(nomem, nostack, preserves_flags)
            )
        };
        ((high as u64) << 32) | low as u64
    }};
    (write $op1:literal, $crm:literal, $value:expr) => {
        core::arch::asm!(
            concat!("mcrr p15, ", $op1, ", {}, {}, c", $crm),
            in(reg) $value as u32,
            in(reg) ($value >> 32) as u32,
            options(nomem, nostack, preserves_flags)
        )
    };
}

impl Cp15Context {
    /// Reads the guest's registers from the CPU.
    #[cfg(target_arch = "arm")]
    pub fn save() -> Cp15Context {
        Cp15Context {
            sctlr: cp15_32!(read 0, 1, 0, 0),
            ttbr0: cp15_64!(read 0, 2),
            ttbr1: cp15_64!(read 1, 2),
            ttbcr: cp15_32!(read 0, 2, 0, 2),
            dacr: cp15_32!(read 0, 3, 0, 0),
            dfsr: cp15_32!(read 0, 5, 0, 0),
            ifsr: cp15_32!(read 0, 5, 0, 1),
            dfar: cp15_32!(read 0, 6, 0, 0),
            ifar: cp15_32!(read 0, 6, 0, 2),
            prrr_mair0: cp15_32!(read 0, 10, 2, 0),
            nmrr_mair1: cp15_32!(read 0, 10, 2, 1),
            amair0: cp15_32!(read 0, 10, 3, 0),
            amair1: cp15_32!(read 0, 10, 3, 1),
            vbar: cp15_32!(read 0, 12, 0, 0),
            contextidr: cp15_32!(read 0, 13, 0, 1),
            tpidrurw: cp15_32!(read 0, 13, 0, 2),
            tpidruro: cp15_32!(read 0, 13, 0, 3),
            tpidrprw: cp15_32!(read 0, 13, 0, 4),
            csselr: cp15_32!(read 2, 0, 0, 0),
            par: cp15_64!(read 0, 7),
            cntkctl: cp15_32!(read 0, 14, 1, 0),
            cntv_ctl: cp15_32!(read 0, 14, 3, 1),
            cntv_cval: cp15_64!(read 3, 14),
        }
    }

    /// Reads the guest's registers from the CPU into this context, in place.
    #[cfg(target_arch = "arm")]
    #[inline(never)]
    pub fn save_into(&mut self) {
        *self = Cp15Context::save();
    }

    /// Writes the registers back into the CPU.
    ///
    /// # Safety
    /// The values must be ones the same guest had (from [`Self::save`]),
    /// and the guest must be the next thing to run at PL1.
    #[cfg(target_arch = "arm")]
    pub unsafe fn restore(&self) {
        // SAFETY: the caller guarantees these are the guest's own values;
        // none of these registers affects Hyp-mode translation or traps.
        unsafe {
            cp15_32!(write 0, 1, 0, 0, self.sctlr);
            cp15_64!(write 0, 2, self.ttbr0);
            cp15_64!(write 1, 2, self.ttbr1);
            cp15_32!(write 0, 2, 0, 2, self.ttbcr);
            cp15_32!(write 0, 3, 0, 0, self.dacr);
            cp15_32!(write 0, 5, 0, 0, self.dfsr);
            cp15_32!(write 0, 5, 0, 1, self.ifsr);
            cp15_32!(write 0, 6, 0, 0, self.dfar);
            cp15_32!(write 0, 6, 0, 2, self.ifar);
            cp15_32!(write 0, 10, 2, 0, self.prrr_mair0);
            cp15_32!(write 0, 10, 2, 1, self.nmrr_mair1);
            cp15_32!(write 0, 10, 3, 0, self.amair0);
            cp15_32!(write 0, 10, 3, 1, self.amair1);
            cp15_32!(write 0, 12, 0, 0, self.vbar);
            cp15_32!(write 0, 13, 0, 1, self.contextidr);
            cp15_32!(write 0, 13, 0, 2, self.tpidrurw);
            cp15_32!(write 0, 13, 0, 3, self.tpidruro);
            cp15_32!(write 0, 13, 0, 4, self.tpidrprw);
            cp15_32!(write 2, 0, 0, 0, self.csselr);
            cp15_64!(write 0, 7, self.par);
            cp15_32!(write 0, 14, 1, 0, self.cntkctl);
            cp15_32!(write 0, 14, 3, 1, self.cntv_ctl);
            cp15_64!(write 3, 14, self.cntv_cval);
        }
        aarch32_cpu::asm::isb();
    }
}
