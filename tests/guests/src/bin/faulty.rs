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
    capvisor_test_guests::fault_in_own_vectors();
    println!("faulty: the fault did not stop this VM");
    1
}
