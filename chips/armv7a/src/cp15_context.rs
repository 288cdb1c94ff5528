// SPDX-License-Identifier: MIT OR Apache-2.0
//! The guest's CP15 state that must follow each VM across a switch.
//!
//! A guest's PL1 system registers (its MMU setup, fault registers, vector
//! base, thread IDs, virtual timer) live in the CPU while it runs; Hyp mode
//! does not use them, so they only need saving when another VM is about to
//! run on this CPU. [`Cp15Context::save`] reads them all, [`restore`] writes
//! them back.
//!
//! The performance monitors ([`PmuContext`]) are switched too, lazily (see
//! `vcpu`): every event counter a guest can reach (HDCR.HPMN gives guests
//! all of them, up to [`MAX_EVENT_COUNTERS`]), their event types, the cycle
//! counter and its filter, the enable, interrupt-enable and overflow flags,
//! PMSELR and PMUSERENR. A guest's counters therefore count only while it
//! runs (and, unless it sets PMCCFILTR.NSH, not in Hyp mode), and no VM
//! sees or changes another's.
//!
//! Not included: ACTLR (trapped and emulated per vCPU), VPIDR and VMPIDR
//! (set once at boot: what guests read as MIDR and MPIDR), and FP/SIMD
//! state (separate). `docs/isolation.md` accounts for every register a
//! guest can reach.
//!
//! [`restore`]: Cp15Context::restore

/// PL1 system registers of one guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cp15Context {
    /// SCTLR.
    pub sctlr: u32,
    /// CPACR (coprocessor access: whether the guest has VFP/NEON on).
    pub cpacr: u32,
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
    /// ADFSR (implementation defined; switched rather than trusted to be
    /// read-as-zero).
    pub adfsr: u32,
    /// AIFSR (as ADFSR).
    pub aifsr: u32,
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
    /// TEECR (CP14: ThumbEE configuration; Cortex-A15 and A7 have
    /// ThumbEE).
    pub teecr: u32,
    /// TEEHBR (CP14: the ThumbEE handler base).
    pub teehbr: u32,
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

