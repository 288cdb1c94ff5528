// SPDX-License-Identifier: MIT OR Apache-2.0
//! Split virtqueues in the guest's RAM, read and written only through
//! [`GuestRam`], every index and range checked.
//!
//! A split virtqueue (virtio 1.x, section 2.7) is three areas the driver
//! places in its RAM and names by address: the descriptor table (16 bytes
//! per descriptor: address, length, flags, next), the driver area or
//! "available ring" (flags, index, then a ring of head indices) and the
//! device area or "used ring" (flags, index, then a ring of (head, length)
//! pairs). Nothing in them is trusted:
//!
//! - at setup ([`Virtqueue::check_setup`]) the size is a power of two no
//!   larger than the device's maximum, and each area is aligned as the
//!   specification requires and lies wholly inside the VM's RAM;
//! - the available index may run ahead of the device by at most the
//!   queue's size, and every head index is below the size;
//! - a chain ([`Virtqueue::pop`]) is walked into the device's own copy
//!   ([`Chain`]): at most `size` descriptors (more means a loop), each
//!   `next` below the size, no indirect descriptors (the feature is not
//!   offered), device-readable descriptors before device-writable ones,
//!   and each buffer wholly inside the VM's RAM (so never a device window,
//!   another VM's RAM or the hypervisor's memory, and never a length that
//!   wraps the address space; a buffer of length 0 too must start inside
//!   the RAM or at its end).
//!
//! Any failure is a [`QueueError`]: the transport then puts the device in
//! DEVICE_NEEDS_RESET; nothing is written to the guest for that chain.

use core::sync::atomic::{fence, Ordering};
use hyp::hil::guest_ram::GuestRam;

/// The largest queue a device offers (QueueNumMax), and so the longest
/// chain.
pub const MAX_QUEUE_SIZE: u16 = 128;

/// Descriptor flag: the buffer continues in `next`.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub const DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors (not offered).
pub const DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver asks for no used-buffer interrupts.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a queue cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A size that is zero, not a power of two, or above the maximum.
    BadSize(u32),
    /// An area not aligned as the specification requires.
    Misaligned(u64),
    /// An area or buffer not wholly inside the VM's RAM.
    OutsideRam { ipa: u64, len: u64 },
    /// The available index ran ahead by more than the queue holds.
    BadAvailIndex(u16),
    /// A head or `next` index not below the queue's size.
    BadIndex(u16),
    /// A chain longer than the queue (a loop).
    ChainTooLong,
    /// An indirect descriptor (the feature is not offered).
    Indirect,
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
}

/// One buffer of a chain: where it is in guest RAM and how long.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Its guest-physical address.
    pub ipa: u64,
    /// Its length in bytes.
    pub len: u32,
}

/// A descriptor chain as the device copied it: its head, then its
/// device-readable buffers, then its device-writable ones.
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    /// The head's index (what goes back in the used ring).
    pub head: u16,
    segments: [Segment; MAX_QUEUE_SIZE as usize],
    readable: u16,
    count: u16,
}

impl Default for Chain {
    fn default() -> Chain {
        Chain {
            head: 0,
            segments: [Segment::default(); MAX_QUEUE_SIZE as usize],
            readable: 0,
            count: 0,
        }
    }
}

impl Chain {
    /// The device-readable buffers, in order.
    pub fn readable(&self) -> &[Segment] {
        &self.segments[..usize::from(self.readable)]
    }

    /// The device-writable buffers, in order.
    pub fn writable(&self) -> &[Segment] {
        &self.segments[usize::from(self.readable)..usize::from(self.count)]
    }

    /// Total bytes of `segments`.
    pub fn total(segments: &[Segment]) -> u64 {
        segments.iter().map(|segment| u64::from(segment.len)).sum()
    }

    /// Copies bytes from the readable buffers, seen as one stream, from
    /// `offset` into `out`. Fails if the stream is too short or the RAM
    /// refuses (it was checked, so only a broken `GuestRam` would).
    pub fn read(&self, ram: &dyn GuestRam, offset: u64, out: &mut [u8]) -> Result<(), QueueError> {
        walk(self.readable(), offset, out.len(), |ipa, range| {
            ram.read(ipa, &mut out[range]).map_err(outside)
        })
    }

    /// Copies `data` into the writable buffers, seen as one stream, at
    /// `offset`.
    pub fn write(&self, ram: &dyn GuestRam, offset: u64, data: &[u8]) -> Result<(), QueueError> {
        walk(self.writable(), offset, data.len(), |ipa, range| {
            ram.write(ipa, &data[range]).map_err(outside)
        })
    }
}

fn outside(error: hyp::hil::guest_ram::GuestRamError) -> QueueError {
    QueueError::OutsideRam {
        ipa: error.ipa,
        len: error.len as u64,
    }
}

/// Calls `copy(ipa, range)` for each piece of `len` bytes at `offset` in
/// the stream `segments` make (`range` indexes the caller's buffer).
fn walk(
    segments: &[Segment],
    offset: u64,
    len: usize,
    mut copy: impl FnMut(u64, core::ops::Range<usize>) -> Result<(), QueueError>,
) -> Result<(), QueueError> {
    let mut skip = offset;
    let mut done = 0usize;
    for segment in segments {
        if done == len {
            break;
        }
        let seg_len = u64::from(segment.len);
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        let take = (seg_len - skip).min((len - done) as u64) as usize;
        copy(segment.ipa + skip, done..done + take)?;
        done += take;
        skip = 0;
    }
    if done == len {
        Ok(())
    } else {
        Err(QueueError::OutsideRam {
            ipa: offset,
            len: len as u64,
        })
    }
}

