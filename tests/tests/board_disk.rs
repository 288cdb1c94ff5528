// SPDX-License-Identifier: MIT OR Apache-2.0
//! The board disk end to end: each board's own storage driver (the PL181
//! and its SD card on Integrator/CP, QEMU's virtio-blk device on `virt`)
//! through the split-phase block interface, on a disk image prepared here.
//!
//! The hypervisor is built with `test-board-disk`: at boot it reads sector
//! 0 and the last sector, writes a pattern to a scratch area near the end
//! (66 sectors ending 8 before the last, more than one controller command
//! holds), flushes, reads it back, tries a request past the end and one
//! while busy, and prints FNV-1a checksums (`components::board_disk`). The
//! test compares them with the image's own bytes, and after QEMU has exited
//! finds the pattern in the image file: what the driver wrote is on the
//! board's storage.

use capvisor_tests::{command_with, guest_images, images_dir, pack, run, system, Board};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const SECTOR: usize = 512;
/// The self-check's scratch area: sectors, and the gap after it.
const SCRATCH_SECTORS: u64 = 66;
const SCRATCH_END_GAP: u64 = 8;

/// The line each board prints for a 64 MiB image.
fn expected_size_line(board: &Board) -> &'static str {
    match board.name {
        "integrator-cp" => {
            "capvisor: board disk: 64 MiB (131072 sectors), PL181 SD card (SDSC, byte addresses)"
        }
        "qemu-virt" => {
            "capvisor: board disk: 64 MiB (131072 sectors), virtio-blk (virtio-mmio slot 31 at 0x0a003e00, version 2, SPI 47)"
        }
        other => panic!("board {other} is missing from expected_size_line's table"),
    }
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The self-check's pattern (the same formula as the hypervisor's).
fn pattern(i: usize) -> u8 {
    ((i * 31 + 7) ^ (i >> 9)) as u8
}

/// What the prepared image holds at byte `offset`: no two sectors alike.
fn image_byte(offset: u64) -> u8 {
    let sector = offset / SECTOR as u64;
    ((offset % SECTOR as u64) as u8).wrapping_mul(13) ^ (sector as u8) ^ ((sector >> 8) as u8)
}

/// A fresh image path of this test process.
fn image_path(board: &Board, name: &str) -> PathBuf {
    let dir = images_dir(board).join("board-disk");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}-{}.img", std::process::id()))
}

/// Writes `bytes` of [`image_byte`] to `path` (sparse past `filled`:
/// only the first `filled` bytes and the last sector are written).
fn prepare(path: &Path, bytes: u64, filled: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let data: Vec<u8> = (0..filled).map(image_byte).collect();
    file.write_all(&data).unwrap();
    file.set_len(bytes).unwrap();
    let last = bytes - SECTOR as u64;
    let tail: Vec<u8> = (last..bytes).map(image_byte).collect();
    file.seek(SeekFrom::Start(last)).unwrap();
    file.write_all(&tail).unwrap();
}

/// `length` bytes of `path` at `offset`.
fn read_range(path: &Path, offset: u64, length: usize) -> Vec<u8> {
    let mut file = std::fs::File::open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut bytes = vec![0; length];
    file.read_exact(&mut bytes).unwrap();
    bytes
}

