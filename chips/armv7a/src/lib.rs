// SPDX-License-Identifier: MIT OR Apache-2.0
//! ARMv7-A Hyp-mode support: entry, vectors, CP15, LPAE tables and caches.
//!
//! This crate is the only place Capvisor touches the architecture directly:
//! the reset entry and exception vectors (assembly, in [`entry`]), the CP15
//! registers `aarch32-cpu` lacks ([`registers`]), the LPAE table engine
//! ([`lpae`]) with the Hyp stage-1 builder and its coverage check
//! ([`hyp_tables`]) and per-VM stage-2 tables ([`stage2`]), MMU and cache
//! bring-up ([`mmu`], [`cache`]), syndrome decoding ([`hsr`]) into guest
//! exits ([`guest_exit`]), the vCPU and its world switch ([`vcpu`],
//! [`world_switch`]), the counter and virtual timer ([`generic_timer`]) and
//! the fatal fault report ([`fault`], [`exceptions`]). Everything that is not an instruction
//! is plain Rust and tested on the host; the instructions are compiled only
//! for `target_arch = "arm"`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cache;
pub mod cp15_context;
pub mod cpu;
pub mod debug_registers;
pub mod entry;
pub mod exceptions;
pub mod fault;
pub mod fp_context;
pub mod generic_timer;
pub mod guest_exit;
pub mod hsr;
pub mod hyp_tables;
pub mod inject;
pub mod lpae;
pub mod mmu;
pub mod psci;
pub mod registers;
pub mod semihosting;
pub mod stage2;
pub mod vcpu;
pub mod world_switch;
