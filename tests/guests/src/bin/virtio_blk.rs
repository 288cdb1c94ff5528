// SPDX-License-Identifier: MIT OR Apache-2.0
//! Two virtio-blk disks over virtio-mmio, driven the way a driver does:
//! slot 0 (0x0a00_0000, SPI 16) is a writable image disk, slot 1
//! (0x0a00_0200, SPI 17) a read-only one, both packed from the same
//! pattern file (byte `i` is [`pattern`]`(i)`).
//!
//! For each disk: identification (magic, version 2, device id 2), feature
//! negotiation (VERSION_1 needed; FLUSH offered on the writable disk, RO
//! on the other), a queue of 8 in the guest's RAM, the capacity, a read of
//! the first sectors compared with the pattern, each completion taken as
//! an interrupt through the virtual GIC; on the writable disk a write, a
//! read back, a flush and GET_ID; on the read-only disk a write refused
//! with IOERR and the data unchanged. Last, a descriptor into the GIC's
//! window puts the writable disk in DEVICE_NEEDS_RESET with its
//! configuration interrupt, and after a reset the disk works again.
#![no_std]
#![no_main]

use capvisor_test_guests::virtio::{
    self, Disk, CONFIG, DESC_F_NEXT, DESC_F_WRITE, DEVICE_ID, F_FLUSH, F_RO, INT_CONFIG, MAGIC,
    MAGIC_VALUE, NEEDS_RESET, STATUS, S_IOERR, S_OK, T_FLUSH, T_GET_ID, T_IN, T_OUT, VERSION,
};
use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, set_irq_handler, timer, wait_for_interrupt, Checks,
};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("virtio-blk", main);

/// The slots' interrupts.
const INTERRUPTS: [u32; 2] = [virtio::interrupt(0), virtio::interrupt(1)];
/// Each disk's size: the pattern file's (64 KiB).
const SECTORS: u32 = 128;

/// The two disks: slots 0 and 1, each with a queue of 8 and its area 1.5
/// MiB into the VM's RAM, past the image, its .bss and stacks.
const AREA: usize = 0x4018_0000;
const DISKS: [Disk; 2] = [
    Disk {
        window: virtio::slot(0),
        area: AREA,
        queue: 8,
    },
    Disk {
        window: virtio::slot(1),
        area: AREA + virtio::AREA_BYTES,
        queue: 8,
    },
];

/// Interrupts taken per disk, and the InterruptStatus bits acknowledged.
static TAKEN: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static ACKED: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
static OTHER: AtomicU32 = AtomicU32::new(0);

/// The pattern file's byte at `offset`.
fn pattern(offset: usize) -> u8 {
    (offset as u32)
        .wrapping_mul(7)
        .wrapping_add(offset as u32 >> 9) as u8
}

fn on_irq() {
    let iar = gic::acknowledge();
    let id = gic::interrupt_id(iar);
    if id == gic::SPURIOUS {
        return;
    }
    match INTERRUPTS.iter().position(|&line| line == id) {
        Some(disk) => {
            let status = DISKS[disk].acknowledge();
            ACKED[disk].fetch_or(status, Ordering::Relaxed);
            TAKEN[disk].fetch_add(1, Ordering::Relaxed);
        }
        None if id == timer::INTERRUPT => timer::disarm(),
        None => {
            OTHER.fetch_add(1, Ordering::Relaxed);
        }
    }
    gic::end(iar);
}

/// Waits (up to a second) for disk `disk`'s interrupt count to pass
/// `before`; whether it did.
fn interrupted(disk: usize, before: u32) -> bool {
    let limit = timer::now() + u64::from(timer::frequency());
    timer::arm_at(limit);
    while TAKEN[disk].load(Ordering::Relaxed) == before && timer::now() < limit {
        enable_irqs();
        disable_irqs();
        if TAKEN[disk].load(Ordering::Relaxed) == before {
            wait_for_interrupt();
        }
    }
    enable_irqs();
    disable_irqs();
    timer::disarm();
    TAKEN[disk].load(Ordering::Relaxed) > before
}

/// Makes chain 0 available, notifies, waits for the interrupt; returns
/// whether the used ring advanced and the interrupt came.
fn submit(disk: usize) -> bool {
    let used_before = DISKS[disk].publish();
    let before = TAKEN[disk].load(Ordering::Relaxed);
    DISKS[disk].notify();
    let took = interrupted(disk, before);
    took && DISKS[disk].used_index() == used_before.wrapping_add(1)
}

/// A request of `kind` at `sector` with `len` data bytes; the status byte
/// the device wrote (0xff: none).
fn request(disk: usize, kind: u32, sector: u32, len: u32, checks: &mut Checks) -> u8 {
    DISKS[disk].prepare(kind, u64::from(sector), len);
    checks.that("completed with an interrupt", submit(disk));
    DISKS[disk].status_byte()
}

fn data_matches(disk: usize, len: usize, expected: impl Fn(usize) -> u8) -> bool {
    (0..len).all(|n| DISKS[disk].data(n) == expected(n))
}

