// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-mmio (version 2) and virtio-blk as the test guests drive them:
//! the register layout, the status, feature and request constants, and
//! [`Disk`], a driver with one split virtqueue in the guest's own RAM.
//!
//! QEMU `virt` (and a Capvisor VM, whose guest platform copies it) has 32
//! transports at 0x0a00_0000 + n·0x200, with interrupt SPI 16 + n (GIC id
//! 48 + n). The guests that use this: `virtio_blk` (the transport and the
//! disk, checked), `bench` (instructions per request, under Capvisor and
//! on bare QEMU against QEMU's own device) and `hostile` (the registers
//! and bits; its attacks build their own queues).

use crate::{read32, write32, Checks};

/// Slot 0's window; slot `n` is `n` × [`SLOT_STRIDE`] further on.
pub const SLOT_BASE: usize = 0x0a00_0000;
/// The distance between two transports' windows.
pub const SLOT_STRIDE: usize = 0x200;
/// How many transports QEMU `virt` has.
pub const SLOTS: usize = 32;
/// Slot 0's GIC interrupt id (SPI 16).
pub const FIRST_INTERRUPT: u32 = 48;

/// Register offsets in a transport's window.
pub const MAGIC: usize = 0x000;
pub const VERSION: usize = 0x004;
pub const DEVICE_ID: usize = 0x008;
pub const VENDOR_ID: usize = 0x00c;
pub const DEVICE_FEATURES: usize = 0x010;
pub const DEVICE_FEATURES_SEL: usize = 0x014;
pub const DRIVER_FEATURES: usize = 0x020;
pub const DRIVER_FEATURES_SEL: usize = 0x024;
pub const QUEUE_SEL: usize = 0x030;
pub const QUEUE_NUM_MAX: usize = 0x034;
pub const QUEUE_NUM: usize = 0x038;
pub const QUEUE_READY: usize = 0x044;
pub const QUEUE_NOTIFY: usize = 0x050;
pub const INTERRUPT_STATUS: usize = 0x060;
pub const INTERRUPT_ACK: usize = 0x064;
pub const STATUS: usize = 0x070;
pub const QUEUE_DESC: usize = 0x080;
pub const QUEUE_DRIVER: usize = 0x090;
pub const QUEUE_DEVICE: usize = 0x0a0;
pub const SHM_LEN_LOW: usize = 0x0b0;
pub const CONFIG_GENERATION: usize = 0x0fc;
pub const CONFIG: usize = 0x100;

/// MagicValue: "virt" in little-endian.
pub const MAGIC_VALUE: u32 = 0x7472_6976;
/// DeviceID of a block device.
pub const DEVICE_BLOCK: u32 = 2;

/// Device status bits.
pub const ACKNOWLEDGE: u32 = 1;
pub const DRIVER: u32 = 2;
pub const DRIVER_OK: u32 = 4;
pub const FEATURES_OK: u32 = 8;
pub const NEEDS_RESET: u32 = 64;
/// Every status bit a driver sets on the way up.
pub const RUNNING: u32 = ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK;

/// InterruptStatus bits: used buffers, configuration change.
pub const INT_USED: u32 = 1;
pub const INT_CONFIG: u32 = 2;

/// Feature bits of the low word: RO (5), FLUSH (9), INDIRECT_DESC (28),
/// EVENT_IDX (29); of the high word: VERSION_1 (32), RING_PACKED (34).
pub const F_RO: u32 = 1 << 5;
pub const F_FLUSH: u32 = 1 << 9;
pub const F_INDIRECT_DESC: u32 = 1 << 28;
pub const F_EVENT_IDX: u32 = 1 << 29;
pub const F_HIGH_VERSION_1: u32 = 1;
pub const F_HIGH_RING_PACKED: u32 = 1 << 2;

/// virtio-blk request types.
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;
/// virtio-blk request status values.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// Descriptor flags.
pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;

/// Transport `n`'s window.
pub const fn slot(n: usize) -> usize {
    SLOT_BASE + n * SLOT_STRIDE
}

/// Transport `n`'s GIC interrupt id.
pub const fn interrupt(n: usize) -> u32 {
    FIRST_INTERRUPT + n as u32
}

