// SPDX-License-Identifier: MIT OR Apache-2.0
//! Several CPUs, on qemu-virt (`-smp 4`): a guest with two and with four
//! vCPUs turns them on and off by PSCI and sends SGIs between them; Linux
//! with two vCPUs boots, counts two CPUs, takes IPIs, runs a parallel
//! workload to the right checksum and takes a CPU offline and back; two VMs
//! on two CPUs run at once, each on its own CPU; a hostile guest aims
//! SGIs, PSCI calls and GIC writes at CPUs and vCPUs it does not own while
//! a victim on another CPU keeps its rate; a description that pins a vCPU
//! to a CPU the machine does not have is refused at boot.
//!
//! The two-VM tests judge by what the hypervisor publishes per CPU (each
//! VM's preemptions, interrupts and slice-end ticks over the interval the
//! other VM ran), with the victim's wall-clock progress only as a smoke
//! check (each CPU is a host thread: `-icount` would run them one at a
//! time, and a shared host may slow any of them). The tests of this file
//! run one at a time.

use capvisor_runner::{run_to_exit, Board, Outcome, QemuCommand};
use capvisor_tests::{
    assert_console_has, assert_console_lacks, board_under_test, command, command_with, counter,
    guest_images, linux_images, pack, start_linux, system, type_at_prompt, vm_status_line,
};
use std::sync::Mutex;
use std::time::Duration;

/// Exit statuses (hyp::exit::ExitCode).
const EXIT_BOOT_REFUSED: i32 = 3;

/// Generous: Linux with two vCPUs boots in seconds, its workload takes a
/// few more.
const LINUX_TIMEOUT: Duration = Duration::from_secs(400);

/// One test at a time (see the module documentation).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn virt() -> Board {
    board_under_test("qemu-virt")
}

/// Runs `command`, failing with the transcript after `timeout`.
fn run(command: &QemuCommand, timeout: Duration) -> Outcome {
    run_to_exit(command, timeout)
        .unwrap_or_else(|error| panic!("QEMU run on qemu-virt failed: {error}"))
}

/// Checks that each of `vms` reported success.
fn assert_passed(console: &str, vms: &[&str]) {
    for vm in vms {
        assert!(
            vm_status_line(console, vm).contains("PASSED (status 0)"),
            "{console}"
        );
    }
}

/// The guest's check lines that failed.
fn failures(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter(|line| line.contains("FAIL "))
        .collect()
}

/// The checks the `smp` guest (`tests/guests/src/bin/smp.rs`) makes with
/// `vcpus` vCPUs, all running. vCPU 0 makes 9 once: its MPIDR, the vCPU
/// count PSCI and the GIC agree on, at least 2 vCPUs, AFFINITY_INFO of
/// itself, CPU_ON of a vCPU the VM lacks, no ping before it was sent, the
/// timers, SGIs from the right vCPU, no unexpected interrupt. For each
/// other vCPU it makes 11: AFFINITY_INFO before it starts (1); CPU_ON,
/// CPU_ON again, AFFINITY_INFO after, that it came up (4); pings and
/// pongs taken (2); AFFINITY_INFO after CPU_OFF, CPU_ON after it, its
/// second life, AFFINITY_INFO after that (4). Each other vCPU hands over
/// its own 2 (its MPIDR in each life).
fn smp_checks(vcpus: u32) -> u32 {
    9 + (1 + 4 + 2 + 4 + 2) * (vcpus - 1)
}

