// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hostile-guest suite: a guest that probes every address it could
//! guess, aims unemulatable and unaligned accesses and cache maintenance at
//! devices, sweeps hypercall and SMC ids with hostile arguments, writes
//! random values to every device register and storms its own timer
//! interrupt, and attacks the transport and virtqueue of its virtio-blk
//! disk (an image disk of a pattern this test writes), beside a victim VM
//! that must keep making progress. Every case must be contained, the
//! victim must keep at least a fifth of the progress it made alone in
//! every 100 ms of the attack, the hypervisor's count of injected faults
//! must match the aborts the hostile guest took, and the hypervisor must
//! take no Hyp-mode exception.

use capvisor_tests::{
    assert_console_has, assert_console_lacks, command_with, counter, guest_images, pack, per_board,
    run, system, vm_status_line, Board,
};
use std::path::PathBuf;

// The Makefile's `qemu-test` skips `a_hostile_guest` in its first run and
// then runs this file alone with --nocapture, for the summary below: the
// filter matches each board's `<board>::a_hostile_guest_...`.
per_board!(a_hostile_guest_is_contained_and_the_victim_keeps_running);

/// A line of the transcript containing `needle`.
fn line<'a>(console: &'a str, needle: &str) -> &'a str {
    console
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with '{needle}':\n{console}"))
}

/// What one round of the hostile guest's attack (`attack` in
/// `tests/guests/src/bin/hostile/main.rs`) tries, section by section, derived
/// from its loops; each section's count must be exactly this many per
/// round.
const CASES_PER_ROUND: [(&str, u64); 7] = [
    // 1. A load and a store at each of the 20 PROBES, and at one address
    // in each MiB of the 4 GiB IPA space but the 2 of its own RAM.
    ("probes", 2 * 20 + 2 * (4096 - 2)),
    // 2. At each of the 3 emulated devices' windows: LDM, STM, LDREX,
    // 3 unaligned word loads and 1 unaligned halfword store.
    ("syndromeless", 3 * (3 + 3 + 1)),
    // 3. For each of the 3 set/way operations: the sweep, then one
    // operation by address at each of the 3 devices and 20 probes.
    ("cache", 3 * (1 + 3 + 20)),
    // 4. 64 SMCCC owners x 3 call kinds x 3 arguments, by HVC and by SMC.
    ("calls", 64 * 3 * 3 * 2),
    // 5. A word written at every offset of the UART (4 KiB), the
    // distributor (4 KiB) and the CPU interface (8 KiB), then the 15
    // read-only registers compared.
    ("registers", (0x1000 + 0x1000 + 0x2000) / 4 + 15),
    // 6. The storm took more than 10 interrupts.
    ("storms", 1),
    // 7. The virtio-blk disk (tests/guests/src/bin/hostile/virtqueues.rs):
    // registers 1 + 10 read-only + 13 sizes and offsets; negotiation 1 +
    // 4 refused feature sets + 1 DRIVER_OK without FEATURES_OK + 1 + 1
    // indirect + 3 queue setups around DRIVER_OK + 4 absent queues + 1;
    // queue setup 5 sizes + 8 areas + 4 ring indices; descriptors 17
    // targets x (read, write) + 5 headers and status bytes; chains 8 +
    // 2 reads into its own rings; requests 10 + 2; notifications 5
    // absent queues + 1 + reset 2; the empty slot 3; and the watched
    // memory at the end, 1.
    (
        "virtqueues",
        24 + 16 + 17 + (17 * 2 + 5) + 10 + 12 + 8 + 3 + 1,
    ),
];

/// The data aborts one round of the virtqueue section costs: a byte and a
/// halfword load, a byte and a halfword store below 0x100, an unaligned
/// load and store there, an unaligned halfword load and two word loads
/// past the configuration space, an LDM and an STM; and a byte load in
/// the empty slot.
const VIRTIO_ABORTS_PER_ROUND: u64 = 12;

/// The hostile VM's disk: 128 sectors, byte `i` is `i * 7 + i / 512`
/// (mod 256), in a folder of this test's own; the guest reads it back.
fn disk_folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capvisor-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<u8> = (0..128 * 512u32)
        .map(|i| i.wrapping_mul(7).wrapping_add(i >> 9) as u8)
        .collect();
    std::fs::write(dir.join("hostile-disk.img"), bytes).unwrap();
    dir
}

/// The data aborts one round must cost the hostile guest, all injected
/// by the hypervisor: every probe of section 1 (2 * 20 + 2 * 4094), and
/// the 7 accesses of section 2 at every window the hypervisor emulates
/// (the UART's and the distributor's everywhere; the CPU interface's only
/// where it is emulated: on a board whose guests reach the GIC's own
/// virtual CPU interface by stage 2, those 7 complete), and the refused
/// accesses to the virtio window of section 7. Nothing else in a round
/// aborts (cache maintenance by address at an unmapped address is
/// a no-op on these CPUs, measured: the counts matched to the abort).
fn aborts_per_round(board: &Board) -> u64 {
    let emulated_windows = match board.name {
        "integrator-cp" => 3,
        "qemu-virt" => 2,
        other => panic!("board {other}: add it to aborts_per_round in tests/tests/hostile.rs"),
    };
    2 * 20 + 2 * (4096 - 2) + emulated_windows * 7 + VIRTIO_ABORTS_PER_ROUND
}

