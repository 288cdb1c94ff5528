// SPDX-License-Identifier: MIT OR Apache-2.0
//! The busybox initramfs's data disk, on every board: booted with
//! `capvisor.data=/dev/vda` and a blank writable image disk, the init
//! formats the disk (busybox `mke2fs`: ext2), mounts it at `/data` with the
//! ext4 driver and says so; a file written there, `sync` and `reboot -f`:
//! the next boot finds the file, and a file system, so formats nothing.
//! The shell's greeting shows the date from the VM's clock.
//!
//! Booted without the option, the initramfs touches no disk
//! (`tests/tests/virtio.rs` reads and writes `/dev/vda` raw).

use capvisor_runner::Session;
use capvisor_tests::{
    assert_console_lacks, command_with, linux_images, pack, per_board, start_command, system,
    type_at_prompt, vm_status_line, Board,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const EXIT_SUCCESS: i32 = 0;
const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const MARKER: &str = "capvisor-linux: initramfs up";
/// The init's line about the data disk.
const MOUNTED: &str = "capvisor-data: /dev/vda mounted at /data";
/// Its ending when it formatted the disk first.
const FORMATTED: &str = "(blank: formatted now, ext2)";
/// The blank disk's size: 16 MiB of zeros.
const DISK_BYTES: u64 = 16 << 20;

/// The folder holding the blank disk the description names, made once per
/// test process (the boards' tests run in parallel and pack the same file:
/// one must never truncate it while the other reads it).
fn blank_folder() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("capvisor-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join("data-blank.img.partial");
        let file = std::fs::File::create(&partial).unwrap();
        file.set_len(DISK_BYTES).unwrap();
        std::fs::rename(&partial, dir.join("data-blank.img")).unwrap();
        dir
    })
    .clone()
}

/// Types `command` at the shell and returns the line holding `expect`
/// (computed by the shell, `$((6 * 7))`, so that the echo of the command
/// cannot match), failing with the transcript.
fn shell(session: &mut Session, command: &str, expect: &str) -> String {
    type_at_prompt(session, command, COMMAND);
    session
        .expect(expect, COMMAND)
        .unwrap_or_else(|error| panic!("after {command:?}, waiting for {expect:?}: {error}"))
}

/// The host's year, as `date` prints it.
fn this_year() -> String {
    let year = Command::new("date")
        .args(["-u", "+%Y"])
        .output()
        .expect("the host's date");
    String::from_utf8_lossy(&year.stdout).trim().to_string()
}

/// Waits for the initramfs, then for its greeting with the date (this
/// year's: the VM's PL031 counts from the board's clock), which comes
/// after its line about the data disk; returns that line and the
/// greeting.
fn boot_to_data(session: &mut Session, year: &str) -> (String, String) {
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    let greeting = session
        .expect(&format!(" UTC {year}"), COMMAND)
        .unwrap_or_else(|error| panic!("no greeting with the date: {error}"));
    assert!(greeting.starts_with("capvisor-linux: "), "{greeting}");
    let transcript = session.transcript();
    let data = transcript
        .lines()
        .rev()
        .find(|line| line.starts_with("capvisor-data: "))
        .unwrap_or_else(|| panic!("no line about the data disk:\n{transcript}"))
        .to_string();
    (data, greeting)
}

/// The field before `tag` on `line` (`"<sum> tag"`).
fn field_before(line: &str, tag: &str) -> String {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let end = fields
        .iter()
        .position(|&field| field == tag)
        .filter(|&end| end >= 1)
        .unwrap_or_else(|| panic!("nothing before {tag:?} in {line:?}"));
    fields[end - 1].to_string()
}

per_board!(linux_formats_its_blank_data_disk_once_and_keeps_its_files);

fn linux_formats_its_blank_data_disk_once_and_keeps_its_files(board: &Board) {
    let loader = pack(
        board,
        &system("data-linux"),
        &[linux_images(), blank_folder()],
    );
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    let year = this_year();
    let (first, _) = boot_to_data(&mut session, &year);
    assert!(
        first.contains(MOUNTED) && first.ends_with(FORMATTED),
        "{first}"
    );
    // The whole blank file is the disk.
    shell(
        &mut session,
        "echo $(cat /sys/block/vda/size) sectors-$((6 * 7))\n",
        &format!("{} sectors-42", DISK_BYTES / 512),
    );
    // Mounted with the ext4 driver, read-write; the superblock's block
    // count, block size (1024 << 2) and magic: an ext2 file system of the
    // whole disk, 16 MiB in 4 KiB blocks.
    shell(
        &mut session,
        "echo $(grep ' /data ' /proc/mounts | cut -d' ' -f1-4 | cut -d, -f1) mounts-$((6 * 7))\n",
        "/dev/vda /data ext4 rw mounts-42",
    );
    shell(
        &mut session,
        "echo $(od -An -tu4 -j1028 -N4 /dev/vda) $(od -An -tu4 -j1048 -N4 /dev/vda) $(od -An -tx1 -j1080 -N2 /dev/vda | tr -d ' ') size-$((6 * 7))\n",
        "4096 2 53ef size-42",
    );
    let written = shell(
        &mut session,
        "echo kept-$((6 * 7)) > /data/note && dd if=/dev/urandom of=/data/random bs=4096 count=64 2>/dev/null && sync && md5sum /data/random | sed \"s/ .*/ random-$((6 * 7))/\"\n",
        "random-42",
    );
    let sum = field_before(&written, "random-42");
    assert_eq!(sum.len(), 32, "an MD5 in {written:?}");

    type_at_prompt(&mut session, "reboot -f\n", COMMAND);
    let (second, _) = boot_to_data(&mut session, &year);
    assert!(
        second.contains(MOUNTED) && !second.contains("formatted"),
        "the second boot formats nothing: {second}"
    );
    shell(
        &mut session,
        "echo 3 > /proc/sys/vm/drop_caches; cat /data/note\n",
        "kept-42",
    );
    let read = shell(
        &mut session,
        "md5sum /data/random | sed \"s/ .*/ random-$((6 * 7))/\"\n",
        "random-42",
    );
    assert_eq!(field_before(&read, "random-42"), sum, "the file came back");

    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    assert_console_lacks(&transcript, "EXT4-fs error");
    let line = vm_status_line(&transcript, "linux");
    assert!(line.contains("powered off"), "{line}\n{transcript}");
    assert!(line.contains("restarts 1"), "{line}");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
}
