// SPDX-License-Identifier: MIT OR Apache-2.0
//! Drivers for the QEMU Integrator/CP devices the hypervisor owns.
//!
//! The hypervisor drives these devices itself; no guest ever reaches them
//! (they are never mapped at stage 2). Each driver is a thin `tock-registers`
//! description of the register block plus the operations Capvisor needs, and
//! each exports its block's address and size so the board can map it in the
//! Hyp tables and list it in the coverage check.
//!
//! | device | base | driver |
//! |---|---|---|
//! | counter/timers 0-2 | 0x1300_0000, +0x100, +0x200 | [`timer`] |
//! | interrupt controller (PIC) | 0x1400_0000 | [`pic`] |
//! | real-time clock (PL031) | 0x1500_0000 | the `pl031` crate |
//! | UART0 (PL011) | 0x1600_0000 | the `pl011` crate |
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod pic;
pub mod timer;

/// Register block of UART0, the hypervisor's console.
pub const UART0_BASE: usize = 0x1600_0000;
/// Register block of UART1 (not used by the hypervisor).
pub const UART1_BASE: usize = 0x1700_0000;
/// Register block of the primary interrupt controller.
pub const PIC_BASE: usize = 0x1400_0000;
/// Register block of the real-time clock (PL031), read once at boot.
pub const RTC_BASE: usize = 0x1500_0000;
/// Register blocks of the three counter/timers (0x100 apart).
pub const TIMERS_BASE: usize = 0x1300_0000;
/// Size of one device page: every block above fits in one 4 KiB page.
pub const DEVICE_PAGE_SIZE: usize = 0x1000;
/// Where the board's RAM (at physical 0) appears again: 0x8000_0000 + x is
/// RAM address x. The hypervisor image lives in low RAM, so guest memory
/// carved from the alias must start above the image's alias.
pub const RAM_ALIAS_BASE: usize = 0x8000_0000;
