// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hypercall round trips: PSCI 0.2 over HVC (and over SMC where SMC traps
//! to the hypervisor; undefined where it does not), Capvisor's service,
//! and the answers to ids nobody owns. Every value is checked, and so is
//! every register the calling convention says the hypervisor preserves.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    expect_exception, hvc, psci, service, smc, vector, vm_identity, Checks,
};

capvisor_test_guests::guest!("hypercall", main);

/// A hypercall with r4-r12 and SP loaded with known values, which must be
/// unchanged afterwards. Returns r0 and whether they were.
fn call_preserving(function: u32) -> (u32, bool) {
    let r0: u32;
    let same: u32;
    // SAFETY: HVC only changes r0-r3 (SMCCC); the block restores r4-r11
    // from the stack and compares them before that.
    unsafe {
        core::arch::asm!(
            "push {{r4-r11}}",
            "mov r12, sp",
            "ldr r4, =0x44440004",
            "ldr r5, =0x55550005",
            "ldr r6, =0x66660006",
            "ldr r7, =0x77770007",
            "ldr r8, =0x88880008",
            "ldr r9, =0x99990009",
            "ldr r10, =0xaaaa000a",
            "ldr r11, =0xbbbb000b",
            "push {{r12}}",
            "ldr r12, =0xcccc000c",
            ".arch_extension virt",
            "hvc #0",
            "mov r1, #1",
            "ldr r2, =0x44440004", "cmp r4, r2", "movne r1, #0",
            "ldr r2, =0x55550005", "cmp r5, r2", "movne r1, #0",
            "ldr r2, =0x66660006", "cmp r6, r2", "movne r1, #0",
            "ldr r2, =0x77770007", "cmp r7, r2", "movne r1, #0",
            "ldr r2, =0x88880008", "cmp r8, r2", "movne r1, #0",
            "ldr r2, =0x99990009", "cmp r9, r2", "movne r1, #0",
            "ldr r2, =0xaaaa000a", "cmp r10, r2", "movne r1, #0",
            "ldr r2, =0xbbbb000b", "cmp r11, r2", "movne r1, #0",
            "ldr r2, =0xcccc000c", "cmp r12, r2", "movne r1, #0",
            "pop {{r12}}",
            "cmp r12, sp", "movne r1, #0",
            "pop {{r4-r11}}",
            "b 1f",
            ".ltorg",
            "1:",
            inout("r0") function => r0,
            out("r1") same,
            out("r2") _,
            out("r3") _,
            out("r12") _,
        )
    };
    (r0, same == 1)
}

fn main() -> u32 {
    let mut checks = Checks::new();
    // PSCI 0.2 over HVC.
    checks.equal("PSCI_VERSION (hvc)", hvc(psci::VERSION, [0; 7])[0], 2);
    checks.equal(
        "PSCI_FEATURES(SYSTEM_OFF)",
        hvc(psci::FEATURES, [psci::SYSTEM_OFF, 0, 0, 0, 0, 0, 0])[0],
        0,
    );
    checks.equal(
        "PSCI_FEATURES(an unknown id)",
        hvc(psci::FEATURES, [0x8400_00ee, 0, 0, 0, 0, 0, 0])[0],
        psci::NOT_SUPPORTED,
    );
    checks.equal(
        "MIGRATE_INFO_TYPE: no trusted OS",
        hvc(psci::MIGRATE_INFO_TYPE, [0; 7])[0],
        2,
    );
    checks.equal(
        "unknown PSCI id",
        hvc(0x8400_00ee, [0; 7])[0],
        psci::NOT_SUPPORTED,
    );
    // SMC: where SMC is undefined at PL1 before HCR.TSC can trap it (QEMU's
    // Cortex-A15 on Integrator/CP, which has no Security Extensions), the
    // guest takes its own undefined-instruction exception; where it traps
    // (QEMU virt), the hypervisor answers it as it answers HVC: PSCI 0.2.
    // Anything else (another exception, another answer) fails.
    let mut version = 0;
    let exception = expect_exception(|| {
        version = smc(psci::VERSION, [0; 3])[0];
    });
    checks.that(
        "SMC is undefined, or trapped and answered (PSCI VERSION 0.2)",
        match exception {
            Some(exception) => exception.vector == vector::UNDEFINED,
            None => version == 0x0000_0002,
        },
    );
    // Capvisor's service.
    checks.equal("service VERSION", hvc(service::VERSION, [0; 7])[0], 1);
    let (id, name, length) = vm_identity();
    checks.that("VM_ID is a VMID (1-255)", (1..=255).contains(&id));
    checks.that("VM_NAME is 'hypercall'", &name[..length] == b"hypercall");
    let text = *b"console write ok\n\0\0\0";
    let word = |i: usize| u32::from_le_bytes([text[i], text[i + 1], text[i + 2], text[i + 3]]);
    checks.equal(
        "CONSOLE_WRITE returns the length",
        hvc(
            service::CONSOLE_WRITE,
            [17, word(0), word(4), word(8), word(12), word(16), 0],
        )[0],
        17,
    );
    checks.equal(
        "CONSOLE_WRITE of 25 bytes is refused",
        hvc(service::CONSOLE_WRITE, [25, 0, 0, 0, 0, 0, 0])[0],
        service::INVALID_PARAMETERS,
    );
    checks.equal(
        "CONSOLE_WRITE of 0xffffffff bytes is refused",
        hvc(service::CONSOLE_WRITE, [u32::MAX, 0, 0, 0, 0, 0, 0])[0],
        service::INVALID_PARAMETERS,
    );
    checks.equal(
        "unknown service id",
        hvc(0x8600_00ff, [0; 7])[0],
        psci::NOT_SUPPORTED,
    );
    // Ids of owners nobody implements, and SMC64 ids on a 32-bit guest.
    for function in [
        0x8000_0000,
        0x8100_0000,
        0x8500_0000,
        0xc400_0000,
        0xbf00_0000,
        0,
    ] {
        checks.equal(
            "an id nobody owns answers NOT_SUPPORTED",
            hvc(function, [0; 7])[0],
            psci::NOT_SUPPORTED,
        );
    }
    let (version, preserved) = call_preserving(psci::VERSION);
    checks.equal("PSCI_VERSION with r4-r12 loaded", version, 2);
    checks.that("r4-r12 and SP survive a hypercall", preserved);
    checks.finish("hypercall")
}
