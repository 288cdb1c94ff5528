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

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, read32, set_irq_handler, timer, wait_for_interrupt,
    write32, Checks,
};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("virtio-blk", main);

/// The slots' windows and interrupts.
const SLOTS: [usize; 2] = [0x0a00_0000, 0x0a00_0200];
const INTERRUPTS: [u32; 2] = [48, 49];
/// Each disk's size: the pattern file's (64 KiB).
const SECTORS: u32 = 128;

const MAGIC: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const DEVICE_FEATURES: usize = 0x010;
const DEVICE_FEATURES_SEL: usize = 0x014;
const DRIVER_FEATURES: usize = 0x020;
const DRIVER_FEATURES_SEL: usize = 0x024;
const QUEUE_SEL: usize = 0x030;
const QUEUE_NUM_MAX: usize = 0x034;
const QUEUE_NUM: usize = 0x038;
const QUEUE_READY: usize = 0x044;
const QUEUE_NOTIFY: usize = 0x050;
const INTERRUPT_STATUS: usize = 0x060;
const INTERRUPT_ACK: usize = 0x064;
const STATUS: usize = 0x070;
const QUEUE_DESC: usize = 0x080;
const QUEUE_DRIVER: usize = 0x090;
const QUEUE_DEVICE: usize = 0x0a0;
const CONFIG: usize = 0x100;

const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const NEEDS_RESET: u32 = 64;
const F_RO: u32 = 1 << 5;
const F_FLUSH: u32 = 1 << 9;

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;

const QUEUE: u16 = 8;
/// Where each disk's queue and buffers are: 1.5 MiB into the VM's RAM,
/// past the image, its .bss and stacks.
const AREA: usize = 0x4018_0000;
const AREA_BYTES: usize = 0x2_0000;
const DESC: usize = 0x0000;
const AVAIL: usize = 0x0400;
const USED: usize = 0x0800;
const HEADER: usize = 0x1000;
const STATUS_BYTE: usize = 0x1100;
const DATA: usize = 0x2000;

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

fn reg(disk: usize, offset: usize) -> u32 {
    // SAFETY: the virtio-mmio slot's window, device emulation.
    unsafe { read32(SLOTS[disk] + offset) }
}

fn set_reg(disk: usize, offset: usize, value: u32) {
    // SAFETY: as for `reg`.
    unsafe { write32(SLOTS[disk] + offset, value) }
}

fn area(disk: usize) -> usize {
    AREA + disk * AREA_BYTES
}

fn poke<T>(address: usize, value: T) {
    // SAFETY: inside this guest's own RAM, in the area no code or stack
    // uses (AREA), naturally aligned.
    unsafe { core::ptr::write_volatile(address as *mut T, value) }
}

fn peek<T>(address: usize) -> T {
    // SAFETY: as for `poke`.
    unsafe { core::ptr::read_volatile(address as *const T) }
}

