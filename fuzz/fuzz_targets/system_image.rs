// SPDX-License-Identifier: MIT OR Apache-2.0
//! The packed system image the hypervisor reads at boot: any bytes. With
//! the first byte odd, the checksum is made right first, so the fuzzer
//! reaches the checks behind it. `parse` never panics; what it accepts
//! has every range inside the image, and becomes VM configurations that
//! `validate` checks without panicking.
#![no_main]

use hyp::config::{validate, BoardOffer, DeviceClaim, VmConfig};
use hyp::memory::{MemoryType, Permissions, Region};
use hyp::system_image::{checksum, parse, HEADER_BYTES};
use libfuzzer_sys::fuzz_target;

static DEVICES: [DeviceClaim; 1] = [DeviceClaim {
    name: "pl011",
    ipa: 0x0900_0000,
    size: 0x1000,
}];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= HEADER_BYTES {
        let sum = checksum(&bytes, 20);
        bytes[20..24].copy_from_slice(&sum.to_le_bytes());
    }
    let Ok(table) = parse(&bytes) else {
        return;
    };
    assert!(table.total as usize <= bytes.len());
    assert!(table.focus < table.vms.len());
    for vm in &table.vms {
        for image in &vm.images {
            assert!(table.data_offset(image) as u64 + image.size() as u64 <= table.total as u64);
        }
        assert!(!vm.name.is_empty() && vm.name.len() < 32);
    }
    let pool = Region::new(
        "pool",
        0x4100_0000,
        0x2f00_0000,
        MemoryType::Normal,
        Permissions::ReadWrite,
    );
    let configs: Vec<VmConfig> = table
        .vms
        .iter()
        .map(|vm| VmConfig::from_table(&table, vm, 0x7000_0000, pool.start))
        .collect();
    let offer = BoardOffer {
        pool: &pool,
        vmids: 255,
        vcpus: 4,
        cpus: 4,
        devices: &DEVICES,
    };
    let _ = validate(&configs, &offer, |_, image| Ok(image.size));
});
