// SPDX-License-Identifier: MIT OR Apache-2.0
//! Writes the device tree Capvisor gives a guest, for booting the same
//! kernel natively (QEMU `-M virt -dtb`) to compare with it (`make bench`).
//!
//! ```sh
//! capvisor-dtb OUT [RAM_MIB] [BOOTARGS] [CPUS]
//! ```
//! The tree is `hyp::device_tree::guest_device_tree` for RAM at 0x4000_0000
//! of RAM_MIB (default 256) with BOOTARGS and CPUS vCPUs (default 1); QEMU
//! adds the initrd's range when it loads one (`-initrd`).

use hyp::config::GUEST_RAM_IPA;
use hyp::device_tree::{guest_device_tree, GuestTree};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next() else {
        eprintln!("usage: capvisor-dtb OUT [RAM_MIB] [BOOTARGS] [CPUS]");
        std::process::exit(2);
    };
    let ram_mib: u32 = match args.next().map(|text| text.parse()) {
        None => 256,
        Some(Ok(mib)) if (1..=2048).contains(&mib) => mib,
        Some(_) => {
            eprintln!("capvisor-dtb: RAM_MIB must be a number of MiB from 1 to 2048");
            std::process::exit(2);
        }
    };
    let bootargs = args.next().unwrap_or_else(|| "console=ttyAMA0".to_string());
    let cpus: u32 = match args.next().map(|text| text.parse()) {
        None => 1,
        Some(Ok(cpus)) if (1..=4).contains(&cpus) => cpus,
        Some(_) => {
            eprintln!("capvisor-dtb: CPUS must be a number from 1 to 4");
            std::process::exit(2);
        }
    };
    let tree = guest_device_tree(&GuestTree {
        ram_base: GUEST_RAM_IPA,
        ram_size: ram_mib << 20,
        bootargs: &bootargs,
        initrd: None,
        cpus,
        // Every device of the guest platform: QEMU's virt has them all.
        devices: hyp::config::DeviceSet::ALL,
    })
    .unwrap_or_else(|error| {
        eprintln!("capvisor-dtb: cannot write the tree: {error}");
        std::process::exit(1);
    });
    if let Err(error) = std::fs::write(&out, tree) {
        eprintln!("capvisor-dtb: cannot write {out}: {error}");
        std::process::exit(1);
    }
}
