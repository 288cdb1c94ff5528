// SPDX-License-Identifier: MIT OR Apache-2.0
//! Calling the firmware's PSCI from Hyp mode, by SMC (SMCCC 32-bit calling
//! convention: function id in r0, arguments in r1-r3, result in r0; r0-r3
//! may be clobbered), to start the secondary CPUs.
//!
//! A CPU started with [`start_secondary`] enters `_start_secondary`
//! ([`crate::entry`]) in Hyp mode with its MMU off and r0 = its CPU number.

#[cfg(target_arch = "arm")]
use hyp::psci::PsciError;

/// One SMC32 call: `function` with `arguments` in r1-r3; returns r0.
#[cfg(target_arch = "arm")]
fn call(function: u32, arguments: [u32; 3]) -> u32 {
    let mut r0 = function;
    // SAFETY: the callers pass PSCI functions that only change power
    // states of other CPUs or read versions; SMCCC lets the firmware
    // clobber r0-r3 (declared) and keeps everything else.
    unsafe {
        core::arch::asm!(
            ".arch_extension sec",
            "smc #0",
            inout("r0") r0,
            inout("r1") arguments[0] => _,
            inout("r2") arguments[1] => _,
            inout("r3") arguments[2] => _,
            options(nostack)
        )
    };
    r0
}

/// PSCI_VERSION: major << 16 | minor.
#[cfg(target_arch = "arm")]
pub fn version() -> u32 {
    call(hyp::psci::VERSION, [0; 3])
}

/// Turns on CPU `cpu` (MPIDR affinity `affinity`) at `_start_secondary`,
/// with r0 = `cpu`.
///
/// # Safety
/// The CPU runs the image's code from its entry with the stack slot of
/// CPU `cpu` (which must be below the linker script's `CPUS` and used by no
/// running CPU), and calls the board's `capvisor_secondary_main`.
#[cfg(target_arch = "arm")]
pub unsafe fn start_secondary(cpu: usize, affinity: u32) -> Result<(), PsciError> {
    extern "C" {
        fn _start_secondary();
    }
    // The image is identity mapped: the entry's address is the physical
    // one the CPU starts at with its MMU off.
    let entry = _start_secondary as *const () as usize as u32;
    hyp::psci::result(call(hyp::psci::CPU_ON, [affinity, entry, cpu as u32]))
}
