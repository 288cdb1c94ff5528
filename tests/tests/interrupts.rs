// SPDX-License-Identifier: MIT OR Apache-2.0
//! Interrupts, time and scheduling under QEMU: virtual-timer interrupts
//! through the virtual GIC at the rate the guest programmed; a guest that
//! sweeps the GIC with bad ids, bad SGIs and odd-sized accesses gets
//! architected answers while the hypervisor stays up; two CPU-bound VMs
//! share the CPU within 20% of each other while a sleeping VM takes no
//! slices; console input reaches the focused VM through its UART's receive
//! interrupt, and the focus moves with Ctrl-] n.

use capvisor_tests::{
    assert_console_has, assert_console_lacks, boot, counter, per_board, start, vm_status_line,
    Board,
};
use std::time::Duration;

const EXIT_SUCCESS: i32 = 0;
/// Generous: each step takes well under a second.
const STEP: Duration = Duration::from_secs(20);

per_board!(
    timer_interrupts_arrive_on_time_and_a_gic_sweep_is_contained,
    cpu_bound_vms_share_fairly_and_a_sleeping_vm_takes_no_slices,
    console_input_reaches_the_focused_vm_and_the_focus_moves,
);

fn timer_interrupts_arrive_on_time_and_a_gic_sweep_is_contained(board: &Board) {
    let outcome = boot(board, "interrupts");
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "Hyp-mode exception");
    assert_console_has(console, "vtimer: 3 checks, 0 failed");
    assert_console_has(console, "gic-sweep: 8 checks, 0 failed");
    let vtimer = vm_status_line(console, "vtimer");
    assert!(vtimer.contains("PASSED"), "{vtimer}");
    if board.name == "qemu-virt" {
        // The guest's CPU interface is the GIC's GICV: acknowledging and
        // ending never exit. Its other accesses (the distributor set-up,
        // console output with its FIFO polling) come to 330-400 exits;
        // trapped acknowledges and ends would add 2 x 199 to that. Every
        // timer interrupt is taken physically and forwarded.
        assert!(counter(vtimer, "mmio") < 600, "{vtimer}");
        assert!(counter(vtimer, "irqs") >= 199, "{vtimer}");
    } else {
        // Every timer interrupt needed an acknowledge and an end (two MMIO
        // exits each): at least 2 x 199.
        assert!(counter(vtimer, "mmio") >= 398, "{vtimer}");
    }
    let sweep = vm_status_line(console, "gic-sweep");
    assert!(sweep.contains("PASSED"), "{sweep}");
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}

fn cpu_bound_vms_share_fairly_and_a_sleeping_vm_takes_no_slices(board: &Board) {
    let outcome = boot(board, "scheduling");
    let console = &outcome.transcript;
    let iterations = |vm: &str| -> u64 {
        let needle = format!("{vm}: ");
        let line = console
            .lines()
            .find(|line| line.contains(&needle) && line.contains("iterations in"))
            .unwrap_or_else(|| panic!("no iteration count from {vm}:\n{console}"));
        counter(line, &needle)
    };
    let (a, b) = (iterations("spinner-a"), iterations("spinner-b"));
    let mean = (a + b) as f64 / 2.0;
    let spread = (a as f64 - b as f64).abs() / mean;
    assert!(
        spread <= 0.2,
        "unfair: spinner-a {a}, spinner-b {b} ({:.0}% apart)\n{console}",
        spread * 100.0
    );
    // The sleeper's own checks (it slept the whole window, woken once by
    // its timer) are in its exit status.
    let sleeper = vm_status_line(console, "sleeper");
    assert!(sleeper.contains("PASSED (status 0)"), "{sleeper}");
    let spinner = vm_status_line(console, "spinner-a");
    // The sleeper runs to arm its timer, and once more when it fires.
    assert!(counter(sleeper, "slices") <= 3, "{sleeper}");
    // The spinners were preempted many times (10 ms slices, 1 s each).
    assert!(counter(spinner, "preemptions") >= 20, "{spinner}");
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}

fn console_input_reaches_the_focused_vm_and_the_focus_moves(board: &Board) {
    let mut session = start(board, "console");
    let step = |session: &mut capvisor_runner::Session, send: &str, expect: &str| {
        if !send.is_empty() {
            session.send(send).expect("QEMU takes input");
        }
        if let Err(error) = session.expect(expect, STEP) {
            // Ask for the VMs' status to show where they are.
            let _ = session.send("\x1ds");
            std::thread::sleep(Duration::from_secs(2));
            panic!(
                "waiting for {expect:?} after sending {send:?}: {error}\n----- console after a status request -----\n{}",
                session.transcript()
            );
        }
    };
    // Both VMs say they are ready, in whichever order they ran.
    step(&mut session, "", "echo echo-1: ready");
    if !session.transcript().contains("[echo-2] echo echo-2: ready") {
        step(&mut session, "", "[echo-2] echo echo-2: ready");
    }
    step(&mut session, "a", "echo echo-1: got 'a'");
    // The focused VM stops reading: its FIFO (64 bytes) fills, the rest
    // waits, and after 2 s the hypervisor drops it and the focus keys work.
    step(&mut session, "d", "echo echo-1: not reading for 5 s");
    step(&mut session, &"x".repeat(100), "");
    step(
        &mut session,
        "",
        "VM 1 has not read its console input for 2 s",
    );
    step(&mut session, "\x1dn", "console focus: VM 2 'echo-2'");
    step(&mut session, "b", "echo echo-2: got 'b'");
    step(&mut session, "\x1ds", "VM 1 'echo-1': ");
    step(&mut session, "q", "echo echo-2: got 'q'");
    // The focused VM has stopped: input for it is dropped (more than its
    // FIFO holds), and the focus keys still work.
    step(
        &mut session,
        "",
        "VM 2 has stopped; its console input is dropped",
    );
    step(&mut session, &"z".repeat(100), "");
    step(&mut session, "\x1dn", "console focus: VM 1 'echo-1'");
    // Once the stalled VM reads again, what is typed reaches it.
    step(&mut session, "", "echo echo-1: reading again");
    step(&mut session, "q", "echo echo-1: got 'q'");
    let status = session.wait_exit(STEP).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "echo echo-1: got 'b'");
    assert_console_lacks(&transcript, "echo echo-2: got 'a'");
    assert_console_lacks(&transcript, "got 'z'");
    // The stalled VM got what its FIFO held, and read on afterwards.
    assert_eq!(
        transcript.matches("echo echo-1: got 'x'").count(),
        64,
        "{transcript}"
    );
    assert_console_has(&transcript, "echo echo-1: reading again");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
}
