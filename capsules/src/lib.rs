// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capsules: virtual devices and hypercall services, in safe Rust.
//!
//! Capsules handle guests' traps: each implements a `hyp` trait
//! (`hyp::dispatch::HypercallDriver` for services, `hyp::dispatch::MmioDevice`
//! for virtual devices) and never names a chip. Unsafe code is forbidden.
//!
//! | capsule | what |
//! |---|---|
//! | [`console_input`] | typed bytes to the focused VM: held while it has no room, dropped once it stops reading |
//! | [`console_mux`] | one physical console shared by the VMs: focus, prefixed lines, Ctrl-] keys |
//! | [`fault_policies`] | what happens to a VM that cannot take its own faults |
//! | [`flash`] | the flash window of a VM with a firmware: bank 0 a ROM, bank 1 a CFI flash |
//! | [`hypervisor_service`] | Capvisor's hypercalls: version, VM id and name, console write |
//! | [`psci`] | PSCI 0.2 for single-CPU guests |
//! | [`virtio`] | virtio-mmio transport, virtio-blk, and the RAM/image disk it can serve |
//! | [`virtual_gic`] | the guest's GICv2 (distributor, CPU interface), devices' interrupt lines, the two interrupt backends |
//! | [`virtual_rtc`] | the guest's PL031 real-time clock |
//! | [`virtual_timer`] | the guest's virtual timer interrupt, raised by the hypervisor |
//! | [`virtual_uart`] | the guest's PL011 console |
//!
//! Where each device sits in guest-physical space and which interrupt it
//! raises is its row of `hyp::guest_platform`.
//!
//! # Writing a capsule
//!
//! A virtual device implements `MmioDevice`: its name (what VM tables
//! claim), its window in guest-physical space, and `read`/`write` at an
//! offset in it. The hypervisor calls it only for accesses that lie wholly
//! inside the window and have a syndrome (a single load or store); an
//! `Err` becomes a data abort in the guest, an unaligned access an
//! alignment fault. A hypercall service implements `HypercallDriver`: the
//! SMCCC owners it answers for (the dispatcher asks no other service about
//! them), which function ids it owns, and the call itself. State lives in
//! `Cell`s: capsules are shared, and the hypervisor runs one exit at a
//! time.
//!
//! ```
//! use core::cell::Cell;
//! use hyp::dispatch::{HypercallDriver, HypercallOutcome, MmioDevice, MmioError, Routes};
//! use hyp::trap::AccessSize;
//!
//! /// A scratch register at 0x0a00_0000, and a hypercall that reads it.
//! #[derive(Default)]
//! struct Scratch {
//!     value: Cell<u32>,
//! }
//!
//! impl MmioDevice for Scratch {
//!     fn name(&self) -> &'static str { "scratch" }
//!     fn base(&self) -> u64 { 0x0a00_0000 }
//!     fn size(&self) -> u64 { 0x1000 }
//!     fn read(&self, offset: u64, size: AccessSize) -> Result<u32, MmioError> {
//!         match (offset, size) {
//!             (0, AccessSize::Word) => Ok(self.value.get()),
//!             (0, _) => Err(MmioError::BadSize),
//!             _ => Err(MmioError::NoRegister),
//!         }
//!     }
//!     fn write(&self, offset: u64, size: AccessSize, value: u32) -> Result<(), MmioError> {
//!         self.read(offset, size).map(|_| self.value.set(value))
//!     }
//! }
//!
//! impl HypercallDriver for Scratch {
//!     // SMCCC owner 6 (standard hypervisor services); a real service
//!     // picks ids nobody else owns (Capvisor's are 0x8600_0000-0x8600_00ff).
//!     fn functions(&self) -> &[core::ops::RangeInclusive<u32>] {
//!         &[0x8600_0100..=0x8600_0100]
//!     }
//!     fn call(&self, _function: u32, _arguments: [u32; 7]) -> HypercallOutcome {
//!         HypercallOutcome::value(self.value.get())
//!     }
//! }
//!
//! let scratch = Scratch::default();
//! scratch.write(0, AccessSize::Word, 42).unwrap();
//! assert_eq!(scratch.read(4, AccessSize::Word), Err(MmioError::NoRegister));
//! assert!(matches!(scratch.call(0x8600_0100, [0; 7]), HypercallOutcome::Return([Some(42), ..])));
//! // What a VM is given: its devices and services, routed.
//! let devices: [&dyn MmioDevice; 1] = [&scratch];
//! let services: [&dyn HypercallDriver; 1] = [&scratch];
//! assert!(Routes::new(&devices, &services).is_ok());
//! ```
//!
//! A device the guest sees also needs its row in the guest platform
//! (`hyp::guest_platform`: name, window, interrupt, device-tree node), an
//! interrupt line if it raises one, and a line where the boards make each
//! VM's devices (`boards/components/src/devices.rs`); `docs/capsules.md`
//! walks through all of it (the traits, the row, interrupts, the
//! device-tree node, reset, which VMs get it, host tests with the fakes of
//! `test_support`, a test guest and a QEMU test on every board).
#![no_std]
#![forbid(unsafe_code)]

pub mod console_input;
pub mod console_mux;
pub mod fault_policies;
pub mod flash;
pub mod hypervisor_service;
pub mod psci;
#[cfg(test)]
mod test_support;
pub mod virtio;
pub mod virtual_gic;
pub mod virtual_rtc;
pub mod virtual_timer;
pub mod virtual_uart;
