// SPDX-License-Identifier: MIT OR Apache-2.0
//! Identifying the CPU and its current mode.
//!
//! The banner names the core from MIDR, and boot refuses to continue unless
//! the CPU is in Hyp mode with the Virtualization Extensions present. The
//! decoding is pure and tested on the host; only the register reads are not.

use core::fmt;

/// The CPSR/SPSR mode field value for Hyp mode.
pub const MODE_HYP: u32 = 0x1a;

/// A decoded MIDR (*Main ID Register*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuId(pub u32);

impl CpuId {
    /// Implementer code, bits 31:24 (0x41 = Arm).
    pub const fn implementer(self) -> u32 {
        self.0 >> 24
    }
    /// Primary part number, bits 15:4.
    pub const fn part(self) -> u32 {
        (self.0 >> 4) & 0xfff
    }
    /// Variant, bits 23:20 (the `rN` of `rNpM`).
    pub const fn variant(self) -> u32 {
        (self.0 >> 20) & 0xf
    }
    /// Revision, bits 3:0 (the `pM` of `rNpM`).
    pub const fn revision(self) -> u32 {
        self.0 & 0xf
    }
    /// The core's name, when Capvisor knows it.
    pub const fn name(self) -> Option<&'static str> {
        if self.implementer() != 0x41 {
            return None;
        }
        match self.part() {
            0xc07 => Some("Cortex-A7"),
            0xc0d => Some("Cortex-A12"),
            0xc0e => Some("Cortex-A17"),
            0xc0f => Some("Cortex-A15"),
            _ => None,
        }
    }
}

impl fmt::Display for CpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Arm {}", name)?,
            None => write!(
                f,
                "implementer {:#04x} part {:#05x}",
                self.implementer(),
                self.part()
            )?,
        }
        write!(
            f,
            " r{}p{} (MIDR {:#010x})",
            self.variant(),
            self.revision(),
            self.0
        )
    }
}

/// Whether ID_PFR1 reports the Virtualization Extensions (bits 15:12 = 1).
pub const fn has_virtualization_extensions(id_pfr1: u32) -> bool {
    (id_pfr1 >> 12) & 0xf == 1
}

/// Reads MIDR.
#[cfg(target_arch = "arm")]
pub fn cpu_id() -> CpuId {
    {
        use aarch32_cpu::register::{Midr, SysRegRead};
        CpuId(<Midr as SysRegRead>::read_raw())
    }
}

/// The most CPUs Capvisor starts: the per-CPU tables (fault stacks, the
/// debug-register flag, boards' per-CPU state) have this many entries
/// (defined in `hyp`).
pub use hyp::config::MAX_CPUS;

/// This CPU's number: MPIDR.Aff0, below [`MAX_CPUS`] on every CPU
/// Capvisor starts (a board with clusters, where Aff1 tells cores apart,
/// would map its affinities to numbers here; see `docs/porting.md`).
#[cfg(target_arch = "arm")]
#[inline]
pub fn current() -> usize {
    let mpidr: u32;
    // SAFETY: reading MPIDR has no side effects.
    unsafe {
        core::arch::asm!("mrc p15, 0, {}, c0, c0, 5", out(reg) mpidr, options(nomem, nostack, preserves_flags))
    };
    (mpidr & 0xff) as usize % MAX_CPUS
}

/// Reads ID_PFR1.
#[cfg(target_arch = "arm")]
pub fn id_pfr1() -> u32 {
    use aarch32_cpu::register::{IdPfr1, SysRegRead};
    <IdPfr1 as SysRegRead>::read_raw()
}

/// The current CPSR mode field.
#[cfg(target_arch = "arm")]
pub fn current_mode() -> u32 {
    let cpsr: u32;
    // SAFETY: reading CPSR has no side effects.
    unsafe {
        core::arch::asm!("mrs {}, cpsr", out(reg) cpsr, options(nomem, nostack, preserves_flags))
    };
    cpsr & 0x1f
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn qemu_cortex_a15() {
        let id = CpuId(0x414f_c0f0);
        assert_eq!(id.name(), Some("Cortex-A15"));
        assert_eq!(format!("{}", id), "Arm Cortex-A15 r4p0 (MIDR 0x414fc0f0)");
    }

    #[test]
    fn unknown_core_prints_its_codes() {
        let id = CpuId(0x5100_1234);
        assert_eq!(id.name(), None);
        assert_eq!(
            format!("{}", id),
            "implementer 0x51 part 0x123 r0p4 (MIDR 0x51001234)"
        );
    }

    #[test]
    fn virtualization_extensions_from_id_pfr1() {
        assert!(has_virtualization_extensions(0x0001_1001));
        assert!(!has_virtualization_extensions(0x0000_1011 & !0xf000));
    }
}

/// Waits for an interrupt (WFI). In Hyp mode Capvisor runs with IRQs
/// masked, so a pending interrupt ends the wait without being taken: the
/// caller services it.
#[cfg(target_arch = "arm")]
pub fn wait_for_interrupt() {
    aarch32_cpu::asm::dsb();
    aarch32_cpu::asm::wfi();
}

/// Signals an event to every CPU (SEV): CPUs waiting in
/// [`wait_for_event`] look again.
#[cfg(target_arch = "arm")]
pub fn send_event() {
    aarch32_cpu::asm::dsb();
    aarch32_cpu::asm::sev();
}

/// Waits for an event (WFE): another CPU's [`send_event`], an interrupt,
/// or nothing at all (WFE may return early; callers look again).
#[cfg(target_arch = "arm")]
pub fn wait_for_event() {
    aarch32_cpu::asm::wfe();
}

/// A full data barrier (DSB SY): every memory access before it completes
/// before any after it (a kick's SGI after the state it announces).
#[cfg(target_arch = "arm")]
pub fn data_barrier() {
    aarch32_cpu::asm::dsb();
}
