// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console output: where guests' and the hypervisor's characters go.
//!
//! The physical UART driver implements [`ConsoleOutput`]; the virtual UART
//! and the hypervisor service write through it (later through the console
//! multiplexer, which implements the same trait per VM). The receive side
//! of the same UART implements [`ConsoleReceive`]; the console input
//! capsule reads typed bytes through it.

/// A byte sink on the console.
pub trait ConsoleOutput {
    /// Writes `bytes` as they are (no newline translation).
    fn write(&self, bytes: &[u8]);
}

/// The receive side of a console UART, polled.
pub trait ConsoleReceive {
    /// The next received byte, if one is waiting.
    fn read_byte(&self) -> Option<u8>;
    /// Lets the UART raise its receive interrupt while received data
    /// waits (`true`), or stops it.
    fn set_receive_interrupts(&self, enabled: bool);
}
