// SPDX-License-Identifier: MIT OR Apache-2.0
//! Linux as a guest: Debian's stock armhf kernel (linux-image-*-armmp) with a
//! busybox initramfs boots under Capvisor to a shell on the console; commands
//! typed on it run; its timer and UART interrupts arrive; a CPU and memory
//! workload gives the right answer; an abort at an unassigned address is
//! Linux's to handle; `reboot` restarts the VM and `poweroff` ends it.
//!
//! The images come from `tools/linux-images.sh` (Debian packages through
//! apt, cached under target/linux).

use capvisor_runner::Session;
use capvisor_tests::{
    command_with, counter, linux_images, pack, per_board, start_command, start_linux,
    type_at_prompt, vm_status_line, workspace_root, Board, CURSOR_ANSWER, SETTLE,
};
use std::time::Duration;

/// Generous: Linux boots in a few seconds under TCG.
const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const MARKER: &str = "capvisor-linux: initramfs up";

/// Waits for the shell's prompt, types `command` and waits for `expect`,
/// failing with the transcript.
fn run(session: &mut Session, command: &str, expect: &str) -> String {
    type_command(session, command);
    match session.expect(expect, COMMAND) {
        Ok(line) => line,
        Err(error) => panic!("after {command:?}, waiting for {expect:?}: {error}"),
    }
}

/// Waits for the shell's prompt and types `command`.
fn type_command(session: &mut Session, command: &str) {
    type_at_prompt(session, command, COMMAND);
}

fn boot_linux(board: &Board) -> Session {
    let mut session = start_linux(board, "linux");
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    session
}

/// The count of interrupt `name` in /proc/interrupts (the CPU column).
/// The line comes back with its blanks turned into colons, so that the
/// echo of the command itself cannot match.
fn interrupts(session: &mut Session, name: &str) -> u64 {
    let command = format!("grep {name} /proc/interrupts | tr -s ' ' ':'\n");
    let line = run(session, &command, &format!(":{name}"));
    line.split(':')
        .filter(|field| !field.is_empty())
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

per_board!(
    linux_boots_runs_commands_and_powers_off,
    an_abort_at_an_unassigned_address_is_linuxs_to_handle,
    reboot_restarts_linux,
    two_linux_vms_each_have_their_own_shell,
);

fn linux_boots_runs_commands_and_powers_off(board: &Board) {
    let mut session = boot_linux(board);
    run(&mut session, "echo capvisor-$((6 * 7))\n", "capvisor-42");
    run(&mut session, "uname -m\n", "armv7l");
    run(&mut session, "cat /proc/cpuinfo\n", "ARMv7");
    // The virtual timer (arch_timer) and the UART's interrupts rise
    // between two reads.
    let (timer, uart) = (
        interrupts(&mut session, "arch_timer"),
        interrupts(&mut session, "uart-pl011"),
    );
    run(&mut session, "sleep 1; echo slept\n", "slept");
    let (timer2, uart2) = (
        interrupts(&mut session, "arch_timer"),
        interrupts(&mut session, "uart-pl011"),
    );
    assert!(timer2 > timer, "timer interrupts {timer} -> {timer2}");
    assert!(uart2 > uart, "UART interrupts {uart} -> {uart2}");
    // 32 MiB of zeros through a pipe: the MD5 every machine agrees on.
    run(
        &mut session,
        "dd if=/dev/zero bs=1M count=32 2>/dev/null | md5sum\n",
        "58f06dd588d8ffb3beb46ada6309436b",
    );
    type_command(&mut session, "poweroff -f\n");
    let status = session
        .wait_exit(COMMAND)
        .expect("QEMU exits after poweroff");
    let transcript = session.transcript();
    let line = vm_status_line(&transcript, "linux");
    assert!(line.contains("'linux': powered off;"), "{line}");
    assert!(counter(line, "irqs") > 0, "{line}");
    assert_eq!(status, 0, "{transcript}");
}

fn an_abort_at_an_unassigned_address_is_linuxs_to_handle(board: &Board) {
    let mut session = boot_linux(board);
    // Nothing is behind guest-physical 0x0b000000 (the guest platform has no
    // row there; 0x0a000000 is a virtio-mmio slot): the hypervisor injects
    // an external abort, Linux's own fault handler reports it and kills
    // the reader with SIGBUS, and the shell carries on.
    run(&mut session, "devmem 0x0b000000 32\n", "Bus error");
    run(&mut session, "echo still-alive\n", "still-alive");
    let transcript = session.transcript();
    assert!(
        transcript.contains("external abort"),
        "Linux should report the abort itself:\n{transcript}"
    );
    assert!(!transcript.contains("Hyp-mode exception"), "{transcript}");
    type_command(&mut session, "poweroff -f\n");
    assert_eq!(session.wait_exit(COMMAND).expect("QEMU exits"), 0);
}

fn reboot_restarts_linux(board: &Board) {
    let mut session = boot_linux(board);
    type_command(&mut session, "reboot -f\n");
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not come back after reboot: {error}");
    }
    run(&mut session, "echo second-life\n", "second-life");
    type_command(&mut session, "poweroff -f\n");
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    let line = vm_status_line(&transcript, "linux");
    assert_eq!(counter(line, "restarts"), 1, "{line}");
    assert_eq!(status, 0, "{transcript}");
}