fn main() -> u32 {
    let mut checks = Checks::new();
    gic::init(&[INTERRUPTS[0], INTERRUPTS[1], timer::INTERRUPT]);
    set_irq_handler(on_irq);
    for (disk, read_only) in [(0, false), (1, true)] {
        println!(
            "virtio-blk: disk {} ({})",
            disk,
            if read_only { "read-only" } else { "writable" }
        );
        checks.equal("MagicValue", DISKS[disk].reg(MAGIC), MAGIC_VALUE);
        checks.equal("Version", DISKS[disk].reg(VERSION), 2);
        checks.equal("DeviceID: block", DISKS[disk].reg(DEVICE_ID), 2);
        let features = DISKS[disk].bring_up(F_RO | F_FLUSH, &mut checks);
        checks.equal(
            "RO and FLUSH as the disk is",
            features & (F_RO | F_FLUSH),
            if read_only { F_RO } else { F_FLUSH },
        );
        checks.equal("capacity", DISKS[disk].reg(CONFIG), SECTORS);
        checks.equal("capacity (high)", DISKS[disk].reg(CONFIG + 4), 0);

        // The first four sectors are the pattern.
        let status = request(disk, T_IN, 0, 2048, &mut checks);
        checks.equal("read: status", u32::from(status), 0);
        checks.that("read: the pattern", data_matches(disk, 2048, pattern));
        // Sectors 100-101 too (the bounce buffer's steps).
        let status = request(disk, T_IN, 100, 1024, &mut checks);
        checks.equal("read at 100", u32::from(status), 0);
        checks.that(
            "read at 100: the pattern",
            data_matches(disk, 1024, |n| pattern(100 * 512 + n)),
        );

        // Write sectors 10-13 (4 KiB), read them back.
        for n in 0..4096 {
            DISKS[disk].set_data(n, (n as u8) ^ 0xa5);
        }
        let written = request(disk, T_OUT, 10, 4096, &mut checks);
        for n in 0..4096 {
            DISKS[disk].set_data(n, 0);
        }
        let read_back = request(disk, T_IN, 10, 4096, &mut checks);
        if read_only {
            checks.equal(
                "write refused: IOERR",
                u32::from(written),
                u32::from(S_IOERR),
            );
            checks.that(
                "still the pattern",
                read_back == S_OK && data_matches(disk, 4096, |n| pattern(10 * 512 + n)),
            );
        } else {
            checks.equal("write: status", u32::from(written), u32::from(S_OK));
            checks.that(
                "read back what was written",
                read_back == S_OK && data_matches(disk, 4096, |n| (n as u8) ^ 0xa5),
            );
            let status = request(disk, T_FLUSH, 0, 0, &mut checks);
            checks.equal("flush", u32::from(status), 0);
            let id = request(disk, T_GET_ID, 0, 20, &mut checks);
            let expected = b"virtio-disk0";
            checks.that(
                "GET_ID: <vm>-disk0",
                id == S_OK && data_matches(disk, 20, |n| expected.get(n).copied().unwrap_or(0)),
            );
            // A read past the end fails with IOERR.
            let status = request(disk, T_IN, SECTORS - 1, 1024, &mut checks);
            checks.equal("past the end: IOERR", u32::from(status), u32::from(S_IOERR));
        }
        checks.equal(
            "InterruptStatus acknowledged: used buffers",
            ACKED[disk].load(Ordering::Relaxed),
            1,
        );
    }

    // A malformed chain on disk 0: its data buffer in the GIC's window.
    let disk = DISKS[0];
    disk.set_header(T_IN, 0);
    disk.set_status_byte(0xff);
    disk.descriptor(0, disk.header_address(), 16, DESC_F_NEXT, 1);
    disk.descriptor(1, gic::GICD, 512, DESC_F_WRITE | DESC_F_NEXT, 2);
    disk.descriptor(2, disk.status_address(), 1, DESC_F_WRITE, 0);
    let used_before = disk.used_index();
    let before = TAKEN[0].load(Ordering::Relaxed);
    let returned = submit(0);
    checks.that(
        "a malformed chain interrupts, and is not returned",
        TAKEN[0].load(Ordering::Relaxed) > before && !returned,
    );
    checks.that("DEVICE_NEEDS_RESET", disk.reg(STATUS) & NEEDS_RESET != 0);
    checks.that(
        "configuration interrupt",
        ACKED[0].load(Ordering::Relaxed) & INT_CONFIG != 0,
    );
    checks.that(
        "nothing returned, nothing written",
        disk.used_index() == used_before && disk.status_byte() == 0xff,
    );
    // Reset and start again: the written sectors are still there.
    disk.bring_up(F_RO | F_FLUSH, &mut checks);
    for n in 0..512 {
        disk.set_data(n, 0);
    }
    let status = request(0, T_IN, 10, 512, &mut checks);
    checks.equal("after a reset: OK", u32::from(status), 0);
    checks.that(
        "after a reset: the data",
        data_matches(0, 512, |n| (n as u8) ^ 0xa5),
    );
    checks.equal("no other interrupt", OTHER.load(Ordering::Relaxed), 0);
    checks.finish("virtio-blk")
}
