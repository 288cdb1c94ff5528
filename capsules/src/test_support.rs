// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fakes shared by the capsules' unit tests (compiled for tests only).

extern crate std;

use core::cell::{Cell, RefCell};
use hyp::hil::console::{ConsoleOutput, ConsoleReceive};
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
