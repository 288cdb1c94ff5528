// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fakes shared by the capsules' unit tests (compiled for tests only).

extern crate std;

use core::cell::{Cell, RefCell};
use hyp::hil::block::{check_range, BlockClient, BlockDevice, BlockError, SECTOR_BYTES};
use hyp::hil::console::{ConsoleOutput, ConsoleReceive};
use hyp::hil::guest_ram::{GuestRam, GuestRamError};
use hyp::hil::interrupt::{Acknowledged, InterruptController};
use hyp::hil::time::Clock;
use std::collections::{BTreeSet, VecDeque};
use std::string::String;
use std::vec::Vec;

/// A console that records every byte written to it.
#[derive(Default)]
pub struct Recorder(pub RefCell<Vec<u8>>);

impl ConsoleOutput for Recorder {
    fn write(&self, bytes: &[u8]) {
        self.0.borrow_mut().extend_from_slice(bytes);
    }
}

impl Recorder {
    /// What was written since the last call, as text.
    pub fn take(&self) -> String {
        String::from_utf8(self.0.take()).unwrap()
    }
}

/// A clock the test moves by hand, at 1 MHz (one tick a microsecond) unless
/// made otherwise.
pub struct FakeClock {
    pub now: Cell<u64>,
    pub frequency: u32,
}

impl FakeClock {
    /// At 0, 1 MHz.
    pub fn new() -> FakeClock {
        FakeClock {
            now: Cell::new(0),
            frequency: 1_000_000,
        }
    }

    /// At 0, counting `frequency` ticks a second.
    pub fn with_frequency(frequency: u32) -> FakeClock {
        FakeClock {
            now: Cell::new(0),
            frequency,
        }
    }

    /// Moves the clock on by `us` microseconds.
    pub fn advance_us(&self, us: u64) {
        self.now.set(self.now.get() + self.ticks_from_us(us));
    }

    /// Moves the clock on by `ticks`.
    pub fn advance(&self, ticks: u64) {
        self.now.set(self.now.get() + ticks);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.now.get()
    }

    fn frequency(&self) -> u32 {
        self.frequency
    }
}

/// An interrupt controller that records which lines are enabled and
/// counts the enables and disables of each.
#[derive(Default)]
pub struct FakeController {
    pub enabled: RefCell<BTreeSet<u32>>,
    pub enables: Cell<usize>,
    pub disables: Cell<usize>,
}

impl FakeController {
    pub fn is_enabled(&self, line: u32) -> bool {
        self.enabled.borrow().contains(&line)
    }
}

impl InterruptController for FakeController {
    fn enable(&self, line: u32) {
        self.enables.set(self.enables.get() + 1);
        self.enabled.borrow_mut().insert(line);
    }

    fn disable(&self, line: u32) {
        self.disables.set(self.disables.get() + 1);
        self.enabled.borrow_mut().remove(&line);
    }

    fn acknowledge(&self) -> Option<Acknowledged> {
        None
    }
}

/// A UART's receive side: bytes the test "types", and its interrupt enable.
#[derive(Default)]
pub struct FakeReceiver {
    pub waiting: RefCell<VecDeque<u8>>,
    pub interrupts: Cell<bool>,
}

impl FakeReceiver {
    /// Bytes arrive.
    pub fn type_bytes(&self, bytes: &[u8]) {
        self.waiting.borrow_mut().extend(bytes.iter().copied());
    }

    /// How many bytes wait in it.
    pub fn waiting(&self) -> usize {
        self.waiting.borrow().len()
    }
}

impl ConsoleReceive for FakeReceiver {
    fn read_byte(&self) -> Option<u8> {
        self.waiting.borrow_mut().pop_front()
    }

    fn set_receive_interrupts(&self, enabled: bool) {
        self.interrupts.set(enabled);
    }
}

/// A [`Recorder`] behind a lock, for a console that must be `Sync` (the
/// console multiplexer's).
#[derive(Default)]
pub struct SyncRecorder(std::sync::Mutex<Recorder>);

impl ConsoleOutput for SyncRecorder {
    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap().write(bytes);
    }
}

impl SyncRecorder {
    /// What was written since the last call, as text.
    pub fn take(&self) -> String {
        self.0.lock().unwrap().take()
    }
}

/// A VM's RAM as a vector: `bytes.len()` bytes at guest-physical `base`.
pub struct FakeRam {
    pub base: u64,
    pub bytes: RefCell<Vec<u8>>,
}

impl FakeRam {
    /// `size` zeroed bytes at `base`.
    pub fn new(base: u64, size: usize) -> FakeRam {
        FakeRam {
            base,
            bytes: RefCell::new(std::vec![0; size]),
        }
    }

