// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capvisor's core: what a VM is, how its traps are dispatched, and the
//! interfaces (HILs) that chips implement and capsules use.
//!
//! `hyp` depends on nothing else in the tree (`docs/architecture.md`,
//! layers). Everything here
//! is architecture neutral and is tested on the host. Unsafe code is denied
//! except for the capability traits ([`capabilities`]), in the three
//! small, documented utilities that need it
//! ([`utilities::StaticRef`], [`utilities::TakeOnce`],
//! [`utilities::BumpAllocator`]), and the claim that a VM's objects
//! guarded by its spin lock may move to and be shared by other CPUs
//! ([`kernel::Guarded`]'s `Send` and `Sync`, argued where they are made,
//! and resting on the promise `unsafe` [`kernel::VmMutex::guard`] asks).
#![cfg_attr(not(loom), no_std)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capabilities;
pub mod config;
pub mod debug;
pub mod device_tree;
pub mod dispatch;
pub mod exit;
pub mod fault_policy;
pub mod guest_platform;
pub mod hil;
pub mod image;
pub mod interrupts;
pub mod kernel;
pub mod memory;
pub mod psci;
pub mod report;
pub mod scheduler;
pub mod sync;
pub mod system_image;
pub mod trap;
pub mod utilities;
