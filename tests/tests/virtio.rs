// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-blk over virtio-mmio under QEMU, on every board: the
//! `virtio-blk` guest negotiates with two image disks packed from a
//! pattern file this test writes (slot 0 writable, slot 1 read-only),
//! reads the pattern, writes and reads back, is refused a write to the
//! read-only disk, and recovers from a malformed queue with a reset.

use capvisor_tests::{
    assert_console_has, assert_console_lacks, command_with, guest_images, pack, per_board, run,
    system, vm_status_line, Board,
};
use std::path::PathBuf;

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

per_board!(a_guest_reads_and_writes_its_image_disks);

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