fn on_irq() {
    let iar = gic::acknowledge();
    let id = gic::interrupt_id(iar);
    if id == gic::SPURIOUS {
        return;
    }
    match INTERRUPTS.iter().position(|&line| line == id) {
        Some(disk) => {
            let status = reg(disk, INTERRUPT_STATUS);
            set_reg(disk, INTERRUPT_ACK, status);
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

/// Resets the device, negotiates `wanted` features (with VERSION_1), sets
/// up its queue and drives it; returns the device's low feature word.
fn bring_up(disk: usize, checks: &mut Checks) -> u32 {
    let base = area(disk);
    for offset in (0..0x1000).step_by(4) {
        poke::<u32>(base + offset, 0);
    }
    set_reg(disk, STATUS, 0);
    set_reg(disk, STATUS, ACKNOWLEDGE);
    set_reg(disk, STATUS, ACKNOWLEDGE | DRIVER);
    set_reg(disk, DEVICE_FEATURES_SEL, 1);
    let high = reg(disk, DEVICE_FEATURES);
    set_reg(disk, DEVICE_FEATURES_SEL, 0);
    let low = reg(disk, DEVICE_FEATURES);
    checks.that("VERSION_1 offered", high & 1 == 1);
    set_reg(disk, DRIVER_FEATURES_SEL, 0);
    set_reg(disk, DRIVER_FEATURES, low & (F_RO | F_FLUSH));
    set_reg(disk, DRIVER_FEATURES_SEL, 1);
    set_reg(disk, DRIVER_FEATURES, 1);
    set_reg(disk, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
    checks.that("FEATURES_OK accepted", reg(disk, STATUS) & FEATURES_OK != 0);
    set_reg(disk, QUEUE_SEL, 0);
    checks.that("a queue of at least 8", reg(disk, QUEUE_NUM_MAX) >= 8);
    set_reg(disk, QUEUE_NUM, u32::from(QUEUE));
    set_reg(disk, QUEUE_DESC, (base + DESC) as u32);
    set_reg(disk, QUEUE_DESC + 4, 0);
    set_reg(disk, QUEUE_DRIVER, (base + AVAIL) as u32);
    set_reg(disk, QUEUE_DRIVER + 4, 0);
    set_reg(disk, QUEUE_DEVICE, (base + USED) as u32);
    set_reg(disk, QUEUE_DEVICE + 4, 0);
    set_reg(disk, QUEUE_READY, 1);
    checks.equal("queue ready", reg(disk, QUEUE_READY), 1);
    set_reg(disk, STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
    low
}

fn descriptor(disk: usize, index: usize, address: usize, len: u32, flags: u16, next: u16) {
    let at = area(disk) + DESC + 16 * index;
    poke::<u32>(at, address as u32);
    poke::<u32>(at + 4, 0);
    poke::<u32>(at + 8, len);
    poke::<u16>(at + 12, flags);
    poke::<u16>(at + 14, next);
}

/// Makes chain 0 available, notifies, waits for the interrupt; returns
/// whether the used ring advanced and the interrupt came.
fn submit(disk: usize) -> bool {
    let base = area(disk);
    let index: u16 = peek(base + AVAIL + 2);
    let used_before: u16 = peek(base + USED + 2);
    poke::<u16>(base + AVAIL + 4 + 2 * usize::from(index % QUEUE), 0);
    poke::<u16>(base + AVAIL + 2, index.wrapping_add(1));
    let before = TAKEN[disk].load(Ordering::Relaxed);
    set_reg(disk, QUEUE_NOTIFY, 0);
    let took = interrupted(disk, before);
    let used: u16 = peek(base + USED + 2);
    took && used == used_before.wrapping_add(1)
}

/// A request of `kind` at `sector` with `len` data bytes at DATA; the
/// status byte the device wrote (0xff: none).
fn request(disk: usize, kind: u32, sector: u32, len: u32, checks: &mut Checks) -> u8 {
    let base = area(disk);
    poke::<u32>(base + HEADER, kind);
    poke::<u32>(base + HEADER + 4, 0);
    poke::<u32>(base + HEADER + 8, sector);
    poke::<u32>(base + HEADER + 12, 0);
    poke::<u8>(base + STATUS_BYTE, 0xff);
    let data_flags = if kind == T_OUT { 0 } else { 2 };
    descriptor(disk, 0, base + HEADER, 16, 1, 1);
    if len == 0 {
        descriptor(disk, 1, base + STATUS_BYTE, 1, 2, 0);
    } else {
        descriptor(disk, 1, base + DATA, len, data_flags | 1, 2);
        descriptor(disk, 2, base + STATUS_BYTE, 1, 2, 0);
    }
    checks.that("completed with an interrupt", submit(disk));
    peek(base + STATUS_BYTE)
}

fn data_matches(disk: usize, len: usize, expected: impl Fn(usize) -> u8) -> bool {
    (0..len).all(|n| peek::<u8>(area(disk) + DATA + n) == expected(n))
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
        checks.equal("MagicValue", reg(disk, MAGIC), 0x7472_6976);
        checks.equal("Version", reg(disk, VERSION), 2);
        checks.equal("DeviceID: block", reg(disk, DEVICE_ID), 2);
        let features = bring_up(disk, &mut checks);
        checks.equal(
            "RO and FLUSH as the disk is",
            features & (F_RO | F_FLUSH),
            if read_only { F_RO } else { F_FLUSH },
        );
        checks.equal("capacity", reg(disk, CONFIG), SECTORS);
        checks.equal("capacity (high)", reg(disk, CONFIG + 4), 0);

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
            poke::<u8>(area(disk) + DATA + n, (n as u8) ^ 0xa5);
        }
        let written = request(disk, T_OUT, 10, 4096, &mut checks);
        for n in 0..4096 {
            poke::<u8>(area(disk) + DATA + n, 0);
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
    let base = area(0);
    descriptor(0, 0, base + HEADER, 16, 1, 1);
    descriptor(0, 1, gic::GICD, 512, 2 | 1, 2);
    descriptor(0, 2, base + STATUS_BYTE, 1, 2, 0);
    poke::<u32>(base + HEADER, T_IN);
    poke::<u8>(base + STATUS_BYTE, 0xff);
    let used_before: u16 = peek(base + USED + 2);
    let before = TAKEN[0].load(Ordering::Relaxed);
    let returned = submit(0);
    checks.that(
        "a malformed chain interrupts, and is not returned",
        TAKEN[0].load(Ordering::Relaxed) > before && !returned,
    );
    checks.that("DEVICE_NEEDS_RESET", reg(0, STATUS) & NEEDS_RESET != 0);
    checks.that(
        "configuration interrupt",
        ACKED[0].load(Ordering::Relaxed) & 2 != 0,
    );
    checks.that(
        "nothing returned, nothing written",
        peek::<u16>(base + USED + 2) == used_before && peek::<u8>(base + STATUS_BYTE) == 0xff,
    );
    // Reset and start again: the written sectors are still there.
    bring_up(0, &mut checks);
    for n in 0..512 {
        poke::<u8>(base + DATA + n, 0);
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
