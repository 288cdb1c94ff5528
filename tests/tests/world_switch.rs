//! Runs the built-in smoke guest (`test-world-switch` feature) through the
//! world switch and `hyp::dispatch`: a PSCI hypercall answered in r0 by the
//! PSCI capsule, a load from an unmapped IPA
//! decoded from the stage-2 fault and emulated, every callee register and
//! the banked SP_svc preserved across both exits, and PSCI SYSTEM_OFF.

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
    // `ldr r2, [r0]` with r0 = 0x0900_0018, the 15th instruction.
    assert_console_has(
        console,
        "smoke guest: MMIO read 0x09000018 (Word, sign-extend false) into r2 at pc 0x40000038: Resume",
    );
    let report = line_with(console, "smoke guest: report:").expect("a report line");
    assert!(report.contains("registers preserved 1"), "{report}");
    assert!(report.contains("MMIO value 0x5a"), "{report}");
    assert!(report.contains("PSCI version 0x2"), "{report}");
    assert!(report.contains("SP_svc 0x40000ff0"), "{report}");
    assert_console_has(console, "function 0x84000008 -> r0 0x84000008, StopVm");
    assert_console_has(console, "smoke guest: stopped by PSCI");
    assert_console_has(console, "smoke guest: passed");
    assert_console_lacks(console, "unexpected exit");
    assert_console_lacks(console, "FATAL");
    assert_eq!(outcome.status, 0, "{console}");
}
