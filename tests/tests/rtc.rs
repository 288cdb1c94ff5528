// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtual PL031 real-time clock under QEMU, on every board: two VMs
//! run the `rtc` guest side by side, each reading its clock advance,
//! setting it for itself, and taking its own match interrupt through its
//! virtual GIC.

use capvisor_tests::{assert_console_lacks, boot, per_board, vm_status_line, Board};

const EXIT_SUCCESS: i32 = 0;

per_board!(each_vm_has_its_own_clock_and_takes_its_alarm);

fn each_vm_has_its_own_clock_and_takes_its_alarm(board: &Board) {
    let outcome = boot(board, "rtc");
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "Hyp-mode exception");
    // The guest's checks: identification, RTCCR, the counter advancing,
    // RTCDR and RTCLR after a set, no early match, one interrupt, at the
    // match, RTCMIS around the clear, raised once, RTCRIS clear, nothing
    // else: 12, each VM.
    for vm in ["rtc", "rtc-2"] {
        let status = vm_status_line(console, vm);
        assert!(status.contains("PASSED"), "{status}\n{console}");
    }
    assert_eq!(
        console.matches("rtc: 12 checks, 0 failed").count(),
        2,
        "{console}"
    );
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}
