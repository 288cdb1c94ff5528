// SPDX-License-Identifier: MIT OR Apache-2.0
//! The virtio-mmio transport, version 2 (virtio 1.x): the registers a
//! virtio device shows the guest, and its queues.
//!
//! A device (virtio-blk, [`super::blk`]) owns a [`MmioTransport`] and
//! forwards its window's accesses to it with itself as the
//! [`VirtioDevice`] (its id, features, queue count and configuration
//! space); the transport answers what the specification defines and
//! tells the device what it must act on ([`Event`]). Queues are in the
//! guest's RAM and reached only through its [`GuestRam`]
//! ([`super::queue`] checks every index and range); a queue found
//! malformed puts the device in DEVICE_NEEDS_RESET with a configuration
//! change interrupt ([`MmioTransport::fail`]), and the VM carries on: its
//! driver resets the device (status 0) to use it again.
//!
//! | offset | register | behaviour |
//! |---|---|---|
//! | 0x000 | MagicValue | 0x74726976 ("virt") |
//! | 0x004 | Version | 2 |
//! | 0x008 | DeviceID | the device's (2: block) |
//! | 0x00c | VendorID | 0x56504143 ("CAPV") |
//! | 0x010 | DeviceFeatures | 32 feature bits, the half DeviceFeaturesSel (0x014) selects; VIRTIO_F_VERSION_1 (bit 32) always |
//! | 0x020 | DriverFeatures | the driver's, the half DriverFeaturesSel (0x024) selects; kept until FEATURES_OK |
//! | 0x030 | QueueSel | the queue the next five registers mean |
//! | 0x034 | QueueNumMax | 128 for a queue the device has, else 0 |
//! | 0x038 | QueueNum | the queue's size (a power of two, checked at QueueReady; ignored while the queue is ready) |
//! | 0x044 | QueueReady | write 1: the queue is checked and used (its indices start at 0), also after DRIVER_OK; 0: not used |
//! | 0x050 | QueueNotify | write a queue index (the whole word): the device looks at that queue if it is ready and the device live; any other value is ignored |
//! | 0x060 | InterruptStatus | bit 0 used buffer, bit 1 configuration change; the line is high while non-zero |
//! | 0x064 | InterruptACK | clears the bits written |
//! | 0x070 | Status | the driver's progress, bits only added; FEATURES_OK stays clear if the features written are not a subset of the device's with VERSION_1; DRIVER_OK stays clear until FEATURES_OK holds; writing 0 resets the device |
//! | 0x080-0x0a4 | QueueDesc/Driver/Device Low/High | the queue's areas (ignored while it is ready) |
//! | 0x0ac-0x0bc | SHMSel, SHMLen, SHMBase | no shared memory regions (length and base read all ones) |
//! | 0x0fc | ConfigGeneration | 0: the configuration never changes |
//! | 0x100.. | Config | the device's configuration space, any naturally aligned size up to a word; writes ignored |
//!
//! Registers below 0x100 take aligned word accesses only (others are
//! refused: the guest takes a data abort); offsets below 0x100 that name
//! no register, and the read-only registers, read as the table says and
//! ignore writes. An offset past the device's configuration space is
//! refused. QueueSel may name a queue the device does not have: its
//! registers then read 0 and ignore writes. Queue areas are checked when the queue goes ready (size a power
//! of two, areas aligned and in RAM); a bad setup is a malformed queue.

use super::queue::{Chain, QueueError, Virtqueue, MAX_QUEUE_SIZE};
use crate::virtual_gic::InterruptLine;
use core::cell::Cell;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::GuestDevice;
use hyp::hil::guest_ram::GuestRam;
use hyp::trap::AccessSize;

/// MagicValue: "virt".
pub const MAGIC: u32 = 0x7472_6976;
/// The transport's version: virtio 1.x over MMIO.
pub const VERSION: u32 = 2;
/// VendorID: "CAPV".
pub const VENDOR: u32 = 0x5650_4143;
/// The feature every device offers and every driver must accept.
pub const F_VERSION_1: u64 = 1 << 32;
/// The most queues a device has.
pub const MAX_QUEUES: usize = 2;

