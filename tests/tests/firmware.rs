// SPDX-License-Identifier: MIT OR Apache-2.0
//! A firmware as a guest: Debian's U-Boot for QEMU's `virt`
//! (`u-boot-qemu`'s `qemu_arm/u-boot.bin`), mapped read-only at IPA 0
//! instead of a kernel (`systems/u-boot.toml`), reaches its prompt under
//! Capvisor; the commands typed there see the VM's platform (its RAM from
//! the device tree at the start of RAM, no flash to program); `saveenv`
//! fails without harm; `reset` restarts the VM from its firmware again;
//! the ticker beside it runs on throughout. Left alone, its own boot
//! command (distro boot) finds the VM's virtio disk (`boot-disk.img`, from
//! `tools/boot-disk.sh`), reads `extlinux/extlinux.conf` there and boots
//! Debian's Linux with the busybox initramfs from it, passing the device
//! tree the hypervisor wrote; Linux reaches its shell and mounts the disk
//! it came from.
//!
//! The image comes from `tools/firmware-images.sh` (Debian's package
//! through apt, cached under target/firmware); the boot disk from
//! `tools/linux-images.sh` (target/linux).

use capvisor_runner::Session;
use capvisor_tests::{
    command_with, guest_images, linux_images, pack, per_board, start_command, type_at_prompt,
    workspace_root, Board,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// U-Boot starts in well under a minute under TCG, even on a loaded
/// machine.
const BOOT: Duration = Duration::from_secs(180);
const COMMAND: Duration = Duration::from_secs(60);
const PROMPT: &str = "=> ";
/// U-Boot loading Linux from the disk and Linux booting to its shell:
/// about a minute under TCG; the margin absorbs a loaded machine.
const LINUX: Duration = Duration::from_secs(400);
/// The busybox initramfs's line once its modules are loaded.
const MARKER: &str = "capvisor-linux: initramfs up";

/// Fetches the firmware images (`tools/firmware-images.sh`, which reuses
/// them once there) once per test process; returns their directory.
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

/// Waits for U-Boot's banner and stops its autoboot with a key, then for
/// its prompt.
fn to_prompt(session: &mut Session) {
    expect(session, "U-Boot 20", BOOT);
    // The environment in flash: erased, so the default one.
    expect(session, "using default environment", COMMAND);
    expect(session, "Hit any key to stop autoboot", COMMAND);
    session.send(" ").expect("QEMU takes input");
    expect(session, PROMPT, COMMAND);
}

/// Types `command` at the prompt and returns the output up to the next
/// prompt.
fn run(session: &mut Session, command: &str) -> String {
    let before = session.transcript().len();
    session
        .send(&format!("{command}\n"))
        .expect("QEMU takes input");
    expect(session, PROMPT, COMMAND);
    session.transcript()[before..].to_string()
}

/// `systems/u-boot.toml` packed for `board`: U-Boot, its boot disk and the
/// ticker.
fn u_boot_system(board: &Board) -> capvisor_runner::Loader {
    let description = workspace_root().join("systems").join("u-boot.toml");
    pack(
        board,
        &description,
        &[firmware_images(), linux_images(), guest_images()],
    )
}

per_board!(
    u_boot_reaches_its_prompt_and_runs_commands_beside_another_vm,
    u_boot_boots_linux_from_its_virtio_disk,
);

fn u_boot_reaches_its_prompt_and_runs_commands_beside_another_vm(board: &Board) {
    let loader = u_boot_system(board);
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let placed = expect(
        &mut session,
        "at IPA 0x00000000 (read-only) entered at 0x00000000",
        BOOT,
    );
    assert!(placed.contains("VM 1 'u-boot'"), "{placed}");
    to_prompt(&mut session);
    let transcript = session.transcript();
    // The memory of the device tree at the start of RAM, and no flash.
    assert!(transcript.contains("DRAM:  256 MiB"), "{transcript}");
    assert!(transcript.contains("Flash: 0 Bytes"), "{transcript}");

    let version = run(&mut session, "version");
    assert!(
        version.contains("U-Boot 20") && version.contains("arm-linux-gnueabihf-gcc"),
        "{version}"
    );
    let bdinfo = run(&mut session, "bdinfo");
    for line in [
        "-> start    = 0x40000000",
        "-> size     = 0x10000000",
        "flashsize   = 0x00000000",
        "devicetree  = board",
    ] {
        assert!(bdinfo.contains(line), "no {line:?} in:\n{bdinfo}");
    }
    // The tree U-Boot found at the start of RAM is the hypervisor's.
    let tree = run(&mut session, "fdt addr 0x40000000; fdt print /");
    assert!(
        tree.contains("Capvisor virtual machine") && tree.contains("pl011@9000000"),
        "{tree}"
    );
    // Flash: nothing to list, nothing to save into; the VM carries on.
    let flinfo = run(&mut session, "flinfo");
    assert!(!flinfo.contains("CFI conformant"), "{flinfo}");
    let saved = run(&mut session, "setenv capvisor firmware; saveenv");
    assert!(saved.contains("Failed"), "{saved}");
    let printed = run(&mut session, "printenv capvisor");
    assert!(printed.contains("capvisor=firmware"), "{printed}");

    // The ticker beside it has run on all along (its line may have come
    // before the last prompt: the whole transcript counts).
    let deadline = std::time::Instant::now() + COMMAND;
    while !session.transcript().contains("[ticker] ticker: 10 s") {
        assert!(
            std::time::Instant::now() < deadline,
            "the ticker stopped:\n{}",
            session.transcript()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // PSCI SYSTEM_RESET: the VM starts again from its firmware, with the
    // environment set before forgotten.
    session.send("reset\n").expect("QEMU takes input");
    expect(&mut session, "resetting", COMMAND);
    to_prompt(&mut session);
    let printed = run(&mut session, "printenv capvisor");
    assert!(
        printed.contains("Error: \"capvisor\" not defined"),
        "{printed}"
    );
    session.send("\x1ds").expect("QEMU takes input");
    // The status lines, the ticker's after U-Boot's.
    expect(&mut session, "VM 2 'ticker': ", COMMAND);
    let transcript = session.transcript();
    let status = transcript
        .lines()
        .rev()
        .find(|line| line.contains("* VM 1 'u-boot': "))
        .unwrap_or_else(|| panic!("no status line for U-Boot:\n{transcript}"));
    assert!(status.contains("restarts 1"), "{status}");
    assert!(
        status.contains("injected faults 0"),
        "U-Boot took no abort: {status}"
    );
}

/// Types `command` at Linux's shell and waits for the line holding
/// `expect` (computed by the shell, `$((6 * 7))`, so that the echo of the
/// command cannot match).
fn shell(session: &mut Session, command: &str, expect_text: &str) -> String {
    type_at_prompt(session, command, COMMAND);
    expect(session, expect_text, COMMAND)
}

/// Nothing typed: U-Boot's default boot command (`run distro_bootcmd`)
/// tries its boot targets in order, finds the VM's virtio disk (slot 0,
/// read-only) with its bootable partition, reads
/// `extlinux/extlinux.conf` and boots its entry: the zImage and the
/// initramfs from the disk, the command line from the entry and the
/// device tree at `$fdt_addr`, the one the hypervisor wrote at the start
/// of RAM. Linux reaches its shell, sees that tree and that command line,
/// and mounts the disk it was loaded from (ext4, read-only), whose zImage
/// is the host's file. The wall-clock times are printed
/// (`--nocapture`).
fn u_boot_boots_linux_from_its_virtio_disk(board: &Board) {
    let loader = u_boot_system(board);
    let command = command_with(board, &[], Some(loader));
    let started = Instant::now();
    let mut session = start_command(&command);
    expect(&mut session, "U-Boot 20", BOOT);
    let banner = started.elapsed();
    let device = expect(&mut session, "Device 0: CAPV VirtIO Block Device", LINUX);
    assert!(device.contains("CAPV"), "{device}");
    expect(&mut session, "Found /extlinux/extlinux.conf", LINUX);
    expect(&mut session, "Retrieving file: /initrd.gz", LINUX);
    expect(&mut session, "Retrieving file: /zImage", LINUX);
    expect(&mut session, "append: console=ttyAMA0 earlycon", LINUX);
    expect(
        &mut session,
        "Booting using the fdt blob at 0x40000000",
        LINUX,
    );
    expect(&mut session, "Starting kernel", LINUX);
    let kernel = started.elapsed();
    expect(
        &mut session,
        "Machine model: Capvisor virtual machine",
        LINUX,
    );
    expect(&mut session, MARKER, LINUX);
    let shell_up = started.elapsed();
    eprintln!(
        "{}: U-Boot's banner after {:.1} s, its bootz after {:.1} s, Linux's initramfs up after {:.1} s (wall clock from QEMU's start)",
        board.name,
        banner.as_secs_f64(),
        kernel.as_secs_f64(),
        shell_up.as_secs_f64()
    );

    // The tree and the command line U-Boot passed.
    shell(
        &mut session,
        "echo \"$(tr -d '\\0' < /proc/device-tree/model) $(cat /proc/cmdline)\" tree-$((6 * 7))\n",
        "Capvisor virtual machine console=ttyAMA0 earlycon tree-42",
    );
    // The disk it came from: read-only, its partition ext4 with the
    // host's zImage and the extlinux entry.
    let zimage_bytes = std::fs::metadata(linux_images().join("linux-zImage"))
        .expect("the zImage")
        .len();
    shell(
        &mut session,
        "mkdir -p /mnt && mount -t ext4 -o ro /dev/vda1 /mnt && echo $(cat /sys/block/vda/ro) $(wc -c < /mnt/zImage) $(grep -c '^label capvisor' /mnt/extlinux/extlinux.conf) disk-$((6 * 7))\n",
        &format!("1 {zimage_bytes} 1 disk-42"),
    );
    let sum = shell(
        &mut session,
        "md5sum /mnt/initrd.gz | sed \"s/ .*/ initrd-$((6 * 7))/\"\n",
        "initrd-42",
    );
    assert!(sum.len() >= 32 + " initrd-42".len(), "{sum}");

    // Linux powers its VM off; the ticker carries on.
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    expect(&mut session, "reboot: Power down", COMMAND);
    let deadline = Instant::now() + COMMAND;
    loop {
        // The status lines (Ctrl-] s), U-Boot's VM's first.
        session.send("\x1ds").expect("QEMU takes input");
        let ticker = expect(&mut session, "VM 2 'ticker': ", COMMAND);
        assert!(!ticker.contains("powered off"), "{ticker}");
        let transcript = session.transcript();
        let status = transcript
            .lines()
            .rev()
            .find(|line| line.contains("VM 1 'u-boot': "))
            .unwrap_or_else(|| panic!("no status line for U-Boot:\n{transcript}"));
        if status.contains("powered off") {
            assert!(status.contains("injected faults 0"), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "not powered off: {status}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