/// `mrc`/`mcr p14, 6, Rt, c<crn>, c0, 0`: the ThumbEE registers (TEECR at
/// c0, TEEHBR at c1).
#[cfg(target_arch = "arm")]
macro_rules! cp14_thumbee {
    (read $crn:literal) => {{
        let value: u32;
        // SAFETY: reading a ThumbEE register from Hyp mode has no side
        // effects.
        unsafe {
            core::arch::asm!(
                concat!("mrc p14, 6, {}, c", $crn, ", c0, 0"),
                out(reg) value,
                options(nomem, nostack, preserves_flags)
            )
        };
        value
    }};
    (write $crn:literal, $value:expr) => {
        core::arch::asm!(
            concat!("mcr p14, 6, {}, c", $crn, ", c0, 0"),
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

/// The most event counters switched per VM (a Cortex-A15 has 6; QEMU's
/// has 4); counters beyond are kept from guests by HDCR.HPMN.
pub const MAX_EVENT_COUNTERS: usize = 8;

/// PMCR.E: counters enabled.
#[cfg(target_arch = "arm")]
const PMCR_E: u32 = 1 << 0;
/// PMCR.P and PMCR.C: reset the event counters and the cycle counter
/// (actions, never restored).
#[cfg(target_arch = "arm")]
const PMCR_ACTIONS: u32 = (1 << 1) | (1 << 2);
/// PMSELR's value that selects PMCCFILTR through PMXEVTYPER.
#[cfg(target_arch = "arm")]
const SELECT_CYCLE_FILTER: u32 = 31;

/// One guest's performance-monitor state (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmuContext {
    /// PMCR (without the P and C actions).
    pub pmcr: u32,
    /// PMCNTENSET: which counters are enabled.
    pub enabled: u32,
    /// PMINTENSET: which overflow interrupts are enabled.
    pub interrupts: u32,
    /// PMOVSR: which counters overflowed.
    pub overflows: u32,
    /// PMSELR.
    pub selected: u32,
    /// PMUSERENR.
    pub user_enable: u32,
    /// PMCCNTR.
    pub cycles: u32,
    /// PMCCFILTR.
    pub cycle_filter: u32,
    /// PMXEVTYPERn, for the guests' counters.
    pub event_types: [u32; MAX_EVENT_COUNTERS],
    /// PMXEVCNTRn.
    pub event_counts: [u32; MAX_EVENT_COUNTERS],
}

/// How many event counters guests get: PMCR.N, at most
/// [`MAX_EVENT_COUNTERS`].
#[cfg(target_arch = "arm")]
pub fn guest_event_counters() -> usize {
    let pmcr = cp15_32!(read 0, 9, 12, 0);
    (((pmcr >> 11) & 0x1f) as usize).min(MAX_EVENT_COUNTERS)
}

impl PmuContext {
    /// Reads the performance monitors from the CPU.
    #[cfg(target_arch = "arm")]
    pub fn save() -> PmuContext {
        let mut pmu = PmuContext {
            pmcr: cp15_32!(read 0, 9, 12, 0) & !PMCR_ACTIONS,
            enabled: cp15_32!(read 0, 9, 12, 1),
            interrupts: cp15_32!(read 0, 9, 14, 1),
            overflows: cp15_32!(read 0, 9, 12, 3),
            selected: cp15_32!(read 0, 9, 12, 5),
            user_enable: cp15_32!(read 0, 9, 14, 0),
            cycles: cp15_32!(read 0, 9, 13, 0),
            ..PmuContext::default()
        };
        for counter in 0..guest_event_counters() {
            // SAFETY: PMSELR only selects which counter PMXEVTYPER and
            // PMXEVCNTR reach; the guest's own selection is restored with
            // the rest of its state before it runs.
            unsafe { cp15_32!(write 0, 9, 12, 5, counter as u32) };
            aarch32_cpu::asm::isb();
            pmu.event_types[counter] = cp15_32!(read 0, 9, 13, 1);
            pmu.event_counts[counter] = cp15_32!(read 0, 9, 13, 2);
        }
        // SAFETY: as above.
        unsafe { cp15_32!(write 0, 9, 12, 5, SELECT_CYCLE_FILTER) };
        aarch32_cpu::asm::isb();
        pmu.cycle_filter = cp15_32!(read 0, 9, 13, 1);
        pmu
    }

    /// Stops every counter (PMCR.E clear), so that a guest's counts do not
    /// run on while another VM has the CPU.
    #[cfg(target_arch = "arm")]
    pub fn stop_counting() {
        let pmcr = cp15_32!(read 0, 9, 12, 0);
        // SAFETY: clearing PMCR.E only stops the counters.
        unsafe { cp15_32!(write 0, 9, 12, 0, pmcr & !(PMCR_E | PMCR_ACTIONS)) };
    }

    /// Whether `access` is to a performance-monitor register (CP15 c9,
    /// c12-c14 with opc1 0).
    pub fn is_pmu_register(access: &hyp::trap::SystemRegisterAccess) -> bool {
        access.coprocessor == 15
            && access.opc1 == 0
            && access.crn == 9
            && (12..=14).contains(&access.crm)
            && access.register2.is_none()
    }

    /// Writes the performance monitors back: counting stops first, every
    /// counter and flag is set, and counting resumes as the guest had it.
    ///
    /// # Safety
    /// As for [`Cp15Context::restore`].
    #[cfg(target_arch = "arm")]
    pub unsafe fn restore(&self) {
        // SAFETY: the guest's own values (the caller's promise); these
        // registers count and signal for PL0/PL1 only, unless the guest's
        // own PMCCFILTR.NSH counts its time in Hyp mode.
        unsafe {
            cp15_32!(write 0, 9, 12, 0, self.pmcr & !(PMCR_E | PMCR_ACTIONS));
            cp15_32!(write 0, 9, 12, 2, u32::MAX); // PMCNTENCLR
            cp15_32!(write 0, 9, 14, 2, u32::MAX); // PMINTENCLR
            cp15_32!(write 0, 9, 12, 3, u32::MAX); // PMOVSR: write 1 to clear
            for counter in 0..guest_event_counters() {
                cp15_32!(write 0, 9, 12, 5, counter as u32);
                aarch32_cpu::asm::isb();
                cp15_32!(write 0, 9, 13, 1, self.event_types[counter]);
                cp15_32!(write 0, 9, 13, 2, self.event_counts[counter]);
            }
            cp15_32!(write 0, 9, 12, 5, SELECT_CYCLE_FILTER);
            aarch32_cpu::asm::isb();
            cp15_32!(write 0, 9, 13, 1, self.cycle_filter);
            cp15_32!(write 0, 9, 13, 0, self.cycles);
            cp15_32!(write 0, 9, 14, 3, self.overflows); // PMOVSSET
            cp15_32!(write 0, 9, 14, 1, self.interrupts); // PMINTENSET
            cp15_32!(write 0, 9, 12, 1, self.enabled); // PMCNTENSET
            cp15_32!(write 0, 9, 14, 0, self.user_enable);
            cp15_32!(write 0, 9, 12, 5, self.selected);
            cp15_32!(write 0, 9, 12, 0, self.pmcr);
        }
    }
}

impl Cp15Context {
    /// Reads the guest's registers from the CPU.
    #[cfg(target_arch = "arm")]
    pub fn save() -> Cp15Context {
        Cp15Context {
            sctlr: cp15_32!(read 0, 1, 0, 0),
            cpacr: cp15_32!(read 0, 1, 0, 2),
            ttbr0: cp15_64!(read 0, 2),
            ttbr1: cp15_64!(read 1, 2),
            ttbcr: cp15_32!(read 0, 2, 0, 2),
            dacr: cp15_32!(read 0, 3, 0, 0),
            dfsr: cp15_32!(read 0, 5, 0, 0),
            ifsr: cp15_32!(read 0, 5, 0, 1),
            adfsr: cp15_32!(read 0, 5, 1, 0),
            aifsr: cp15_32!(read 0, 5, 1, 1),
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
            teecr: cp14_thumbee!(read 0),
            teehbr: cp14_thumbee!(read 1),
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
            cp15_32!(write 0, 1, 0, 2, self.cpacr);
            cp15_64!(write 0, 2, self.ttbr0);
            cp15_64!(write 1, 2, self.ttbr1);
            cp15_32!(write 0, 2, 0, 2, self.ttbcr);
            cp15_32!(write 0, 3, 0, 0, self.dacr);
            cp15_32!(write 0, 5, 0, 0, self.dfsr);
            cp15_32!(write 0, 5, 0, 1, self.ifsr);
            cp15_32!(write 0, 5, 1, 0, self.adfsr);
            cp15_32!(write 0, 5, 1, 1, self.aifsr);
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
            cp14_thumbee!(write 0, self.teecr);
            cp14_thumbee!(write 1, self.teehbr);
            cp15_32!(write 0, 14, 3, 1, self.cntv_ctl);
            cp15_64!(write 3, 14, self.cntv_cval);
        }
        aarch32_cpu::asm::isb();
    }
}
