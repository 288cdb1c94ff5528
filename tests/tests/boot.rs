// SPDX-License-Identifier: MIT OR Apache-2.0
//! Boots each board in QEMU and checks the foundation: banner,
//! Hyp memory map, the demo VMs running to a clean exit; and the fatal paths (Hyp data abort, panic,
//! a layout the coverage check rejects), each with its exit status.
//!
//! What differs between boards (the banner, the fixed rows of the memory
//! map, the address the fault hook reads) is in one table, [`expected`].

use capvisor_tests::{
    assert_console_has, assert_console_lacks, boot, command_with, line_with, memory_map, per_board,
    run, Board,
};

/// Exit statuses (hyp::exit::ExitCode).
const EXIT_SUCCESS: i32 = 0;
const EXIT_FATAL: i32 = 2;
const EXIT_BOOT_REFUSED: i32 = 3;

per_board!(
    boots_to_banner_and_prints_the_memory_map,
    hyp_data_abort_prints_a_decoded_report_and_fails,
    panic_prints_message_and_location_and_fails,
    uncovered_layout_stops_boot_naming_the_range,
);

/// A Hyp-mode fault on a secondary CPU stops the whole system, its report
/// naming the CPU and decoding the fault, with the fault taken on that
/// CPU's own stacks.
#[test]
fn a_secondary_cpus_fault_is_reported_with_its_number() {
    let board = capvisor_tests::board_under_test("qemu-virt");
    let outcome = run(&command_with(&board, &["test-fault-secondary"], None));
    let console = &outcome.transcript;
    assert_console_has(console, "test: CPU 1 reads unmapped address 0x20000000");
    assert_console_has(
        console,
        "FATAL on CPU 1: Hyp-mode exception: data abort taken in Hyp mode (vector 0x10)",
    );
    let hdfar = line_with(console, "HDFAR").expect("HDFAR line");
    assert!(hdfar.contains("0x20000000"), "{hdfar}");
    // The interrupted SP is in CPU 1's stack, as the memory map lists it.
    let rows = memory_map(console);
    let stack = rows
        .iter()
        .find(|row| row.name == "cpu1-stack")
        .unwrap_or_else(|| panic!("no cpu1-stack row:\n{console}"));
    let sp_line = line_with(console, " sp  ").expect("sp line");
    let sp = sp_line
        .split_whitespace()
        .skip_while(|word| *word != "sp")
        .nth(1)
        .and_then(|value| u64::from_str_radix(value.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(|| panic!("no sp value in {sp_line}"));
    assert!(
        (stack.start..=stack.last).contains(&sp),
        "sp {sp:#x} is not in CPU 1's stack {:#x}-{:#x}",
        stack.start,
        stack.last
    );
    assert_console_lacks(console, "the fault was NOT taken");
    assert_console_lacks(console, "VM table checked");
    assert_eq!(outcome.status, EXIT_FATAL, "{console}");
}

/// What one board's boot must show where boards differ.
struct Expected {
    /// The banner's board line.
    banner: &'static str,
    /// Where the image's `.text` starts (the board's linker script).
    text_start: u64,
    /// The device blocks the hypervisor drives: name, base and size
    /// (device memory, read-write).
    devices: &'static [(&'static str, u64, u64)],
    /// The device blocks it only reads (device memory, read-only): the
    /// RTC, read once at boot for the wall clock.
    read_only_devices: &'static [(&'static str, u64, u64)],
    /// The guest RAM pool, first and last byte.
    guest_ram: (u64, u64),
    /// The last byte of the image staging area (its first is the
    /// runner's `Board::staging`).
    staging_last: u64,
    /// How many 2 MiB blocks the Hyp tables use.
    blocks: u32,
    /// The address the `test-fault-unmapped` hook reads, which the Hyp map
    /// leaves empty, and the level of the table walk that finds no entry.
    unmapped: (u64, u32),
}

