// SPDX-License-Identifier: MIT OR Apache-2.0
//! Faults reflected into the guest, each arriving at the guest's own
//! vector with the registers the architecture defines, after which the
//! guest carries on:
//! - loads and stores at IPAs nobody claims (below RAM, past its end, the
//!   host's RAM alias and devices) → data abort, DFSR external abort
//!   (0x008, WnR for a store), DFAR = the address, LR_abt = the load + 8,
//!   SPSR_abt = the CPSR at the load;
//! - the same with TTBCR.EAE set → DFSR in the long-descriptor format;
//! - a branch to an unclaimed IPA → prefetch abort, IFSR 0x008, IFAR;
//! - `udf` (taken by the guest itself) and a c15 access (trapped by
//!   HSTR.T15 and reflected) → undefined instruction, LR_und = it + 4;
//! - ACTLR, trapped and emulated per vCPU.
#![no_std]
#![no_main]

use capvisor_test_guests::{expect_exception, expect_prefetch_abort, vector, Checks, Exception};

capvisor_test_guests::guest!("exceptions", main);

/// The guest's RAM (2 MiB, from the board's table).
const RAM_END: u32 = 0x4020_0000;

/// Loads from `address` and returns (the exception, the load's address).
fn load(address: u32) -> (Option<Exception>, u32) {
    let mut at = 0u32;
    let exception = expect_exception(|| {
        // SAFETY: the load aborts; the handler resumes after it.
        unsafe {
            core::arch::asm!(
                "adr {at}, 1f",
                "1: ldr {value}, [{address}]",
                at = out(reg) at,
                value = out(reg) _,
                address = in(reg) address,
            )
        }
    });
    (exception, at)
}

/// Stores to `address`; returns as [`load`].
fn store(address: u32) -> (Option<Exception>, u32) {
    let mut at = 0u32;
    let exception = expect_exception(|| {
        // SAFETY: as in `load`.
        unsafe {
            core::arch::asm!(
                "adr {at}, 1f",
                "1: str {value}, [{address}]",
                at = out(reg) at,
                value = in(reg) 0x1234_5678u32,
                address = in(reg) address,
            )
        }
    });
    (exception, at)
}

fn cpsr() -> u32 {
    let value: u32;
    // SAFETY: reading the CPSR has no effect.
    unsafe { core::arch::asm!("mrs {}, cpsr", out(reg) value, options(nomem, nostack)) };
    value
}

fn check_data_abort(
    checks: &mut Checks,
    what: &str,
    result: (Option<Exception>, u32),
    address: u32,
    dfsr: u32,
) {
    let (exception, at) = result;
    let Some(exception) = exception else {
        checks.that(what, false);
        return;
    };
    capvisor_test_guests::println!("{}:", what);
    checks.equal("  vector", exception.vector, vector::DATA_ABORT);
    checks.equal("  DFSR", exception.dfsr, dfsr);
    checks.equal("  DFAR", exception.dfar, address);
    checks.equal(
        "  LR_abt - 8 = the faulting instruction",
        exception.lr.wrapping_sub(8),
        at,
    );
    checks.equal(
        "  SPSR_abt = CPSR at the fault (mode, T, A, I, F)",
        exception.spsr & 0x1ff,
        cpsr() & 0x1ff,
    );
}