/// The victim's 100 ms windows, split into those before the attack began
/// (it ran alone) and those wholly inside the attack.
struct Progress {
    solo: Vec<u64>,
    attacked: Vec<u64>,
}

fn victim_progress(console: &str, attack_start_us: u64, attack_end_us: u64) -> Progress {
    let mut progress = Progress {
        solo: Vec::new(),
        attacked: Vec::new(),
    };
    for window in console
        .lines()
        .filter(|line| line.contains("victim: window"))
    {
        let (begin, count) = (counter(window, "from"), counter(window, "us:"));
        let end = begin + 100_000;
        if end <= attack_start_us {
            progress.solo.push(count);
        } else if begin >= attack_start_us && end <= attack_end_us {
            progress.attacked.push(count);
        }
    }
    progress
}

fn a_hostile_guest_is_contained_and_the_victim_keeps_running(board: &Board) {
    // Under -icount: the victim's progress per 100 ms of guest time is then
    // the same whatever else the host runs (wall-clock QEMU once starved a
    // window on a loaded machine).
    let loader = pack(board, &system("hostile"), &[guest_images(), disk_folder()]);
    let mut command = command_with(board, &[], Some(loader));
    command.icount = true;
    let outcome = run(&command);
    let console = &outcome.transcript;
    assert_console_has(console, "disks: 1 image disks on virtio-mmio");
    assert_console_lacks(console, "virtqueue case failed");
    let hyp_exceptions = console.matches("Hyp-mode exception").count();
    assert_eq!(hyp_exceptions, 0, "{console}");
    assert!(!console.contains("unexpected exception"), "{console}");
    let attack = line(console, "hostile: attack from");
    let (attack_start, attack_end) = (counter(attack, "from"), counter(attack, "to"));
    let rounds = counter(attack, "us,");
    // Whole rounds until 600 ms of attack have passed, each with a 100 ms
    // storm that prints one line: as many storm lines as rounds, at least
    // 100 ms each, and at least 600 ms in all.
    let storms: Vec<&str> = console
        .lines()
        .filter(|line| line.contains("timer interrupts in a 100 ms storm"))
        .collect();
    assert_eq!(storms.len() as u64, rounds, "one storm a round: {attack}");
    assert!(
        attack_end - attack_start >= (rounds * 100_000).max(600_000),
        "{rounds} rounds in too short an attack: {attack}"
    );
    for storm in &storms {
        assert!(counter(storm, "hostile:") > 100, "{storm}");
    }
    // Each section tried exactly what its loops make, every round.
    let sections = line(console, "cases per section");
    let mut expected_total = 0;
    for (section, per_round) in CASES_PER_ROUND {
        let tried = counter(sections, &format!("{section} "));
        assert_eq!(tried, per_round * rounds, "{section}: {sections}");
        expected_total += per_round * rounds;
    }
    let summary = line(console, "cases tried");
    let tried = counter(summary, "hostile:");
    let contained = counter(summary, "tried,");
    assert_eq!(tried, expected_total, "{summary}");
    assert_eq!(contained, tried, "{summary}");
    // The victim, alone while the hostile guest slept and then under
    // attack: in each attacked 100 ms at least a fifth of its solo mean
    // (a fair share beside one other VM is a half).
    let progress = victim_progress(console, attack_start, attack_end);
    assert!(
        progress.solo.len() >= 2 && progress.attacked.len() >= 3,
        "too few windows to compare: {attack}\n{console}"
    );
    let solo = progress.solo.iter().sum::<u64>() / progress.solo.len() as u64;
    let worst = *progress.attacked.iter().min().unwrap();
    assert!(
        worst * 5 >= solo,
        "the victim made {worst} iterations in its worst attacked 100 ms, {solo} alone\n{console}"
    );
    // The hypervisor's own counters: every data abort the hostile guest
    // took was injected by the hypervisor (see aborts_per_round), none in
    // the victim.
    let aborts = counter(line(console, "data aborts taken"), "hostile:");
    assert_eq!(
        aborts,
        aborts_per_round(board) * rounds,
        "{aborts} aborts in {rounds} rounds\n{console}"
    );
    let hostile = vm_status_line(console, "hostile");
    assert!(hostile.contains("PASSED"), "{hostile}");
    assert_eq!(counter(hostile, "injected faults"), aborts, "{hostile}");
    let victim_status = vm_status_line(console, "victim");
    assert!(victim_status.contains("PASSED"), "{victim_status}");
    assert_eq!(
        counter(victim_status, "injected faults"),
        0,
        "{victim_status}"
    );
    // Its memory came out of the attack as it went in (the victim checks).
    assert_console_has(console, "victim: 3 checks, 0 failed");
    assert_console_has(console, "capvisor: VMs: 2 passed, 0 failed, 0 powered off without a status, 0 stopped by their fault policy");
    assert_eq!(outcome.status, 0, "{console}");
    println!(
        "hostile suite on {}: {tried} cases tried, {contained} contained, {hyp_exceptions} Hyp-mode exceptions, {aborts} aborts injected, {rounds} rounds; \
         victim {solo} iterations per 100 ms alone, {worst} at worst under attack ({}%), {} attacked windows",
        board.name,
        worst * 100 / solo,
        progress.attacked.len()
    );
}
