// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any sequence of guest accesses to a virtio-blk device's virtio-mmio
//! window mixed with arbitrary writes to the guest RAM its queues live in:
//! raw words anywhere, and structured ones a driver (or an attacker)
//! writes (whole descriptors with any address, length, flags and next;
//! available-ring entries with any head, published by moving the index;
//! request headers with any type and sector), so that inputs reach the
//! chain walk and the block requests, not only the registers. Checked
//! after every operation: no panic, never a copy outside the VM's RAM
//! (the fake RAM refuses and counts them), the interrupt line follows
//! InterruptStatus, DRIVER_OK never holds without FEATURES_OK, and a
//! device in DEVICE_NEEDS_RESET returns nothing in its used ring.
#![no_main]

use capsules::virtio::blk::VirtioBlk;
use capsules::virtio::mmio::reg;
use capsules::virtio::ram_disk::RamDisk;
use capsules::virtual_gic::VirtualGic;
use core::cell::{Cell, RefCell};
use hyp::dispatch::MmioDevice;
use hyp::guest_platform::VIRTIO_MMIO;
use hyp::hil::block::BlockDevice;
use hyp::hil::guest_ram::{GuestRam, GuestRamError};
use hyp::trap::AccessSize;
use libfuzzer_sys::fuzz_target;

const RAM_BASE: u64 = 0x4000_0000;
const RAM_BYTES: usize = 64 * 1024;

/// The VM's RAM: a vector at `RAM_BASE`; out-of-range copies are refused
/// and counted (the device must have checked before asking).
struct FakeRam {
    bytes: RefCell<Vec<u8>>,
    refused: Cell<u32>,
}

impl GuestRam for FakeRam {
    fn window(&self) -> (u64, u64) {
        (RAM_BASE, RAM_BYTES as u64)
    }

    fn read(&self, ipa: u64, out: &mut [u8]) -> Result<(), GuestRamError> {
        if !self.contains(ipa, out.len()) {
            self.refused.set(self.refused.get() + 1);
            return Err(GuestRamError {
                ipa,
                len: out.len(),
            });
        }
        let start = (ipa - RAM_BASE) as usize;
        out.copy_from_slice(&self.bytes.borrow()[start..start + out.len()]);
        Ok(())
    }

    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError> {
        if !self.contains(ipa, data.len()) {
            self.refused.set(self.refused.get() + 1);
            return Err(GuestRamError {
                ipa,
                len: data.len(),
            });
        }
        let start = (ipa - RAM_BASE) as usize;
        self.bytes.borrow_mut()[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// One device for the whole run (the block HIL's buffers are `'static`),
/// reset before each input.
struct Rig {
    ram: &'static FakeRam,
    gic: &'static VirtualGic,
    blk: &'static VirtioBlk<'static>,
}

thread_local! {
    static RIG: Rig = {
        let ram: &'static FakeRam = Box::leak(Box::new(FakeRam {
            bytes: RefCell::new(vec![0; RAM_BYTES]),
            refused: Cell::new(0),
        }));
        let gic: &'static VirtualGic = Box::leak(Box::new(VirtualGic::new()));
        let disk: &'static RamDisk<'static> =
            Box::leak(Box::new(RamDisk::writable(vec![0u8; 32 * 512].leak())));
        let row = VIRTIO_MMIO[0];
        let line = gic.line(row.interrupt.unwrap_or(48));
        let blk: &'static VirtioBlk<'static> = Box::leak(Box::new(VirtioBlk::new(
            row,
            ram,
            line,
            disk,
            vec![0u8; 2048].leak(),
            "fuzz",
        )));
        disk.set_client(blk);
        Rig { ram, gic, blk }
    };
}

fn size(code: u8) -> AccessSize {
    match code % 4 {
        0 => AccessSize::Byte,
        1 => AccessSize::Halfword,
        2 => AccessSize::Word,
        _ => AccessSize::Doubleword,
    }
}

/// Where [`bring_up`] puts the queue's areas, as offsets into RAM.
const DESC: u64 = 0x0000;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;

/// A driver's usual bring-up, so inputs reach the queue quickly: queue of
/// `value`'s low byte entries with its areas at `DESC`, `AVAIL`, `USED`.
fn bring_up(blk: &VirtioBlk, value: u32) {
    let areas = [DESC as u32, AVAIL as u32, USED as u32];
    let writes = [
        (reg::STATUS, 0),
        (reg::STATUS, 3),
        (reg::DRIVER_FEATURES_SEL, 1),
        (reg::DRIVER_FEATURES, 1),
        (reg::DRIVER_FEATURES_SEL, 0),
        (reg::DRIVER_FEATURES, value >> 8),
        (reg::STATUS, 11),
        (reg::QUEUE_SEL, 0),
        (reg::QUEUE_NUM, value & 0xff),
        (reg::QUEUE_DESC_LOW, RAM_BASE as u32 + areas[0]),
        (reg::QUEUE_DRIVER_LOW, RAM_BASE as u32 + areas[1]),
        (reg::QUEUE_DEVICE_LOW, RAM_BASE as u32 + areas[2]),
        (reg::QUEUE_READY, 1),
        (reg::STATUS, 15),
    ];
    for (offset, value) in writes {
        let _ = blk.write(offset, AccessSize::Word, value);
    }
}