/// Register offsets (virtio 1.2, 4.2.2).
pub mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// InterruptStatus: a used buffer.
pub const INT_USED_BUFFER: u32 = 1;
/// InterruptStatus: the configuration changed (or the device needs a
/// reset).
pub const INT_CONFIG: u32 = 2;

/// What a virtio device tells its transport about itself.
pub trait VirtioDevice {
    /// Its device id (2: block).
    fn device_id(&self) -> u32;
    /// Its feature bits (the transport adds [`F_VERSION_1`]).
    fn device_features(&self) -> u64;
    /// How many queues it has (at most [`MAX_QUEUES`]).
    fn queue_count(&self) -> usize;
    /// The byte at `offset` of its configuration space, if there is one.
    fn config_byte(&self, offset: u64) -> Option<u8>;
}

/// What an access asks of the device, after the transport did its part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing.
    None,
    /// The driver made buffers available in this (ready) queue.
    Notify(usize),
    /// The driver reset the device (status 0): the transport is back in
    /// its reset state; the device drops what it was doing.
    Reset,
}

/// The transport's state for one device.
pub struct MmioTransport<'a> {
    ram: &'a dyn GuestRam,
    line: InterruptLine<'a>,
    status: Cell<u32>,
    device_features_sel: Cell<u32>,
    driver_features_sel: Cell<u32>,
    driver_features: Cell<u64>,
    queue_sel: Cell<u32>,
    queues: [Cell<Virtqueue>; MAX_QUEUES],
    interrupt_status: Cell<u32>,
}

impl core::fmt::Debug for MmioTransport<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MmioTransport")
            .field("status", &self.status.get())
            .field("interrupt_status", &self.interrupt_status.get())
            .finish()
    }
}

/// Replaces the low (`high` false) or high half of `value` with `half`.
fn set_half(value: u64, high: bool, half: u32) -> u64 {
    if high {
        (value & 0xffff_ffff) | u64::from(half) << 32
    } else {
        (value & !0xffff_ffff) | u64::from(half)
    }
}

