// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-blk over virtio-mmio under QEMU, on every board: the
//! `virtio-blk` guest negotiates with two image disks packed from a
//! pattern file this test writes (slot 0 writable, slot 1 read-only),
//! reads the pattern, writes and reads back, is refused a write to the
//! read-only disk, and recovers from a malformed queue with a reset.

use capvisor_runner::Session;
use capvisor_tests::{
    assert_console_has, assert_console_lacks, command_with, guest_images, linux_images, pack,
    per_board, run, start_command, system, type_at_prompt, vm_status_line, Board,
};
use std::path::PathBuf;
use std::time::Duration;

const EXIT_SUCCESS: i32 = 0;
/// The pattern disk's size: 128 sectors.
const DISK_BYTES: usize = 64 * 1024;

/// The folder holding the pattern file the description names (byte `i`
/// is `i * 7 + i / 512`, mod 256, as the guest expects).
fn pattern_folder() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capvisor-virtio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes: Vec<u8> = (0..DISK_BYTES)
        .map(|i| (i as u32).wrapping_mul(7).wrapping_add(i as u32 >> 9) as u8)
        .collect();
    std::fs::write(dir.join("virtio-pattern.img"), bytes).unwrap();
    dir
}

per_board!(
    a_guest_reads_and_writes_its_image_disks,
    linux_reads_its_disks_and_keeps_its_writes_across_a_reboot,
);

fn a_guest_reads_and_writes_its_image_disks(board: &Board) {
    let loader = pack(
        board,
        &system("virtio"),
        &[guest_images(), pattern_folder()],
    );
    let outcome = run(&command_with(board, &[], Some(loader)));
    let console = &outcome.transcript;
    assert_console_has(console, "disks: 2 image disks on virtio-mmio");
    assert_console_lacks(console, "FAIL");
    assert_console_lacks(console, "Hyp-mode exception");
    let status = vm_status_line(console, "virtio");
    assert!(status.contains("PASSED"), "{status}\n{console}");
    // The guest's checks: per disk identification (3), bring-up (4), its
    // features (1), capacity (2), two reads (3 each: completion by
    // interrupt, status, data), a write and a read back (4) and the
    // interrupt status (1); on the writable disk flush, GET_ID and a read
    // past the end (2 each): 27 and 21. Then the malformed chain (4), the
    // bring-up again (4), a read (3) and no other interrupt (1): 60.
    assert!(
        console.contains("virtio-blk: 60 checks, 0 failed"),
        "{console}"
    );
    assert_eq!(outcome.status, EXIT_SUCCESS, "{console}");
}

const BOOT: Duration = Duration::from_secs(240);
const COMMAND: Duration = Duration::from_secs(60);
const MARKER: &str = "capvisor-linux: initramfs up";

/// Types `command` at the shell and returns the line holding `expect`
/// (computed by the shell, `$((6 * 7))`, so that the echo of the command
/// cannot match), failing with the transcript.
fn shell(session: &mut Session, command: &str, expect: &str) -> String {
    type_at_prompt(session, command, COMMAND);
    session
        .expect(expect, COMMAND)
        .unwrap_or_else(|error| panic!("after {command:?}, waiting for {expect:?}: {error}"))
}

/// `/dev/vda`'s MD5, read from the disk (the page cache dropped first).
fn vda_sum(session: &mut Session) -> String {
    let line = shell(
        session,
        "echo 3 > /proc/sys/vm/drop_caches; md5sum < /dev/vda | sed \"s/ .*/ vda-$((6 * 7))/\"\n",
        "vda-42",
    );
    let fields: Vec<&str> = line.split_whitespace().collect();
    let end = fields
        .iter()
        .position(|&field| field == "vda-42")
        .filter(|&end| end >= 1)
        .unwrap_or_else(|| panic!("no sum in {line:?}"));
    let sum = fields[end - 1].to_string();
    assert_eq!(sum.len(), 32, "an MD5 in {line:?}");
    sum
}

/// Debian's Linux with the busybox initramfs (which loads `virtio_mmio`
/// and `virtio_blk`) and the two pattern disks: both are 128 sectors and
/// hold the pattern; 64 KiB of random data written to the writable one
/// reads back from the disk, and again after `reboot -f` (the VM's
/// restart keeps its writable disk's copy); the read-only one refuses to
/// be opened for writing and keeps the pattern.
fn linux_reads_its_disks_and_keeps_its_writes_across_a_reboot(board: &Board) {
    let loader = pack(
        board,
        &system("virtio-linux"),
        &[linux_images(), pattern_folder()],
    );
    let mut session = start_command(&command_with(board, &[], Some(loader)));
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not reach its initramfs: {error}");
    }
    shell(
        &mut session,
        "echo $(cat /sys/block/vda/size /sys/block/vdb/size /sys/block/vdb/ro) sizes-$((6 * 7))\n",
        "128 128 1 sizes-42",
    );
    // The pattern's first bytes: i * 7 + i / 512 for i = 0..7.
    let first_bytes = "od -An -tx1 -N8 /dev/vdb | tr -d ' \\n'; echo -pattern-$((6 * 7))\n";
    shell(&mut session, first_bytes, "00070e151c232a31-pattern-42");
    let pattern = vda_sum(&mut session);
    shell(
        &mut session,
        "[ \"$(md5sum < /dev/vdb)\" = \"$(md5sum < /dev/vda)\" ] && echo same-$((6 * 7))\n",
        "same-42",
    );
    shell(
        &mut session,
        "dd if=/dev/urandom of=/dev/vda bs=4096 count=16 conv=fsync 2>/dev/null; echo written-$((6 * 7))\n",
        "written-42",
    );
    let written = vda_sum(&mut session);
    assert_ne!(written, pattern, "the random data reached the disk");
    shell(
        &mut session,
        "dd if=/dev/zero of=/dev/vdb bs=512 count=1 conv=fsync 2>/dev/null; echo refused-$?-$((6 * 7))\n",
        "refused-1-42",
    );
    type_at_prompt(&mut session, "reboot -f\n", COMMAND);
    if let Err(error) = session.expect(MARKER, BOOT) {
        panic!("Linux did not come back after reboot: {error}");
    }
    assert_eq!(
        vda_sum(&mut session),
        written,
        "vda kept its writes across the restart"
    );
    shell(&mut session, first_bytes, "00070e151c232a31-pattern-42");
    type_at_prompt(&mut session, "poweroff -f\n", COMMAND);
    let status = session.wait_exit(COMMAND).expect("QEMU exits");
    let transcript = session.transcript();
    assert_console_lacks(&transcript, "Hyp-mode exception");
    let line = vm_status_line(&transcript, "linux");
    assert!(line.contains("powered off"), "{line}\n{transcript}");
    assert_eq!(status, EXIT_SUCCESS, "{transcript}");
}