impl FakeRam {
    fn poke(&self, offset: u64, data: &[u8]) {
        let at = (offset as usize) % (RAM_BYTES - data.len());
        self.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
    }

    fn peek_u16(&self, offset: u64) -> u16 {
        let bytes = self.bytes.borrow();
        u16::from_le_bytes([bytes[offset as usize], bytes[offset as usize + 1]])
    }
}

/// A guest-physical address from the input: mostly inside RAM (so chains
/// get walked and requests served), else raw (`high`: its top word).
fn address(choice: u8, value: u32, high: u32) -> u64 {
    match choice % 4 {
        0 | 1 => RAM_BASE + u64::from(value) % RAM_BYTES as u64,
        2 => RAM_BASE + RAM_BYTES as u64 - u64::from(value % 1024),
        _ => u64::from(value) | u64::from(high) << 32,
    }
}

fuzz_target!(|operations: Vec<(u8, u16, u8, u32, u32)>| {
    RIG.with(|rig| {
        rig.gic.reset();
        rig.ram.bytes.borrow_mut().fill(0);
        let _ = rig.blk.reset();
        for (kind, offset, width, value, extra) in operations {
            let used_before = rig.ram.peek_u16(USED + 2);
            let status_before = rig.blk.read(reg::STATUS, AccessSize::Word).unwrap_or(0);
            let offset = u64::from(offset);
            match kind % 9 {
                0 => {
                    let _ = rig.blk.read(offset % 0x200, size(width));
                }
                1 => {
                    let _ = rig.blk.write(offset % 0x200, size(width), value);
                }
                2 | 3 => {
                    // Queue contents: a word anywhere in the first 16 KiB
                    // (the areas and buffers), or near the end of RAM.
                    let at = (offset as usize * 4) % (RAM_BYTES - 4);
                    rig.ram.bytes.borrow_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
                4 => bring_up(rig.blk, value),
                5 => {
                    let _ = rig
                        .blk
                        .write(reg::QUEUE_NOTIFY, AccessSize::Word, value % 3);
                    rig.blk.poll();
                }
                6 => {
                    // A descriptor of the table `bring_up` placed: any
                    // address, length, flags and next.
                    let index = offset % 256;
                    let len = if width & 0x80 != 0 {
                        extra
                    } else {
                        extra & 0x3fff
                    };
                    let flags = u16::from(width >> 2) & 0x7;
                    let next = (extra >> 16) as u16 % 260;
                    let mut raw = [0u8; 16];
                    raw[..8].copy_from_slice(&address(width, value, extra).to_le_bytes());
                    raw[8..12].copy_from_slice(&len.to_le_bytes());
                    raw[12..14].copy_from_slice(&flags.to_le_bytes());
                    raw[14..].copy_from_slice(&next.to_le_bytes());
                    rig.ram.poke(DESC + 16 * index, &raw);
                }
                7 => {
                    // An available-ring entry with any head, published
                    // (the index moved by 1, or by the input's amount),
                    // then notified.
                    let index = rig.ram.peek_u16(AVAIL + 2);
                    let slot = u64::from(index) % 256;
                    rig.ram
                        .poke(AVAIL + 4 + 2 * slot, &(offset as u16 % 260).to_le_bytes());
                    let step = if width & 1 == 0 { 1 } else { extra as u16 };
                    rig.ram
                        .poke(AVAIL + 2, &index.wrapping_add(step).to_le_bytes());
                    let _ = rig.blk.write(reg::QUEUE_NOTIFY, AccessSize::Word, 0);
                }
                _ => {
                    // A request header (type mostly one the device knows)
                    // where a descriptor may point.
                    let kind = if width & 1 == 0 { value % 10 } else { value };
                    let mut header = [0u8; 16];
                    header[..4].copy_from_slice(&kind.to_le_bytes());
                    let sector = if width & 2 == 0 {
                        u64::from(extra % 40)
                    } else {
                        u64::from(extra) << 32 | u64::from(value)
                    };
                    header[8..].copy_from_slice(&sector.to_le_bytes());
                    rig.ram.poke(offset * 16, &header);
                }
            }
            let status_now = rig.blk.read(reg::STATUS, AccessSize::Word).unwrap_or(0);
            assert!(
                status_now & 4 == 0 || status_now & 8 != 0,
                "DRIVER_OK without FEATURES_OK: {status_now:#x}"
            );
            // A device that needed a reset before this operation, and was
            // not reset by it, returned nothing (operations that write the
            // used ring themselves are the RAM writes).
            if status_before & 64 != 0 && status_now & 64 != 0 && !matches!(kind % 9, 2 | 3 | 6 | 8)
            {
                assert_eq!(
                    rig.ram.peek_u16(USED + 2),
                    used_before,
                    "a used entry from a device that needs a reset"
                );
            }
            let status = rig
                .blk
                .read(reg::INTERRUPT_STATUS, AccessSize::Word)
                .unwrap_or(0);
            let line = rig.gic.line(VIRTIO_MMIO[0].interrupt.unwrap_or(48));
            assert_eq!(
                line.is_high(),
                status != 0,
                "the line follows InterruptStatus"
            );
        }
        assert_eq!(rig.ram.refused.get(), 0, "a copy outside RAM was attempted");
    });
});
