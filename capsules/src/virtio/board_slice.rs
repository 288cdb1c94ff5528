// SPDX-License-Identifier: MIT OR Apache-2.0
//! Slices of the board disk: one disk shared by several VMs' virtual disks.
//!
//! The board has one disk (`hyp::hil::block::BlockDevice`, one request at a
//! time); the system description gives VMs static slices of it (a first
//! sector, a size, read-only or not; `[[vm.disk]] board = ...`). Each slice
//! is itself a [`BlockDevice`] ([`BoardSlice`]), which a VM's virtio-blk
//! device ([`super::blk::VirtioBlk`]) uses as its disk: its sector 0 is the
//! slice's first sector, requests past its end are refused with
//! [`BlockError::OutOfRange`] and writes and flushes of a read-only one
//! with [`BlockError::ReadOnly`], before the board disk sees them.
//!
//! Three objects, because the slices belong to VMs that run on different
//! CPUs while the disk is one:
//!
//! - [`BoardDiskMux`], the multiplexer: the board disk's client, each
//!   slice's waiting request and its completion. A plain single-threaded
//!   object (`Cell`s), reached only through the board disk's lock.
//! - [`BoardDisk`], what every CPU shares: the multiplexer behind its lock
//!   (a [`Guarded`] on the lock the board chooses: a spin lock when VMs on
//!   several CPUs share the disk), each slice's *mail* flag (an atomic: a
//!   completion waits for it) and the way to kick the CPU a slice's VM
//!   polls it on. [`BoardDisk::service`] moves the board disk on (its
//!   interrupt, or a poll), starts the next waiting request and posts
//!   completions: mail flag set, the slice's CPU kicked.
//! - [`BoardSlice`], one VM's view, kept under that VM's lock like its
//!   other devices: it submits its requests to the multiplexer and
//!   delivers its completions to its client (the VM's virtio-blk device)
//!   from [`BlockDevice::poll`], on the VM's CPU, outside the board disk's
//!   lock.
//!
//! The lock order is a VM's lock, then the board disk's: a slice takes the
//! board disk's lock inside its VM's; the board's interrupt service takes
//! only the board disk's; the multiplexer never calls a slice's client
//! (it only records), so no code holds the board disk's lock and then asks
//! for a VM's.
//!
//! Scheduling: the board disk holds one request; when it finishes one,
//! the next is the first waiting request of the slices after the one just
//! served, in slice order, round robin: a slice waits for at most one
//! request of each other slice, so none starves another. A request is
//! whatever its client asked for at once (virtio-blk: a step of at most
//! half its bounce buffer, 4 KiB to 32 KiB), so one VM's long transfer
//! and another's alternate step by step. A flush of a slice is a flush of
//! the board disk, completed when the board disk completed it.
//!
//! ```
//! use capsules::virtio::board_slice::{BoardDisk, BoardDiskMux, SliceSpec};
//! use capsules::virtio::ram_disk::RamDisk;
//! use hyp::hil::block::BlockDevice;
//! use hyp::kernel::{NoKick, OneCpu};
//! let bytes: &'static mut [u8] = Box::leak(vec![0u8; 64 * 512].into_boxed_slice());
//! let disk: &'static RamDisk<'static> = Box::leak(Box::new(RamDisk::writable(bytes)));
//! let specs = [SliceSpec { first: 16, sectors: 16, read_only: false, cpu: 0 }];
//! let mux: &'static BoardDiskMux<'static> = Box::leak(Box::new(BoardDiskMux::new(disk, &specs)));
//! disk.set_client(mux);
//! let shared: &'static BoardDisk<'static, OneCpu> =
//!     Box::leak(Box::new(BoardDisk::new(OneCpu::new().guard(mux), &specs, &NoKick)));
//! let slice = shared.slice(0).unwrap();
//! assert_eq!((slice.sectors(), slice.read_only()), (16, false));
//! ```

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError};
use hyp::kernel::{CpuKick, Guarded, VmLock};

/// The most slices one board disk is cut into: every VM's every disk.
pub const MAX_SLICES: usize = hyp::config::MAX_VMS * hyp::config::MAX_DISKS;

// A slice's mail flag is a bit of one word.
const _: () = assert!(MAX_SLICES <= 32);

