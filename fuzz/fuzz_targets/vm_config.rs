// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any VM table (RAM placement, images and their sizes, device claims):
//! validate() never panics, and a table it accepts really is sound: RAM
//! inside the pool and disjoint, images inside their VM's RAM, device
//! claims each one of the board's devices, once, clear of RAM.
#![no_main]

use hyp::config::{
    validate, BoardOffer, DeviceClaim, ImageConfig, ImageKind, ImageProblem, VmConfig,
};
use hyp::memory::{MemoryType, Permissions, Region};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["a", "b", "c", "a"];
static DEVICES: [DeviceClaim; 2] = [
    DeviceClaim {
        name: "gic",
        ipa: 0x0800_0000,
        size: 0x3000,
    },
    DeviceClaim {
        name: "pl011",
        ipa: 0x0900_0000,
        size: 0x1000,
    },
];
/// Claims a VM may make: none, the board's devices, one twice, one the
/// board does not have, one of its devices at the wrong address.
static CLAIMS: [&[DeviceClaim]; 5] = [
    &[],
    &DEVICES,
    &[DEVICES[1], DEVICES[0], DEVICES[1]],
    &[DeviceClaim {
        name: "rogue",
        ipa: 0x0a00_0000,
        size: 0x1000,
    }],
    &[DeviceClaim {
        name: "pl011",
        ipa: 0x0900_1000,
        size: 0x1000,
    }],
];

fuzz_target!(|vms: Vec<(u8, u32, u32, u32, u32, u32, u8)>| {
    let pool = Region::new(
        "pool",
        0x8000_0000,
        0x4000_0000,
        MemoryType::Normal,
        Permissions::ReadWrite,
    );
    let table: Vec<VmConfig> = vms
        .iter()
        .take(10)
        .map(
            |&(name, ram_ipa, ram_size, ram_host, offset, _size, devices)| VmConfig {
                name: NAMES[name as usize % NAMES.len()],
                ram_ipa,
                ram_size,
                ram_host: ram_host as u64 | 0x8000_0000,
                kernel: ImageConfig {
                    name: "kernel",
                    kind: ImageKind::Kernel,
                    host_address: 0,
                    load_offset: offset,
                },
                initrd: None,
                device_tree: None,
                bootargs: "",
                devices: CLAIMS[devices as usize % CLAIMS.len()],
            },
        )
        .collect();
    let sizes: Vec<u32> = vms.iter().take(10).map(|vm| vm.5).collect();
    let offer = BoardOffer {
        pool: &pool,
        vmids: 8,
        devices: &DEVICES,
    };
    let result = validate(&table, &offer, |vm, _image| {
        let index = table
            .iter()
            .position(|other| core::ptr::eq(other, vm))
            .unwrap_or(0);
        match sizes[index] {
            0 => Err(ImageProblem::Missing),
            size => Ok(size),
        }
    });
    if result.is_ok() {
        for (index, vm) in table.iter().enumerate() {
            assert!(vm.ram_host >= pool.start as u64);
            assert!(vm.ram_host + vm.ram_size as u64 <= pool.end());
            assert!(vm.kernel.load_offset as u64 + sizes[index] as u64 <= vm.ram_size as u64);
            for other in &table[..index] {
                let disjoint = vm.ram_host + vm.ram_size as u64 <= other.ram_host
                    || other.ram_host + other.ram_size as u64 <= vm.ram_host;
                assert!(disjoint, "{} and {} overlap", vm.name, other.name);
            }
            for (claim_index, claim) in vm.devices.iter().enumerate() {
                assert!(DEVICES.contains(claim), "{} claims {:?}", vm.name, claim);
                assert!(
                    !vm.devices[..claim_index].contains(claim),
                    "{:?} twice",
                    claim
                );
                let ram_end = vm.ram_ipa as u64 + vm.ram_size as u64;
                let claim_end = claim.ipa as u64 + claim.size as u64;
                assert!(claim_end <= vm.ram_ipa as u64 || ram_end <= claim.ipa as u64);
            }
        }
    }
});
