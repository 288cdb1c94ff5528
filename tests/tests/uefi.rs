// SPDX-License-Identifier: MIT OR Apache-2.0
//! UEFI as a guest: Debian's EDK2 for QEMU's `virt` (`qemu-efi-arm`'s
//! `AAVMF32_CODE.fd`, cut to its 2 MiB firmware volume), mapped read-only
//! at IPA 0 (`systems/uefi.toml`), reaches its boot manager and the UEFI
//! shell under Capvisor; a non-volatile variable set in the shell is
//! written through the second flash bank's CFI commands and is still there
//! after `reset` restarts the VM.
//!
//! With an EFI system partition on its virtio disk
//! (`tests/systems/uefi-linux.toml`, built by `tools/uefi-esp.sh` from
//! the Linux images), the boot manager starts GRUB from the disk's
//! removable-media path before its shell, and GRUB boots Debian's armmp
//! kernel with the busybox initramfs through the kernel's EFI stub, up to
//! the busybox shell, which runs a command and powers the VM off.
//!
//! The image comes from `tools/firmware-images.sh` (Debian's package
//! through apt, cached under target/firmware).

use capvisor_runner::Session;
use capvisor_tests::{
    assert_console_lacks, command_with, linux_images, pack, per_board, start_command,
    type_at_prompt, vm_status_line, workspace_root, Board,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// EDK2 reaches its shell in about 20 s under TCG on qemu-virt; give a
/// loaded machine and the slower board room.
const BOOT: Duration = Duration::from_secs(400);
const COMMAND: Duration = Duration::from_secs(60);
const PROMPT: &str = "Shell> ";
const EXIT_SUCCESS: i32 = 0;
/// What the busybox initramfs prints once it is up (tools/linux-images.sh).
const MARKER: &str = "capvisor-linux: initramfs up";
/// A vendor GUID of this test's own for its variable.
const GUID: &str = "6a3e9f2c-1d4b-4c8e-9a57-3b2f0e8d7c61";

/// Fetches the firmware images once per test process; returns their
/// directory.
fn firmware_images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let dir = root.join("target").join("firmware");
        let output = Command::new(root.join("tools").join("firmware-images.sh"))
            .arg(&dir)
            .current_dir(&root)
            .output()
            .expect("cannot run tools/firmware-images.sh");
        assert!(
            output.status.success(),
            "tools/firmware-images.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .clone()
}

/// Waits for `text`, failing with the transcript.
fn expect(session: &mut Session, text: &str, timeout: Duration) -> String {
    session
        .expect(text, timeout)
        .unwrap_or_else(|error| panic!("waiting for {text:?}: {error}"))
}

/// Waits for the firmware's banner, its boot manager starting the shell,
/// and the shell's prompt (after its startup.nsh countdown); returns the
/// time it took.
fn to_shell(session: &mut Session) -> Duration {
    let start = Instant::now();
    expect(session, "UEFI firmware (version", BOOT);
    expect(
        session,
        "BdsDxe: starting Boot0001 \"EFI Internal Shell\"",
        BOOT,
    );
    expect(session, "UEFI Interactive Shell v2.2", COMMAND);
    expect(session, PROMPT, COMMAND);
    start.elapsed()
}

/// Types `command` at the prompt and returns the output up to the next
/// prompt.
fn run(session: &mut Session, command: &str) -> String {
    let before = session.transcript().len();
    session
        .send(&format!("{command}\r"))
        .expect("QEMU takes input");
    expect(session, PROMPT, COMMAND);
    session.transcript()[before..].to_string()
}

per_board!(
    uefi_reaches_its_shell_and_keeps_a_variable_across_reset,
    uefi_starts_linux_from_its_virtio_disk
);

fn uefi_reaches_its_shell_and_keeps_a_variable_across_reset(board: &Board) {
    let description = workspace_root().join("systems").join("uefi.toml");
    let loader = pack(board, &description, &[firmware_images()]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let placed = expect(
        &mut session,
        "at IPA 0x00000000 (read-only) entered at 0x00000000",
        BOOT,
    );
    assert!(placed.contains("VM 1 'uefi'"), "{placed}");
    let first = to_shell(&mut session);

    // Its variable store works: the boot manager's own variables are
    // there, and a new non-volatile one is written to the flash.
    let boot_order = run(&mut session, "setvar BootOrder");
    assert!(boot_order.contains("BootOrder - "), "{boot_order}");
    let set = run(
        &mut session,
        &format!("setvar CapvisorTest -guid {GUID} -nv -bs =L\"kept\""),
    );
    assert!(!set.contains("rror"), "{set}");
    // L"kept": UCS-2, 8 bytes.
    let kept = "6B 00 65 00 70 00 74 00";
    let read = run(&mut session, &format!("setvar CapvisorTest -guid {GUID}"));
    assert!(read.contains(kept), "{read}");

    // PSCI SYSTEM_RESET: the VM starts again from its firmware, which
    // finds the variable in the second flash bank.
    session.send("reset\r").expect("QEMU takes input");
    let again = to_shell(&mut session);
    let read = run(&mut session, &format!("setvar CapvisorTest -guid {GUID}"));
    assert!(
        read.contains("CapvisorTest - 0008 Bytes") && read.contains(kept),
        "the variable did not survive the restart:\n{read}"
    );
    eprintln!(
        "{}: UEFI shell in {:.1} s, again after reset in {:.1} s",
        board.name,
        first.as_secs_f64(),
        again.as_secs_f64()
    );

    session.send("\x1ds").expect("QEMU takes input");
    // The whole status line up to its last counter (a line still being
    // written counts as found).
    expect(&mut session, ", ticks ", COMMAND);
    let transcript = session.transcript();
    let status = transcript
        .lines()
        .rev()
        .find(|line| line.contains("VM 1 'uefi': "))
        .unwrap_or_else(|| panic!("no status line:\n{transcript}"));
    assert!(status.contains("restarts 1"), "{status}");
    assert!(
        status.contains("injected faults 0"),
        "UEFI took no abort: {status}"
    );
}

/// Builds the EFI system partition image from the Linux images (once per
/// test process); returns its directory.
fn esp_image() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let linux = linux_images();
        let dir = root.join("target").join("uefi-esp");
        std::fs::create_dir_all(&dir).expect("cannot make target/uefi-esp");
        let output = Command::new(root.join("tools").join("uefi-esp.sh"))
            .arg(dir.join("uefi-esp.img"))
            .arg(linux.join("linux-zImage"))
            .arg(linux.join("initrd.cpio.gz"))
            .current_dir(&root)
            .output()
            .expect("cannot run tools/uefi-esp.sh");
        assert!(
            output.status.success(),
            "tools/uefi-esp.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        dir
    })
    .clone()
}