/// Runs the `smp` guest of `description`; returns the transcript after
/// checking what every size of it must show.
fn smp_guest(description: &str, vcpus: u32) -> String {
    let checks = smp_checks(vcpus);
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let outcome = run(&command(&virt(), description), Duration::from_secs(120));
    let console = outcome.transcript;
    assert_console_has(
        &console,
        &format!("smp: vcpu 0 of {vcpus}, MPIDR 0x80000000"),
    );
    for vcpu in 1..vcpus {
        assert_console_has(
            &console,
            &format!("smp: vcpu {vcpu} up, MPIDR 0x8000000{vcpu}"),
        );
        assert_console_has(
            &console,
            &format!("smp: ping-pong with vcpu {vcpu}: 100 pings, 100 pongs"),
        );
        assert_console_has(
            &console,
            &format!("smp: vcpu {vcpu} second life, MPIDR 0x8000000{vcpu}"),
        );
    }
    let timers = ["1"; 4][..vcpus as usize].join(" ");
    let strays = ["0"; 4][..vcpus as usize].join(" ");
    assert_console_has(
        &console,
        &format!("smp: timer interrupts per vcpu: {timers}, strays: {strays}"),
    );
    assert_eq!(failures(&console), Vec::<&str>::new(), "{console}");
    assert_console_has(&console, &format!("smp: {checks} checks, 0 failed"));
    assert_passed(&console, &["smp"]);
    assert_console_lacks(&console, "Hyp-mode exception");
    assert_eq!(outcome.status, 0, "{console}");
    console
}

#[test]
fn a_guest_turns_its_second_vcpu_on_and_off_and_they_exchange_sgis() {
    let console = smp_guest("smp", 2);
    // vCPUs 0 and 1 on CPUs 1 and 2, beside a VM on CPU 0.
    assert_console_has(&console, "2 vCPUs on CPUs 1, 2");
    assert_passed(&console, &["hello"]);
}

#[test]
fn a_guest_with_a_vcpu_on_every_cpu_runs_them_all() {
    smp_guest("smp4", 4);
}

#[test]
fn linux_with_two_vcpus_counts_two_cpus_takes_ipis_and_takes_a_cpu_offline() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let board = virt();
    let loader = pack(
        &board,
        &system("smp-linux"),
        &[linux_images(), guest_images()],
    );
    let outcome = run(&command_with(&board, &[], Some(loader)), LINUX_TIMEOUT);
    let console = &outcome.transcript;
    assert_console_has(console, "smp: Brought up 1 node, 2 CPUs");
    let lines: Vec<&str> = console
        .lines()
        .filter(|line| line.starts_with("capvisor-smp: "))
        .collect();
    let expected_order = [
        "capvisor-smp: nproc 2",
        "capvisor-smp: ipis ",
        "capvisor-smp: job ",
        "capvisor-smp: job ",
        "capvisor-smp: cpu1 online 0",
        "capvisor-smp: nproc 1",
        "capvisor-smp: cpu1 online 1",
        "capvisor-smp: nproc 2",
        "capvisor-smp: ipis ",
        "capvisor-smp: done",
    ];
    assert_eq!(lines.len(), expected_order.len(), "{console}");
    for (line, expected) in lines.iter().zip(expected_order) {
        assert!(
            line.starts_with(expected),
            "{line:?} is not {expected:?}:\n{console}"
        );
    }
    // The two jobs ran at once, each to the checksum of 32 MiB of zeros.
    for job in [lines[2], lines[3]] {
        assert!(
            job.ends_with("sum 58f06dd588d8ffb3beb46ada6309436b"),
            "{job}:\n{console}"
        );
    }
    // IPIs arrived, and more while the workload and the hotplug ran.
    let (before, after) = (counter(lines[1], "ipis"), counter(lines[8], "ipis"));
    assert!(
        before > 0 && after > before,
        "{before} then {after}:\n{console}"
    );
    assert!(
        vm_status_line(console, "linux").contains("powered off"),
        "{console}"
    );
    assert_console_lacks(console, "Hyp-mode exception");
    assert_eq!(outcome.status, 0, "{console}");
}