/// The board-specific expectations, one row per board under test: a board
/// added to the suites needs its row here (its memory map is in
/// `boards/<name>/src/memory_map.rs`, the fault hook in its `main.rs`).
fn expected(board: &Board) -> Expected {
    match board.name {
        "integrator-cp" => Expected {
            banner: "capvisor: board: integrator-cp (QEMU Integrator/CP)",
            text_start: 0x1_0000,
            devices: &[
                ("uart0", 0x1600_0000, 0x1000),
                ("pic", 0x1400_0000, 0x1000),
                ("timers", 0x1300_0000, 0x1000),
            ],
            read_only_devices: &[("rtc", 0x1500_0000, 0x1000)],
            // Guest RAM starts 16 MiB into the RAM alias (below it, the
            // alias of the hypervisor's own image); the staging area's 16
            // slots follow it.
            guest_ram: (0x8100_0000, 0xafff_ffff),
            staging_last: 0xbfff_ffff,
            // Guest RAM and staging (752 + 256 MiB); the image and the
            // devices are pages.
            blocks: 504,
            // In the second GiB: no RAM, no device, no level-1 entry.
            unmapped: (0x7000_0000, 1),
        },
        "qemu-virt" => Expected {
            banner: "capvisor: board: qemu-virt (QEMU virt, GICv2 with virtualization)",
            // 2 MiB into RAM: QEMU's device tree is at its start.
            text_start: 0x4020_0000,
            devices: &[
                ("uart0", 0x0900_0000, 0x1000),
                ("gicd", 0x0800_0000, 0x1000),
                // GICC_DIR is at 0x1000: two pages.
                ("gicc", 0x0801_0000, 0x2000),
                ("gich", 0x0803_0000, 0x1000),
            ],
            read_only_devices: &[("rtc", 0x0901_0000, 0x1000)],
            guest_ram: (0x4100_0000, 0x6fff_ffff),
            staging_last: 0x7fff_ffff,
            blocks: 504,
            // In the first GiB, whose level-2 table holds only the devices.
            unmapped: (0x2000_0000, 2),
        },
        other => panic!(
            "tests/tests/boot.rs has no expectations for board '{other}': add its row to `expected`"
        ),
    }
}

