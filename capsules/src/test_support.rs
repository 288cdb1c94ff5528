// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fakes shared by the capsules' unit tests (compiled for tests only).

extern crate std;

use core::cell::{Cell, RefCell};
use hyp::hil::console::ConsoleOutput;
use hyp::hil::time::Clock;
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

/// A clock the test moves by hand.
pub struct FakeClock {
    now: Cell<u64>,
    frequency: u32,
}

impl FakeClock {
    /// A clock at 0 counting `frequency` ticks a second.
    pub fn new(frequency: u32) -> FakeClock {
        FakeClock {
            now: Cell::new(0),
            frequency,
        }
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
