// SPDX-License-Identifier: MIT OR Apache-2.0
//! The hypervisor's own memory map on Integrator/CP.
//!
//! What this board adds to the image's sections (`components::memory_map`):
//! the device blocks it drives (timers, PIC, UART0, the RTC it reads once,
//! the PL181 of the board disk), the RAM pool it hands out to guests,
//! and the staging area QEMU's loader puts the packed system image in.

use hyp::memory::{MemoryType, Permissions, Region};
use integrator_cp::{
    DEVICE_PAGE_SIZE, PIC_BASE, RAM_ALIAS_BASE, RTC_BASE, TIMERS_BASE, UART0_BASE,
};

/// Guest RAM pool, in the upper alias of RAM (QEMU runs the board with
/// `-m 1024`, so 0x8000_0000-0xbfff_ffff is real, contiguous RAM). The
/// alias starts with the hypervisor's own image (0x8000_0000 + x is low RAM
/// address x), so the pool starts 16 MiB in; [`check_guest_ram_alias`]
/// proves at boot that the image ends below that. VMs' RAM is carved from
/// here.
pub const GUEST_RAM: Region = Region::new(
    "guest-ram",
    0x8100_0000,
    0x2f00_0000,
    MemoryType::Normal,
    Permissions::ReadWrite,
);

/// Where the staging area starts: QEMU's loader puts the packed system
/// image (`tools/system`) here.
pub const STAGING_BASE: u32 = 0xb000_0000;
/// Bytes of the staging area: the largest system image the board takes.
pub const STAGING_SIZE: u32 = 0x1000_0000;

/// The image staging area above it, where QEMU's generic loader places
/// the packed system image (`hyp::system_image`). The hypervisor only reads
/// it, to copy images into VMs' RAM.
pub const GUEST_IMAGES: Region = Region::new(
    "guest-images",
    STAGING_BASE,
    STAGING_SIZE,
    MemoryType::Normal,
    Permissions::ReadOnly,
);

/// The device register blocks the hypervisor drives.
pub const DEVICES: [Region; 5] = [
    Region::new(
        "timers",
        TIMERS_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
    Region::new(
        "pic",
        PIC_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
    Region::new(
        "uart0",
        UART0_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
    // Read once at boot (the wall clock); the hypervisor never writes it.
    Region::new(
        "rtc",
        RTC_BASE as u32,
        DEVICE_PAGE_SIZE as u32,
        MemoryType::Device,
        Permissions::ReadOnly,
    ),
    Region::new(
        "mmci",
        pl181::BASE as u32,
        pl181::SIZE as u32,
        MemoryType::Device,
        Permissions::ReadWrite,
    ),
];

/// Everything this board adds to the image's sections in the Hyp map.
pub const REGIONS: [Region; 7] = [
    DEVICES[0],
    DEVICES[1],
    DEVICES[2],
    DEVICES[3],
    DEVICES[4],
    GUEST_RAM,
    GUEST_IMAGES,
];

const _: () = assert!(GUEST_RAM.start as u64 + GUEST_RAM.size as u64 == GUEST_IMAGES.start as u64);

/// Checks that no byte of the guest RAM pool is, through the RAM alias, a
/// byte of the hypervisor's image, stacks or tables. Returns the image's
/// end on failure.
pub fn check_guest_ram_alias() -> Result<(), usize> {
    let image_end = components::memory_map::image_end() as usize;
    if RAM_ALIAS_BASE + image_end > GUEST_RAM.start as usize {
        Err(image_end)
    } else {
        Ok(())
    }
}