fn boots_to_banner_and_prints_the_memory_map(board: &Board) {
    let expected = expected(board);
    let outcome = boot(board, "hello");
    let console = &outcome.transcript;
    assert_console_has(
        console,
        "capvisor: Capvisor 0.1.0: a type-1 hypervisor for ARMv7-A in Hyp mode",
    );
    assert_console_has(console, expected.banner);
    // Every board runs QEMU's Cortex-A15.
    assert_eq!(board.cpu, "cortex-a15");
    assert_console_has(
        console,
        "capvisor: cpu: Arm Cortex-A15 r4p0 (MIDR 0x414fc0f0)",
    );
    assert_console_has(console, "coverage check passed");
    assert_console_has(console, "Hyp MMU on");
    // The demo: two VMs running the 'hello' guest take turns.
    assert_console_has(console, "hello from VM 1 ('hello-1'), round 3 of 3");
    assert_console_has(console, "hello from VM 2 ('hello-2'), round 3 of 3");
    assert_console_has(console, "capvisor: VMs: 2 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy");
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");

    let rows = memory_map(console);
    let row = |name: &str| {
        rows.iter()
            .find(|row| row.name == name)
            .unwrap_or_else(|| panic!("no '{name}' row in the memory map:\n{console}"))
            .clone()
    };
    let text = row("text");
    assert_eq!(
        (text.start, text.memory.as_str(), text.access.as_str()),
        (expected.text_start, "normal", "r-x")
    );
    let rodata = row("rodata");
    assert_eq!(
        (rodata.start, rodata.access.as_str()),
        (text.last + 1, "r--")
    );
    // Every CPU the board has: its guard page (unmapped), its stack right
    // above it, its fault stack right above that; nothing for a CPU the
    // board does not have.
    let mut names = vec!["bss".to_string()];
    for cpu in 0..board.cpus {
        names.push(format!("cpu{cpu}-stack"));
        names.push(format!("cpu{cpu}-fault-stack"));
        let guard = row(&format!("cpu{cpu}-stack-guard"));
        let stack = row(&format!("cpu{cpu}-stack"));
        let fault = row(&format!("cpu{cpu}-fault-stack"));
        assert!(guard.unmapped, "CPU {cpu}'s stack guard must be unmapped");
        assert_eq!(
            (guard.last + 1, guard.last - guard.start + 1),
            (stack.start, 0x1000),
            "CPU {cpu}"
        );
        assert_eq!(fault.start, stack.last + 1, "CPU {cpu}");
    }
    assert!(
        !rows
            .iter()
            .any(|row| row.name == format!("cpu{}-stack", board.cpus)),
        "stacks for a CPU the board does not have:\n{console}"
    );
    for name in &names {
        let region = row(name);
        assert_eq!(
            (region.memory.as_str(), region.access.as_str()),
            ("normal", "rw-"),
            "{name}"
        );
        assert_eq!(region.start % 0x1000, 0, "{name} not page aligned");
        assert_eq!((region.last + 1) % 0x1000, 0, "{name} not page aligned");
    }
    if board.cpus > 1 {
        for cpu in 1..board.cpus {
            assert_console_has(console, &format!("capvisor: CPU {cpu}: online"));
        }
        assert_console_has(console, &format!("capvisor: {} CPUs online", board.cpus));
    }
    let devices = expected.devices.iter().map(|device| (device, "rw-"));
    let read_only = expected
        .read_only_devices
        .iter()
        .map(|device| (device, "r--"));
    for (&(name, base, size), access) in devices.chain(read_only) {
        let device = row(name);
        assert_eq!(
            (
                device.start,
                device.last,
                device.memory.as_str(),
                device.access.as_str()
            ),
            (base, base + size - 1, "device", access),
            "{name}"
        );
    }
    // The guest RAM pool, and the image staging area, read only, where the
    // runner's loader puts the images.
    let pool = row("guest-ram");
    assert_eq!(
        (
            pool.start,
            pool.last,
            pool.memory.as_str(),
            pool.access.as_str()
        ),
        (expected.guest_ram.0, expected.guest_ram.1, "normal", "rw-")
    );
    let images = row("guest-images");
    assert_eq!(
        (images.start, images.last, images.access.as_str()),
        (board.staging, expected.staging_last, "r--"),
        "the runner's staging area must be the board's"
    );
    let tables = line_with(console, "Hyp tables:").expect("tables summary");
    assert!(
        tables.contains(&format!("{} x 2 MiB blocks", expected.blocks)),
        "{tables}"
    );
    // No two regions overlap: the image's sections, and (wherever the
    // board puts them) the devices, guest RAM and staging.
    let mut sorted: Vec<_> = rows.iter().collect();
    sorted.sort_by_key(|row| row.start);
    for pair in sorted.windows(2) {
        assert!(
            pair[0].last < pair[1].start,
            "{:?} overlaps {:?}",
            pair[0],
            pair[1]
        );
    }
}

fn hyp_data_abort_prints_a_decoded_report_and_fails(board: &Board) {
    let (address, level) = expected(board).unmapped;
    let outcome = run(&command_with(board, &["test-fault-unmapped"], None));
    let console = &outcome.transcript;
    assert_console_has(
        console,
        &format!("test: reading unmapped address {address:#010x}"),
    );
    assert_console_has(
        console,
        "FATAL on CPU 0: Hyp-mode exception: data abort taken in Hyp mode (vector 0x10)",
    );
    let hsr = line_with(console, "HSR ").expect("HSR line");
    assert!(hsr.contains("EC 0x25"), "{hsr}");
    assert!(
        hsr.contains(&format!("translation fault, level {level}")),
        "{hsr}"
    );
    let hdfar = line_with(console, "HDFAR").expect("HDFAR line");
    assert!(hdfar.contains(&format!("{address:#010x}")), "{hdfar}");
    assert_console_has(console, "ELR_hyp");
    assert_console_has(console, "mode Hyp");
    assert_console_lacks(console, "the fault was NOT taken");
    assert_console_lacks(console, "VM table checked");
    assert_eq!(outcome.status, EXIT_FATAL, "{console}");
}

fn panic_prints_message_and_location_and_fails(board: &Board) {
    let outcome = run(&command_with(board, &["test-panic"], None));
    let console = &outcome.transcript;
    assert_console_has(
        console,
        "capvisor: FATAL on CPU 0: test panic requested by the test-panic feature",
    );
    assert_console_has(
        console,
        "capvisor: panicked at boards/components/src/boot.rs:",
    );
    assert_eq!(outcome.status, EXIT_FATAL, "{console}");
}

