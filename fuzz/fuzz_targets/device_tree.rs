// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any command line, RAM size and initrd range: the device tree is written
//! or refused cleanly, and what is written parses back with the same
//! values.
#![no_main]

use hyp::device_tree::{guest_device_tree, GuestTree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: (String, u32, Option<(u32, u32)>, u8)| {
    let (bootargs, ram_size, initrd, cpus) = data;
    let Ok(blob) = guest_device_tree(&GuestTree {
        ram_base: 0x4000_0000,
        ram_size,
        bootargs: &bootargs,
        initrd,
        cpus: u32::from(cpus),
        devices: hyp::config::DeviceSet::ALL,
    }) else {
        // Only a command line with a NUL in it is refused.
        assert!(bootargs.contains('\0'));
        return;
    };
    let tree = fdt::Fdt::new(&blob).expect("the blob parses");
    assert_eq!(tree.chosen().bootargs(), Some(bootargs.as_str()));
    assert_eq!(tree.cpus().count(), usize::from(cpus).clamp(1, 8));
});
