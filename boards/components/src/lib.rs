// SPDX-License-Identifier: MIT OR Apache-2.0
//! What every Capvisor board shares (Tock's `boards/components`).
//!
//! A board crate holds what is its own: its memory map (device blocks,
//! guest RAM pool, staging area), its devices' drivers and interrupt lines,
//! which interrupt backend its VMs get, and the wiring of those in one
//! readable `main.rs`. Everything a second board would otherwise repeat
//! lives here:
//!
//! | module | what |
//! |---|---|
//! | [`io`] | the console (any PL011 the board names), `log!`, refusing the boot, the panic handler |
//! | [`board_disk`] | announcing the board's disk at boot, and its end-to-end self-check (feature `test-board-disk`) |
//! | [`boot`] | banner, CPU check, the Hyp map with its coverage proof and the MMU, test hooks |
//! | [`memory_map`] | the image's sections from the shared linker script, the map plan and what the coverage check proves |
//! | [`devices`] | the virtual devices every board offers VMs, at their windows |
//! | [`flash_bank`] | a firmware VM's second flash bank in its pool slice, and its stage-2 switch |
//! | [`guests`] | reading and checking the packed system image, creating the VMs' capsules, stage 2 and vCPUs, running them and reporting |
//! | [`platform`] | the kernel's `Platform`: clock, alarm, which line is what, console input's wiring |
//!
//! Policy is not here: console input's flow is the `capsules::console_input`
//! capsule, the final report's verdicts are `hyp::report`; this crate
//! creates the objects, wires them to the board's devices and interrupts,
//! and holds the unsafe glue.
//!
//! # Host tests
//!
//! The modules that drive the CPU itself ([`boot`], [`io`],
//! [`memory_map`]'s linker symbols, [`guests`]' vCPUs and stage 2) are
//! built for the target only; [`devices`] and [`platform`] build on the
//! host too, where `cargo test -p components` runs their tests (the
//! platform's interrupt service with fake devices).
//!
//! The linker script (`layout.ld`) is shared too: a board's own script sets
//! `IMAGE_BASE` and includes it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[cfg(target_arch = "arm")]
pub mod board_disk;
#[cfg(target_arch = "arm")]
pub mod boot;
pub mod devices;
#[cfg(target_arch = "arm")]
pub mod flash_bank;
#[cfg(target_arch = "arm")]
pub mod guests;
#[cfg(target_arch = "arm")]
pub mod io;
#[cfg(target_arch = "arm")]
pub mod memory_map;
pub mod platform;

/// Moves `value` to the boot heap for the rest of the run (Tock's
/// `static_init!`): objects created once at boot that the VMs, capsules
/// and the platform borrow for ever.
pub fn leak<T>(value: T) -> &'static mut T {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(value))
}
