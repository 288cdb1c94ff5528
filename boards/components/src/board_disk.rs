// SPDX-License-Identifier: MIT OR Apache-2.0
//! The board disk: announcing it at boot, and its end-to-end self-check.
//!
//! Each board brings up its own storage controller (Integrator/CP's PL181
//! and SD card, `virt`'s virtio-blk device of QEMU) and hands it out as a
//! `&'static dyn BlockDevice`. [`announce`] prints what was found, or that
//! no disk is attached (nothing fails then: VMs without a board disk run as
//! before).
//!
//! [`share`] cuts it into the VMs' slices (`capsules::virtio::board_slice`):
//! the multiplexer behind its own spin lock, shared by every CPU.
//!
//! [`self_check`] (the `test-board-disk` feature, for the `board_disk`
//! integration test only) drives the disk through the split-phase
//! interface as a capsule would: reads sector 0 and the last sector, writes
//! a pattern of [`SCRATCH_SECTORS`] sectors ending [`SCRATCH_END_GAP`]
//! sectors before the end (more than one controller command's worth, so
//! a multiple-block transfer is split), reads it back, and prints the
//! FNV-1a checksums, which the test compares with the image file's.

use crate::{leak, log};
use capsules::virtio::board_slice::{BoardDisk, BoardDiskMux, SliceSpec};
use core::cell::Cell;
use hyp::hil::block::{BlockClient, BlockDevice, BlockError, SECTOR_BYTES};
use hyp::kernel::{CpuKick, SpinLock, VmMutex};
use hyp::memory::Size;

/// The board disk as every CPU shares it: the multiplexer of its slices
/// behind its own spin lock.
pub type SharedBoardDisk = BoardDisk<'static, SpinLock<'static>>;

/// Makes `disk` the board disk of the slices `specs` (each a VM's disk,
/// in the order the board numbers them): its client becomes the
/// multiplexer, which from now on is the only way to it; completions kick
/// the slices' CPUs through `kicker`. The board must not use `disk`
/// itself after this.
pub fn share(
    disk: &'static dyn BlockDevice<'static>,
    specs: &[SliceSpec],
    kicker: &'static dyn CpuKick,
) -> &'static SharedBoardDisk {
    let mux: &'static BoardDiskMux<'static> = leak(BoardDiskMux::new(disk, specs));
    disk.set_client(mux);
    let mutex: &'static VmMutex = leak(VmMutex::new());
    // SAFETY: what the guarded multiplexer reaches that is not `Sync` is
    // its own state and the board disk's driver. The multiplexer is
    // reached only through this guard (the shared `BoardDisk` made here
    // keeps the only copy; slices and the board's interrupt service go
    // through it). The driver is reached only by the multiplexer (from
    // inside `with`) and, when it completes, calls back the multiplexer
    // from inside its own `poll`, that is inside `with` too: the board
    // hands `disk` over here and never uses it again (its announcement
    // and self-check ran before, on the boot CPU alone).
    let guarded = unsafe { mutex.guard(mux) };
    leak(BoardDisk::new(guarded, specs, kicker))
}

/// Prints the board disk, or its absence, on one line.
pub fn announce(disk: Option<&dyn BlockDevice<'_>>, kind: impl core::fmt::Display) {
    match disk {
        Some(disk) => log!(
            "board disk: {} ({} sectors){}, {}",
            Size(disk.sectors() * SECTOR_BYTES as u64),
            disk.sectors(),
            if disk.read_only() { ", read-only" } else { "" },
            kind
        ),
        None => log!("board disk: none attached ({}: no disk)", kind),
    }
}

/// Sectors the self-check writes and reads back.
pub const SCRATCH_SECTORS: usize = 66;
/// Sectors between the end of the scratch area and the end of the disk.
pub const SCRATCH_END_GAP: u64 = 8;

/// The self-check's pattern byte at offset `i` of the scratch area.
pub const fn pattern(i: usize) -> u8 {
    ((i * 31 + 7) ^ (i >> 9)) as u8
}

/// FNV-1a, 32 bits.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// Hears one completion at a time.
struct Waiter {
    buffer: Cell<Option<&'static mut [u8]>>,
    result: Cell<Option<Result<(), BlockError>>>,
}

impl BlockClient for Waiter {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.buffer.set(Some(buffer));
        self.result.set(Some(result));
    }
    fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.buffer.set(Some(buffer));
        self.result.set(Some(result));
    }
    fn flush_done(&self, result: Result<(), BlockError>) {
        self.result.set(Some(result));
    }
}

/// The most polls a request of the self-check may take.
const POLL_LIMIT: u64 = 100_000_000;

