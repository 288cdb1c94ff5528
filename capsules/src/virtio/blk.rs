// SPDX-License-Identifier: MIT OR Apache-2.0
//! A virtio-blk device on the virtio-mmio transport, over a block HIL
//! device.
//!
//! The guest sees a virtio 1.x block device (device id 2) with one
//! request queue at one of the guest platform's virtio-mmio slots
//! (`hyp::guest_platform::VIRTIO_MMIO`); its sectors are those of a
//! [`BlockDevice`] the board gives it (a RAM or image disk,
//! [`super::ram_disk`], or a slice of the board's own storage).
//!
//! | feature | offered |
//! |---|---|
//! | VIRTIO_F_VERSION_1 (32) | always (the transport's) |
//! | VIRTIO_BLK_F_SEG_MAX (2) | always: a request has at most 126 data buffers (the queue holds 128 descriptors) |
//! | VIRTIO_BLK_F_RO (5) | when the disk is read-only |
//! | VIRTIO_BLK_F_FLUSH (9) | when the disk is writable |
//!
//! Configuration space: `capacity` (u64 at 0x00, in 512-byte sectors),
//! `size_max` (u32 at 0x08, not offered: 0), `seg_max` (u32 at 0x0c);
//! the rest of `virtio_blk_config` (up to 0x3c) reads as zero.
//!
//! | request type | what |
//! |---|---|
//! | VIRTIO_BLK_T_IN (0) | reads whole sectors from `sector` into the data buffers |
//! | VIRTIO_BLK_T_OUT (1) | writes them (IOERR on a read-only disk) |
//! | VIRTIO_BLK_T_FLUSH (4) | completes once the disk made every completed write durable (at once on a read-only disk) |
//! | VIRTIO_BLK_T_GET_ID (8) | the disk's id string, up to 20 bytes, zero-padded |
//! | others | VIRTIO_BLK_S_UNSUPP |
//!
//! A request whose data is not a whole number of sectors, is empty, is
//! larger than [`MAX_REQUEST_BYTES`] or reaches past the disk completes
//! with VIRTIO_BLK_S_IOERR, as does one the disk fails; a chain too short
//! for its header gets IOERR too; a chain without a writable byte for the
//! status is returned with nothing written. A malformed queue (see
//! [`super::queue`]) puts the device in DEVICE_NEEDS_RESET.
//!
//! Requests are processed one at a time, in the order the driver made
//! them available, each as one or more split-phase requests of the disk
//! through a bounce buffer the board gives ([`VirtioBlk::new`]): the
//! buffer is cut once into pieces of halving sizes (32 KiB, 16 KiB, ...,
//! 512 bytes, 512 bytes for 64 KiB), and each step takes the largest piece
//! that the rest of the request fills, so the disk always gets a buffer of
//! exactly the length it is to move (the HIL's buffers travel whole and
//! come back whole). A step completes when the disk calls back (from its
//! interrupt, or from its `poll`, which the device calls after starting a
//! step and which the board may call again); the request completes to
//! the guest (status byte, used ring, interrupt) after its last step. A
//! reset of the device (or of the VM) while the disk holds a step drops
//! the request: the step's buffer comes back, its data is not copied to
//! the guest, and nothing is written to the guest's ring.

use super::mmio::{Event, MmioTransport, VirtioDevice};
use super::queue::{Chain, QueueError, MAX_QUEUE_SIZE};
use crate::virtual_gic::InterruptLine;
use core::cell::Cell;
use hyp::dispatch::{MmioDevice, MmioError, NotResettable};
use hyp::guest_platform::GuestDevice;
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError, SECTOR_BYTES};
use hyp::hil::guest_ram::GuestRam;
use hyp::trap::AccessSize;

/// The virtio device id of a block device.
pub const DEVICE_ID: u32 = 2;
/// Feature: `seg_max` is valid.
pub const F_SEG_MAX: u64 = 1 << 2;
/// Feature: the disk is read-only.
pub const F_RO: u64 = 1 << 5;
/// Feature: the device takes flush requests.
pub const F_FLUSH: u64 = 1 << 9;
/// Request: read.
pub const T_IN: u32 = 0;
/// Request: write.
pub const T_OUT: u32 = 1;
/// Request: flush.
pub const T_FLUSH: u32 = 4;
/// Request: the device's id string.
pub const T_GET_ID: u32 = 8;
/// Status: done.
pub const S_OK: u8 = 0;
/// Status: failed.
pub const S_IOERR: u8 = 1;
/// Status: request type not supported.
pub const S_UNSUPP: u8 = 2;
/// The longest id string.
pub const ID_BYTES: usize = 20;
/// The most data one request may move (larger ones fail with IOERR). A
/// Linux guest sends at most 1.25 MiB, but U-Boot reads each contiguous
/// run of a file in one request, as large as the run (its virtio-blk
/// driver ignores `size_max`): a 5.4 MB zImage on an ext4 disk is one
/// request. The request moves through the bounce buffer a piece at a
/// time whatever its size; the bound only keeps a request within what a
/// boot loader loads.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// The most pieces a bounce buffer is cut into.
pub const MAX_PIECES: usize = 16;
/// The request header: type, reserved, sector.
const HEADER_BYTES: u64 = 16;
/// `virtio_blk_config`'s size (up to and including the fields a driver
/// may read without the features that define them).
const CONFIG_BYTES: u64 = 0x3c;
/// The one request queue.
const REQUEST_QUEUE: usize = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    In,
    Out,
    Flush,
}

/// The request being served: its chain (the device's copy) and progress.
#[derive(Clone, Copy, Debug)]
struct Request {
    chain: Chain,
    kind: Kind,
    sector: u64,
    /// Data bytes to move.
    total: u64,
    /// Data bytes moved.
    done: u64,
    /// A flush was started.
    flushing: bool,
}

/// A step the disk holds: which piece of the bounce buffer (none for a
/// flush) and the device's epoch when it started.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    piece: Option<usize>,
    epoch: u32,
}

/// A step's completion, as the disk reported it.
struct Completion {
    buffer: Option<&'static mut [u8]>,
    result: Result<(), BlockError>,
}

/// A virtio-blk device at one virtio-mmio slot of one VM.
pub struct VirtioBlk<'a> {
    row: GuestDevice,
    transport: MmioTransport<'a>,
    disk: &'a dyn BlockDevice<'a>,
    id: [u8; ID_BYTES],
    pieces: [Cell<Option<&'static mut [u8]>>; MAX_PIECES],
    request: Cell<Option<Request>>,
    in_flight: Cell<Option<InFlight>>,
    completed: Cell<Option<Completion>>,
    /// Counts resets: a step started in an older epoch is dropped.
    epoch: Cell<u32>,
    /// `run` is on the stack (a completion from inside it only records).
    running: Cell<bool>,
}

