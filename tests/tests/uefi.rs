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
//! the Linux images), the shell's startup.nsh loads Debian's armmp kernel
//! from the disk and its EFI stub runs up to ExitBootServices. The kernel
//! then takes a data abort in the firmware's handler, exactly as it does
//! natively on QEMU `virt` with the same firmware and kernel
//! (`docs/system-description.md`, "Firmware"), so the test stops there.
//!
//! The image comes from `tools/firmware-images.sh` (Debian's package
//! through apt, cached under target/firmware).

use capvisor_runner::Session;
use capvisor_tests::{
    command_with, linux_images, pack, per_board, start_command, workspace_root, Board,
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
    // The disk's FAT file system, found through virtio-blk, is FS0 (the
    // shell colours the words of its mapping table apart).
    expect(&mut session, "F0:;BLK0:", BOOT);
    // startup.nsh runs after the countdown: the kernel, read from the
    // disk, starts through its EFI stub with the device tree UEFI got.
    expect(
        &mut session,
        "fs0:\\linux.efi console=ttyAMA0 initrd=\\initrd.img",
        BOOT,
    );
    expect(&mut session, "EFI stub: Booting Linux Kernel...", COMMAND);
    expect(
        &mut session,
        "EFI stub: Using DTB from configuration table",
        COMMAND,
    );
    expect(&mut session, "EFI stub: Exiting boot services...", COMMAND);
    eprintln!(
        "{}: UEFI to the kernel's ExitBootServices in {:.1} s",
        board.name,
        start.elapsed().as_secs_f64()
    );
}