impl<'a> MmioTransport<'a> {
    /// A transport in its reset state, over its VM's `ram`, raising
    /// `line`.
    pub fn new(ram: &'a dyn GuestRam, line: InterruptLine<'a>) -> MmioTransport<'a> {
        MmioTransport {
            ram,
            line,
            status: Cell::new(0),
            device_features_sel: Cell::new(0),
            driver_features_sel: Cell::new(0),
            driver_features: Cell::new(0),
            queue_sel: Cell::new(0),
            queues: Default::default(),
            interrupt_status: Cell::new(0),
        }
    }

    /// The VM's RAM.
    pub fn ram(&self) -> &'a dyn GuestRam {
        self.ram
    }

    /// Back to the reset state (status 0, queues gone), the line low.
    pub fn reset(&self) {
        self.status.set(0);
        self.device_features_sel.set(0);
        self.driver_features_sel.set(0);
        self.driver_features.set(0);
        self.queue_sel.set(0);
        for queue in &self.queues {
            queue.set(Virtqueue::default());
        }
        self.interrupt_status.set(0);
        self.line.lower();
    }

    /// The status register.
    pub fn status(&self) -> u32 {
        self.status.get()
    }

    /// Whether the driver accepted feature `bit` (a mask) and the device
    /// is running.
    pub fn negotiated(&self, bit: u64) -> bool {
        self.status.get() & status::FEATURES_OK != 0 && self.driver_features.get() & bit != 0
    }

    /// Whether the device may use its queues: DRIVER_OK set, no reset
    /// needed.
    pub fn live(&self) -> bool {
        self.status.get() & (status::DRIVER_OK | status::DEVICE_NEEDS_RESET) == status::DRIVER_OK
    }

    /// The device found a queue malformed (or itself broken): it stops
    /// using its queues until the driver resets it, and tells the driver
    /// with a configuration change interrupt.
    pub fn fail(&self, _error: QueueError) {
        self.status
            .set(self.status.get() | status::DEVICE_NEEDS_RESET);
        self.interrupt(INT_CONFIG);
    }

    fn interrupt(&self, bits: u32) {
        self.interrupt_status
            .set(self.interrupt_status.get() | bits);
        self.line.set(self.interrupt_status.get() != 0);
    }

    fn selected(&self) -> Option<&Cell<Virtqueue>> {
        self.queues.get(self.queue_sel.get() as usize)
    }

    /// Takes the next available chain of `queue` into `chain`: `Ok(false)`
    /// when there is none (or the device is not live); a malformed queue
    /// fails the device ([`MmioTransport::fail`]).
    pub fn pop(&self, queue: usize, chain: &mut Chain) -> Result<bool, QueueError> {
        let Some(cell) = self.queues.get(queue) else {
            return Ok(false);
        };
        let mut state = cell.get();
        if !self.live() || !state.ready {
            return Ok(false);
        }
        let result = state.pop(self.ram, chain);
        cell.set(state);
        result.inspect_err(|&error| self.fail(error))
    }

    /// Returns `head` to the driver through `queue`'s used ring with
    /// `written` bytes, and interrupts it unless it asked not to be.
    pub fn push_used(&self, queue: usize, head: u16, written: u32) -> Result<(), QueueError> {
        let Some(cell) = self.queues.get(queue) else {
            return Ok(());
        };
        let mut state = cell.get();
        if !self.live() || !state.ready {
            return Ok(());
        }
        let result = state.push_used(self.ram, head, written);
        cell.set(state);
        match result {
            Ok(true) => {
                self.interrupt(INT_USED_BUFFER);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(error) => {
                self.fail(error);
                Err(error)
            }
        }
    }

    /// A read of the window at `offset`.
    pub fn read(
        &self,
        offset: u64,
        size: AccessSize,
        device: &dyn VirtioDevice,
    ) -> Result<u32, MmioError> {
        if offset >= reg::CONFIG {
            return read_config(offset - reg::CONFIG, size, device);
        }
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Err(MmioError::BadSize);
        }
        let queue = self.selected().map(Cell::get);
        let has_queue = (self.queue_sel.get() as usize) < device.queue_count().min(MAX_QUEUES);
        let features = device.device_features() | F_VERSION_1;
        Ok(match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => device.device_id(),
            reg::VENDOR_ID => VENDOR,
            reg::DEVICE_FEATURES => match self.device_features_sel.get() {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX if has_queue => u32::from(MAX_QUEUE_SIZE),
            reg::QUEUE_NUM if has_queue => queue.map_or(0, |q| q.size),
            reg::QUEUE_READY if has_queue => queue.map_or(0, |q| u32::from(q.ready)),
            reg::QUEUE_DESC_LOW if has_queue => queue.map_or(0, |q| q.desc as u32),
            reg::QUEUE_DESC_HIGH if has_queue => queue.map_or(0, |q| (q.desc >> 32) as u32),
            reg::QUEUE_DRIVER_LOW if has_queue => queue.map_or(0, |q| q.driver as u32),
            reg::QUEUE_DRIVER_HIGH if has_queue => queue.map_or(0, |q| (q.driver >> 32) as u32),
            reg::QUEUE_DEVICE_LOW if has_queue => queue.map_or(0, |q| q.device as u32),
            reg::QUEUE_DEVICE_HIGH if has_queue => queue.map_or(0, |q| (q.device >> 32) as u32),
            reg::INTERRUPT_STATUS => self.interrupt_status.get(),
            reg::STATUS => self.status.get(),
            reg::SHM_LEN_LOW..=reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        })
    }

    /// A write of the window at `offset`; what the device must do next.
    pub fn write(
        &self,
        offset: u64,
        size: AccessSize,
        value: u32,
        device: &dyn VirtioDevice,
    ) -> Result<Event, MmioError> {
        if offset >= reg::CONFIG {
            // Read-only configuration: checked like a read, then ignored.
            return read_config(offset - reg::CONFIG, size, device).map(|_| Event::None);
        }
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Err(MmioError::BadSize);
        }
        let has_queue = (self.queue_sel.get() as usize) < device.queue_count().min(MAX_QUEUES);
        let features_open = self.status.get() & status::FEATURES_OK == 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel.set(value),
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel.set(value),
            reg::DRIVER_FEATURES if features_open => {
                let sel = self.driver_features_sel.get();
                if sel <= 1 {
                    self.driver_features
                        .set(set_half(self.driver_features.get(), sel == 1, value));
                }
            }
            reg::QUEUE_SEL => self.queue_sel.set(value),
            reg::QUEUE_NUM
            | reg::QUEUE_DESC_LOW
            | reg::QUEUE_DESC_HIGH
            | reg::QUEUE_DRIVER_LOW
            | reg::QUEUE_DRIVER_HIGH
            | reg::QUEUE_DEVICE_LOW
            | reg::QUEUE_DEVICE_HIGH
                if has_queue =>
            {
                if let Some(cell) = self.selected() {
                    let mut queue = cell.get();
                    if !queue.ready {
                        match offset {
                            reg::QUEUE_NUM => queue.size = value,
                            reg::QUEUE_DESC_LOW | reg::QUEUE_DESC_HIGH => {
                                queue.desc =
                                    set_half(queue.desc, offset == reg::QUEUE_DESC_HIGH, value)
                            }
                            reg::QUEUE_DRIVER_LOW | reg::QUEUE_DRIVER_HIGH => {
                                queue.driver =
                                    set_half(queue.driver, offset == reg::QUEUE_DRIVER_HIGH, value)
                            }
                            _ => {
                                queue.device =
                                    set_half(queue.device, offset == reg::QUEUE_DEVICE_HIGH, value)
                            }
                        }
                        cell.set(queue);
                    }
                }
            }
            reg::QUEUE_READY if has_queue => {
                if let Some(cell) = self.selected() {
                    let mut queue = cell.get();
                    if value & 1 == 0 {
                        queue.ready = false;
                    } else if !queue.ready {
                        match queue.check_setup(self.ram) {
                            Ok(()) => {
                                queue.ready = true;
                                queue.next_avail = 0;
                                queue.next_used = 0;
                            }
                            Err(error) => self.fail(error),
                        }
                    }
                    cell.set(queue);
                }
            }
            reg::QUEUE_NOTIFY => {
                // The whole value is the queue's index (no
                // VIRTIO_F_NOTIFICATION_DATA): 0x1_0000 is no queue, not
                // queue 0.
                let index = value as usize;
                let ready =
                    index < device.queue_count().min(MAX_QUEUES) && self.queues[index].get().ready;
                if ready && self.live() {
                    return Ok(Event::Notify(index));
                }
            }
            reg::INTERRUPT_ACK => {
                self.interrupt_status
                    .set(self.interrupt_status.get() & !value);
                self.line.set(self.interrupt_status.get() != 0);
            }
            reg::STATUS => {
                if value == 0 {
                    self.reset();
                    return Ok(Event::Reset);
                }
                self.set_status(value, device);
            }
            // SHMSel and everything else: nothing to select or store.
            _ => {}
        }
        Ok(Event::None)
    }

    /// The driver writes a non-zero status: bits are only added (a
    /// driver clears them by resetting); FEATURES_OK holds only for an
    /// acceptable feature set; DRIVER_OK only once FEATURES_OK holds (a
    /// version 2 device has no legacy driver that skips negotiation);
    /// DEVICE_NEEDS_RESET is the device's.
    fn set_status(&self, value: u32, device: &dyn VirtioDevice) {
        let old = self.status.get();
        let mut new = old | (value & !status::DEVICE_NEEDS_RESET);
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let offered = device.device_features() | F_VERSION_1;
            let wanted = self.driver_features.get();
            if wanted & !offered != 0 || wanted & F_VERSION_1 == 0 {
                new &= !status::FEATURES_OK;
            }
        }
        if new & status::FEATURES_OK == 0 {
            new &= !status::DRIVER_OK;
        }
        self.status.set(new);
    }
}