/// One slice, as the board's description gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceSpec {
    /// Its first sector on the board disk.
    pub first: u64,
    /// Its size in sectors.
    pub sectors: u64,
    /// Whether it refuses writes and flushes.
    pub read_only: bool,
    /// The CPU its VM polls it on (the CPU of the VM's vCPU 0), kicked
    /// when a completion waits.
    pub cpu: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

/// A request of a slice, in the slice's sectors.
struct Request {
    kind: Kind,
    sector: u64,
    buffer: Option<&'static mut [u8]>,
}

/// A completed request, waiting for its slice to take it.
struct Done {
    kind: Kind,
    buffer: Option<&'static mut [u8]>,
    result: Result<(), BlockError>,
}

/// One slice's state in the multiplexer.
#[derive(Default)]
struct SliceState {
    /// Its request, not yet started on the board disk.
    waiting: Cell<Option<Request>>,
    /// Its completed request, not yet taken.
    done: Cell<Option<Done>>,
}

impl SliceState {
    fn has_waiting(&self) -> bool {
        let waiting = self.waiting.take();
        let has = waiting.is_some();
        self.waiting.set(waiting);
        has
    }

    fn has_done(&self) -> bool {
        let done = self.done.take();
        let has = done.is_some();
        self.done.set(done);
        has
    }
}

/// The multiplexer: the board disk's client and every slice's requests
/// (see the module documentation). Reached only through its lock.
pub struct BoardDiskMux<'a> {
    disk: &'a dyn BlockDevice<'a>,
    specs: [Option<SliceSpec>; MAX_SLICES],
    slices: [SliceState; MAX_SLICES],
    /// The slice whose request the board disk holds.
    current: Cell<Option<usize>>,
    /// The slice served last (round robin starts after it).
    last: Cell<usize>,
    /// Slices whose requests completed since the last `progress`.
    new_mail: Cell<u32>,
}

impl core::fmt::Debug for BoardDiskMux<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardDiskMux")
            .field("slices", &self.specs.iter().flatten().count())
            .field("current", &self.current.get())
            .finish()
    }
}

