//! Capsules: virtual devices and hypercall services, in safe Rust.
//!
//! Capsules handle guests' traps: each implements a `hyp` trait
//! (`hyp::dispatch::HypercallDriver` for services, `hyp::dispatch::MmioDevice`
//! for virtual devices) and never names a chip. Unsafe code is forbidden.
//!
//! | capsule | what |
//! |---|---|
//! | [`console_mux`] | one physical console shared by the VMs: focus, prefixed lines, Ctrl-] keys |
//! | [`fault_policies`] | what happens to a VM that cannot take its own faults |
//! | [`guest_interrupts`] | which virtual device drives which line of a VM's virtual GIC |
//! | [`hypervisor_service`] | Capvisor's hypercalls: version, VM id and name, console write |
//! | [`psci`] | PSCI 0.2 for single-CPU guests |
//! | [`virtual_gic`] | the guest's GICv2: distributor at 0x0800_0000, CPU interface at 0x0801_0000 |
//! | [`virtual_timer`] | the guest's virtual timer interrupt (PPI 11), raised by the hypervisor |
//! | [`virtual_uart`] | the guest's PL011 at 0x0900_0000 |
#![no_std]
#![forbid(unsafe_code)]

pub mod console_mux;
pub mod fault_policies;
pub mod guest_interrupts;
pub mod hypervisor_service;
pub mod psci;
#[cfg(test)]
mod test_support;
pub mod virtual_gic;
pub mod virtual_timer;
pub mod virtual_uart;
