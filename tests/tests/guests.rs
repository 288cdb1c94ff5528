// SPDX-License-Identifier: MIT OR Apache-2.0
//! The test guests (`tests/guests`) under the hypervisor: each is a VM of
//! the board's `test-guests` table, checks one behaviour from inside the
//! guest and reports its verdict; the hypervisor prints each VM's status
//! and exits 0 only if all passed. Each guest's number of checks is pinned
//! here, so a guest that stopped checking something fails too. Then the
//! fault policy (`test-fault-policy`), and VM tables the hypervisor must
//! refuse before any VM starts: a missing image, the wrong guest in a slot,
//! a malformed header, an image larger than its VM's RAM, overlapping RAM,
//! misaligned RAM, a device claimed twice; and a table with more VMs than
//! the hypervisor supports, which does not even build.

use capvisor_tests::{
    assert_console_has, assert_console_lacks, boot, boot_with_images, counter, guest_images,
    images_dir, line_with, per_board, try_board_image, vm_status_line, Board, Outcome,
};
use std::path::{Path, PathBuf};

const EXIT_SUCCESS: i32 = 0;
const EXIT_VM_FAILED: i32 = 1;
const EXIT_BOOT_REFUSED: i32 = 3;

per_board!(
    every_test_guest_passes,
    a_guest_faulting_in_its_vectors_is_restarted_then_stopped_while_the_other_runs,
    a_missing_image_refuses_the_boot,
    the_wrong_guest_in_a_slot_refuses_the_boot,
    a_malformed_header_refuses_the_boot,
    an_image_larger_than_its_ram_refuses_the_boot,
    overlapping_ram_refuses_the_boot,
    misaligned_ram_refuses_the_boot,
    a_device_claimed_twice_refuses_the_boot,
    more_vms_than_supported_refuses_the_build,
);

fn every_test_guest_passes(board: &Board) {
    let outcome = boot(board, &["test-guests"]);
    let console = &outcome.transcript;
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "unexpected exception");
    // Each guest's own summary, with the number of checks it made.
    for summary in [
        "hypercall: 21 checks, 0 failed",
        "mmio: 29 checks, 0 failed",
        "exceptions: 64 checks, 0 failed",
        "isolation-1: 2 checks, 0 failed",
        "isolation-2: 2 checks, 0 failed",
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
    // 8 data aborts, 2 in the LPAE format, 1 prefetch abort, 1 c15 access.
    assert_eq!(injected("exceptions"), 12, "{console}");
    // The LDM from the UART, which has no syndrome.
    assert_eq!(injected("mmio"), 1, "{console}");
    assert_eq!(injected("hypercall"), 0, "{console}");
    // Ten YIELDs: at least eleven turns on the CPU.
    let isolation = vm_status_line(console, "isolation-1");
    assert!(counter(isolation, "slices") >= 11, "{isolation}");
    assert_console_has(console, "capvisor: 5 of 5 VMs passed");
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}

fn a_guest_faulting_in_its_vectors_is_restarted_then_stopped_while_the_other_runs(board: &Board) {
    let outcome = boot(board, &["test-fault-policy"]);
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
    assert_console_has(console, "worker: 2 checks, 0 failed");
    assert_eq!(counter(worker, "injected faults"), 0, "{worker}");
    // The worker took its ten turns (YIELDs) while the faulty VM was
    // restarted around it.
    assert!(counter(worker, "slices") >= 11, "{worker}");
    assert_console_has(console, "capvisor: 1 of 2 VMs passed");
    assert_eq!(outcome.status, EXIT_VM_FAILED, "{console}");
}

