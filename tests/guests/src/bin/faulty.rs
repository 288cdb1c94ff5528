// SPDX-License-Identifier: MIT OR Apache-2.0
//! A guest that cannot take its own faults: it points its vectors at an
//! IPA with nothing behind it, then loads from an unclaimed IPA. The
//! injected data abort goes to a vector that itself aborts, again and
//! again; the hypervisor must end this (its fault policy restarts or stops
//! the VM) while the other VMs run on. Prints one line per boot.
#![no_std]
#![no_main]

use capvisor_test_guests::println;

capvisor_test_guests::guest!("faulty", main);

fn main() -> u32 {
    println!("faulty: booted; pointing VBAR at nothing and faulting");
    // SAFETY: deliberately not safe: this guest exists to fault in its own
    // vectors. VBAR := 0x5000_0000 (unmapped), then a load from an
    // unclaimed IPA.
    unsafe {
        core::arch::asm!(
            "mcr p15, 0, {vbar}, c12, c0, 0",
            "isb",
            "ldr {vbar}, [{address}]",
            vbar = inout(reg) 0x5000_0000u32 => _,
            address = in(reg) 0x2000_0000u32,
        )
    };
    println!("faulty: the fault did not stop this VM");
    1
}