/// Runs one request `start` to completion by polling; the buffer and the
/// result, or why it was refused.
fn complete(
    disk: &dyn BlockDevice<'static>,
    waiter: &Waiter,
    start: impl FnOnce() -> Result<(), BlockError>,
) -> Result<(), BlockError> {
    waiter.result.set(None);
    start()?;
    let mut polls = 0u64;
    while waiter.result.get().is_none() {
        disk.poll();
        polls += 1;
        if polls > POLL_LIMIT {
            return Err(BlockError::Device);
        }
    }
    waiter.result.get().unwrap_or(Err(BlockError::Device))
}

/// Reads `buffer.len()` bytes at `sector`; the buffer comes back.
fn read(
    disk: &dyn BlockDevice<'static>,
    waiter: &Waiter,
    sector: u64,
    buffer: &'static mut [u8],
) -> (&'static mut [u8], Result<(), BlockError>) {
    transfer(disk, waiter, false, sector, buffer)
}

/// Writes `buffer` at `sector`; the buffer comes back.
fn write(
    disk: &dyn BlockDevice<'static>,
    waiter: &Waiter,
    sector: u64,
    buffer: &'static mut [u8],
) -> (&'static mut [u8], Result<(), BlockError>) {
    transfer(disk, waiter, true, sector, buffer)
}

/// Writes `buffer` at `sector` (`write`) or reads into it, waiting for the
/// completion; the buffer comes back, refused or completed.
fn transfer(
    disk: &dyn BlockDevice<'static>,
    waiter: &Waiter,
    write: bool,
    sector: u64,
    buffer: &'static mut [u8],
) -> (&'static mut [u8], Result<(), BlockError>) {
    let mut refused = None;
    let result = complete(disk, waiter, || {
        let started = if write {
            disk.write(sector, buffer)
        } else {
            disk.read(sector, buffer)
        };
        started.map_err(|(error, buffer)| {
            refused = Some(buffer);
            error
        })
    });
    (
        refused.or_else(|| waiter.buffer.take()).unwrap_or(&mut []),
        result,
    )
}

/// The self-check (see the module documentation); prints one line per
/// step and a verdict line, `board disk self-check: passed` or `FAILED`.
pub fn self_check(disk: &'static dyn BlockDevice<'static>) {
    let sectors = disk.sectors();
    if sectors < SCRATCH_SECTORS as u64 + SCRATCH_END_GAP + 1 {
        log!(
            "board disk self-check: FAILED: {} sectors is too small",
            sectors
        );
        return;
    }
    let waiter: &'static Waiter = crate::leak(Waiter {
        buffer: Cell::new(None),
        result: Cell::new(None),
    });
    disk.set_client(waiter);
    let mut passed = true;
    let single = crate::leak([0u8; SECTOR_BYTES]);
    let (single, first) = read(disk, waiter, 0, single);
    log!(
        "board disk self-check: sector 0: {:?}, fnv1a {:#010x}",
        first,
        fnv1a(single)
    );
    let last = sectors - 1;
    let (single, result) = read(disk, waiter, last, single);
    log!(
        "board disk self-check: sector {}: {:?}, fnv1a {:#010x}",
        last,
        result,
        fnv1a(single)
    );
    passed &= first.is_ok() && result.is_ok() && single.len() == SECTOR_BYTES;

    let scratch_sector = sectors - SCRATCH_END_GAP - SCRATCH_SECTORS as u64;
    let scratch: &'static mut [u8] = crate::leak([0u8; SCRATCH_SECTORS * SECTOR_BYTES]);
    for (i, byte) in scratch.iter_mut().enumerate() {
        *byte = pattern(i);
    }
    let expected = fnv1a(scratch);
    let (scratch, written) = write(disk, waiter, scratch_sector, scratch);
    let flushed = complete(disk, waiter, || disk.flush());
    scratch.fill(0);
    let (scratch, reread) = read(disk, waiter, scratch_sector, scratch);
    let got = fnv1a(scratch);
    log!(
        "board disk self-check: wrote {} sectors at {}: {:?}, flush {:?}, read back {:?}, fnv1a {:#010x} (expected {:#010x})",
        SCRATCH_SECTORS,
        scratch_sector,
        written,
        flushed,
        reread,
        got,
        expected
    );
    passed &= written.is_ok() && flushed.is_ok() && reread.is_ok() && got == expected;

    // Refusals: past the end, and a second request while one is held.
    let (single, beyond) = read(disk, waiter, sectors, single);
    passed &= beyond == Err(BlockError::OutOfRange);
    let busy = match disk.read(0, single) {
        Ok(()) => {
            let spare = crate::leak([0u8; SECTOR_BYTES]);
            let refused = disk.read(1, spare).err().map(|(error, _)| error);
            while disk.poll() {}
            refused
        }
        Err((error, _)) => Some(error),
    };
    passed &= busy == Some(BlockError::Busy);
    log!(
        "board disk self-check: past the end {:?}, while busy {:?}",
        beyond,
        busy
    );
    log!(
        "board disk self-check: {}",
        if passed { "passed" } else { "FAILED" }
    );
}
