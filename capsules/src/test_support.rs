// SPDX-License-Identifier: MIT OR Apache-2.0
//! Fakes shared by the capsules' unit tests (compiled for tests only).

extern crate std;

use core::cell::RefCell;
use hyp::hil::console::ConsoleOutput;
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