/// A copy of the test guest images in a directory of its own (one per
/// board, as each board's test runs in parallel), for a test to break.
fn image_copy(board: &Board, test: &str) -> PathBuf {
    let dir = images_dir(board).join(format!("broken-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(guest_images()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// A zImage header (0x48 bytes) for a test guest called `name` that runs
/// at 0x4000_0000 and is `size` bytes long.
fn header(name: &str, size: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; 0x48];
    bytes[0x24..0x28].copy_from_slice(&0x016f_2818u32.to_le_bytes());
    bytes[0x28..0x2c].copy_from_slice(&0x4000_0000u32.to_le_bytes());
    bytes[0x2c..0x30].copy_from_slice(&0x4000_0000u32.wrapping_add(size).to_le_bytes());
    bytes[0x30..0x34].copy_from_slice(&0x0403_0201u32.to_le_bytes());
    bytes[0x34..0x38].copy_from_slice(b"CVGU");
    bytes[0x38..0x38 + name.len()].copy_from_slice(name.as_bytes());
    bytes
}

/// Boots `board`'s `test-guests` table with images from `dir`, expects
/// the boot to be refused with `reason`, before any VM was created.
fn assert_refused(board: &Board, dir: &Path, reason: &str) {
    assert_refused_boot(boot_with_images(board, &["test-guests"], dir), reason);
}

/// Expects a boot refused with `reason` before any VM was created.
fn assert_refused_boot(outcome: Outcome, reason: &str) {
    let console = &outcome.transcript;
    let refusal =
        line_with(console, "boot refused:").unwrap_or_else(|| panic!("no refusal:\n{console}"));
    assert!(
        refusal.ends_with(&format!("boot refused: bad VM table: {reason}")),
        "{refusal}\n{console}"
    );
    assert_console_lacks(console, "VM table checked");
    assert_console_lacks(console, "RAM at IPA");
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{console}");
}

fn a_missing_image_refuses_the_boot(board: &Board) {
    let dir = image_copy(board, "missing");
    std::fs::remove_file(dir.join("mmio")).unwrap();
    assert_refused(
        board,
        &dir,
        "VM 'mmio': image 'mmio' is missing (no zImage header at its address)",
    );
}

fn the_wrong_guest_in_a_slot_refuses_the_boot(board: &Board) {
    let dir = image_copy(board, "wrong-guest");
    std::fs::copy(dir.join("hypercall"), dir.join("mmio")).unwrap();
    assert_refused(
        board,
        &dir,
        "VM 'mmio': image 'mmio' is a different test guest than the table names",
    );
}

fn a_malformed_header_refuses_the_boot(board: &Board) {
    let dir = image_copy(board, "malformed");
    let mut bytes = header("exceptions", 0x1000);
    bytes[0x30..0x34].copy_from_slice(&0x0102_0304u32.to_le_bytes()); // big-endian
    std::fs::write(dir.join("exceptions"), bytes).unwrap();
    assert_refused(
        board,
        &dir,
        "VM 'exceptions': image 'exceptions' is malformed (its zImage header makes no sense)",
    );
}

fn an_image_larger_than_its_ram_refuses_the_boot(board: &Board) {
    let dir = image_copy(board, "too-large");
    std::fs::write(dir.join("hypercall"), header("hypercall", 0x30_0000)).unwrap();
    assert_refused(
        board,
        &dir,
        "VM 'hypercall': image 'hypercall' is 3145728 bytes but only 2097152 bytes of RAM remain at its load offset",
    );
}

fn overlapping_ram_refuses_the_boot(board: &Board) {
    assert_refused_boot(
        boot(board, &["test-bad-ram-overlap"]),
        "VM 'second': RAM overlaps the RAM of VM 'first'",
    );
}

fn misaligned_ram_refuses_the_boot(board: &Board) {
    assert_refused_boot(
        boot(board, &["test-bad-ram-misaligned"]),
        "VM 'misaligned': RAM base and size must be multiples of 0x200000",
    );
}

fn a_device_claimed_twice_refuses_the_boot(board: &Board) {
    assert_refused_boot(
        boot(board, &["test-bad-device-twice"]),
        "VM 'greedy': device 'pl011' is claimed twice",
    );
}

/// Nine VMs: more than the hypervisor has VMs' tables and console ports
/// for (8; VMIDs would allow 255). The board does not build, and the
/// compiler's message names the problem.
fn more_vms_than_supported_refuses_the_build(board: &Board) {
    let errors = try_board_image(board, &["test-too-many-vms"])
        .expect_err("a board with nine VMs must not build");
    assert!(
        errors.contains(
            "the board's VM table has more VMs than Capvisor supports (hyp::config::MAX_VMS)"
        ),
        "{errors}"
    );
}
