// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any sequence of guest accesses to a virtio-blk device's virtio-mmio
//! window mixed with arbitrary writes to the guest RAM its queues live in
//! (descriptors, rings, request headers): no panic, never a copy outside
//! the VM's RAM (the fake RAM refuses and counts them), and the interrupt
//! line always follows InterruptStatus.
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
            return Err(GuestRamError { ipa, len: out.len() });
        }
        let start = (ipa - RAM_BASE) as usize;
        out.copy_from_slice(&self.bytes.borrow()[start..start + out.len()]);
        Ok(())
    }

    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError> {
        if !self.contains(ipa, data.len()) {
            self.refused.set(self.refused.get() + 1);
            return Err(GuestRamError { ipa, len: data.len() });
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

/// A driver's usual bring-up, so inputs reach the queue quickly: queue of
/// `value`'s low byte entries with its areas at offsets the input gives.
fn bring_up(blk: &VirtioBlk, value: u32) {
    let areas = [0x0000u32, 0x1000, 0x2000];
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

fuzz_target!(|operations: Vec<(u8, u16, u8, u32)>| {
    RIG.with(|rig| {
        rig.gic.reset();
        rig.ram.bytes.borrow_mut().fill(0);
        let _ = rig.blk.reset();
        for (kind, offset, width, value) in operations {
            let offset = u64::from(offset);
            match kind % 6 {
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
                _ => {
                    let _ = rig.blk.write(reg::QUEUE_NOTIFY, AccessSize::Word, value % 3);
                    rig.blk.poll();
                }
            }
            let status = rig
                .blk
                .read(reg::INTERRUPT_STATUS, AccessSize::Word)
                .unwrap_or(0);
            let line = rig.gic.line(VIRTIO_MMIO[0].interrupt.unwrap_or(48));
            assert_eq!(line.is_high(), status != 0, "the line follows InterruptStatus");
        }
        assert_eq!(rig.ram.refused.get(), 0, "a copy outside RAM was attempted");
    });
});
