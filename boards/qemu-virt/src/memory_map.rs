// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's own memory map on QEMU virt.
//!
//! What this board adds to the image's sections (`components::memory_map`):
//! the GIC's distributor, CPU interface and virtual interface control
//! (GICH) blocks and the PL011 it drives, the PL031 it reads once, the
//! virtio-mmio transports (the board disk is QEMU's virtio-blk device
//! behind one of them), the RAM pool it hands out to
//! guests, and the staging area QEMU's loader puts the packed system image in.
//! The GIC's virtual CPU interface (GICV) is not the hypervisor's: it is
//! mapped only in guests' stage 2. The device tree QEMU leaves at the start
//! of RAM is read once, before the MMU is on, and is not mapped.

use hyp::memory::{MemoryType, Permissions, Region};
use qemu_virt::disk::{VIRTIO_MMIO_BASE, VIRTIO_MMIO_WINDOW};
use qemu_virt::{DEVICE_PAGE_SIZE, GICC_BASE, GICD_BASE, GICH_BASE, RTC_BASE, UART0_BASE};

/// Guest RAM pool: RAM (0x4000_0000 up, 1 GiB with `-m 1024`) above the
/// device tree and the hypervisor image (linked at 0x4020_0000), up to the
/// staging area. The same 752 MiB as Integrator/CP's pool, so the VM
/// tables fit both.
pub const GUEST_RAM: Region = Region::new(
    "guest-ram",
    0x4100_0000,
    0x2f00_0000,
    MemoryType::Normal,
    Permissions::ReadWrite,
);

/// Where the staging area starts: QEMU's loader puts the packed system
/// image (`tools/system`) here.
pub const STAGING_BASE: u32 = 0x7000_0000;
/// Bytes of the staging area: the largest system image the board takes.
pub const STAGING_SIZE: u32 = 0x1000_0000;

/// The image staging area at the top of RAM, where QEMU's generic loader
/// places the packed system image (`hyp::system_image`); the hypervisor
/// only reads it.
pub const GUEST_IMAGES: Region = Region::new(
    "guest-images",
    STAGING_BASE,
    STAGING_SIZE,
    MemoryType::Normal,
    Permissions::ReadOnly,
);

const fn device(name: &'static str, base: usize, size: usize) -> Region {
    Region::new(
        name,
        base as u32,
        size as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    )
}

/// Everything this board adds to the image's sections in the Hyp map.
pub const REGIONS: [Region; 8] = [
    device("gicd", GICD_BASE, DEVICE_PAGE_SIZE),
    device("gicc", GICC_BASE, gicv2::CPU_INTERFACE_SIZE),
    device("gich", GICH_BASE, DEVICE_PAGE_SIZE),
    device("uart0", UART0_BASE, DEVICE_PAGE_SIZE),
    // Read once at boot (the wall clock); the hypervisor never writes it.
    Region::new(
        "rtc",
        RTC_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadOnly,
    ),
    // All 32 transports (four pages): the disk's slot is found at boot.
    device("virtio-mmio", VIRTIO_MMIO_BASE, VIRTIO_MMIO_WINDOW),
    GUEST_RAM,
    GUEST_IMAGES,
];

const _: () = assert!(GUEST_RAM.start as u64 + GUEST_RAM.size as u64 == GUEST_IMAGES.start as u64);
const _: () = assert!(GUEST_IMAGES.start as u64 + GUEST_IMAGES.size as u64 == 0x8000_0000);
