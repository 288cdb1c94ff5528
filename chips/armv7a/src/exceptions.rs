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
            hdfar: 0,
            hifar: 0,
            hpfar: 0,
        };
    }
    FaultRegisters {
        hsr,
        hdfar: <Hdfar as SysRegRead>::read_raw(),
        hifar: <Hifar as SysRegRead>::read_raw(),
        hpfar: <Hpfar as SysRegRead>::read_raw(),
    }
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