/// Boots `board` with the self-check on `image`; checks every line it
/// prints against the image and then the image's scratch area. Returns
/// the transcript.
fn boot_and_check(board: &Board, image: &Path, bytes: u64) -> String {
    let sectors = bytes / SECTOR as u64;
    let last = sectors - 1;
    let scratch = sectors - SCRATCH_END_GAP - SCRATCH_SECTORS;
    // The first MiB, and the tail from a few sectors before the scratch
    // area (the rest of a large image is a hole nobody touches).
    let head_bytes = 1 << 20;
    let tail_start = (scratch - 8) * SECTOR as u64;
    let tail_bytes = (bytes - tail_start) as usize;
    let head = read_range(image, 0, head_bytes);
    let tail = read_range(image, tail_start, tail_bytes);
    let loader = pack(board, &system("hello"), &[guest_images()]);
    let mut command = command_with(board, &["test-board-disk"], Some(loader));
    command.disk = Some(image.to_path_buf());
    let outcome = run(&command);
    let transcript = outcome.transcript;
    assert_eq!(outcome.status, 0, "{transcript}");
    let expected_scratch: Vec<u8> = (0..SCRATCH_SECTORS as usize * SECTOR)
        .map(pattern)
        .collect();
    for line in [
        format!(
            "capvisor: board disk self-check: sector 0: Ok(()), fnv1a {:#010x}",
            fnv1a(&head[..SECTOR])
        ),
        format!(
            "capvisor: board disk self-check: sector {last}: Ok(()), fnv1a {:#010x}",
            fnv1a(&tail[tail.len() - SECTOR..])
        ),
        format!(
            "capvisor: board disk self-check: wrote 66 sectors at {scratch}: Ok(()), flush Ok(()), read back Ok(()), fnv1a {0:#010x} (expected {0:#010x})",
            fnv1a(&expected_scratch)
        ),
        "capvisor: board disk self-check: past the end Err(OutOfRange), while busy Some(Busy)"
            .to_string(),
        "capvisor: board disk self-check: passed".to_string(),
    ] {
        assert!(
            transcript.lines().any(|seen| seen == line),
            "missing {line:?} in:\n{transcript}"
        );
    }
    // The pattern is in the file, and nothing else changed.
    assert_eq!(read_range(image, 0, head_bytes), head, "the first MiB");
    let after = read_range(image, tail_start, tail_bytes);
    let start = 8 * SECTOR;
    let end = start + expected_scratch.len();
    assert_eq!(after[start..end], expected_scratch[..], "the scratch area");
    assert_eq!(after[..start], tail[..start]);
    assert_eq!(after[end..], tail[end..]);
    transcript
}

fn a_64_mib_disk_is_read_written_and_kept_in_the_image(board: &Board) {
    let bytes = 64 << 20;
    let image = image_path(board, "64m");
    prepare(&image, bytes, bytes);
    let transcript = boot_and_check(board, &image, bytes);
    assert!(
        transcript
            .lines()
            .any(|line| line == expected_size_line(board)),
        "missing {:?} in:\n{transcript}",
        expected_size_line(board)
    );
    std::fs::remove_file(&image).unwrap();
}

/// 4 GiB: past SDSC's 2 GB, so QEMU's SD card is a high-capacity one
/// (block addresses, a version 2.0 CSD); sparse on the host.
fn a_4_gib_disk_is_a_high_capacity_card(board: &Board) {
    let bytes = 4 << 30;
    let image = image_path(board, "4g");
    prepare(&image, bytes, 1 << 20);
    let transcript = boot_and_check(board, &image, bytes);
    let kind = match board.name {
        "integrator-cp" => "PL181 SD card (SDHC/SDXC, block addresses)",
        _ => "virtio-blk",
    };
    assert!(
        transcript.lines().any(|line| line
            .starts_with("capvisor: board disk: 4 GiB (8388608 sectors), ")
            && line.contains(kind)),
        "no 4 GiB {kind} line in:\n{transcript}"
    );
    std::fs::remove_file(&image).unwrap();
}

fn without_a_disk_the_board_says_so_and_runs_its_vms(board: &Board) {
    let loader = pack(board, &system("hello"), &[guest_images()]);
    let outcome = run(&command_with(board, &["test-board-disk"], Some(loader)));
    assert_eq!(outcome.status, 0, "{}", outcome.transcript);
    let line = match board.name {
        "integrator-cp" => "capvisor: board disk: none attached (PL181 SD card: no disk)",
        _ => "capvisor: board disk: none attached (virtio-blk: no disk)",
    };
    assert!(
        outcome.transcript.lines().any(|seen| seen == line),
        "missing {line:?} in:\n{}",
        outcome.transcript
    );
    assert!(!outcome.transcript.contains("self-check"));
}

capvisor_tests::per_board!(
    a_64_mib_disk_is_read_written_and_kept_in_the_image,
    a_4_gib_disk_is_a_high_capacity_card,
    without_a_disk_the_board_says_so_and_runs_its_vms
);