impl core::fmt::Debug for VirtioBlk<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioBlk")
            .field("slot", &self.row.name)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Cuts `buffer` into pieces of halving sizes, each a whole number of
/// sectors: the largest first, and the last two of one sector each.
fn cut(buffer: &'static mut [u8]) -> [Cell<Option<&'static mut [u8]>>; MAX_PIECES] {
    let pieces: [Cell<Option<&'static mut [u8]>>; MAX_PIECES] = Default::default();
    let usable = buffer.len() / SECTOR_BYTES * SECTOR_BYTES;
    let mut rest: &'static mut [u8] = &mut buffer[..usable];
    for piece in &pieces {
        if rest.len() < SECTOR_BYTES {
            break;
        }
        let sectors = rest.len() / SECTOR_BYTES;
        // The largest power of two that leaves at least a sector, so every
        // smaller size remains; the last sector on its own.
        let take = if sectors == 1 {
            1
        } else {
            1 << (usize::BITS - 1 - (sectors - 1).leading_zeros())
        };
        let (this, tail) = rest.split_at_mut(take * SECTOR_BYTES);
        piece.set(Some(this));
        rest = tail;
    }
    pieces
}

impl<'a> VirtioBlk<'a> {
    /// A device in its reset state at `row` (a virtio-mmio slot of the
    /// guest platform), over the VM's `ram`, raising `line`, serving
    /// `disk` (whose client the board sets to this device) through
    /// `bounce` (a whole number of sectors is used; at least one), and
    /// answering GET_ID with `id` (up to 20 bytes).
    pub fn new(
        row: GuestDevice,
        ram: &'a dyn GuestRam,
        line: InterruptLine<'a>,
        disk: &'a dyn BlockDevice<'a>,
        bounce: &'static mut [u8],
        id: &str,
    ) -> VirtioBlk<'a> {
        let mut id_bytes = [0; ID_BYTES];
        let len = id.len().min(ID_BYTES);
        id_bytes[..len].copy_from_slice(&id.as_bytes()[..len]);
        VirtioBlk {
            row,
            transport: MmioTransport::new(ram, line),
            disk,
            id: id_bytes,
            pieces: cut(bounce),
            request: Cell::new(None),
            in_flight: Cell::new(None),
            completed: Cell::new(None),
            epoch: Cell::new(0),
            running: Cell::new(false),
        }
    }

    /// The transport (for tests and reports: status, interrupt status).
    pub fn transport(&self) -> &MmioTransport<'a> {
        &self.transport
    }

    /// Moves a request on whose step the disk completes without an
    /// interrupt: the board calls this when it polls its disks.
    pub fn poll(&self) {
        if self.in_flight.get().is_some() && !self.running.get() {
            self.disk.poll();
        }
        self.run();
    }

    /// Whether a request is being served or a step is with the disk.
    pub fn busy(&self) -> bool {
        self.in_flight.get().is_some() || self.has_request()
    }

    fn has_request(&self) -> bool {
        let request = self.request.take();
        let has = request.is_some();
        self.request.set(request);
        has
    }

    /// Drops the request being served (a reset): a step the disk holds
    /// is dropped when it completes.
    fn drop_request(&self) {
        self.request.set(None);
        self.epoch.set(self.epoch.get().wrapping_add(1));
    }

    /// Serves requests until the disk holds a step or the queue is empty.
    fn run(&self) {
        if self.running.replace(true) {
            return;
        }
        // Bounded work per call: a guest adding requests from another
        // vCPU as fast as they complete notifies again, and is served
        // then.
        let mut budget = 2 * usize::from(MAX_QUEUE_SIZE);
        loop {
            if let Some(completion) = self.completed.take() {
                self.complete(completion);
                continue;
            }
            if self.in_flight.get().is_some() {
                break;
            }
            if !self.transport.live() {
                if self.has_request() {
                    self.drop_request();
                }
                break;
            }
            if let Some(request) = self.request.take() {
                self.step(request);
                continue;
            }
            if budget == 0 {
                break;
            }
            budget -= 1;
            let mut chain = Chain::default();
            match self.transport.pop(REQUEST_QUEUE, &mut chain) {
                Ok(true) => self.start(chain),
                Ok(false) | Err(_) => break,
            }
        }
        self.running.set(false);
    }

    /// Reads a new request's header and either finishes it at once or
    /// makes it the request being served.
    fn start(&self, chain: Chain) {
        let ram = self.transport.ram();
        let readable = Chain::total(chain.readable());
        let writable = Chain::total(chain.writable());
        if writable == 0 {
            // No byte for the status: return the chain, nothing written.
            let _ = self.transport.push_used(REQUEST_QUEUE, chain.head, 0);
            return;
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        if readable < HEADER_BYTES || chain.read(ram, 0, &mut header).is_err() {
            return self.finish(&chain, 0, S_IOERR);
        }
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut sector_bytes = [0; 8];
        sector_bytes.copy_from_slice(&header[8..]);
        let sector = u64::from_le_bytes(sector_bytes);
        let (kind, total) = match kind {
            T_IN => (Kind::In, writable - 1),
            T_OUT if self.disk.read_only() => return self.finish(&chain, 0, S_IOERR),
            T_OUT => (Kind::Out, readable - HEADER_BYTES),
            T_FLUSH if self.disk.read_only() => return self.finish(&chain, 0, S_OK),
            T_FLUSH => (Kind::Flush, 0),
            T_GET_ID => {
                let len = (writable - 1).min(ID_BYTES as u64) as usize;
                if chain.write(ram, 0, &self.id[..len]).is_err() {
                    return self.finish(&chain, 0, S_IOERR);
                }
                return self.finish(&chain, len as u32, S_OK);
            }
            _ => return self.finish(&chain, 0, S_UNSUPP),
        };
        if kind != Kind::Flush
            && (total > MAX_REQUEST_BYTES
                || check_range(sector, total as usize, self.disk.sectors()).is_err())
        {
            return self.finish(&chain, 0, S_IOERR);
        }
        self.request.set(Some(Request {
            chain,
            kind,
            sector,
            total,
            done: 0,
            flushing: false,
        }));
    }

    /// Writes the status byte after `written` bytes of data and returns
    /// the chain to the driver.
    fn finish(&self, chain: &Chain, written: u32, status: u8) {
        let status_at = Chain::total(chain.writable()) - 1;
        if let Err(error) = chain.write(self.transport.ram(), status_at, &[status]) {
            return self.transport.fail(error);
        }
        let _ = self
            .transport
            .push_used(REQUEST_QUEUE, chain.head, written.saturating_add(1));
    }

    /// The largest free piece of the bounce buffer no longer than `bytes`.
    fn piece_for(&self, bytes: u64) -> Option<(usize, &'static mut [u8])> {
        let mut best: Option<(usize, usize)> = None;
        for (index, cell) in self.pieces.iter().enumerate() {
            let piece = cell.take();
            if let Some(buffer) = &piece {
                let len = buffer.len();
                if len as u64 <= bytes && best.is_none_or(|(_, best_len)| len > best_len) {
                    best = Some((index, len));
                }
            }
            cell.set(piece);
        }
        let (index, _) = best?;
        self.pieces[index].take().map(|buffer| (index, buffer))
    }

    /// Starts the request's next step with the disk, or finishes it.
    fn step(&self, mut request: Request) {
        let ram = self.transport.ram();
        let epoch = self.epoch.get();
        if request.kind == Kind::Flush {
            if request.flushing {
                // `complete` finishes a flush the disk held; one that is
                // not held any more is not coming back.
                return self.finish(&request.chain, 0, S_IOERR);
            }
            return match self.disk.flush() {
                Ok(()) => {
                    request.flushing = true;
                    self.request.set(Some(request));
                    self.in_flight.set(Some(InFlight { piece: None, epoch }));
                    self.disk.poll();
                }
                Err(_) => self.finish(&request.chain, 0, S_IOERR),
            };
        }
        let left = request.total - request.done;
        if left == 0 {
            let written = if request.kind == Kind::In {
                request.total as u32
            } else {
                0
            };
            return self.finish(&request.chain, written, S_OK);
        }
        let Some((index, buffer)) = self.piece_for(left) else {
            // Every request is whole sectors and the smallest piece is
            // one: only a bounce buffer of less than a sector gets here.
            return self.finish(&request.chain, 0, S_IOERR);
        };
        let sector = request.sector + request.done / SECTOR_BYTES as u64;
        let started = match request.kind {
            Kind::In => self.disk.read(sector, buffer),
            _ => {
                if let Err(error) = request.chain.read(ram, HEADER_BYTES + request.done, buffer) {
                    self.pieces[index].set(Some(buffer));
                    return self.transport.fail(error);
                }
                self.disk.write(sector, buffer)
            }
        };
        match started {
            Ok(()) => {
                self.request.set(Some(request));
                self.in_flight.set(Some(InFlight {
                    piece: Some(index),
                    epoch,
                }));
                self.disk.poll();
            }
            Err((_, buffer)) => {
                self.pieces[index].set(Some(buffer));
                self.finish(&request.chain, 0, S_IOERR);
            }
        }
    }

    /// A step completed: its piece goes back; its data goes to the guest
    /// unless the request was dropped meanwhile.
    fn complete(&self, completion: Completion) {
        let Some(in_flight) = self.in_flight.take() else {
            // A completion nobody asked for: keep a buffer, if it is one
            // of ours, where it fits.
            return self.return_buffer(None, completion.buffer);
        };
        let len = completion.buffer.as_ref().map_or(0, |buffer| buffer.len());
        let mut copy_error: Option<QueueError> = None;
        let current = in_flight.epoch == self.epoch.get();
        let request = if current { self.request.take() } else { None };
        if let (Some(request), Some(buffer)) = (&request, &completion.buffer) {
            if request.kind == Kind::In && completion.result.is_ok() {
                copy_error = request
                    .chain
                    .write(self.transport.ram(), request.done, buffer)
                    .err();
            }
        }
        self.return_buffer(in_flight.piece, completion.buffer);
        let Some(mut request) = request else {
            return;
        };
        if let Some(error) = copy_error {
            return self.transport.fail(error);
        }
        match (completion.result, request.kind) {
            (Err(_), _) => self.finish(&request.chain, 0, S_IOERR),
            (Ok(()), Kind::Flush) => self.finish(&request.chain, 0, S_OK),
            (Ok(()), _) => {
                request.done += len as u64;
                self.request.set(Some(request));
            }
        }
    }

    fn return_buffer(&self, piece: Option<usize>, buffer: Option<&'static mut [u8]>) {
        let Some(buffer) = buffer else { return };
        let slot = piece
            .and_then(|index| self.pieces.get(index))
            .or_else(|| self.pieces.iter().find(|cell| is_empty(cell)));
        if let Some(slot) = slot {
            slot.set(Some(buffer));
        }
    }
}