fn main() -> u32 {
    let mut checks = Checks::new();
    // Data aborts in the short-descriptor format.
    check_data_abort(
        &mut checks,
        "load below RAM",
        load(0x2000_0000),
        0x2000_0000,
        0x008,
    );
    check_data_abort(
        &mut checks,
        "store below RAM",
        store(0x2000_0004),
        0x2000_0004,
        0x808,
    );
    check_data_abort(
        &mut checks,
        "load past the end of RAM",
        load(RAM_END),
        RAM_END,
        0x008,
    );
    check_data_abort(
        &mut checks,
        "load from the host RAM alias",
        load(0x8000_0000),
        0x8000_0000,
        0x008,
    );
    check_data_abort(
        &mut checks,
        "load from the host UART0",
        load(0x1600_0000),
        0x1600_0000,
        0x008,
    );
    check_data_abort(
        &mut checks,
        "store to the host PIC",
        store(0x1400_0008),
        0x1400_0008,
        0x808,
    );
    check_data_abort(
        &mut checks,
        "load from the host timers",
        load(0x1300_0004),
        0x1300_0004,
        0x008,
    );
    check_data_abort(
        &mut checks,
        "load between the GIC and the UART",
        load(0x0802_0000),
        0x0802_0000,
        0x008,
    );

    // The long-descriptor format once TTBCR.EAE is set (MMU still off).
    // SAFETY: only the fault-status format changes while the MMU is off.
    unsafe {
        core::arch::asm!("mrc p15, 0, {t}, c2, c0, 2", "orr {t}, {t}, #0x80000000", "mcr p15, 0, {t}, c2, c0, 2", "isb", t = out(reg) _)
    };
    check_data_abort(
        &mut checks,
        "load with TTBCR.EAE",
        load(0x2000_0000),
        0x2000_0000,
        0x210,
    );
    check_data_abort(
        &mut checks,
        "store with TTBCR.EAE",
        store(0x2000_0000),
        0x2000_0000,
        0xa10,
    );
    // SAFETY: as above, back to the short-descriptor format.
    unsafe {
        core::arch::asm!("mrc p15, 0, {t}, c2, c0, 2", "bic {t}, {t}, #0x80000000", "mcr p15, 0, {t}, c2, c0, 2", "isb", t = out(reg) _)
    };

    // A prefetch abort from a branch to nothing.
    match expect_prefetch_abort(0x3000_0000) {
        Some(exception) => {
            capvisor_test_guests::println!("branch to an unclaimed IPA:");
            checks.equal("  vector", exception.vector, vector::PREFETCH_ABORT);
            checks.equal("  IFSR", exception.ifsr, 0x008);
            checks.equal("  IFAR", exception.ifar, 0x3000_0000);
            checks.equal("  LR_abt = the target + 4", exception.lr, 0x3000_0004);
            checks.equal("  SPSR_abt mode: SVC", exception.spsr & 0x1f, 0x13);
        }
        None => checks.that("branch to an unclaimed IPA aborts", false),
    }

    // Undefined instructions: one the CPU rejects itself, and registers
    // the hypervisor traps and reflects because they are not switched per
    // VM: c15 (HSTR.T15) and the physical timer (CNTHCTL.PL1PCEN clear).
    // (The debug registers are trapped by HDCR.TDA too, but QEMU 7.2 does
    // not implement that trap for AArch32: docs/isolation.md.)
    for (what, case) in [
        ("udf", 0),
        ("c15 access (trapped)", 1),
        ("CNTP_CTL access (trapped)", 2),
    ] {
        let mut at = 0u32;
        let exception = expect_exception(|| {
            // SAFETY: the instruction is undefined for this guest; the
            // handler resumes after it.
            unsafe {
                match case {
                    0 => core::arch::asm!("adr {at}, 1f", "1: udf #0", at = out(reg) at),
                    1 => {
                        core::arch::asm!("adr {at}, 1f", "1: mrc p15, 0, {v}, c15, c0, 0", at = out(reg) at, v = out(reg) _)
                    }
                    _ => {
                        core::arch::asm!("adr {at}, 1f", "1: mrc p15, 0, {v}, c14, c2, 1", at = out(reg) at, v = out(reg) _)
                    }
                }
            }
        });
        match exception {
            Some(exception) => {
                capvisor_test_guests::println!("{}:", what);
                checks.equal("  vector", exception.vector, vector::UNDEFINED);
                checks.equal(
                    "  LR_und - 4 = the instruction",
                    exception.lr.wrapping_sub(4),
                    at,
                );
                checks.equal(
                    "  SPSR_und = CPSR at the instruction (mode, T, A, I, F)",
                    exception.spsr & 0x1ff,
                    cpsr() & 0x1ff,
                );
            }
            None => checks.that(what, false),
        }
    }

    // ACTLR: trapped and emulated.
    let actlr = |value: Option<u32>| -> u32 {
        let mut read: u32 = 0;
        // SAFETY: ACTLR accesses are emulated by the hypervisor.
        unsafe {
            if let Some(value) = value {
                core::arch::asm!("mcr p15, 0, {}, c1, c0, 1", in(reg) value);
            }
            core::arch::asm!("mrc p15, 0, {}, c1, c0, 1", out(reg) read);
        }
        read
    };
    checks.equal("ACTLR at reset (SMP set)", actlr(None), 0x40);
    checks.equal("ACTLR written back", actlr(Some(0x41)), 0x41);
    checks.that("no exception left over", expect_exception(|| {}).is_none());
    checks.finish("exceptions")
}