#[test]
fn the_two_vcpu_linux_of_make_program_takes_commands_and_reboots_beside_a_vm_on_another_cpu() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let mut session = start_linux(&virt(), "smp-linux-shell");
    let command = Duration::from_secs(120);
    if let Err(error) = session.expect("capvisor-linux: initramfs up", LINUX_TIMEOUT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    for (typed, expected) in [
        ("echo cpus-$(nproc)\n", "cpus-2"),
        // Work on both CPUs at once, each job its own checksum.
        (
            "for i in 1 2; do (dd if=/dev/zero bs=1M count=16 2>/dev/null | md5sum > /sum$i) & done; wait; cat /sum1 /sum2 | uniq -c | tr -s ' ' '-'\n",
            "-2-2c7ab85a893283e98c931e9511add182-",
        ),
    ] {
        type_at_prompt(&mut session, typed, command);
        if let Err(error) = session.expect(expected, command) {
            panic!("after {typed:?}, waiting for {expected:?}: {error}");
        }
    }
    // A reboot restarts the VM: vCPU 1 parks, the RAM is reloaded, vCPU 0
    // boots Linux again, which starts vCPU 1 again; the ticker on CPU 2
    // never stops.
    type_at_prompt(&mut session, "reboot -f\n", command);
    if let Err(error) = session.expect("capvisor-linux: initramfs up", LINUX_TIMEOUT) {
        panic!("Linux did not come back after reboot: {error}");
    }
    type_at_prompt(&mut session, "echo again-$(nproc)\n", command);
    if let Err(error) = session.expect("again-2", command) {
        panic!("after the reboot, nproc: {error}");
    }
    let transcript = session.transcript();
    assert_eq!(
        transcript.matches("smp: Brought up 1 node, 2 CPUs").count(),
        2,
        "{transcript}"
    );
    // The VM on CPU 2 ran alongside all the while, and goes on (it ticks
    // every 10 s).
    if let Err(error) = session.expect("[ticker] ticker: ", command) {
        panic!("the ticker on CPU 2 stopped: {error}");
    }
    assert_console_has(&session.transcript(), "[ticker] ticker: 10 s");
}

/// The victim's 100 ms windows: those wholly before `from_us` (alone) and
/// those wholly inside `from_us..to_us`.
fn victim_windows(console: &str, from_us: u64, to_us: u64) -> (Vec<u64>, Vec<u64>) {
    let mut alone = Vec::new();
    let mut during = Vec::new();
    // Whole lines only (prefixed with `[victim] ` when another VM has the
    // focus): another VM's line may break one of the victim's, which is
    // then printed again whole.
    for window in console
        .lines()
        .filter(|line| line.contains("victim: window") && line.ends_with(" iterations"))
    {
        let (begin, count) = (counter(window, "from"), counter(window, "us:"));
        let end = begin + 100_000;
        if end <= from_us {
            alone.push(count);
        } else if begin >= from_us && end <= to_us {
            during.push(count);
        }
    }
    (alone, during)
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// The per-CPU evidence the hypervisor publishes (each VM's final status
/// line, whose counts cover the whole run and so the interval the other
/// VM ran) that `vm`, a single vCPU alone on its CPU, had that CPU to
/// itself whenever it was ready: it was given the CPU once, and again
/// only after each of its own waits (slices at most waits + 1); no other
/// vCPU ever took it (preemptions 0); its slices ran out with nobody else
/// ready (ticks) and every physical interrupt it took was one of those
/// ticks (irqs at most its ticks and two more: the console's or a last
/// alarm). A CPU shared with the other VM would show preemptions and
/// more slices; another CPU's kicks would show as irqs. These counts do
/// not depend on how busy the host is, unlike the rates.
fn held_its_cpu(console: &str, vm: &str) {
    let status = vm_status_line(console, vm);
    let [slices, waits, preemptions, irqs, ticks] =
        ["slices", "waits", "preemptions", "irqs", "ticks"].map(|key| counter(status, key));
    assert_eq!(preemptions, 0, "{vm} was preempted: {status}");
    assert!(
        slices <= waits + 1,
        "{vm} lost its CPU other than by waiting: {status}"
    );
    assert!(ticks >= 1, "{vm} never ran across a slice end: {status}");
    assert!(irqs <= ticks + 2, "{vm}: interrupts not its own: {status}");
}

/// The smoke check on wall clock (the rates are wall clock, on a host
/// that others may share, so the judgement is [`held_its_cpu`]'s): the
/// victim made progress in 9 of every 10 windows of 100 ms beside the
/// other VM, and its
/// median there is at least a quarter of its median alone. The rates are
/// printed for the record.
fn victim_kept_going(console: &str, from_us: u64, to_us: u64) {
    let (mut alone, mut during) = victim_windows(console, from_us, to_us);
    assert!(
        alone.len() >= 2 && during.len() >= 5,
        "windows alone {alone:?}, during {during:?}:\n{console}"
    );
    // A host stall can empty a wall-clock window now and then; a starved
    // victim would empty many.
    let empty = during.iter().filter(|&&count| count == 0).count();
    assert!(
        empty * 10 <= during.len(),
        "{empty} of {} windows without progress: {during:?}\n{console}",
        during.len()
    );
    let (solo, shared) = (median(&mut alone), median(&mut during));
    println!("victim: median {solo} iterations per 100 ms alone, {shared} beside the other VM");
    assert!(
        shared * 4 >= solo,
        "the victim made {shared} iterations per 100 ms beside the other VM, {solo} alone\n{console}"
    );
}

#[test]
fn two_vms_on_two_cpus_run_at_once_each_on_its_own_cpu() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let outcome = run(&command(&virt(), "smp-parallel"), Duration::from_secs(120));
    let console = &outcome.transcript;
    let rival = console
        .lines()
        .find(|line| line.starts_with("[rival] rival: busy from"))
        .unwrap_or_else(|| panic!("no rival line:\n{console}"));
    assert_passed(console, &["victim", "rival"]);
    assert_eq!(outcome.status, 0, "{console}");
    let (from, to) = (counter(rival, "from"), counter(rival, "to"));
    // Each had its own CPU whenever it was ready: they ran at once.
    held_its_cpu(console, "victim");
    held_its_cpu(console, "rival");
    victim_kept_going(console, from, to);
}

