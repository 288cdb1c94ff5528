// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Rust side of the fatal Hyp exception path.
//!
//! Every vector in [`crate::entry`] saves a [`HypExceptionFrame`] on the fault
//! stack and calls [`armv7a_hyp_fatal`]. It gathers the syndrome and fault
//! address registers into a [`HypFault`] and panics with it, so the board's
//! panic handler prints one decoded report and exits QEMU with a non-zero
//! status. A fault taken while already on this path (the report itself
//! faulting) skips printing and exits at once.

use crate::fault::{HypExceptionFrame, HypFault, HypVector};
use crate::hsr::Hsr;
#[cfg(target_arch = "arm")]
use core::sync::atomic::{AtomicBool, Ordering};

/// Per CPU: set on its first entry to the fatal path.
#[cfg(target_arch = "arm")]
static IN_FATAL_PATH: [AtomicBool; crate::cpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; crate::cpu::MAX_CPUS];

/// The syndrome and fault-address registers at the time of an exception.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultRegisters {
    /// HSR.
    pub hsr: u32,
    /// HDFAR.
    pub hdfar: u32,
    /// HIFAR.
    pub hifar: u32,
    /// HPFAR.
    pub hpfar: u32,
    /// Whether `hpfar` was found by the hypervisor for a stage-2
    /// permission fault on a data access (where the CPU leaves HPFAR
    /// UNKNOWN), by translating HDFAR through the guest's stage 1
    /// (`read_exit_registers`).
    pub hpfar_translated: bool,
}

/// Reads HSR, HDFAR, HIFAR and HPFAR.
#[cfg(target_arch = "arm")]
pub fn read_fault_registers() -> FaultRegisters {
    use aarch32_cpu::register::{Hdfar, Hifar, Hpfar, Hsr as HsrRegister, SysRegRead};
    FaultRegisters {
        hsr: <HsrRegister as SysRegRead>::read_raw(),
        hdfar: <Hdfar as SysRegRead>::read_raw(),
        hifar: <Hifar as SysRegRead>::read_raw(),
        hpfar: <Hpfar as SysRegRead>::read_raw(),
        hpfar_translated: false,
    }
}

/// The syndrome registers of a guest exit, given its HSR: the fault address
/// registers only for an abort (exception classes 0x20 and 0x24; 0x21 and
/// 0x25 cannot come from a guest), the only exits that use them.
#[cfg(target_arch = "arm")]
#[inline]
pub fn read_exit_registers(hsr: u32) -> FaultRegisters {
    use aarch32_cpu::register::{Hdfar, Hifar, Hpfar, SysRegRead};
    // EC 0x20, 0x21, 0x24, 0x25: the prefetch and data aborts.
    if (hsr >> 26) & 0b11_1011 != 0b10_0000 {
        return FaultRegisters {
            hsr,
            ..FaultRegisters::default()
        };
    }
    let hdfar = <Hdfar as SysRegRead>::read_raw();
    // A stage-2 permission fault on a guest data access (EC 0x24, DFSC
    // 0b0011LL, not on a stage-1 walk): HPFAR is UNKNOWN, so find the IPA
    // from HDFAR.
    let permission = hsr >> 26 == 0x24 && hsr & 0b11_1100 == 0b00_1100 && hsr & (1 << 7) == 0;
    let translated = if permission {
        guest_ipa_page(hdfar)
    } else {
        None
    };
    FaultRegisters {
        hsr,
        hdfar,
        hifar: <Hifar as SysRegRead>::read_raw(),
        hpfar: translated.unwrap_or_else(<Hpfar as SysRegRead>::read_raw),
        hpfar_translated: translated.is_some(),
    }
}