fn uncovered_layout_stops_boot_naming_the_range(board: &Board) {
    let text_start = expected(board).text_start;
    let outcome = run(&command_with(board, &["test-uncovered-layout"], None));
    let console = &outcome.transcript;
    let refusal =
        line_with(console, "boot refused:").unwrap_or_else(|| panic!("no refusal:\n{console}"));
    assert!(
        refusal.contains("Hyp map coverage check failed:"),
        "{refusal}"
    );
    assert!(
        refusal.contains("of region 'text' (normal r-x) is not mapped"),
        "{refusal}"
    );
    // The uncovered range is exactly one page: the last page of .text.
    let range = refusal
        .split_whitespace()
        .find(|word| word.starts_with("0x") && word.contains('-'))
        .expect("a range in the refusal");
    let (start, last) = range.split_once('-').unwrap();
    let start = u64::from_str_radix(start.trim_start_matches("0x"), 16).unwrap();
    let last = u64::from_str_radix(last.trim_start_matches("0x"), 16).unwrap();
    assert_eq!((start % 0x1000, last - start + 1), (0, 0x1000), "{refusal}");
    assert!(start > text_start, "{refusal}");
    assert_console_lacks(console, "Hyp MMU on");
    assert_console_lacks(console, "coverage check passed");
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{console}");
}

/// The second board, QEMU virt with the GIC's virtualization interface:
/// the device-tree check, the GIC and two VMs taking turns, whose guest
/// CPU interfaces are the GIC's own (GICV, mapped by stage 2).
#[test]
fn qemu_virt_checks_its_machine_and_runs_two_vms() {
    let board = capvisor_runner::board("qemu-virt").expect("the runner knows qemu-virt");
    let outcome = capvisor_tests::boot(&board, "hello");
    let console = &outcome.transcript;
    for line in [
        "capvisor: board: qemu-virt (QEMU virt, GICv2 with virtualization)",
        "capvisor: machine: 1 GiB RAM at 0x40000000, 4 CPU(s), GICv2 at 0x08000000 with virtualization, PSCI by SMC",
        "capvisor: 4 CPUs online",
        "capvisor: GIC: 288 interrupt lines, 4 list registers; guest CPU interfaces are GICV at 0x08040000",
        "hello from VM 1 ('hello-1'), round 3 of 3",
        "[hello-2] hello from VM 2 ('hello-2'), round 3 of 3",
        "capvisor: VMs: 2 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy",
    ] {
        assert_console_has(console, line);
    }
    assert_eq!(outcome.status, 0, "{console}");
}

/// The same machine with one CPU (`-smp 1`): nothing to start, the same
/// system runs.
#[test]
fn qemu_virt_runs_on_a_single_cpu() {
    let mut board = capvisor_runner::board("qemu-virt").expect("the runner knows qemu-virt");
    board.cpus = 1;
    let outcome = capvisor_tests::boot(&board, "hello");
    let console = &outcome.transcript;
    assert_console_has(console, "1 GiB RAM at 0x40000000, 1 CPU(s),");
    assert_console_lacks(console, "online");
    assert_console_has(
        console,
        "capvisor: VMs: 2 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy",
    );
    assert_eq!(outcome.status, 0, "{console}");
}

/// QEMU virt with less RAM than the board is built for: the device-tree
/// check refuses the boot before anything is mapped, naming both sizes.
#[test]
fn qemu_virt_refuses_a_machine_with_too_little_ram() {
    let mut board = capvisor_runner::board("qemu-virt").expect("the runner knows qemu-virt");
    board.memory_mib = 512;
    // No system image: the staging area lies beyond 512 MiB of RAM.
    let outcome = capvisor_tests::run(&capvisor_tests::command_with(&board, &[], None));
    let console = &outcome.transcript;
    assert_console_has(
        console,
        "capvisor: boot refused: device tree: RAM is 512 MiB at 0x40000000, the board needs at least 1 GiB",
    );
    assert_console_lacks(console, "Hyp MMU on");
    assert_eq!(outcome.status, 3, "{console}");
}
