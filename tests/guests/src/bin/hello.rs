// SPDX-License-Identifier: MIT OR Apache-2.0
//! The demo guest: says hello with its VM's name and id, takes a few turns
//! with the other VMs (YIELD), and powers off.
#![no_std]
#![no_main]

use capvisor_test_guests::{println, vm_identity};

capvisor_test_guests::guest!("hello", main);

fn main() -> u32 {
    let (id, name, length) = vm_identity();
    let name = core::str::from_utf8(&name[..length]).unwrap_or("?");
    for round in 1..=3 {
        println!("hello from VM {} ('{}'), round {} of 3", id, name, round);
        capvisor_test_guests::yield_now();
    }
    println!("VM '{}' powers off", name);
    0
}
