// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test guests (`tests/guests`) under the hypervisor: each is a VM of
//! the `guests` system (`tests/systems/guests.toml`), checks one behaviour
//! from inside the guest and reports its verdict; the hypervisor prints
//! each VM's status and exits 0 only if all passed. Each guest's number of
//! checks is pinned here, so a guest that stopped checking something fails
//! too. Then the fault policy (`tests/systems/fault-policy.toml`). Bad
//! descriptions and system images are `tests/tests/system.rs`'s.

use capvisor_tests::{
    assert_console_has, assert_console_lacks, boot, counter, per_board, start, vm_status_line,
    Board,
};
use std::time::Duration;

const EXIT_SUCCESS: i32 = 0;
const EXIT_VM_FAILED: i32 = 1;

per_board!(
    every_test_guest_passes,
    a_guest_faulting_in_its_vectors_is_restarted_then_stopped_while_the_other_runs,
    a_restarted_vm_starts_from_reset_state_in_every_device,
    the_performance_monitors_are_each_vms_own,
);

fn every_test_guest_passes(board: &Board) {
    let outcome = boot(board, "guests");
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "unexpected exception");
    // Each guest's own summary, with the number of checks it made.
    for summary in [
        "hypercall: 21 checks, 0 failed",
        "mmio: 29 checks, 0 failed",
        "exceptions: 67 checks, 0 failed",
        "isolation-1: 6 checks, 0 failed",
        "isolation-2: 6 checks, 0 failed",
    ] {
        assert_console_has(console, summary);
    }
    // Byte, halfword and word stores to the virtual UART's DR.
    assert_console_has(console, "mmio: stores of each size: BHW");
    // CONSOLE_WRITE's bytes, straight from the guest's registers.
    assert_console_has(console, "console write ok");
    assert_console_has(console, "isolation-1: VM 4 took 10 turns");
    assert_console_has(console, "isolation-2: VM 5 took 10 turns");
    // The hypervisor's view: every VM powered off with status 0, and the
    // counters match what the guests did.
    for vm in [
        "hypercall",
        "mmio",
        "exceptions",
        "isolation-1",
        "isolation-2",
    ] {
        let line = vm_status_line(console, vm);
        assert!(line.contains("PASSED (status 0): powered off"), "{line}");
    }
    let injected = |vm: &str| {
        let line = vm_status_line(console, vm);
        line.split("injected faults ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|count| count.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no injected-fault count in {line}"))
    };
    // 8 data aborts, 2 in the LPAE format, 1 prefetch abort, 1 c15 access,
    // 1 physical timer access.
    assert_eq!(injected("exceptions"), 13, "{console}");
    // The LDM from the UART, which has no syndrome.
    assert_eq!(injected("mmio"), 1, "{console}");
    assert_eq!(injected("hypercall"), 0, "{console}");
    // Ten YIELDs: at least eleven turns on the CPU.
    let isolation = vm_status_line(console, "isolation-1");
    assert!(counter(isolation, "slices") >= 11, "{isolation}");
    assert_console_has(console, "capvisor: VMs: 5 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy");
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}

fn a_guest_faulting_in_its_vectors_is_restarted_then_stopped_while_the_other_runs(board: &Board) {
    let outcome = boot(board, "fault-policy");
    let console = &outcome.transcript;
    let boots = console.matches("faulty: booted").count();
    assert_eq!(boots, 3, "one boot and two restarts:\n{console}");
    assert_console_lacks(console, "the fault did not stop this VM");
    let faulty = vm_status_line(console, "faulty");
    assert!(
        faulty.contains("FAILED: stopped by its fault policy"),
        "{faulty}"
    );
    assert!(faulty.contains("restarts 2"), "{faulty}");
    // Each boot: the data abort, a prefetch abort at the unmapped data
    // abort vector, one at the prefetch abort vector; the next at that same
    // address is the loop the hypervisor ends. Nothing reached Hyp mode.
    assert_eq!(counter(faulty, "injected faults"), 9, "{faulty}");
    assert_console_lacks(console, "Hyp-mode exception");
    let worker = vm_status_line(console, "worker");
    assert!(
        worker.contains("PASSED (status 0): powered off"),
        "{worker}"
    );
    // Each restart zeroed and reloaded the RAM: the worker's RAM check
    // passed, and the restarted guest booted from its image each time.
    assert_console_has(console, "worker: 6 checks, 0 failed");
    assert_eq!(counter(worker, "injected faults"), 0, "{worker}");
    // The worker took its ten turns (YIELDs) while the faulty VM was
    // restarted around it.
    assert!(counter(worker, "slices") >= 11, "{worker}");
    assert_console_has(console, "capvisor: VMs: 1 passed, 0 failed, 0 powered off without a status, 1 stopped by their fault policy");
    assert_eq!(outcome.status, EXIT_VM_FAILED, "{console}");
}

/// `tests/systems/reset.toml`: the guest leaves interrupts enabled and
/// pending at its GIC, its UART configured with typed bytes unread in the
/// receive FIFO, its timer armed and a failure status reported, then
/// faults; restarted by its policy, it finds every device in its reset
/// state and powers off without a status. A failure status that survived
/// would make it FAILED.
fn a_restarted_vm_starts_from_reset_state_in_every_device(board: &Board) {
    let mut session = start(board, "reset");
    let wait = Duration::from_secs(120);
    if let Err(error) = session.expect("reset-check: dirty; type three characters", wait) {
        panic!("the guest did not dirty its devices: {error}");
    }
    session.send("abc").expect("QEMU takes input");
    for line in [
        "reset-check: input waiting, unread; reporting failure and faulting",
        "reset-check: boot 2",
        "reset-check: 15 checks, 0 failed",
    ] {
        if let Err(error) = session.expect(line, wait) {
            panic!("waiting for {line:?}: {error}");
        }
    }
    let status = session.wait_exit(wait).expect("QEMU exits");
    let console = session.transcript();
    assert_console_lacks(&console, "FAIL ");
    let line = vm_status_line(&console, "reset-check");
    assert!(line.contains("'reset-check': powered off;"), "{line}");
    assert_eq!(counter(line, "restarts"), 1, "{line}");
    assert_console_has(
        &console,
        "capvisor: VMs: 0 passed, 0 failed, 1 powered off without a status, 0 stopped by their fault policy",
    );
    assert_eq!(status, EXIT_SUCCESS, "{console}");
}

/// `tests/systems/pmu.toml`: two VMs set different performance-monitor
/// registers and each finds its own after every turn of the other;
/// VM 1's cycle counter counts its own spin but not VM 2's
/// turn (two more checks). The numbers are printed for the record.
fn the_performance_monitors_are_each_vms_own(board: &Board) {
    let outcome = boot(board, "pmu");
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL ");
    // The pmu guest's `check` compares 6 registers and, for each of its 2
    // event counters, PMXEVTYPER and PMXEVCNTR: 6 + 2 * 2 = 10 checks,
    // after each of 5 turns; VM 1 adds its 2 cycle-counter checks.
    let per_vm = 5 * (6 + 2 * 2);
    assert_console_has(console, &format!("pmu: {} checks, 0 failed", per_vm + 2));
    assert_console_has(console, &format!("[pmu-2] pmu: {per_vm} checks, 0 failed"));
    assert_console_has(
        console,
        "capvisor: VMs: 2 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy",
    );
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
    if let Some(line) = console.lines().find(|line| line.contains("cycle counter:")) {
        println!("{}: {}", board.name, line.trim_end());
    }
}