/// `systems/two-linux.toml`: two Linux VMs, each with its own shell. The
/// second's boot is held while the first has the focus (console mode
/// `held`, the default): none of it is drawn among the first's; Ctrl-] n
/// shows what was held and gives the second the keyboard.
fn two_linux_vms_each_have_their_own_shell(board: &Board) {
    let description = workspace_root().join("systems").join("two-linux.toml");
    let loader = pack(board, &description, &[linux_images()]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("the first Linux did not reach its initramfs: {error}");
    }
    run(&mut session, "echo one-$((1 + 1))\n", "one-2");
    let transcript = session.transcript();
    assert!(
        !transcript.contains("[linux-2]"),
        "the second VM's output must be held, not drawn among the first's:\n{transcript}"
    );
    // The second VM boots meanwhile; give it the time to reach its shell.
    std::thread::sleep(Duration::from_secs(20));
    session.send("\x1dn").expect("QEMU takes input");
    if let Err(error) = session.expect("console focus: VM 2 'linux-2'", COMMAND) {
        panic!("Ctrl-] n did not move the focus: {error}");
    }
    if let Err(error) = session.expect(
        "bytes of output held while in the background follow",
        COMMAND,
    ) {
        panic!("the second VM's held output was not shown: {error}");
    }
    run(&mut session, "echo two-$((2 + 2))\n", "two-4");
    type_command(&mut session, "poweroff -f\n");
    if let Err(error) = session.expect("VM 2 has stopped", COMMAND) {
        panic!("the second VM did not power off: {error}");
    }
    // Back to the first, whose last prompt's cursor query is unanswered.
    session.send("\x1dn").expect("QEMU takes input");
    session
        .expect("console focus: VM 1 'linux-1'", COMMAND)
        .expect("focus back");
    std::thread::sleep(SETTLE);
    session.send(CURSOR_ANSWER).expect("QEMU takes input");
    std::thread::sleep(SETTLE);
    session.send("poweroff -f\n").expect("QEMU takes input");
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    for vm in ["linux-1", "linux-2"] {
        let line = vm_status_line(&transcript, vm);
        assert!(line.contains(&format!("'{vm}': powered off;")), "{line}");
    }
    assert!(
        transcript.contains("capvisor: VMs: 0 passed, 0 failed, 2 powered off without a status, 0 stopped by their fault policy"),
        "{transcript}"
    );
    assert_eq!(status, 0, "{transcript}");
}
