// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any VM table (RAM placement, vCPUs, images and their sizes, device
//! claims): validate() never panics, and a table it accepts really is
//! sound: RAM inside the pool and disjoint, images inside their VM's RAM
//! and apart, each claimed device one the board offers, clear of RAM.
#![no_main]

use hyp::config::{
    validate, BoardOffer, DeviceClaim, DeviceSet, ImageConfig, ImageKind, ImageProblem, VmConfig,
};
use hyp::memory::{MemoryType, Permissions, Region};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["a", "b", "c", "a"];
/// The board offers two of the three devices the format knows.
static DEVICES: [DeviceClaim; 2] = [
    DeviceClaim {
        name: "gic-distributor",
        ipa: 0x0800_0000,
        size: 0x1_0000,
    },
    DeviceClaim {
        name: "pl011",
        ipa: 0x0900_0000,
        size: 0x1000,
    },
];

fn image(name: &'static str, load_offset: u32, size: u32) -> ImageConfig {
    ImageConfig {
        name,
        kind: ImageKind::Raw,
        host_address: 0,
        size,
        load_offset,
    }
}

fuzz_target!(|vms: Vec<(u8, u32, u32, u32, (u32, u32), Option<(u32, u32)>, u8, u8)>| {
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
            |&(name, ram_ipa, ram_size, ram_host, kernel, initrd, devices, vcpus)| VmConfig {
                name: NAMES[name as usize % NAMES.len()],
                ram_ipa,
                ram_size,
                ram_host: ram_host as u64 | 0x8000_0000,
                vcpus: u32::from(vcpus % 3),
                // Bit 7 of `devices`: a firmware instead of the kernel;
                // bit 6: the flash window claimed (right only with one).
                kernel: (devices & 0x80 == 0).then(|| image("kernel", kernel.0, kernel.1)),
                firmware: (devices & 0x80 != 0).then(|| image("firmware", 0, kernel.1)),
                entry_offset: kernel.0,
                initrd: initrd.map(|(offset, size)| image("initrd", offset, size)),
                device_tree: None,
                bootargs: "",
                devices: DeviceSet(u32::from(devices & 0b111) | u32::from(devices & 0x40) >> 2),
                // vCPU n on CPU (n + vcpus) mod 4: sometimes two on one,
                // sometimes one past the online CPUs.
                cpus: core::array::from_fn(|n| ((n + usize::from(vcpus)) % 4) as u8),
            },
        )
        .collect();
    let offer = BoardOffer {
        pool: &pool,
        vmids: 8,
        vcpus: 2,
        cpus: 3,
        devices: &DEVICES,
    };
    let result = validate(&table, &offer, |_, image| match image.size {
        0 => Err(ImageProblem::Missing),
        size => Ok(size),
    });
    if result.is_ok() {
        for (index, vm) in table.iter().enumerate() {
            assert!((1..=2).contains(&vm.vcpus));
            for vcpu in 0..vm.vcpus as usize {
                assert!(vm.cpu_of(vcpu) < 3, "vCPU on an offline CPU accepted");
                for other in 0..vcpu {
                    assert_ne!(vm.cpu_of(vcpu), vm.cpu_of(other), "two vCPUs on one CPU accepted");
                }
            }
            assert!(vm.ram_host >= pool.start as u64);
            assert!(vm.ram_host + vm.ram_size as u64 <= pool.end());
            let images: Vec<&ImageConfig> = vm.images().collect();
            for (n, image) in images.iter().enumerate() {
                let end = image.load_offset as u64 + image.size as u64;
                assert!(end <= vm.ram_size as u64);
                for other in &images[..n] {
                    let other_end = other.load_offset as u64 + other.size as u64;
                    assert!(end <= other.load_offset as u64 || other_end <= image.load_offset as u64);
                }
            }
            for other in &table[..index] {
                let disjoint = vm.ram_host + vm.ram_size as u64 <= other.ram_host
                    || other.ram_host + other.ram_size as u64 <= vm.ram_host;
                assert!(disjoint, "{} and {} overlap", vm.name, other.name);
            }
            for name in vm.devices.names() {
                let claim = DEVICES
                    .iter()
                    .find(|claim| claim.name == name)
                    .unwrap_or_else(|| panic!("{} claims {name}, not offered", vm.name));
                let ram_end = vm.ram_ipa as u64 + vm.ram_size as u64;
                let claim_end = claim.ipa as u64 + claim.size as u64;
                assert!(claim_end <= vm.ram_ipa as u64 || ram_end <= claim.ipa as u64);
            }
        }
    }
});