/// A read of the configuration space at `offset`: bytes in little-endian
/// order, naturally aligned, up to a word.
fn read_config(offset: u64, size: AccessSize, device: &dyn VirtioDevice) -> Result<u32, MmioError> {
    let bytes = u64::from(size.bytes());
    if bytes > 4 || !offset.is_multiple_of(bytes) {
        return Err(MmioError::BadSize);
    }
    let mut value = 0u32;
    for n in 0..bytes {
        let byte = device
            .config_byte(offset + n)
            .ok_or(MmioError::NoRegister)?;
        value |= u32::from(byte) << (8 * n);
    }
    Ok(value)
}

/// A virtio-mmio slot without a device: a transport whose DeviceID reads
/// 0, which a driver skips (as QEMU's unused transports on `virt`). A VM
/// that claims a slot but has no disk there gets this.
#[derive(Debug)]
pub struct EmptySlot {
    row: GuestDevice,
}

impl EmptySlot {
    /// The empty transport at `row`'s window.
    pub const fn new(row: GuestDevice) -> EmptySlot {
        EmptySlot { row }
    }
}

impl MmioDevice for EmptySlot {
    fn name(&self) -> &'static str {
        self.row.name
    }

    fn base(&self) -> u64 {
        u64::from(self.row.base)
    }

    fn size(&self) -> u64 {
        u64::from(self.row.size)
    }

    fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
        if size != AccessSize::Word || !offset.is_multiple_of(4) {
            return Err(MmioError::BadSize);
        }
        Ok(match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::VENDOR_ID => VENDOR,
            _ => 0,
        })
    }

    fn write(&self, offset: u64, size: AccessSize, _value: u32) -> Result<(), MmioError> {
        self.read(offset, size).map(|_| ())
    }

    fn changes_interrupts(&self, _offset: u64, _write: bool) -> bool {
        false
    }

    fn reset(&self) -> Result<(), NotResettable> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyp::guest_platform::VIRTIO_MMIO;

    #[test]
    fn an_empty_slot_is_a_transport_without_a_device() {
        let slot = EmptySlot::new(VIRTIO_MMIO[1]);
        let read = |offset| slot.read(offset, AccessSize::Word);
        assert_eq!(read(reg::MAGIC), Ok(MAGIC));
        assert_eq!(read(reg::VERSION), Ok(2));
        assert_eq!(read(reg::DEVICE_ID), Ok(0));
        assert_eq!(read(reg::QUEUE_NUM_MAX), Ok(0));
        assert_eq!(slot.write(reg::STATUS, AccessSize::Word, 1), Ok(()));
        assert_eq!(read(reg::STATUS), Ok(0));
        assert_eq!(slot.read(0, AccessSize::Byte), Err(MmioError::BadSize));
        assert_eq!(
            (slot.name(), slot.base(), slot.size()),
            ("virtio-mmio1", 0x0a00_0200, 0x200)
        );
        assert_eq!(slot.reset(), Ok(()));
    }

    /// A device with one queue and no features of its own.
    struct OneQueue;

    impl VirtioDevice for OneQueue {
        fn device_id(&self) -> u32 {
            2
        }
        fn device_features(&self) -> u64 {
            0
        }
        fn queue_count(&self) -> usize {
            1
        }
        fn config_byte(&self, _offset: u64) -> Option<u8> {
            None
        }
    }

    const RAM: u64 = 0x4000_0000;

    fn w(transport: &MmioTransport, offset: u64, value: u32) -> Event {
        transport
            .write(offset, AccessSize::Word, value, &OneQueue)
            .unwrap()
    }

    /// Negotiates VERSION_1 (if `features_ok`) and sets up queue 0 of 8
    /// at the start of RAM.
    fn set_up(transport: &MmioTransport, features_ok: bool) {
        w(transport, reg::STATUS, 0);
        w(transport, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(transport, reg::DRIVER_FEATURES_SEL, 1);
        w(transport, reg::DRIVER_FEATURES, 1);
        if features_ok {
            w(transport, reg::STATUS, status::FEATURES_OK);
        }
        w(transport, reg::QUEUE_NUM, 8);
        w(transport, reg::QUEUE_DESC_LOW, RAM as u32);
        w(transport, reg::QUEUE_DRIVER_LOW, RAM as u32 + 0x1000);
        w(transport, reg::QUEUE_DEVICE_LOW, RAM as u32 + 0x2000);
        w(transport, reg::QUEUE_READY, 1);
        assert_eq!(
            transport.read(reg::QUEUE_READY, AccessSize::Word, &OneQueue),
            Ok(1)
        );
    }

    #[test]
    fn driver_ok_holds_only_after_features_ok() {
        let ram = crate::test_support::FakeRam::new(RAM, 0x1_0000);
        let gic = crate::virtual_gic::VirtualGic::new();
        let transport = MmioTransport::new(&ram, gic.line(48));
        // Negotiation skipped: DRIVER_OK does not hold, the device is not
        // live and a notification is ignored.
        set_up(&transport, false);
        assert_eq!(w(&transport, reg::STATUS, status::DRIVER_OK), Event::None);
        assert_eq!(
            transport.status(),
            status::ACKNOWLEDGE | status::DRIVER,
            "DRIVER_OK without FEATURES_OK"
        );
        assert!(!transport.live());
        assert_eq!(w(&transport, reg::QUEUE_NOTIFY, 0), Event::None);
        // Refused features and DRIVER_OK in one write: neither holds.
        w(&transport, reg::STATUS, 0);
        w(&transport, reg::DRIVER_FEATURES_SEL, 0);
        w(&transport, reg::DRIVER_FEATURES, 1 << 28);
        w(
            &transport,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        );
        assert_eq!(transport.status(), status::ACKNOWLEDGE | status::DRIVER);
        // Negotiated: DRIVER_OK holds and queue 0 is notified.
        set_up(&transport, true);
        w(&transport, reg::STATUS, status::DRIVER_OK);
        assert!(transport.live());
        assert_eq!(w(&transport, reg::QUEUE_NOTIFY, 0), Event::Notify(0));
    }

    #[test]
    fn a_notification_names_a_queue_with_its_whole_value() {
        let ram = crate::test_support::FakeRam::new(RAM, 0x1_0000);
        let gic = crate::virtual_gic::VirtualGic::new();
        let transport = MmioTransport::new(&ram, gic.line(48));
        set_up(&transport, true);
        w(&transport, reg::STATUS, status::DRIVER_OK);
        for absent in [1, 0xffff, 0x1_0000, 0xffff_0000, u32::MAX] {
            assert_eq!(
                w(&transport, reg::QUEUE_NOTIFY, absent),
                Event::None,
                "{absent:#x}"
            );
        }
        assert_eq!(w(&transport, reg::QUEUE_NOTIFY, 0), Event::Notify(0));
    }

    #[test]
    fn halves_of_64_bit_registers() {
        assert_eq!(
            set_half(0x1111_2222_3333_4444, false, 0xaaaa_bbbb),
            0x1111_2222_aaaa_bbbb
        );
        assert_eq!(
            set_half(0x1111_2222_3333_4444, true, 0xaaaa_bbbb),
            0xaaaa_bbbb_3333_4444
        );
    }
}