/// The guest-physical page of guest virtual address `va`, in HPFAR's
/// format (IPA[31:12] in bits 23:4), as the guest's stage 1 translates
/// it for a PL1 read; `None` if that translation faults.
///
/// ATS1CPR from Hyp mode runs the stage-1 translation of the Non-secure
/// PL1&0 regime, which is the guest's: at a guest exit its SCTLR, TTBCR,
/// TTBRs and DACR are still in the CPU, and its table walks go through
/// its stage 2 (VTTBR). The result lands in PAR, which is the guest's
/// register too: it is put back as it was. A read is enough: the guest's
/// own stage 1 already allowed the store that faulted in stage 2. PAR
/// has the 64-bit format (bit 11 set) when the guest uses LPAE tables,
/// else the 32-bit one (a supersection, bit 1, gives only PA[31:24]).
#[cfg(target_arch = "arm")]
fn guest_ipa_page(va: u32) -> Option<u32> {
    let (low, high): (u32, u32);
    // SAFETY: reads and writes PAR and runs an address translation, which
    // touch no memory; PAR is restored before the guest runs again.
    unsafe {
        core::arch::asm!(
            "mrrc p15, 0, {saved_low}, {saved_high}, c7",
            "mcr p15, 0, {va}, c7, c8, 0",
            "isb",
            "mrrc p15, 0, {low}, {high}, c7",
            "mcrr p15, 0, {saved_low}, {saved_high}, c7",
            "isb",
            va = in(reg) va,
            saved_low = out(reg) _,
            saved_high = out(reg) _,
            low = out(reg) low,
            high = out(reg) high,
            options(nostack, preserves_flags)
        );
    }
    ipa_page_of_par(low, high, va)
}

/// HPFAR's format of the IPA in PAR (`low`, `high`) for `va`; `None`
/// when PAR reports a fault or an address past 4 GiB.
pub fn ipa_page_of_par(low: u32, high: u32, va: u32) -> Option<u32> {
    const FAULT: u32 = 1;
    const LONG_FORMAT: u32 = 1 << 11;
    const SUPERSECTION: u32 = 1 << 1;
    if low & FAULT != 0 {
        return None;
    }
    let ipa = if low & LONG_FORMAT != 0 {
        if high & 0xff != 0 {
            return None;
        }
        low & 0xffff_f000
    } else if low & SUPERSECTION != 0 {
        (low & 0xff00_0000) | (va & 0x00ff_f000)
    } else {
        low & 0xffff_f000
    };
    Some(ipa >> 8)
}

/// Builds the report for an exception from its frame and registers.
pub fn hyp_fault(vector: u32, frame: &HypExceptionFrame, registers: FaultRegisters) -> HypFault {
    HypFault {
        vector: HypVector::from_u32(vector),
        frame: *frame,
        hsr: Hsr(registers.hsr),
        hdfar: registers.hdfar,
        hifar: registers.hifar,
        hpfar: registers.hpfar,
    }
}

/// Called by the vector assembly with `r0` = the saved frame and `r1` = the
/// vector number. Never returns.
#[cfg(target_arch = "arm")]
#[no_mangle]
extern "C" fn armv7a_hyp_fatal(frame: &HypExceptionFrame, vector: u32) -> ! {
    // Plain load and store of this CPU's own flag (no exclusives: the MMU
    // may still be off; every exception is masked on this path). A second
    // CPU's fault goes on to the panic handler, which lets the first
    // report finish.
    let in_fatal_path = &IN_FATAL_PATH[crate::cpu::current()];
    if in_fatal_path.load(Ordering::Relaxed) {
        crate::semihosting::exit(hyp::exit::ExitCode::Fatal.status());
    }
    in_fatal_path.store(true, Ordering::Relaxed);
    let fault = hyp_fault(vector, frame, read_fault_registers());
    panic!("{}", fault);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_gives_the_ipa_page_in_hpfar_format() {
        // Short-descriptor PAR: PA[31:12], attributes below.
        assert_eq!(
            ipa_page_of_par(0x0400_0464, 0, 0xc000_0080),
            Some(0x0004_0000)
        );
        // Long-descriptor PAR (bit 11): PA[39:12], past 4 GiB refused.
        assert_eq!(
            ipa_page_of_par(0x0412_3800 | 0x0f0, 0, 0x1234),
            Some(0x0004_1230)
        );
        assert_eq!(ipa_page_of_par(0x0412_3800, 1, 0x1234), None);
        // A supersection: PA[31:24] from PAR, the rest from the VA.
        assert_eq!(
            ipa_page_of_par(0x0500_0002, 0, 0xc0ab_c123),
            Some(0x0005_abc0)
        );
        // The translation faulted.
        assert_eq!(ipa_page_of_par(0x0000_000d, 0, 0), None);
        assert_eq!(
            crate::hsr::faulting_ipa(ipa_page_of_par(0x0400_0000, 0, 0x80).unwrap(), 0x80),
            0x0400_0080
        );
    }
}