/// One queue's registers and the device's position in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Virtqueue {
    /// QueueNum: its size as the driver set it.
    pub size: u32,
    /// QueueReady.
    pub ready: bool,
    /// QueueDesc: the descriptor table.
    pub desc: u64,
    /// QueueDriver: the available ring.
    pub driver: u64,
    /// QueueDevice: the used ring.
    pub device: u64,
    /// The next available-ring entry the device takes.
    pub next_avail: u16,
    /// The used ring's index as the device last wrote it.
    pub next_used: u16,
}

/// Reads a little-endian `u16` at `ipa`.
fn read_u16(ram: &dyn GuestRam, ipa: u64) -> Result<u16, QueueError> {
    let mut bytes = [0; 2];
    ram.read(ipa, &mut bytes).map_err(outside)?;
    Ok(u16::from_le_bytes(bytes))
}

impl Virtqueue {
    /// Whether `len` bytes at `ipa` lie in RAM.
    fn check_area(ram: &dyn GuestRam, ipa: u64, len: u64, align: u64) -> Result<(), QueueError> {
        if !ipa.is_multiple_of(align) {
            return Err(QueueError::Misaligned(ipa));
        }
        match usize::try_from(len) {
            Ok(bytes) if ram.contains(ipa, bytes) => Ok(()),
            _ => Err(QueueError::OutsideRam { ipa, len }),
        }
    }

    /// Checks what the driver set up before the queue goes ready: the
    /// size and the three areas.
    pub fn check_setup(&self, ram: &dyn GuestRam) -> Result<(), QueueError> {
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size > u32::from(MAX_QUEUE_SIZE) {
            return Err(QueueError::BadSize(size));
        }
        let size = u64::from(size);
        Self::check_area(ram, self.desc, 16 * size, 16)?;
        // flags, idx, ring[size], used_event
        Self::check_area(ram, self.driver, 6 + 2 * size, 2)?;
        // flags, idx, ring[size] of (id, len), avail_event
        Self::check_area(ram, self.device, 6 + 8 * size, 4)
    }

    /// Takes the next chain the driver made available, if any, into the
    /// device's own copy.
    pub fn pop(&mut self, ram: &dyn GuestRam, chain: &mut Chain) -> Result<bool, QueueError> {
        let size = self.size as u16;
        let avail_index = read_u16(ram, self.driver + 2)?;
        let waiting = avail_index.wrapping_sub(self.next_avail);
        if waiting == 0 {
            return Ok(false);
        }
        if waiting > size {
            return Err(QueueError::BadAvailIndex(avail_index));
        }
        // The ring entry and descriptors are read after the index that
        // published them.
        fence(Ordering::Acquire);
        let slot = u64::from(self.next_avail % size);
        let head = read_u16(ram, self.driver + 4 + 2 * slot)?;
        self.walk(ram, head, chain)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(true)
    }

    /// Copies the chain starting at `head` into `chain`, checking it.
    fn walk(&self, ram: &dyn GuestRam, head: u16, chain: &mut Chain) -> Result<(), QueueError> {
        let size = self.size as u16;
        chain.head = head;
        chain.readable = 0;
        chain.count = 0;
        let mut index = head;
        loop {
            if index >= size {
                return Err(QueueError::BadIndex(index));
            }
            if chain.count >= size {
                return Err(QueueError::ChainTooLong);
            }
            let mut raw = [0u8; 16];
            ram.read(self.desc + 16 * u64::from(index), &mut raw)
                .map_err(outside)?;
            let ipa = u64::from_le_bytes([
                raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
            ]);
            let len = u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]);
            let flags = u16::from_le_bytes([raw[12], raw[13]]);
            let next = u16::from_le_bytes([raw[14], raw[15]]);
            if flags & DESC_F_INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            Self::check_area(ram, ipa, u64::from(len), 1)?;
            let writable = flags & DESC_F_WRITE != 0;
            if !writable && chain.readable != chain.count {
                return Err(QueueError::ReadableAfterWritable);
            }
            chain.segments[usize::from(chain.count)] = Segment { ipa, len };
            chain.count += 1;
            if !writable {
                chain.readable += 1;
            }
            if flags & DESC_F_NEXT == 0 {
                return Ok(());
            }
            index = next;
        }
    }

    /// Puts `head` in the used ring with `written` bytes, and returns
    /// whether the driver wants an interrupt for it.
    pub fn push_used(
        &mut self,
        ram: &dyn GuestRam,
        head: u16,
        written: u32,
    ) -> Result<bool, QueueError> {
        let size = self.size as u16;
        let slot = u64::from(self.next_used % size);
        let mut element = [0u8; 8];
        element[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        element[4..].copy_from_slice(&written.to_le_bytes());
        ram.write(self.device + 4 + 8 * slot, &element)
            .map_err(outside)?;
        self.next_used = self.next_used.wrapping_add(1);
        // The element is in place, for the guest's other CPUs too, before
        // the index that publishes it (a `dmb` on Arm).
        fence(Ordering::SeqCst);
        ram.write(self.device + 2, &self.next_used.to_le_bytes())
            .map_err(outside)?;
        fence(Ordering::SeqCst);
        let flags = read_u16(ram, self.driver)?;
        Ok(flags & AVAIL_F_NO_INTERRUPT == 0)
    }
}
