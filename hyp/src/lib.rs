//! Capvisor's core: what a VM is, how its traps are dispatched, and the
//! interfaces (HILs) that chips implement and capsules use.
//!
//! `hyp` depends on nothing else in the tree (see DESIGN.md). Everything here
//! is architecture neutral and is tested on the host.
#![no_std]
#![forbid(unsafe_code)]

pub mod exit;
pub mod memory;
