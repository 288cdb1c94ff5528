// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console output: where guests' and the hypervisor's characters go.
//!
//! The physical UART driver implements [`ConsoleOutput`]; the virtual UART
//! and the hypervisor service write through it (later through the console
//! multiplexer, which implements the same trait per VM).

/// A byte sink on the console.
pub trait ConsoleOutput {
    /// Writes `bytes` as they are (no newline translation).
    fn write(&self, bytes: &[u8]);
}
