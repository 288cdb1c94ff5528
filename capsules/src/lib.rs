//! Capsules: virtual devices and hypercall services, in safe Rust.
//!
//! Capsules handle guests' traps: each implements a `hyp` trait
//! (`hyp::dispatch::HypercallDriver` for services, `hyp::dispatch::MmioDevice`
//! for virtual devices) and never names a chip. Unsafe code is forbidden.
//!
//! | capsule | what |
//! |---|---|
//! | [`fault_policies`] | what happens to a VM that cannot take its own faults |
//! | [`hypervisor_service`] | Capvisor's hypercalls: version, VM id and name, console write |
//! | [`psci`] | PSCI 0.2 for single-CPU guests |
//! | [`virtual_uart`] | the guest's PL011 at 0x0900_0000 |
#![no_std]
#![forbid(unsafe_code)]

pub mod fault_policies;
pub mod hypervisor_service;
pub mod psci;
pub mod virtual_uart;
