// SPDX-License-Identifier: MIT OR Apache-2.0
//! Hardware interface layers: the traits chips implement for capsules.
//!
//! A capsule never names a chip type (`docs/architecture.md`, layers); it
//! holds a
//! reference to one of these traits, and the board hands it the chip's
//! driver. Each trait is small and has a fake in the capsules' tests.

pub mod block;
pub mod console;
pub mod flash;
pub mod guest_ram;
pub mod interrupt;
pub mod list_registers;
pub mod time;