fn uefi_starts_linux_from_its_virtio_disk(board: &Board) {
    let description = workspace_root()
        .join("tests")
        .join("systems")
        .join("uefi-linux.toml");
    let loader = pack(board, &description, &[firmware_images(), esp_image()]);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let start = Instant::now();
    expect(&mut session, "UEFI firmware (version", BOOT);
    // The boot manager tries the disk's removable-media path,
    // \EFI\BOOT\BOOTARM.EFI (GRUB), before its shell; GRUB's embedded
    // configuration boots the kernel with the initramfs through the EFI
    // stub, with the device tree UEFI got.
    let started = expect(&mut session, "BdsDxe: starting Boot", BOOT);
    assert!(
        !started.contains("EFI Internal Shell"),
        "the boot manager started its shell, not the disk: {started}"
    );
    expect(
        &mut session,
        "uefi-esp: GRUB boots /linux.efi from ",
        COMMAND,
    );
    expect(&mut session, "EFI stub: Booting Linux Kernel...", COMMAND);
    expect(
        &mut session,
        "EFI stub: Using DTB from configuration table",
        COMMAND,
    );
    expect(&mut session, "EFI stub: Exiting boot services...", COMMAND);
    // The initramfs only runs if GRUB handed it over (LoadFile2).
    expect(&mut session, MARKER, BOOT);
    let up = start.elapsed();
    // Computed by the shell, so that the command's echo cannot match.
    type_at_prompt(&mut session, "echo answer-$((6 * 7))\n", COMMAND);
    expect(&mut session, "answer-42", COMMAND);
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    // The shell never ran: the boot manager started GRUB first.
    assert_console_lacks(&transcript, "UEFI Interactive Shell");
    let line = vm_status_line(&transcript, "uefi");
    assert!(line.contains("powered off"), "{line}\n{transcript}");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
    eprintln!(
        "{}: UEFI, GRUB and Linux to its busybox shell in {:.1} s ({})",
        board.name,
        up.as_secs_f64(),
        started.trim()
    );
}
