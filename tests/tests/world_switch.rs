//! Runs the built-in smoke guest (`test-world-switch` feature) through the
//! world switch and `hyp::dispatch`: a PSCI hypercall answered in r0 by the
//! PSCI capsule, text written byte by byte to the virtual PL011 capsule, a load from an unmapped IPA
//! decoded from the stage-2 fault and emulated, every callee register and
//! the banked SP_svc preserved across both exits, a load from an unclaimed
//! IPA reflected into the guest's own data abort handler, and PSCI
//! SYSTEM_OFF.

use capvisor_tests::{assert_console_has, assert_console_lacks, boot, line_with};

#[test]
fn smoke_guest_round_trips_through_the_world_switch() {
    let outcome = boot(&["test-world-switch"]);
    let console = &outcome.transcript;
    assert_console_has(console, "smoke guest: 4 KiB of code at IPA 0x40000000");
    assert_console_has(
        console,
        "smoke guest: HVC #0 function 0x84000000 -> r0 0x00000002, Resume",
    );
    // Byte stores to the virtual PL011's DR reach the console untouched,
    // and a word load of its FR (the 20th instruction) reads TXFE | RXFE.
    assert!(
        console
            .lines()
            .any(|line| line.trim_end() == "hello from the smoke guest"),
        "the guest's greeting is missing:\n{console}"
    );
    assert_console_has(
        console,
        "smoke guest: MMIO read 0x09000018 (Word, sign-extend false) into r2 at pc 0x4000004c: Resume",
    );
    let report = line_with(console, "smoke guest: report:").expect("a report line");
    assert!(report.contains("registers preserved 1"), "{report}");
    assert!(report.contains("MMIO value 0x90"), "{report}");
    assert!(report.contains("PSCI version 0x2"), "{report}");
    assert!(report.contains("SP_svc 0x40000ff0"), "{report}");
    // Rule 2: a load from an IPA nobody claims (the 63rd instruction) comes
    // back to the guest as a data abort at its own vector; its handler sees
    // an external abort (DFSR 0x008) at the right address, LR_abt = the
    // load + 8 and the interrupted SVC-mode CPSR, and resumes.
    assert_console_has(
        console,
        "MMIO read 0x0a000000 (Word, sign-extend false) into r1 at pc 0x400000f8: InjectDataAbort",
    );
    assert_console_has(
        console,
        "smoke guest: abort handler saw DFSR 0x008, DFAR 0x0a000000, LR_abt 0x40000100, SPSR_abt 0x600001d3",
    );
    // ACTLR is trapped and emulated (the guest reads SMP set); a c15 access
    // is trapped and not emulated, so the guest's own undefined-instruction
    // handler runs with LR_und = that instruction + 4.
    assert_console_has(
        console,
        "smoke guest: MRC p15 c1, c0, 1 at pc 0x40000114: Resume",
    );
    assert_console_has(
        console,
        "smoke guest: MRC p15 c15, c0, 0 at pc 0x40000120: InjectUndefined",
    );
    assert_console_has(
        console,
        "smoke guest: ACTLR read 0x40; undefined handler saw LR_und 0x40000124, SPSR_und 0x600001d3",
    );
    // The hypervisor service's CONSOLE_WRITE: 12 bytes packed in r2-r4.
    assert!(
        console.lines().any(|line| line.trim_end() == "hvc says hi"),
        "the CONSOLE_WRITE text is missing:\n{console}"
    );
    assert_console_has(console, "function 0x86000003 -> r0 0x0000000c, Resume");
    assert_console_has(console, "function 0x84000008 -> r0 0x84000008, StopVm");
    assert_console_has(console, "smoke guest: stopped by PSCI");
    // At every exit the guest's CP15 state is saved, zeroed and restored;
    // the guest runs on the restored state (its abort handler needs VBAR)
    // and every register reads back as saved.
    assert_console_has(
        console,
        "smoke guest: CP15 context saved, clobbered and restored at every exit: identical",
    );
    assert_console_has(console, "smoke guest: passed");
    assert_console_lacks(console, "unexpected exit");
    assert_console_lacks(console, "FATAL");
    assert_eq!(outcome.status, 0, "{console}");
}