#[test]
fn a_guest_attacking_cpus_it_does_not_own_is_contained_and_the_victim_keeps_its_cpu() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let outcome = run(&command(&virt(), "smp-hostile"), Duration::from_secs(120));
    {
        let console = &outcome.transcript;
        let attack = console
            .lines()
            .find(|line| line.contains("hostile-smp: attack from"))
            .unwrap_or_else(|| panic!("no attack line:\n{console}"));
        let (from, to, rounds) = (
            counter(attack, "from"),
            counter(attack, "to"),
            counter(attack, "us,"),
        );
        assert!(rounds >= 10, "{attack}");
        // Every kind of attack ran, and each answer was what a VM with one
        // vCPU must get.
        for kind in [
            "GICD_SGIR writes",
            "SGI pending-state reads",
            "CPU_ON of absent vCPUs",
            "AFFINITY_INFO of absent vCPUs",
            "CPU_ON of itself",
            "GICD writes of all ones",
            "GICD_ITARGETSR reads",
        ] {
            let line = console
                .lines()
                .find(|line| line.contains(&format!(" {kind}, ")))
                .unwrap_or_else(|| panic!("no '{kind}' line:\n{console}"));
            assert!(counter(line, "hostile-smp:") >= rounds, "{line}");
            assert!(line.ends_with(", 0 failed"), "{line}:\n{console}");
        }
        assert_console_has(console, "hostile-smp: 7 checks, 0 failed");
        // Nothing the hostile VM did took the victim's CPU from it or
        // interrupted it: its only physical interrupts are its own slice
        // ticks (the hostile VM has one vCPU: there is nobody it could
        // have the hypervisor kick).
        held_its_cpu(console, "victim");
        assert_passed(console, &["hostile-smp", "victim"]);
        assert_console_lacks(console, "Hyp-mode exception");
        assert_eq!(outcome.status, 0, "{console}");
        victim_kept_going(console, from, to);
    }
}

#[test]
fn a_vcpu_pinned_to_a_cpu_the_machine_lacks_is_refused_at_boot() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    // The description is good for the board (4 CPUs), but this machine
    // has 2: its vCPU 1 on CPU 2 cannot run.
    let mut board = virt();
    board.cpus = 2;
    let outcome = run(&command(&board, "smp"), Duration::from_secs(120));
    let console = &outcome.transcript;
    assert_console_has(
        console,
        "boot refused: bad VM table: VM 'smp': vCPU 1 runs on CPU 2, but only CPUs 0 to 1 are online",
    );
    assert_console_lacks(console, "running");
    assert_eq!(outcome.status, EXIT_BOOT_REFUSED, "{console}");
}