impl<'a> BoardDiskMux<'a> {
    /// A multiplexer of `disk` among `specs` (at most [`MAX_SLICES`];
    /// more are left out). The board makes it the disk's client.
    pub fn new(disk: &'a dyn BlockDevice<'a>, specs: &[SliceSpec]) -> BoardDiskMux<'a> {
        let mut table = [None; MAX_SLICES];
        for (slot, spec) in table.iter_mut().zip(specs) {
            *slot = Some(*spec);
        }
        BoardDiskMux {
            disk,
            specs: table,
            slices: Default::default(),
            current: Cell::new(None),
            last: Cell::new(MAX_SLICES - 1),
            new_mail: Cell::new(0),
        }
    }

    /// Takes slice `index`'s request, checked against the slice; starts
    /// it if the board disk is free. Returns the slices with new mail.
    fn submit(
        &self,
        index: usize,
        kind: Kind,
        sector: u64,
        buffer: Option<&'static mut [u8]>,
    ) -> Result<u32, (BlockError, Option<&'static mut [u8]>)> {
        let Some(spec) = self.specs.get(index).copied().flatten() else {
            return Err((BlockError::Device, buffer));
        };
        let state = &self.slices[index];
        if state.has_waiting() || state.has_done() || self.current.get() == Some(index) {
            return Err((BlockError::Busy, buffer));
        }
        if spec.read_only && kind != Kind::Read {
            return Err((BlockError::ReadOnly, buffer));
        }
        if let Some(data) = &buffer {
            if let Err(error) = check_range(sector, data.len(), spec.sectors) {
                return Err((error, buffer));
            }
        }
        state.waiting.set(Some(Request {
            kind,
            sector,
            buffer,
        }));
        Ok(self.progress())
    }

    /// Moves the board disk on (its completion is recorded by the client
    /// calls), starts the next waiting request if it is free, and returns
    /// the slices with new mail.
    fn progress(&self) -> u32 {
        if self.current.get().is_some() {
            self.disk.poll();
        }
        self.start_next();
        self.new_mail.replace(0)
    }

    /// Starts the first waiting request after the slice served last, if
    /// the board disk is free; a request the disk refuses completes at
    /// once with its error, and the next is tried.
    fn start_next(&self) {
        let count = MAX_SLICES;
        let mut tries = count;
        while self.current.get().is_none() && tries > 0 {
            let Some(index) = (1..=count)
                .map(|step| (self.last.get() + step) % count)
                .find(|&index| self.slices[index].has_waiting())
            else {
                return;
            };
            tries -= 1;
            self.last.set(index);
            let Some(request) = self.slices[index].waiting.take() else {
                continue;
            };
            let Some(spec) = self.specs[index] else {
                continue;
            };
            let sector = spec.first + request.sector;
            // Set first: a disk may complete from inside the call.
            self.current.set(Some(index));
            let refused = match (request.kind, request.buffer) {
                (Kind::Read, Some(buffer)) => self.disk.read(sector, buffer).err(),
                (Kind::Write, Some(buffer)) => self.disk.write(sector, buffer).err(),
                (_, buffer) => self
                    .disk
                    .flush()
                    .err()
                    .map(|error| (error, buffer.unwrap_or_default())),
            };
            if let Some((error, buffer)) = refused {
                self.current.set(None);
                let buffer = (request.kind != Kind::Flush).then_some(buffer);
                self.post(index, request.kind, buffer, Err(error));
            }
        }
    }

    /// Records slice `index`'s completion.
    fn post(
        &self,
        index: usize,
        kind: Kind,
        buffer: Option<&'static mut [u8]>,
        result: Result<(), BlockError>,
    ) {
        self.slices[index].done.set(Some(Done {
            kind,
            buffer,
            result,
        }));
        self.new_mail.set(self.new_mail.get() | 1 << index);
    }

    /// The board disk completed the current request.
    fn completed(
        &self,
        kind: Kind,
        buffer: Option<&'static mut [u8]>,
        result: Result<(), BlockError>,
    ) {
        // A completion nobody asked for has nowhere to go (its buffer is
        // not one of a slice's: dropped).
        if let Some(index) = self.current.take() {
            self.post(index, kind, buffer, result);
        }
    }

    /// Whether the board disk holds a request.
    pub fn holds_request(&self) -> bool {
        self.current.get().is_some()
    }

    /// Whether slice `index` has a request waiting, with the board disk,
    /// or completed and not yet taken.
    fn slice_busy(&self, index: usize) -> bool {
        let state = &self.slices[index];
        self.current.get() == Some(index) || state.has_waiting() || state.has_done()
    }
}

impl BlockClient for BoardDiskMux<'_> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.completed(Kind::Read, Some(buffer), result);
    }

    fn write_done(&self, buffer: &'static mut [u8], result: Result<(), BlockError>) {
        self.completed(Kind::Write, Some(buffer), result);
    }

    fn flush_done(&self, result: Result<(), BlockError>) {
        self.completed(Kind::Flush, None, result);
    }
}

/// The board disk as every CPU shares it (see the module documentation).
pub struct BoardDisk<'a, L> {
    mux: Guarded<&'a BoardDiskMux<'a>, L>,
    specs: [Option<SliceSpec>; MAX_SLICES],
    /// Bit n: slice n has a completion waiting.
    mail: AtomicU32,
    kicker: &'a dyn CpuKick,
}

impl<L> core::fmt::Debug for BoardDisk<'_, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardDisk")
            .field("mail", &self.mail.load(Ordering::Relaxed))
            .finish()
    }
}