    /// The bytes at `ipa` (which must be inside).
    pub fn peek(&self, ipa: u64, len: usize) -> Vec<u8> {
        let start = (ipa - self.base) as usize;
        self.bytes.borrow()[start..start + len].to_vec()
    }

    /// Sets the bytes at `ipa` (which must be inside).
    pub fn poke(&self, ipa: u64, data: &[u8]) {
        let start = (ipa - self.base) as usize;
        self.bytes.borrow_mut()[start..start + data.len()].copy_from_slice(data);
    }
}

impl GuestRam for FakeRam {
    fn window(&self) -> (u64, u64) {
        (self.base, self.bytes.borrow().len() as u64)
    }

    fn read(&self, ipa: u64, out: &mut [u8]) -> Result<(), GuestRamError> {
        if !self.contains(ipa, out.len()) {
            return Err(GuestRamError {
                ipa,
                len: out.len(),
            });
        }
        out.copy_from_slice(&self.peek(ipa, out.len()));
        Ok(())
    }

    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError> {
        if !self.contains(ipa, data.len()) {
            return Err(GuestRamError {
                ipa,
                len: data.len(),
            });
        }
        self.poke(ipa, data);
        Ok(())
    }
}

/// What a [`ManualDisk`] holds until the test completes it.
pub enum Held {
    Read(u64, &'static mut [u8]),
    Write(u64, &'static mut [u8]),
    Flush,
}

/// A writable disk that completes a request only when the test says
/// ([`ManualDisk::complete`]), as a controller with an interrupt would:
/// its `poll` does nothing.
pub struct ManualDisk<'a> {
    pub bytes: RefCell<Vec<u8>>,
    pub client: Cell<Option<&'a dyn BlockClient>>,
    pub held: RefCell<Option<Held>>,
    /// Requests started.
    pub started: Cell<usize>,
}

impl<'a> ManualDisk<'a> {
    /// `sectors` zeroed sectors.
    pub fn new(sectors: usize) -> ManualDisk<'a> {
        ManualDisk {
            bytes: RefCell::new(std::vec![0; sectors * SECTOR_BYTES]),
            client: Cell::new(None),
            held: RefCell::new(None),
            started: Cell::new(0),
        }
    }

    /// Takes a read or write (`held` makes it of `sector` and `buffer`)
    /// unless one is in flight or it is out of range.
    fn start(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
        held: fn(u64, &'static mut [u8]) -> Held,
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        if self.held.borrow().is_some() {
            return Err((BlockError::Busy, buffer));
        }
        if let Err(error) = check_range(sector, buffer.len(), self.sectors()) {
            return Err((error, buffer));
        }
        self.started.set(self.started.get() + 1);
        *self.held.borrow_mut() = Some(held(sector, buffer));
        Ok(())
    }

    /// Completes the request it holds (`Ok`, or `error`), as its
    /// interrupt would; returns whether it held one.
    pub fn complete(&self, error: Option<BlockError>) -> bool {
        let held = self.held.borrow_mut().take();
        let client = self.client.get().unwrap();
        let result = error.map_or(Ok(()), Err);
        match held {
            None => return false,
            Some(Held::Read(sector, buffer)) => {
                let start = sector as usize * SECTOR_BYTES;
                buffer.copy_from_slice(&self.bytes.borrow()[start..start + buffer.len()]);
                client.read_done(buffer, result);
            }
            Some(Held::Write(sector, buffer)) => {
                if result.is_ok() {
                    let start = sector as usize * SECTOR_BYTES;
                    self.bytes.borrow_mut()[start..start + buffer.len()].copy_from_slice(buffer);
                }
                client.write_done(buffer, result);
            }
            Some(Held::Flush) => client.flush_done(result),
        }
        true
    }
}

impl<'a> BlockDevice<'a> for ManualDisk<'a> {
    fn set_client(&self, client: &'a dyn BlockClient) {
        self.client.set(Some(client));
    }

    fn sectors(&self) -> u64 {
        (self.bytes.borrow().len() / SECTOR_BYTES) as u64
    }

    fn read_only(&self) -> bool {
        false
    }

    fn read(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.start(sector, buffer, Held::Read)
    }

    fn write(
        &self,
        sector: u64,
        buffer: &'static mut [u8],
    ) -> Result<(), (BlockError, &'static mut [u8])> {
        self.start(sector, buffer, Held::Write)
    }

    fn flush(&self) -> Result<(), BlockError> {
        if self.held.borrow().is_some() {
            return Err(BlockError::Busy);
        }
        self.started.set(self.started.get() + 1);
        *self.held.borrow_mut() = Some(Held::Flush);
        Ok(())
    }
}

/// A buffer that lives for the rest of the test run (the block HIL's
/// buffers are `'static`).
pub fn leak_buffer(bytes: usize) -> &'static mut [u8] {
    std::boxed::Box::leak(std::vec![0u8; bytes].into_boxed_slice())
}