/// Where a [`Disk`] keeps its queue and buffers, from the start of its
/// area: the descriptor table, the available and used rings, a request
/// header, the status byte and up to [`DATA_BYTES`] of data.
const DESC: usize = 0x0000;
const AVAIL: usize = 0x0400;
const USED: usize = 0x0800;
const HEADER: usize = 0x1000;
const STATUS_BYTE: usize = 0x1100;
const DATA: usize = 0x2000;
/// The data buffer's size.
pub const DATA_BYTES: usize = 0x1_0000;
/// The bytes a [`Disk`]'s area covers.
pub const AREA_BYTES: usize = DATA + DATA_BYTES;

/// A virtio-blk device on one transport, with one split virtqueue of
/// `queue` entries in the guest's RAM at `area` (which must be
/// [`AREA_BYTES`] of RAM nothing else uses).
#[derive(Clone, Copy, Debug)]
pub struct Disk {
    /// The transport's window.
    pub window: usize,
    /// The queue's and buffers' area in guest RAM.
    pub area: usize,
    /// The queue's size (a power of two, at most 64).
    pub queue: u16,
}

impl Disk {
    /// A register of the transport.
    pub fn reg(&self, offset: usize) -> u32 {
        // SAFETY: the transport's window (device emulation or QEMU's
        // device); the caller chose a window this guest may access.
        unsafe { read32(self.window + offset) }
    }

    /// Writes a register of the transport.
    pub fn set_reg(&self, offset: usize, value: u32) {
        // SAFETY: as for `reg`.
        unsafe { write32(self.window + offset, value) }
    }

    fn poke<T>(&self, offset: usize, value: T) {
        debug_assert!(offset + core::mem::size_of::<T>() <= AREA_BYTES);
        // SAFETY: inside the disk's area, which the caller gave this
        // driver alone; every offset used is naturally aligned.
        unsafe { core::ptr::write_volatile((self.area + offset) as *mut T, value) }
    }

    fn peek<T>(&self, offset: usize) -> T {
        // SAFETY: as for `poke`.
        unsafe { core::ptr::read_volatile((self.area + offset) as *const T) }
    }