impl<'a, L: VmLock> BoardDisk<'a, L> {
    /// The multiplexer `mux` (made with the same `specs`) behind its lock,
    /// kicking slices' CPUs with `kicker`.
    pub fn new(
        mux: Guarded<&'a BoardDiskMux<'a>, L>,
        specs: &[SliceSpec],
        kicker: &'a dyn CpuKick,
    ) -> BoardDisk<'a, L> {
        let mut table = [None; MAX_SLICES];
        for (slot, spec) in table.iter_mut().zip(specs) {
            *slot = Some(*spec);
        }
        BoardDisk {
            mux,
            specs: table,
            mail: AtomicU32::new(0),
            kicker,
        }
    }

    /// Slice `index`'s view, for its VM's virtual disk (the board makes
    /// one per slice, and keeps it under the VM's lock).
    pub fn slice(&'a self, index: usize) -> Option<BoardSlice<'a, L>> {
        let spec = self.specs.get(index).copied().flatten()?;
        Some(BoardSlice {
            disk: self,
            index,
            spec,
            client: Cell::new(None),
        })
    }

    /// Moves the board disk on (the board calls this from the disk's
    /// interrupt, and while a polled disk holds a request), starts the
    /// next waiting request, and posts completions: each slice's mail
    /// flag set and its CPU kicked. Returns whether the board disk still
    /// holds a request.
    pub fn service(&self) -> bool {
        let (mail, holds) = self.mux.with(|mux| (mux.progress(), mux.holds_request()));
        self.post(mail);
        holds
    }

    /// Whether slice `index` has a completion waiting for its VM.
    pub fn has_mail(&self, index: usize) -> bool {
        index < MAX_SLICES && self.mail.load(Ordering::Acquire) & (1 << index) != 0
    }

    /// Sets the mail flags of `mail` and kicks their slices' CPUs.
    fn post(&self, mail: u32) {
        if mail == 0 {
            return;
        }
        self.mail.fetch_or(mail, Ordering::AcqRel);
        for (index, spec) in self.specs.iter().enumerate() {
            if let Some(spec) = spec {
                if mail & (1 << index) != 0 {
                    self.kicker.kick(spec.cpu);
                }
            }
        }
    }
}

/// One slice of the board disk, as its VM's virtual disk sees it (see the
/// module documentation): kept under the VM's lock.
pub struct BoardSlice<'a, L> {
    disk: &'a BoardDisk<'a, L>,
    index: usize,
    spec: SliceSpec,
    client: Cell<Option<&'a dyn BlockClient>>,
}

impl<L> core::fmt::Debug for BoardSlice<'_, L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoardSlice")
            .field("index", &self.index)
            .field("spec", &self.spec)
            .finish()
    }
}

impl<'a, L: VmLock> BoardSlice<'a, L> {
    /// Its index among the board disk's slices.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Where it lies and who polls it.
    pub fn spec(&self) -> SliceSpec {
        self.spec
    }

    fn submit(
        &self,
        kind: Kind,
        sector: u64,
        buffer: Option<&'static mut [u8]>,
    ) -> Result<(), (BlockError, Option<&'static mut [u8]>)> {
        let mail = self
            .disk
            .mux
            .with(|mux| mux.submit(self.index, kind, sector, buffer))?;
        self.disk.post(mail);
        Ok(())
    }

    /// Gives its client the completion waiting for it, if any (outside
    /// the board disk's lock).
    fn deliver(&self) {
        let Some(client) = self.client.get() else {
            // Nobody to tell yet: the completion waits.
            return;
        };
        if !self.disk.has_mail(self.index) {
            return;
        }
        self.disk
            .mail
            .fetch_and(!(1 << self.index), Ordering::AcqRel);
        let Some(done) = self.disk.mux.with(|mux| mux.slices[self.index].done.take()) else {
            return;
        };
        match (done.kind, done.buffer) {
            (Kind::Read, Some(buffer)) => client.read_done(buffer, done.result),
            (Kind::Write, Some(buffer)) => client.write_done(buffer, done.result),
            _ => client.flush_done(done.result),
        }
    }
}

impl<'a, L: VmLock> BlockDevice<'a> for BoardSlice<'a, L> {
    fn set_client(&self, client: &'a dyn BlockClient) {
        self.client.set(Some(client));
    }

    fn sectors(&self) -> u64 {
        self.spec.sectors
    }

    fn read_only(&self) -> bool {
        self.spec.read_only
    }

    fn read(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.submit(Kind::Read, sector, Some(buffer))
            .map_err(|(error, buffer)| (error, buffer.unwrap_or_default()))
    }

    fn write(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.submit(Kind::Write, sector, Some(buffer))
            .map_err(|(error, buffer)| (error, buffer.unwrap_or_default()))
    }

    fn flush(&self) -> Result<(), BlockError> {
        self.submit(Kind::Flush, 0, None)
            .map_err(|(error, _)| error)
    }

    /// Moves the board disk on, then delivers this slice's completion if
    /// one waits; whether its request is still pending.
    fn poll(&self) -> bool {
        self.disk.service();
        self.deliver();
        self.disk.mux.with(|mux| mux.slice_busy(self.index))
    }
}

#[cfg(test)]
mod tests;