fn is_empty(cell: &Cell<Option<&'static mut [u8]>>) -> bool {
    let value = cell.take();
    let empty = value.is_none();
    cell.set(value);
    empty
}

impl VirtioDevice for VirtioBlk<'_> {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn device_features(&self) -> u64 {
        F_SEG_MAX | if self.disk.read_only() { F_RO } else { F_FLUSH }
    }

    fn queue_count(&self) -> usize {
        1
    }

    fn config_byte(&self, offset: u64) -> Option<u8> {
        let seg_max = u64::from(MAX_QUEUE_SIZE) - 2;
        match offset {
            0..8 => Some((self.disk.sectors() >> (8 * offset)) as u8),
            0x0c..0x10 => Some((seg_max >> (8 * (offset - 0x0c))) as u8),
            _ if offset < CONFIG_BYTES => Some(0),
            _ => None,
        }
    }
}

impl BlockClient for VirtioBlk<'_> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.completed.set(Some(Completion {
            buffer: Some(buffer),
            result,
        }));
        self.run();
    }

    fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.read_done(buffer, result);
    }

    fn flush_done(&self, result: Result<(), BlockError>) {
        self.completed.set(Some(Completion {
            buffer: None,
            result,
        }));
        self.run();
    }
}

impl MmioDevice for VirtioBlk<'_> {
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
        self.transport.read(offset, size, self)
    }

    fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
        match self.transport.write(offset, size, value, self)? {
            Event::Notify(_) => self.run(),
            Event::Reset => self.drop_request(),
            Event::None => {}
        }
        Ok(())
    }

    fn changes_interrupts(&self, _offset: u64, write: bool) -> bool {
        write
    }

    fn reset(&self) -> Result<(), NotResettable> {
        self.transport.reset();
        self.drop_request();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::test_support::{leak_buffer, FakeRam, ManualDisk};
    use crate::virtio::mmio::{reg, status, F_VERSION_1, INT_CONFIG, INT_USED_BUFFER, MAGIC};
    use crate::virtio::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
    use crate::virtio::ram_disk::RamDisk;
    use crate::virtual_gic::VirtualGic;
    use hyp::guest_platform::VIRTIO_MMIO;
    use std::vec::Vec;

    const RAM: u64 = 0x4000_0000;
    const RAM_SIZE: usize = 0x10_0000;
    const DESC: u64 = RAM + 0x1000;
    const AVAIL: u64 = RAM + 0x2000;
    const USED: u64 = RAM + 0x3000;
    const HEADER: u64 = RAM + 0x8000;
    const STATUS: u64 = RAM + 0x8100;
    const DATA: u64 = RAM + 0x1_0000;
    const QUEUE: u32 = 8;
    const ROW: GuestDevice = VIRTIO_MMIO[0];

    fn id() -> u32 {
        ROW.interrupt.unwrap()
    }

    fn r(blk: &VirtioBlk, offset: u64) -> u32 {
        blk.read(offset, AccessSize::Word).unwrap()
    }

    fn w(blk: &VirtioBlk, offset: u64, value: u32) {
        blk.write(offset, AccessSize::Word, value).unwrap();
    }

    /// Sets up the queue with `size` at the test's areas and makes it
    /// ready.
    fn setup_queue(blk: &VirtioBlk, size: u32) {
        w(blk, reg::QUEUE_SEL, 0);
        w(blk, reg::QUEUE_NUM, size);
        w(blk, reg::QUEUE_DESC_LOW, DESC as u32);
        w(blk, reg::QUEUE_DESC_HIGH, 0);
        w(blk, reg::QUEUE_DRIVER_LOW, AVAIL as u32);
        w(blk, reg::QUEUE_DRIVER_HIGH, 0);
        w(blk, reg::QUEUE_DEVICE_LOW, USED as u32);
        w(blk, reg::QUEUE_DEVICE_HIGH, 0);
        w(blk, reg::QUEUE_READY, 1);
    }

    /// What a driver does to bring the device up, accepting `features`.
    fn bring_up(blk: &VirtioBlk, features: u64) {
        w(blk, reg::STATUS, 0);
        w(blk, reg::STATUS, status::ACKNOWLEDGE);
        w(blk, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(blk, reg::DRIVER_FEATURES_SEL, 0);
        w(blk, reg::DRIVER_FEATURES, features as u32);
        w(blk, reg::DRIVER_FEATURES_SEL, 1);
        w(blk, reg::DRIVER_FEATURES, (features >> 32) as u32);
        let ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        w(blk, reg::STATUS, ok);
        assert_eq!(r(blk, reg::STATUS), ok, "features accepted");
        setup_queue(blk, QUEUE);
        assert_eq!(r(blk, reg::QUEUE_READY), 1);
        w(blk, reg::STATUS, ok | status::DRIVER_OK);
    }

    fn descriptor(ram: &FakeRam, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        ram.poke(DESC + 16 * u64::from(index), &raw);
    }

    /// Makes `head` available and notifies queue 0.
    fn offer(ram: &FakeRam, blk: &VirtioBlk, head: u16) {
        let index = u16::from_le_bytes(ram.peek(AVAIL + 2, 2).try_into().unwrap());
        let slot = u64::from(index % QUEUE as u16);
        ram.poke(AVAIL + 4 + 2 * slot, &head.to_le_bytes());
        ram.poke(AVAIL + 2, &index.wrapping_add(1).to_le_bytes());
        w(blk, reg::QUEUE_NOTIFY, 0);
    }

    /// The used ring's index and its entries so far.
    fn used(ram: &FakeRam) -> (u16, Vec<(u32, u32)>) {
        let index = u16::from_le_bytes(ram.peek(USED + 2, 2).try_into().unwrap());
        let entries = (0..index.min(QUEUE as u16))
            .map(|n| {
                let raw = ram.peek(USED + 4 + 8 * u64::from(n), 8);
                (
                    u32::from_le_bytes(raw[..4].try_into().unwrap()),
                    u32::from_le_bytes(raw[4..].try_into().unwrap()),
                )
            })
            .collect();
        (index, entries)
    }

    /// Writes a request (header, `len` data bytes at DATA, status) as
    /// descriptors 0-2 and offers it.
    fn request(ram: &FakeRam, blk: &VirtioBlk, kind: u32, sector: u64, len: u32) {
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        ram.poke(HEADER, &header);
        ram.poke(STATUS, &[0xff]);
        let data_flags = if kind == T_OUT { 0 } else { DESC_F_WRITE };
        descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, 1);
        if len == 0 {
            descriptor(ram, 1, STATUS, 1, DESC_F_WRITE, 0);
        } else {
            descriptor(ram, 1, DATA, len, data_flags | DESC_F_NEXT, 2);
            descriptor(ram, 2, STATUS, 1, DESC_F_WRITE, 0);
        }
        offer(ram, blk, 0);
    }

    fn status_byte(ram: &FakeRam) -> u8 {
        ram.peek(STATUS, 1)[0]
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|n| (n * 7 + n / 512) as u8).collect()
    }

    fn needs_reset(blk: &VirtioBlk) -> bool {
        r(blk, reg::STATUS) & status::DEVICE_NEEDS_RESET != 0
    }

    #[test]
    fn identification_features_and_configuration() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = RamDisk::writable(leak_buffer(64 * 512));
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(4096), "disk0");
        disk.set_client(&blk);
        assert_eq!(
            [reg::MAGIC, reg::VERSION, reg::DEVICE_ID, reg::VENDOR_ID].map(|o| r(&blk, o)),
            [MAGIC, 2, 2, 0x5650_4143]
        );
        w(&blk, reg::DEVICE_FEATURES_SEL, 0);
        assert_eq!(
            u64::from(r(&blk, reg::DEVICE_FEATURES)),
            F_SEG_MAX | F_FLUSH
        );
        w(&blk, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(u64::from(r(&blk, reg::DEVICE_FEATURES)) << 32, F_VERSION_1);
        w(&blk, reg::DEVICE_FEATURES_SEL, 2);
        assert_eq!(r(&blk, reg::DEVICE_FEATURES), 0);
        // Capacity (64 sectors) and seg_max, any access size.
        assert_eq!(r(&blk, reg::CONFIG), 64);
        assert_eq!(r(&blk, reg::CONFIG + 4), 0);
        assert_eq!(blk.read(reg::CONFIG, AccessSize::Byte), Ok(64));
        assert_eq!(blk.read(reg::CONFIG, AccessSize::Halfword), Ok(64));
        assert_eq!(r(&blk, reg::CONFIG + 0x0c), 126);
        assert_eq!(r(&blk, reg::CONFIG + 0x38), 0);
        assert_eq!(
            blk.read(reg::CONFIG + 0x3c, AccessSize::Word),
            Err(MmioError::NoRegister)
        );
        assert_eq!(
            blk.read(reg::CONFIG + 1, AccessSize::Halfword),
            Err(MmioError::BadSize)
        );
        assert_eq!(
            blk.read(reg::STATUS, AccessSize::Byte),
            Err(MmioError::BadSize)
        );
        assert_eq!(r(&blk, reg::CONFIG_GENERATION), 0);
        assert_eq!(r(&blk, reg::QUEUE_NUM_MAX), 128);
        w(&blk, reg::QUEUE_SEL, 1);
        assert_eq!(r(&blk, reg::QUEUE_NUM_MAX), 0, "one queue");
        assert_eq!(
            (blk.name(), blk.base(), blk.size()),
            ("virtio-mmio0", 0x0a00_0000, 0x200)
        );

        // A read-only disk: RO, no FLUSH.
        static IMAGE: [u8; 1024] = [0; 1024];
        let ro = RamDisk::read_only(&IMAGE);
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &ro, leak_buffer(512), "ro");
        w(&blk, reg::DEVICE_FEATURES_SEL, 0);
        assert_eq!(u64::from(r(&blk, reg::DEVICE_FEATURES)), F_SEG_MAX | F_RO);
    }

    #[test]
    fn feature_negotiation_needs_version_1_and_a_subset() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = RamDisk::writable(leak_buffer(8 * 512));
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(512), "d");
        disk.set_client(&blk);
        let base = status::ACKNOWLEDGE | status::DRIVER;
        // No VERSION_1 (a legacy driver): FEATURES_OK does not stick.
        w(&blk, reg::STATUS, base);
        w(&blk, reg::DRIVER_FEATURES_SEL, 0);
        w(&blk, reg::DRIVER_FEATURES, F_FLUSH as u32);
        w(&blk, reg::STATUS, base | status::FEATURES_OK);
        assert_eq!(r(&blk, reg::STATUS), base);
        // A feature the device does not offer (RO on a writable disk).
        w(&blk, reg::STATUS, 0);
        w(&blk, reg::STATUS, base);
        w(&blk, reg::DRIVER_FEATURES_SEL, 1);
        w(&blk, reg::DRIVER_FEATURES, 1);
        w(&blk, reg::DRIVER_FEATURES_SEL, 0);
        w(&blk, reg::DRIVER_FEATURES, F_RO as u32);
        w(&blk, reg::STATUS, base | status::FEATURES_OK);
        assert_eq!(r(&blk, reg::STATUS), base);
        // A subset with VERSION_1: accepted, and then fixed.
        w(&blk, reg::DRIVER_FEATURES, F_FLUSH as u32);
        w(&blk, reg::STATUS, base | status::FEATURES_OK);
        assert_eq!(r(&blk, reg::STATUS), base | status::FEATURES_OK);
        assert!(blk.transport().negotiated(F_FLUSH));
        w(&blk, reg::DRIVER_FEATURES, 0);
        assert!(
            blk.transport().negotiated(F_FLUSH),
            "features fixed after FEATURES_OK"
        );
        // The driver cannot set DEVICE_NEEDS_RESET; 0 resets everything.
        w(&blk, reg::STATUS, status::DEVICE_NEEDS_RESET);
        assert!(!needs_reset(&blk));
        w(&blk, reg::STATUS, 0);
        assert_eq!(r(&blk, reg::STATUS), 0);
        assert!(!blk.transport().negotiated(F_FLUSH));
    }

    #[test]
    fn reads_writes_flush_and_get_id_through_the_queue() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let image = leak_buffer(64 * 512);
        image.copy_from_slice(&pattern(64 * 512));
        let disk = RamDisk::writable(image);
        // 4 KiB of bounce buffer: a 12 KiB request takes several steps.
        let blk = VirtioBlk::new(
            ROW,
            &ram,
            gic.line(id()),
            &disk,
            leak_buffer(4096),
            "capvisor-disk0",
        );
        disk.set_client(&blk);
        let line = gic.line(id());
        bring_up(&blk, F_VERSION_1 | F_FLUSH);

        // Read 24 sectors from sector 3.
        request(&ram, &blk, T_IN, 3, 24 * 512);
        assert_eq!(status_byte(&ram), S_OK);
        assert_eq!(
            ram.peek(DATA, 24 * 512),
            pattern(64 * 512)[3 * 512..27 * 512]
        );
        assert_eq!(used(&ram), (1, std::vec![(0, 24 * 512 + 1)]));
        assert!(line.is_high());
        assert_eq!(r(&blk, reg::INTERRUPT_STATUS), INT_USED_BUFFER);
        w(&blk, reg::INTERRUPT_ACK, INT_USED_BUFFER);
        assert!(!line.is_high());

        // Write 9 sectors at 50, then read them back.
        let data: Vec<u8> = (0..9 * 512).map(|n| (n % 251) as u8).collect();
        ram.poke(DATA, &data);
        request(&ram, &blk, T_OUT, 50, 9 * 512);
        assert_eq!(status_byte(&ram), S_OK);
        assert_eq!(used(&ram).1[1], (0, 1));
        ram.poke(DATA, &[0; 9 * 512]);
        request(&ram, &blk, T_IN, 50, 9 * 512);
        assert_eq!(ram.peek(DATA, 9 * 512), data);

        request(&ram, &blk, T_FLUSH, 0, 0);
        assert_eq!(status_byte(&ram), S_OK);

        request(&ram, &blk, T_GET_ID, 0, 20);
        assert_eq!(status_byte(&ram), S_OK);
        assert_eq!(&ram.peek(DATA, 20), b"capvisor-disk0\0\0\0\0\0\0");
        assert_eq!(used(&ram).1[4], (0, 21));

        // Unknown types, bad lengths and ranges: the device answers.
        request(&ram, &blk, 99, 0, 512);
        assert_eq!(status_byte(&ram), S_UNSUPP);
        request(&ram, &blk, T_IN, 63, 1024);
        assert_eq!(status_byte(&ram), S_IOERR, "past the end of the disk");
        request(&ram, &blk, T_IN, 0, 100);
        assert_eq!(status_byte(&ram), S_IOERR, "not whole sectors");
        request(&ram, &blk, T_IN, u64::MAX, 512);
        assert_eq!(status_byte(&ram), S_IOERR, "a sector that wraps");
        assert_eq!(used(&ram).0, 9);
        assert!(!needs_reset(&blk));
    }

    #[test]
    fn a_read_only_disk_refuses_writes_and_keeps_its_data() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let image: &'static [u8] = leak_buffer(16 * 512);
        let disk = RamDisk::read_only(image);
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(4096), "ro");
        disk.set_client(&blk);
        bring_up(&blk, F_VERSION_1 | F_RO);
        ram.poke(DATA, &[0xaa; 512]);
        request(&ram, &blk, T_OUT, 0, 512);
        assert_eq!(status_byte(&ram), S_IOERR);
        request(&ram, &blk, T_IN, 0, 512);
        assert_eq!(status_byte(&ram), S_OK);
        assert_eq!(ram.peek(DATA, 512), [0; 512], "unchanged");
        request(&ram, &blk, T_FLUSH, 0, 0);
        assert_eq!(status_byte(&ram), S_OK, "nothing to flush");
    }

    /// A device with a queue, its line watched, for the malformed cases.
    fn malformed_case(build: impl FnOnce(&FakeRam), size: u32) -> (bool, bool, u16) {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = RamDisk::writable(leak_buffer(64 * 512));
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(4096), "m");
        disk.set_client(&blk);
        bring_up(&blk, F_VERSION_1);
        if size != QUEUE {
            // Re-set the queue with this size (after a reset).
            w(&blk, reg::STATUS, 0);
            w(&blk, reg::STATUS, 1 | 2);
            w(&blk, reg::DRIVER_FEATURES_SEL, 1);
            w(&blk, reg::DRIVER_FEATURES, 1);
            w(&blk, reg::STATUS, 1 | 2 | 8);
            setup_queue(&blk, size);
            w(&blk, reg::STATUS, 1 | 2 | 8 | 4);
        }
        build(&ram);
        let ready = r(&blk, reg::QUEUE_READY) == 1;
        if ready {
            let index = u16::from_le_bytes(ram.peek(AVAIL + 2, 2).try_into().unwrap());
            if index == 0 {
                offer(&ram, &blk, 0);
            } else {
                w(&blk, reg::QUEUE_NOTIFY, 0);
            }
        }
        let failed = needs_reset(&blk);
        let interrupted =
            gic.line(id()).is_high() && r(&blk, reg::INTERRUPT_STATUS) & INT_CONFIG != 0;
        assert_eq!(
            failed, interrupted,
            "DEVICE_NEEDS_RESET comes with its interrupt"
        );
        if failed {
            // The VM carries on: a reset and a fresh setup work again.
            let used_before = used(&ram).0;
            ram.poke(AVAIL + 2, &[0, 0]);
            ram.poke(USED + 2, &[0, 0]);
            bring_up(&blk, F_VERSION_1);
            assert!(!needs_reset(&blk));
            assert!(!gic.line(id()).is_high());
            request(&ram, &blk, T_IN, 0, 512);
            assert_eq!((status_byte(&ram), used(&ram).0), (S_OK, 1));
            return (failed, ready, used_before);
        }
        (failed, ready, used(&ram).0)
    }

    fn chain_to(ram: &FakeRam, addr: u64, len: u32) {
        descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, 1);
        descriptor(ram, 1, addr, len, DESC_F_WRITE | DESC_F_NEXT, 2);
        descriptor(ram, 2, STATUS, 1, DESC_F_WRITE, 0);
        ram.poke(HEADER, &[0; 16]);
    }

    #[test]
    fn descriptors_outside_ram_fail_the_device_and_write_nothing() {
        // Below RAM (the hypervisor's or another VM's memory, as the
        // guest would name it).
        assert_eq!(
            malformed_case(|ram| chain_to(ram, 0x1000, 512), QUEUE),
            (true, true, 0)
        );
        // Into a device window (the GIC distributor).
        assert_eq!(
            malformed_case(|ram| chain_to(ram, 0x0800_0000, 512), QUEUE),
            (true, true, 0)
        );
        // Starting inside RAM, ending past it.
        let last = RAM + RAM_SIZE as u64 - 256;
        assert_eq!(
            malformed_case(|ram| chain_to(ram, last, 512), QUEUE),
            (true, true, 0)
        );
        // A length that wraps the address space.
        assert_eq!(
            malformed_case(|ram| chain_to(ram, u64::MAX - 255, 512), QUEUE),
            (true, true, 0)
        );
        // A huge length from inside RAM.
        assert_eq!(
            malformed_case(|ram| chain_to(ram, DATA, u32::MAX), QUEUE),
            (true, true, 0)
        );
    }

    #[test]
    fn chains_that_loop_or_break_the_rules_fail_the_device() {
        // 0 -> 1 -> 0 -> ...
        let looped = |ram: &FakeRam| {
            descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, 1);
            descriptor(ram, 1, DATA, 512, DESC_F_NEXT, 0);
        };
        assert_eq!(malformed_case(looped, QUEUE), (true, true, 0));
        // A descriptor that points at itself.
        let own = |ram: &FakeRam| descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, 0);
        assert_eq!(malformed_case(own, QUEUE), (true, true, 0));
        // `next` past the queue.
        let past = |ram: &FakeRam| descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, QUEUE as u16);
        assert_eq!(malformed_case(past, QUEUE), (true, true, 0));
        // An indirect descriptor (not offered).
        let indirect = |ram: &FakeRam| descriptor(ram, 0, DATA, 16, DESC_F_INDIRECT, 0);
        assert_eq!(malformed_case(indirect, QUEUE), (true, true, 0));
        // Readable after writable.
        let order = |ram: &FakeRam| {
            descriptor(ram, 0, STATUS, 1, DESC_F_WRITE | DESC_F_NEXT, 1);
            descriptor(ram, 1, HEADER, 16, 0, 0);
        };
        assert_eq!(malformed_case(order, QUEUE), (true, true, 0));
        // A head index past the queue.
        let head = |ram: &FakeRam| {
            ram.poke(AVAIL + 4, &(QUEUE as u16 + 3).to_le_bytes());
            ram.poke(AVAIL + 2, &1u16.to_le_bytes());
        };
        assert_eq!(malformed_case(head, QUEUE), (true, true, 0));
        // An available index more than a queue ahead.
        let ahead = |ram: &FakeRam| ram.poke(AVAIL + 2, &(QUEUE as u16 + 1).to_le_bytes());
        assert_eq!(malformed_case(ahead, QUEUE), (true, true, 0));
    }

    #[test]
    fn queue_sizes_and_areas_are_checked_when_the_queue_goes_ready() {
        for size in [0, 3, 6, 100, 256, u32::MAX] {
            assert_eq!(
                malformed_case(|_| {}, size),
                (true, false, 0),
                "size {size}"
            );
        }
        // Sizes 1 and 2 hold a request of one and two descriptors.
        let one = |ram: &FakeRam| descriptor(ram, 0, HEADER, 16, 0, 0);
        assert_eq!(malformed_case(one, 1), (false, true, 1));
        let two = |ram: &FakeRam| {
            descriptor(ram, 0, HEADER, 16, DESC_F_NEXT, 1);
            descriptor(ram, 1, STATUS, 1, DESC_F_WRITE, 0);
            ram.poke(HEADER, &[0; 16]);
        };
        assert_eq!(malformed_case(two, 2), (false, true, 1));
        assert_eq!(
            malformed_case(|ram| chain_to(ram, DATA, 512), 128),
            (false, true, 1)
        );
        // Areas outside RAM or misaligned.
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = RamDisk::writable(leak_buffer(8 * 512));
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(512), "a");
        disk.set_client(&blk);
        for (register, value) in [
            (reg::QUEUE_DESC_LOW, 0x1000),
            (reg::QUEUE_DESC_LOW, DESC as u32 + 8),
            (reg::QUEUE_DRIVER_LOW, (RAM + RAM_SIZE as u64 - 4) as u32),
            (reg::QUEUE_DEVICE_LOW, USED as u32 + 2),
            (reg::QUEUE_DEVICE_HIGH, 1),
        ] {
            bring_up(&blk, F_VERSION_1);
            w(&blk, reg::STATUS, 0);
            w(&blk, reg::STATUS, 1 | 2);
            w(&blk, reg::DRIVER_FEATURES_SEL, 1);
            w(&blk, reg::DRIVER_FEATURES, 1);
            w(&blk, reg::STATUS, 1 | 2 | 8);
            w(&blk, reg::QUEUE_NUM, QUEUE);
            w(&blk, reg::QUEUE_DESC_LOW, DESC as u32);
            w(&blk, reg::QUEUE_DRIVER_LOW, AVAIL as u32);
            w(&blk, reg::QUEUE_DEVICE_LOW, USED as u32);
            w(&blk, register, value);
            w(&blk, reg::QUEUE_READY, 1);
            assert_eq!(r(&blk, reg::QUEUE_READY), 0, "{register:#x} = {value:#x}");
            assert!(needs_reset(&blk));
        }
    }

    #[test]
    fn notifications_for_absent_or_idle_queues_are_ignored() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = ManualDisk::new(8);
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(512), "n");
        disk.set_client(&blk);
        // Before any setup, then for queues the device does not have.
        w(&blk, reg::QUEUE_NOTIFY, 0);
        bring_up(&blk, F_VERSION_1);
        for queue in [1, 2, 0xffff, 0xffff_ffff] {
            w(&blk, reg::QUEUE_NOTIFY, queue);
        }
        // Queue 0 with nothing available.
        w(&blk, reg::QUEUE_NOTIFY, 0);
        assert_eq!(disk.started.get(), 0);
        assert!(!needs_reset(&blk));
        assert!(!gic.line(id()).is_high());
        // Queue registers of a queue that does not exist: ignored.
        w(&blk, reg::QUEUE_SEL, 1);
        w(&blk, reg::QUEUE_NUM, 8);
        w(&blk, reg::QUEUE_READY, 1);
        assert_eq!((r(&blk, reg::QUEUE_NUM), r(&blk, reg::QUEUE_READY)), (0, 0));
    }

    #[test]
    fn a_reset_mid_request_drops_it_and_the_disk_gives_the_buffer_back() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = ManualDisk::new(64);
        disk.bytes.borrow_mut()[..4096].copy_from_slice(&pattern(4096));
        // Pieces of 1 KiB and 512 bytes.
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(1536), "r");
        disk.set_client(&blk);
        bring_up(&blk, F_VERSION_1 | F_FLUSH);
        // A 2 KiB read: two steps of 1 KiB, the first held by the disk.
        request(&ram, &blk, T_IN, 0, 2048);
        assert_eq!(disk.started.get(), 1);
        assert!(blk.busy());
        assert!(disk.complete(None));
        assert_eq!(
            disk.started.get(),
            2,
            "the next step started from the completion"
        );
        assert_eq!(ram.peek(DATA, 1024), pattern(1024), "the first step's data");
        // Reset while the disk holds the second step.
        w(&blk, reg::STATUS, 0);
        ram.poke(DATA + 1024, &[0x55; 1024]);
        assert!(disk.complete(None));
        assert_eq!(
            ram.peek(DATA + 1024, 1024),
            [0x55; 1024],
            "nothing copied after the reset"
        );
        assert_eq!(used(&ram).0, 0, "nothing returned");
        assert_eq!(status_byte(&ram), 0xff);
        assert!(!blk.busy());
        // The driver starts again; the bounce buffer is whole: a 1 KiB
        // read is one step.
        ram.poke(AVAIL + 2, &[0, 0]);
        bring_up(&blk, F_VERSION_1 | F_FLUSH);
        request(&ram, &blk, T_IN, 2, 1024);
        assert_eq!(disk.started.get(), 3);
        assert!(disk.complete(None));
        assert_eq!((status_byte(&ram), used(&ram).0), (S_OK, 1));
        assert_eq!(ram.peek(DATA, 1024), pattern(4096)[1024..2048]);
        // A flush waits for the disk; a disk error is IOERR.
        request(&ram, &blk, T_FLUSH, 0, 0);
        assert_eq!(status_byte(&ram), 0xff);
        assert!(disk.complete(None));
        assert_eq!(status_byte(&ram), S_OK);
        request(&ram, &blk, T_OUT, 0, 512);
        assert!(disk.complete(Some(BlockError::Device)));
        assert_eq!(status_byte(&ram), S_IOERR);
        // A VM restart mid-request, too.
        request(&ram, &blk, T_IN, 0, 512);
        blk.reset().unwrap();
        assert!(disk.complete(None));
        assert_eq!(used(&ram).0, 3, "the dropped request is not returned");
        assert_eq!(r(&blk, reg::STATUS), 0);
    }

    #[test]
    fn the_bounce_buffer_is_cut_into_halving_pieces() {
        let sizes = |bytes: usize| -> Vec<usize> {
            cut(leak_buffer(bytes))
                .iter()
                .filter_map(|cell| cell.take().map(|piece| piece.len()))
                .collect()
        };
        assert_eq!(
            sizes(64 * 1024),
            [32768, 16384, 8192, 4096, 2048, 1024, 512, 512]
        );
        assert_eq!(sizes(512), [512]);
        assert_eq!(sizes(1536), [1024, 512]);
        assert_eq!(sizes(1000), [512], "whole sectors only");
        assert_eq!(sizes(100), Vec::<usize>::new());
    }

    #[test]
    fn a_chain_without_room_for_the_status_comes_back_empty() {
        let ram = FakeRam::new(RAM, RAM_SIZE);
        let gic = VirtualGic::new();
        let disk = RamDisk::writable(leak_buffer(8 * 512));
        let blk = VirtioBlk::new(ROW, &ram, gic.line(id()), &disk, leak_buffer(512), "s");
        disk.set_client(&blk);
        bring_up(&blk, F_VERSION_1);
        descriptor(&ram, 0, HEADER, 16, 0, 0);
        offer(&ram, &blk, 0);
        assert_eq!(used(&ram), (1, std::vec![(0, 0)]));
        // A header too short: IOERR.
        descriptor(&ram, 0, HEADER, 8, DESC_F_NEXT, 1);
        descriptor(&ram, 1, STATUS, 1, DESC_F_WRITE, 0);
        offer(&ram, &blk, 0);
        assert_eq!(status_byte(&ram), S_IOERR);
        assert!(!needs_reset(&blk));
    }

    #[test]
    fn a_board_disk_slice_serves_requests_in_turn_and_survives_a_reset_mid_request() {
        use crate::virtio::board_slice::{BoardDisk, BoardDiskMux, SliceSpec};
        use hyp::kernel::{NoKick, OneCpu};
        let ram: &'static FakeRam =
            std::boxed::Box::leak(std::boxed::Box::new(FakeRam::new(RAM, RAM_SIZE)));
        let gic: &'static VirtualGic =
            std::boxed::Box::leak(std::boxed::Box::new(VirtualGic::new()));
        let disk: &'static ManualDisk<'static> =
            std::boxed::Box::leak(std::boxed::Box::new(ManualDisk::new(64)));
        disk.bytes.borrow_mut()[16 * 512..20 * 512].copy_from_slice(&pattern(2048));
        let specs = [
            SliceSpec {
                first: 16,
                sectors: 16,
                read_only: false,
                cpu: 0,
            },
            SliceSpec {
                first: 32,
                sectors: 16,
                read_only: false,
                cpu: 0,
            },
        ];
        let mux: &'static BoardDiskMux<'static> =
            std::boxed::Box::leak(std::boxed::Box::new(BoardDiskMux::new(disk, &specs)));
        disk.set_client(mux);
        let shared: &'static BoardDisk<'static, OneCpu> = std::boxed::Box::leak(
            std::boxed::Box::new(BoardDisk::new(OneCpu::new().guard(mux), &specs, &NoKick)),
        );
        let slice = std::boxed::Box::leak(std::boxed::Box::new(shared.slice(0).unwrap()));
        let other = std::boxed::Box::leak(std::boxed::Box::new(shared.slice(1).unwrap()));
        let blk: &'static VirtioBlk<'static> = std::boxed::Box::leak(std::boxed::Box::new(
            VirtioBlk::new(ROW, ram, gic.line(id()), slice, leak_buffer(2048), "s"),
        ));
        slice.set_client(blk);
        /// The other slice's client: takes its completions.
        struct Taker;
        impl BlockClient for Taker {
            fn read_done(&self, _: &'static mut [u8], _: Result<(), BlockError>) {}
            fn write_done(&self, _: &'static mut [u8], _: Result<(), BlockError>) {}
            fn flush_done(&self, _: Result<(), BlockError>) {}
        }
        other.set_client(&Taker);
        bring_up(blk, F_VERSION_1 | F_FLUSH);
        assert_eq!(r(blk, 0x100), 16, "capacity: the slice's sectors");
        // The other slice holds the board disk: the guest's read waits.
        other.write(0, leak_buffer(512)).unwrap();
        request(ram, blk, T_IN, 0, 1024);
        assert_eq!(disk.started.get(), 1);
        assert!(disk.complete(None));
        // The board's service starts the read and, once the disk completed
        // it, the VM's poll completes it to the guest.
        shared.service();
        assert_eq!(disk.started.get(), 2);
        assert!(disk.complete(None));
        shared.service();
        assert_eq!(status_byte(ram), 0xff, "not before the VM's poll");
        blk.poll();
        assert_eq!((status_byte(ram), used(ram).0), (S_OK, 1));
        assert_eq!(ram.peek(DATA, 1024), pattern(1024));
        // A reset while the read waits in the multiplexer, then while the
        // board disk holds it: nothing reaches the guest, the bounce
        // buffer comes back whole.
        other.poll();
        other.write(0, leak_buffer(512)).unwrap();
        request(ram, blk, T_IN, 2, 1024);
        ram.poke(DATA, &[0x55; 1024]);
        blk.reset().unwrap();
        assert!(disk.complete(None));
        shared.service();
        other.poll();
        assert_eq!(disk.started.get(), 4, "the dropped read still ran");
        assert!(disk.complete(None));
        shared.service();
        blk.poll();
        assert_eq!(ram.peek(DATA, 1024), [0x55; 1024]);
        assert_eq!(used(ram).0, 1, "the dropped request is not returned");
        assert!(!blk.busy());
        ram.poke(AVAIL + 2, &[0, 0]);
        ram.poke(USED + 2, &[0, 0]);
        bring_up(blk, F_VERSION_1 | F_FLUSH);
        request(ram, blk, T_IN, 2, 1024);
        assert!(disk.complete(None));
        shared.service();
        blk.poll();
        assert_eq!((status_byte(ram), used(ram).0), (S_OK, 1));
        assert_eq!(ram.peek(DATA, 1024), pattern(2048)[1024..]);
        // A flush reaches the board disk and completes with it.
        request(ram, blk, T_FLUSH, 0, 0);
        assert!(matches!(
            *disk.held.borrow(),
            Some(crate::test_support::Held::Flush)
        ));
        assert_eq!(status_byte(ram), 0xff);
        assert!(disk.complete(None));
        shared.service();
        blk.poll();
        assert_eq!(status_byte(ram), S_OK);
    }
}