    /// Resets the device, negotiates VERSION_1 and the low feature bits
    /// of `wanted` the device offers, sets up queue 0 and sets DRIVER_OK;
    /// returns the device's low feature word. Each step is a check.
    pub fn bring_up(&self, wanted: u32, checks: &mut Checks) -> u32 {
        for offset in (0..DATA).step_by(4) {
            self.poke::<u32>(offset, 0);
        }
        self.set_reg(STATUS, 0);
        self.set_reg(STATUS, ACKNOWLEDGE);
        self.set_reg(STATUS, ACKNOWLEDGE | DRIVER);
        self.set_reg(DEVICE_FEATURES_SEL, 1);
        let high = self.reg(DEVICE_FEATURES);
        self.set_reg(DEVICE_FEATURES_SEL, 0);
        let low = self.reg(DEVICE_FEATURES);
        checks.that("VERSION_1 offered", high & F_HIGH_VERSION_1 != 0);
        self.set_reg(DRIVER_FEATURES_SEL, 0);
        self.set_reg(DRIVER_FEATURES, low & wanted);
        self.set_reg(DRIVER_FEATURES_SEL, 1);
        self.set_reg(DRIVER_FEATURES, F_HIGH_VERSION_1);
        self.set_reg(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        checks.that("FEATURES_OK accepted", self.reg(STATUS) & FEATURES_OK != 0);
        self.set_reg(QUEUE_SEL, 0);
        checks.that(
            "the queue fits the device",
            self.reg(QUEUE_NUM_MAX) >= u32::from(self.queue),
        );
        self.set_reg(QUEUE_NUM, u32::from(self.queue));
        for (register, offset) in [
            (QUEUE_DESC, DESC),
            (QUEUE_DRIVER, AVAIL),
            (QUEUE_DEVICE, USED),
        ] {
            self.set_reg(register, (self.area + offset) as u32);
            self.set_reg(register + 4, 0);
        }
        self.set_reg(QUEUE_READY, 1);
        checks.equal("queue ready", self.reg(QUEUE_READY), 1);
        self.set_reg(STATUS, RUNNING);
        low
    }

    /// Writes descriptor `index`.
    pub fn descriptor(&self, index: usize, address: usize, len: u32, flags: u16, next: u16) {
        let at = DESC + 16 * index;
        self.poke::<u32>(at, address as u32);
        self.poke::<u32>(at + 4, 0);
        self.poke::<u32>(at + 8, len);
        self.poke::<u16>(at + 12, flags);
        self.poke::<u16>(at + 14, next);
    }

    /// Writes a request of `kind` at `sector` with `len` bytes of the data
    /// buffer as chain 0 (header, data unless `len` is 0, status byte);
    /// the status byte starts as 0xff.
    pub fn prepare(&self, kind: u32, sector: u64, len: u32) {
        self.set_header(kind, sector);
        self.set_status_byte(0xff);
        let data_flags = if kind == T_OUT { 0 } else { DESC_F_WRITE };
        self.descriptor(0, self.area + HEADER, 16, DESC_F_NEXT, 1);
        if len == 0 {
            self.descriptor(1, self.area + STATUS_BYTE, 1, DESC_F_WRITE, 0);
        } else {
            self.descriptor(1, self.area + DATA, len, data_flags | DESC_F_NEXT, 2);
            self.descriptor(2, self.area + STATUS_BYTE, 1, DESC_F_WRITE, 0);
        }
    }

    /// Makes chain 0 available (without notifying); returns the used
    /// ring's index before it, which the device's completion advances.
    pub fn publish(&self) -> u16 {
        let index: u16 = self.peek(AVAIL + 2);
        let used = self.used_index();
        self.poke::<u16>(AVAIL + 4 + 2 * usize::from(index % self.queue), 0);
        self.poke::<u16>(AVAIL + 2, index.wrapping_add(1));
        used
    }

    /// Notifies queue 0.
    pub fn notify(&self) {
        self.set_reg(QUEUE_NOTIFY, 0);
    }

    /// The used ring's index as the device last wrote it.
    pub fn used_index(&self) -> u16 {
        self.peek(USED + 2)
    }

    /// The status byte of the last request.
    pub fn status_byte(&self) -> u8 {
        self.peek(STATUS_BYTE)
    }

    /// The data buffer's byte `n`.
    pub fn data(&self, n: usize) -> u8 {
        self.peek(DATA + n)
    }

    /// Sets the data buffer's byte `n`.
    pub fn set_data(&self, n: usize, value: u8) {
        self.poke(DATA + n, value)
    }

    /// The guest-physical address of the data buffer's byte `n`.
    pub fn data_address(&self, n: usize) -> usize {
        self.area + DATA + n
    }

    /// The address of the status byte.
    pub fn status_address(&self) -> usize {
        self.area + STATUS_BYTE
    }

    /// The address of the request header.
    pub fn header_address(&self) -> usize {
        self.area + HEADER
    }

    /// Writes the request header (type and sector) alone.
    pub fn set_header(&self, kind: u32, sector: u64) {
        self.poke::<u32>(HEADER, kind);
        self.poke::<u32>(HEADER + 4, 0);
        self.poke::<u32>(HEADER + 8, sector as u32);
        self.poke::<u32>(HEADER + 12, (sector >> 32) as u32);
    }

    /// Sets the status byte (0xff before a request: none written).
    pub fn set_status_byte(&self, value: u8) {
        self.poke::<u8>(STATUS_BYTE, value)
    }

    /// Acknowledges every interrupt reason the device shows; returns them.
    pub fn acknowledge(&self) -> u32 {
        let status = self.reg(INTERRUPT_STATUS);
        self.set_reg(INTERRUPT_ACK, status);
        status
    }
}

/// The first of QEMU `virt`'s transports that holds a device of type
/// `device` (natively: QEMU gives the first `-device` the last slot).
/// Only for bare QEMU, where every slot's window exists; a VM reaches only
/// the slots it claims.
pub fn find_native(device: u32) -> Option<usize> {
    (0..SLOTS).find(|&n| {
        // SAFETY: on bare QEMU `virt` every transport's window is there.
        let (magic, id) = unsafe { (read32(slot(n) + MAGIC), read32(slot(n) + DEVICE_ID)) };
        magic == MAGIC_VALUE && id == device
    })
}
